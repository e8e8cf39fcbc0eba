//! A streaming reader from JSON lines straight to [`Txns`], for large
//! histories: no `Value` per event, lines parsed a chunk at a time on every
//! core (the chunking is `history::read`'s, shared with the event reader),
//! then paired and interned in order. Lines it cannot take on its fast
//! path (a nemesis value, a float key) go through the ordinary line parser.

use super::build::{Mop, MopKind, Txn, Txns, NIL};
use super::TxnKind;
use crate::history::read::{for_each_chunk, in_parts};
use crate::history::{jsonl, EventType, Outcome, Process, ReadError};
use rustc_hash::FxHashMap;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;

/// A key or value before interning: an integer below 2^62 as itself, else
/// `TAG | i` for `others[i]`.
const TAG: u64 = 1 << 63;

#[derive(Clone, Copy)]
struct RawMop {
    kind: MopKind,
    key: u64,
    /// Reads: elements in the chunk pool, or `NIL` when unknown.
    len: u32,
    val: u64,
    /// A read that observed one value, not a list.
    scalar: bool,
}

#[derive(Default)]
struct Chunk {
    mops: Vec<RawMop>,
    pool: Vec<u64>,
    others: Vec<Value>,
}

impl Chunk {
    /// Emptied for the next chunk, keeping its memory: a fresh chunk's
    /// buffers would grow (and fault in pages) again every 8 MiB of input.
    fn clear(&mut self) {
        self.mops.clear();
        self.pool.clear();
        self.others.clear();
    }

    fn token(&mut self, v: Value) -> u64 {
        match v.as_u64() {
            Some(u) if u < 1 << 62 => u,
            _ => {
                self.others.push(v);
                (self.others.len() as u64 - 1) | TAG
            }
        }
    }
}

struct Line {
    lineno: usize,
    /// `None` for the nemesis.
    process: Option<u64>,
    kind: EventType,
    time: Option<u64>,
    /// Not a txn: its name, for the error.
    other_f: Option<String>,
    mops: std::ops::Range<u32>,
    /// The value was not a list of micro-ops: why.
    bad: Option<String>,
}

// ---- The fast path: serde visitors writing into the chunk. ----

struct LineSeed<'c>(&'c mut Chunk);

impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
    type Value = (
        Option<Option<u64>>,
        Option<EventType>,
        Option<u64>,
        Option<String>,
        bool,
    );
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = (
        Option<Option<u64>>,
        Option<EventType>,
        Option<u64>,
        Option<String>,
        bool,
    );
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let (mut process, mut kind, mut time, mut other_f, mut is_txn) =
            (None, None, None, None, false);
        while let Some(k) = m.next_key::<Cow<'de, str>>()? {
            match k.as_ref() {
                "process" => {
                    process = Some(match m.next_value::<Value>()? {
                        Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
                        Value::String(s) if s == "nemesis" => None,
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "process must be an integer >= 0 or \"nemesis\", got {other}"
                            )))
                        }
                    })
                }
                "type" => {
                    let t: Cow<str> = m.next_value()?;
                    kind = Some(EventType::parse(&t).ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "type must be invoke, ok, fail or info, got {t:?}"
                        ))
                    })?);
                }
                "f" => {
                    let f: Cow<str> = m.next_value()?;
                    is_txn = f == "txn";
                    if !is_txn {
                        other_f = Some(f.into_owned());
                    }
                }
                "time" => time = m.next_value::<Option<u64>>()?,
                "value" => m.next_value_seed(MopsSeed(&mut *self.0))?,
                _ => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((process, kind, time, other_f, is_txn))
    }
}

struct MopsSeed<'c>(&'c mut Chunk);

impl<'de> DeserializeSeed<'de> for MopsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MopsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of micro-ops")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        while s.next_element_seed(MopSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct MopSeed<'c>(&'c mut Chunk);

impl<'de> DeserializeSeed<'de> for MopSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MopSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a micro-op [f key value]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        let bad = || serde::de::Error::custom("fallback");
        let f: Cow<str> = s.next_element()?.ok_or_else(bad)?;
        let kind = match f.as_ref() {
            "append" => MopKind::Append,
            "w" => MopKind::Write,
            "r" => MopKind::Read,
            _ => return Err(bad()),
        };
        let key: Value = s.next_element()?.ok_or_else(bad)?;
        let key = self.0.token(key);
        let mop = if kind == MopKind::Read {
            let start = self.0.pool.len() as u64;
            let got: Option<ReadVal> = s.next_element_seed(ReadSeed(&mut *self.0))?;
            match got.ok_or_else(bad)? {
                ReadVal::Null => RawMop {
                    kind,
                    key,
                    len: NIL,
                    val: 0,
                    scalar: false,
                },
                ReadVal::List(n) => RawMop {
                    kind,
                    key,
                    len: n,
                    val: start,
                    scalar: false,
                },
                ReadVal::Scalar(v) => RawMop {
                    kind,
                    key,
                    len: 1,
                    val: v,
                    scalar: true,
                },
            }
        } else {
            let v: Value = s.next_element()?.ok_or_else(bad)?;
            let val = self.0.token(v);
            RawMop {
                kind,
                key,
                len: 0,
                val,
                scalar: false,
            }
        };
        if s.next_element::<IgnoredAny>()?.is_some() {
            return Err(bad());
        }
        self.0.mops.push(mop);
        Ok(())
    }
}

enum ReadVal {
    Null,
    List(u32),
    Scalar(u64),
}

struct ReadSeed<'c>(&'c mut Chunk);

impl<'de> DeserializeSeed<'de> for ReadSeed<'_> {
    type Value = ReadVal;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ReadVal, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ReadSeed<'_> {
    type Value = ReadVal;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a read's value")
    }
    fn visit_unit<E>(self) -> Result<ReadVal, E> {
        Ok(ReadVal::Null)
    }
    fn visit_none<E>(self) -> Result<ReadVal, E> {
        Ok(ReadVal::Null)
    }
    fn visit_u64<E>(self, v: u64) -> Result<ReadVal, E> {
        Ok(ReadVal::Scalar(self.0.token(Value::from(v))))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ReadVal, E> {
        Ok(ReadVal::Scalar(self.0.token(Value::from(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<ReadVal, E> {
        Ok(ReadVal::Scalar(self.0.token(Value::from(v))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<ReadVal, A::Error> {
        let mut n = 0u32;
        while let Some(v) = s.next_element::<U64OrValue>()? {
            let t = match v {
                U64OrValue::U(u) if u < 1 << 62 => u,
                U64OrValue::U(u) => self.0.token(Value::from(u)),
                U64OrValue::V(v) => self.0.token(v),
            };
            self.0.pool.push(t);
            n += 1;
        }
        Ok(ReadVal::List(n))
    }
}

enum U64OrValue {
    U(u64),
    V(Value),
}

impl<'de> serde::Deserialize<'de> for U64OrValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = U64OrValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list element")
            }
            fn visit_u64<E>(self, v: u64) -> Result<U64OrValue, E> {
                Ok(U64OrValue::U(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<U64OrValue, E> {
                Ok(U64OrValue::V(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<U64OrValue, E> {
                Ok(U64OrValue::V(Value::from(v)))
            }
        }
        d.deserialize_any(V)
    }
}

// ---- The quickest path: the usual shape of a txn line, by hand. ----

/// A cursor over one line for [`quick`]. Every method answers `None` for
/// anything outside the plain shape (escapes, floats, negative numbers,
/// nested values under unknown keys), and the line then takes the serde path,
/// which gives the same answer or the error.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes or control characters.
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let s = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        self.i += 1;
        Some(s)
    }

    /// A non-negative integer as JSON writes it, fitting a u64.
    fn uint(&mut self) -> Option<u64> {
        self.ws();
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.b.get(self.i) {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let len = self.i - start;
        let leading_zero = len > 1 && self.b[start] == b'0';
        let more = matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'));
        (len > 0 && !leading_zero && !more).then_some(n)
    }

    fn word(&mut self, w: &[u8]) -> Option<()> {
        self.ws();
        self.b[self.i..].starts_with(w).then(|| self.i += w.len())
    }

    /// A key, an appended value or a read's scalar: its token.
    fn token(&mut self, c: &mut Chunk) -> Option<u64> {
        if self.peek()? == b'"' {
            let s = self.str()?;
            return Some(c.token(Value::from(s)));
        }
        let u = self.uint()?;
        (u < 1 << 62).then_some(u)
    }

    /// An unknown key's value: a number, string, null or boolean.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.str().map(drop),
            b'n' => self.word(b"null"),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            _ => self.uint().map(drop),
        }
    }

    /// A list of micro-ops into the chunk.
    fn mops(&mut self, c: &mut Chunk) -> Option<()> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.mop(c)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn mop(&mut self, c: &mut Chunk) -> Option<()> {
        self.eat(b'[')?;
        let kind = match self.str()? {
            "append" => MopKind::Append,
            "w" => MopKind::Write,
            "r" => MopKind::Read,
            _ => return None,
        };
        self.eat(b',')?;
        let key = self.token(c)?;
        self.eat(b',')?;
        let mop = match (kind, self.peek()?) {
            (MopKind::Read, b'n') => {
                self.word(b"null")?;
                RawMop {
                    kind,
                    key,
                    len: NIL,
                    val: 0,
                    scalar: false,
                }
            }
            (MopKind::Read, b'[') => {
                let start = c.pool.len() as u64;
                self.i += 1;
                if self.eat(b']').is_none() {
                    loop {
                        let t = self.token(c)?;
                        c.pool.push(t);
                        match self.peek()? {
                            b',' => self.i += 1,
                            b']' => {
                                self.i += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                RawMop {
                    kind,
                    key,
                    len: u32::try_from(c.pool.len() as u64 - start).ok()?,
                    val: start,
                    scalar: false,
                }
            }
            (MopKind::Read, _) => RawMop {
                kind,
                key,
                len: 1,
                val: self.token(c)?,
                scalar: true,
            },
            _ => RawMop {
                kind,
                key,
                len: 0,
                val: self.token(c)?,
                scalar: false,
            },
        };
        self.eat(b']')?;
        c.mops.push(mop);
        Some(())
    }
}

/// A client's txn line of the plain shape, parsed by hand into the chunk:
/// (process, type, time). `None` leaves the line to the serde path (the
/// caller drops what this pushed).
fn quick(line: &str, c: &mut Chunk) -> Option<(u64, EventType, Option<u64>)> {
    let mut r = Cur {
        b: line.as_bytes(),
        i: 0,
    };
    let (mut process, mut kind, mut time, mut txn, mut value) = (None, None, None, false, false);
    // Each key once: a repeated one takes the serde path.
    let mut seen_time = false;
    r.eat(b'{')?;
    if r.eat(b'}').is_none() {
        loop {
            let k = r.str()?;
            r.eat(b':')?;
            match k {
                "process" if process.is_none() => process = Some(r.uint()?),
                "type" if kind.is_none() => kind = Some(EventType::parse(r.str()?)?),
                "f" if !txn => {
                    txn = r.str()? == "txn";
                    if !txn {
                        return None;
                    }
                }
                "time" if !seen_time => {
                    seen_time = true;
                    time = match r.peek()? {
                        b'n' => r.word(b"null").map(|_| None)?,
                        _ => Some(r.uint()?),
                    };
                }
                "value" if !value => {
                    value = true;
                    r.mops(c)?;
                }
                "process" | "type" | "f" | "time" | "value" => return None,
                _ => r.skip()?,
            }
            match r.peek()? {
                b',' => r.i += 1,
                b'}' => {
                    r.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    r.ws();
    if r.i != r.b.len() || !txn {
        return None;
    }
    Some((process?, kind?, time))
}

/// Parses one line into the chunk: the fast path first, the ordinary line
/// parser when that fails. `Err` is a message for file:line.
fn parse(line: &str, lineno: usize, c: &mut Chunk) -> Result<Line, String> {
    let (m0, p0, o0) = (c.mops.len(), c.pool.len(), c.others.len());
    if let Some((process, kind, time)) = quick(line, c) {
        return Ok(Line {
            lineno,
            process: Some(process),
            kind,
            time,
            other_f: None,
            mops: m0 as u32..c.mops.len() as u32,
            bad: None,
        });
    }
    c.mops.truncate(m0);
    c.pool.truncate(p0);
    c.others.truncate(o0);
    let mut de = serde_json::Deserializer::from_str(line);
    let fast = LineSeed(&mut *c)
        .deserialize(&mut de)
        .and_then(|r| de.end().map(|_| r));
    if let Ok((Some(process), Some(kind), time, other_f, is_txn)) = fast {
        if is_txn || other_f.is_some() {
            return Ok(Line {
                lineno,
                process,
                kind,
                time,
                other_f,
                mops: m0 as u32..c.mops.len() as u32,
                bad: None,
            });
        }
    }
    c.mops.truncate(m0);
    c.pool.truncate(p0);
    c.others.truncate(o0);
    // The ordinary parser gives the messages everyone else gets.
    let e = jsonl::parse_line(line, 0).map_err(|e| e.message)?;
    let process = match e.process {
        Process::Client(p) => Some(p),
        Process::Nemesis => None,
    };
    let mut bad = None;
    if process.is_some() && e.f == "txn" {
        if let Err(m) = stage(&e.value, c) {
            c.mops.truncate(m0);
            c.pool.truncate(p0);
            bad = Some(m);
        }
    }
    Ok(Line {
        lineno,
        process,
        kind: e.kind,
        time: e.time,
        other_f: (e.f != "txn").then_some(e.f),
        mops: m0 as u32..c.mops.len() as u32,
        bad,
    })
}

/// A value's micro-ops into the chunk, the slow way.
fn stage(v: &Value, c: &mut Chunk) -> Result<(), String> {
    let Value::Array(ops) = v else {
        return Err(format!(
            "a txn's value must be a list of micro-ops, got {v}"
        ));
    };
    for (i, m) in ops.iter().enumerate() {
        let Some([f, k, v]) = m.as_array().map(|a| a.as_slice()) else {
            return Err(format!(
                "micro-op {}: expected [f key value], got {m}",
                i + 1
            ));
        };
        let kind = match f.as_str() {
            Some("append") => MopKind::Append,
            Some("w") => MopKind::Write,
            Some("r") => MopKind::Read,
            _ => return Err(format!("micro-op {}: unknown micro-op {m}", i + 1)),
        };
        let key = c.token(k.clone());
        let mop = match (kind, v) {
            (MopKind::Read, Value::Null) => RawMop {
                kind,
                key,
                len: NIL,
                val: 0,
                scalar: false,
            },
            (MopKind::Read, Value::Array(items)) => {
                let start = c.pool.len() as u64;
                for x in items {
                    let t = c.token(x.clone());
                    c.pool.push(t);
                }
                RawMop {
                    kind,
                    key,
                    len: items.len() as u32,
                    val: start,
                    scalar: false,
                }
            }
            (_, v) => {
                let val = c.token(v.clone());
                let read = kind == MopKind::Read;
                RawMop {
                    kind,
                    key,
                    len: u32::from(read),
                    val,
                    scalar: read,
                }
            }
        };
        c.mops.push(mop);
    }
    Ok(())
}

/// One thread's share of a chunk: its buffers and its lines (or errors with line numbers).
type Parsed = (Chunk, Vec<Result<Line, (usize, String)>>);

/// What the reader produced: the transactions, and warnings (a torn last line).
pub struct ReadTxns {
    pub txns: Txns,
    pub warnings: Vec<String>,
    /// Events read (nemesis included).
    pub events: u64,
}

/// Reads a JSON-lines history of transactions. Errors name the file and line.
pub fn read_jsonl(file: &str, kind: TxnKind, input: impl BufRead) -> Result<ReadTxns, ReadError> {
    read_jsonl_sized(file, kind, input, None)
}

/// One chunk's lines, parsed, on their way to the pairing.
struct Batch {
    parts: Vec<Parsed>,
    eof: bool,
    /// The chunk's last line: its number, and whether it ended in a newline.
    last: Option<(usize, bool)>,
    /// Bytes of text in the chunk.
    bytes: u64,
}

/// The pairing's side of the reader: takes batches in file order.
struct Sink<'s> {
    file: &'s str,
    st: Pairing,
    warnings: Vec<String>,
    spare: &'s std::sync::Mutex<Vec<Chunk>>,
    /// The input's size in bytes, when known: the big vectors are sized
    /// from it after the first chunk.
    size: Option<u64>,
    done: u64,
}

impl Sink<'_> {
    fn take(&mut self, b: Batch) -> Result<(), ReadError> {
        let file = self.file;
        let err = |line: Option<usize>, message: String| ReadError {
            file: file.to_string(),
            line,
            message,
        };
        for (mut c, results) in b.parts {
            for r in results {
                match r {
                    Ok(l) => self.st.line(&c, l).map_err(|(n, m)| err(Some(n), m))?,
                    Err((n, m)) if b.eof && Some((n, false)) == b.last => self
                        .warnings
                        .push(format!("line {n}: torn last line skipped ({m})")),
                    Err((n, m)) => return Err(err(Some(n), m)),
                }
            }
            c.clear();
            self.spare.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        }
        let first = self.done == 0;
        self.done += b.bytes;
        if let (true, Some(size)) = (first, self.size) {
            self.st.presize(self.done, size);
        }
        Ok(())
    }
}

/// As [`read_jsonl`]; `size`, the input's length in bytes when known,
/// sizes the big vectors once (from the first chunk's proportions) instead
/// of growing them. Lines are parsed on every core while the previous
/// chunk's are paired.
pub fn read_jsonl_sized(
    file: &str,
    kind: TxnKind,
    mut input: impl BufRead,
    size: Option<u64>,
) -> Result<ReadTxns, ReadError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Chunks parsed earlier, emptied, for the next parts to fill.
    let spare: std::sync::Mutex<Vec<Chunk>> = Default::default();
    let mut sink = Sink {
        file,
        st: Pairing::new(kind),
        warnings: Vec::new(),
        spare: &spare,
        size,
        done: 0,
    };
    let parse_chunk = |lines: &[(usize, &str)], eof: bool| -> Batch {
        let last = lines.last().map(|(n, l)| (*n, l.ends_with('\n')));
        let bytes = lines.iter().map(|(_, l)| l.len() as u64).sum();
        let parts = in_parts(lines, threads, |part| {
            let mut c = spare
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or_default();
            let mut out = Vec::with_capacity(part.len());
            for &(n, l) in part {
                let l = l.trim_end_matches(['\n', '\r']);
                if l.trim().is_empty() {
                    continue;
                }
                out.push(parse(l, n, &mut c).map_err(|m| (n, m)));
            }
            (c, out)
        });
        Batch {
            parts,
            eof,
            last,
            bytes,
        }
    };
    if threads <= 1 {
        for_each_chunk(file, &mut input, |lines, eof| {
            sink.take(parse_chunk(lines, eof))
        })?;
    } else {
        pipelined(file, &mut input, &parse_chunk, &mut sink)?;
    }
    let Sink { st, warnings, .. } = sink;
    let events = st.events;
    let txns = st.finish();
    if txns.is_empty() {
        return Err(ReadError {
            file: file.to_string(),
            line: None,
            message: "the history has no transactions to check".into(),
        });
    }
    Ok(ReadTxns {
        txns,
        warnings,
        events,
    })
}

/// A chunk's lines (and whether it is the last) to a batch.
type ParseChunk<'p> = dyn Fn(&[(usize, &str)], bool) -> Batch + Sync + 'p;

/// Parses chunks on this thread (and its helpers) while another pairs the
/// previous ones. The first error in file order wins: the pairing's come
/// from chunks before any the reader could not read.
fn pipelined(
    file: &str,
    input: &mut impl BufRead,
    parse_chunk: &ParseChunk,
    sink: &mut Sink<'_>,
) -> Result<(), ReadError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(1);
    std::thread::scope(|s| {
        let pairer = std::thread::Builder::new().spawn_scoped(s, || {
            for b in rx {
                sink.take(b)?;
            }
            Ok::<(), ReadError>(())
        });
        let Ok(pairer) = pairer else {
            // No thread to be had: pair here, after each chunk.
            return Err(None);
        };
        let read = for_each_chunk(file, input, |lines, eof| {
            // A closed channel means the pairing stopped at an error, which
            // it reports.
            tx.send(parse_chunk(lines, eof)).map_err(|_| ReadError {
                file: file.to_string(),
                line: None,
                message: "the pairing stopped".into(),
            })
        });
        drop(tx);
        let paired = pairer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        paired.and(read).map_err(Some)
    })
    .or_else(|e| match e {
        Some(e) => Err(e),
        None => for_each_chunk(file, input, |lines, eof| sink.take(parse_chunk(lines, eof))),
    })
}

/// Pairs invocations with completions and interns, in file order.
struct Pairing {
    txns: Txns,
    /// Outstanding invocation per process: (txn header, its micro-ops).
    open: FxHashMap<u64, (Txn, Vec<Mop>)>,
    /// Emptied micro-op lists of completed invocations, for the next ones.
    spare: Vec<Vec<Mop>>,
    events: u64,
}

impl Pairing {
    fn new(kind: TxnKind) -> Pairing {
        Pairing {
            txns: Txns::new(kind),
            open: FxHashMap::default(),
            spare: Vec::new(),
            events: 0,
        }
    }

    /// Reserves the big vectors for the whole input, `size` bytes, scaled
    /// from what its first `done` bytes held (bounded by what so many bytes
    /// could hold at most). Untouched reserve costs no memory.
    fn presize(&mut self, done: u64, size: u64) {
        if done == 0 || size <= done {
            return;
        }
        let want = |have: usize, most: u64| -> usize {
            let scaled = have as u128 * size as u128 / done as u128;
            let padded = scaled + scaled / 16 + 1024;
            padded.min(most as u128) as usize
        };
        let t = &mut self.txns;
        // A completion line is at least ~40 bytes, a micro-op 10, an element 2.
        let n = want(t.txns.len(), size / 40);
        t.txns.reserve(n.saturating_sub(t.txns.len()));
        let n = want(t.mops.len(), size / 10);
        t.mops.reserve(n.saturating_sub(t.mops.len()));
        let n = want(t.pool.len(), size / 2);
        t.pool.reserve(n.saturating_sub(t.pool.len()));
    }

    fn intern(&mut self, c: &Chunk, tok: u64, key: bool) -> u64 {
        let interner = if key {
            &mut self.txns.keys
        } else {
            &mut self.txns.vals
        };
        if tok & TAG == 0 {
            interner.id(&Value::from(tok))
        } else {
            interner.id(&c.others[(tok & !TAG) as usize])
        }
    }

    /// The line's micro-ops, interned; reads stay unknown unless `ok`.
    fn mops(&mut self, c: &Chunk, l: &Line, ok: bool, out: &mut Vec<Mop>) -> Result<(), String> {
        let kind = self.txns.kind;
        for (i, r) in c.mops[l.mops.start as usize..l.mops.end as usize]
            .iter()
            .enumerate()
        {
            let allowed = matches!(
                (kind, r.kind),
                (TxnKind::ListAppend, MopKind::Append | MopKind::Read)
                    | (TxnKind::RwRegister, MopKind::Write | MopKind::Read)
            );
            if !allowed {
                let names = match kind {
                    TxnKind::ListAppend => "append or r",
                    TxnKind::RwRegister => "w or r",
                };
                return Err(format!(
                    "micro-op {}: {} takes {names} micro-ops",
                    i + 1,
                    kind.name()
                ));
            }
            let key = self.intern(c, r.key, true) as u32;
            let register = kind == TxnKind::RwRegister;
            let mop = match r.kind {
                MopKind::Read if !ok => Mop {
                    kind: r.kind,
                    key,
                    len: NIL,
                    val: 0,
                },
                // A register's null is nil, the initial value.
                MopKind::Read if r.len == NIL && register => Mop {
                    kind: r.kind,
                    key,
                    len: 1,
                    val: super::build::NIL_VALUE,
                },
                MopKind::Read if r.len == NIL => Mop {
                    kind: r.kind,
                    key,
                    len: NIL,
                    val: 0,
                },
                MopKind::Read if register && !r.scalar => {
                    return Err(format!(
                        "micro-op {}: a register read must observe one value, not a list",
                        i + 1
                    ));
                }
                MopKind::Read if !register => {
                    if r.scalar {
                        return Err(format!(
                            "micro-op {}: a list read must observe a list or null",
                            i + 1
                        ));
                    }
                    let start = self.txns.pool.len() as u64;
                    for &t in &c.pool[r.val as usize..r.val as usize + r.len as usize] {
                        let id = if t & TAG == 0 {
                            t
                        } else {
                            self.intern(c, t, false)
                        };
                        self.txns.pool.push(id);
                    }
                    Mop {
                        kind: r.kind,
                        key,
                        len: r.len,
                        val: start,
                    }
                }
                _ => Mop {
                    kind: r.kind,
                    key,
                    len: r.len,
                    val: self.intern(c, r.val, false),
                },
            };
            out.push(mop);
        }
        Ok(())
    }

    fn line(&mut self, c: &Chunk, l: Line) -> Result<(), (usize, String)> {
        let index = self.events;
        self.events += 1;
        let Some(p) = l.process else { return Ok(()) };
        let n = l.lineno;
        if let Some(f) = &l.other_f {
            return Err((
                n,
                format!(
                    "model {} has no operation {f:?}: every operation must be a txn",
                    self.txns.kind.name()
                ),
            ));
        }
        if let Some(m) = &l.bad {
            return Err((n, m.clone()));
        }
        match l.kind {
            EventType::Invoke => {
                if let Some((t, _)) = self.open.get(&p) {
                    return Err((
                        n,
                        format!(
                            "process {p} invokes txn while its txn (event {}) is still outstanding",
                            t.call
                        ),
                    ));
                }
                let mut mops = self.spare.pop().unwrap_or_default();
                self.mops(c, &l, false, &mut mops).map_err(|m| (n, m))?;
                let t = Txn {
                    process: p,
                    outcome: Outcome::Info,
                    mops: 0,
                    call: index,
                    ret: None,
                    call_time: l.time,
                    ret_time: None,
                };
                self.open.insert(p, (t, mops));
            }
            kind => {
                let Some((mut t, inv)) = self.open.remove(&p) else {
                    return Err((
                        n,
                        format!(
                            "process {p} completes txn ({}) without an outstanding invocation",
                            kind.as_str()
                        ),
                    ));
                };
                t.outcome = match kind {
                    EventType::Ok => Outcome::Ok,
                    EventType::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                t.ret = Some(index);
                t.ret_time = l.time;
                t.mops = self.txns.mops.len() as u32;
                if t.outcome == Outcome::Ok {
                    let mut mops = std::mem::take(&mut self.txns.mops);
                    let r = self.mops(c, &l, true, &mut mops);
                    self.txns.mops = mops;
                    r.map_err(|m| (n, m))?;
                } else {
                    self.txns.mops.extend_from_slice(&inv);
                }
                self.txns.txns.push(t);
                let mut inv = inv;
                inv.clear();
                self.spare.push(inv);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Txns {
        let mut open: Vec<(Txn, Vec<Mop>)> = self.open.drain().map(|(_, v)| v).collect();
        open.sort_by_key(|(t, _)| t.call);
        for (mut t, mops) in open {
            t.mops = self.txns.mops.len() as u32;
            self.txns.mops.extend(mops);
            self.txns.txns.push(t);
        }
        self.txns
    }
}
