//! `--system maelstrom` with our own Python demo nodes
//! (tests/maelstrom-nodes/) on a real local cluster: the correct nodes pass
//! under partitions and kills; the broken ones are caught with a sentence
//! that says what went wrong. The transactional workloads have a test of
//! their own (subnet 10.95): the txn node forwarding to n1 is valid, the one
//! answering read-only txns from a stale local copy is caught.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

fn nodes_dir() -> String {
    format!("{}/tests/maelstrom-nodes", env!("CARGO_MANIFEST_DIR"))
}

fn run(
    t: &TestCluster,
    store: &Path,
    workload: &str,
    node: &str,
    nemesis: &str,
    seed: &str,
) -> (Option<i32>, String, Value) {
    let binary = format!("binary={}", nodes_dir());
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

/// A Maelstrom echo node in one file that exits on anything unexpected.
const STRICT_ECHO: &str = r#"#!/usr/bin/env python3
import json, sys
me = None
for line in sys.stdin:
    m = json.loads(line)
    b = m["body"]
    if b["type"] == "init":
        me = b["node_id"]
        out = {"type": "init_ok"}
    elif b["type"] == "echo" and me:
        out = {"type": "echo_ok", "echo": b["echo"]}
    else:
        sys.exit("unexpected message: " + line)
    out["in_reply_to"] = b["msg_id"]
    print(json.dumps({"src": me, "dest": m["src"], "body": out}), flush=True)
"#;

fn results_of(store: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(store.join("latest/results.json")).unwrap())
        .unwrap()
}

fn ops(results: &Value, checker: &str) -> u64 {
    results["checkers"][checker]["ops"].as_u64().unwrap_or(0)
}

fn first_message(results: &Value, checker: &str) -> String {
    results["checkers"][checker]["anomalies"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn demo_nodes_pass_under_partitions_and_kills_and_broken_ones_are_caught() {
    if !TestCluster::possible() {
        harness::testing::skip("the local cluster needs root");
        return;
    }
    let t = TestCluster::up("sdm", 91, 3).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    // (workload, node, checker, fewest ops)
    for (workload, node, checker, least) in [
        ("echo", "echo", "echo", 200),
        ("unique-ids", "unique-ids", "unique-ids", 200),
        ("broadcast", "broadcast", "eventual-set", 100),
        ("g-counter", "counter", "eventual-counter", 100),
        ("pn-counter", "counter", "eventual-counter", 100),
        ("lin-kv", "lin-kv", "kv", 100),
        ("kafka", "kafka", "kafka", 100),
    ] {
        let nemesis = if workload == "broadcast" {
            "partition,kill,pause"
        } else {
            "partition,kill"
        };
        let (code, out, results) = run(&t, &store, workload, node, nemesis, "1");
        assert_eq!(code, Some(0), "{workload}: {out}");
        assert!(ops(&results, checker) >= least, "{workload}: {results}");
        if workload == "broadcast" {
            // Every node read every acknowledged message at the end.
            let finals = &results["checkers"][checker]["summary"]["final_reads"];
            assert_eq!(finals.as_object().map(|m| m.len()), Some(3), "{results}");
        }
    }
    // The last run (kafka) polled everything it could see at the end.
    assert!(results_of(&store)["checkers"]["kafka"]["summary"]["polls"].as_u64() > Some(0));
    // A restarted node was initialised again (the kill hit the shim and the node).
    let mut inits = 0;
    for node in std::fs::read_dir(store.join("latest/nodes"))
        .unwrap()
        .flatten()
    {
        for log in std::fs::read_dir(node.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(log.path()).unwrap_or_default();
            inits += text.matches("sent init").count();
        }
    }
    assert!(inits > 3, "no node was initialised twice ({inits} inits)");

    // A single executable file (not a directory), which exits on any message
    // type it does not know: the shim sends it nothing but init and echoes.
    let file = dir.path().join("strict-echo");
    std::fs::write(&file, STRICT_ECHO).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, out, results) = common::run_test(
        &t,
        &store,
        &[
            "--system",
            "maelstrom",
            "--workload",
            "echo",
            "--opt",
            &format!("binary={}", file.display()),
            "--nemesis",
            "kill",
            "--time-limit",
            "6",
            "--interval",
            "2",
            "--seed",
            "1",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(ops(&results, "echo") >= 100, "{results}");

    // Regression guard for the broken broadcast: a message forwarded once
    // and lost to a kill never reaches the restarted node.
    let caught = common::first_invalid(&["2", "3", "4"], |seed| {
        run(&t, &store, "broadcast", "broadcast-once", "kill", seed)
    });
    let (_, results) = caught.expect("the broadcast that never re-sends was not caught");
    let m = first_message(&results, "eventual-set");
    assert!(
        m.starts_with("the final read on ") && m.contains("misses"),
        "{m}"
    );

    let (code, out, results) = run(&t, &store, "lin-kv", "lin-kv-stale", "partition", "5");
    assert_eq!(code, Some(1), "{out}");
    let m = first_message(&results, "kv");
    assert!(m.contains(" read "), "{m}");
    common::assert_none_running("agent maelstrom --id n[0-9]* --listen 10.91.0.");
}

#[test]
fn txn_nodes_are_valid_under_partitions_and_kills_and_stale_reads_are_caught() {
    if !TestCluster::possible() {
        harness::testing::skip("the local cluster needs root");
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
