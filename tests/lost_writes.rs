//! The lost-writes fault finds what it exists for, on real local hosts
//! (docs/lost-writes.md): Redis with appendfsync everysec acknowledges
//! writes it has not synced, and a power cut of its primary right after a
//! burst of acknowledgements loses some; the workers' read-back after the
//! recovery (and the final reads) sees it, and the checker names the key
//! and the acknowledged write that was lost. etcd, which syncs before it
//! acknowledges, stays valid under the same fault. Own names and subnet;
//! torn down even on failure.
//!
//! Timing decides how many writes a cut finds unsynced, so the Redis
//! assertion runs up to three fixed seeds and asks for one invalid run
//! with a named lost write (every other run must be valid, never unknown
//! or incomplete). Measured: 3 of 3 seeds of 40 s invalid
//! (docs/lost-writes.md).

mod common;

use common::{first_invalid, run_test};
use harness::testing::TestCluster;
use serde_json::Value;

/// A short run with two power cuts (at about 2 s and 6 s) and a read of
/// every key at the end.
const SHORT: [&str; 10] = [
    "--workload",
    "register",
    "--nemesis",
    "lost-writes",
    "--time-limit",
    "8",
    "--interval",
    "2",
    "--recovery",
    "1",
];

/// Every power cut was applied and verified, and each one's heal brought
/// the system back (the read-back runs after it).
fn assert_cuts_happened(results: &Value, text: &str) {
    let faults = &results["faults"];
    assert!(
        faults["applied"].as_u64().unwrap_or(0) >= 1,
        "{text}\n{faults}"
    );
    assert_eq!(faults["scheduled"], faults["applied"], "{text}\n{faults}");
}

#[test]
fn redis_loses_acknowledged_writes_to_a_power_cut_and_etcd_does_not() {
    if !TestCluster::possible()
        || !std::path::Path::new("/usr/bin/redis-server").exists()
        || !std::path::Path::new("/usr/bin/etcd").exists()
    {
        harness::testing::skip("needs root, redis-server and etcd");
        return;
    }
    let t = TestCluster::up("slw", 73, 3).expect("cluster up");
    let store = tempfile::tempdir().unwrap();
    let redis = |seed: &str| {
        let mut args = vec!["--system", "redis", "--opt", "failover=none"];
        args.extend(["--opt", "persistence=aof", "--seed", seed]);
        args.extend(SHORT);
        let (code, text, results) = run_test(&t, store.path(), &args);
        assert_cuts_happened(&results, &text);
        (code, text, results)
    };
    let (text, results) = first_invalid(&["1", "2", "3"], redis)
        .expect("Redis with appendfsync everysec lost no acknowledged write in 3 seeds");
    let kv = &results["checkers"]["kv"];
    let said = kv["anomalies"][0]["message"].as_str().unwrap_or_default();
    // "process 3 read 17 on key 40 (...), but process 1's write 25 had
    // completed at 2.104 s, before the read began, and no operation that
    // could make it 17 again was pending"
    assert!(
        said.contains(" on key ")
            && (said.contains("'s write ") || said.contains("'s cas "))
            && said.contains("before the read began"),
        "{text}\n{said}"
    );
    let report = std::fs::read_to_string(store.path().join("latest/report.html")).unwrap();
    assert!(
        report.contains("before the read began"),
        "the report names no lost write"
    );

    let (code, text, results) = run_test(
        &t,
        store.path(),
        &[&["--system", "etcd", "--seed", "1"][..], &SHORT[..]].concat(),
    );
    assert_eq!(code, Some(0), "{text}");
    assert_cuts_happened(&results, &text);
    // The final phase read every key the run used.
    let history = std::fs::read_to_string(store.path().join("latest/history.jsonl")).unwrap();
    let lines: Vec<&str> = history.lines().collect();
    let recovered = lines
        .iter()
        .rposition(|l| l.contains(r#""f":"recover""#) && l.contains(r#""type":"info""#))
        .expect("a recovery");
    let reads_after = lines[recovered..]
        .iter()
        .filter(|l| l.contains(r#""type":"ok","f":"read""#))
        .count();
    assert!(reads_after >= 5, "{reads_after} reads after the final heal");
}
