//! A small EDN reader, enough for Jepsen and Knossos histories.
//!
//! EDN values become JSON values, as docs/formats.md says: keywords and symbols
//! become strings without the colon (`:read` -> `"read"`), `nil` -> `null`,
//! lists, vectors and sets -> arrays, maps -> objects (non-string keys are
//! printed as EDN text), tagged literals (`#inst "..."`,
//! `#jepsen.history.Op{...}`) -> the tagged value, `^meta form` -> the form,
//! `##Inf` and the like -> their text. Characters become one-character strings.
//!
//! The reader tracks line numbers for error messages, limits nesting depth,
//! and never panics on any input.
//!
//! ```
//! use checkers::history::edn::Reader;
//! let mut r = Reader::new("{:f :read, :value nil} [1 2]");
//! let first = r.next_form().unwrap().unwrap();
//! assert_eq!(first.value["f"], "read");
//! assert!(first.value["value"].is_null());
//! ```

use super::clip;
use serde_json::{Map, Number, Value};

/// Nesting deeper than this is rejected rather than risking the stack.
pub const MAX_DEPTH: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdnError {
    pub line: usize,
    pub message: String,
    /// True when the input ended inside a form (a torn file).
    pub eof: bool,
}

/// A top-level form with the line it started on.
#[derive(Clone, Debug, PartialEq)]
pub struct Form {
    pub line: usize,
    pub value: Value,
}

pub struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | b'\x0c')
}

fn is_delim(b: u8) -> bool {
    is_ws(b) || matches!(b, b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';')
}

impl<'a> Reader<'a> {
    pub fn new(s: &'a str) -> Reader<'a> {
        Reader {
            s: s.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// The line the reader is on.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The byte offset the reader is at.
    pub fn pos(&self) -> usize {
        self.pos
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, EdnError> {
        Err(EdnError {
            line: self.line,
            message: message.into(),
            eof: false,
        })
    }

    fn eof_err<T>(&self, what: &str) -> Result<T, EdnError> {
        Err(EdnError {
            line: self.line,
            message: format!("input ends inside {what}"),
            eof: true,
        })
    }

    /// Skips whitespace, commas and comments.
    pub fn skip_ws(&mut self) {
        while let Some(&b) = self.s.get(self.pos) {
            if b == b'\n' {
                self.line += 1;
                self.pos += 1;
            } else if is_ws(b) {
                self.pos += 1;
            } else if b == b';' {
                while let Some(&c) = self.s.get(self.pos) {
                    if c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// Peeks at the next significant byte.
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    /// Consumes one byte (after whitespace); used to step into a top-level vector.
    pub fn bump(&mut self) {
        self.skip_ws();
        if self.pos < self.s.len() {
            self.pos += 1;
        }
    }

    /// Reads the next top-level form, or `None` at the end of input.
    pub fn next_form(&mut self) -> Option<Result<Form, EdnError>> {
        loop {
            self.skip_ws();
            if self.pos >= self.s.len() {
                return None;
            }
            // A discarded form at top level is skipped like a comment.
            if self.s[self.pos..].starts_with(b"#_") {
                self.pos += 2;
                if let Err(e) = self.form(0) {
                    return Some(Err(e));
                }
                continue;
            }
            let line = self.line;
            return Some(self.form(0).map(|value| Form { line, value }));
        }
    }

    fn form(&mut self, depth: usize) -> Result<Value, EdnError> {
        if depth > MAX_DEPTH {
            return self.err(format!("nesting deeper than {MAX_DEPTH}"));
        }
        self.skip_ws();
        let Some(&b) = self.s.get(self.pos) else {
            return self.eof_err("a value");
        };
        match b {
            b'(' => {
                self.pos += 1;
                self.seq(b')', depth).map(Value::Array)
            }
            b'[' => {
                self.pos += 1;
                self.seq(b']', depth).map(Value::Array)
            }
            b'{' => {
                self.pos += 1;
                self.map(depth)
            }
            b'"' => {
                self.pos += 1;
                self.string().map(Value::String)
            }
            b'\\' => {
                self.pos += 1;
                self.character().map(Value::String)
            }
            b'^' => {
                // Metadata annotates the next form; the form is what counts.
                self.pos += 1;
                self.form(depth + 1)?;
                self.form(depth)
            }
            b'#' => {
                self.pos += 1;
                match self.s.get(self.pos) {
                    Some(b'#') => {
                        // A symbolic value: ##Inf, ##-Inf, ##NaN.
                        self.pos += 1;
                        let name = self.token();
                        if name.is_empty() {
                            return self.err("'##' must be followed by Inf, -Inf or NaN");
                        }
                        Ok(Value::String(format!("##{}", clip(name))))
                    }
                    Some(b'{') => {
                        self.pos += 1;
                        self.seq(b'}', depth).map(Value::Array)
                    }
                    Some(b'_') => {
                        self.pos += 1;
                        self.form(depth + 1)?;
                        self.form(depth)
                    }
                    Some(_) => {
                        // A tag: a symbol glued to '#', then the tagged form.
                        let tag = self.token();
                        if tag.is_empty() {
                            return self.err("'#' must be followed by a tag, '{' or '_'");
                        }
                        self.form(depth + 1)
                    }
                    None => self.eof_err("a tagged value"),
                }
            }
            b')' | b']' | b'}' => self.err(format!("unexpected '{}'", b as char)),
            _ => {
                let tok = self.token();
                if tok.is_empty() {
                    return self.err(format!("unexpected byte 0x{b:02x}"));
                }
                self.atom(tok)
            }
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(&b) = self.s.get(self.pos) {
            if is_delim(b) {
                break;
            }
            self.pos += 1;
        }
        // Slicing at ASCII delimiters keeps UTF-8 boundaries intact, but be
        // defensive rather than trusting that.
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }

    fn atom(&self, tok: &str) -> Result<Value, EdnError> {
        match tok {
            "nil" => return Ok(Value::Null),
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            _ => {}
        }
        if let Some(k) = tok.strip_prefix(':') {
            if k.is_empty() {
                return self.err("empty keyword ':'");
            }
            return Ok(Value::String(k.trim_start_matches(':').to_string()));
        }
        let b = tok.as_bytes();
        let numeric = b[0].is_ascii_digit()
            || (b.len() > 1 && (b[0] == b'-' || b[0] == b'+') && b[1].is_ascii_digit());
        if numeric {
            return self.number(tok);
        }
        // A symbol.
        Ok(Value::String(tok.to_string()))
    }

    fn number(&self, tok: &str) -> Result<Value, EdnError> {
        let bad = || EdnError {
            line: self.line,
            message: format!("bad number '{}'", clip(tok)),
            eof: false,
        };
        let body = tok.strip_suffix(['N', 'M']).unwrap_or(tok);
        let body = body.strip_prefix('+').unwrap_or(body);
        if let Ok(i) = body.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = body.parse::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        if let Some((n, d)) = body.split_once('/') {
            let (n, d) = (
                n.parse::<f64>().map_err(|_| bad())?,
                d.parse::<f64>().map_err(|_| bad())?,
            );
            return Number::from_f64(n / d).map(Value::Number).ok_or_else(bad);
        }
        let f = body.parse::<f64>().map_err(|_| bad())?;
        Number::from_f64(f).map(Value::Number).ok_or_else(bad)
    }

    fn seq(&mut self, close: u8, depth: usize) -> Result<Vec<Value>, EdnError> {
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            match self.s.get(self.pos) {
                None => return self.eof_err("a collection"),
                Some(&b) if b == close => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'#') if self.s.get(self.pos + 1) == Some(&b'_') => {
                    self.pos += 2;
                    self.form(depth + 1)?;
                }
                Some(_) => out.push(self.form(depth + 1)?),
            }
        }
    }

    fn map(&mut self, depth: usize) -> Result<Value, EdnError> {
        let items = self.seq(b'}', depth)?;
        if items.len() % 2 != 0 {
            return self.err("a map needs an even number of forms");
        }
        let mut m = Map::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let k = match k {
                Value::String(s) => s,
                other => other.to_string(),
            };
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }

    fn string(&mut self) -> Result<String, EdnError> {
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.pos) else {
                return self.eof_err("a string");
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\n' => {
                    self.line += 1;
                    out.push(b);
                }
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return self.eof_err("a string");
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'u' => {
                            let c = self.hex4()?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return self.err(format!("bad escape '\\{}'", e as char)),
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8(out).or_else(|_| self.err("string is not valid UTF-8"))
    }

    fn hex4(&mut self) -> Result<char, EdnError> {
        let Some(h) = self.s.get(self.pos..self.pos + 4) else {
            return self.eof_err("a \\u escape");
        };
        self.pos += 4;
        let code = std::str::from_utf8(h)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match code.and_then(char::from_u32) {
            Some(c) => Ok(c),
            None => self.err("bad \\u escape"),
        }
    }

    fn character(&mut self) -> Result<String, EdnError> {
        // The first byte after '\' is always part of the character, even a delimiter.
        let start = self.pos;
        let Some(&first) = self.s.get(self.pos) else {
            return self.eof_err("a character");
        };
        if first.is_ascii() {
            self.pos += 1;
        } else {
            // Step over one UTF-8 scalar.
            self.pos += 1;
            while let Some(&b) = self.s.get(self.pos) {
                if b & 0xC0 != 0x80 {
                    break;
                }
                self.pos += 1;
            }
        }
        let rest = self.token();
        let Ok(first) = std::str::from_utf8(&self.s[start..self.pos - rest.len()]) else {
            return self.err("character is not valid UTF-8");
        };
        let name = format!("{first}{rest}");
        Ok(match name.as_str() {
            "newline" => "\n".into(),
            "space" => " ".into(),
            "tab" => "\t".into(),
            "return" => "\r".into(),
            "backspace" => "\u{8}".into(),
            "formfeed" => "\u{c}".into(),
            n if n.len() == 5 && n.starts_with('u') => {
                match u32::from_str_radix(&n[1..], 16)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(c) => c.to_string(),
                    None => return self.err(format!("bad character '\\{}'", clip(n))),
                }
            }
            n if n.chars().count() == 1 => n.to_string(),
            n => return self.err(format!("bad character '\\{}'", clip(n))),
        })
    }
}

/// Parses a single EDN value (used for the value column of Jepsen text logs).
pub fn parse_one(s: &str) -> Result<Value, EdnError> {
    let mut r = Reader::new(s);
    let v = match r.next_form() {
        None => return Ok(Value::Null),
        Some(v) => v?.value,
    };
    if r.peek().is_some() {
        return r.err("unexpected text after the value");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(s: &str) -> Value {
        parse_one(s).unwrap()
    }

    #[test]
    fn atoms_and_collections() {
        assert_eq!(one("nil"), Value::Null);
        assert_eq!(one(":timed-out"), json!("timed-out"));
        assert_eq!(one("[1 -2 3N 1.5M]"), json!([1, -2, 3, 1.5]));
        assert_eq!(one("#{1}"), json!([1]));
        assert_eq!(
            one("(:a \"b\\n\" \\c \\newline)"),
            json!(["a", "b\n", "c", "\n"])
        );
        assert_eq!(one("{:a 1, 2 [3]}"), json!({"a": 1, "2": [3]}));
        assert_eq!(one("#jepsen.history.Op{:f :read}"), json!({"f": "read"}));
        assert_eq!(one("#inst \"2020\""), json!("2020"));
        assert_eq!(one("[1 #_ 2 3]"), json!([1, 3]));
        assert_eq!(one("sym/bol"), json!("sym/bol"));
        assert_eq!(one("1/2"), json!(0.5));
        assert_eq!(one("^{:tag :x} [1 ^:private 2]"), json!([1, 2]));
        assert_eq!(one("##Inf"), json!("##Inf"));
    }

    #[test]
    fn errors_name_lines() {
        let e = parse_one("[1\n2\n)").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(!e.eof);
        let e = parse_one("[1\n2").unwrap_err();
        assert!(e.eof);
        assert!(parse_one("{:a}").is_err());
        assert!(parse_one("1.2.3").is_err());
        assert!(parse_one(&"[".repeat(10_000)).is_err());
        assert!(parse_one("\\").is_err());
        assert!(parse_one("\"\\u12").is_err());
    }
}
