//! Linearizability checking.
//!
//! [`check_model`] splits the history by key, reduces crashed operations where
//! that is exact (see `prepare`), searches the parts in parallel (biggest
//! first; once one is invalid, the others up to `SETTLE_STEPS` steps each, so
//! that every failing key is named without one hard key holding the answer
//! back; keys left undecided are listed in `summary.undecided_keys`), and
//! explains each violation with a witness: the operation that cannot be
//! linearized, the longest linearizable prefix with the state after each
//! step, and the operations pending at that point. Search and explanations
//! share one deadline.
//!
//! Budgets: the time limit is checked every 1024 search steps (microseconds
//! apart), the memory budget against an estimate of the search's caches. Either
//! ends the search as Unknown, never Valid.

mod cache;
mod prepare;
mod search;

use crate::anomaly::{Anomaly, Severity};
use crate::history::{History, Operation};
use crate::model::{Model, ModelKind, Mutex, Register};
use crate::verdict::{CheckResult, Stats, Validity};
use prepare::{build_part, prepare, truncate, Part};
use search::{Capture, Outcome, Searcher, Shared, Why, SETTLE_STEPS};
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
        summary: None,
        stats,
    };
    // Every failing key is named, each with its witness; the explanations
    // share the search's deadline, so the answer comes at the limit.
    let invalid: Vec<(usize, u64, u64, Option<u32>)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r.outcome {
            Some(Outcome::Invalid { best_iter }) => Some((i, best_iter, r.steps, r.blocked)),
            _ => None,
        })
        .collect();
    if !invalid.is_empty() {
        result.valid = Validity::Invalid;
        // Keys left undecided: cancelled past SETTLE_STEPS, or out of time.
        let undecided: Vec<Value> = runs
            .iter()
            .zip(&parts)
            .filter(|(r, _)| !matches!(r.outcome, Some(Outcome::Valid | Outcome::Invalid { .. })))
            .map(|(_, p)| p.key.clone().unwrap_or(Value::Null))
            .collect();
        if !undecided.is_empty() {
            result.summary = Some(json!({ "undecided_keys": undecided }));
        }
        for (i, best_iter, steps, blocked) in invalid {
            let (anomaly, cx) = if Instant::now() < shared.deadline {
                explain(
                    model, history, &parts[i], best_iter, steps, blocked, &shared,
                )
            } else {
                (not_rebuilt(&parts[i]), Value::Null)
            };
            result.anomalies.push(anomaly);
            if result.counterexample.is_none() {
                result.counterexample = Some(cx).filter(|c| !c.is_null());
            }
        }
    } else if let Some((i, reason)) = runs.iter().enumerate().find_map(|(i, r)| match &r.outcome {
        Some(Outcome::Unknown(why)) => Some((i, why.clone())),
        _ => None,
    }) {
        result.valid = Validity::Unknown;
        result.unknown_reason = Some(match &parts[i].key {
            Some(k) => format!("key {k}: {reason}"),
            None => reason,
        });
    } else if runs
        .iter()
        .any(|r| !matches!(r.outcome, Some(Outcome::Valid)))
    {
        // Unreachable by construction (cancellation implies an invalid part);
        // still never claim Valid for a part that was not searched to the end.
        result.valid = Validity::Unknown;
        result.unknown_reason = Some("a part was not searched to the end".into());
    }
    result.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(result)
}

/// Model steps the shortest-failing-prefix search may take, as a multiple of
/// the steps that found the violation, plus two such per halving of the part
/// (steps, not time: witnesses must not depend on the machine's speed).
const WITNESS_STEPS: u64 = 4;
const WITNESS_MIN_STEPS: u64 = 200_000;
/// Completions stepped one by one above a valid hint before galloping.
const WITNESS_WALK: usize = 8;

/// Explains the invalid part `part`. The operation that cannot be linearized
/// is the one whose completion first makes the key's history impossible: the
/// shortest failing prefix, searched from the deepest configuration's
/// blocked operation outwards. That prefix's deepest linearizable
/// configuration gives the state and the pending operations. If the step
/// budget runs out, the deepest configuration of the whole part explains.
fn explain<M: Model>(
    model: &M,
    history: &History,
    part: &Part<M::Op>,
    best_iter: u64,
    steps: u64,
    blocked: Option<u32>,
    search: &Shared,
) -> (Anomaly, Value) {
    // The search's deadline and budget, with nothing cancelled or in use.
    let shared = Shared {
        deadline: search.deadline,
        time_limit_ms: search.time_limit_ms,
        cancel: AtomicBool::new(false),
        mem_used: AtomicUsize::new(0),
        mem_limit: search.mem_limit,
    };
    let shared = &shared;
    let replay = |part: &Part<M::Op>, iter: u64| {
        let mut r = Searcher::new(model, &part.items, Some(iter));
        r.run(shared, u64::MAX);
        r.release(shared);
        r.capture
    };
    // A read of a value nothing writes explains itself: no prefix search.
    // So does a certainly stale one, with the part cut at its completion
    // (operations invoked later are not named).
    let whole = Searcher::new(model, &part.items, None);
    if let Some(d) = whole.doomed() {
        let cut = whole
            .stale()
            .then(|| history.ops[part.items[d as usize].src].ret)
            .flatten()
            .and_then(|r| {
                let ops = key_ops(history, part)?;
                let mut stats = Stats::default();
                build_part(
                    model,
                    part.key.clone(),
                    truncate(history, &ops, r),
                    &mut stats,
                )
                .ok()
            })
            .filter(|p| Searcher::new(model, &p.items, None).doomed().is_some());
        let part = cut.as_ref().unwrap_or(part);
        if let Some(c) = replay(part, 0) {
            return witness(model, history, part, &c);
        }
    }
    let hint = blocked
        .and_then(|b| part.items.get(b as usize))
        .map(|it| it.src);
    // The bisection's invalid probes each cost about what the search did,
    // and it makes up to two per halving: a fixed multiple ran out on a
    // stale read a few completions past a misleading hint (the witness then
    // named an innocent operation).
    let halvings = u64::from(usize::BITS - part.items.len().leading_zeros());
    let mut left = (steps * (WITNESS_STEPS + 2 * halvings)).max(WITNESS_MIN_STEPS);
    if let Some((cut_part, iter, culprit)) =
        shortest_failing_prefix(model, history, part, hint, shared, &mut left)
    {
        if let Some(mut c) = replay(&cut_part, iter) {
            // Name the operation whose completion broke the history.
            if let Some(pos) = cut_part.items.iter().position(|it| it.src == culprit) {
                if c.blocked != pos {
                    c.pending.retain(|&p| p != pos);
                    if c.blocked < cut_part.items.len() {
                        c.pending.push(c.blocked);
                    }
                    c.blocked = pos;
                    c.why = match model.step(&c.state, &cut_part.items[pos].op) {
                        None => Why::Step,
                        Some(_) => Why::Exhausted,
                    };
                }
            }
            return witness(model, history, &cut_part, &c);
        }
    }
    match replay(part, best_iter) {
        Some(full) => witness(model, history, part, &full),
        None => (not_rebuilt(part), Value::Null),
    }
}

/// The anomaly of an invalid part whose witness could not be rebuilt before the deadline.
fn not_rebuilt<O>(part: &Part<O>) -> Anomaly {
    let msg = match &part.key {
        Some(k) => {
            format!("no linearization exists on key {k} (the witness could not be rebuilt in time)")
        }
        None => "no linearization exists (the witness could not be rebuilt in time)".to_string(),
    };
    nonlinearizable(part, Some(Severity::Invalid), msg)
}

/// A nonlinearizable anomaly on `part`'s key (written `null` without one).
fn nonlinearizable<O>(part: &Part<O>, severity: Option<Severity>, message: String) -> Anomaly {
    Anomaly {
        kind: "nonlinearizable".into(),
        severity,
        key: Some(part.key.clone().unwrap_or(Value::Null)),
        message,
        events: None,
        extra: serde_json::Map::new(),
    }
}

/// What a prefix probe found.
enum Probe<O> {
    Valid,
    /// Invalid: the prefix's part and the iteration of its deepest configuration.
    Invalid(Part<O>, u64),
}

/// The operations of `part`'s key in `history`.
fn key_ops<O>(history: &History, part: &Part<O>) -> Option<Vec<usize>> {
    let key_text = part.key.as_ref().map(|k| k.to_string()).unwrap_or_default();
    history
        .by_key()
        .into_iter()
        .find(|(k, _)| k.as_ref().map(|k| k.to_string()).unwrap_or_default() == key_text)
        .map(|(_, ops)| ops)
}

/// The part cut right after the completion that first makes it invalid, the
/// iteration of its deepest configuration, and the culprit's operation id.
/// Gallops outwards from the completion of `hint`, then bisects.
fn shortest_failing_prefix<M: Model>(
    model: &M,
    history: &History,
    part: &Part<M::Op>,
    hint: Option<usize>,
    shared: &Shared,
    left: &mut u64,
) -> Option<(Part<M::Op>, u64, usize)> {
    let ops = key_ops(history, part)?;
    let mut completions: Vec<(u64, usize)> = ops
        .iter()
        .filter_map(|&i| history.ops[i].ret.map(|r| (r, i)))
        .collect();
    completions.sort_unstable();
    let last = completions.len().checked_sub(1)?;
    // None when the budget ran out.
    let mut probe = |k: usize| -> Option<Probe<M::Op>> {
        let mut stats = Stats::default();
        let p = build_part(
            model,
            part.key.clone(),
            truncate(history, &ops, completions[k].0),
            &mut stats,
        )
        .ok()?;
        let mut searcher = Searcher::new(model, &p.items, None);
        let outcome = searcher.run(shared, *left);
        *left = left.saturating_sub(searcher.iter);
        searcher.release(shared);
        match outcome {
            Some(Outcome::Valid) => Some(Probe::Valid),
            Some(Outcome::Invalid { best_iter }) => Some(Probe::Invalid(p, best_iter)),
            _ => None,
        }
    };
    // Invariant: prefixes up to lo (exclusive bound, None = before the first)
    // are valid; the prefix up to hi is invalid (the whole part is).
    let mut lo: Option<usize> = None;
    let mut hi = last;
    let mut at_hi: Option<(Part<M::Op>, u64)> = None;
    let start = hint
        .and_then(|h| completions.iter().position(|&(_, i)| i == h))
        .unwrap_or(last);
    // From the hint: invalid probes search exhaustively and cost as much as
    // the violation did, valid ones stop at the first linearization. Above
    // a valid hint, step one completion at a time (the culprit is usually
    // just there), then gallop; below an invalid hint, gallop down.
    let mut k = start;
    let mut step = 0usize;
    let mut walked = 0;
    loop {
        match probe(k)? {
            Probe::Invalid(p, it) => {
                hi = k;
                at_hi = Some((p, it));
                if lo.is_some() || k == 0 {
                    break;
                }
                step = (step * 2).max(1);
                k = k.saturating_sub(step);
            }
            Probe::Valid => {
                lo = Some(k);
                if at_hi.is_some() || k + 1 >= hi {
                    break;
                }
                walked += 1;
                step = if walked <= WITNESS_WALK {
                    1
                } else {
                    (step * 2).max(1)
                };
                k = (k + step).min(hi);
            }
        }
    }
    // Bisect what is left.
    while lo.map_or(0, |l| l + 1) < hi {
        let mid = (lo.map_or(0, |l| l + 1) + hi) / 2;
        match probe(mid)? {
            Probe::Valid => lo = Some(mid),
            Probe::Invalid(p, it) => {
                hi = mid;
                at_hi = Some((p, it));
            }
        }
    }
    let (p, best_iter) = match at_hi {
        Some(f) => f,
        None => match probe(hi)? {
            Probe::Invalid(p, it) => (p, it),
            Probe::Valid => return None,
        },
    };
    Some((p, best_iter, completions[hi].1))
}

/// Iterations a part runs before yielding its core to the next part.
const SLICE: u64 = 1 << 16;

struct PartRun {
    outcome: Option<Outcome>,
    steps: u64,
    cached: u64,
    /// See Searcher::best_blocked.
    blocked: Option<u32>,
}

/// Searches every part, sharing the cores round-robin in slices so that one
/// hard part never hides an easy violation in another (Porcupine runs every
/// part at once for the same reason). An invalid part stops only the parts
/// past SETTLE_STEPS: Jepsen names every failing key, and so does this.
fn run_parts<M: Model>(
    model: &M,
    parts: &[Part<M::Op>],
    shared: &Shared,
    threads: usize,
) -> Vec<PartRun> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    }
    .min(parts.len())
    .max(1);
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts[i].items.len()));
    let queue = std::sync::Mutex::new(
        order
            .into_iter()
            .collect::<std::collections::VecDeque<usize>>(),
    );
    let searchers: Vec<std::sync::Mutex<Option<Searcher<'_, M>>>> = (0..parts.len())
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    let results: Vec<std::sync::Mutex<PartRun>> = (0..parts.len())
        .map(|_| {
            std::sync::Mutex::new(PartRun {
                outcome: None,
                steps: 0,
                cached: 0,
                blocked: None,
            })
        })
        .collect();
    // The guard must be gone before a slice runs: the slice pushes back.
    let pop = || queue.lock().ok().and_then(|mut q| q.pop_front());
    let work = || {
        while let Some(i) = pop() {
            let Ok(mut slot) = searchers[i].lock() else {
                break;
            };
            let searcher = slot.get_or_insert_with(|| Searcher::new(model, &parts[i].items, None));
            let settled = shared.cancel.load(Ordering::Relaxed) && searcher.iter >= SETTLE_STEPS;
            let outcome = if settled {
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
                        r.blocked = searcher.best_blocked;
                        r.outcome = Some(o);
                    }
                    searcher.release(shared);
                    *slot = None;
                }
            }
        }
    };
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            // A thread that cannot be spawned is one worker fewer; with
            // none, this thread searches.
            let spawned = (0..threads)
                .filter(|_| std::thread::Builder::new().spawn_scoped(s, work).is_ok())
                .count();
            if spawned == 0 {
                work();
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
        (Some(_), crate::history::Outcome::Ok) => {
            format!("completed at {}", op.describe_time(true))
        }
        (Some(_), _) => format!("crashed at {}", op.describe_time(true)),
        (None, _) => "never completed".to_string(),
    };
    format!("invoked at {}, {ret}", op.describe_time(false))
}

/// Most writers a dead-end explanation names one by one.
const MAX_WRITERS: usize = 4;

/// For a read of `v` where every order dead-ends: which operations could
/// have written `v` and why none of them can be the last write before it
/// (invoked after the read completed, overwritten before it began by a
/// named write, or in flight with it but every order with it dead-ends).
/// Needs footprints; None for other operations.
fn ruled_out<M: Model>(
    model: &M,
    history: &History,
    part: &Part<M::Op>,
    read: usize,
    others: usize,
) -> Option<String> {
    use crate::model::Footprint;
    let r = part.items.get(read)?;
    let Footprint::Reads(v) = model.footprint(&r.op) else {
        return None;
    };
    let writes = |i: &prepare::Item<M::Op>| match model.footprint(&i.op) {
        Footprint::Writes(w) | Footprint::ReadsWrites(_, w) => Some(w),
        _ => None,
    };
    let name = |i: &prepare::Item<M::Op>| {
        let op = &history.ops[i.src];
        format!(
            "process {}'s {} ({})",
            op.process,
            model.describe_op(&i.op),
            when(op)
        )
    };
    // A completed write of another value, invoked after `after` and
    // completed before the read began: the latest such. Else a completed
    // read of another value between them: it sits between the two in every
    // linearization, so the value changed after `after`.
    let overwriter = |after: u64| {
        let between = |k: &&prepare::Item<M::Op>| {
            k.call > after && k.ret != prepare::PENDING && k.ret < r.call
        };
        let wrote = part
            .items
            .iter()
            .filter(between)
            .filter(|k| writes(k).is_some_and(|w| w != v))
            .max_by_key(|k| k.ret)
            .map(|k| format!("was overwritten by {} before the read began", name(k)));
        wrote.or_else(|| {
            part.items
                .iter()
                .filter(between)
                .find(|k| match model.footprint(&k.op) {
                    Footprint::Reads(u) => u != v,
                    _ => false,
                })
                .map(|k| {
                    format!(
                        "was followed by {}, which saw another value before the read began",
                        name(k)
                    )
                })
        })
    };
    let mut reasons = Vec::new();
    let mut total = 0;
    if model.init() == v {
        if let Some(why) = overwriter(0) {
            total += 1;
            reasons.push(format!("the initial value {why}"));
        }
    }
    for w in part.items.iter().filter(|w| writes(w) == Some(v.clone())) {
        total += 1;
        if reasons.len() >= MAX_WRITERS {
            continue;
        }
        let reason = if w.call > r.ret {
            "was invoked after the read completed".to_string()
        } else if let Some(why) = (w.ret < r.call).then(|| overwriter(w.ret)).flatten() {
            why
        } else if w.ret == prepare::PENDING {
            "never completed, and every order that lets it take effect last before the read dead-ends"
                .to_string()
        } else if w.ret < r.call {
            "completed before the read began, and every order that leaves it last before the read dead-ends"
                .to_string()
        } else {
            "was in flight with the read, and every order that puts it last before the read dead-ends"
                .to_string()
        };
        reasons.push(format!("{} {reason}", name(w)));
    }
    if total > reasons.len() {
        reasons.push(format!("{} more likewise", total - reasons.len()));
    }
    let value = model.state_json(&v);
    let rest = match others {
        0 => String::new(),
        1 => " (with the one other pending operation in either order)".to_string(),
        k => format!(" (with the {k} other pending operations in every order)"),
    };
    Some(if reasons.is_empty() {
        format!("no operation wrote {value} in time{rest}")
    } else {
        format!(
            "no write of {value} can be the last before it: {}{rest}",
            reasons.join("; ")
        )
    })
}

/// For a read of `v` that a completed write had certainly overwritten before
/// the read began, with no operation able to write `v` again in time: the
/// clause that says so. Needs footprints (register-like models).
fn stale_read<M: Model>(
    model: &M,
    history: &History,
    part: &Part<M::Op>,
    read: usize,
) -> Option<String> {
    use crate::model::Footprint;
    let r = part.items.get(read)?;
    let Footprint::Reads(v) = model.footprint(&r.op) else {
        return None;
    };
    let writes = |i: &prepare::Item<M::Op>| match model.footprint(&i.op) {
        Footprint::Writes(w) | Footprint::ReadsWrites(_, w) => Some(w),
        _ => None,
    };
    // The last write of another value that completed before the read began.
    let last = part
        .items
        .iter()
        .filter(|i| i.ret < r.call && writes(i).is_some_and(|w| w != v))
        .max_by_key(|i| i.ret)?;
    // Nothing that writes `v` may still take effect after it and before the read ends.
    let rescued = part
        .items
        .iter()
        .any(|i| writes(i).is_some_and(|w| w == v) && i.call < r.ret && i.ret > last.call);
    if rescued {
        return None;
    }
    let op = &history.ops[last.src];
    Some(format!(
        "process {}'s {} had completed at {}, before the read began, and no operation that could make it {} again was pending",
        op.process,
        model.describe_op(&last.op),
        op.describe_time(true),
        model.state_json(&v)
    ))
}

/// Builds the anomaly (with its sentence) and the counterexample.
fn witness<M: Model>(
    model: &M,
    history: &History,
    part: &Part<M::Op>,
    c: &Capture<M::State>,
) -> (Anomaly, Value) {
    let items = &part.items;
    let Some(blocked) = items.get(c.blocked) else {
        let msg = "no linearization exists".to_string();
        return (nonlinearizable(part, None, msg), Value::Null);
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
    // A state from which the operation itself could step is no dead end of
    // its own: the dead end is every order of what was pending.
    let why = match c.why {
        Why::Unreachable if model.step(&c.state, &blocked.op).is_some() => Why::Exhausted,
        w => w,
    };
    let pending = match (why, c.pending.len()) {
        (Why::Never, _) => {
            let value = match model.footprint(&blocked.op) {
                crate::model::Footprint::Reads(v) | crate::model::Footprint::ReadsWrites(v, _) => {
                    model.state_json(&v).to_string()
                }
                _ => "it".to_string(),
            };
            format!(
                "no operation{key_clause} ever wrote {value}, and {} at the start",
                model.describe_state(&init)
            )
        }
        (Why::Unreachable, _) => {
            "and no operation invoked before it completed could lead there".to_string()
        }
        (Why::Stale, _) => {
            let value = match model.footprint(&blocked.op) {
                crate::model::Footprint::Reads(v) | crate::model::Footprint::ReadsWrites(v, _) => {
                    model.state_json(&v).to_string()
                }
                _ => "it".to_string(),
            };
            format!(
                "every operation{key_clause} that could have written {value} before it completed \
                 was followed, before it began, by a completed operation that saw or left another value"
            )
        }
        (Why::Exhausted, k) => format!(
            "and every order of it and the {k} other pending operations leads to a dead end"
        ),
        (Why::Step, 0) => "and no other operation was pending".to_string(),
        (Why::Step, 1) => {
            "and the one operation pending then could not make it possible".to_string()
        }
        (Why::Step, k) => {
            format!("and none of the {k} operations pending then could make it possible")
        }
    };
    let stale = match why {
        Why::Never => None,
        Why::Exhausted | Why::Stale => stale_read(model, history, part, c.blocked)
            .or_else(|| ruled_out(model, history, part, c.blocked, c.pending.len())),
        _ => stale_read(model, history, part, c.blocked),
    };
    let message = match stale {
        _ if why == Why::Never || (why == Why::Stale && stale.is_none()) => format!(
            "process {} {}{} ({}), but {}",
            bop.process,
            model.describe_op(&blocked.op),
            key_clause,
            when(bop),
            pending
        ),
        Some(why) => format!(
            "process {} {}{} ({}), but {}",
            bop.process,
            model.describe_op(&blocked.op),
            key_clause,
            when(bop),
            why
        ),
        None => format!(
            "process {} {}{} ({}), but {}{}, {}",
            bop.process,
            model.describe_op(&blocked.op),
            key_clause,
            when(bop),
            model.describe_state(&c.state),
            set_by,
            pending
        ),
    };
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
    let mut events = vec![bop.call];
    events.extend(bop.ret);
    let mut anomaly = nonlinearizable(part, Some(Severity::Invalid), message.clone());
    anomaly.events = Some(events);
    anomaly.extra.insert("op".into(), json!(bop.id));
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
