//! `shakedown heal` on a real local cluster: partition rules flushed, paused
//! processes resumed, safe to run twice. Own names and subnet; torn down
//! even on failure.

use harness::control::{Remote, SshNode};
use harness::nemesis::{self, Partition, PAUSED};
use harness::testing::TestCluster;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn heal_undoes_partitions_and_pauses() {
    if !TestCluster::possible() {
        harness::testing::skip("the local cluster needs root");
        return;
    }
    let t = TestCluster::up("sdh", 81, 3).expect("cluster up");
    let (up, addrs) = (&t.up, t.addrs());
    let mut hosts = t.connect_all().expect("connect");
    let names: Vec<String> = addrs.iter().map(|a| a.name.clone()).collect();
    let ip_of = |n: &str| t.ip(n);
    harness::control::all_ok(nemesis::partition(
        &mut hosts,
        &ip_of,
        &Partition::IsolateOne.grudge(&names, 7),
        t.cluster.control_ip(),
    ))
    .unwrap();
    // A paused daemon, recorded where a pause fault records it.
    let pid = hosts[1]
        .start_daemon("sleep 300", "/tmp/s.pid", "/tmp/s.log")
        .unwrap();
    assert_eq!(nemesis::pause(&mut hosts[1], "/tmp/s.pid").unwrap(), pid);
    let state = |h: &mut SshNode| {
        h.run(&format!("cut -d' ' -f3 /proc/{pid}/stat"), T)
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(state(&mut hosts[1]), "T");

    let heal = || {
        Command::new(env!("CARGO_BIN_EXE_shakedown"))
            .arg("heal")
            .args(["--nodes-file", &up.nodes_file.display().to_string()])
            .args(["--ssh-key", &up.key.display().to_string()])
            .args(["--known-hosts", &up.known_hosts.display().to_string()])
            .output()
            .unwrap()
    };
    let out = heal();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("healed 3 of 3 nodes"));
    for h in hosts.iter_mut() {
        assert_eq!(
            h.run("iptables -S SHAKEDOWN", T).unwrap().trim(),
            "-N SHAKEDOWN",
            "{}",
            h.name()
        );
    }
    assert_ne!(state(&mut hosts[1]), "T", "still paused");
    assert_ne!(
        hosts[1].exec(&format!("test -e {PAUSED}"), T).unwrap().code,
        0
    );
    // Nothing left to heal: still fine.
    assert_eq!(heal().status.code(), Some(0));
}
