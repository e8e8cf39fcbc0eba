//! Helpers shared by the tests that run `shakedown test` on a test cluster.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// `shakedown test ARGS` on `t`'s nodes with runs in `store`: the exit code,
/// stdout and stderr together, and the latest run's results.json (or null).
pub fn run_test(t: &TestCluster, store: &Path, args: &[&str]) -> (Option<i32>, String, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .arg("test")
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
