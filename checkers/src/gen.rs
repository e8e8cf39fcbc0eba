//! A seeded generator of histories with known verdicts, for property tests
//! and benchmarks.
//!
//! It simulates clients against one correct register per key: each operation
//! is invoked, takes effect at a random instant inside its interval (its
//! linearization point), and completes. Crashed operations complete as
//! `info`, take effect or not at random, and their process continues under a
//! new number, as docs/formats.md requires. Written values are unique (or, with
//! [`GenConfig::values`], drawn from a small domain as Jepsen's register
//! workloads do); the history is linearizable by construction either way.
//! [`inject_stale_read`] and [`inject_impossible_read`] then make it
//! certainly not.
//!
//! ```
//! use checkers::gen::{generate, GenConfig};
//! let events = generate(&GenConfig { ops: 100, ..GenConfig::default() });
//! assert_eq!(events.len(), 200);
//! ```

use crate::history::{Event, EventType, Process};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Clone, Debug)]
pub struct GenConfig {
    pub ops: usize,
    /// Independent keys; with one key, events carry no key.
    pub keys: usize,
    /// Concurrent client slots.
    pub processes: usize,
    /// Fraction of operations that crash (complete as info).
    pub crash_rate: f64,
    /// Whether to issue cas operations (read/write only otherwise).
    pub cas: bool,
    /// Every this many operations, clients wait until nothing is in flight,
    /// leaving a quiet gap (0: never).
    pub quiet_every: usize,
    /// 0: every written value is unique. N: values are drawn from 0..N, as
    /// Jepsen's cas-register workload does (0..5), and only writes and cas
    /// crash (a crashed read says nothing).
    pub values: u64,
    /// With `values`: writes and cas of value 0 invoked in the first this
    /// fraction of the operations never crash, so that a stale read of 0
    /// can be injected there ([`inject_stale_read`]): a crashed write of a
    /// value may take effect at any later time and explain any read of it.
    pub spare: Option<f64>,
    pub seed: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            ops: 1000,
            keys: 1,
            processes: 5,
            crash_rate: 0.0,
            cas: true,
            quiet_every: 0,
            values: 0,
            spare: None,
            seed: 1,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum F {
    Read,
    Write,
    Cas,
}

struct Op {
    process: u64,
    key: usize,
    f: F,
    /// write: the value; cas: (old, new); read: unused.
    arg: (i64, i64),
    invoke: u64,
    lin: u64,
    complete: u64,
    crashed: bool,
    /// Whether a crashed operation takes effect.
    effective: bool,
    /// Read result (None for null); cas success.
    read: Option<i64>,
    ok: bool,
}

/// Mean duration of an operation's halves, in nanoseconds.
const SPAN: u64 = 1_000_000;

/// Generates a linearizable history (events in time order).
pub fn generate(cfg: &GenConfig) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let procs = cfg.processes.max(1);
    let keys = cfg.keys.max(1);
    let mut free: BinaryHeap<Reverse<(u64, usize)>> = (0..procs)
        .map(|s| Reverse((rng.gen_range(0..SPAN), s)))
        .collect();
    let mut pid: Vec<u64> = (0..procs as u64).collect();
    let mut next_pid = procs as u64;
    let mut next_value = 1i64;
    let mut last_written: Vec<Option<i64>> = vec![None; keys];
    let mut ops: Vec<Op> = Vec::with_capacity(cfg.ops);
    while ops.len() < cfg.ops {
        if cfg.quiet_every > 0 && !ops.is_empty() && ops.len().is_multiple_of(cfg.quiet_every) {
            let done = ops.iter().map(|o| o.complete).max().unwrap_or(0);
            let resume = done + 2 * SPAN;
            free = free
                .into_iter()
                .map(|Reverse((_, s))| Reverse((resume, s)))
                .collect();
        }
        let Some(Reverse((t, slot))) = free.pop() else {
            break;
        };
        let key = rng.gen_range(0..keys);
        let roll: f64 = rng.gen();
        let f = if roll < 0.5 {
            F::Read
        } else if roll < 0.8 || !cfg.cas {
            F::Write
        } else {
            F::Cas
        };
        let domain = cfg.values as i64;
        let arg = match f {
            F::Read => (0, 0),
            F::Write if domain > 0 => {
                let v = rng.gen_range(0..domain);
                last_written[key] = Some(v);
                (v, 0)
            }
            F::Cas if domain > 0 => {
                let old = if rng.gen_bool(0.8) {
                    last_written[key].unwrap_or(0)
                } else {
                    rng.gen_range(0..domain)
                };
                let new = rng.gen_range(0..domain);
                last_written[key] = Some(new);
                (old, new)
            }
            F::Write => {
                next_value += 1;
                last_written[key] = Some(next_value);
                (next_value, 0)
            }
            F::Cas => {
                next_value += 1;
                // Usually the latest value written, so that many cas succeed.
                let old = if rng.gen_bool(0.8) {
                    last_written[key].unwrap_or(0)
                } else {
                    rng.gen_range(1..=next_value)
                };
                last_written[key] = Some(next_value);
                (old, next_value)
            }
        };
        let lin = t + 1 + rng.gen_range(0..SPAN);
        let complete = lin + 1 + rng.gen_range(0..SPAN);
        let writes = match f {
            F::Read => None,
            F::Write => Some(arg.0),
            F::Cas => Some(arg.1),
        };
        let spared = domain > 0
            && writes == Some(0)
            && cfg
                .spare
                .is_some_and(|at| (ops.len() as f64) < at * cfg.ops as f64);
        let crashed = (domain == 0 || f != F::Read)
            && rng.gen_bool(cfg.crash_rate.clamp(0.0, 1.0))
            && !spared;
        ops.push(Op {
            process: pid[slot],
            key,
            f,
            arg,
            invoke: t,
            lin,
            complete,
            crashed,
            effective: crashed && rng.gen_bool(0.5),
            read: None,
            ok: false,
        });
        if crashed {
            pid[slot] = next_pid;
            next_pid += 1;
        }
        free.push(Reverse((complete + 1 + rng.gen_range(0..SPAN / 2), slot)));
    }

    // Apply effects at the linearization points.
    let mut by_lin: Vec<usize> = (0..ops.len()).collect();
    by_lin.sort_by_key(|&i| ops[i].lin);
    let mut state: Vec<Option<i64>> = vec![None; keys];
    for i in by_lin {
        let op = &mut ops[i];
        if op.crashed && !op.effective {
            continue;
        }
        let s = &mut state[op.key];
        match op.f {
            F::Read => op.read = *s,
            F::Write => {
                *s = Some(op.arg.0);
                op.ok = true;
            }
            F::Cas => {
                op.ok = *s == Some(op.arg.0);
                if op.ok {
                    *s = Some(op.arg.1);
                }
            }
        }
    }

    // Events in time order; invocations and completions never share a time
    // within a process, and ties across processes keep generation order.
    let mut stamps: Vec<(u64, usize, bool)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        stamps.push((op.invoke, i, true));
        stamps.push((op.complete, i, false));
    }
    stamps.sort_by_key(|&(t, i, inv)| (t, !inv, i));
    let key_of = |k: usize| (keys > 1).then(|| Value::from(format!("k{k}")));
    stamps
        .iter()
        .enumerate()
        .map(|(index, &(time, i, inv))| {
            let op = &ops[i];
            let f = match op.f {
                F::Read => "read",
                F::Write => "write",
                F::Cas => "cas",
            };
            let input = match op.f {
                F::Read => Value::Null,
                F::Write => json!(op.arg.0),
                F::Cas => json!([op.arg.0, op.arg.1]),
            };
            let (kind, value) = if inv {
                (EventType::Invoke, input)
            } else if op.crashed {
                (EventType::Info, input)
            } else {
                match op.f {
                    F::Read => (EventType::Ok, op.read.map_or(Value::Null, Value::from)),
                    F::Write => (EventType::Ok, input),
                    F::Cas if op.ok => (EventType::Ok, input),
                    F::Cas => (EventType::Fail, input),
                }
            };
            Event {
                index: index as u64,
                time: Some(time),
                process: Process::Client(op.process),
                kind,
                f: f.to_string(),
                key: key_of(op.key),
                value,
                node: None,
                error: None,
            }
        })
        .collect()
}

/// (invoke index, completion index or None if crashed, key, value, ok).
type Writer = (usize, Option<usize>, Option<Value>, i64, bool);

/// Adds one read, alone in a quiet gap (nothing in flight), that returns a
/// value certainly overwritten before it began: a value `v` written by an
/// operation that completed before another write `X` to the same key was
/// invoked, where `X` completed before the gap and no operation that could
/// write `v` (crashed ones included: they may take effect at any time) may
/// be linearized after `X`. No linearization can explain it, whatever the
/// value domain. Returns the index of the read's completion.
///
/// Needs quiet gaps (GenConfig::quiet_every, or the end of the history). With
/// a small value domain and crashed writes, such a read exists only before
/// the first crashed write of its value: later, that write explains it
/// (GenConfig::spare keeps value 0 free of them up to a point).
///
/// `near`: the gaps nearest this fraction of the history are tried first
/// (0.0 the start, 0.5 the middle, 1.0 the end); None: from a random gap.
pub fn inject_stale_read(events: &mut Vec<Event>, seed: u64, near: Option<f64>) -> Option<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut gaps = quiet_gaps(events);
    let start = rng.gen_range(0..gaps.len().max(1));
    gaps.rotate_left(start);
    if let Some(f) = near {
        let aim = f.clamp(0.0, 1.0) * events.len() as f64;
        gaps.sort_by(|a, b| (*a as f64 - aim).abs().total_cmp(&(*b as f64 - aim).abs()));
    }
    // Operations that may write: (invoke index, completion index (None:
    // crashed, at the end of time), key, value, completed ok).
    let mut inv_of = std::collections::HashMap::new();
    let mut writers: Vec<Writer> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            inv_of.insert(e.process, i);
            continue;
        }
        let Some(inv) = inv_of.remove(&e.process) else {
            continue;
        };
        let v = match e.f.as_str() {
            "write" => e.value.as_i64(),
            "cas" => e.value.get(1).and_then(Value::as_i64),
            _ => None,
        };
        let (Some(v), true) = (v, matches!(e.kind, EventType::Ok | EventType::Info)) else {
            continue;
        };
        let ok = e.kind == EventType::Ok;
        writers.push((inv, ok.then_some(i), e.key.clone(), v, ok));
    }
    let mut by_value: std::collections::HashMap<(Option<String>, i64), Vec<usize>> =
        std::collections::HashMap::new();
    for (k, w) in writers.iter().enumerate() {
        by_value
            .entry((w.2.as_ref().map(Value::to_string), w.3))
            .or_default()
            .push(k);
    }
    // Ok writers in completion order.
    let mut done: Vec<usize> = (0..writers.len()).filter(|&k| writers[k].4).collect();
    done.sort_by_key(|&k| writers[k].1);
    // No writer of `v` (other than completed ones before `x` was invoked)
    // may take effect after `x`, invoked before the gap.
    let certain = |x: usize, v: i64, gap: usize| {
        let (x_inv, key) = (writers[x].0, writers[x].2.as_ref().map(Value::to_string));
        writers[x].3 != v
            && by_value[&(key, v)]
                .iter()
                .all(|&w| writers[w].0 > gap || writers[w].1.is_some_and(|r| r < x_inv))
    };
    for &gap in &gaps {
        let upto = done.partition_point(|&w| writers[w].1.is_some_and(|r| r <= gap));
        for &x in done[..upto].iter().rev() {
            let key = &writers[x].2;
            let before = done[..upto]
                .iter()
                .rev()
                .filter(|&&w| writers[w].2 == *key && writers[w].1 < Some(writers[x].0));
            let mut tried = std::collections::HashSet::new();
            for &w in before {
                let old = writers[w].3;
                if !tried.insert(old) || !certain(x, old, gap) {
                    continue;
                }
                let t = events[gap].time.unwrap_or(0);
                let key = key.clone();
                return Some(insert_read(
                    events,
                    gap,
                    (t + 1, t + 2),
                    key,
                    Value::from(old),
                ));
            }
        }
    }
    None
}

/// Adds one read of a value no operation writes (one more than the largest
/// integer in the history), at a random place: a violation with an obvious
/// witness. Returns the index of the read's completion. `near`: at this
/// fraction of the history (0.0 the start, 1.0 the end) instead.
pub fn inject_impossible_read(
    events: &mut Vec<Event>,
    seed: u64,
    near: Option<f64>,
) -> Option<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let max = events
        .iter()
        .flat_map(|e| match &e.value {
            Value::Array(a) => a.iter().filter_map(Value::as_i64).collect(),
            v => v.as_i64().into_iter().collect::<Vec<_>>(),
        })
        .max()
        .unwrap_or(0);
    let key = events
        .iter()
        .find(|e| e.f == "read")
        .map(|e| e.key.clone())?;
    let at = match near {
        Some(f) => ((f.clamp(0.0, 1.0) * events.len() as f64) as usize).min(events.len() - 1),
        None => rng.gen_range(0..events.len()),
    };
    let t = events[at].time.unwrap_or(0);
    Some(insert_read(events, at, (t, t), key, Value::from(max + 1)))
}

/// Positions after which nothing is in flight.
fn quiet_gaps(events: &[Event]) -> Vec<usize> {
    let mut open = 0i64;
    let mut gaps = Vec::new();
    for (i, e) in events.iter().enumerate() {
        open += if e.kind == EventType::Invoke { 1 } else { -1 };
        if open == 0 {
            gaps.push(i);
        }
    }
    gaps
}

/// Inserts a read by a new process right after event `at`, invoked and
/// completed at the times `at_times`, returning `value`; renumbers. Returns
/// the completion's index.
fn insert_read(
    events: &mut Vec<Event>,
    at: usize,
    at_times: (u64, u64),
    key: Option<Value>,
    value: Value,
) -> usize {
    let process = events
        .iter()
        .filter_map(|e| match e.process {
            Process::Client(p) => Some(p),
            Process::Nemesis => None,
        })
        .max()
        .map_or(0, |p| p + 1);
    let read = |kind, time, value| Event {
        index: 0,
        time: Some(time),
        process: Process::Client(process),
        kind,
        f: "read".into(),
        key: key.clone(),
        value,
        node: None,
        error: None,
    };
    events.insert(at + 1, read(EventType::Invoke, at_times.0, Value::Null));
    events.insert(at + 2, read(EventType::Ok, at_times.1, value));
    for (i, e) in events.iter_mut().enumerate() {
        e.index = i as u64;
    }
    at + 2
}

/// What one simulated operation is: its name, its argument, and whether
/// it may be left crashed (reads are never crashed: they would say nothing).
pub struct Spec {
    pub f: &'static str,
    pub input: Value,
    pub key: Option<Value>,
}

/// Simulates clients against a correct system: each operation takes effect
/// at a random instant inside its interval, in that order, through `apply`
/// (which returns the completion value and whether it succeeded). Crashed
/// operations take effect or not at random and complete as `info`.
pub fn simulate<S>(
    ops: usize,
    processes: usize,
    crash_rate: f64,
    seed: u64,
    state: &mut S,
    mut make: impl FnMut(&mut ChaCha8Rng) -> Spec,
    mut apply: impl FnMut(&mut S, &Spec) -> (Value, bool),
) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let procs = processes.max(1);
    let mut free: BinaryHeap<Reverse<(u64, usize)>> = (0..procs)
        .map(|s| Reverse((rng.gen_range(0..SPAN), s)))
        .collect();
    let mut pid: Vec<u64> = (0..procs as u64).collect();
    let mut next_pid = procs as u64;
    // (spec, process, invoke, lin, complete, crashed, effective)
    let mut planned: Vec<(Spec, u64, u64, u64, u64, bool, bool)> = Vec::with_capacity(ops);
    while planned.len() < ops {
        let Some(Reverse((t, slot))) = free.pop() else {
            break;
        };
        let spec = make(&mut rng);
        let lin = t + 1 + rng.gen_range(0..SPAN);
        let complete = lin + 1 + rng.gen_range(0..SPAN);
        let crashed = spec.f != "read" && rng.gen_bool(crash_rate.clamp(0.0, 1.0));
        let effective = crashed && rng.gen_bool(0.5);
        planned.push((spec, pid[slot], t, lin, complete, crashed, effective));
        if crashed {
            pid[slot] = next_pid;
            next_pid += 1;
        }
        free.push(Reverse((complete + 1 + rng.gen_range(0..SPAN / 2), slot)));
    }
    let mut by_lin: Vec<usize> = (0..planned.len()).collect();
    by_lin.sort_by_key(|&i| planned[i].3);
    let mut results: Vec<(Value, bool)> = vec![(Value::Null, false); planned.len()];
    for i in by_lin {
        let p = &planned[i];
        if p.5 && !p.6 {
            continue;
        }
        results[i] = apply(state, &p.0);
    }
    let mut stamps: Vec<(u64, bool, usize)> = Vec::with_capacity(planned.len() * 2);
    for (i, p) in planned.iter().enumerate() {
        stamps.push((p.2, true, i));
        stamps.push((p.4, false, i));
    }
    stamps.sort_by_key(|&(t, inv, i)| (t, !inv, i));
    stamps
        .into_iter()
        .enumerate()
        .map(|(index, (time, inv, i))| {
            let (spec, process, _, _, _, crashed, _) = &planned[i];
            let (kind, value) = if inv {
                (EventType::Invoke, spec.input.clone())
            } else if *crashed {
                (EventType::Info, spec.input.clone())
            } else if results[i].1 {
                (EventType::Ok, results[i].0.clone())
            } else {
                (EventType::Fail, results[i].0.clone())
            };
            Event {
                index: index as u64,
                time: Some(time),
                process: Process::Client(*process),
                kind,
                f: spec.f.to_string(),
                key: spec.key.clone(),
                value,
                node: None,
                error: None,
            }
        })
        .collect()
}

/// A valid counter history: adds of -2..=5 and reads.
pub fn counter(ops: usize, processes: usize, crash_rate: f64, seed: u64) -> Vec<Event> {
    let mut total = 0i64;
    simulate(
        ops,
        processes,
        crash_rate,
        seed,
        &mut total,
        |rng| {
            if rng.gen_bool(0.5) {
                Spec {
                    f: "read",
                    input: Value::Null,
                    key: None,
                }
            } else {
                Spec {
                    f: "add",
                    input: json!(rng.gen_range(-2..=5)),
                    key: None,
                }
            }
        },
        |total, s| match s.f {
            "add" => {
                *total += s.input.as_i64().unwrap_or(0);
                (s.input.clone(), true)
            }
            _ => (json!(*total), true),
        },
    )
}

/// A valid set history: unique adds, about `reads` reads of the whole set
/// during the run, then a final read.
pub fn set(ops: usize, processes: usize, crash_rate: f64, reads: usize, seed: u64) -> Vec<Event> {
    let mut members: Vec<i64> = Vec::new();
    let mut next = 0i64;
    let mut events = simulate(
        ops,
        processes,
        crash_rate,
        seed,
        &mut members,
        |rng| {
            // Reads return the whole set: keep them rare in big histories.
            if rng.gen_bool((reads as f64 / ops.max(1) as f64).min(0.05)) {
                Spec {
                    f: "read",
                    input: Value::Null,
                    key: None,
                }
            } else {
                next += 1;
                Spec {
                    f: "add",
                    input: json!(next),
                    key: None,
                }
            }
        },
        |members, s| match s.f {
            "add" => {
                members.push(s.input.as_i64().unwrap_or(0));
                (s.input.clone(), true)
            }
            _ => (json!(members), true),
        },
    );
    // The final read, after everything: every add that took effect.
    let t = events.last().and_then(|e| e.time).unwrap_or(0);
    let process = Process::Client(u64::MAX / 2);
    let n = events.len() as u64;
    let read = |index, time, kind, value| Event {
        index,
        time: Some(time),
        process,
        kind,
        f: "read".into(),
        key: None,
        value,
        node: None,
        error: None,
    };
    events.push(read(n, t + 1, EventType::Invoke, Value::Null));
    events.push(read(n + 1, t + 2, EventType::Ok, json!(members)));
    events
}

/// A valid bank history over `accounts` accounts of 100 each: transfers that
/// fail when the balance is short, and whole-bank reads.
pub fn bank(
    ops: usize,
    processes: usize,
    accounts: usize,
    crash_rate: f64,
    seed: u64,
) -> (Vec<Event>, Value) {
    let n = accounts.max(2);
    let mut balances: Vec<i64> = vec![100; n];
    let name = |i: usize| format!("a{i}");
    let events = simulate(
        ops,
        processes,
        crash_rate,
        seed,
        &mut balances,
        |rng| {
            if rng.gen_bool(0.3) {
                Spec {
                    f: "read",
                    input: Value::Null,
                    key: None,
                }
            } else {
                let from = rng.gen_range(0..n);
                let to = (from + rng.gen_range(1..n)) % n;
                Spec {
                    f: "transfer",
                    input: json!({"from": name(from), "to": name(to), "amount": rng.gen_range(1..=20)}),
                    key: None,
                }
            }
        },
        |b, s| match s.f {
            "transfer" => {
                let idx = |k: &str| {
                    s.input[k]
                        .as_str()
                        .and_then(|a| a[1..].parse::<usize>().ok())
                        .unwrap_or(0)
                };
                let (from, to, amount) = (
                    idx("from"),
                    idx("to"),
                    s.input["amount"].as_i64().unwrap_or(0),
                );
                if b[from] < amount {
                    return (s.input.clone(), false);
                }
                b[from] -= amount;
                b[to] += amount;
                (s.input.clone(), true)
            }
            _ => {
                let m: serde_json::Map<String, Value> = b
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (name(i), json!(v)))
                    .collect();
                (Value::Object(m), true)
            }
        },
    );
    let init: serde_json::Map<String, Value> = (0..n).map(|i| (name(i), json!(100))).collect();
    (events, Value::Object(init))
}

/// A valid lock history: a correct lock service grants one holder at a time,
/// with increasing fencing tokens; clients wait, hold briefly, release.
pub fn lock(holds: usize, processes: usize, seed: u64) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let procs = processes.max(1) as u64;
    let mut stamps: Vec<(u64, u64, EventType, &'static str, Value)> = Vec::new();
    let mut t = SPAN;
    // Each process's last event: its next acquire comes after it.
    let mut last_done: rustc_hash::FxHashMap<u64, u64> = Default::default();
    for token in 1..=holds as i64 {
        let p = rng.gen_range(0..procs);
        // Invoked a while before the grant (it waited), answered just after.
        let floor = last_done.get(&p).map_or(0, |d| d + 1);
        let invoke = t.saturating_sub(rng.gen_range(0..SPAN)).max(floor);
        let grant = t;
        let ok = grant + 1 + rng.gen_range(0..SPAN / 4);
        let release = ok + 1 + rng.gen_range(0..SPAN);
        let released = release + 1 + rng.gen_range(0..SPAN / 4);
        stamps.push((invoke, p, EventType::Invoke, "acquire", Value::Null));
        stamps.push((
            ok,
            p,
            EventType::Ok,
            "acquire",
            json!({"token": token, "lease_ms": 10_000}),
        ));
        stamps.push((release, p, EventType::Invoke, "release", Value::Null));
        stamps.push((released, p, EventType::Ok, "release", Value::Null));
        last_done.insert(p, released);
        // The next grant comes after this release took effect.
        t = released + 1 + rng.gen_range(0..SPAN / 2);
    }
    let mut fixed = stamps;
    fixed.sort_by_key(|s| s.0);
    fixed
        .into_iter()
        .enumerate()
        .map(|(index, (time, p, kind, f, value))| Event {
            index: index as u64,
            time: Some(time),
            process: Process::Client(p),
            kind,
            f: f.into(),
            key: None,
            value,
            node: None,
            error: None,
        })
        .collect()
}
