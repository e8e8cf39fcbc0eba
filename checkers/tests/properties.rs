//! Properties of the checker: generated histories are valid, an injected
//! stale read is invalid and named by the witness, and on small random
//! histories the optimised search agrees with a brute-force reference.

use checkers::gen::{generate, inject_impossible_read, inject_stale_read, GenConfig};
use checkers::history::{Event, EventType, History, Outcome, Process};
use checkers::linear::{check, check_model, Options};
use checkers::model::{Model, ModelKind, Mutex, Register};
use checkers::Validity;
use proptest::prelude::*;
use rustc_hash::FxHashSet;
use serde_json::{json, Value};

fn history(events: Vec<Event>) -> History {
    History::from_events(events).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn generated_histories_are_valid(
        seed in any::<u64>(), ops in 1usize..400, keys in 1usize..4,
        processes in 1usize..8, crash in 0.0f64..0.3, cas in any::<bool>(),
    ) {
        let cfg = GenConfig { ops, keys, processes, crash_rate: crash, cas, quiet_every: 0, values: 0, spare: None, seed };
        let h = history(generate(&cfg));
        let kind = if cas { ModelKind::CasRegister } else { ModelKind::Register };
        let r = check(kind, &Value::Null, &h, &Options::default()).unwrap();
        prop_assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);
    }

    #[test]
    fn an_injected_stale_read_is_found_and_named(
        seed in any::<u64>(), ops in 20usize..400, keys in 1usize..4,
        processes in 1usize..8, crash in 0.0f64..0.2, quiet_every in 5usize..50,
    ) {
        let cfg = GenConfig { ops, keys, processes, crash_rate: crash, cas: true, quiet_every, values: 0, spare: None, seed };
        let mut events = generate(&cfg);
        let Some(stale) = inject_stale_read(&mut events, seed, None) else { return Ok(()) };
        let h = history(events);
        let r = check(ModelKind::CasRegister, &Value::Null, &h, &Options::default()).unwrap();
        prop_assert_eq!(r.valid, Validity::Invalid);
        let cx = r.counterexample.unwrap();
        prop_assert_eq!(cx["op"]["ret"].as_u64(), Some(stale as u64), "{}", cx["message"]);
    }

    #[test]
    fn search_agrees_with_brute_force(seed in any::<u64>(), n in 1usize..9, procs in 1usize..4, which in 0usize..4) {
        let h = random_history(seed, n, procs, which);
        let opts = Options::default();
        let (got, want) = match which {
            0 => (check_model(&Register::plain(&Value::Null), &h, &opts), brute(&Register::plain(&Value::Null), &h)),
            1 => (check_model(&Register::cas(&Value::Null), &h, &opts), brute(&Register::cas(&Value::Null), &h)),
            2 => (check_model(&Register::kv(&Value::Null), &h, &opts), brute(&Register::kv(&Value::Null), &h)),
            _ => (check_model(&Mutex::default(), &h, &opts), brute(&Mutex::default(), &h)),
        };
        let got = got.unwrap().valid;
        prop_assert_eq!(got == Validity::Valid, want, "{:#?}", h.events);
    }

    // Jepsen's shape in small: values 0..3, most writes and cas crashed,
    // some never completing. Jokers, their classes and chains, and the
    // checks for values nothing writes and for certainly stale reads (which
    // fires on about a third of these) must agree with the reference.
    #[test]
    fn search_agrees_with_brute_force_on_crashed_small_domains(
        seed in any::<u64>(), n in 1usize..13, procs in 1usize..5, cas in any::<bool>(),
    ) {
        let h = crashed_small_domain(seed, n, procs, cas);
        let model = if cas { Register::cas(&Value::Null) } else { Register::plain(&Value::Null) };
        let got = check_model(&model, &h, &Options::default()).unwrap().valid;
        prop_assert_eq!(got == Validity::Valid, brute(&model, &h), "{:#?}", h.events);
    }

    #[test]
    fn small_domain_histories_are_valid_and_injected_reads_named(
        seed in any::<u64>(), ops in 1usize..300, processes in 1usize..16,
        crash in 0.0f64..0.1, values in 1u64..6,
    ) {
        // Seed 2726626073703952349 (181 ops, 15 processes, crash 0.0083, 3
        // values, stale) once named an innocent cas: the witness ran out of
        // steps. Stale reads land at the start, middle or end.
        let stale = seed % 2 == 0;
        let near = [Some(0.0), Some(0.5), Some(1.0), None][(seed / 2 % 4) as usize];
        let spare = if stale { near } else { None };
        let cfg = GenConfig { ops, keys: 1, processes, crash_rate: crash, cas: true, quiet_every: 20, values, spare, seed };
        let mut events = generate(&cfg);
        let r = check(ModelKind::CasRegister, &Value::Null, &history(events.clone()), &Options::default()).unwrap();
        prop_assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);
        let at = if stale { inject_stale_read(&mut events, seed, near) } else { inject_impossible_read(&mut events, seed, near) };
        let Some(at) = at else { return Ok(()) };
        let r = check(ModelKind::CasRegister, &Value::Null, &history(events), &Options::default()).unwrap();
        prop_assert_eq!(r.valid, Validity::Invalid);
        let cx = r.counterexample.unwrap();
        prop_assert_eq!(cx["op"]["ret"].as_u64(), Some(at as u64), "{}", cx["message"]);
        if !stale {
            prop_assert!(cx["message"].as_str().unwrap().contains("ever wrote"), "{}", cx["message"]);
        } else {
            // Certainly stale (every writer of its value overwritten before
            // it began): decided before any search, wherever it lands.
            prop_assert!(r.stats.steps <= 1, "{} steps: {}", r.stats.steps, cx["message"]);
        }
    }
}

/// A small history over values 0..3 where writes and cas crash often (and
/// some never complete), reads never crash, and read results are random.
fn crashed_small_domain(seed: u64, n: usize, procs: usize, cas: bool) -> History {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut free = vec![0u64; procs];
    let mut pid: Vec<u64> = (0..procs as u64).collect();
    let mut next_pid = procs as u64;
    let mut stamps: Vec<(u64, bool, u64, &'static str, Value, EventType)> = Vec::new();
    for _ in 0..n {
        let s = rng.gen_range(0..procs);
        let start = free[s] + rng.gen_range(0..3);
        let end = start + 1 + rng.gen_range(0..5);
        free[s] = end + 1;
        let v = |rng: &mut rand_chacha::ChaCha8Rng| json!(rng.gen_range(0..3));
        let (f, input, output) = match rng.gen_range(0..if cas { 3 } else { 2 }) {
            0 => ("read", Value::Null, v(&mut rng)),
            1 => {
                let x = v(&mut rng);
                ("write", x.clone(), x)
            }
            _ => {
                let x = json!([v(&mut rng), v(&mut rng)]);
                ("cas", x.clone(), x)
            }
        };
        let outcome = if f != "read" && rng.gen_bool(0.5) {
            EventType::Info
        } else if f == "cas" && rng.gen_bool(0.2) {
            EventType::Fail
        } else {
            EventType::Ok
        };
        let p = pid[s];
        if outcome == EventType::Info {
            pid[s] = next_pid;
            next_pid += 1;
        }
        stamps.push((start, true, p, f, input, EventType::Invoke));
        if !(outcome == EventType::Info && rng.gen_bool(0.3)) {
            stamps.push((end, false, p, f, output, outcome));
        }
    }
    stamps.sort_by_key(|s| (s.0, s.1, s.2));
    let events = stamps
        .into_iter()
        .enumerate()
        .map(|(i, (t, _, p, f, value, kind))| Event {
            index: i as u64,
            time: Some(t),
            process: Process::Client(p),
            kind,
            f: f.into(),
            key: None,
            value,
            node: None,
            error: None,
        })
        .collect();
    History::from_events(events).unwrap()
}

/// A small random history of interval operations with random results and
/// outcomes: mostly invalid, and full of coincidences (values repeat).
fn random_history(seed: u64, n: usize, procs: usize, which: usize) -> History {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut free = vec![0u64; procs];
    let mut pid: Vec<u64> = (0..procs as u64).collect();
    let mut next_pid = procs as u64;
    let mut stamps: Vec<(u64, bool, u64, &'static str, Value, Value, EventType)> = Vec::new();
    let small = |rng: &mut rand_chacha::ChaCha8Rng| -> Value {
        match rng.gen_range(0..4) {
            0 => Value::Null,
            k => json!(k),
        }
    };
    let text = |rng: &mut rand_chacha::ChaCha8Rng| -> Value {
        ["", "a", "b", "ab", "ba", "aa"][rng.gen_range(0..6)].into()
    };
    for _ in 0..n {
        let s = rng.gen_range(0..procs);
        let start = free[s] + rng.gen_range(0..4);
        let end = start + 1 + rng.gen_range(0..6);
        free[s] = end + 1;
        let (f, input, output): (&str, Value, Value) = match which {
            0 | 1 => match rng.gen_range(0..if which == 1 { 3 } else { 2 }) {
                0 => ("read", Value::Null, small(&mut rng)),
                1 => {
                    let v = small(&mut rng);
                    ("write", v.clone(), v)
                }
                _ => {
                    let v = json!([small(&mut rng), small(&mut rng)]);
                    ("cas", v.clone(), v)
                }
            },
            2 => match rng.gen_range(0..3) {
                0 => ("get", Value::Null, text(&mut rng)),
                1 => {
                    let v: Value = ["a", "b"][rng.gen_range(0..2)].into();
                    ("append", v.clone(), v)
                }
                _ => {
                    let v = text(&mut rng);
                    ("put", v.clone(), v)
                }
            },
            _ => (
                ["acquire", "release"][rng.gen_range(0..2)],
                Value::Null,
                Value::Null,
            ),
        };
        let outcome = match rng.gen_range(0..10) {
            0 => EventType::Fail,
            1 | 2 => EventType::Info,
            _ => EventType::Ok,
        };
        let p = pid[s];
        if outcome == EventType::Info {
            pid[s] = next_pid;
            next_pid += 1;
        }
        stamps.push((start, true, p, f, input, Value::Null, EventType::Invoke));
        // Some crashed operations never complete at all.
        if !(outcome == EventType::Info && rng.gen_bool(0.5)) {
            stamps.push((end, false, p, f, Value::Null, output, outcome));
        }
    }
    stamps.sort_by_key(|s| (s.0, s.1, s.2));
    let events = stamps
        .into_iter()
        .enumerate()
        .map(|(i, (t, inv, p, f, input, output, kind))| Event {
            index: i as u64,
            time: Some(t),
            process: Process::Client(p),
            kind,
            f: f.into(),
            key: None,
            value: if inv { input } else { output },
            node: None,
            error: None,
        })
        .collect();
    History::from_events(events).unwrap()
}

/// The reference: try every order that respects real time; crashed
/// operations may be left out. Memoised on (remaining set, state).
fn brute<M: Model>(model: &M, h: &History) -> bool {
    let ops: Vec<(u64, u64, M::Op)> = h
        .ops
        .iter()
        .filter_map(|o| {
            let p = model.prepare(o).unwrap()?;
            let ret = match (o.outcome, o.ret) {
                (Outcome::Info, _) | (_, None) => u64::MAX,
                (_, Some(r)) => r,
            };
            Some((o.call, ret, p))
        })
        .collect();
    assert!(ops.len() < 32);
    let all = (1u32 << ops.len()) - 1;
    let mut dead = FxHashSet::default();
    fn go<M: Model>(
        model: &M,
        ops: &[(u64, u64, M::Op)],
        left: u32,
        state: M::State,
        dead: &mut FxHashSet<(u32, M::State)>,
    ) -> bool {
        if (0..ops.len()).all(|i| left & (1 << i) == 0 || ops[i].1 == u64::MAX) {
            return true;
        }
        if dead.contains(&(left, state.clone())) {
            return false;
        }
        for i in 0..ops.len() {
            if left & (1 << i) == 0 {
                continue;
            }
            // Nothing still left may have completed before this one was invoked.
            if (0..ops.len()).any(|j| left & (1 << j) != 0 && ops[j].1 < ops[i].0) {
                continue;
            }
            if let Some(next) = model.step(&state, &ops[i].2) {
                if go(model, ops, left & !(1 << i), next, dead) {
                    return true;
                }
            }
        }
        dead.insert((left, state));
        false
    }
    go(model, &ops, all, model.init(), &mut dead)
}

/// The shrunk case that once named an innocent cas: the stale read's
/// witness needs more bisection probes than a fixed multiple of the steps.
#[test]
fn a_stale_read_past_a_misleading_hint_is_named() {
    let seed = 2726626073703952349u64;
    let cfg = GenConfig {
        ops: 181,
        keys: 1,
        processes: 15,
        crash_rate: 0.0083,
        cas: true,
        quiet_every: 20,
        values: 3,
        spare: None,
        seed,
    };
    let mut events = generate(&cfg);
    let at = inject_stale_read(&mut events, seed, None).unwrap();
    let r = check(
        ModelKind::CasRegister,
        &Value::Null,
        &history(events),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.valid, Validity::Invalid);
    let cx = r.counterexample.unwrap();
    assert_eq!(
        cx["op"]["ret"].as_u64(),
        Some(at as u64),
        "{}",
        cx["message"]
    );
}
