//! `shakedown heal` on a real local cluster: partition rules flushed, paused
//! processes resumed, safe to run twice. Own names and subnet; torn down
//! even on failure.

use harness::control::{Remote, SshNode, SshOptions};
use harness::local::LocalCluster;
use harness::nemesis::{self, Partition, PAUSED};
use harness::nodes;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

struct Down(LocalCluster);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = self.0.down() {
            eprintln!("cleanup failed: {e}");
        }
    }
}

const T: Duration = Duration::from_secs(10);

#[test]
fn heal_undoes_partitions_and_pauses() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the local cluster needs root");
        return;
    }
    let c = LocalCluster {
        nodes: 3,
        prefix: "sdh".into(),
        subnet: [10, 81, 0],
        state_dir: PathBuf::from("/var/lib/shakedown-test/heal"),
        overlay_dir: PathBuf::from("/mnt/shakedown-test/heal"),
    };
    let _down = Down(c.clone());
    let up = c.up().expect("cluster up");
    let opts = SshOptions {
        key: up.key.clone(),
        known_hosts: up.known_hosts.clone(),
        accept_new_host_keys: false,
        connect_timeout: T,
    };
    let addrs = nodes::read(&up.nodes_file).unwrap();
    let mut hosts: Vec<SshNode> = addrs
        .iter()
        .map(|a| SshNode::connect(a, &opts).unwrap())
        .collect();
    let names: Vec<String> = addrs.iter().map(|a| a.name.clone()).collect();
    let ip_of = |n: &str| {
        addrs
            .iter()
            .find(|a| a.name == n)
            .and_then(|a| a.host.parse().ok())
    };
    nemesis::partition(
        &mut hosts,
        &ip_of,
        &Partition::IsolateOne.grudge(&names, 7),
        c.control_ip(),
    )
    .unwrap();
    // A paused daemon, recorded where a pause fault records it.
    let pid = hosts[1]
        .start_daemon("sleep 300", "/tmp/s.pid", "/tmp/s.log")
        .unwrap();
    hosts[1]
        .run(&format!("kill -s STOP {pid} && echo {pid} >> {PAUSED}"), T)
        .unwrap();
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
