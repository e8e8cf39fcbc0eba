//! Format sniffing and the one entry point for reading any history.
//!
//! Nothing unread is ever a history: a format is chosen only if the file's
//! first records parse under it, and a file from which no client operation
//! was read is an error, never an empty (valid) history.

use super::{clip, edn_history, jepsen_log, jsonl, Event, History, HistoryBuilder, RecordError};
use std::fmt;
use std::io::BufRead;

/// The longest record (line) any reader accepts: past it the input is
/// refused, so an endless line (`/dev/zero`) ends promptly.
pub const MAX_RECORD: usize = 64 << 20;

/// The history formats `shakedown check --format` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Auto,
    Jsonl,
    /// Jepsen's history.edn, Knossos data files, Porcupine kv files.
    Edn,
    /// Jepsen's text logs and history.txt.
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

    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Jsonl => "jsonl",
            Format::Edn => "edn",
            Format::JepsenLog => "jepsen-log",
        }
    }

    /// The first of jsonl, edn and jepsen-log under which the text's first
    /// records parse; if none does, what each said.
    pub fn sniff(text: &str) -> Result<Format, String> {
        if text.trim().is_empty() {
            return Err("the file is empty: no operation was read".into());
        }
        let mut tried = Vec::new();
        for (f, probe) in [
            (Format::Jsonl, probe_jsonl as fn(&str) -> Result<(), String>),
            (Format::Edn, edn_history::probe),
            (Format::JepsenLog, probe_log),
        ] {
            match probe(text) {
                Ok(()) => return Ok(f),
                Err(m) => tried.push(format!("as {}, {}", f.name(), clip(&m))),
            }
        }
        Err(format!(
            "not a history in any format read (tried {})",
            tried.join("; ")
        ))
    }
}

/// The first non-blank line is a JSON-lines event. Later lines are the
/// reader's business: a bad one is an error naming its line.
fn probe_jsonl(text: &str) -> Result<(), String> {
    for (n, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        return jsonl::parse_line(line, 0)
            .map(|_| ())
            .map_err(|e| format!("line {}: {}", n + 1, e.message));
    }
    Err("no event".into())
}

/// The first operation line of a log reads.
fn probe_log(text: &str) -> Result<(), String> {
    for (n, line) in text.lines().enumerate() {
        match jepsen_log::parse_line(line, 0) {
            jepsen_log::LineResult::Event(_) => return Ok(()),
            jepsen_log::LineResult::Skip => {}
            jepsen_log::LineResult::Bad(e) => return Err(format!("line {}: {}", n + 1, e.message)),
        }
    }
    Err("no line of the form PROCESS :TYPE :F VALUE".into())
}

/// A carriage return not followed by a line feed: old Mac line ends.
fn has_bare_cr(b: &[u8]) -> bool {
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'\r' && b.get(i + 1) != Some(&b'\n'))
}

/// A history that cannot be read. Names the file and, where known, the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl ReadError {
    /// The input was read, but no client operation was in it.
    pub fn nothing_read(&self) -> bool {
        self.line.is_none() && self.message.starts_with("no client operation was read")
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages clip what they echo; this bounds the rest.
        let m = if self.message.len() > 2000 {
            clip(&self.message)
        } else {
            self.message.clone()
        };
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, m),
            None => write!(f, "{}: {}", self.file, m),
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
/// A byte-order mark is skipped; LF, CRLF and CR line ends read. A torn last
/// record (the text does not end in a newline and the record is incomplete)
/// is skipped with a warning; anything else malformed is an error naming the
/// line, and so is a text from which no client operation was read.
pub fn read_history(file: &str, text: &str, format: Format) -> Result<Parsed, ReadError> {
    let err = |line: Option<usize>, message: String| ReadError {
        file: file.to_string(),
        line,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let normalized;
    let text = if has_bare_cr(text.as_bytes()) {
        normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        normalized.as_str()
    } else {
        text
    };
    let format = match format {
        Format::Auto => Format::sniff(text).map_err(|m| err(None, m))?,
        f => f,
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
                if line.len() > MAX_RECORD {
                    return Err(err(Some(lineno), too_long()));
                }
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
                        jepsen_log::LineResult::Bad(e) => Err(e),
                    }
                };
                match parsed {
                    Ok(Some(e)) => {
                        events.push(e);
                        lines.push(lineno);
                    }
                    Ok(None) => {}
                    Err(e) if Some(lineno) == torn_at && e.incomplete => warnings.push(format!(
                        "line {lineno}: torn last line skipped ({})",
                        e.message
                    )),
                    Err(e) => return Err(err(Some(lineno), e.message)),
                }
            }
            (events, lines)
        }
    };
    let mut events = events;
    if matches!(format, Format::Edn | Format::JepsenLog) {
        edn_history::split_independent(&mut events);
    }
    let history = History::from_events(events).map_err(|e| {
        let line = lines.get(e.index as usize).copied();
        err(line, e.message)
    })?;
    if history.ops.is_empty() {
        return Err(err(None, nothing_read(format)));
    }
    Ok(Parsed {
        history,
        format,
        lines,
        warnings,
    })
}

fn nothing_read(format: Format) -> String {
    format!(
        "no client operation was read (read as {}): nothing to check",
        format.name()
    )
}

fn too_long() -> String {
    format!("a line longer than {} MiB: not a history", MAX_RECORD >> 20)
}

/// Reads the whole input as text: refuses a NUL byte, invalid UTF-8 and a
/// line longer than [`MAX_RECORD`] as soon as they arrive, so endless or
/// binary input ends promptly.
fn read_text(file: &str, input: &mut impl BufRead) -> Result<String, ReadError> {
    let err = |line: usize, message: String| ReadError {
        file: file.to_string(),
        line: Some(line),
        message,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut checked = 0;
    let mut line = 1;
    let mut run = 0usize;
    loop {
        let got = input.fill_buf().map_err(|e| ReadError {
            file: file.to_string(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        if got.is_empty() {
            break;
        }
        for &b in got {
            match b {
                0 => return Err(err(line, "a NUL byte: not a text history".into())),
                b'\n' => {
                    line += 1;
                    run = 0;
                }
                b'\r' => run = 0,
                _ => {
                    run += 1;
                    if run > MAX_RECORD {
                        return Err(err(line, too_long()));
                    }
                }
            }
        }
        let n = got.len();
        buf.extend_from_slice(got);
        input.consume(n);
        match std::str::from_utf8(&buf[checked..]) {
            Ok(_) => checked = buf.len(),
            // An incomplete character at the end may finish in the next read.
            Err(e) if e.error_len().is_none() => checked += e.valid_up_to(),
            Err(e) => {
                let at = checked + e.valid_up_to();
                let l = 1 + buf[..at].iter().filter(|&&b| b == b'\n').count();
                return Err(err(l, "not valid UTF-8".into()));
            }
        }
    }
    String::from_utf8(buf).map_err(|_| {
        err(
            line,
            "not valid UTF-8 (the input ends inside a character)".into(),
        )
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
    let head = input.fill_buf().map_err(io)?;
    if head.starts_with(b"\xef\xbb\xbf") {
        input.consume(3);
    }
    let head = input.fill_buf().map_err(io)?;
    // Stream only JSON lines with LF or CRLF ends; everything else (another
    // format, CR ends, a first line longer than the buffer) reads whole.
    let stream = !has_bare_cr(head)
        && match format {
            Format::Jsonl => true,
            Format::Auto => {
                let cut = head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let head = &head[..cut];
                let valid = match std::str::from_utf8(head) {
                    Ok(t) => t,
                    Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
                };
                probe_jsonl(valid).is_ok()
            }
            _ => false,
        };
    if !stream {
        let text = read_text(file, &mut input)?;
        let mut p = read_history(file, &text, format)?;
        if !keep_events {
            p.history.events = Vec::new();
        }
        return Ok(p);
    }
    let format = Format::Jsonl;
    let mut builder = HistoryBuilder::new(keep_events);
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for_each_chunk(file, &mut input, |chunk_lines, eof| {
        let parsed: Vec<Option<Result<Event, RecordError>>> =
            in_parts(chunk_lines, threads, |part| {
                part.iter().map(|(_, l)| parse_one(l)).collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect();
        let last = chunk_lines.last().map(|(n, _)| *n);
        for ((lineno, raw), result) in chunk_lines.iter().zip(parsed) {
            if raw.len() > MAX_RECORD {
                return Err(err(Some(*lineno), too_long()));
            }
            match result {
                None => {}
                Some(Ok(mut e)) => {
                    e.index = builder.len();
                    builder.push(e).map_err(|e| err(Some(*lineno), e.message))?;
                    lines.push(*lineno);
                }
                // Only the very last line can lack its newline: a torn write.
                Some(Err(e))
                    if eof && Some(*lineno) == last && !raw.ends_with('\n') && e.incomplete =>
                {
                    warnings.push(format!(
                        "line {lineno}: torn last line skipped ({})",
                        e.message
                    ));
                }
                Some(Err(e)) => return Err(err(Some(*lineno), e.message)),
            }
        }
        Ok(())
    })?;
    let history = builder.finish();
    if history.ops.is_empty() {
        return Err(err(None, nothing_read(format)));
    }
    Ok(Parsed {
        history,
        format,
        lines,
        warnings,
    })
}

/// Bytes of history parsed at a time.
const CHUNK: usize = 8 << 20;

/// Reads JSON lines a chunk of whole lines at a time (about [`CHUNK`]
/// bytes; more for a longer line, up to [`MAX_RECORD`]), refusing invalid
/// UTF-8 as it arrives, and hands `each` the chunk's lines (numbered from 1,
/// each with its line end) and whether the input has ended. Shared by the
/// streaming readers, so a large history is never held as text.
pub(crate) fn for_each_chunk(
    file: &str,
    input: &mut impl BufRead,
    mut each: impl FnMut(&[(usize, &str)], bool) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let err = |line: Option<usize>, message: String| ReadError {
        file: file.to_string(),
        line,
        message,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut first_line = 1usize;
    let mut eof = false;
    // How much to hold before cutting at the last newline; doubles for a
    // line longer than that, up to MAX_RECORD.
    let mut want = CHUNK;
    while !eof {
        while buf.len() < want {
            let got = input
                .fill_buf()
                .map_err(|e| err(None, format!("cannot read: {e}")))?;
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
                None if want >= MAX_RECORD => return Err(err(Some(first_line), too_long())),
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
        let lines: Vec<(usize, &str)> = text
            .split_inclusive('\n')
            .enumerate()
            .map(|(i, l)| (first_line + i, l))
            .collect();
        first_line += lines.len();
        each(&lines, eof)?;
        buf.drain(..cut);
    }
    Ok(())
}

/// `parse` over `lines` split into one part per thread (in this thread
/// when there are few lines), the parts' results in order. A part whose
/// thread cannot be spawned is parsed here; a panic in a part is raised
/// here, never turned into missing lines.
pub(crate) fn in_parts<'a, T: Send>(
    lines: &'a [(usize, &'a str)],
    threads: usize,
    parse: impl Fn(&'a [(usize, &'a str)]) -> T + Sync,
) -> Vec<T> {
    if threads <= 1 || lines.len() < 1024 {
        return vec![parse(lines)];
    }
    let per = lines.len().div_ceil(threads);
    let parse = &parse;
    std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(per)
            .map(|part| {
                std::thread::Builder::new()
                    .spawn_scoped(s, move || parse(part))
                    .map_err(|_| part)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(part) => parse(part),
            })
            .collect()
    })
}

/// One JSON line parsed; `None` for a blank line.
fn parse_one(l: &str) -> Option<Result<Event, RecordError>> {
    let l = l.trim_end_matches(['\n', '\r']);
    if l.trim().is_empty() {
        None
    } else {
        Some(jsonl::parse_line(l, 0))
    }
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
    fn sniffing_chooses_a_format_only_if_its_records_parse() {
        let jsonl = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n";
        assert_eq!(Format::sniff(jsonl), Ok(Format::Jsonl));
        let edn = "{:process 0, :type :invoke, :f :read}\n";
        assert_eq!(Format::sniff(edn), Ok(Format::Edn));
        assert_eq!(Format::sniff(&format!("[{edn}]")), Ok(Format::Edn));
        assert_eq!(
            Format::sniff(&format!("; a comment\n({edn})")),
            Ok(Format::Edn)
        );
        assert_eq!(
            Format::sniff("Not linearizable. Linearizable prefix was:\nINFO  jepsen.util - 1\t:invoke\t:read\tnil\n"),
            Ok(Format::JepsenLog)
        );
        for bad in ["", " \n", "hello world\n", "{:process 0}", "\0", "[1 2 3]"] {
            let e = Format::sniff(bad).unwrap_err();
            assert!(
                e.contains("empty") || e.contains("tried as jsonl"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn torn_last_line_is_a_warning_but_a_bad_middle_line_is_an_error() {
        let ok = r#"{"process":0,"type":"invoke","f":"read","value":null}"#;
        let torn = format!("{ok}\n{{\"process\":0,\"ty");
        let p = read_history("h.jsonl", &torn, Format::Auto).unwrap();
        assert_eq!(p.history.events.len(), 1);
        assert_eq!(p.warnings.len(), 1);
        let s = read_history_from("h.jsonl", torn.as_bytes(), Format::Auto, true).unwrap();
        assert_eq!(s.warnings.len(), 1);
        let bad = format!("{ok}\n{{\"process\":0,\"ty\n{ok}\n");
        let e = read_history("h.jsonl", &bad, Format::Auto).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().starts_with("h.jsonl:2: "), "{e}");
        // A complete last record with a bad field is an error, torn or not.
        let wrong = format!("{ok}\n{{\"process\":0,\"type\":\"done\",\"f\":\"read\"}}");
        let e = read_history("h.jsonl", &wrong, Format::Auto).unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = read_history_from("h.jsonl", wrong.as_bytes(), Format::Auto, true).unwrap_err();
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn pairing_errors_name_the_line() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n";
        let e = read_history("x", text, Format::Jsonl).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("outstanding"), "{}", e.message);
    }

    #[test]
    fn bom_and_every_line_end_read() {
        let lines = [
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}",
            "{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}",
        ];
        for end in ["\n", "\r\n", "\r"] {
            for bom in ["", "\u{feff}"] {
                let text = format!("{bom}{}{end}", lines.join(end));
                let p = read_history("x", &text, Format::Auto).unwrap();
                assert_eq!(p.history.ops.len(), 1, "{end:?} {bom:?}");
                let s = read_history_from("x", text.as_bytes(), Format::Auto, false).unwrap();
                assert_eq!(s.history.ops.len(), 1, "{end:?} {bom:?}");
            }
        }
    }

    #[test]
    fn binary_and_endless_input_end_promptly() {
        let zeros = std::io::Read::take(std::io::repeat(0), 1 << 40);
        let e =
            read_history_from("z", std::io::BufReader::new(zeros), Format::Edn, false).unwrap_err();
        assert!(e.message.contains("NUL"), "{e}");
        let zeros = std::io::Read::take(std::io::repeat(0), 1 << 40);
        let e = read_history_from("z", std::io::BufReader::new(zeros), Format::Jsonl, false)
            .unwrap_err();
        assert!(e.message.contains("longer than"), "{e}");
        let xs = std::io::Read::take(std::io::repeat(b'x'), 1 << 40);
        let e =
            read_history_from("x", std::io::BufReader::new(xs), Format::Auto, false).unwrap_err();
        assert!(e.message.contains("longer than"), "{e}");
    }
}
