//! Redis end to end on a real local cluster (Debian's redis-server uploaded
//! to each host, a sentinel beside each server): with the primary cut off,
//! the sentinels promote a replica while clients of the old primary's side
//! go on using it, and the lock checker finds two holders at once (SET NX
//! PX); the register is found not linearizable; the documents' SETNX recipe
//! runs and checks; Redlock without persistence grants twice when servers
//! restart at once, and holds with the append-only file. Short runs here
//! (CI); docs/systems.md's findings come from scripts/findings.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

fn run(t: &TestCluster, store: &Path, args: &[&str]) -> (Option<i32>, String, Value) {
    let mut all = vec!["--system", "redis", "--interval", "4", "--recovery", "2"];
    all.extend_from_slice(args);
    common::run_test(t, store, &all)
}

#[test]
fn redis_split_brain_breaks_the_lock_and_the_register() {
    if !TestCluster::possible() || !Path::new(workloads::redis::BINARY).exists() {
        harness::testing::skip("needs root and Debian's redis-server (scripts/test installs it)");
        return;
    }
    let t = TestCluster::up("sdk", 86, 5).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    // SET NX PX under a partition that isolates the primary: two holders.
    let found = common::first_invalid(&["1", "2"], |seed| {
        run(
            &t,
            &store,
            &[
                "--workload",
                "lock",
                "--nemesis",
                "partition",
                "--partition",
                "primary",
                "--time-limit",
                "20",
                "--seed",
                seed,
            ],
        )
    });
    let (out, results) = found.expect("no double grant in two 20 s runs with the primary cut off");
    assert_eq!(results["checkers"]["lock"]["valid"], false, "{out}");
    let a = &results["checkers"]["lock"]["anomalies"][0];
    assert_eq!(a["type"], "double-grant", "{a}");
    // The fault named in the history: the primary (n1 first) isolated.
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
    assert!(history.contains(r#""strategy":"primary""#));
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("latest/test.json")).unwrap())
            .unwrap();
    assert_eq!(test["opts"]["failover"], "sentinel");
    assert!(test["versions"]["redis"].as_str().unwrap().starts_with('7'));
    // Both daemons' logs were fetched; the sentinels switched the primary.
    let logs: Vec<String> = std::fs::read_dir(store.join("latest/nodes"))
        .unwrap()
        .map(|d| d.unwrap().path().join("redis-sentinel.log"))
        .map(|p| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert_eq!(logs.len(), 5);
    assert!(
        logs.iter().any(|l| l.contains("+switch-master")),
        "no sentinel switched the primary"
    );

    // The register under the same fault: a run that checks (stale reads
    // after a failover are the usual finding; not asserted, timing).
    let (code, out, results) = run(
        &t,
        &store,
        &[
            "--workload",
            "register",
            "--nemesis",
            "partition,kill",
            "--partition",
            "primary",
            "--time-limit",
            "12",
            "--rate",
            "1000",
            "--seed",
            "3",
        ],
    );
    assert!(
        matches!(code, Some(0 | 1)),
        "exit {code:?} (None: killed by a signal)\n{out}"
    );
    assert!(
        results["checkers"]["kv"]["ops"].as_u64().unwrap() > 1000,
        "{out}"
    );

    // The documents' SETNX recipe with kills: it runs, checks, and the
    // locks are released by WATCH/MULTI/DEL (some releases succeed).
    let (code, out, _) = run(
        &t,
        &store,
        &[
            "--workload",
            "lock",
            "--opt",
            "recipe=setnx",
            "--nemesis",
            "kill",
            "--time-limit",
            "10",
        ],
    );
    assert!(
        matches!(code, Some(0 | 1)),
        "exit {code:?} (None: killed by a signal)\n{out}"
    );
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap();
    assert!(
        history
            .lines()
            .any(|l| l.contains(r#""type":"ok","f":"release""#)),
        "no release succeeded"
    );
    // Redlock on five independent primaries, servers killed and restarted
    // at once (no delayed restart): with no persistence a restarted server
    // comes back empty, and a second client gets a majority while the first
    // still holds the lock; with the append-only file (written before Redis
    // replies, so a SIGKILL loses nothing) the lock holds.
    let redlock = |seed: &str, persistence: &str, limit: &str| {
        let persistence = format!("persistence={persistence}");
        common::run_test(
            &t,
            &store,
            &[
                "--system",
                "redis",
                "--workload",
                "lock",
                "--opt",
                "recipe=redlock",
                "--opt",
                &persistence,
                "--opt",
                "hold-ms=12000",
                "--opt",
                "lease-ms=15000",
                "--nemesis",
                "kill",
                "--interval",
                "2",
                "--recovery",
                "2",
                "--time-limit",
                limit,
                "--seed",
                seed,
            ],
        )
    };
    // Kills now wait until the restarted node serves (fault truth), so fewer
    // kills fit in a run: up to four seeds.
    let found = common::first_invalid(&["1", "2", "3", "4"], |seed| redlock(seed, "none", "30"));
    let (out, results) =
        found.expect("Redlock without persistence held through four 30 s runs of kills");
    let a = &results["checkers"]["lock"]["anomalies"][0];
    assert_eq!(a["type"], "double-grant", "{out}");
    let nodes = store.join("latest/nodes");
    assert!(
        std::fs::read_dir(&nodes).unwrap().all(|d| !d
            .unwrap()
            .path()
            .join("redis-sentinel.log")
            .exists()),
        "Redlock's primaries are independent: no sentinels"
    );
    let (code, out, _) = redlock("1", "aof", "20");
    assert_eq!(code, Some(0), "{out}");
    assert!(common::granted_with(&store, "lease_ms"), "no Redlock grant");

    // Nothing is left running on the nodes.
    common::assert_none_running("/opt/shakedown/redis");
}
