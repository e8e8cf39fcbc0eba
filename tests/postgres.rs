//! PostgreSQL two-phase commit end to end on a real local cluster (Debian's
//! postgresql-15, one independent server per host): per-shard reads see
//! half-done transfers; reads that lock every shard until all are read see
//! the total conserved, with servers killed and a coordinator that stops
//! between prepare and commit; the operator's resolution in the final phase
//! commits what the coordinator decided.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

fn run(t: &TestCluster, store: &Path, args: &[&str]) -> (Option<i32>, String, Value) {
    let mut all = vec![
        "--system",
        "postgres",
        "--workload",
        "bank",
        "--interval",
        "4",
        "--recovery",
        "2",
    ];
    all.extend_from_slice(args);
    common::run_test(t, store, &all)
}

#[test]
fn two_phase_commit_bank_on_postgres() {
    let pg = Path::new(workloads::postgres::BIN).join("postgres");
    if !TestCluster::possible() || !pg.exists() {
        harness::testing::skip("needs root and Debian's postgresql-15 (scripts/test installs it)");
        return;
    }
    let t = TestCluster::up("sdp", 88, 3).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    // Per-shard reads: a read between a transfer's two commits is off.
    let found = common::first_invalid(&["1", "2"], |seed| {
        run(
            &t,
            &store,
            &[
                "--nemesis",
                "none",
                "--opt",
                "crash-after-prepare=0",
                "--time-limit",
                "10",
                "--seed",
                seed,
            ],
        )
    });
    let (_, results) = found.expect("per-shard reads never saw half a transfer in two 10 s runs");
    let msg = results["checkers"]["bank"]["anomalies"][0]["message"]
        .as_str()
        .unwrap();
    assert!(msg.contains("instead of 800"), "{msg}");
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("latest/test.json")).unwrap())
            .unwrap();
    assert_eq!(
        test["checkers"][0]["init"]["a7"], 100,
        "initial balances in test.json"
    );

    // Locking reads, kills, and a coordinator that stops after its decision.
    let (code, out, results) = run(
        &t,
        &store,
        &[
            "--nemesis",
            "kill",
            "--opt",
            "read=locking",
            "--opt",
            "crash-after-prepare=0.1",
            "--time-limit",
            "12",
            "--seed",
            "3",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(results["checkers"]["bank"]["valid"], true);
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
    let resolved: Value = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["f"] == "resolve" && e["type"] == "ok")
        .expect("the final phase resolved nothing")["value"]
        .clone();
    assert!(resolved["committed"].as_u64().unwrap() >= 1, "{resolved}");
    assert!(
        history.contains("a simulated crash between prepare and commit"),
        "no coordinator stopped in doubt"
    );
    // The final read (after the resolution) is ok and conserves the total.
    let last_read = history
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["f"] == "read" && e["type"] == "ok")
        .expect("no final read");
    let total: i64 = last_read["value"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(total, 800);
    common::assert_none_running("/opt/shakedown/postgres/data");
}
