//! Linearizability checking.
//!
//! [`check_model`] splits the history by key, reduces crashed operations where
//! that is exact (see `prepare`), searches the parts in parallel (biggest
//! first; the first invalid part cancels the rest), and explains a violation
//! with a witness: the operation that cannot be linearized, the longest
//! linearizable prefix with the state after each step, and the operations
//! pending at that point.
//!
//! Budgets: the time limit is checked every 1024 search steps (microseconds
//! apart), the memory budget against an estimate of the search's caches. Either
//! ends the search as Unknown, never Valid.

mod cache;
mod prepare;
mod search;

use crate::history::{History, Operation};
use crate::model::{Model, ModelKind, Mutex, Register};
use crate::verdict::{CheckResult, Stats, Validity};
use prepare::{prepare, Part};
use search::{Capture, Outcome, Searcher, Shared};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The most prefix steps a counterexample lists (the last ones, nearest the failure).
pub const MAX_PREFIX: usize = 1000;

#[derive(Clone, Debug)]
pub struct Options {
    pub time_limit: Duration,
    /// Bytes the search's caches may use, summed over parallel parts.
    pub memory_limit: usize,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            time_limit: Duration::from_secs(60),
            memory_limit: 2 << 30,
            threads: 0,
        }
    }
}

/// Input the model cannot interpret: exit 3 territory, not a verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("event {event}: {message}")]
    Op { event: u64, message: String },
    #[error("{0}")]
    Init(String),
}

/// Checks `history` against one of the built-in models.
pub fn check(
    kind: ModelKind,
    init: &Value,
    history: &History,
    opts: &Options,
) -> Result<CheckResult, CheckError> {
    match kind {
        ModelKind::Register => check_model(&Register::plain(init), history, opts),
        ModelKind::CasRegister => check_model(&Register::cas(init), history, opts),
        ModelKind::Kv => check_model(&Register::kv(init), history, opts),
        ModelKind::Mutex => {
            let m = Mutex::new(init).map_err(|e| CheckError::Init(e.message))?;
            check_model(&m, history, opts)
        }
    }
}

/// Checks `history` against any model.
pub fn check_model<M: Model>(
    model: &M,
    history: &History,
    opts: &Options,
) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let mut stats = Stats::default();
    let parts = prepare(model, history, &mut stats)?;
    let shared = Shared {
        deadline: start + opts.time_limit,
        time_limit_ms: opts.time_limit.as_millis() as u64,
        cancel: AtomicBool::new(false),
        mem_used: AtomicUsize::new(0),
        mem_limit: opts.memory_limit,
    };
    let runs = run_parts(model, &parts, &shared, opts.threads);
    for r in &runs {
        stats.steps += r.steps;
        stats.cached += r.cached;
    }

    let mut result = CheckResult {
        valid: Validity::Valid,
        model: model.name().to_string(),
        ops: history.ops.len(),
        elapsed_ms: 0,
        anomalies: Vec::new(),
        counterexample: None,
        unknown_reason: None,
        stats,
    };
    let invalid = runs.iter().enumerate().find_map(|(i, r)| match r.outcome {
        Some(Outcome::Invalid { best_iter }) => Some((i, best_iter)),
        _ => None,
    });
    if let Some((i, best_iter)) = invalid {
        result.valid = Validity::Invalid;
        let replay = Shared {
            deadline: Instant::now() + opts.time_limit,
            cancel: AtomicBool::new(false),
            mem_used: AtomicUsize::new(0),
            ..shared
        };
        let mut replayer = Searcher::new(model, &parts[i].items, Some(best_iter));
        replayer.run(&replay, u64::MAX);
        replayer.release(&replay);
        let (anomaly, cx) = match replayer.capture {
            Some(c) => witness(model, history, &parts[i], &c),
            None => {
                let msg = "no linearization exists (the witness could not be rebuilt in time)".to_string();
                (json!({"type": "nonlinearizable", "key": parts[i].key, "message": msg}), Value::Null)
            }
        };
        result.anomalies.push(anomaly);
        result.counterexample = Some(cx).filter(|c| !c.is_null());
    } else if let Some((i, reason)) = runs.iter().enumerate().find_map(|(i, r)| match &r.outcome {
        Some(Outcome::Unknown(why)) => Some((i, why.clone())),
        _ => None,
    }) {
        result.valid = Validity::Unknown;
        result.unknown_reason = Some(match &parts[i].key {
            Some(k) => format!("key {k}: {reason}"),
            None => reason,
        });
    } else if runs.iter().any(|r| !matches!(r.outcome, Some(Outcome::Valid))) {
        // Unreachable by construction (cancellation implies an invalid part);
        // still never claim Valid for a part that was not searched to the end.
        result.valid = Validity::Unknown;
        result.unknown_reason = Some("a part was not searched to the end".into());
    }
    result.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(result)
}

/// Iterations a part runs before yielding its core to the next part.
const SLICE: u64 = 1 << 16;

struct PartRun<S> {
    outcome: Option<Outcome>,
    steps: u64,
    cached: u64,
    _state: std::marker::PhantomData<S>,
}

/// Searches every part, sharing the cores round-robin in slices so that one
/// hard part never hides an easy violation in another (Porcupine runs every
/// part at once for the same reason). The first invalid part cancels the rest.
fn run_parts<M: Model>(
    model: &M,
    parts: &[Part<M::Op>],
    shared: &Shared,
    threads: usize,
) -> Vec<PartRun<M::State>> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    }
    .min(parts.len())
    .max(1);
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts[i].items.len()));
    let queue = std::sync::Mutex::new(order.into_iter().collect::<std::collections::VecDeque<usize>>());
    let searchers: Vec<std::sync::Mutex<Option<Searcher<'_, M>>>> =
        (0..parts.len()).map(|_| std::sync::Mutex::new(None)).collect();
    let results: Vec<std::sync::Mutex<PartRun<M::State>>> = (0..parts.len())
        .map(|_| {
            std::sync::Mutex::new(PartRun {
                outcome: None,
                steps: 0,
                cached: 0,
                _state: std::marker::PhantomData,
            })
        })
        .collect();
    let work = || loop {
        let Some(i) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
            break;
        };
        let Ok(mut slot) = searchers[i].lock() else { break };
        let searcher = slot.get_or_insert_with(|| Searcher::new(model, &parts[i].items, None));
        let outcome = if shared.cancel.load(Ordering::Relaxed) {
            Some(Outcome::Cancelled)
        } else {
            searcher.run(shared, SLICE)
        };
        match outcome {
            None => {
                if let Ok(mut q) = queue.lock() {
                    q.push_back(i);
                }
            }
            Some(o) => {
                if matches!(o, Outcome::Invalid { .. }) {
                    shared.cancel.store(true, Ordering::Relaxed);
                }
                if let Ok(mut r) = results[i].lock() {
                    r.steps = searcher.iter;
                    r.cached = searcher.cached();
                    r.outcome = Some(o);
                }
                searcher.release(shared);
                *slot = None;
            }
        }
    };
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
}

fn op_json<M: Model>(model: &M, op: &Operation, mop: &M::Op) -> Value {
    let mut v = serde_json::to_value(op).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("description".into(), Value::from(model.describe_op(mop)));
    }
    v
}

fn when(op: &Operation) -> String {
    let ret = match (op.ret, op.outcome) {
        (Some(_), crate::history::Outcome::Ok) => format!("completed at {}", op.describe_time(true)),
        (Some(_), _) => format!("crashed at {}", op.describe_time(true)),
        (None, _) => "never completed".to_string(),
    };
    format!("invoked at {}, {ret}", op.describe_time(false))
}

/// Builds the anomaly (with its sentence) and the counterexample.
fn witness<M: Model>(
    model: &M,
    history: &History,
    part: &Part<M::Op>,
    c: &Capture<M::State>,
) -> (Value, Value) {
    let items = &part.items;
    let Some(blocked) = items.get(c.blocked) else {
        let msg = "no linearization exists".to_string();
        return (json!({"type": "nonlinearizable", "key": part.key, "message": msg}), Value::Null);
    };
    let bop = &history.ops[blocked.src];
    let key_clause = part
        .key
        .as_ref()
        .map(|k| format!(" on key {k}"))
        .unwrap_or_default();
    // The step that last changed the state, to say who set it.
    let init = model.init();
    let mut set_by = String::new();
    for k in (0..c.prefix.len()).rev() {
        let before = if k == 0 { &init } else { &c.prefix[k - 1].1 };
        if *before != c.prefix[k].1 {
            let it = &items[c.prefix[k].0];
            let op = &history.ops[it.src];
            set_by = format!(
                " (set by process {}'s {}, {})",
                op.process,
                model.describe_op(&it.op),
                when(op)
            );
            break;
        }
    }
    let pending = match c.pending.len() {
        0 => "and no other operation was pending".to_string(),
        1 => "and the one operation pending then could not make it possible".to_string(),
        k => format!("and none of the {k} operations pending then could make it possible"),
    };
    let message = format!(
        "process {} {}{} ({}), but {}{}, {}",
        bop.process,
        model.describe_op(&blocked.op),
        key_clause,
        when(bop),
        model.describe_state(&c.state),
        set_by,
        pending
    );
    let skip = c.prefix.len().saturating_sub(MAX_PREFIX);
    let prefix: Vec<Value> = c.prefix[skip..]
        .iter()
        .map(|(i, s)| {
            let it = &items[*i];
            json!({"op": op_json(model, &history.ops[it.src], &it.op), "state": model.state_json(s)})
        })
        .collect();
    let pending: Vec<Value> = c
        .pending
        .iter()
        .map(|&i| op_json(model, &history.ops[items[i].src], &items[i].op))
        .collect();
    let anomaly = json!({
        "type": "nonlinearizable",
        "key": part.key,
        "op": bop.id,
        "message": message,
    });
    let cx = json!({
        "key": part.key,
        "op": op_json(model, bop, &blocked.op),
        "state": model.state_json(&c.state),
        "prefix_length": c.prefix.len(),
        "prefix_skipped": skip,
        "prefix": prefix,
        "pending": pending,
        "message": message,
    });
    (anomaly, cx)
}
