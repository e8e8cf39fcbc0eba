//! `shakedown test` on a real local cluster with the noop system (a sleeping
//! process per node as the fault target, in-process clients): the lifecycle,
//! the store, faults in the history, and crash safety: SIGPIPE and a closed
//! stdout are survived; SIGINT during a partition heals and exits 130;
//! SIGKILL then `shakedown heal` heals.
//! Own names and subnet; torn down even on failure.

use harness::control::{Remote, SshNode};
use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// `shakedown VERB` on `t`'s nodes, with runs in `store`.
fn verb(verb: &str, t: &TestCluster, store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shakedown"));
    c.arg(verb)
        .args(["--store", &store.display().to_string()])
        .args(["--nodes-file", &t.up.nodes_file.display().to_string()])
        .args(["--ssh-key", &t.up.key.display().to_string()])
        .args(["--known-hosts", &t.up.known_hosts.display().to_string()]);
    c
}

fn test_cmd(t: &TestCluster, store: &Path, extra: &[&str]) -> Command {
    let mut c = verb("test", t, store);
    c.args(["--system", "noop", "--rate", "2000", "--recovery", "0"])
        .args(extra);
    c
}

fn heal_cmd(t: &TestCluster, store: &Path) -> Command {
    verb("heal", t, store)
}

/// Every line of the history parses, indices count up, times never go back.
fn history_lines(run: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["index"], i as u64);
    }
    let times: Vec<u64> = events.iter().map(|e| e["time"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    events
}

/// No rule in shakedown's chain, no stopped process, the daemon running.
fn assert_healed(nodes: &mut [SshNode]) {
    for n in nodes.iter_mut() {
        let rules = n
            .run(
                "iptables -w -S SHAKEDOWN 2>/dev/null | grep -c DROP || true",
                T,
            )
            .unwrap();
        assert_eq!(rules.trim(), "0", "{}: rules left in SHAKEDOWN", n.name());
        let stopped = n
            .run(
                "grep -l '^State:.*stopped' /proc/[0-9]*/status 2>/dev/null | wc -l",
                T,
            )
            .unwrap();
        assert_eq!(
            stopped.trim(),
            "0",
            "{}: a stopped process is left",
            n.name()
        );
        assert!(
            n.exec(
                "[ ! -e /run/shakedown-paused ] && [ ! -e /run/shakedown-killed ]",
                T
            )
            .unwrap()
            .code
                == 0,
            "{}: fault state files left",
            n.name()
        );
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("shakedown did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn in_force(run: &Path, fault: &str) -> bool {
    // The fault's info completion is in the history: it is applied.
    std::fs::read_to_string(run.join("history.jsonl"))
        .map(|t| {
            t.lines().rev().take(2000).any(|l| {
                l.contains("\"nemesis\"")
                    && l.contains("\"info\"")
                    && l.contains(&format!("\"f\":\"{fault}\""))
            })
        })
        .unwrap_or(false)
}

#[test]
fn runs_record_faults_and_survive_interrupts_and_kills() {
    if !TestCluster::possible() {
        harness::testing::skip("the local cluster needs root");
        return;
    }
    let t = TestCluster::up("sdr", 83, 3).expect("cluster up");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut nodes = t.connect_all().unwrap();

    // 1. A whole run: every fault, the store, the report, exit 0.
    let out = test_cmd(
        &t,
        &store,
        &[
            "--workload",
            "register",
            "--nemesis",
            "partition,kill,pause,loss",
            "--time-limit",
            "8",
            "--interval",
            "1",
            "--seed",
            "5",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("seed 5:"), "{stdout}");
    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    for f in [
        "test.json",
        "history.jsonl",
        "results.json",
        "report.html",
        "junit.xml",
        "shakedown.log",
        "faults.jsonl",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    assert!(store.join("index.html").is_file());
    let test: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["seed"], 5);
    assert!(test["command"].as_str().unwrap().contains("--seed 5"));
    let events = history_lines(&run);
    let nemesis: Vec<&Value> = events
        .iter()
        .filter(|e| e["process"] == "nemesis")
        .collect();
    assert!(nemesis.len() >= 8, "{} nemesis events", nemesis.len());
    // The last nemesis event is the final heal, verified on every node.
    let last = nemesis.last().unwrap();
    assert!(last["error"].is_null(), "{last}");
    let verified = last["value"]["verified"].as_object().unwrap();
    assert_eq!(verified.len(), 3, "{last}");
    assert!(
        verified
            .values()
            .all(|v| v.as_str().unwrap().starts_with("no rule left")),
        "{last}"
    );
    // Every fault took effect.
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        results["faults"]["scheduled"], results["faults"]["applied"],
        "{results}"
    );
    assert!(results["faults"]["failed"].as_array().unwrap().is_empty());
    assert!(run.join("nodes/sdrn1/noop.log").exists());
    assert_healed(&mut nodes);
    // The noop daemon is gone after teardown.
    assert!(nodes[0].exec("[ -d /opt/shakedown/noop ]", T).unwrap().code != 0);

    // 2. SIGINT during a partition: exit 130, healed, history readable, results written.
    let mut child = test_cmd(
        &t,
        &store,
        &[
            "--nemesis",
            "partition",
            "--time-limit",
            "60",
            "--interval",
            "4",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Nobody reads its output: every line it prints now meets a closed pipe.
    drop(child.stdout.take());
    wait_for("a partition", Duration::from_secs(30), || {
        std::fs::canonicalize(store.join("latest"))
            .map(|r| in_force(&r, "start-partition"))
            .unwrap_or(false)
    });
    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    let partitioned = nodes.iter_mut().any(|n| {
        n.run(
            "iptables -w -S SHAKEDOWN 2>/dev/null | grep -c DROP || true",
            T,
        )
        .unwrap()
        .trim()
            != "0"
    });
    // SIGPIPE, what a write to a socket reset by a killed node raises
    // (clients that write with writev cannot refuse it), does not end a
    // run; nor did the closed stdout.
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGPIPE) };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(child.try_wait().unwrap(), None, "SIGPIPE ended the run");
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(wait_exit(&mut child, Duration::from_secs(30)), Some(130));
    assert!(
        partitioned,
        "no partition rules were seen before the interrupt"
    );
    assert_healed(&mut nodes);
    history_lines(&run);
    assert!(run.join("results.json").is_file());

    // 3. SIGKILL while a node is paused and another killed, then `shakedown heal`.
    let mut child = test_cmd(
        &t,
        &store,
        &[
            "--nemesis",
            "pause",
            "--time-limit",
            "60",
            "--interval",
            "4",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_for("a pause", Duration::from_secs(30), || {
        std::fs::canonicalize(store.join("latest"))
            .map(|r| in_force(&r, "pause"))
            .unwrap_or(false)
    });
    child.kill().unwrap();
    let _ = child.wait();
    let run = std::fs::canonicalize(store.join("latest")).unwrap();
    history_lines(&run);
    let stopped: usize = nodes
        .iter_mut()
        .map(|n| {
            n.run(
                "grep -l '^State:.*stopped' /proc/[0-9]*/status 2>/dev/null | wc -l",
                T,
            )
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap()
        })
        .sum();
    assert!(stopped > 0, "the killed run left no paused process to heal");
    // A killed daemon too, as a kill fault leaves it.
    nemesis_kill(&mut nodes[0]);
    let out = heal_cmd(&t, &store).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_healed(&mut nodes);
    assert!(
        harness::daemon::Daemon::new("noop")
            .running(&mut nodes[0])
            .unwrap(),
        "heal restarted the killed daemon"
    );
    // And again: nothing to heal is fine.
    assert_eq!(
        heal_cmd(&t, &store).output().unwrap().status.code(),
        Some(0)
    );
    for n in nodes.iter_mut() {
        let _ = harness::daemon::Daemon::new("noop").wipe(n);
    }

    // 4. Clock faults on local hosts move a faked clock (libfaketime), which
    // a Go binary does not read: etcd is refused before anything starts.
    let out = verb("test", &t, &store)
        .args([
            "--system",
            "etcd",
            "--nemesis",
            "clock",
            "--time-limit",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("clock faults on etcd need real machines"),
        "{err}"
    );
}

fn nemesis_kill(n: &mut SshNode) {
    let d = harness::daemon::Daemon::new("noop");
    if !d.running(n).unwrap() {
        d.start(n, "sleep 1000000", &d.dir()).unwrap();
    }
    harness::nemesis::kill_daemon(n, &d).unwrap();
    assert!(!d.running(n).unwrap());
}

#[test]
fn bad_flags_are_usage_errors_that_name_the_flag() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
            .arg("test")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--opt", "nope=1"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--opt nope"), "{err}");
    let (code, err) = run(&["--nemesis", "partition,flood"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("\"flood\" is not a fault"), "{err}");
    let (code, err) = run(&["--system", "mysql"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--system \"mysql\""), "{err}");
    let (code, err) = run(&["--opt", "read-mode=sometimes"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("read-mode=sometimes"), "{err}");
    let (code, err) = run(&["--time-limit", "-1"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--time-limit"), "{err}");
    let (code, _) = run(&["--nodes-file", "/nonexistent/nodes"]);
    assert_eq!(code, Some(3));
}
