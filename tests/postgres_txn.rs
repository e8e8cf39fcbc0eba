//! The transactional workloads (list-append, rw-register) on a real
//! PostgreSQL 15 (node 1's server): serializable transactions, with the
//! server killed now and then, check strict-serializable; read-committed
//! ones show Elle's anomalies.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

fn run(
    t: &TestCluster,
    store: &Path,
    workload: &str,
    args: &[&str],
) -> (Option<i32>, String, Value) {
    let mut all = vec![
        "--system",
        "postgres",
        "--workload",
        workload,
        "--interval",
        "4",
        "--recovery",
        "2",
    ];
    all.extend_from_slice(args);
    common::run_test(t, store, &all)
}

/// Serializable with kills: valid, real work, serialization failures as
/// fails (never retried); read committed without faults: invalid.
fn serializable_holds_and_read_committed_does_not(t: &TestCluster, workload: &str, write: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (code, out, results) = run(
        t,
        &store,
        workload,
        &["--nemesis", "kill", "--time-limit", "10", "--seed", "1"],
    );
    assert_eq!(code, Some(0), "{workload}: {out}");
    let checker = &results["checkers"][workload];
    assert_eq!(checker["valid"], true, "{checker}");
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
    let oks = history
        .lines()
        .filter(|l| l.contains(r#""type":"ok""#) && l.contains(r#""f":"txn""#))
        .count();
    assert!(
        oks > 100,
        "{workload}: only {oks} committed transactions:\n{out}"
    );
    assert!(
        history.contains(&format!(r#"["{write}","#)) && history.contains("40001"),
        "{workload}: no {write}, or no serialization failure, in a contended serializable run"
    );
    let faults = &results["faults"];
    assert!(faults["applied"].as_u64() >= Some(1), "{faults}");
    assert_eq!(faults["scheduled"], faults["applied"], "{faults}");

    // Read committed, no faults: judged strict-serializable, it fails (a
    // read that sees another transaction's commit between two of its own
    // statements, or a cycle: G-single, G2-item...).
    let found = common::first_invalid(&["1", "2", "3"], |seed| {
        run(
            t,
            &store,
            workload,
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
    let (out, results) = found.unwrap_or_else(|| {
        panic!("{workload}: read committed showed no anomaly in three 10 s runs")
    });
    assert!(out.contains(&format!("{workload}: INVALID")), "{out}");
    assert_eq!(results["checkers"][workload]["valid"], false);
}

#[test]
fn transactions_on_postgres() {
    let pg = Path::new(workloads::postgres::BIN).join("postgres");
    if !TestCluster::possible() || !pg.exists() {
        harness::testing::skip("needs root and Debian's postgresql-15 (scripts/test installs it)");
        return;
    }
    let t = TestCluster::up("sdy", 94, 3).expect("cluster up");
    serializable_holds_and_read_committed_does_not(&t, "list-append", "append");
    serializable_holds_and_read_committed_does_not(&t, "rw-register", "w");
}
