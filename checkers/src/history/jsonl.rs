//! The JSON-lines history format of docs/formats.md: a reader and a streaming writer.

use super::{clip, Event, EventType, Process, RecordError};
use serde::Deserialize;
use serde_json::Value;
use std::io::{self, Write};

/// The fields of one line, as written. Unknown fields are ignored so that
/// newer writers stay readable.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default)]
    time: Option<u64>,
    process: Value,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    f: std::borrow::Cow<'a, str>,
    #[serde(default)]
    key: Option<Value>,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

/// Parses one line into an event at position `index`. The error says
/// whether the line is merely cut short (a torn write) or wrong.
pub fn parse_line(line: &str, index: u64) -> Result<Event, RecordError> {
    let l: Line = serde_json::from_str(line).map_err(|e| RecordError {
        // serde_json reports a column; the caller adds file and line.
        message: format!("not a history event: {e}"),
        incomplete: e.is_eof(),
    })?;
    let kind = EventType::parse(&l.kind).ok_or_else(|| {
        RecordError::bad(format!(
            "type must be invoke, ok, fail or info, got {:?}",
            clip(l.kind.as_ref())
        ))
    })?;
    let process = Process::from_value(&l.process).map_err(RecordError::bad)?;
    if l.f.is_empty() {
        return Err(RecordError::bad("f must not be empty"));
    }
    Ok(Event {
        index,
        time: l.time,
        process,
        kind,
        f: l.f.into_owned(),
        key: l.key.filter(|k| !k.is_null()),
        value: l.value,
        node: l.node,
        error: l.error,
    })
}

/// Writes events one line each, flushing after every line so that a killed
/// run leaves a readable file (at worst with a torn last line).
///
/// The writer assigns `index` itself: callers cannot get it wrong.
pub struct HistoryWriter<W: Write> {
    out: W,
    next: u64,
    buf: Vec<u8>,
}

impl<W: Write> HistoryWriter<W> {
    pub fn new(out: W) -> Self {
        HistoryWriter {
            out,
            next: 0,
            buf: Vec::with_capacity(256),
        }
    }

    /// Appends an event; its `index` is replaced by the next index. Returns the index.
    pub fn append(&mut self, event: &Event) -> io::Result<u64> {
        let index = self.next;
        self.buf.clear();
        let mut e = event.clone();
        e.index = index;
        serde_json::to_writer(&mut self.buf, &e).map_err(io::Error::other)?;
        self.buf.push(b'\n');
        // One write per line: a crash tears at most the last line.
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        self.next += 1;
        Ok(index)
    }

    /// How many events have been written.
    pub fn len(&self) -> u64 {
        self.next
    }

    pub fn is_empty(&self) -> bool {
        self.next == 0
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Serialises a whole history to a string of JSON lines (for tests and `--out`).
pub fn to_string(events: &[Event]) -> String {
    let mut w = HistoryWriter::new(Vec::new());
    for e in events {
        // Writing to a Vec cannot fail.
        let _ = w.append(e);
    }
    String::from_utf8(w.into_inner()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let e = Event {
            index: 7,
            time: Some(1203948),
            process: Process::Client(3),
            kind: EventType::Invoke,
            f: "write".into(),
            key: Some(json!("k1")),
            value: json!(17),
            node: None,
            error: None,
        };
        let n = Event {
            index: 0,
            time: Some(1500000),
            process: Process::Nemesis,
            kind: EventType::Info,
            f: "start-partition".into(),
            key: None,
            value: json!({"n1": ["n3", "n4"]}),
            node: None,
            error: None,
        };
        let text = to_string(&[e.clone(), n.clone()]);
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"index":0,"time":1203948,"process":3,"type":"invoke","f":"write","key":"k1","value":17}"#
        );
        let back: Vec<Event> = text
            .lines()
            .enumerate()
            .map(|(i, l)| parse_line(l, i as u64).unwrap())
            .collect();
        assert_eq!(back[0], Event { index: 0, ..e });
        assert_eq!(back[1], Event { index: 1, ..n });
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(parse_line(r#"{"process":-1,"type":"ok","f":"read"}"#, 0)
            .unwrap_err()
            .message
            .contains("process"));
        assert!(parse_line(r#"{"process":1,"type":"done","f":"read"}"#, 0)
            .unwrap_err()
            .message
            .contains("type"));
        assert!(parse_line(r#"{"process":1,"type":"ok"}"#, 0)
            .unwrap_err()
            .message
            .contains("f"));
    }
}
