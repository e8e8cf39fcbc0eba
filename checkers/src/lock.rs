//! Lock safety (`--model lock`): overlapping holds, fencing tokens, leases.
//!
//! Per key (the lock's name; one lock when absent). A **hold** runs from an
//! acquire's ok completion to the invocation of that process's next release
//! of the lock, or to the end of the history. Two holds whose certain spans
//! intersect mean two clients held the lock at once: invalid.
//!
//! - Acquire results may carry `{"token": n}`: tokens must strictly increase
//!   in the real-time order of grants, and never repeat.
//! - Acquire results may carry `{"lease_ms": n}`: an overlap that began after
//!   the first holder's lease had certainly run out is named apart: "lease
//!   expired under a holder that kept acting" when that holder went on to
//!   release (it still believed it held the lock), or a hand-over after
//!   expiry, which is how leases are meant to work, when it never acted again.
//! - An acquire that crashed (info) may or may not have been granted: its
//!   overlaps are reported as possible, not invalid.
//! - Releases of a lock not held, and acquires that never returned (possibly
//!   a deadlock after a holder crashed), are reported for information; so is
//!   a lock that was never granted again while acquires kept failing
//!   (`lock-stuck`: a holder that crashed with no expiry blocks it forever).

use crate::anomaly::{result, who, Anomaly, Severity};
use crate::history::{History, Operation, Outcome};
use crate::linear::CheckError;
use crate::CheckResult;
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// End of the history, as an event index.
const END: u64 = u64::MAX;
/// Overlaps listed per hold; a holder that never released overlaps everyone after it.
const PER_HOLD: usize = 3;

#[derive(Clone, Debug)]
struct Hold {
    acquire: usize,
    release: Option<usize>,
    /// Certain span: acquire's completion to the release's invocation (event indices).
    start: u64,
    end: u64,
    /// A crashed acquire: the span is possible, from its invocation.
    possible: bool,
    token: Option<i64>,
    lease_ms: Option<u64>,
}

pub fn check(history: &History) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let mut anomalies = Vec::new();
    let mut grants = 0usize;
    for (key, ids) in history.by_key() {
        let ops: Vec<&Operation> = ids.iter().map(|&i| &history.ops[i]).collect();
        for op in &ops {
            if op.f != "acquire" && op.f != "release" {
                return Err(CheckError::Op {
                    event: op.call,
                    message: format!(
                        "model lock has no operation {:?}: it knows acquire and release",
                        op.f
                    ),
                });
            }
        }
        let holds = holds(&ops, key.as_ref(), &mut anomalies);
        grants += holds.iter().filter(|h| !h.possible).count();
        overlaps(history, &holds, key.as_ref(), &mut anomalies);
        tokens(history, &holds, key.as_ref(), &mut anomalies);
        stuck(&ops, key.as_ref(), &mut anomalies);
    }
    let summary = json!({ "grants": grants });
    let mut r = result("lock", history.ops.len(), start, anomalies, Some(summary));
    r.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(r)
}

fn lock_name(key: Option<&Value>) -> String {
    match key {
        Some(Value::String(s)) => format!("lock {s:?}"),
        Some(k) => format!("lock {k}"),
        None => "the lock".into(),
    }
}

fn field_u64(v: &Option<Value>, name: &str) -> Option<u64> {
    v.as_ref()?.get(name)?.as_u64()
}

fn field_i64(v: &Option<Value>, name: &str) -> Option<i64> {
    v.as_ref()?.get(name)?.as_i64()
}

/// Walks each process's operations in order and builds the holds.
fn holds(ops: &[&Operation], key: Option<&Value>, anomalies: &mut Vec<Anomaly>) -> Vec<Hold> {
    let lock = lock_name(key);
    let mut holds: Vec<Hold> = Vec::new();
    // Per process: the hold it is in, if any.
    let mut open: rustc_hash::FxHashMap<crate::history::Process, usize> = Default::default();
    for op in ops {
        match (op.f.as_str(), op.outcome) {
            ("acquire", Outcome::Ok) => {
                if open.contains_key(&op.process) {
                    anomalies.push(
                        Anomaly::new(
                            "acquire-while-holding",
                            Severity::Info,
                            key,
                            format!(
                                "{} acquired {lock} again at {} while it still held it",
                                who(op),
                                op.describe_time(true)
                            ),
                        )
                        .op(op),
                    );
                    continue;
                }
                open.insert(op.process, holds.len());
                holds.push(Hold {
                    acquire: op.id,
                    release: None,
                    start: op.ret.unwrap_or(op.call),
                    end: END,
                    possible: false,
                    token: field_i64(&op.output, "token"),
                    lease_ms: field_u64(&op.output, "lease_ms"),
                });
            }
            ("acquire", Outcome::Info) => {
                let never = op.ret.is_none();
                anomalies.push(
                    Anomaly::new(
                        "acquire-unanswered",
                        Severity::Info,
                        key,
                        format!(
                            "{}'s acquire of {lock} (invoked at {}) {}",
                            who(op),
                            op.describe_time(false),
                            if never {
                                "never returned".to_string()
                            } else {
                                format!("timed out at {}", op.describe_time(true))
                            }
                        ),
                    )
                    .op(op),
                );
                open.insert(op.process, holds.len());
                holds.push(Hold {
                    acquire: op.id,
                    release: None,
                    start: op.call,
                    end: END,
                    possible: true,
                    token: None,
                    lease_ms: None,
                });
            }
            ("acquire", _) => {}
            (_, outcome) => match open.remove(&op.process) {
                Some(h) => {
                    holds[h].end = op.call;
                    holds[h].release = Some(op.id);
                }
                None if outcome != Outcome::Fail => anomalies.push(
                    Anomaly::new(
                        "release-not-held",
                        Severity::Info,
                        key,
                        format!(
                            "{} released {lock} at {} without holding it",
                            who(op),
                            op.describe_time(false)
                        ),
                    )
                    .op(op),
                ),
                None => {}
            },
        }
    }
    holds
}

/// Sweeps holds by start; every hold still open when another starts overlaps it.
fn overlaps(history: &History, holds: &[Hold], key: Option<&Value>, anomalies: &mut Vec<Anomaly>) {
    let lock = lock_name(key);
    let mut order: Vec<usize> = (0..holds.len()).collect();
    order.sort_by_key(|&i| holds[i].start);
    // Open holds by end; a small number in any sane history.
    let mut active: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut reported = vec![0usize; holds.len()];
    for &i in &order {
        let h = &holds[i];
        while active
            .peek()
            .is_some_and(|Reverse((end, _))| *end <= h.start)
        {
            active.pop();
        }
        for &Reverse((_, j)) in active.iter() {
            let a = &holds[j];
            if reported[j] >= PER_HOLD || reported[i] >= PER_HOLD {
                continue;
            }
            // Two possible holds say nothing.
            if a.possible && h.possible {
                continue;
            }
            reported[j] += 1;
            reported[i] += 1;
            anomalies.push(describe(history, a, h, &lock, key));
        }
        active.push(Reverse((h.end, i)));
    }
}

fn describe(history: &History, a: &Hold, h: &Hold, lock: &str, key: Option<&Value>) -> Anomaly {
    let (aa, ha) = (&history.ops[a.acquire], &history.ops[h.acquire]);
    let token = |x: &Hold| x.token.map(|t| format!(", token {t}")).unwrap_or_default();
    let until = |x: &Hold| match x.release {
        Some(r) => format!("released at {}", history.ops[r].describe_time(false)),
        None => "never released".to_string(),
    };
    let end = match (a.release, h.release) {
        (Some(r1), Some(r2)) => {
            let (o1, o2) = (&history.ops[r1], &history.ops[r2]);
            if o1.call < o2.call {
                o1.describe_time(false)
            } else {
                o2.describe_time(false)
            }
        }
        (Some(r), None) | (None, Some(r)) => history.ops[r].describe_time(false),
        (None, None) => "the end of the history".into(),
    };
    let mut anomaly = if a.possible || h.possible {
        let (p, c) = if a.possible { (a, h) } else { (h, a) };
        let (po, co) = (&history.ops[p.acquire], &history.ops[c.acquire]);
        Anomaly::new(
            "possible-overlap",
            Severity::Possible,
            key,
            format!(
                "{}'s acquire of {lock} crashed (invoked at {}); if it was granted, it overlapped {}'s hold (granted by {}{}, {})",
                who(po),
                po.describe_time(false),
                who(co),
                co.describe_time(true),
                token(c),
                until(c)
            ),
        )
    } else {
        let both = format!(
            "{} (granted by {}{}, {}) and {} (granted by {}{}, {})",
            who(aa),
            aa.describe_time(true),
            token(a),
            until(a),
            who(ha),
            ha.describe_time(true),
            token(h),
            until(h)
        );
        let expired = match (a.lease_ms, aa.ret_time, ha.call_time) {
            (Some(ms), Some(granted), Some(next)) => {
                // A lease too long to end inside u64 nanoseconds never runs out.
                let runs_out = ms
                    .checked_mul(1_000_000)
                    .and_then(|d| granted.checked_add(d));
                runs_out
                    .filter(|&end| end <= next)
                    .map(|end| (ms, end, next))
            }
            _ => None,
        };
        match expired {
            Some((ms, runs_out, next)) => {
                let secs = |ns: u64| format!("{:.3} s", ns as f64 / 1e9);
                let lease = format!(
                    "{}'s lease ({ms} ms, granted by {}) had run out by {}, {:.3} s before {} asked for the lock",
                    who(aa),
                    aa.describe_time(true),
                    secs(runs_out),
                    (next - runs_out) as f64 / 1e9,
                    who(ha)
                );
                if a.release.is_some() {
                    Anomaly::new(
                        "lease-expired-overlap",
                        Severity::Invalid,
                        key,
                        format!(
                            "two clients held {lock} at once, from {} to {end}: {both}; {lease}, yet it went on as holder until its release (a lease expired under a holder that kept acting)",
                            ha.describe_time(true)
                        ),
                    )
                } else {
                    Anomaly::new(
                        "lease-expired-handover",
                        Severity::Info,
                        key,
                        format!(
                            "{lock} passed to {} at {} after {lease}; the old holder never acted again",
                            who(ha),
                            ha.describe_time(true)
                        ),
                    )
                }
            }
            None => Anomaly::new(
                "double-grant",
                Severity::Invalid,
                key,
                format!(
                    "two clients held {lock} at once, from {} to {end}: {both}",
                    ha.describe_time(true)
                ),
            ),
        }
    };
    anomaly = anomaly.op(aa).op(ha);
    for r in [a.release, h.release].into_iter().flatten() {
        anomaly = anomaly.op(&history.ops[r]);
    }
    anomaly.with("processes", json!([aa.process, ha.process]))
}

/// Acquires that stopped succeeding: once the last grant should have
/// ended (its holder asked to release it, or its lease ran out), at least
/// STUCK_AFTER acquires failed or timed out and none succeeded.
const STUCK_AFTER: usize = 3;

fn stuck(ops: &[&Operation], key: Option<&Value>, anomalies: &mut Vec<Anomaly>) {
    let lock = lock_name(key);
    let last = ops
        .iter()
        .filter(|o| o.f == "acquire" && o.outcome == Outcome::Ok)
        .max_by_key(|o| o.ret.unwrap_or(o.call));
    let release = last.and_then(|g| {
        ops.iter()
            .find(|o| o.process == g.process && o.f == "release" && o.call > g.call)
    });
    // An acquire while the last holder still holds the lock failing is
    // contention, not a stuck lock: only those asked once it should be free.
    let lease_end = last.and_then(|g| {
        let ms = g
            .output
            .as_ref()
            .and_then(|v| v.get("lease_ms"))?
            .as_u64()?;
        ms.checked_mul(1_000_000)?.checked_add(g.ret_time?)
    });
    let free = |o: &Operation| match last {
        None => true,
        Some(g) => {
            o.call > g.ret.unwrap_or(g.call)
                && (release.is_some_and(|r| o.call > r.call)
                    || lease_end.is_some_and(|end| o.call_time.is_some_and(|t| t > end)))
        }
    };
    let blocked: Vec<&&Operation> = ops
        .iter()
        .filter(|o| o.f == "acquire" && o.outcome != Outcome::Ok && free(o))
        .collect();
    if blocked.len() < STUCK_AFTER {
        return;
    }
    let (first, latest) = (blocked[0], blocked[blocked.len() - 1]);
    let holder = match last {
        None => format!("{lock} was never granted"),
        Some(g) => {
            let fate = match release {
                None => "never released it".to_string(),
                Some(r) if r.outcome == Outcome::Ok => {
                    format!("released it at {}", r.describe_time(false))
                }
                Some(r) if r.outcome == Outcome::Fail => format!(
                    "tried to release it at {}, and the release failed",
                    r.describe_time(false)
                ),
                Some(r) => format!(
                    "tried to release it at {}, and the release crashed",
                    r.describe_time(false)
                ),
            };
            format!(
                "{lock} was last granted to {} (by {}), which {fate}",
                who(g),
                g.describe_time(true)
            )
        }
    };
    let why = if lease_end.is_some() {
        "the lease should have freed it: is its expiry lost?"
    } else {
        "a holder that crashed with no expiry blocks a lock forever"
    };
    let mut a = Anomaly::new(
        "lock-stuck",
        Severity::Info,
        key,
        format!(
            "{holder}; after that, {} acquires failed or timed out and none succeeded, from {} to {} ({why})",
            blocked.len(),
            first.describe_time(false),
            latest.describe_time(true),
        ),
    );
    if let Some(g) = last {
        a = a.op(g);
    }
    anomalies.push(a.op(first).op(latest).with("blocked", json!(blocked.len())));
}

/// Tokens must increase in the real-time order of grants and never repeat.
fn tokens(history: &History, holds: &[Hold], key: Option<&Value>, anomalies: &mut Vec<Anomaly>) {
    let lock = lock_name(key);
    // (time, is completion, hold): sweep in time order.
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, h) in holds.iter().enumerate() {
        if h.token.is_some() && !h.possible {
            let op = &history.ops[h.acquire];
            events.push((op.call, false, i));
            events.push((h.start, true, i));
        }
    }
    events.sort_unstable();
    let mut best: Option<usize> = None; // completed grant with the highest token
    let mut before: rustc_hash::FxHashMap<usize, Option<usize>> = Default::default();
    let mut seen: rustc_hash::FxHashMap<i64, usize> = Default::default();
    for (_, done, i) in events {
        let t = holds[i].token.unwrap_or(0);
        if !done {
            before.insert(i, best);
            continue;
        }
        let op = &history.ops[holds[i].acquire];
        let prior = before.get(&i).copied().flatten();
        if let Some(p) = prior.filter(|&p| holds[p].token.unwrap_or(0) >= t) {
            let po = &history.ops[holds[p].acquire];
            let pt = holds[p].token.unwrap_or(0);
            anomalies.push(
                Anomaly::new(
                    if pt == t { "repeated-token" } else { "stale-token" },
                    Severity::Invalid,
                    key,
                    format!(
                        "{} was granted {lock} with token {t} at {}, but {} had already been granted token {pt} at {}, before {} asked",
                        who(op),
                        op.describe_time(true),
                        who(po),
                        po.describe_time(true),
                        who(op)
                    ),
                )
                .op(po)
                .op(op)
                .with("tokens", json!([pt, t])),
            );
        } else if let Some(&p) = seen.get(&t) {
            let po = &history.ops[holds[p].acquire];
            anomalies.push(
                Anomaly::new(
                    "repeated-token",
                    Severity::Invalid,
                    key,
                    format!(
                        "{} and {} were both granted {lock} with token {t} (at {} and {})",
                        who(po),
                        who(op),
                        po.describe_time(true),
                        op.describe_time(true)
                    ),
                )
                .op(po)
                .op(op)
                .with("tokens", json!([t, t])),
            );
        }
        seen.entry(t).or_insert(i);
        if best.is_none_or(|b| holds[b].token.unwrap_or(0) < t) {
            best = Some(i);
        }
    }
}
