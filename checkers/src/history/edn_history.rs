//! EDN histories: Jepsen's `history.edn` (one op map per line), Knossos data
//! files (one vector or list of op maps, with `;` comments), and Porcupine's
//! kv files (op maps with `:key`, line order is event order). All are a
//! sequence of top-level forms, each an op map, or a vector or list of op maps.

use super::edn::{EdnError, Reader};
use super::{clip, Event, EventType, Process};
use serde_json::Value;

/// What reading produced: events with their source lines, and a warning for a torn end.
pub struct EdnEvents {
    pub events: Vec<(usize, Event)>,
    pub torn: Option<String>,
}

/// The first operation of `text` reads as an operation: the format sniffer's test.
pub fn probe(text: &str) -> Result<(), String> {
    let mut r = Reader::new(text);
    if matches!(r.peek(), Some(b'[') | Some(b'(')) {
        r.bump();
    }
    match r.next_form() {
        None => Err("no operation map".into()),
        Some(Ok(f)) => event_from_map(f.value, 0)
            .map(|_| ())
            .map_err(|m| format!("line {}: {m}", f.line)),
        Some(Err(e)) => Err(format!("line {}: {}", e.line, e.message)),
    }
}

/// Reads every op map. `Err` carries (line, message).
///
/// A record that the input ends inside is a torn write, skipped with a
/// warning, only when it starts on the last line and the text does not end
/// in a newline; anywhere else an unclosed bracket or string is an error
/// naming the line the record starts on (else one early `{` would swallow
/// the rest of the file).
pub fn read(text: &str) -> Result<EdnEvents, (usize, String)> {
    let last_line = if text.is_empty() || text.ends_with('\n') {
        None
    } else {
        Some(text.bytes().filter(|&b| b == b'\n').count() + 1)
    };
    let mut r = Reader::new(text);
    let mut events = Vec::new();
    let mut torn = None;
    // One record: Ok(false) when it is torn and reading must stop.
    let mut record = |r: &mut Reader<'_>, events: &mut Vec<(usize, Event)>| {
        let start = r.line();
        match r.next_form() {
            None => Ok(true),
            Some(Ok(f)) => {
                let index = events.len() as u64;
                let e = event_from_map(f.value, index).map_err(|m| (f.line, m))?;
                events.push((f.line, e));
                Ok(true)
            }
            Some(Err(e)) if e.eof && last_line == Some(start) => {
                torn = Some(torn_msg(&e));
                Ok(false)
            }
            Some(Err(e)) if e.eof => Err((
                start,
                format!(
                    "the operation starting here is never closed ({})",
                    e.message
                ),
            )),
            Some(Err(e)) => Err((e.line, e.message)),
        }
    };
    'top: while let Some(b) = r.peek() {
        if b == b'[' || b == b'(' {
            let (close, what) = if b == b'[' {
                (b']', "vector")
            } else {
                (b')', "list")
            };
            let open = r.line();
            r.bump();
            loop {
                match r.peek() {
                    None => {
                        return Err((
                            open,
                            format!("the history's {what} opened here is never closed"),
                        ))
                    }
                    Some(c) if c == close => {
                        r.bump();
                        continue 'top;
                    }
                    Some(c @ (b']' | b')' | b'}')) => {
                        return Err((r.line(), format!("unexpected '{}'", c as char)))
                    }
                    Some(_) => {
                        if !record(&mut r, &mut events)? {
                            break 'top;
                        }
                    }
                }
            }
        }
        if !record(&mut r, &mut events)? {
            break;
        }
    }
    Ok(EdnEvents { events, torn })
}

fn torn_msg(e: &EdnError) -> String {
    format!(
        "line {}: the history ends inside an operation ({}); skipped it",
        e.line, e.message
    )
}

fn event_from_map(v: Value, index: u64) -> Result<Event, String> {
    let Value::Object(mut m) = v else {
        return Err(format!(
            "expected an operation map, got {}",
            clip(&v.to_string())
        ));
    };
    let process = match m.get("process") {
        Some(p) => Process::from_value(p)?,
        None => return Err("operation has no :process".into()),
    };
    let kind = match m.get("type") {
        Some(Value::String(t)) => EventType::parse(t).ok_or_else(|| {
            format!(
                ":type must be :invoke, :ok, :fail or :info, got :{}",
                clip(t)
            )
        })?,
        Some(other) => {
            return Err(format!(
                ":type must be a keyword, got {}",
                clip(&other.to_string())
            ))
        }
        None => return Err("operation has no :type".into()),
    };
    let f = match m.remove("f") {
        Some(Value::String(f)) if !f.is_empty() => f,
        Some(other) => {
            return Err(format!(
                ":f must be a keyword, got {}",
                clip(&other.to_string())
            ))
        }
        None => return Err("operation has no :f".into()),
    };
    let time = match m.get("time") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(t) => Some(t),
            None => return Err(format!(":time must be a whole number >= 0, got {n}")),
        },
        Some(other) => {
            return Err(format!(
                ":time must be a number, got {}",
                clip(&other.to_string())
            ))
        }
    };
    let node = match m.remove("node") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    Ok(Event {
        index,
        time,
        process,
        kind,
        f,
        key: m.remove("key").filter(|k| !k.is_null()),
        value: m.remove("value").unwrap_or(Value::Null),
        node,
        error: m.remove("error"),
    })
}

/// Jepsen's independent workloads write `:value [key value]` (history.edn)
/// and `[key value]` (history.txt). When every
/// client event of a history without keys has a two-element vector value, the
/// history is read as independent tuples.
pub(super) fn split_independent(events: &mut [Event]) {
    let clients = || events.iter().filter(|e| e.process != Process::Nemesis);
    let any = clients().next().is_some();
    // A transaction of two micro-ops is not a [key value] tuple.
    if clients().any(|e| e.f == "txn") {
        return;
    }
    let all_tuples =
        clients().all(|e| e.key.is_none() && matches!(&e.value, Value::Array(a) if a.len() == 2));
    if !(any && all_tuples) {
        return;
    }
    for e in events.iter_mut() {
        if e.process == Process::Nemesis {
            continue;
        }
        if let Value::Array(a) = std::mem::take(&mut e.value) {
            let mut a = a.into_iter();
            e.key = a.next();
            e.value = a.next().unwrap_or(Value::Null);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn knossos_vector_with_tuples() {
        let text = "[{:process 0, :type :invoke, :f :read, :value [5 nil]}\n {:process 0, :type :ok, :f :read, :value [5 3]}\n {:process :nemesis, :type :info, :f :start, :value nil}]";
        let r = read(text).unwrap();
        assert!(r.torn.is_none());
        assert_eq!(r.events.len(), 3);
        let mut events: Vec<Event> = r.events.iter().map(|(_, e)| e.clone()).collect();
        split_independent(&mut events);
        assert_eq!(r.events[1].0, 2);
        assert_eq!(events[1].key, Some(json!(5)));
        assert_eq!(events[1].value, json!(3));
    }

    #[test]
    fn torn_and_bad() {
        let r = read("{:process 0, :type :invoke, :f :read}\n{:process 0, :type :ok").unwrap();
        assert_eq!(r.events.len(), 1);
        assert!(r.torn.is_some());
        let e =
            read("{:process 0, :type :invoke, :f :read}\n{:process 0, :type :done, :f :read}\n")
                .err()
                .unwrap();
        assert_eq!(e.0, 2);
        assert!(e.1.contains(":type"));
    }
}
