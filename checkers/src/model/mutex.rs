//! A linearizable mutex, as Knossos defines it: acquire succeeds only when
//! free, release only when held. It does not track owners; the lock-safety
//! checker does.

use super::{Model, ModelError};
use crate::history::{Operation, Outcome};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MutexOp {
    Acquire,
    Release,
}

#[derive(Clone, Debug, Default)]
pub struct Mutex {
    /// Whether the lock starts held.
    pub held: bool,
}

impl Mutex {
    pub fn new(init: &Value) -> Result<Mutex, ModelError> {
        match init {
            Value::Null | Value::Bool(false) => Ok(Mutex { held: false }),
            Value::Bool(true) => Ok(Mutex { held: true }),
            other => Err(ModelError::new(format!(
                "--init for mutex must be true (held), false or null (free), got {other}"
            ))),
        }
    }
}

impl Model for Mutex {
    type State = bool;
    type Op = MutexOp;

    fn name(&self) -> &'static str {
        "mutex"
    }

    fn init(&self) -> bool {
        self.held
    }

    fn prepare(&self, op: &Operation) -> Result<Option<MutexOp>, ModelError> {
        let m = match op.f.as_str() {
            "acquire" => MutexOp::Acquire,
            "release" => MutexOp::Release,
            f => {
                return Err(ModelError::new(format!(
                    "model mutex has no operation {f:?}: it knows acquire and release"
                )))
            }
        };
        Ok((op.outcome != Outcome::Fail).then_some(m))
    }

    fn step(&self, held: &bool, op: &MutexOp) -> Option<bool> {
        match op {
            MutexOp::Acquire => (!held).then_some(true),
            MutexOp::Release => held.then_some(false),
        }
    }

    fn describe_op(&self, op: &MutexOp) -> String {
        match op {
            MutexOp::Acquire => "acquire".into(),
            MutexOp::Release => "release".into(),
        }
    }

    fn describe_state(&self, held: &bool) -> String {
        if *held {
            "the lock was held".into()
        } else {
            "the lock was free".into()
        }
    }

    fn state_json(&self, held: &bool) -> Value {
        Value::from(if *held { "held" } else { "free" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_table() {
        let m = Mutex::default();
        #[rustfmt::skip]
        let rows = [
            (false, MutexOp::Acquire, Some(true)),
            (true,  MutexOp::Acquire, None),
            (true,  MutexOp::Release, Some(false)),
            (false, MutexOp::Release, None),
        ];
        for (s, op, want) in rows {
            assert_eq!(m.step(&s, &op), want);
        }
    }
}
