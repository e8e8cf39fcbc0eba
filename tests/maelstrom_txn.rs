//! `--system maelstrom` with Maelstrom's transactional workloads
//! (txn-list-append, txn-rw-register) on a real local cluster: our correct
//! txn node (tests/maelstrom-nodes/txn) is valid under partitions and kills;
//! the broken one, which answers read-only txns from a stale local copy, is
//! caught with a sentence.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

fn run(
    t: &TestCluster,
    store: &Path,
    workload: &str,
    node: &str,
    nemesis: &str,
    seed: &str,
) -> (Option<i32>, String, Value) {
    let binary = format!(
        "binary={}/tests/maelstrom-nodes",
        env!("CARGO_MANIFEST_DIR")
    );
    let entry = format!("run={node}");
    common::run_test(
        t,
        store,
        &[
            "--system",
            "maelstrom",
            "--workload",
            workload,
            "--opt",
            &binary,
            "--opt",
            &entry,
            "--nemesis",
            nemesis,
            "--time-limit",
            "8",
            "--interval",
            "2",
            "--recovery",
            "3",
            "--seed",
            seed,
        ],
    )
}

#[test]
fn txn_nodes_are_valid_under_partitions_and_kills_and_stale_reads_are_caught() {
    if !TestCluster::possible() {
        eprintln!("skipped: the local cluster needs root");
        return;
    }
    let t = TestCluster::up("sdt", 95, 3).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    for (workload, checker) in [
        ("txn-list-append", "list-append"),
        ("txn-rw-register", "rw-register"),
    ] {
        let (code, out, results) = run(&t, &store, workload, "txn", "partition,kill", "1");
        assert_eq!(code, Some(0), "{workload}: {out}");
        let r = &results["checkers"][checker];
        assert!(
            r["ops"].as_u64().unwrap_or(0) >= 50,
            "{workload}: {results}"
        );
    }

    let caught = common::first_invalid(&["2", "3", "4"], |seed| {
        run(
            &t,
            &store,
            "txn-list-append",
            "txn-stale",
            "partition",
            seed,
        )
    });
    let (out, results) = caught.expect("the node reading a stale copy was not caught");
    let m = results["checkers"]["list-append"]["anomalies"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!m.is_empty(), "{out}\n{results}");
    common::assert_none_running("agent maelstrom --id n[0-9]* --listen 10.95.0.");
}
