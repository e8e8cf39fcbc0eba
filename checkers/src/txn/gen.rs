//! Seeded list-append and rw-register histories from a correct (strictly
//! serializable) system, as Jepsen's generators make them: a small rotating
//! set of active keys, unique values per key, 1-4 micro-ops per transaction,
//! then a final read of every key.

use crate::gen::{simulate, Spec};
use crate::history::{Event, EventType, Process};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;

use super::TxnKind;

#[derive(Clone, Debug)]
pub struct TxnGen {
    pub kind: TxnKind,
    pub txns: usize,
    pub processes: usize,
    /// Keys in use at once.
    pub active_keys: usize,
    /// Appends (writes) to a key before it is retired for a fresh one.
    pub writes_per_key: usize,
    pub min_mops: usize,
    pub max_mops: usize,
    /// Share of transactions that crash (info; half of them take effect).
    pub crash_rate: f64,
    pub seed: u64,
}

impl Default for TxnGen {
    fn default() -> Self {
        TxnGen {
            kind: TxnKind::ListAppend,
            txns: 1000,
            processes: 20,
            active_keys: 10,
            writes_per_key: 32,
            min_mops: 1,
            max_mops: 4,
            crash_rate: 0.01,
            seed: 0,
        }
    }
}

/// A valid history: every transaction takes effect atomically at an instant
/// inside its interval.
pub fn generate(cfg: &TxnGen) -> Vec<Event> {
    let append = cfg.kind == TxnKind::ListAppend;
    let mut active: Vec<u64> = (0..cfg.active_keys.max(1) as u64).collect();
    let mut next_key = active.len() as u64;
    let mut writes: HashMap<u64, usize> = HashMap::new();
    let max_mops = cfg.max_mops.max(1);
    let min_mops = cfg.min_mops.clamp(1, max_mops);
    let make = |rng: &mut rand_chacha::ChaCha8Rng| {
        let n = rng.gen_range(min_mops..=max_mops);
        let mut mops = Vec::with_capacity(n);
        for _ in 0..n {
            let slot = rng.gen_range(0..active.len());
            let k = active[slot];
            if rng.gen_bool(0.5) {
                mops.push(json!(["r", k, null]));
            } else {
                let c = writes.entry(k).or_insert(0);
                *c += 1;
                let v = *c as u64;
                mops.push(json!([if append { "append" } else { "w" }, k, v]));
                if *c >= cfg.writes_per_key.max(1) {
                    active[slot] = next_key;
                    next_key += 1;
                }
            }
        }
        Spec {
            f: "txn",
            input: Value::Array(mops),
            key: None,
        }
    };
    let mut lists: HashMap<u64, Vec<u64>> = HashMap::new();
    let apply = |state: &mut HashMap<u64, Vec<u64>>, spec: &Spec| {
        let mut out = Vec::new();
        for m in spec.input.as_array().into_iter().flatten() {
            let (f, k) = (m[0].as_str().unwrap_or(""), m[1].as_u64().unwrap_or(0));
            let l = state.entry(k).or_default();
            match f {
                "r" if append => out.push(json!(["r", k, l.clone()])),
                "r" => out.push(json!(["r", k, l.last()])),
                _ => {
                    let v = m[2].as_u64().unwrap_or(0);
                    if append {
                        l.push(v);
                    } else {
                        *l = vec![v];
                    }
                    out.push(m.clone());
                }
            }
        }
        (Value::Array(out), true)
    };
    let mut events = simulate(
        cfg.txns,
        cfg.processes,
        cfg.crash_rate,
        cfg.seed,
        &mut lists,
        make,
        apply,
    );
    // Final reads of every key, by one more process, after everything.
    let mut keys: Vec<u64> = lists.keys().copied().collect();
    keys.sort_unstable();
    let mut time = events.iter().filter_map(|e| e.time).max().unwrap_or(0);
    let process = Process::Client(u32::MAX as u64);
    for chunk in keys.chunks(8) {
        let input: Vec<Value> = chunk.iter().map(|k| json!(["r", k, null])).collect();
        let output: Vec<Value> = chunk
            .iter()
            .map(|k| {
                let l = &lists[k];
                if append {
                    json!(["r", k, l])
                } else {
                    json!(["r", k, l.last()])
                }
            })
            .collect();
        for (kind, value) in [
            (EventType::Invoke, Value::Array(input)),
            (EventType::Ok, Value::Array(output)),
        ] {
            time += 1;
            events.push(Event {
                index: events.len() as u64,
                time: Some(time),
                process,
                kind,
                f: "txn".into(),
                key: None,
                value,
                node: None,
                error: None,
            });
        }
    }
    events
}
