//! `--system http` with the demo node (src/bin/shakedown-demo-node.rs) on a
//! real local cluster: the correct mode passes under partitions and kills;
//! each bug mode is caught, with a witness that names the read that shows it.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn run(t: &TestCluster, store: &Path, mode: &str, args: &[&str]) -> (Option<i32>, String, Value) {
    let start = format!("{} --mode {mode}", workloads::http::DEFAULT_START);
    let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .arg("test")
        .args([
            "--system",
            "http",
            "--workload",
            "register",
            "--interval",
            "2",
            "--recovery",
            "1",
        ])
        .args([
            "--opt",
            &format!("binary={}", env!("CARGO_BIN_EXE_shakedown-demo-node")),
        ])
        .args(["--opt", &format!("start={start}")])
        .args(["--store", &store.display().to_string()])
        .args(["--nodes-file", &t.up.nodes_file.display().to_string()])
        .args(["--ssh-key", &t.up.key.display().to_string()])
        .args(["--known-hosts", &t.up.known_hosts.display().to_string()])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let results = std::fs::read_to_string(store.join("latest/results.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), text, results)
}

#[test]
fn the_demo_node_correct_passes_and_each_bug_is_caught() {
    if !TestCluster::possible() {
        eprintln!("skipped: the local cluster needs root");
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
        let msg = results["checkers"]["kv"]["anomalies"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(msg.contains(" read "), "{mode}: {msg}");
    }
}
