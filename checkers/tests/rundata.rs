//! The run files read back into their types and written out again, byte
//! for byte: results.json of real runs (lock, list-append, kv, bank),
//! `check --out`'s results.json, test.json of a run and of other shapes,
//! and a fault journal. The JSON on disk is docs/formats.md's; these prove the
//! types hold all of it.

use checkers::rundata::{self, Fault, FaultPlan, JournalEntry, ResultsFile, TestFile, Verdict};
use checkers::{CheckResult, Validity};
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rundata")
        .join(name)
}

fn text(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

#[test]
fn results_json_of_runs_reads_back_and_writes_the_same_bytes() {
    for name in [
        "results-lock.json",
        "results-txn.json",
        "results-invalid.json",
        "results-bank.json",
    ] {
        let t = text(name);
        let r: ResultsFile = rundata::parse(&data(name), t.as_bytes()).unwrap();
        assert_eq!(rundata::to_text(&r), t, "{name}");
        assert!(!r.checkers.is_empty(), "{name}");
    }
    let lock: ResultsFile = serde_json::from_str(&text("results-lock.json")).unwrap();
    assert_eq!(lock.valid, Validity::Invalid);
    assert_eq!(lock.verdict(), Verdict::Invalid);
    let a = &lock.checkers["lock"].anomalies[0];
    assert_eq!(a.kind, "double-grant");
    assert_eq!(a.event_indices(), [0, 1, 4, 5, 6, 7, 12, 13]);
    assert_eq!(a.extra["processes"], serde_json::json!([0, 1]));
    assert_eq!(lock.faults.failed[0].node.as_deref(), Some("n2"));
    assert!(lock.faults.incomplete());
}

#[test]
fn check_out_results_json_reads_back_in_field_order() {
    let t = text("check-out-etcd_000.json");
    let r: CheckResult = serde_json::from_str(&t).unwrap();
    assert_eq!(serde_json::to_string_pretty(&r).unwrap() + "\n", t);
    assert_eq!(r.valid, Validity::Invalid);
    // A linearizability anomaly without a key says so with null.
    assert_eq!(r.anomalies[0].key, Some(serde_json::Value::Null));
    assert_eq!(r.anomalies[0].key(), None);
    let run = ResultsFile::from_one(r);
    assert_eq!(run.verdict(), Verdict::Invalid);
}

#[test]
fn test_json_reads_back_and_writes_the_same_bytes() {
    for name in ["test-run.json", "test-other.json"] {
        let t = text(name);
        let test: TestFile = rundata::parse(&data(name), t.as_bytes()).unwrap();
        assert_eq!(rundata::to_text(&test), t, "{name}");
    }
    let run: TestFile = serde_json::from_str(&text("test-run.json")).unwrap();
    assert_eq!(run.rate, Some(None));
    assert_eq!(run.checker_specs()[0].checker, "lock");
    let other: TestFile = serde_json::from_str(&text("test-other.json")).unwrap();
    assert_eq!(other.rate, Some(Some(50.0)));
    assert!(other.rest.contains_key("some_future_field"));
}

#[test]
fn malformed_files_name_the_file_and_line() {
    let e = rundata::parse::<TestFile>(Path::new("run/test.json"), b"{\n \"seed\": \"seven\"\n}")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("run/test.json: "), "{e}");
    assert!(e.contains("line 2"), "{e}");
    let e = rundata::parse::<ResultsFile>(
        Path::new("results.json"),
        br#"{"valid": "maybe", "checkers": {}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("true, false or \"unknown\""), "{e}");
    let e = rundata::parse::<CheckResult>(
        Path::new("r.json"),
        br#"{"valid": true, "model": "kv", "ops": 1, "elapsed_ms": 0, "anomalies": [{"type": "x"}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("an anomaly has no \"message\""), "{e}");
}

#[test]
fn the_fault_journal_reads_back_typed_and_writes_the_same_lines() {
    let t = text("faults.jsonl");
    let mut out = String::new();
    let mut kinds = Vec::new();
    for line in t.lines() {
        let e = JournalEntry::from_json(serde_json::from_str(line).unwrap());
        assert!(!matches!(e, JournalEntry::Other(_)), "{line}");
        if let JournalEntry::Fault(p) = &e {
            kinds.push(p.fault());
        }
        out.push_str(&e.to_json().to_string());
        out.push('\n');
    }
    assert_eq!(out, t);
    assert_eq!(
        kinds,
        [
            Fault::Partition,
            Fault::Clock,
            Fault::Delay,
            Fault::LostWrites,
            Fault::Loss
        ]
    );
}

#[test]
fn plans_in_a_history_are_described_once() {
    let v = serde_json::json!({"strategy": "halves", "grudge": {"n1": ["n2"], "n2": ["n1"]}});
    let p = FaultPlan::from_event("start-partition", &v).unwrap();
    assert_eq!(p.describe(), "halves: n1 drops n2; n2 drops n1");
    assert_eq!(p.to_json(), v);
}
