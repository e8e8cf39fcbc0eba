//! The list-append workload on a real PostgreSQL 15 (node 1's server):
//! serializable transactions, with the server killed now and then, check
//! strict-serializable; read-committed ones show Elle's anomalies.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

fn run(t: &TestCluster, store: &Path, args: &[&str]) -> (Option<i32>, String, Value) {
    let mut all = vec![
        "--system",
        "postgres",
        "--workload",
        "list-append",
        "--interval",
        "4",
        "--recovery",
        "2",
    ];
    all.extend_from_slice(args);
    common::run_test(t, store, &all)
}

#[test]
fn list_append_on_postgres() {
    let pg = Path::new(workloads::postgres::BIN).join("postgres");
    if !TestCluster::possible() || !pg.exists() {
        eprintln!("skipped: needs root and Debian's postgresql-15 (scripts/test installs it)");
        return;
    }
    let t = TestCluster::up("sdy", 94, 3).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    // Serializable, with kills: valid, and it did real work.
    let (code, out, results) = run(
        &t,
        &store,
        &["--nemesis", "kill", "--time-limit", "10", "--seed", "1"],
    );
    assert_eq!(code, Some(0), "{out}");
    let checker = &results["checkers"]["list-append"];
    assert_eq!(checker["valid"], true, "{checker}");
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
    let oks = history
        .lines()
        .filter(|l| l.contains(r#""type":"ok""#) && l.contains(r#""f":"txn""#))
        .count();
    assert!(oks > 100, "only {oks} committed transactions:\n{out}");
    // A serialization failure is a fail, never retried.
    assert!(
        history.contains("40001"),
        "no serialization failure in a contended serializable run"
    );

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
    // A read that sees another transaction's commit between two of its
    // own statements (internal), or a cycle (G-single, G2-item...).
    assert!(out.contains("list-append: INVALID"), "{out}");
    assert_eq!(results["checkers"]["list-append"]["valid"], false);
}
