//! Real databases on a lostfs mount: skipped (with a message) when the
//! binary is missing.

mod common;

use common::{wait_for, Mount};
use std::path::Path;
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A daemon killed (SIGKILL, as a power cut would) when dropped.
struct Daemon(Option<std::process::Child>);

impl Daemon {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis(dir: &Path, port: u16) -> Daemon {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""])
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let d = Daemon(Some(child));
    assert!(
        wait_for(20, || cli(port, &["ping"]) == "PONG"),
        "redis did not start on the mount"
    );
    d
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn unsynced_bytes(report: &str) -> u64 {
    report
        .split_whitespace()
        .find_map(|w| w.strip_prefix("unsynced_bytes="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

// appendfsync everysec acknowledges a SET before its fsync: a power cut in
// that second loses acknowledged writes, while SIGKILL alone would not.
#[test]
fn redis_everysec_loses_acknowledged_writes_on_a_power_cut() {
    if Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let m = Mount::new();
    let port = free_port();
    let mut server = redis(&m.mnt, port);
    assert_eq!(cli(port, &["set", "durable", "yes"]), "OK");
    // Wait for the background fsync of the AOF.
    assert!(wait_for(10, || unsynced_bytes(&m.ctl("status")) == 0));
    // The background fsync may land between the writes and the kill: try
    // until a crash catches unsynced bytes.
    let mut lost = None;
    for round in 0..5 {
        for i in 0..50 {
            assert_eq!(cli(port, &["set", &format!("k{round}-{i}"), "v"]), "OK");
        }
        let acked: u64 = cli(port, &["dbsize"]).parse().unwrap();
        server.kill();
        let dropped = unsynced_bytes(&m.ctl("crash"));
        server = redis(&m.mnt, port);
        let after: u64 = cli(port, &["dbsize"]).parse().unwrap();
        assert_eq!(cli(port, &["get", "durable"]), "yes", "a synced write was lost");
        if dropped > 0 {
            lost = Some((acked, after));
            break;
        }
        assert_eq!(after, acked, "nothing was unsynced, nothing may be lost");
    }
    let (acked, after) = lost.expect("five crashes in a row found nothing unsynced");
    assert!(after < acked, "acknowledged {acked} keys, {after} survived");
    eprintln!("redis everysec: {acked} keys acknowledged, {after} survived the power cut");
}
