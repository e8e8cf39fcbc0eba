//! The register family: `register`, `cas-register` and `kv`.
//!
//! All three are one register per key (the search splits histories by key):
//! they differ only in which operations they accept. `kv` adds Porcupine's
//! string operations, where a key never written reads as the empty string.

use super::val::{Chunk, Text};
use super::{Footprint, Model, ModelError, Val};
use crate::history::{Operation, Outcome};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegOp {
    /// An ok read that returned this value.
    Read(Val),
    Write(Val),
    Cas(Val, Val),
    /// A string read: a missing value reads as "".
    Get(Text),
    Append(Chunk),
}

#[derive(Clone, Debug)]
pub struct Register {
    name: &'static str,
    cas: bool,
    strings: bool,
    init: Val,
}

impl Register {
    /// read and write.
    pub fn plain(init: &Value) -> Register {
        Register {
            name: "register",
            cas: false,
            strings: false,
            init: Val::from_json(init),
        }
    }

    /// read, write and cas.
    pub fn cas(init: &Value) -> Register {
        Register {
            name: "cas-register",
            cas: true,
            strings: false,
            init: Val::from_json(init),
        }
    }

    /// read, write, cas, get, put, append.
    pub fn kv(init: &Value) -> Register {
        Register {
            name: "kv",
            cas: true,
            strings: true,
            init: Val::from_json(init),
        }
    }

    fn unknown(&self, f: &str) -> ModelError {
        let ops = match (self.cas, self.strings) {
            (false, _) => "read and write",
            (true, false) => "read, write and cas",
            (true, true) => "read, write, cas, get, put and append",
        };
        let hint = if f == "cas" {
            " (use --model cas-register or kv)"
        } else {
            ""
        };
        ModelError::new(format!(
            "model {} has no operation {f:?}: it knows {ops}{hint}",
            self.name
        ))
    }
}

fn string_arg<'v>(op: &Operation, v: &'v Value) -> Result<&'v str, ModelError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(ModelError::new(format!(
            "{} needs a string value, got {other}",
            op.f
        ))),
    }
}

impl Model for Register {
    type State = Val;
    type Op = RegOp;

    fn name(&self) -> &'static str {
        self.name
    }

    fn init(&self) -> Val {
        self.init.clone()
    }

    fn prepare(&self, op: &Operation) -> Result<Option<RegOp>, ModelError> {
        let f = op.f.as_str();
        let known = match f {
            "read" | "write" => true,
            "cas" => self.cas,
            "get" | "put" | "append" => self.strings,
            _ => false,
        };
        if !known {
            return Err(self.unknown(f));
        }
        // A failed operation did not take effect. Knossos removes them too.
        if op.outcome == Outcome::Fail {
            return Ok(None);
        }
        let completed = op.outcome == Outcome::Ok;
        Ok(Some(match f {
            // A read with an unknown result constrains nothing.
            "read" | "get" if !completed => return Ok(None),
            "read" => RegOp::Read(Val::from_json(op.output.as_ref().unwrap_or(&Value::Null))),
            "get" => {
                let out = op.output.as_ref().unwrap_or(&Value::Null);
                match out {
                    Value::Null => RegOp::Get(Text::new("")),
                    v => RegOp::Get(Text::new(string_arg(op, v)?)),
                }
            }
            "write" | "put" => RegOp::Write(Val::from_json(&op.input)),
            "append" => RegOp::Append(Chunk::new(string_arg(op, &op.input)?)),
            _ => match &op.input {
                Value::Array(a) if a.len() == 2 => {
                    RegOp::Cas(Val::from_json(&a[0]), Val::from_json(&a[1]))
                }
                other => {
                    return Err(ModelError::new(format!(
                        "cas needs [old, new], got {other}"
                    )))
                }
            },
        }))
    }

    #[inline]
    fn step(&self, state: &Val, op: &RegOp) -> Option<Val> {
        match op {
            RegOp::Read(v) => (state == v).then(|| state.clone()),
            RegOp::Write(v) => Some(v.clone()),
            RegOp::Cas(old, new) => (state == old).then(|| new.clone()),
            // A missing key reads as "".
            RegOp::Get(s) => match state {
                Val::Null => s.is_empty().then_some(Val::Null),
                Val::Str(t) => (t == s).then(|| state.clone()),
                _ => None,
            },
            RegOp::Append(c) => match state {
                Val::Null => Some(Val::Str(c.text.clone())),
                Val::Str(t) => Some(Val::Str(t.append(c))),
                _ => None,
            },
        }
    }

    fn describe_op(&self, op: &RegOp) -> String {
        match op {
            RegOp::Read(v) => format!("read {v}"),
            RegOp::Write(v) => format!("write {v}"),
            RegOp::Cas(o, n) => format!("cas {o} -> {n}"),
            RegOp::Get(s) => format!("get {:?}", s.to_string_lossless()),
            RegOp::Append(c) => format!("append {:?}", c.text.to_string_lossless()),
        }
    }

    fn describe_state(&self, state: &Val) -> String {
        if self.strings {
            format!("the key held {state}")
        } else {
            format!("the register held {state}")
        }
    }

    fn state_json(&self, state: &Val) -> Value {
        state.to_json()
    }

    fn state_heap_bytes(&self, state: &Val) -> usize {
        match state {
            // Counted in full although writes share their value with the op:
            // an over-estimate keeps the budget safe.
            Val::Str(s) => s.len().min(64) + 64,
            Val::Other(s) => s.len() + 16,
            _ => 0,
        }
    }

    fn monotone(&self, op: &RegOp) -> bool {
        matches!(op, RegOp::Append(_))
    }

    fn reachable(&self, state: &Val, read: &RegOp) -> bool {
        // Appends only extend: the state must be a prefix of what the get returned.
        match (state, read) {
            (Val::Null, _) => true,
            (Val::Str(t), RegOp::Get(v)) => v.leaf().is_none_or(|v| t.is_prefix_of(v)),
            _ => true,
        }
    }

    fn read_only(&self, op: &RegOp) -> bool {
        matches!(op, RegOp::Read(_) | RegOp::Get(_))
    }

    fn footprint(&self, op: &RegOp) -> Footprint<Val> {
        match op {
            RegOp::Read(v) => Footprint::Reads(v.clone()),
            RegOp::Write(v) => Footprint::Writes(v.clone()),
            RegOp::Cas(o, n) => Footprint::ReadsWrites(o.clone(), n.clone()),
            RegOp::Get(_) | RegOp::Append(_) => Footprint::Opaque,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(m: &Register, state: Val, op: RegOp) -> Option<Val> {
        m.step(&state, &op)
    }

    #[test]
    fn step_table() {
        use RegOp::*;
        let m = Register::kv(&Value::Null);
        let s = |x: &str| Val::Str(Text::new(x));
        let get = |x: &str| Get(Text::new(x));
        let app = |x: &str| Append(Chunk::new(x));
        #[rustfmt::skip]
        let rows: Vec<(Val, RegOp, Option<Val>)> = vec![
            // state           op                                   next
            (Val::Null,        Read(Val::Null),                     Some(Val::Null)),
            (Val::Int(4),      Read(Val::Int(3)),                   None),
            (Val::Int(4),      Write(Val::Int(3)),                  Some(Val::Int(3))),
            (Val::Int(1),      Cas(Val::Int(1), Val::Int(2)),       Some(Val::Int(2))),
            (Val::Int(3),      Cas(Val::Int(1), Val::Int(2)),       None),
            (Val::Null,        get(""),                      Some(Val::Null)),
            (Val::Null,        app("x"),                  Some(s("x"))),
            (s("x"),           app("y"),                  Some(s("xy"))),
            (s("xy"),          get("xy"),                    Some(s("xy"))),
            (s("xy"),          get("x"),                     None),
            (Val::Int(1),      app("y"),                  None),
        ];
        for (state, op, want) in rows {
            assert_eq!(
                step(&m, state.clone(), op.clone()),
                want,
                "{state:?} {op:?}"
            );
        }
    }

    fn op(f: &str, input: Value, output: Option<Value>, outcome: Outcome) -> Operation {
        Operation {
            id: 0,
            process: crate::history::Process::Client(0),
            f: f.into(),
            key: None,
            input,
            output,
            outcome,
            call: 0,
            ret: None,
            call_time: None,
            ret_time: None,
            node: None,
        }
    }

    #[test]
    fn prepare_table() {
        let m = Register::cas(&Value::Null);
        #[rustfmt::skip]
        let rows = vec![
            (op("read", json!(null), Some(json!(3)), Outcome::Ok),      Ok(Some(RegOp::Read(Val::Int(3))))),
            (op("read", json!(null), Some(json!("timed-out")), Outcome::Fail), Ok(None)),
            (op("read", json!(null), None, Outcome::Info),              Ok(None)),
            (op("write", json!(2), None, Outcome::Info),                Ok(Some(RegOp::Write(Val::Int(2))))),
            (op("write", json!(2), Some(json!(2)), Outcome::Fail),      Ok(None)),
            (op("cas", json!([1, 2]), Some(json!([1, 2])), Outcome::Ok), Ok(Some(RegOp::Cas(Val::Int(1), Val::Int(2))))),
        ];
        for (o, want) in rows {
            assert_eq!(m.prepare(&o), want, "{o:?}");
        }
        assert!(m.prepare(&op("cas", json!(1), None, Outcome::Ok)).is_err());
        assert!(m
            .prepare(&op("append", json!("x"), None, Outcome::Ok))
            .is_err());
        let e = Register::plain(&Value::Null)
            .prepare(&op("cas", json!([1, 2]), None, Outcome::Ok))
            .unwrap_err();
        assert!(e.message.contains("cas-register"), "{e}");
    }
}
