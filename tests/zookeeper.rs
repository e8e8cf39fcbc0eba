//! ZooKeeper end to end on a real local cluster (Debian's zookeeperd on
//! the hosts, one zoo.cfg each): plain reads from a lagging server are
//! found stale; reads after `sync` stay linearizable except, possibly, while
//! the leader is cut off (sync is not a quorum operation); the
//! lock recipe (ephemeral sequential children, the session as the lease)
//! runs under partitions of the leader and kills, and checks.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

fn run(t: &TestCluster, store: &Path, args: &[&str]) -> (Option<i32>, String, Value) {
    let mut all = vec![
        "--system",
        "zookeeper",
        "--interval",
        "4",
        "--recovery",
        "3",
    ];
    all.extend_from_slice(args);
    common::run_test(t, store, &all)
}

#[test]
fn zookeeper_plain_reads_lag_sync_reads_do_not_and_the_lock_runs() {
    if !TestCluster::possible() || !Path::new(workloads::zookeeper::JAR).exists() {
        harness::testing::skip("needs root and Debian's zookeeperd (scripts/test installs it)");
        return;
    }
    let t = TestCluster::up("sdz", 87, 3).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    // Plain reads: a follower behind its leader answers with an old value.
    let stale = common::first_invalid(&["1", "2"], |seed| {
        run(
            &t,
            &store,
            &[
                "--workload",
                "register",
                "--nemesis",
                "partition",
                "--time-limit",
                "12",
                "--seed",
                seed,
            ],
        )
    });
    let (_, results) = stale.expect("plain reads were never stale in two 12 s runs");
    let msg = results["checkers"]["kv"]["anomalies"][0]["message"]
        .as_str()
        .unwrap();
    assert!(msg.contains(" read "), "{msg}");

    // sync first: linearizable, partitions of the leader included.
    let (code, out, results) = run(
        &t,
        &store,
        &[
            "--workload",
            "register",
            "--opt",
            "read-mode=sync",
            "--nemesis",
            "partition",
            "--partition",
            "primary",
            "--time-limit",
            "12",
            "--seed",
            "3",
        ],
    );
    // `sync` is not a quorum operation: a leader cut off from the others
    // may, until it notices, answer sync + read with what it has (the known
    // caveat of ZooKeeper's sync; seen once in CI with this very seed). So:
    // valid, or a stale read while the leader was cut off (or within 2 s of
    // the heal), never one outside a partition.
    match code {
        Some(0) => {}
        Some(1) => {
            let at = results["checkers"]["kv"]["counterexample"]["op"]["call_time"]
                .as_u64()
                .unwrap_or(u64::MAX);
            let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
            let mut windows = Vec::new();
            let mut open = None;
            for l in history
                .lines()
                .filter(|l| l.contains(r#""process":"nemesis""#))
            {
                let e: Value = serde_json::from_str(l).unwrap();
                let t = e["time"].as_u64().unwrap();
                match (e["type"].as_str(), e["f"].as_str()) {
                    (Some("invoke"), Some("start-partition")) => open = Some(t),
                    (Some("info"), Some("stop-partition" | "heal")) => {
                        if let Some(s) = open.take() {
                            windows.push((s, t + 2_000_000_000));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(s) = open {
                windows.push((s, u64::MAX));
            }
            assert!(
                windows.iter().any(|(s, e)| (*s..=*e).contains(&at)),
                "a stale sync read outside any partition of the leader (at {at} ns; windows {windows:?}):\n{out}"
            );
        }
        _ => panic!("exit {code:?}\n{out}"),
    }
    assert!(
        results["checkers"]["kv"]["ops"].as_u64().unwrap() > 1000,
        "{out}"
    );
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
    assert!(
        history.contains(r#""strategy":"primary""#),
        "the leader was never found and cut off: {}",
        history
            .lines()
            .filter(|l| l.contains("nemesis"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The lock recipe with the leader cut off and servers killed.
    let (code, out, results) = run(
        &t,
        &store,
        &[
            "--workload",
            "lock",
            "--nemesis",
            "partition,kill",
            "--partition",
            "primary",
            "--opt",
            "session-timeout=3000",
            "--time-limit",
            "12",
            "--seed",
            "4",
        ],
    );
    assert!(
        matches!(code, Some(0 | 1)),
        "exit {code:?} (None: killed by a signal)\n{out}"
    );
    assert!(results["checkers"]["lock"].is_object(), "{out}");
    assert!(
        common::granted_with(&store, "\"token\""),
        "no lock was granted with a token"
    );
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("latest/test.json")).unwrap())
            .unwrap();
    assert!(test["versions"]["zookeeper"]
        .as_str()
        .unwrap()
        .starts_with("3."));
    common::assert_none_running("/opt/shakedown/zookeeper/zoo.cfg");
}
