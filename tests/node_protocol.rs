//! `--system http` with the demo node (src/bin/shakedown-demo-node.rs) on a
//! real local cluster: the correct mode passes under partitions and kills;
//! each bug mode is caught, with a witness that names the read that shows it.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

fn run(t: &TestCluster, store: &Path, mode: &str, args: &[&str]) -> (Option<i32>, String, Value) {
    let start = format!("start={} --mode {mode}", workloads::http::DEFAULT_START);
    let binary = format!("binary={}", env!("CARGO_BIN_EXE_shakedown-demo-node"));
    let mut all = vec![
        "--system",
        "http",
        "--workload",
        "register",
        "--interval",
        "2",
        "--recovery",
        "1",
    ];
    all.extend_from_slice(&["--opt", &binary, "--opt", &start]);
    all.extend_from_slice(args);
    common::run_test(t, store, &all)
}

#[test]
fn the_demo_node_correct_passes_and_each_bug_is_caught() {
    if !TestCluster::possible() {
        harness::testing::skip("the local cluster needs root");
        return;
    }
    let t = TestCluster::up("sdn", 85, 3).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    let (code, out, results) = run(
        &t,
        &store,
        "correct",
        &[
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "10",
            "--seed",
            "1",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        results["checkers"]["kv"]["ops"].as_u64().unwrap() > 500,
        "{results}"
    );

    for mode in ["stale-reads", "lost-writes"] {
        let (code, out, results) = run(
            &t,
            &store,
            mode,
            &[
                "--nemesis",
                "partition",
                "--time-limit",
                "10",
                "--seed",
                "2",
            ],
        );
        assert_eq!(code, Some(1), "{mode}: {out}");
        if common::have_browser() || harness::testing::strict() {
            // The report of this real failing run, in a real browser.
            let b = common::open_in_browser(&store.join("latest/report.html"));
            assert!(b.console_errors.is_empty(), "{:?}", b.console_errors);
            assert!(b.page_requests.is_empty(), "{:?}", b.page_requests);
            assert!(b.dom.contains("INVALID") && b.dom.contains("cannot be linearized"));
        }
        let msg = results["checkers"]["kv"]["anomalies"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(msg.contains(" read "), "{mode}: {msg}");
    }
}
