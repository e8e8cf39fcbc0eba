//! `shakedown check` as users and CI scripts see it: verdict lines, exit
//! codes of docs/formats.md, messages that name the file and line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("checkers/tests/data/porcupine")
}

fn shakedown(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args(args)
        .output()
        .unwrap()
}

fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn a_directory_gets_one_verdict_line_per_file_and_the_worst_exit_code() {
    let dir = corpus().join("jepsen");
    let out = shakedown(&["check", dir.to_str().unwrap()]);
    // etcd_095.log is empty: an input error, which beats invalid.
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("etcd_095.log: the file is empty"),
        "{}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 102);
    assert!(
        stdout.contains("etcd_002.log: valid (cas-register"),
        "{stdout}"
    );
    assert!(
        stdout.contains("etcd_000.log: invalid (cas-register"),
        "{stdout}"
    );
}

#[test]
fn valid_is_zero_and_json_follows_the_contract() {
    let f = corpus().join("kv/c10-ok.txt");
    let out = shakedown(&["check", "--model", "kv", "--json", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["model"], "kv");
    assert_eq!(v["ops"], 337);
    assert!(v["elapsed_ms"].is_u64());
    assert!(v["anomalies"].as_array().unwrap().is_empty());
}

#[test]
fn invalid_json_carries_the_counterexample() {
    let f = corpus().join("kv/c01-bad.txt");
    let out = shakedown(&["check", "--model", "kv", "--json", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["valid"], false);
    let cx = &v["counterexample"];
    assert_eq!(cx["op"]["f"], "get");
    assert!(cx["prefix"].as_array().is_some());
    assert!(cx["pending"].as_array().is_some());
    assert!(v["anomalies"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("process "));
}

/// c50-bad restricted to key "0": invalid, and far too hard to decide quickly.
fn hard_history(dir: &Path) -> String {
    let all = std::fs::read_to_string(corpus().join("kv/c50-bad.txt")).unwrap();
    let k0: String = all
        .lines()
        .filter(|l| l.contains(":key \"0\""))
        .map(|l| format!("{l}\n"))
        .collect();
    write(dir, "k0.edn", &k0)
}

#[test]
fn a_time_limit_gives_unknown_never_valid() {
    let dir = tempfile::tempdir().unwrap();
    let f = hard_history(dir.path());
    let out = shakedown(&[
        "check",
        "--model",
        "kv",
        "--json",
        "--time-limit",
        "0.3",
        &f,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["valid"], "unknown");
    assert!(v["unknown_reason"].as_str().unwrap().contains("time limit"));
    // Generous: the precise figure (within 100 ms) is measured by scripts/bench.
    assert!(v["elapsed_ms"].as_u64().unwrap() < 3000);
}

#[test]
fn a_memory_budget_gives_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let f = hard_history(dir.path());
    let out = shakedown(&[
        "check",
        "--model",
        "kv",
        "--memory-limit",
        "16",
        "--time-limit",
        "60",
        &f,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("memory budget of 16 MiB"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn usage_errors_are_exit_3_and_name_the_flag() {
    let f = corpus().join("kv/c01-ok.txt");
    let f = f.to_str().unwrap();
    for (args, needle) in [
        (vec!["check", "--model", "queue", f], "--model"),
        (vec!["check", "--init", "{nope", f], "--init"),
        (vec!["check", "--format", "xml", f], "--format"),
        (vec!["check", "--time-limit", "-1", f], "--time-limit"),
        (vec!["check", "--frobnicate", f], "--frobnicate"),
        (vec!["check"], "FILES"),
        (
            vec!["check", "/nonexistent/history.jsonl"],
            "/nonexistent/history.jsonl",
        ),
    ] {
        let out = shakedown(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn help_lists_models_and_exits_zero() {
    let out = shakedown(&["check", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    for m in [
        "register",
        "cas-register",
        "kv",
        "mutex",
        "lock",
        "bank",
        "set",
        "counter",
        "jepsen-log",
    ] {
        assert!(s.contains(m), "{m}");
    }
}

#[test]
fn malformed_input_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"process":0,"type":"invoke","f":"write","value":1}"#;
    let f = write(
        dir.path(),
        "bad.jsonl",
        &format!("{good}\n{{\"process\":0,\"type\"\n{good}\n"),
    );
    let out = shakedown(&["check", &f]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains(&format!("{f}:2: ")),
        "{}",
        text(&out.stderr)
    );

    // An operation the model does not know is an input error too, with its line.
    let f = write(
        dir.path(),
        "append.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"append\",\"value\":\"x\"}\n",
    );
    let out = shakedown(&["check", "--model", "register", &f]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains(&format!("{f}:1: model register has no operation")),
        "{}",
        text(&out.stderr)
    );

    // Bytes that are not UTF-8.
    let p = dir.path().join("binary.jsonl");
    std::fs::write(&p, [b'{', 0xff, 0xfe, b'\n']).unwrap();
    let out = shakedown(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("UTF-8"), "{}", text(&out.stderr));
}

#[test]
fn a_torn_last_line_is_a_warning() {
    let h = "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n{\"process\":1,\"type\":\"inv";
    let out = with_stdin(&["check", "-"], h);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: line 3: torn last line"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).starts_with("-: valid"));
}

#[test]
fn every_format_is_sniffed() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write(
        dir.path(),
        "h.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n",
    );
    let edn = write(
        dir.path(),
        "history.edn",
        "{:index 0 :type :invoke, :f :write, :value 1, :process 0, :time 1}\n{:index 1 :type :ok, :f :write, :value 1, :process 0, :time 2}\n{:index 2 :type :invoke, :f :read, :value nil, :process 1, :time 3}\n{:index 3 :type :ok, :f :read, :value 2, :process 1, :time 4}\n",
    );
    let knossos = write(
        dir.path(),
        "knossos.edn",
        "[{:process 0, :type :invoke, :f :write, :value [:x 1]}\n {:process 0, :type :ok, :f :write, :value [:x 1]}\n {:process 1, :type :invoke, :f :read, :value [:x nil]}\n {:process 1, :type :ok, :f :read, :value [:x 1]}]\n",
    );
    let log = write(
        dir.path(),
        "jepsen.log",
        "INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\nINFO  jepsen.util - 1 :invoke :read nil\nINFO  jepsen.util - 1 :ok :read 1\n",
    );
    let out = shakedown(&["check", "--model", "register", &jsonl, &edn, &knossos, &log]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("h.jsonl: valid"), "{s}");
    assert!(s.contains("history.edn: invalid"), "{s}");
    assert!(s.contains("knossos.edn: valid"), "{s}");
    assert!(s.contains("jepsen.log: valid"), "{s}");
}

#[test]
fn out_writes_results_json() {
    let dir = tempfile::tempdir().unwrap();
    let f = corpus().join("jepsen/etcd_000.log");
    let out = shakedown(&[
        "check",
        "--out",
        dir.path().to_str().unwrap(),
        f.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let r = std::fs::read_to_string(dir.path().join("etcd_000.log/results.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["model"], "cas-register");
    // The same report as a run's, for a bare history (no clock here: event indices).
    let html = std::fs::read_to_string(dir.path().join("etcd_000.log/report.html")).unwrap();
    assert!(
        html.contains("INVALID") && html.contains("cannot be linearized"),
        "no lanes"
    );
    assert!(dir.path().join("etcd_000.log/junit.xml").is_file());
}

#[test]
fn safety_checkers_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let lock = write(
        dir.path(),
        "lock.jsonl",
        &[
            r#"{"process":0,"type":"invoke","f":"acquire","key":"L","time":1000000}"#,
            r#"{"process":0,"type":"ok","f":"acquire","key":"L","value":{"token":1},"time":2000000}"#,
            r#"{"process":1,"type":"invoke","f":"acquire","key":"L","time":3000000}"#,
            r#"{"process":1,"type":"ok","f":"acquire","key":"L","value":{"token":2},"time":4000000}"#,
            r#"{"process":0,"type":"invoke","f":"release","key":"L","time":5000000}"#,
            "",
        ]
        .join("\n"),
    );
    let out = shakedown(&["check", "--model", "lock", "--json", &lock]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["anomalies"][0]["type"], "double-grant");
    assert_eq!(v["anomalies"][0]["severity"], "invalid");
    assert_eq!(
        v["anomalies"][0]["events"],
        serde_json::json!([0, 1, 2, 3, 4])
    );
    assert!(v["anomalies"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("two clients held lock \"L\" at once, from 0.004 s to 0.005 s: process 0"));

    // bank needs its balances, and says so with exit 3.
    let bank = write(
        dir.path(),
        "bank.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n",
    );
    let out = shakedown(&["check", "--model", "bank", &bank]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("--init"),
        "{}",
        text(&out.stderr)
    );
    let out = shakedown(&["check", "--model", "bank", "--init", r#"{"a":1}"#, &bank]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_lock_report_marks_holds_tokens_and_lease_ends() {
    let dir = tempfile::tempdir().unwrap();
    let ms = 1_000_000u64;
    let ev = |p: u64, t: &str, f: &str, v: &str, at: u64| {
        format!(
            r#"{{"process":{p},"type":"{t}","f":"{f}","key":"L","value":{v},"time":{}}}"#,
            at * ms
        )
    };
    let lock = write(
        dir.path(),
        "lock.jsonl",
        &[
            ev(0, "invoke", "acquire", "null", 100),
            ev(0, "ok", "acquire", r#"{"token":1,"lease_ms":1000}"#, 120),
            ev(1, "invoke", "acquire", "null", 300),
            ev(1, "ok", "acquire", r#"{"token":2,"lease_ms":1000}"#, 900),
            ev(0, "invoke", "release", "null", 1500),
            ev(0, "ok", "release", "null", 1510),
            String::new(),
        ]
        .join("\n"),
    );
    let out_dir = dir.path().join("out");
    let out = shakedown(&[
        "check",
        "--model",
        "lock",
        "--out",
        &out_dir.display().to_string(),
        &lock,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(out_dir.join("lock.jsonl/report.html")).unwrap();
    for words in [
        "holds (token 1)",
        "holds (token 2)",
        "lease ends (1000 ms)",
        "double-grant",
    ] {
        assert!(html.contains(words), "the report does not say {words:?}");
    }
}

#[test]
fn maelstrom_options_are_usage_errors_naming_the_option() {
    let nodes = format!(
        "binary={}/tests/maelstrom-nodes",
        env!("CARGO_MANIFEST_DIR")
    );
    for (opts, needle) in [
        (vec![], "--opt binary=PATH"),
        (
            vec!["--opt", "binary=/nonexistent/node"],
            "/nonexistent/node",
        ),
        (vec!["--opt", &nodes], "maelstrom-nodes/run does not exist"),
        (
            vec!["--opt", &nodes, "--opt", "run=node.py"],
            "not an executable",
        ),
        (
            vec!["--opt", &nodes, "--opt", "run=echo", "--opt", "port=x"],
            "--opt port=x",
        ),
    ] {
        let mut args = vec!["test", "--system", "maelstrom", "--workload", "echo"];
        args.extend(opts.iter().copied());
        let out = shakedown(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// A run whose faults or system upload one of shakedown's own binaries
/// (here looked for in an empty SHAKEDOWN_BIN_DIR) is refused on the
/// control host before any host is touched: exit 4, the missing file and
/// the cargo command that builds it named, no run directory made, no node
/// contacted (the nodes file's node does not even exist).
#[test]
fn a_missing_companion_binary_is_refused_before_any_host_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let nodes = write(dir.path(), "nodes", "root@192.0.2.1:22\n");
    let store = dir.path().join("store");
    let maelstrom = format!(
        "binary={}/tests/maelstrom-nodes",
        env!("CARGO_MANIFEST_DIR")
    );
    for (args, missing) in [
        (
            vec!["--system", "redis", "--nemesis", "lost-writes"],
            "shakedown-lostfs",
        ),
        (vec!["--nemesis", "kill,delay"], "shakedown-netem"),
        (
            vec![
                "--system",
                "maelstrom",
                "--workload",
                "echo",
                "--opt",
                &maelstrom,
                "--opt",
                "run=echo",
                "--nemesis",
                "none",
            ],
            "shakedown-agent",
        ),
    ] {
        let mut all = vec!["test", "--nodes-file", &nodes, "--store"];
        all.push(store.to_str().unwrap());
        all.extend(args.iter().copied());
        let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
            .args(&all)
            .env("SHAKEDOWN_BIN_DIR", &bin)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{all:?}: {err}");
        let path = bin.join(missing);
        assert!(
            err.contains(&format!(
                "{missing} is missing on the control host: {}",
                path.display()
            )) && err.contains("cargo build --release --locked --workspace --bins")
                && err.contains("SHAKEDOWN_BIN_DIR"),
            "{all:?}: {err}"
        );
        assert!(!err.contains("192.0.2.1"), "a node was contacted: {err}");
        assert!(!store.exists(), "a run directory was made");
    }
}
