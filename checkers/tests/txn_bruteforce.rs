//! The list-append checker against a brute-force reference on small
//! histories: search every order of the transactions (crashed ones in or
//! out) for a serial execution that explains every read.

use checkers::history::{Event, EventType, History, Process};
use checkers::txn::{check, Models, TxnKind};
use checkers::Validity;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
struct T {
    /// (append?, key, value or read list)
    mops: Vec<(bool, u64, Value)>,
    outcome: EventType,
    call: u64,
    ret: u64,
}

fn gen(seed: u64, register: bool) -> Vec<T> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.gen_range(2..=6);
    let mut next = [0u64; 2];
    let mut txns: Vec<T> = (0..n)
        .map(|_| {
            let m = rng.gen_range(1..=3);
            let mops = (0..m)
                .map(|_| {
                    let k = rng.gen_range(0..2u64);
                    if rng.gen_bool(0.5) {
                        next[k as usize] += 1;
                        (true, k, json!(next[k as usize]))
                    } else {
                        (false, k, Value::Null)
                    }
                })
                .collect();
            let outcome = match rng.gen_range(0..10) {
                0 => EventType::Info,
                1 => EventType::Fail,
                _ => EventType::Ok,
            };
            // Invocations at even times, completions at odd: no ties.
            let call = 2 * rng.gen_range(0..30u64);
            T {
                mops,
                outcome,
                call,
                ret: call + 2 * rng.gen_range(0..20) + 1,
            }
        })
        .collect();
    // A true serial execution in some order, then mutations.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    let mut state = [Vec::<u64>::new(), Vec::new()];
    for &i in &order {
        let t = &mut txns[i];
        if t.outcome == EventType::Fail || (t.outcome == EventType::Info && rng.gen_bool(0.5)) {
            continue;
        }
        for m in t.mops.iter_mut() {
            if m.0 {
                state[m.1 as usize].push(m.2.as_u64().unwrap());
            } else {
                m.2 = observe(&state[m.1 as usize], register);
            }
        }
    }
    for _ in 0..rng.gen_range(0..3) {
        let i = rng.gen_range(0..n);
        let j = rng.gen_range(0..txns[i].mops.len());
        let m = &mut txns[i].mops[j];
        if !m.0 {
            let full = &state[m.1 as usize];
            let cut = rng.gen_range(0..=full.len());
            let mut l = full[..cut].to_vec();
            if rng.gen_bool(0.3) && l.len() >= 2 {
                l.swap(0, 1);
            }
            m.2 = if register { json!(l.last()) } else { json!(l) };
        }
    }
    if rng.gen_bool(0.7) {
        let end = txns.iter().map(|t| t.ret).max().unwrap_or(0) + 1;
        // end is even: an invocation time.
        txns.push(T {
            mops: vec![(false, 0, json!(state[0])), (false, 1, json!(state[1]))],
            outcome: EventType::Ok,
            call: end,
            ret: end + 1,
        });
    }
    txns
}

/// What a read of a key sees: the list, or a register's last value.
fn observe(l: &[u64], register: bool) -> Value {
    if register {
        json!(l.last())
    } else {
        json!(l)
    }
}

fn history(txns: &[T], register: bool) -> History {
    let mut stamps: Vec<(u64, bool, usize)> = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        stamps.push((t.call, true, i));
        stamps.push((t.ret, false, i));
    }
    stamps.sort();
    let name = |k: u64| if k == 0 { "x" } else { "y" };
    let events = stamps
        .into_iter()
        .enumerate()
        .map(|(index, (time, inv, i))| {
            let t = &txns[i];
            let show_reads = !inv && t.outcome == EventType::Ok;
            let value: Vec<Value> = t
                .mops
                .iter()
                .map(|m| {
                    if m.0 {
                        json!([if register { "w" } else { "append" }, name(m.1), m.2])
                    } else if show_reads {
                        json!(["r", name(m.1), m.2])
                    } else {
                        json!(["r", name(m.1), null])
                    }
                })
                .collect();
            Event {
                index: index as u64,
                time: Some(time),
                process: Process::Client(i as u64),
                kind: if inv { EventType::Invoke } else { t.outcome },
                f: "txn".into(),
                key: None,
                value: Value::Array(value),
                node: None,
                error: None,
            }
        })
        .collect();
    History::from_events(events).unwrap()
}

/// Is there an order of the ok transactions, plus any of the crashed ones,
/// in which every read sees exactly the list so far (and, if `strict`,
/// which respects real time)?
fn serializable(txns: &[T], strict: bool, register: bool) -> bool {
    fn go(
        txns: &[T],
        strict: bool,
        register: bool,
        placed: &mut Vec<bool>,
        state: &mut [Vec<u64>; 2],
    ) -> bool {
        if txns
            .iter()
            .zip(placed.iter())
            .all(|(t, &p)| p || t.outcome != EventType::Ok)
        {
            return true;
        }
        for i in 0..txns.len() {
            let t = &txns[i];
            if placed[i] || t.outcome == EventType::Fail {
                continue;
            }
            if strict
                && txns
                    .iter()
                    .enumerate()
                    .any(|(j, u)| !placed[j] && u.outcome == EventType::Ok && u.ret < t.call)
            {
                continue;
            }
            let saved = state.clone();
            let mut okay = true;
            for m in &t.mops {
                if m.0 {
                    state[m.1 as usize].push(m.2.as_u64().unwrap());
                } else if t.outcome == EventType::Ok
                    && m.2 != observe(&state[m.1 as usize], register)
                {
                    okay = false;
                    break;
                }
            }
            if okay {
                placed[i] = true;
                if go(txns, strict, register, placed, state) {
                    return true;
                }
                placed[i] = false;
            }
            *state = saved;
        }
        false
    }
    go(
        txns,
        strict,
        register,
        &mut vec![false; txns.len()],
        &mut [Vec::new(), Vec::new()],
    )
}

/// The inference is exact only when it knows whether each crashed
/// transaction took effect: its appends were all seen, or none. (A
/// committed append nobody saw follows every read of its key.)
fn fully_observed(txns: &[T]) -> bool {
    let seen = |k: u64, v: &Value| {
        txns.iter().any(|t| {
            t.outcome == EventType::Ok
                && t.mops
                    .iter()
                    .any(|m| !m.0 && m.1 == k && m.2.as_array().is_some_and(|l| l.contains(v)))
        })
    };
    txns.iter().all(|t| {
        let appends: Vec<bool> = t
            .mops
            .iter()
            .filter(|m| m.0)
            .map(|m| seen(m.1, &m.2))
            .collect();
        match t.outcome {
            EventType::Info => appends.iter().all(|&s| s) || appends.iter().all(|&s| !s),
            _ => true,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn agrees_with_brute_force(seed in any::<u64>()) {
        let txns = gen(seed, false);
        let h = history(&txns, false);
        for (model, strict) in [("serializable", false), ("strict-serializable", true)] {
            let r = check(TxnKind::ListAppend, Models::parse(model).unwrap(), &h, None).unwrap();
            let reference = serializable(&txns, strict, false);
            if r.valid == Validity::Invalid {
                prop_assert!(!reference, "{model}: checker found {:?} but {:?} is serializable", r.anomalies, txns);
            } else if fully_observed(&txns) {
                prop_assert!(reference, "{model}: checker valid but no serial order exists for {:?}", txns);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    /// rw-register: version orders are only partly known, so the checker may
    /// miss anomalies, but whatever it finds must be real.
    #[test]
    fn register_anomalies_are_real(seed in any::<u64>()) {
        let txns = gen(seed, true);
        let h = history(&txns, true);
        for (model, strict) in [("serializable", false), ("strict-serializable", true)] {
            let r = check(TxnKind::RwRegister, Models::parse(model).unwrap(), &h, None).unwrap();
            if r.valid == Validity::Invalid {
                prop_assert!(!serializable(&txns, strict, true), "{model}: checker found {:?} but {:?} is serializable", r.anomalies, txns);
            }
        }
    }
}
