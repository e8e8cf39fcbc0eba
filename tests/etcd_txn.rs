//! Transactions on a real etcd cluster (Debian's etcd uploaded to each
//! host): each one a read of its keys at one revision, then an etcd Txn that
//! compares their mod revisions and puts the new values. Under partitions
//! and kills, list-append is strict-serializable, transactions commit, lost
//! compares are fails, and every fault was verified; rw-register too.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

fn run(t: &TestCluster, store: &Path, args: &[&str]) -> (Option<i32>, String, Value) {
    let mut all = vec!["--system", "etcd", "--interval", "3", "--recovery", "2"];
    all.extend_from_slice(args);
    common::run_test(t, store, &all)
}

/// Committed and failed transactions in the latest run, and whether some
/// fail says its compare was lost.
fn txn_counts(store: &Path) -> (usize, usize, bool) {
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
    let count = |t: &str| {
        history
            .lines()
            .filter(|l| l.contains(&format!(r#""type":"{t}""#)) && l.contains(r#""f":"txn""#))
            .count()
    };
    (
        count("ok"),
        count("fail"),
        history.contains("compare failed"),
    )
}

#[test]
fn transactions_on_etcd() {
    if !TestCluster::possible() || !Path::new(workloads::etcd::BINARY).exists() {
        harness::testing::skip("needs root and Debian's etcd-server (scripts/test installs it)");
        return;
    }
    let t = TestCluster::up("sdg", 89, 5).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    // list-append under partitions and kills: valid, with real work done.
    let (code, out, results) = run(
        &t,
        &store,
        &[
            "--workload",
            "list-append",
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "20",
            "--seed",
            "3",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let checker = &results["checkers"]["list-append"];
    assert_eq!(checker["valid"], true, "{checker}");
    let (oks, fails, lost_compare) = txn_counts(&store);
    assert!(oks > 100, "only {oks} committed transactions:\n{out}");
    // Contended keys: some compare was lost, and that is a fail.
    assert!(
        fails > 0 && lost_compare,
        "no lost compare in {fails} fails"
    );
    // Every fault took effect, verified; both kinds happened.
    let faults = &results["faults"];
    assert!(faults["failed"].as_array().unwrap().is_empty(), "{faults}");
    assert_eq!(faults["scheduled"], faults["applied"], "{faults}");
    for kind in ["start-partition", "kill"] {
        let k = faults["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["fault"] == kind);
        assert!(
            k.is_some_and(|k| k["applied"].as_u64() >= Some(1)),
            "no {kind} applied: {faults}"
        );
    }
    // The final reads read every key written.
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
    assert!(history.contains(r#"["r",0,["#), "key 0 never read back");

    // rw-register under partitions: valid too.
    let (code, out, results) = run(
        &t,
        &store,
        &[
            "--workload",
            "rw-register",
            "--nemesis",
            "partition",
            "--time-limit",
            "10",
            "--seed",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(results["checkers"]["rw-register"]["valid"], true, "{out}");
    let (oks, _, _) = txn_counts(&store);
    assert!(oks > 100, "only {oks} committed transactions:\n{out}");
    common::assert_none_running("etcd --name sdgn");
}
