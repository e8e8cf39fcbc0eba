//! docs/systems.md's transactional findings, measured through `shakedown test`
//! on test clusters of their own: PostgreSQL's isolation levels and etcd's
//! transactions, without faults and under partition,kill; etcd's
//! transactions with serializable (member-local) reads under partitions.
//! Ignored (minutes of runs): `cargo test --profile ci --test txn_findings
//! -- --ignored --nocapture --test-threads 1`. Each run's line is printed:
//! the verdict, committed / failed / indeterminate transactions, and the
//! anomaly types the checker found.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;

mod common;

/// One run and its line for the table.
fn run(t: &TestCluster, store: &Path, label: &str, workload: &str, args: &[&str]) -> String {
    let mut all = vec!["--workload", workload, "--recovery", "2"];
    all.extend_from_slice(args);
    let (code, out, results) = common::run_test(t, store, &all);
    let history = std::fs::read_to_string(store.join("latest/history.jsonl")).unwrap_or_default();
    let count = |ty: &str| {
        history
            .lines()
            .filter(|l| l.contains(&format!(r#""type":"{ty}""#)) && l.contains(r#""f":"txn""#))
            .count()
    };
    let c = &results["checkers"][workload];
    let types = c["summary"]["anomaly_types"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let faults = &results["faults"];
    let line = format!(
        "{label:<44} exit {:?}  ok {:>5}  fail {:>5}  info {:>3}  faults {}/{}  anomalies: {}",
        code,
        count("ok"),
        count("fail"),
        count("info"),
        faults["applied"],
        faults["scheduled"],
        if types.is_empty() { "none" } else { &types }
    );
    println!("{line}");
    if code != Some(0) && code != Some(1) {
        println!("{out}");
    }
    line
}

#[test]
#[ignore]
fn postgres_isolation_findings() {
    let t = TestCluster::up("sdi", 90, 3).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut lines = Vec::new();
    for workload in ["list-append", "rw-register"] {
        for iso in ["read-committed", "repeatable-read", "serializable"] {
            for nemesis in ["none", "partition,kill"] {
                for seed in ["1", "2"] {
                    let label = format!("postgres {workload} {iso} {nemesis} seed {seed}");
                    let opt = format!("isolation={iso}");
                    lines.push(run(
                        &t,
                        &store,
                        &label,
                        workload,
                        &[
                            "--system",
                            "postgres",
                            "--opt",
                            &opt,
                            "--nemesis",
                            nemesis,
                            "--interval",
                            "4",
                            "--time-limit",
                            "15",
                            "--seed",
                            seed,
                        ],
                    ));
                }
            }
        }
    }
    println!("\n{}", lines.join("\n"));
}

#[test]
#[ignore]
fn etcd_txn_findings() {
    etcd_findings(&[("none", "linearizable"), ("partition,kill", "linearizable")]);
}

#[test]
#[ignore]
fn etcd_stale_read_findings() {
    etcd_findings(&[("partition", "serializable")]);
}

fn etcd_findings(configs: &[(&str, &str)]) {
    let t = TestCluster::up("sdg", 89, 5).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut lines = Vec::new();
    for workload in ["list-append", "rw-register"] {
        for &(nemesis, mode) in configs {
            for seed in ["1", "2"] {
                let label = format!("etcd {workload} reads {mode} {nemesis} seed {seed}");
                let opt = format!("read-mode={mode}");
                lines.push(run(
                    &t,
                    &store,
                    &label,
                    workload,
                    &[
                        "--system",
                        "etcd",
                        "--opt",
                        &opt,
                        "--nemesis",
                        nemesis,
                        "--interval",
                        "3",
                        "--time-limit",
                        "20",
                        "--seed",
                        seed,
                    ],
                ));
            }
        }
    }
    println!("\n{}", lines.join("\n"));
}
