//! ZooKeeper end to end on a real local cluster (Debian's zookeeperd on
//! the hosts, one zoo.cfg each): plain reads from a lagging server are
//! found stale; reads after `sync` stay linearizable under partitions; the
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
        eprintln!("skipped: needs root and Debian's zookeeperd (scripts/test installs it)");
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
    assert_eq!(code, Some(0), "{out}");
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
