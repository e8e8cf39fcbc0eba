//! Transactions in compact form: interned keys and values, flat micro-ops.

use super::TxnKind;
use crate::history::{History, Outcome, Process};
use crate::linear::CheckError;
use rustc_hash::FxHashMap;
use serde_json::Value;

/// A read that observed nothing we know of (an invocation's, or a crashed one's).
pub const NIL: u32 = u32::MAX;
/// The id of a register's initial (never written) value, `nil`.
pub const NIL_VALUE: u64 = u64::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MopKind {
    Append,
    Write,
    Read,
}

/// One micro-operation. Appends and writes: `val` is the value's id.
/// List reads: `val` is the start of the list in the pool, `len` its length.
/// Register reads: `val` is the value's id (`NIL_VALUE` for nil), `len` 1.
/// A read whose result is unknown has `len == NIL`.
#[derive(Clone, Copy, Debug)]
pub struct Mop {
    pub kind: MopKind,
    pub key: u32,
    pub len: u32,
    pub val: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct Txn {
    pub process: u64,
    pub outcome: Outcome,
    /// First micro-op in [`Txns::mops`]; they end where the next txn's start.
    pub mops: u32,
    pub call: u64,
    pub ret: Option<u64>,
    pub call_time: Option<u64>,
    pub ret_time: Option<u64>,
}

/// Every transaction of a history, with keys and values interned.
pub struct Txns {
    pub kind: TxnKind,
    pub txns: Vec<Txn>,
    pub mops: Vec<Mop>,
    /// Read lists, concatenated.
    pub pool: Vec<u64>,
    pub keys: Interner,
    pub vals: Interner,
}

/// Values to dense ids and back. Integers in [0, 2^62) are their own id;
/// anything else gets `1 << 63 | n`.
#[derive(Default)]
pub struct Interner {
    ints: FxHashMap<i64, u64>,
    strs: FxHashMap<String, u64>,
    shown: Vec<Value>,
    dense: bool,
}

const TAG: u64 = 1 << 63;

impl Interner {
    /// Keys are always dense (0, 1, 2, ...); values only when not plain integers.
    fn dense() -> Interner {
        Interner {
            dense: true,
            ..Default::default()
        }
    }

    pub fn id(&mut self, v: &Value) -> u64 {
        if !self.dense {
            if let Some(u) = v.as_u64() {
                if u < 1 << 62 {
                    return u;
                }
            }
        }
        let tag = if self.dense { 0 } else { TAG };
        let next = self.shown.len() as u64 | tag;
        let id = match v {
            Value::Number(n) if n.as_i64().is_some() => {
                let i = n.as_i64().unwrap_or(0);
                *self.ints.entry(i).or_insert(next)
            }
            Value::String(s) => match self.strs.get(s.as_str()) {
                Some(&id) => id,
                None => {
                    self.strs.insert(s.clone(), next);
                    next
                }
            },
            other => *self.strs.entry(format!("\0{other}")).or_insert(next),
        };
        if id == next {
            self.shown.push(v.clone());
        }
        id
    }

    /// The value an id stands for.
    pub fn value(&self, id: u64) -> Value {
        if id == NIL_VALUE {
            return Value::Null;
        }
        if !self.dense && id & TAG == 0 {
            return Value::from(id);
        }
        self.shown
            .get((id & !TAG) as usize)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The value as Elle would print it: `x`, `3`, `"a b"`.
    pub fn show(&self, id: u64) -> String {
        match self.value(id) {
            Value::Null => "nil".into(),
            Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s,
            v => v.to_string(),
        }
    }

    pub fn len(&self) -> usize {
        self.shown.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }
}

impl Txns {
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// The micro-op ids of transaction `t`.
    pub fn mop_range(&self, t: usize) -> std::ops::Range<usize> {
        let start = self.txns[t].mops as usize;
        let end = self
            .txns
            .get(t + 1)
            .map_or(self.mops.len(), |n| n.mops as usize);
        start..end
    }

    /// A list read's elements.
    pub fn list(&self, m: &Mop) -> &[u64] {
        if m.len == NIL {
            return &[];
        }
        &self.pool[m.val as usize..m.val as usize + m.len as usize]
    }

    /// A new, empty set.
    pub fn new(kind: TxnKind) -> Txns {
        Txns {
            kind,
            txns: Vec::new(),
            mops: Vec::new(),
            pool: Vec::new(),
            keys: Interner::dense(),
            vals: Interner::default(),
        }
    }

    /// Adds one transaction from its micro-op values: the completion's for an
    /// ok transaction, else the invocation's (reads unknown).
    /// `Err` is a message about the value.
    pub fn push(&mut self, t: Txn, input: &Value, output: Option<&Value>) -> Result<(), String> {
        let src = match (t.outcome, output) {
            (Outcome::Ok, Some(v)) => v,
            (Outcome::Ok, None) => return Err("an ok txn has no completion value".into()),
            _ => input,
        };
        let Value::Array(ops) = src else {
            return Err(format!(
                "a txn's value must be a list of micro-ops, got {}",
                clip(src)
            ));
        };
        let start = self.mops.len();
        let mut t = t;
        t.mops = start as u32;
        let ok = t.outcome == Outcome::Ok;
        let kind = self.kind;
        for (i, m) in ops.iter().enumerate() {
            match self.push_mop(kind, m, ok) {
                Ok(mop) => self.mops.push(mop),
                Err(e) => {
                    self.mops.truncate(start);
                    return Err(format!("micro-op {}: {e}", i + 1));
                }
            }
        }
        self.txns.push(t);
        Ok(())
    }

    fn push_mop(&mut self, kind: TxnKind, m: &Value, ok: bool) -> Result<Mop, String> {
        let Some([f, k, v]) = m.as_array().map(|a| a.as_slice()) else {
            return Err(format!("expected [f key value], got {}", clip(m)));
        };
        let f = f.as_str().unwrap_or("");
        let mk = match (kind, f) {
            (TxnKind::ListAppend, "append") => MopKind::Append,
            (TxnKind::RwRegister, "w") => MopKind::Write,
            (_, "r") => MopKind::Read,
            _ => {
                let allowed = match kind {
                    TxnKind::ListAppend => "append or r",
                    TxnKind::RwRegister => "w or r",
                };
                return Err(format!(
                    "{} takes {allowed} micro-ops, got {}",
                    kind.name(),
                    clip(m)
                ));
            }
        };
        let key = self.keys.id(k) as u32;
        Ok(match mk {
            MopKind::Append | MopKind::Write => Mop {
                kind: mk,
                key,
                len: 0,
                val: self.vals.id(v),
            },
            MopKind::Read if !ok => Mop {
                kind: mk,
                key,
                len: NIL,
                val: 0,
            },
            MopKind::Read => match (kind, v) {
                (TxnKind::ListAppend, Value::Array(items)) => {
                    let start = self.pool.len() as u64;
                    for x in items {
                        let id = self.vals.id(x);
                        self.pool.push(id);
                    }
                    Mop {
                        kind: mk,
                        key,
                        len: items.len() as u32,
                        val: start,
                    }
                }
                (TxnKind::ListAppend, Value::Null) => Mop {
                    kind: mk,
                    key,
                    len: NIL,
                    val: 0,
                },
                (TxnKind::ListAppend, other) => {
                    return Err(format!(
                        "a list read must observe a list or null, got {}",
                        clip(other)
                    ))
                }
                (TxnKind::RwRegister, Value::Null) => Mop {
                    kind: mk,
                    key,
                    len: 1,
                    val: NIL_VALUE,
                },
                (TxnKind::RwRegister, v) => Mop {
                    kind: mk,
                    key,
                    len: 1,
                    val: self.vals.id(v),
                },
            },
        })
    }

    /// Builds the transactions of a paired history. Every client operation
    /// must be a `txn`.
    pub fn from_history(kind: TxnKind, h: &History) -> Result<Txns, CheckError> {
        let mut txns = Txns::new(kind);
        txns.mops.reserve(h.ops.len() * 4);
        for op in &h.ops {
            let Process::Client(p) = op.process else {
                continue;
            };
            if op.f != "txn" {
                return Err(CheckError::Op {
                    event: op.call,
                    message: format!(
                        "model {} has no operation {:?}: every operation must be a txn",
                        kind.name(),
                        op.f
                    ),
                });
            }
            let t = Txn {
                process: p,
                outcome: op.outcome,
                mops: 0,
                call: op.call,
                ret: op.ret,
                call_time: op.call_time,
                ret_time: op.ret_time,
            };
            txns.push(t, &op.input, op.output.as_ref())
                .map_err(|message| CheckError::Op {
                    event: if op.outcome == Outcome::Ok {
                        op.ret.unwrap_or(op.call)
                    } else {
                        op.call
                    },
                    message,
                })?;
        }
        if txns.is_empty() {
            return Err(CheckError::Init(
                "the history has no transactions to check".into(),
            ));
        }
        Ok(txns)
    }

    /// The transaction as written, for messages: `[[append x 1] [r y [1 2]]]`.
    pub fn describe(&self, t: usize) -> String {
        let parts: Vec<String> = self
            .mop_range(t)
            .map(|i| {
                let m = &self.mops[i];
                let k = self.keys.show(m.key as u64);
                match m.kind {
                    MopKind::Append => format!("[append {k} {}]", self.vals.show(m.val)),
                    MopKind::Write => format!("[w {k} {}]", self.vals.show(m.val)),
                    MopKind::Read if m.len == NIL => format!("[r {k} ?]"),
                    MopKind::Read => format!("[r {k} {}]", self.show_read(m)),
                }
            })
            .collect();
        format!("[{}]", parts.join(" "))
    }

    /// A read's observation: `[1 2 3]` (long lists shortened) or a register value.
    pub fn show_read(&self, m: &Mop) -> String {
        if m.len == NIL {
            return "?".into();
        }
        match m.kind {
            MopKind::Read if self.kind == TxnKind::RwRegister => self.vals.show(m.val),
            _ => show_list(&self.vals, self.list(m)),
        }
    }
}

/// `[1 2 3]`, or `[1 2 3 … 30 31 32]` (32 elements) when long.
pub fn show_list(vals: &Interner, items: &[u64]) -> String {
    let s = |xs: &[u64]| xs.iter().map(|&x| vals.show(x)).collect::<Vec<_>>();
    if items.len() <= 10 {
        format!("[{}]", s(items).join(" "))
    } else {
        format!(
            "[{} … {}] ({} elements)",
            s(&items[..4]).join(" "),
            s(&items[items.len() - 3..]).join(" "),
            items.len()
        )
    }
}

fn clip(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..s.floor_char_boundary_compat(80)])
    } else {
        s
    }
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
