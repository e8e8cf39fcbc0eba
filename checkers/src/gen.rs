//! A seeded generator of histories with known verdicts, for property tests
//! and benchmarks.
//!
//! It simulates clients against one correct register per key: each operation
//! is invoked, takes effect at a random instant inside its interval (its
//! linearization point), and completes. Crashed operations complete as
//! `info`, take effect or not at random, and their process continues under a
//! new number, as CONTRACT.md requires. Written values are unique, so the
//! history is linearizable by construction; [`inject_stale_read`] then
//! makes it certainly not.
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
        let arg = match f {
            F::Read => (0, 0),
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
        let crashed = rng.gen_bool(cfg.crash_rate.clamp(0.0, 1.0));
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

/// Adds one read, alone in a quiet gap (nothing in flight), that returns a
/// value certainly overwritten before it began: a value written by an
/// operation that completed before another write to the same key was
/// invoked, which completed before the gap. With unique values no
/// linearization can explain it. Returns the index of the read's completion.
///
/// Needs quiet gaps (GenConfig::quiet_every, or the end of the history).
pub fn inject_stale_read(events: &mut Vec<Event>, seed: u64) -> Option<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Gaps: positions after which nothing is in flight.
    let mut open = 0i64;
    let mut gaps = Vec::new();
    for (i, e) in events.iter().enumerate() {
        open += if e.kind == EventType::Invoke { 1 } else { -1 };
        if open == 0 {
            gaps.push(i);
        }
    }
    // Completed writes and successful cas: (invoke index, completion index, key, value).
    let mut inv_of = std::collections::HashMap::new();
    let mut writes: Vec<(usize, usize, Option<Value>, i64)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            inv_of.insert(e.process, i);
            continue;
        }
        let Some(inv) = inv_of.remove(&e.process) else {
            continue;
        };
        let v = match (e.kind, e.f.as_str()) {
            (EventType::Ok, "write") => e.value.as_i64(),
            (EventType::Ok, "cas") => e.value.get(1).and_then(Value::as_i64),
            _ => None,
        };
        if let Some(v) = v {
            writes.push((inv, i, e.key.clone(), v));
        }
    }
    let start = rng.gen_range(0..gaps.len().max(1));
    for k in 0..gaps.len() {
        let gap = gaps[(start + k) % gaps.len()];
        for (new_inv, new_done, key, _) in writes.iter().rev() {
            if *new_done > gap {
                continue;
            }
            let old = writes
                .iter()
                .rev()
                .find(|w| w.2 == *key && w.1 < *new_inv)
                .map(|w| w.3);
            let Some(old) = old else { continue };
            let t = events[gap].time.unwrap_or(0);
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
            events.insert(gap + 1, read(EventType::Invoke, t + 1, Value::Null));
            events.insert(gap + 2, read(EventType::Ok, t + 2, Value::from(old)));
            for (i, e) in events.iter_mut().enumerate() {
                e.index = i as u64;
            }
            return Some(gap + 2);
        }
    }
    None
}
