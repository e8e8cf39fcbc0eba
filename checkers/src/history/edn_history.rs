//! EDN histories: Jepsen's `history.edn` (one op map per line), Knossos data
//! files (one vector of op maps), and Porcupine's kv files (op maps with `:key`,
//! line order is event order). All are a sequence of top-level forms, each an
//! op map or a vector of op maps.

use super::edn::{EdnError, Reader};
use super::{Event, EventType, Process};
use serde_json::Value;

/// What reading produced: events with their source lines, and a warning for a torn end.
pub struct EdnEvents {
    pub events: Vec<(usize, Event)>,
    pub torn: Option<String>,
}

/// Reads every op map. `Err` carries (line, message).
pub fn read(text: &str) -> Result<EdnEvents, (usize, String)> {
    let mut r = Reader::new(text);
    let mut events = Vec::new();
    let mut torn = None;
    let push = |events: &mut Vec<(usize, Event)>, line: usize, v: Value| {
        let index = events.len() as u64;
        match event_from_map(v, index) {
            Ok(e) => {
                events.push((line, e));
                Ok(())
            }
            Err(m) => Err((line, m)),
        }
    };
    let torn_msg = |e: &EdnError| {
        format!(
            "line {}: the history ends inside an operation ({}); skipped it",
            e.line, e.message
        )
    };
    'top: while let Some(b) = r.peek() {
        if b == b'[' {
            r.bump();
            loop {
                match r.peek() {
                    None => {
                        torn = Some(format!(
                            "line {}: the history's vector is not closed; read the operations before it",
                            r.line()
                        ));
                        break 'top;
                    }
                    Some(b']') => {
                        r.bump();
                        continue 'top;
                    }
                    Some(_) => match r.next_form() {
                        None => continue 'top,
                        Some(Ok(f)) => push(&mut events, f.line, f.value)?,
                        Some(Err(e)) if e.eof => {
                            torn = Some(torn_msg(&e));
                            break 'top;
                        }
                        Some(Err(e)) => return Err((e.line, e.message)),
                    },
                }
            }
        }
        match r.next_form() {
            None => break,
            Some(Ok(f)) => push(&mut events, f.line, f.value)?,
            Some(Err(e)) if e.eof => {
                torn = Some(torn_msg(&e));
                break;
            }
            Some(Err(e)) => return Err((e.line, e.message)),
        }
    }
    split_independent(&mut events);
    Ok(EdnEvents { events, torn })
}

fn event_from_map(v: Value, index: u64) -> Result<Event, String> {
    let Value::Object(mut m) = v else {
        return Err(format!("expected an operation map, got {v}"));
    };
    let process = match m.get("process") {
        Some(p) => Process::from_value(p)?,
        None => return Err("operation has no :process".into()),
    };
    let kind = match m.get("type") {
        Some(Value::String(t)) => EventType::parse(t)
            .ok_or_else(|| format!(":type must be :invoke, :ok, :fail or :info, got :{t}"))?,
        Some(other) => return Err(format!(":type must be a keyword, got {other}")),
        None => return Err("operation has no :type".into()),
    };
    let f = match m.remove("f") {
        Some(Value::String(f)) if !f.is_empty() => f,
        Some(other) => return Err(format!(":f must be a keyword, got {other}")),
        None => return Err("operation has no :f".into()),
    };
    let time = match m.get("time") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_u64(),
        Some(other) => return Err(format!(":time must be a number, got {other}")),
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

/// Jepsen's independent workloads write `:value [key value]`. When every
/// client event of a history without keys has a two-element vector value, the
/// history is read as independent tuples.
fn split_independent(events: &mut [(usize, Event)]) {
    let clients = || events.iter().filter(|(_, e)| e.process != Process::Nemesis);
    let any = clients().next().is_some();
    // A transaction of two micro-ops is not a [key value] tuple.
    if clients().any(|(_, e)| e.f == "txn") {
        return;
    }
    let all_tuples = clients()
        .all(|(_, e)| e.key.is_none() && matches!(&e.value, Value::Array(a) if a.len() == 2));
    if !(any && all_tuples) {
        return;
    }
    for (_, e) in events.iter_mut() {
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
        assert_eq!(r.events[1].0, 2);
        assert_eq!(r.events[1].1.key, Some(json!(5)));
        assert_eq!(r.events[1].1.value, json!(3));
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
