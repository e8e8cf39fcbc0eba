//! The timeline's data: every operation of the history, in columns, as JSON
//! that the page's one script (templates/timeline.js) pages through and
//! filters. No cut-off: a 1,000,000-operation history is about 30 MB.
//!
//! Rows are the history's operations and the nemesis' (a fault's invoke
//! with its completion), in invocation order. Columns, one entry per row:
//! - `p`, `f`: indices into the `procs` and `fs` tables;
//! - `k`, `nd`, `er`: 1 + indices into the `keys`, `nodes`, `errors`
//!   tables, 0 for none (one byte less than -1 per operation);
//! - `t`: invocation time as a delta from the previous operation's, in
//!   units of 0.1 ms (event indices when the history has no clock);
//! - `d`: duration in the same unit, -1 when the operation never completed;
//! - `o`: 0 ok, 1 fail, 2 info;
//! - `v`: the value in words ("3", "1 → 2", "→ 7"), cut at 60 characters.
//!
//! Invariant: the JSON never contains `<`, so it cannot end the script
//! element it sits in, whatever the history holds.

use checkers::history::{EventType, History, Outcome, Process};
use serde_json::Value;
use std::collections::HashMap;

/// Most characters of a value shown in the timeline.
const VALUE_CHARS: usize = 60;

struct Table {
    names: Vec<String>,
    index: HashMap<String, i64>,
}

impl Table {
    fn new() -> Self {
        Table {
            names: Vec::new(),
            index: HashMap::new(),
        }
    }
    fn id(&mut self, name: &str) -> i64 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as i64;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn cut(s: String) -> String {
    if s.chars().count() > VALUE_CHARS {
        format!("{}…", s.chars().take(VALUE_CHARS).collect::<String>())
    } else {
        s
    }
}

/// "in", "in → out" or "→ out", whichever says what happened.
fn value_words(input: &Value, output: Option<&Value>) -> String {
    let (i, o) = (text(input), output.map(text).unwrap_or_default());
    cut(match (i.is_empty(), o.is_empty() || o == i) {
        (_, true) => i,
        (true, false) => format!("→ {o}"),
        (false, false) => format!("{i} → {o}"),
    })
}

fn push_num(out: &mut String, n: i64) {
    if !out.ends_with('[') {
        out.push(',');
    }
    out.push_str(itoa::Buffer::new().format(n));
}

fn push_str(out: &mut String, s: &str) {
    if !out.ends_with('[') {
        out.push(',');
    }
    out.push_str(&safe_json(&Value::String(s.to_string())));
}

/// JSON text safe inside a script element: `<`, `>` and `&` as \u escapes
/// (they can only occur inside strings).
pub fn safe_json(v: &Value) -> String {
    let s = v.to_string();
    if !s.contains(['<', '>', '&']) {
        return s;
    }
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// One row: the fields of an operation the timeline shows.
struct Row<'a> {
    process: String,
    f: &'a str,
    key: Option<&'a Value>,
    input: &'a Value,
    output: Option<&'a Value>,
    outcome: Outcome,
    call: u64,
    ret: Option<u64>,
    call_time: Option<u64>,
    ret_time: Option<u64>,
    node: Option<&'a str>,
}

/// The client operations and the nemesis', by invocation.
fn rows(h: &History) -> Vec<Row<'_>> {
    let mut rows: Vec<Row> = h
        .ops
        .iter()
        .map(|op| Row {
            process: op.process.to_string(),
            f: &op.f,
            key: op.key.as_ref(),
            input: &op.input,
            output: op.output.as_ref(),
            outcome: op.outcome,
            call: op.call,
            ret: op.ret,
            call_time: op.call_time,
            ret_time: op.ret_time,
            node: op.node.as_deref(),
        })
        .collect();
    let mut open: Option<usize> = None;
    let mut nemesis = Vec::new();
    for e in h.events.iter().filter(|e| e.process == Process::Nemesis) {
        match (e.kind, open) {
            (EventType::Invoke, _) => {
                open = Some(nemesis.len());
                nemesis.push(Row {
                    process: "nemesis".into(),
                    f: &e.f,
                    key: None,
                    input: &e.value,
                    output: None,
                    outcome: Outcome::Info,
                    call: e.index,
                    ret: None,
                    call_time: e.time,
                    ret_time: None,
                    node: None,
                });
            }
            (kind, Some(i)) => {
                let r: &mut Row = &mut nemesis[i];
                r.output = Some(&e.value);
                r.ret = Some(e.index);
                r.ret_time = e.time;
                r.outcome = match kind {
                    EventType::Ok => Outcome::Ok,
                    EventType::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                open = None;
            }
            _ => {}
        }
    }
    if !nemesis.is_empty() {
        rows.extend(nemesis);
        rows.sort_by_key(|r| r.call);
    }
    rows
}

/// The timeline of a history.
pub struct Timeline {
    /// The JSON described in the module's documentation.
    pub json: String,
    pub rows: usize,
    /// For each event of the history, the row it belongs to (u32::MAX: none).
    pub row_of: Vec<u32>,
}

/// The timeline of `h`.
pub fn data(h: &History) -> Timeline {
    let rows = rows(h);
    let mut row_of = vec![u32::MAX; h.events.len()];
    for (i, r) in rows.iter().enumerate() {
        for e in std::iter::once(r.call).chain(r.ret) {
            if let Some(slot) = row_of.get_mut(e as usize) {
                *slot = i as u32;
            }
        }
    }
    let clock = rows.iter().all(|o| o.call_time.is_some());
    let (mut procs, mut fs, mut keys, mut nodes, mut errors) = (
        Table::new(),
        Table::new(),
        Table::new(),
        Table::new(),
        Table::new(),
    );
    let n = rows.len();
    let mut cols: [String; 9] = Default::default();
    for c in &mut cols {
        c.reserve(n * 3);
        c.push('[');
    }
    let [p, f, k, t, d, o, v, nd, er] = &mut cols;
    let mut last = 0i64;
    for op in &rows {
        push_num(p, procs.id(&op.process));
        push_num(f, fs.id(op.f));
        push_num(k, op.key.map_or(0, |key| 1 + keys.id(&text(key))));
        let (call, ret) = if clock {
            (
                op.call_time.map_or(0, |c| (c / 100_000) as i64),
                op.ret_time.map(|r| (r / 100_000) as i64),
            )
        } else {
            (op.call as i64, op.ret.map(|r| r as i64))
        };
        push_num(t, call - last);
        last = call;
        push_num(d, ret.map_or(-1, |r| r - call));
        push_num(
            o,
            match op.outcome {
                Outcome::Ok => 0,
                Outcome::Fail => 1,
                Outcome::Info => 2,
            },
        );
        push_str(v, &value_words(op.input, op.output));
        push_num(nd, op.node.map_or(0, |x| 1 + nodes.id(x)));
        let err = op
            .ret
            .and_then(|r| h.events.get(r as usize))
            .and_then(|e| e.error.as_ref())
            .map(|e| cut(text(e)));
        push_num(er, err.map_or(0, |e| 1 + errors.id(&e)));
    }
    let mut out = String::with_capacity(cols.iter().map(String::len).sum::<usize>() + 4096);
    out.push('{');
    out.push_str(&format!("\"clock\":{clock},\"n\":{n}"));
    for (name, table) in [
        ("procs", procs),
        ("fs", fs),
        ("keys", keys),
        ("nodes", nodes),
        ("errors", errors),
    ] {
        out.push_str(&format!(
            ",\"{name}\":{}",
            safe_json(&Value::from(table.names))
        ));
    }
    for (name, mut col) in ["p", "f", "k", "t", "d", "o", "v", "nd", "er"]
        .into_iter()
        .zip(cols)
    {
        col.push(']');
        out.push_str(&format!(",\"{name}\":{col}"));
    }
    out.push('}');
    Timeline {
        json: out,
        rows: n,
        row_of,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_tags_cannot_end_the_data_element() {
        let v = Value::String("</script><script>alert(1)</script>&".into());
        let s = safe_json(&v);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }

    #[test]
    fn values_in_words() {
        assert_eq!(value_words(&Value::from(3), None), "3");
        assert_eq!(value_words(&Value::Null, Some(&Value::from(7))), "→ 7");
        assert_eq!(
            value_words(&serde_json::json!([1, 2]), Some(&Value::from(true))),
            "[1,2] → true"
        );
        assert_eq!(value_words(&Value::from(3), Some(&Value::from(3))), "3");
        assert!(value_words(&Value::from("x".repeat(100)), None).ends_with('…'));
    }
}
