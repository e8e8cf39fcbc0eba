//! In-process clients over one shared, correct state: the `noop` system's
//! clients. They make the runner, the faults and the harness's own overhead
//! testable without a real system (faults hit the nodes' sleeping daemons,
//! not these clients).

use crate::opts::{Opts, UsageError};
use crate::registry::{self, Configured, Definition, Gens, Plan, SystemInfo};
use crate::work::Work;
use harness::lifecycle::{Outcome, Prepared, TestError, TestSpec};
use harness::runner::{Client, Completion, Op};
use harness::store::RunDir;
use harness::system::{NodeInfo, Noop, System};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct State {
    registers: HashMap<String, Value>,
    set: Vec<Value>,
    lock: Option<(usize, u64)>,
    tokens: u64,
}

#[derive(Clone)]
pub struct Memory {
    pub state: Arc<Mutex<State>>,
    pub slot: usize,
}

impl Memory {
    pub fn new(state: Arc<Mutex<State>>, slot: usize) -> Memory {
        Memory { state, slot }
    }

    /// Answers `op` at once, correctly.
    pub fn apply(&self, op: &Op) -> Completion {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let key = op.key.as_ref().map(|k| k.to_string()).unwrap_or_default();
        match op.f.as_str() {
            "read" if op.key.is_none() => Completion::Ok(Value::Array(s.set.clone())),
            "read" => Completion::Ok(s.registers.get(&key).cloned().unwrap_or(Value::Null)),
            "write" => {
                s.registers.insert(key, op.value.clone());
                Completion::Ok(op.value.clone())
            }
            "cas" => {
                let cur = s.registers.get(&key).cloned().unwrap_or(Value::Null);
                if cur == op.value[0] {
                    s.registers.insert(key, op.value[1].clone());
                    Completion::Ok(op.value.clone())
                } else {
                    Completion::Fail(op.value.clone(), "compare failed".into())
                }
            }
            "add" => {
                s.set.push(op.value.clone());
                Completion::Ok(op.value.clone())
            }
            "acquire" => match s.lock {
                Some(_) => Completion::Fail(Value::Null, "held by another client".into()),
                None => {
                    s.tokens += 1;
                    s.lock = Some((self.slot, s.tokens));
                    Completion::Ok(json!({"token": s.tokens}))
                }
            },
            "release" => match s.lock {
                Some((holder, _)) if holder == self.slot => {
                    s.lock = None;
                    Completion::Ok(Value::Null)
                }
                _ => Completion::Fail(Value::Null, "not held".into()),
            },
            f => Completion::Fail(Value::Null, format!("unknown operation {f}")),
        }
    }
}

impl Client for Memory {
    async fn invoke(&mut self, op: &Op) -> Completion {
        self.apply(op)
    }

    fn node(&self) -> Option<String> {
        Some("memory".into())
    }
}

/// The catalogue entry of `--system noop`.
pub struct Def;

static INFO: SystemInfo = SystemInfo {
    name: "noop",
    summary: "nothing real: a sleeping process per node (the target of kill and pause) and correct in-process clients; tests the harness",
    workloads: &["register", "lock", "set"],
    options: &[],
};

/// `--system noop` has no options.
struct Configuration;

impl Definition for Def {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn configure(&self, work: &Work, _: &mut Opts) -> Result<Box<dyn Configured>, UsageError> {
        match work {
            Work::Register { .. } | Work::Lock { .. } | Work::Set => Ok(Box::new(Configuration)),
            other => Err(registry::unsupported(INFO.name, other)),
        }
    }
}

impl Configured for Configuration {
    fn system(&self) -> Arc<dyn System> {
        Arc::new(Noop)
    }

    fn run(
        &self,
        prepared: Prepared,
        spec: &TestSpec,
        run_dir: &RunDir,
        gens: Gens,
    ) -> Result<Outcome, TestError> {
        let state = Arc::new(Mutex::new(State::default()));
        let plan = Plan::new(gens, move |slot: usize, _: &[NodeInfo]| {
            Memory::new(state.clone(), slot)
        });
        prepared.run(self.system(), plan, spec, run_dir)
    }
}
