//! Jepsen's text logs: `INFO  jepsen.util - 3 :invoke :write 4` (tab- or space-separated).
//!
//! Each operation line holds a process (an integer or `:nemesis`), a type
//! keyword, an `f` keyword and an optional EDN value, separated by tabs or
//! spaces, after any log prefix. Lines without that shape are other log
//! output and are skipped.

use super::{edn, Event, EventType, Process};

/// The outcome of reading one line.
pub enum LineResult {
    Event(Event),
    /// Not an operation line.
    Skip,
    /// An operation line whose value does not parse.
    Bad {
        message: String,
    },
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
        return match edn::parse_one(rest) {
            Ok(value) => LineResult::Event(Event {
                index,
                time: None,
                process,
                kind,
                f: f.to_string(),
                key: None,
                value,
                node: None,
                error: None,
            }),
            Err(e) => LineResult::Bad {
                message: format!("bad value {rest:?}: {}", e.message),
            },
        };
    }
    LineResult::Skip
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
            LineResult::Bad { .. }
        ));
    }
}
