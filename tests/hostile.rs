//! Hostile and unusual input to `check` and `report`: never a panic, abort,
//! hang or unbounded allocation, never "valid" for input nothing was read
//! from; every refusal is exit 3 with a short message naming what was wrong.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shakedown"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, body: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// Waits for `child`, failing (and killing it) if it has not ended by a
/// generous deadline: a hang is the defect these tests guard against.
fn finish(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `shakedown ARGS` with its output captured.
fn start(args: &[&str], stdin: Stdio) -> Child {
    bin()
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `shakedown ARGS` to its end, failing if it hangs.
fn run_bounded(args: &[&str], what: &str) -> Output {
    finish(start(args, Stdio::null()), what)
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

const OPS: &str = "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n";

// Regression: --time-limit 1e19 and 1e300 panicked (exit 101);
// --memory-limit 17592186044416 wrapped to 0 MiB; --threads was unbounded.
#[test]
fn numeric_flags_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "h.jsonl", OPS.as_bytes());
    for (flag, v) in [
        ("--time-limit", "1e19"),
        ("--time-limit", "1e300"),
        ("--time-limit", "inf"),
        ("--time-limit", "0"),
        ("--memory-limit", "17592186044416"),
        ("--memory-limit", "0"),
        ("--threads", "100000"),
        ("--threads", "18446744073709551615"),
    ] {
        let out = run(&["check", flag, v, &f]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{flag} {v}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(flag),
            "{flag} {v}: {}",
            text(&out.stderr)
        );
    }
    let out = run(&[
        "check",
        "--time-limit",
        "1e6",
        "--memory-limit",
        "16777216",
        "--threads",
        "1024",
        &f,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

// Regression: each of these was "valid (cas-register, 0 ops)", exit 0.
#[test]
fn nothing_read_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (write(d, "empty", b""), vec![]),
        (write(d, "hello", b"hello world\n"), vec![]),
        (write(d, "nul", format!("\0{OPS}").as_bytes()), vec![]),
        (write(d, "garbage", format!("garbage\n{OPS}").as_bytes()), vec![]),
        (write(d, "log.jsonl", OPS.as_bytes()), vec!["--format", "jepsen-log"]),
        (write(d, "unclosed.edn", b"{:process 0, :type :invoke\n{:process 0, :type :invoke, :f :read}\n{:process 0, :type :ok, :f :read}\n"), vec![]),
    ];
    for (f, extra) in cases {
        let mut args = vec!["check"];
        args.extend(extra);
        args.push(&f);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(3), "{f}: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains(&f), "{f}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{f}: {}", text(&out.stdout));
    }
    // A BOM and CR line ends read.
    let bom = write(
        d,
        "bom.jsonl",
        format!("\u{feff}{}", OPS.replace('\n', "\r")).as_bytes(),
    );
    let out = run(&["check", &bom]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 ops"), "{}", text(&out.stdout));
}

// Regression: `--format jsonl /dev/zero` aborted; a FIFO hung past the time limit.
#[test]
fn devices_and_pipes_end_promptly() {
    let out = run(&["check", "--format", "jsonl", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("/dev/zero: error: a character device"),
        "{}",
        text(&out.stderr)
    );
    // /dev/zero as standard input: refused at its first byte.
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let out = finish(
        start(&["check", "--format", "jsonl", "-"], zero.into()),
        "/dev/zero on stdin",
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let f = fifo.to_str().unwrap();
    // No writer at all.
    let out = run_bounded(
        &["check", "--time-limit", "0.5", f],
        "a FIFO without a writer",
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // A writer that writes a little and never closes.
    let child = start(&["check", "--time-limit", "0.5", f], Stdio::null());
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(OPS.as_bytes()).unwrap();
    let out = finish(child, "a FIFO that never ends");
    drop(w);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("time limit"),
        "{}",
        text(&out.stderr)
    );
}

// Regression: a 5 MB keyword gave 5 MB of stderr.
#[test]
fn echoed_input_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("{{:process 0, :type :{}, :f :read}}\n", "x".repeat(5 << 20));
    let f = write(dir.path(), "big.edn", body.as_bytes());
    let out = run(&["check", &f]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        out.stderr.len() < 2000,
        "{} bytes of stderr",
        out.stderr.len()
    );
    // A model's complaint about an operation quotes it, cut short too.
    let body = format!(
        "{{\"process\":0,\"type\":\"invoke\",\"f\":\"{}\"}}\n",
        "y".repeat(5 << 20)
    );
    let f = write(dir.path(), "big.jsonl", body.as_bytes());
    let out = run(&["check", "--model", "register", &f]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        out.stderr.len() < 2000,
        "{} bytes of stderr",
        out.stderr.len()
    );
}

// Regression: only one failing key was named.
#[test]
fn every_failing_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = String::new();
    for (p, k, seen) in [(0, "a", 2), (2, "b", 1), (4, "c", 3)] {
        h += &format!("{{\"process\":{p},\"type\":\"invoke\",\"f\":\"write\",\"key\":\"{k}\",\"value\":1}}\n{{\"process\":{p},\"type\":\"ok\",\"f\":\"write\",\"key\":\"{k}\",\"value\":1}}\n");
        let r = p + 1;
        h += &format!("{{\"process\":{r},\"type\":\"invoke\",\"f\":\"read\",\"key\":\"{k}\"}}\n{{\"process\":{r},\"type\":\"ok\",\"f\":\"read\",\"key\":\"{k}\",\"value\":{seen}}}\n");
    }
    let f = write(dir.path(), "kv.jsonl", h.as_bytes());
    let out = run(&["check", "--model", "kv", &f]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(s.contains("2 keys fail: \"a\", \"c\""), "{s}");
    assert!(s.contains("also: process 5 read 3 on key \"c\""), "{s}");
    let out = run(&["check", "--model", "kv", "--json", &f]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = v["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "c"]);
    let o = tempfile::tempdir().unwrap();
    let out = run(&[
        "check",
        "--model",
        "kv",
        "--out",
        o.path().to_str().unwrap(),
        &f,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let junit = std::fs::read_to_string(o.path().join("kv.jsonl/junit.xml")).unwrap();
    assert!(
        junit.contains("on key &quot;a&quot;") && junit.contains("on key &quot;c&quot;"),
        "{junit}"
    );
    let html = std::fs::read_to_string(o.path().join("kv.jsonl/report.html")).unwrap();
    assert!(
        html.contains("on key &quot;c&quot;"),
        "the report lacks key c"
    );
}

// Regression: `check --out` on a history whose last time is u64::MAX, or
// whose times are Unix-epoch nanoseconds, sized per-second arrays by the
// time range and aborted; junit.xml broke on U+FFFE; the reproduce line
// was not shell-quoted.
#[test]
fn out_survives_extreme_times_and_values() {
    let dir = tempfile::tempdir().unwrap();
    for (name, t0, t1) in [
        ("max time.jsonl", 0u64, u64::MAX),
        (
            "epoch.jsonl",
            1_764_000_000_000_000_000,
            1_764_000_000_500_000_000,
        ),
    ] {
        let h = format!(
            "{{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":\"a\\ufffeb\",\"time\":{t0}}}\n{{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":\"a\\ufffeb\",\"time\":{t0}}}\n{{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"time\":{t0}}}\n{{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":\"x\\ufffe\",\"time\":{t1}}}\n"
        );
        let f = write(dir.path(), name, h.as_bytes());
        let o = tempfile::tempdir().unwrap();
        let out = run_bounded(
            &[
                "check",
                "--model",
                "register",
                "--out",
                o.path().to_str().unwrap(),
                &f,
            ],
            name,
        );
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out.stderr));
        let junit = std::fs::read_to_string(o.path().join(name).join("junit.xml")).unwrap();
        assert!(!junit.contains('\u{fffe}'), "{name}: U+FFFE in junit.xml");
        assert!(junit.contains("\\u{fffe}"), "{name}: {junit}");
        let html = std::fs::read_to_string(o.path().join(name).join("report.html")).unwrap();
        if name.contains(' ') {
            assert!(
                html.contains("register &#x27;"),
                "the reproduce line is not quoted"
            );
        }
    }
}

// Regression: `report` followed symlinks in nodes/ (copying any readable
// file into report.html), and a FIFO there hung it.
#[test]
fn report_reads_only_regular_files_inside_the_run() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/tests/data/invalid");
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(run_dir.join("nodes/n1")).unwrap();
    for f in ["test.json", "history.jsonl"] {
        std::fs::copy(src.join(f), run_dir.join(f)).unwrap();
    }
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "2026-11-23 18:05:16.610 UTC TOP-SECRET-LINE\n").unwrap();
    std::os::unix::fs::symlink(&secret, run_dir.join("nodes/n1/etcd.log")).unwrap();
    std::os::unix::fs::symlink(dir.path(), run_dir.join("nodes/n2")).unwrap();
    mkfifo(&run_dir.join("nodes/n1/fifo.log"));
    std::fs::write(run_dir.join("nodes/n1/real.log"), "an ordinary line\n").unwrap();
    // A planted report.html symlink is replaced, its target left alone.
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, run_dir.join("report.html")).unwrap();
    let out = run_bounded(
        &["report", run_dir.to_str().unwrap()],
        "report with a FIFO in nodes/",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(
        !html.contains("TOP-SECRET-LINE"),
        "a symlink's target reached the page"
    );
    assert!(html.contains("an ordinary line"), "the real log is missing");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");

    // A history.jsonl that is a symlink is refused.
    std::fs::remove_file(run_dir.join("history.jsonl")).unwrap();
    std::os::unix::fs::symlink(src.join("history.jsonl"), run_dir.join("history.jsonl")).unwrap();
    let out = run(&["report", run_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("history.jsonl: not a regular file"),
        "{}",
        text(&out.stderr)
    );
}

/// A fuzz pass over `check --out` (bounded: a fixed number of seeded
/// mutations): never a crash or hang, and "valid" only with operations read.
#[test]
fn check_out_on_mutated_histories() {
    let seeds: [&[u8]; 3] = [
        OPS.as_bytes(),
        b"{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n",
        b"INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\t:x\n",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let dir = tempfile::tempdir().unwrap();
    for case in 0..24 {
        let mut b = seeds[case % seeds.len()].to_vec();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            match next() % 3 {
                0 => b[i] = next() as u8,
                1 => b.insert(i, next() as u8),
                _ => {
                    b.remove(i);
                }
            }
        }
        let f = write(dir.path(), &format!("case{case}"), &b);
        let o = tempfile::tempdir().unwrap();
        let out = run_bounded(
            &[
                "check",
                "--time-limit",
                "5",
                "--out",
                o.path().to_str().unwrap(),
                &f,
            ],
            &format!("case {case}: {b:?}"),
        );
        let code = out.status.code();
        assert!(
            matches!(code, Some(0..=3)),
            "case {case} {b:?}: {code:?} {}",
            text(&out.stderr)
        );
        if code == Some(0) {
            assert!(
                !text(&out.stdout).contains(" 0 ops"),
                "case {case} {b:?}: {}",
                text(&out.stdout)
            );
        }
    }
}
