//! "Valid" means the faults happened, on real local hosts: a node whose
//! iptables does not work is refused before anything starts; a partition
//! that stops working mid-run makes the run INCOMPLETE (exit 4, named in
//! results.json, the report and junit.xml); a node a heal cannot reach
//! fails `shakedown heal` by name. No sleeps-then-asserts: every wait polls
//! with a deadline. Own names and subnet; torn down even on failure.

mod common;

use common::run_test;
use harness::control::{Remote, SshNode};
use harness::testing::TestCluster;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// Makes iptables unusable on one host only: /bin/false bind-mounted over
/// it in that host's own mount namespace.
fn break_iptables(h: &mut SshNode) {
    h.run(
        "mount --bind /bin/false $(readlink -f $(command -v iptables))",
        T,
    )
    .unwrap();
    assert_ne!(h.exec("iptables -w -S INPUT", T).unwrap().code, 0);
}

fn mend_iptables(h: &mut SshNode) {
    h.run("umount $(readlink -f $(command -v iptables))", T)
        .unwrap();
    assert_eq!(h.exec("iptables -w -S INPUT", T).unwrap().code, 0);
}

/// The nemesis' events of the latest run so far.
fn nemesis_events(store: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(store.join("latest/history.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""process":"nemesis""#))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Kills the run if the test fails before it ends.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn faults_that_did_not_happen_are_never_valid() {
    if !TestCluster::possible() {
        eprintln!("skipped: the local cluster needs root");
        return;
    }
    let t = TestCluster::up("sdv", 97, 3).expect("cluster up");
    let store = tempfile::tempdir().unwrap();
    let mut hosts = t.connect_all().expect("connect");

    // 1. Preflight: iptables broken on one host -> exit 4 naming it and the
    // fix, and nothing started anywhere.
    break_iptables(&mut hosts[1]);
    let (code, text, _) = run_test(
        &t,
        store.path(),
        &[
            "--system",
            "noop",
            "--nemesis",
            "partition",
            "--time-limit",
            "5",
        ],
    );
    assert_eq!(code, Some(4), "{text}");
    assert!(
        text.contains("preflight failed; nothing was started"),
        "{text}"
    );
    assert!(
        text.contains("sdvn2  FAIL  iptables does not work") && text.contains("apt-get install"),
        "{text}"
    );
    assert!(
        !text.contains("sdvn1  FAIL") && !text.contains("sdvn3  FAIL"),
        "{text}"
    );
    for h in hosts.iter_mut() {
        assert_ne!(
            h.exec("test -e /opt/shakedown/noop", T).unwrap().code,
            0,
            "{}: something was set up",
            h.name()
        );
    }
    // The same run without network faults does not need iptables... but a
    // heal must still be able to check for leftover rules: refused too.
    mend_iptables(&mut hosts[1]);

    // 2. Mid-run: the first partition takes effect (verified); then
    // iptables breaks on one host; the next partition fails there. The run
    // is INCOMPLETE: exit 4, named everywhere.
    let child = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .arg("test")
        .args(["--store", &store.path().display().to_string()])
        .args(["--nodes-file", &t.up.nodes_file.display().to_string()])
        .args(["--ssh-key", &t.up.key.display().to_string()])
        .args(["--known-hosts", &t.up.known_hosts.display().to_string()])
        .args([
            "--system",
            "noop",
            "--nemesis",
            "partition",
            "--partition",
            "halves",
        ])
        .args([
            "--time-limit",
            "60",
            "--interval",
            "1",
            "--recovery",
            "0",
            "--seed",
            "5",
        ])
        .args(["--rate", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let completions = |store: &std::path::Path, f: &str| -> Vec<Value> {
        nemesis_events(store)
            .into_iter()
            .filter(|e| e["type"] == "info" && e["f"] == f)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while completions(store.path(), "start-partition").is_empty() {
        assert!(Instant::now() < deadline, "no partition within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = &completions(store.path(), "start-partition")[0];
    assert!(first["error"].is_null(), "{first}");
    assert!(
        first["value"]["verified"]["sdvn1"]
            .as_str()
            .is_some_and(|v| v.contains("rules read back; probes dropped")),
        "{first}"
    );
    // Break it once the heal after the first partition has completed, so
    // the next partition is the one that fails.
    while completions(store.path(), "stop-partition").is_empty() {
        assert!(Instant::now() < deadline, "no heal within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    break_iptables(&mut hosts[1]);
    while !completions(store.path(), "start-partition")
        .iter()
        .any(|e| !e["error"].is_null())
    {
        assert!(Instant::now() < deadline, "no failed partition within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Mended before the run's own heals, so only the fault failed.
    mend_iptables(&mut hosts[1]);
    // SIGINT ends the run early (healed, checked): the verdict rule is the same.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) };
    let mut out = std::process::Output {
        status: child.0.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out.stdout)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut out.stderr)
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("faults: INCOMPLETE"), "{text}");
    assert!(!text.contains("final heal could not"), "{text}");
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(store.path().join("latest/results.json")).unwrap(),
    )
    .unwrap();
    let faults = &results["faults"];
    assert!(faults["applied"].as_u64().unwrap() >= 1, "{faults}");
    assert!(
        faults["scheduled"].as_u64() > faults["applied"].as_u64(),
        "{faults}"
    );
    let failed = faults["failed"].as_array().unwrap();
    assert!(
        failed
            .iter()
            .any(|f| f["fault"] == "start-partition" && f["node"] == "sdvn2"),
        "{faults}"
    );
    assert_eq!(
        results["valid"],
        Value::Bool(true),
        "the checkers found nothing"
    );
    let report = std::fs::read_to_string(store.path().join("latest/report.html")).unwrap();
    assert!(report.contains("INCOMPLETE</span>"), "headline");
    assert!(
        report.contains("partitions took effect: sdvn2"),
        "headline names the node"
    );
    let junit = std::fs::read_to_string(store.path().join("latest/junit.xml")).unwrap();
    assert!(
        junit.contains(r#"testcase name="faults""#) && junit.contains("<failure"),
        "{junit}"
    );
    let index = std::fs::read_to_string(store.path().join("index.html")).unwrap();
    assert!(index.contains(r#"<tr class="incomplete">"#), "{index}");
    // Interrupted (130) is the signal's code; re-checking the stored run
    // gives the verdict rule's: 4.
    assert_eq!(out.status.code(), Some(130), "{text}");
    let again = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .arg("report")
        .arg(store.path().join("latest"))
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // 3. A host whose sshd is gone: heal fails by name, exit 4.
    // (A namespace's init ignores SIGKILL from inside: kill it from here.)
    let pids = Command::new("ip")
        .args(["netns", "pids", "sdvn3"])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
    }
    let deadline = Instant::now() + T;
    while SshNode::connect(&t.addrs()[2], &t.ssh_options()).is_ok() {
        assert!(Instant::now() < deadline, "sshd of sdvn3 still answers");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .arg("heal")
        .args(["--store", &store.path().display().to_string()])
        .args(["--nodes-file", &t.up.nodes_file.display().to_string()])
        .args(["--ssh-key", &t.up.key.display().to_string()])
        .args(["--known-hosts", &t.up.known_hosts.display().to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("1 of 3 nodes could not be reached or healed (sdvn3)"),
        "{err}"
    );
}

/// Clock faults on local test hosts move a faked clock (libfaketime) in
/// the system's daemons, verified by a probe; a Go system (etcd) is refused
/// with the reason, before anything starts.
#[test]
fn clock_faults_on_local_hosts_are_faked_and_verified() {
    if !TestCluster::possible() {
        eprintln!("skipped: the local cluster needs root");
        return;
    }
    let t = TestCluster::up("sdw", 98, 3).expect("cluster up");
    let store = tempfile::tempdir().unwrap();
    let (code, text, _) = run_test(
        &t,
        store.path(),
        &[
            "--system",
            "etcd",
            "--nemesis",
            "clock",
            "--time-limit",
            "5",
        ],
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("etcd reads the time without libc"), "{text}");

    let (code, text, results) = run_test(
        &t,
        store.path(),
        &[
            "--system",
            "noop",
            "--nemesis",
            "clock",
            "--time-limit",
            "8",
            "--interval",
            "1",
            "--rate",
            "100",
            "--seed",
            "3",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let faults = &results["faults"];
    assert!(faults["scheduled"].as_u64().unwrap() >= 2, "{faults}");
    assert_eq!(faults["scheduled"], faults["applied"], "{faults}");
    let events = nemesis_events(store.path());
    let shifts: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "info" && e["f"] == "clock-shift")
        .collect();
    assert!(!shifts.is_empty());
    for e in &shifts {
        for (node, said) in e["value"]["verified"].as_object().unwrap() {
            assert!(
                said.as_str()
                    .unwrap()
                    .contains("(libfaketime; a probe sees"),
                "{node}: {said}"
            );
        }
    }
    // After the final heal every faked clock is back at +0.
    let mut hosts = t.connect_all().unwrap();
    for h in hosts.iter_mut() {
        assert_eq!(
            h.run("cat /run/shakedown-faketime", T).unwrap().trim(),
            "+0"
        );
        assert_ne!(h.exec("test -e /run/shakedown-strobe", T).unwrap().code, 0);
    }
}

/// A power cut (lost-writes): the data directory on shakedown-lostfs, the
/// daemon killed and its unsynced writes dropped, verified; the heal
/// restarts it on what survived and it serves again; nothing is left
/// mounted after the run.
#[test]
fn lost_writes_cut_power_and_the_heal_restarts_on_what_survived() {
    if !TestCluster::possible() || !std::path::Path::new("/usr/bin/redis-server").exists() {
        eprintln!("skipped: needs root and redis-server");
        return;
    }
    let t = TestCluster::up("sdx", 99, 3).expect("cluster up");
    let store = tempfile::tempdir().unwrap();
    let (code, text, results) = run_test(
        &t,
        store.path(),
        &[
            "--system",
            "redis",
            "--workload",
            "register",
            "--opt",
            "failover=none",
            "--nemesis",
            "lost-writes",
            "--time-limit",
            "12",
            "--interval",
            "2",
            "--seed",
            "6",
            "--rate",
            "200",
        ],
    );
    assert!(matches!(code, Some(0) | Some(1)), "{text}");
    let faults = &results["faults"];
    assert!(faults["applied"].as_u64().unwrap() >= 1, "{faults}");
    assert_eq!(faults["scheduled"], faults["applied"], "{faults}");
    let events = nemesis_events(store.path());
    let cut = events
        .iter()
        .find(|e| e["type"] == "info" && e["f"] == "lose-writes")
        .unwrap();
    for (node, said) in cut["value"]["verified"].as_object().unwrap() {
        assert!(
            said.as_str()
                .unwrap()
                .contains("killed, unsynced writes dropped"),
            "{node}: {said}"
        );
    }
    let recovered = events
        .iter()
        .find(|e| e["type"] == "info" && e["f"] == "recover")
        .unwrap();
    assert!(
        recovered["value"]["verified"]
            .as_object()
            .unwrap()
            .values()
            .any(|v| v.as_str().unwrap().contains("redis restarted and serving")),
        "{recovered}"
    );
    let mut hosts = t.connect_all().unwrap();
    for h in hosts.iter_mut() {
        assert_ne!(
            h.exec("grep -q lostfs /proc/self/mountinfo", T)
                .unwrap()
                .code,
            0,
            "{}: still mounted",
            h.name()
        );
    }
}
