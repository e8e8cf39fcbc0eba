//! Lock, bank, set and counter checkers: tables of small histories with
//! known verdicts, generated valid histories, and explanations that name
//! the right processes and times.

// Table rows read best as inline tuples.
#![allow(clippy::type_complexity)]

use checkers::gen;
use checkers::history::{Event, EventType, History, Process};
use checkers::linear::{CheckError, Options};
use checkers::{CheckResult, Checker, Validity};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Rows of (process, type, f, value, time in ms); events in row order.
fn h(rows: &[(u64, &str, &str, Value, u64)]) -> History {
    let events = rows
        .iter()
        .enumerate()
        .map(|(i, (p, t, f, v, ms))| Event {
            index: i as u64,
            time: Some(ms * 1_000_000),
            process: Process::Client(*p),
            kind: EventType::parse(t).unwrap(),
            f: f.to_string(),
            key: None,
            value: v.clone(),
            node: None,
            error: None,
        })
        .collect();
    History::from_events(events).unwrap()
}

fn run(c: &str, init: Value, hist: &History) -> CheckResult {
    Checker::parse(c)
        .unwrap()
        .check(&init, hist, &Options::default())
        .unwrap()
}

fn kinds(r: &CheckResult) -> Vec<String> {
    r.anomalies.iter().map(|a| a.kind.clone()).collect()
}

const N: Value = Value::Null;

// ---- lock ----

#[test]
fn lock_table() {
    #[rustfmt::skip]
    let cases: Vec<(&str, History, Validity, &[&str])> = vec![
        ("one after the other", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", N, 2),
            (0, "invoke", "release", N, 3), (0, "ok", "release", N, 4),
            (1, "invoke", "acquire", N, 5), (1, "ok", "acquire", N, 6),
            (1, "invoke", "release", N, 7), (1, "ok", "release", N, 8),
        ]), Validity::Valid, &[]),
        ("a second grant before the first release", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", N, 2),
            (1, "invoke", "acquire", N, 3), (1, "ok", "acquire", N, 4),
            (0, "invoke", "release", N, 5), (0, "ok", "release", N, 6),
            (1, "invoke", "release", N, 7), (1, "ok", "release", N, 8),
        ]), Validity::Invalid, &["double-grant"]),
        ("grants racing: certain spans still meet", h(&[
            (0, "invoke", "acquire", N, 1), (1, "invoke", "acquire", N, 2),
            (0, "ok", "acquire", N, 3), (1, "ok", "acquire", N, 4),
            (0, "invoke", "release", N, 5), (1, "invoke", "release", N, 6),
        ]), Validity::Invalid, &["double-grant"]),
        ("release invoked before the other grant completed: no certain overlap", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", N, 2),
            (1, "invoke", "acquire", N, 3), (0, "invoke", "release", N, 4),
            (1, "ok", "acquire", N, 5), (0, "ok", "release", N, 6),
        ]), Validity::Valid, &[]),
        ("a crashed acquire only possibly overlaps", h(&[
            (0, "invoke", "acquire", N, 1), (0, "info", "acquire", N, 2),
            (1, "invoke", "acquire", N, 3), (1, "ok", "acquire", N, 4),
            (1, "invoke", "release", N, 5), (1, "ok", "release", N, 6),
        ]), Validity::Valid, &["possible-overlap", "acquire-unanswered"]),
        ("a failed acquire holds nothing", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", N, 2),
            (1, "invoke", "acquire", N, 3), (1, "fail", "acquire", N, 4),
            (0, "invoke", "release", N, 5), (0, "ok", "release", N, 6),
        ]), Validity::Valid, &[]),
        ("tokens go backwards", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", json!({"token": 5}), 2),
            (0, "invoke", "release", N, 3), (0, "ok", "release", N, 4),
            (1, "invoke", "acquire", N, 5), (1, "ok", "acquire", json!({"token": 3}), 6),
        ]), Validity::Invalid, &["stale-token"]),
        ("a token repeats", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", json!({"token": 5}), 2),
            (0, "invoke", "release", N, 3), (0, "ok", "release", N, 4),
            (1, "invoke", "acquire", N, 5), (1, "ok", "acquire", json!({"token": 5}), 6),
        ]), Validity::Invalid, &["repeated-token"]),
        ("tokens increase", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", json!({"token": 5}), 2),
            (0, "invoke", "release", N, 3), (0, "ok", "release", N, 4),
            (1, "invoke", "acquire", N, 5), (1, "ok", "acquire", json!({"token": 6}), 6),
        ]), Validity::Valid, &[]),
        ("a lease ran out under a holder that kept acting", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", json!({"token": 1, "lease_ms": 100}), 2),
            (1, "invoke", "acquire", N, 500), (1, "ok", "acquire", json!({"token": 2, "lease_ms": 100}), 501),
            (0, "invoke", "release", N, 600), (0, "fail", "release", N, 601),
        ]), Validity::Invalid, &["lease-expired-overlap"]),
        ("a lease ran out and the lock moved on", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", json!({"token": 1, "lease_ms": 100}), 2),
            (1, "invoke", "acquire", N, 500), (1, "ok", "acquire", json!({"token": 2, "lease_ms": 100}), 501),
        ]), Validity::Valid, &["lease-expired-handover"]),
        ("a release of a lock not held", h(&[
            (0, "invoke", "release", N, 1), (0, "ok", "release", N, 2),
        ]), Validity::Valid, &["release-not-held"]),
        ("a holder's release crashed, and the lock stayed taken", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", N, 2),
            (0, "invoke", "release", N, 3), (0, "info", "release", N, 4),
            (1, "invoke", "acquire", N, 5), (1, "fail", "acquire", N, 6),
            (2, "invoke", "acquire", N, 7), (2, "fail", "acquire", N, 8),
            (3, "invoke", "acquire", N, 9), (3, "fail", "acquire", N, 10),
        ]), Validity::Valid, &["lock-stuck"]),
        ("acquires failing while the holder holds are contention", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", N, 2),
            (1, "invoke", "acquire", N, 5), (1, "fail", "acquire", N, 6),
            (2, "invoke", "acquire", N, 7), (2, "fail", "acquire", N, 8),
            (3, "invoke", "acquire", N, 9), (3, "fail", "acquire", N, 10),
            (0, "invoke", "release", N, 11), (0, "info", "release", N, 12),
            (1, "invoke", "acquire", N, 13), (1, "fail", "acquire", N, 14),
        ]), Validity::Valid, &[]),
        ("a lease that ran out and still blocked", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", json!({"lease_ms": 10}), 2),
            (1, "invoke", "acquire", N, 5), (1, "fail", "acquire", N, 6),
            (2, "invoke", "acquire", N, 13), (2, "fail", "acquire", N, 14),
            (3, "invoke", "acquire", N, 15), (3, "fail", "acquire", N, 16),
            (4, "invoke", "acquire", N, 17), (4, "fail", "acquire", N, 18),
        ]), Validity::Valid, &["lock-stuck"]),
        ("two failed acquires are not yet a stuck lock", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", N, 2),
            (1, "invoke", "acquire", N, 5), (1, "fail", "acquire", N, 6),
            (2, "invoke", "acquire", N, 7), (2, "fail", "acquire", N, 8),
        ]), Validity::Valid, &[]),
        ("an acquire that never returned", h(&[
            (0, "invoke", "acquire", N, 1), (0, "ok", "acquire", N, 2),
            (1, "invoke", "acquire", N, 3),
        ]), Validity::Valid, &["acquire-unanswered", "possible-overlap"]),
    ];
    for (name, hist, want, want_kinds) in cases {
        let r = run("lock", N, &hist);
        assert_eq!(r.valid, want, "{name}: {:#?}", r.anomalies);
        let mut got = kinds(&r);
        got.sort();
        let mut want_kinds: Vec<String> = want_kinds.iter().map(|s| s.to_string()).collect();
        want_kinds.sort();
        assert_eq!(got, want_kinds, "{name}");
    }
}

#[test]
fn lock_explanation_names_processes_tokens_and_times() {
    let hist = h(&[
        (3, "invoke", "acquire", N, 12_000),
        (3, "ok", "acquire", json!({"token": 17}), 12_100),
        (8, "invoke", "acquire", N, 12_200),
        (8, "ok", "acquire", json!({"token": 18}), 12_250),
        (3, "invoke", "release", N, 12_400),
        (3, "ok", "release", N, 12_410),
    ]);
    let r = run("lock", N, &hist);
    let m = r.anomalies[0].message.as_str();
    assert_eq!(
        m,
        "two clients held the lock at once, from 12.250 s to 12.400 s: process 3 (granted by 12.100 s, token 17, released at 12.400 s) and process 8 (granted by 12.250 s, token 18, never released)"
    );
    assert_eq!(json!(r.anomalies[0].events), json!([0, 1, 2, 3, 4, 5]));
    assert_eq!(r.anomalies[0].extra["processes"], json!([3, 8]));

    let hist = h(&[
        (3, "invoke", "acquire", N, 1_000),
        (3, "ok", "acquire", json!({"lease_ms": 5000}), 1_100),
        (8, "invoke", "acquire", N, 6_400),
        (8, "ok", "acquire", json!({"lease_ms": 5000}), 6_500),
        (3, "invoke", "release", N, 7_000),
    ]);
    let r = run("lock", N, &hist);
    let m = r.anomalies[0].message.as_str();
    assert!(m.contains("process 3's lease (5000 ms, granted by 1.100 s) had run out by 6.100 s, 0.300 s before process 8 asked"), "{m}");
    assert!(m.contains("from 6.500 s to 7.000 s"), "{m}");
}

// ---- bank ----

fn transfer(from: &str, to: &str, amount: i64) -> Value {
    json!({"from": from, "to": to, "amount": amount})
}

#[test]
fn bank_table() {
    let init = json!({"a": 10, "b": 10});
    #[rustfmt::skip]
    let cases: Vec<(&str, History, Value, Validity, &[&str])> = vec![
        ("conserved", h(&[
            (0, "invoke", "transfer", transfer("a", "b", 3), 1), (0, "ok", "transfer", transfer("a", "b", 3), 2),
            (1, "invoke", "read", N, 3), (1, "ok", "read", json!({"a": 7, "b": 13}), 4),
        ]), init.clone(), Validity::Valid, &[]),
        ("a read sees half a transfer", h(&[
            (0, "invoke", "transfer", transfer("a", "b", 3), 1),
            (1, "invoke", "read", N, 2), (1, "ok", "read", json!({"a": 7, "b": 10}), 3),
            (0, "ok", "transfer", transfer("a", "b", 3), 4),
        ]), init.clone(), Validity::Invalid, &["wrong-total"]),
        ("a negative balance", h(&[
            (1, "invoke", "read", N, 1), (1, "ok", "read", json!({"a": -1, "b": 21}), 2),
        ]), init.clone(), Validity::Invalid, &["negative-balance"]),
        ("a negative balance, allowed", h(&[
            (1, "invoke", "read", N, 1), (1, "ok", "read", json!({"a": -1, "b": 21}), 2),
        ]), json!({"balances": {"a": 10, "b": 10}, "negative": true}), Validity::Valid, &[]),
        ("an account missing", h(&[
            (1, "invoke", "read", N, 1), (1, "ok", "read", json!({"a": 20}), 2),
        ]), init.clone(), Validity::Invalid, &["missing-accounts"]),
        ("a crashed transfer and a failed read change nothing", h(&[
            (0, "invoke", "transfer", transfer("a", "b", 3), 1), (0, "info", "transfer", transfer("a", "b", 3), 2),
            (1, "invoke", "read", N, 3), (1, "fail", "read", N, 4),
            (2, "invoke", "read", N, 5), (2, "ok", "read", json!({"a": 7, "b": 13}), 6),
        ]), init.clone(), Validity::Valid, &[]),
    ];
    for (name, hist, init, want, want_kinds) in cases {
        let r = run("bank", init, &hist);
        assert_eq!(r.valid, want, "{name}: {:#?}", r.anomalies);
        assert_eq!(
            kinds(&r),
            want_kinds.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

#[test]
fn bank_explains_with_the_concurrent_transfer_and_the_drift() {
    let hist = h(&[
        (0, "invoke", "transfer", transfer("a", "b", 3), 1000),
        (1, "invoke", "read", N, 1100),
        (1, "ok", "read", json!({"a": 7, "b": 10}), 1200),
        (0, "ok", "transfer", transfer("a", "b", 3), 1300),
    ]);
    let r = run("bank", json!({"a": 10, "b": 10}), &hist);
    let m = r.anomalies[0].message.as_str();
    assert_eq!(
        m,
        "process 1 read at 1.100 s (completed 1.200 s), but the balances summed to 17 instead of 20; 1 transfer was concurrent with it: process 0 moved 3 from \"a\" to \"b\" (ok, 1.000 s to 1.300 s)"
    );
    assert_eq!(json!(r.anomalies[0].events), json!([1, 2, 0, 3]));
    assert_eq!(r.summary.as_ref().unwrap()["lowest_total"], 17);
}

#[test]
fn bank_without_balances_is_an_input_error() {
    let hist = h(&[(1, "invoke", "read", N, 1)]);
    let e = Checker::Bank
        .check(&N, &hist, &Options::default())
        .unwrap_err();
    assert!(matches!(e, CheckError::Init(m) if m.contains("--init")));
}

// ---- set ----

#[test]
fn set_table() {
    #[rustfmt::skip]
    let cases: Vec<(&str, History, Validity, &[&str], (u64, u64))> = vec![
        ("all there", h(&[
            (0, "invoke", "add", json!(1), 1), (0, "ok", "add", json!(1), 2),
            (1, "invoke", "add", json!(2), 3), (1, "info", "add", json!(2), 4),
            (2, "invoke", "read", N, 5), (2, "ok", "read", json!([1, 2]), 6),
        ]), Validity::Valid, &[], (0, 1)),
        ("lost", h(&[
            (0, "invoke", "add", json!(1), 1), (0, "ok", "add", json!(1), 2),
            (0, "invoke", "add", json!(2), 3), (0, "ok", "add", json!(2), 4),
            (2, "invoke", "read", N, 5), (2, "ok", "read", json!([2]), 6),
        ]), Validity::Invalid, &["lost"], (1, 0)),
        ("unexpected", h(&[
            (0, "invoke", "add", json!(1), 1), (0, "ok", "add", json!(1), 2),
            (2, "invoke", "read", N, 5), (2, "ok", "read", json!([1, 9]), 6),
        ]), Validity::Invalid, &["unexpected"], (0, 0)),
        ("a failed add present", h(&[
            (0, "invoke", "add", json!(1), 1), (0, "fail", "add", json!(1), 2),
            (2, "invoke", "read", N, 5), (2, "ok", "read", json!([1]), 6),
        ]), Validity::Invalid, &["unexpected"], (0, 0)),
        ("vanished after being seen", h(&[
            (0, "invoke", "add", json!(1), 1), (0, "info", "add", json!(1), 2),
            (1, "invoke", "read", N, 3), (1, "ok", "read", json!([1]), 4),
            (2, "invoke", "read", N, 5), (2, "ok", "read", json!([]), 6),
        ]), Validity::Invalid, &["vanished"], (0, 1)),
        ("a crashed add never seen is fine", h(&[
            (0, "invoke", "add", json!(1), 1), (0, "info", "add", json!(1), 2),
            (2, "invoke", "read", N, 5), (2, "ok", "read", json!([]), 6),
        ]), Validity::Valid, &[], (0, 0)),
    ];
    for (name, hist, want, want_kinds, (lost, recovered)) in cases {
        let r = run("set", N, &hist);
        assert_eq!(r.valid, want, "{name}: {:#?}", r.anomalies);
        assert_eq!(
            kinds(&r),
            want_kinds.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{name}"
        );
        let s = r.summary.unwrap();
        assert_eq!(
            (
                s["lost"].as_u64().unwrap(),
                s["recovered"].as_u64().unwrap()
            ),
            (lost, recovered),
            "{name}"
        );
    }
}

#[test]
fn set_explanations_name_reads_and_times() {
    let r = run(
        "set",
        N,
        &h(&[
            (0, "invoke", "add", json!(1), 1000),
            (0, "ok", "add", json!(1), 1100),
            (1, "invoke", "read", N, 1200),
            (1, "ok", "read", json!([1]), 1300),
            (2, "invoke", "read", N, 1400),
            (2, "ok", "read", json!([]), 1500),
        ]),
    );
    let msgs: Vec<&str> = r.anomalies.iter().map(|a| a.message.as_str()).collect();
    assert!(msgs.contains(&"element 1 was added by process 0 (acknowledged at 1.100 s) but is missing from process 2's final read (completed 1.500 s)"), "{msgs:#?}");
    assert!(msgs.contains(&"element 1 was seen by process 1's read (completed 1.300 s) but is missing from process 2's read invoked at 1.400 s"), "{msgs:#?}");
}

// ---- counter ----

#[test]
fn counter_table() {
    #[rustfmt::skip]
    let cases: Vec<(&str, History, Validity, Option<(i64, i64)>)> = vec![
        ("sequential", h(&[
            (0, "invoke", "add", json!(1), 1), (0, "ok", "add", json!(1), 2),
            (0, "invoke", "add", json!(2), 3), (0, "ok", "add", json!(2), 4),
            (1, "invoke", "read", N, 5), (1, "ok", "read", json!(3), 6),
        ]), Validity::Valid, None),
        ("a read missing a completed add", h(&[
            (0, "invoke", "add", json!(1), 1), (0, "ok", "add", json!(1), 2),
            (0, "invoke", "add", json!(2), 3), (0, "ok", "add", json!(2), 4),
            (1, "invoke", "read", N, 5), (1, "ok", "read", json!(1), 6),
        ]), Validity::Invalid, Some((3, 3))),
        ("a concurrent add may or may not be seen", h(&[
            (0, "invoke", "add", json!(5), 1),
            (1, "invoke", "read", N, 2), (1, "ok", "read", json!(5), 3),
            (0, "ok", "add", json!(5), 4),
        ]), Validity::Valid, None),
        ("a read beyond every add", h(&[
            (0, "invoke", "add", json!(5), 1),
            (1, "invoke", "read", N, 2), (1, "ok", "read", json!(6), 3),
            (0, "ok", "add", json!(5), 4),
        ]), Validity::Invalid, Some((0, 5))),
        ("negative adds widen the bounds downwards", h(&[
            (0, "invoke", "add", json!(4), 1), (0, "ok", "add", json!(4), 2),
            (0, "invoke", "add", json!(-3), 3),
            (1, "invoke", "read", N, 4), (1, "ok", "read", json!(1), 5),
        ]), Validity::Valid, None),
        ("a crashed add counts as possible only", h(&[
            (0, "invoke", "add", json!(4), 1), (0, "info", "add", json!(4), 2),
            (1, "invoke", "read", N, 3), (1, "ok", "read", json!(5), 4),
        ]), Validity::Invalid, Some((0, 4))),
        ("a failed add counts for nothing", h(&[
            (0, "invoke", "add", json!(4), 1), (0, "fail", "add", json!(4), 2),
            (1, "invoke", "read", N, 3), (1, "ok", "read", json!(4), 4),
        ]), Validity::Invalid, Some((0, 0))),
    ];
    for (name, hist, want, bounds) in cases {
        let r = run("counter", N, &hist);
        assert_eq!(r.valid, want, "{name}: {:#?}", r.anomalies);
        if let Some((lo, hi)) = bounds {
            assert_eq!(r.anomalies[0].extra["bounds"], json!([lo, hi]), "{name}");
        }
    }
}

#[test]
fn counter_explanation() {
    let r = run(
        "counter",
        json!(10),
        &h(&[
            (0, "invoke", "add", json!(2), 1000),
            (0, "ok", "add", json!(2), 1100),
            (1, "invoke", "read", N, 1200),
            (1, "ok", "read", json!(10), 1300),
        ]),
    );
    assert_eq!(
        r.anomalies[0].message.as_str(),
        "process 1 read 10 (invoked at 1.200 s, completed 1.300 s), but the counter must have been between 12 and 12: 12 by the adds completed before the read began, plus or minus those concurrent with it"
    );
}

// ---- generated valid histories ----

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn generated_counters_are_valid(seed in any::<u64>(), ops in 1usize..500, procs in 1usize..8, crash in 0.0f64..0.3) {
        let hist = History::from_events(gen::counter(ops, procs, crash, seed)).unwrap();
        let r = run("counter", N, &hist);
        prop_assert_eq!(r.valid, Validity::Valid, "{:#?}", r.anomalies);
    }

    #[test]
    fn generated_sets_are_valid(seed in any::<u64>(), ops in 1usize..500, procs in 1usize..8, crash in 0.0f64..0.3) {
        let hist = History::from_events(gen::set(ops, procs, crash, ops / 20, seed)).unwrap();
        let r = run("set", N, &hist);
        prop_assert_eq!(r.valid, Validity::Valid, "{:#?}", r.anomalies);
    }

    #[test]
    fn generated_banks_are_valid(seed in any::<u64>(), ops in 1usize..500, procs in 1usize..8, accounts in 2usize..6, crash in 0.0f64..0.3) {
        let (events, init) = gen::bank(ops, procs, accounts, crash, seed);
        let hist = History::from_events(events).unwrap();
        let r = run("bank", init, &hist);
        prop_assert_eq!(r.valid, Validity::Valid, "{:#?}", r.anomalies);
    }

    #[test]
    fn generated_locks_are_valid(seed in any::<u64>(), holds in 1usize..200, procs in 1usize..8) {
        let hist = History::from_events(gen::lock(holds, procs, seed)).unwrap();
        let r = run("lock", N, &hist);
        prop_assert_eq!(r.valid, Validity::Valid, "{:#?}", r.anomalies);
        prop_assert!(r.anomalies.is_empty(), "{:#?}", r.anomalies);
    }
}

#[test]
fn a_stuck_lease_counts_only_acquires_after_it_ran_out() {
    let hist = h(&[
        (0, "invoke", "acquire", N, 1),
        (0, "ok", "acquire", json!({"lease_ms": 10}), 2),
        (1, "invoke", "acquire", N, 5),
        (1, "fail", "acquire", N, 6),
        (2, "invoke", "acquire", N, 13),
        (2, "fail", "acquire", N, 14),
        (3, "invoke", "acquire", N, 15),
        (3, "fail", "acquire", N, 16),
        (4, "invoke", "acquire", N, 17),
        (4, "fail", "acquire", N, 18),
    ]);
    let r = run("lock", N, &hist);
    let msg = r.anomalies[0].message.as_str();
    assert!(msg.contains("3 acquires failed"), "{msg}");
    assert!(msg.contains("from 0.013 s"), "{msg}");
    assert!(msg.contains("the lease should have freed it"), "{msg}");
}

// Regression: the bank's sums wrapped (i64): balances of i64::MAX and
// i64::MAX + 2 sum, wrapped, to 0 = the total of {a: 0, b: 0}.
#[test]
fn bank_sums_never_wrap() {
    let hist = h(&[
        (1, "invoke", "read", N, 1),
        (
            1,
            "ok",
            "read",
            json!({"a": i64::MAX, "b": i64::MAX, "c": 2}),
            2,
        ),
    ]);
    let r = run("bank", json!({"a": 0, "b": 0, "c": 0}), &hist);
    assert_eq!(r.valid, Validity::Invalid, "{:#?}", r.anomalies);
    assert_eq!(kinds(&r), ["wrong-total"]);
    assert_eq!(
        r.anomalies[0].extra["total"],
        json!(2f64 * i64::MAX as f64 + 2.0)
    );
}

// Regression: counter bounds beyond i64 were cast (wrapped) into the anomaly.
#[test]
fn counter_bounds_never_wrap() {
    let hist = h(&[
        (0, "invoke", "add", json!(i64::MAX), 1),
        (0, "ok", "add", json!(i64::MAX), 2),
        (1, "invoke", "add", json!(i64::MAX), 3),
        (1, "ok", "add", json!(i64::MAX), 4),
        (2, "invoke", "read", N, 5),
        (2, "ok", "read", json!(-2), 6),
    ]);
    let r = run("counter", N, &hist);
    assert_eq!(r.valid, Validity::Invalid);
    let b = &r.anomalies[0].extra["bounds"];
    assert!(b[0].as_f64().unwrap() > 1e19, "{b}");
}

// Regression: a lease in ms times 10^6 overflowed u64 (a panic in debug
// builds, a wrapped "expired" lease in release ones).
#[test]
fn lease_times_never_overflow() {
    let hist = h(&[
        (0, "invoke", "acquire", N, 1),
        (0, "ok", "acquire", json!({"lease_ms": u64::MAX / 2}), 2),
        (1, "invoke", "acquire", N, 3),
        (1, "ok", "acquire", N, 4),
        (2, "invoke", "acquire", N, 5),
        (2, "fail", "acquire", N, 6),
    ]);
    let r = run("lock", N, &hist);
    assert_eq!(r.valid, Validity::Invalid);
    // Not an expired lease: it is far from run out.
    assert!(
        !kinds(&r).iter().any(|k| k.starts_with("lease-expired")),
        "{:?}",
        kinds(&r)
    );
}
