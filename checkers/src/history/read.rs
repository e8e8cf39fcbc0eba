//! Format sniffing and the one entry point for reading any history.

use super::{edn_history, jepsen_log, jsonl, Event, History, HistoryBuilder};
use std::fmt;
use std::io::BufRead;

/// The history formats `shakedown check --format` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Auto,
    Jsonl,
    /// Jepsen's history.edn, Knossos data files, Porcupine kv files.
    Edn,
    JepsenLog,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "auto" => Format::Auto,
            "jsonl" => Format::Jsonl,
            "edn" => Format::Edn,
            "jepsen-log" => Format::JepsenLog,
            _ => return None,
        })
    }

    /// Guesses the format from the first significant characters.
    pub fn sniff(text: &str) -> Format {
        let mut it = text
            .bytes()
            .filter(|b| !b.is_ascii_whitespace() && *b != b',');
        match it.next() {
            None => Format::Jsonl,
            Some(b'{') => match it.next() {
                Some(b'"') | Some(b'}') => Format::Jsonl,
                _ => Format::Edn,
            },
            Some(b'[') | Some(b'#') | Some(b';') => Format::Edn,
            _ => Format::JepsenLog,
        }
    }
}

/// A history that cannot be read. Names the file and, where known, the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ReadError {}

/// A history read from text, with the format used and any warnings.
#[derive(Debug)]
pub struct Parsed {
    pub history: History,
    pub format: Format,
    /// Source line of each event, by event index.
    pub lines: Vec<usize>,
    pub warnings: Vec<String>,
}

/// Reads a history. `file` is only used in messages.
///
/// A torn last line (no trailing newline, does not parse) is skipped with a
/// warning; anything else malformed is an error naming the line.
pub fn read_history(file: &str, text: &str, format: Format) -> Result<Parsed, ReadError> {
    let format = match format {
        Format::Auto => Format::sniff(text),
        f => f,
    };
    let err = |line: Option<usize>, message: String| ReadError {
        file: file.to_string(),
        line,
        message,
    };
    let mut warnings = Vec::new();
    let (events, lines): (Vec<Event>, Vec<usize>) = match format {
        Format::Edn => {
            let r = edn_history::read(text).map_err(|(l, m)| err(Some(l), m))?;
            warnings.extend(r.torn);
            r.events.into_iter().map(|(l, e)| (e, l)).unzip()
        }
        Format::Jsonl | Format::JepsenLog | Format::Auto => {
            let torn_at = torn_line(text);
            let mut events = Vec::new();
            let mut lines = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let lineno = n + 1;
                if line.trim().is_empty() {
                    continue;
                }
                let index = events.len() as u64;
                let parsed = if format == Format::Jsonl {
                    jsonl::parse_line(line, index).map(Some)
                } else {
                    match jepsen_log::parse_line(line, index) {
                        jepsen_log::LineResult::Event(e) => Ok(Some(e)),
                        jepsen_log::LineResult::Skip => Ok(None),
                        jepsen_log::LineResult::Bad { message } => Err(message),
                    }
                };
                match parsed {
                    Ok(Some(e)) => {
                        events.push(e);
                        lines.push(lineno);
                    }
                    Ok(None) => {}
                    Err(m) if Some(lineno) == torn_at => {
                        warnings.push(format!("line {lineno}: torn last line skipped ({m})"))
                    }
                    Err(m) => return Err(err(Some(lineno), m)),
                }
            }
            (events, lines)
        }
    };
    let history = History::from_events(events).map_err(|e| {
        let line = lines.get(e.index as usize).copied();
        err(line, e.message)
    })?;
    Ok(Parsed {
        history,
        format,
        lines,
        warnings,
    })
}

/// Reads a history from a stream. JSON lines are parsed as they arrive, so
/// a large history is never held as text; other formats are read whole.
/// Without `keep_events`, `history.events` stays empty (enough for checking).
pub fn read_history_from(
    file: &str,
    mut input: impl BufRead,
    format: Format,
    keep_events: bool,
) -> Result<Parsed, ReadError> {
    let err = |line: Option<usize>, message: String| ReadError {
        file: file.to_string(),
        line,
        message,
    };
    let io = |e: std::io::Error| err(None, format!("cannot read: {e}"));
    let format = match format {
        Format::Auto => {
            let head = input.fill_buf().map_err(io)?;
            let n = head.len().min(4096);
            Format::sniff(&String::from_utf8_lossy(&head[..n]))
        }
        f => f,
    };
    if format != Format::Jsonl {
        let mut text = String::new();
        input
            .read_to_string(&mut text)
            .map_err(|e| err(None, format!("cannot read: {e}")))?;
        let mut p = read_history(file, &text, format)?;
        if !keep_events {
            p.history.events = Vec::new();
        }
        return Ok(p);
    }
    let mut builder = HistoryBuilder::new(keep_events);
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Whole lines are parsed a chunk at a time, on every core, then paired in order.
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut first_line = 1usize;
    let mut eof = false;
    // How much to hold before cutting at the last newline; doubles for a
    // line longer than that.
    let mut want = CHUNK;
    while !eof {
        while buf.len() < want {
            let got = input.fill_buf().map_err(io)?;
            if got.is_empty() {
                eof = true;
                break;
            }
            let take = got.len().min(want - buf.len());
            buf.extend_from_slice(&got[..take]);
            input.consume(take);
        }
        let cut = if eof {
            buf.len()
        } else {
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => {
                    want *= 2;
                    continue;
                }
            }
        };
        want = CHUNK;
        let text = match std::str::from_utf8(&buf[..cut]) {
            Ok(t) => t,
            Err(e) => {
                let line = first_line
                    + buf[..e.valid_up_to()]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count();
                return Err(err(Some(line), "not valid UTF-8".into()));
            }
        };
        let chunk_lines: Vec<(usize, &str)> = text
            .split_inclusive('\n')
            .enumerate()
            .map(|(i, l)| (first_line + i, l))
            .collect();
        first_line += chunk_lines.len();
        let parsed = parse_lines(&chunk_lines, threads);
        let last = chunk_lines.last().map(|(n, _)| *n);
        for ((lineno, raw), result) in chunk_lines.iter().zip(parsed) {
            match result {
                None => {}
                Some(Ok(mut e)) => {
                    e.index = builder.len();
                    builder.push(e).map_err(|e| err(Some(*lineno), e.message))?;
                    lines.push(*lineno);
                }
                // Only the very last line can lack its newline: a torn write.
                Some(Err(m)) if eof && Some(*lineno) == last && !raw.ends_with('\n') => {
                    warnings.push(format!("line {lineno}: torn last line skipped ({m})"));
                }
                Some(Err(m)) => return Err(err(Some(*lineno), m)),
            }
        }
        buf.drain(..cut);
    }
    Ok(Parsed {
        history: builder.finish(),
        format,
        lines,
        warnings,
    })
}

/// Bytes of history parsed at a time.
const CHUNK: usize = 8 << 20;

/// Parses lines on `threads` threads; `None` for blank lines.
fn parse_lines(lines: &[(usize, &str)], threads: usize) -> Vec<Option<Result<Event, String>>> {
    let one = |l: &str| {
        let l = l.trim_end_matches(['\n', '\r']);
        if l.trim().is_empty() {
            None
        } else {
            Some(jsonl::parse_line(l, 0))
        }
    };
    if threads <= 1 || lines.len() < 1024 {
        return lines.iter().map(|(_, l)| one(l)).collect();
    }
    let per = lines.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(per)
            .map(|part| s.spawn(move || part.iter().map(|(_, l)| one(l)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// The line number of the last line if the text does not end with a newline.
fn torn_line(text: &str) -> Option<usize> {
    if text.is_empty() || text.ends_with('\n') {
        return None;
    }
    Some(text.lines().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(Format::sniff("{\"index\":0}"), Format::Jsonl);
        assert_eq!(Format::sniff("  {:process 0}"), Format::Edn);
        assert_eq!(Format::sniff("[{:process 0}]"), Format::Edn);
        assert_eq!(
            Format::sniff("INFO  jepsen.util - 1\t:invoke"),
            Format::JepsenLog
        );
        assert_eq!(Format::sniff(""), Format::Jsonl);
    }

    #[test]
    fn torn_last_line_is_a_warning_but_a_bad_middle_line_is_an_error() {
        let ok = r#"{"process":0,"type":"invoke","f":"read","value":null}"#;
        let torn = format!("{ok}\n{{\"process\":0,\"ty");
        let p = read_history("h.jsonl", &torn, Format::Auto).unwrap();
        assert_eq!(p.history.events.len(), 1);
        assert_eq!(p.warnings.len(), 1);
        let bad = format!("{ok}\n{{\"process\":0,\"ty\n{ok}\n");
        let e = read_history("h.jsonl", &bad, Format::Auto).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().starts_with("h.jsonl:2: "), "{e}");
    }

    #[test]
    fn pairing_errors_name_the_line() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n";
        let e = read_history("x", text, Format::Jsonl).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("outstanding"), "{}", e.message);
    }
}
