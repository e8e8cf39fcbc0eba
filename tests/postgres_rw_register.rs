//! The rw-register workload on a real PostgreSQL 15 (node 1's server):
//! serializable transactions, with the server killed now and then, check
//! strict-serializable; read-committed ones show an anomaly.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

fn run(t: &TestCluster, store: &Path, args: &[&str]) -> (Option<i32>, String, Value) {
    let mut all = vec![
        "--system",
        "postgres",
        "--workload",
        "rw-register",
        "--interval",
        "4",
        "--recovery",
        "2",
    ];
    all.extend_from_slice(args);
    common::run_test(t, store, &all)
}

#[test]
fn rw_register_on_postgres() {
    let pg = Path::new(workloads::postgres::BIN).join("postgres");
    if !TestCluster::possible() || !pg.exists() {
        eprintln!("skipped: needs root and Debian's postgresql-15 (scripts/test installs it)");
        return;
    }
    let t = TestCluster::up("sdi", 90, 3).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    // Serializable, with kills: valid, and it did real work.
    let (code, out, results) = run(
        &t,
        &store,
        &["--nemesis", "kill", "--time-limit", "10", "--seed", "1"],
    );
    assert_eq!(code, Some(0), "{out}");
    let checker = &results["checkers"]["rw-register"];
    assert_eq!(checker["valid"], true, "{checker}");
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
    let oks = history
        .lines()
        .filter(|l| l.contains(r#""type":"ok""#) && l.contains(r#""f":"txn""#))
        .count();
    assert!(oks > 100, "only {oks} committed transactions:\n{out}");
    assert!(
        history.contains(r#"["w","#) && history.contains("40001"),
        "no writes, or no serialization failure, in a contended serializable run"
    );
    let faults = &results["faults"];
    assert!(faults["applied"].as_u64() >= Some(1), "{faults}");
    assert_eq!(faults["scheduled"], faults["applied"], "{faults}");

    // Read committed, no faults: judged strict-serializable, it fails.
    let found = common::first_invalid(&["1", "2", "3"], |seed| {
        run(
            &t,
            &store,
            &[
                "--nemesis",
                "none",
                "--opt",
                "isolation=read-committed",
                "--time-limit",
                "10",
                "--seed",
                seed,
            ],
        )
    });
    let (out, results) = found.expect("read committed showed no anomaly in three 10 s runs");
    assert!(out.contains("rw-register: INVALID"), "{out}");
    assert_eq!(results["checkers"]["rw-register"]["valid"], false);
}
