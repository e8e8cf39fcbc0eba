//! `shakedown check --model list-append|rw-register`: verdicts, exit codes
//! and messages through the binary, on both readers (JSON lines streamed,
//! EDN through the ordinary one).

use std::process::Command;

fn check(args: &[&str], text: &str, name: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .arg("check")
        .args(args)
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A stale read: T2 begins after T1 committed x=[1], yet reads x=[].
const STALE: &str = r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x",1]]}
{"process":0,"type":"ok","f":"txn","value":[["append","x",1]]}
{"process":1,"type":"invoke","f":"txn","value":[["r","x",null]]}
{"process":1,"type":"ok","f":"txn","value":[["r","x",[]]]}
"#;

#[test]
fn verdicts_follow_the_consistency_models() {
    let (code, out, _) = check(&["--model", "list-append"], STALE, "h.jsonl");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("G-single-realtime"), "{out}");
    let (code, out, _) = check(
        &[
            "--model",
            "list-append",
            "--consistency-models",
            "serializable",
        ],
        STALE,
        "h.jsonl",
    );
    assert_eq!(code, 0, "{out}");
    let edn = r#"{:type :invoke, :f :txn, :value [[:append :x 1]], :process 0, :index 0}
{:type :ok, :f :txn, :value [[:append :x 1]], :process 0, :index 1}
{:type :invoke, :f :txn, :value [[:r :x nil]], :process 1, :index 2}
{:type :ok, :f :txn, :value [[:r :x []]], :process 1, :index 3}
"#;
    let (code, out, _) = check(&["--model", "list-append", "--json"], edn, "history.edn");
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["anomalies"][0]["type"], "G-single-realtime");
    assert_eq!(v["summary"]["not"][0], "strict-serializable");
}

#[test]
fn bad_input_is_exit_3_naming_file_and_line() {
    let (code, _, err) = check(
        &[
            "--model",
            "list-append",
            "--consistency-models",
            "linearizable",
        ],
        STALE,
        "h.jsonl",
    );
    assert_eq!(code, 3);
    assert!(
        err.contains("--consistency-models") && err.contains("linearizable"),
        "{err}"
    );
    let bad = STALE.replace(r#"["r","x",[]]"#, r#"["r","x",7]"#);
    let (code, _, err) = check(&["--model", "list-append"], &bad, "h.jsonl");
    assert_eq!(code, 3);
    assert!(err.contains("h.jsonl:4:"), "{err}");
    let (code, _, err) = check(&["--model", "rw-register"], STALE, "h.jsonl");
    assert_eq!(code, 3);
    assert!(
        err.contains("h.jsonl:1:") && err.contains("w or r"),
        "{err}"
    );
}
