//! Jepsen's text logs and history.txt: `INFO  jepsen.util - 3 :invoke :write 4`,
//! `0\t:fail\t:cas\t[4 2]\t:value-mismatch` (tab- or space-separated).
//!
//! Each operation line holds a process (an integer or `:nemesis`), a type
//! keyword, an `f` keyword and an optional EDN value, separated by tabs or
//! spaces, after any log prefix; then, after a tab, an optional error column
//! as Jepsen writes it: a keyword or other EDN value, or bare text
//! (`READONLY You can't write against a read only replica.`). Lines without
//! that shape are other log output and are skipped.

use super::edn::{self, Reader};
use super::{clip, Event, EventType, Process, RecordError};
use serde_json::Value;

/// The outcome of reading one line.
pub enum LineResult {
    Event(Event),
    /// Not an operation line.
    Skip,
    /// An operation line whose value does not parse.
    Bad(RecordError),
}

pub fn parse_line(line: &str, index: u64) -> LineResult {
    // Token start offsets, split on ASCII whitespace.
    let mut toks: Vec<(usize, &str)> = Vec::with_capacity(8);
    let mut start = None;
    for (i, c) in line.char_indices() {
        if c == ' ' || c == '\t' {
            if let Some(s) = start.take() {
                toks.push((s, &line[s..i]));
            }
            // Only the first few tokens can hold the operation's head, past
            // any log prefix; the value is read from its offset.
            if toks.len() >= 64 {
                break;
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        toks.push((s, &line[s..]));
    }
    for w in 0..toks.len().saturating_sub(2) {
        let process = match toks[w].1 {
            ":nemesis" => Process::Nemesis,
            t => match t.parse::<u64>() {
                Ok(p) => Process::Client(p),
                Err(_) => continue,
            },
        };
        let Some(kind) = toks[w + 1].1.strip_prefix(':').and_then(EventType::parse) else {
            continue;
        };
        let Some(f) = toks[w + 2].1.strip_prefix(':') else {
            continue;
        };
        if f.is_empty() {
            continue;
        }
        let rest = toks
            .get(w + 3)
            .map(|(off, _)| line[*off..].trim_end())
            .unwrap_or("");
        let read = match value_and_error(rest) {
            // The nemesis' values are shown, never checked: one Clojure
            // printed cut short (`{"n1" :started, ...}`) stays its text.
            Err(e) if process == Process::Nemesis && !e.eof => {
                Ok((Value::String(clip(rest)), None))
            }
            r => r,
        };
        return match read {
            Ok((value, error)) => LineResult::Event(Event {
                index,
                time: None,
                process,
                kind,
                f: f.to_string(),
                key: None,
                value,
                node: None,
                error,
            }),
            Err(e) => LineResult::Bad(RecordError {
                message: format!("bad value {:?}: {}", clip(rest), e.message),
                incomplete: e.eof,
            }),
        };
    }
    LineResult::Skip
}

/// The value column, and the error column after a tab if there is one.
fn value_and_error(rest: &str) -> Result<(Value, Option<Value>), edn::EdnError> {
    let mut r = Reader::new(rest);
    let value = match r.next_form() {
        None => return Ok((Value::Null, None)),
        Some(v) => v?.value,
    };
    let tail = &rest[r.pos()..];
    if tail.trim().is_empty() {
        return Ok((value, None));
    }
    if !tail.starts_with('\t') {
        return Err(edn::EdnError {
            line: 1,
            message: "unexpected text after the value".into(),
            eof: false,
        });
    }
    let text = tail.trim();
    // A keyword or another EDN value as Jepsen prints it; else bare text.
    let error = match edn::parse_one(text) {
        Ok(v) if !v.is_null() => v,
        _ => Value::String(text.to_string()),
    };
    Ok((value, Some(error)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        let LineResult::Event(e) = parse_line("INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]", 0)
        else {
            panic!("not parsed")
        };
        assert_eq!(e.process, Process::Client(3));
        assert_eq!(e.kind, EventType::Invoke);
        assert_eq!(e.value, json!([1, 2]));
        let LineResult::Event(e) = parse_line(
            "2017-01-01 10:00:00,000{GMT}\tINFO\t[jepsen worker 0] jepsen.util: 0 :fail :read :timed-out",
            5,
        ) else {
            panic!("not parsed")
        };
        assert_eq!(
            (e.kind, e.f.as_str(), e.value),
            (EventType::Fail, "read", json!("timed-out"))
        );
        assert!(matches!(
            parse_line("INFO  jepsen.core - Run complete", 0),
            LineResult::Skip
        ));
        assert!(matches!(
            parse_line(":nemesis :info :start nil", 0),
            LineResult::Event(_)
        ));
        assert!(matches!(
            parse_line("1 :ok :read [1", 0),
            LineResult::Bad(RecordError {
                incomplete: true,
                ..
            })
        ));
        assert!(matches!(
            parse_line("1 :ok :read [1] 2", 0),
            LineResult::Bad(RecordError {
                incomplete: false,
                ..
            })
        ));
    }

    /// history.txt as Jepsen writes it: `process type f value [error]`, tab-separated.
    #[test]
    fn history_txt_error_column() {
        let table = [
            (
                "0\t:fail\t:cas\t[4 2]\t:value-mismatch",
                json!([4, 2]),
                Some(json!("value-mismatch")),
            ),
            (
                "1\t:fail\t:write\t1\tREADONLY You can't write against a read only replica.",
                json!(1),
                Some(json!(
                    "READONLY You can't write against a read only replica."
                )),
            ),
            (
                "3\t:fail\t:cas\t[3 [1 1]]\t:precondition",
                json!([3, [1, 1]]),
                Some(json!("precondition")),
            ),
            (
                "7\t:info\t:read\tnil\tCarmine connection error",
                Value::Null,
                Some(json!("Carmine connection error")),
            ),
            ("INFO  jepsen.util - 2\t:ok\t:read\t3", json!(3), None),
            (
                ":nemesis\t:info\t:start\t{\"n1\" :started, \"n2\" :killed, ...}",
                json!("{\"n1\" :started, \"n2\" :killed, ...}"),
                None,
            ),
            (
                ":nemesis\t:info\t:stop\t\"fully connected\"",
                json!("fully connected"),
                None,
            ),
            (
                "4\t:fail\t:write\t2\t{:type :timeout, :node \"n1\"}",
                json!(2),
                Some(json!({"type": "timeout", "node": "n1"})),
            ),
        ];
        for (line, value, error) in table {
            let LineResult::Event(e) = parse_line(line, 0) else {
                panic!("not read: {line}")
            };
            assert_eq!((e.value, e.error), (value, error), "{line}");
        }
    }
}
