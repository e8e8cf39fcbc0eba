//! A real three-host local cluster: isolation of files, processes and the
//! clock, idempotent `up`, and a `down` that leaves nothing behind. Uses its
//! own names and subnet, so it never touches a user's cluster, and tears
//! down even when an assertion fails.

use harness::local::LocalCluster;
use std::path::PathBuf;
use std::process::Command;

fn test_cluster() -> LocalCluster {
    LocalCluster {
        nodes: 3,
        prefix: "sds".into(),
        subnet: [10, 96, 0],
        state_dir: PathBuf::from("/var/lib/shakedown-test/cluster"),
        overlay_dir: PathBuf::from("/mnt/shakedown-test/cluster"),
    }
}

/// The cluster tests of this file one at a time: the sysctl test must be
/// the only cluster up in this process to see the value come back.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Tears the cluster down when the test ends, passed or failed.
struct Down(LocalCluster);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = self.0.down() {
            eprintln!("cleanup failed: {e}");
        }
    }
}

fn ssh(c: &LocalCluster, i: usize, command: &str) -> (i32, String) {
    let out = Command::new("ssh")
        .args(["-i", &c.key().display().to_string()])
        .args([
            "-o",
            &format!("UserKnownHostsFile={}", c.known_hosts().display()),
        ])
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .arg(format!("root@{}", c.ip(i)))
        .arg(command)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn three_hosts_are_isolated_and_leave_nothing_behind() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        harness::testing::skip("the local cluster needs root");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let c = test_cluster();
    let guard = Down(c.clone());
    let up = c.up().expect("cluster up");
    assert!(!up.reused);
    assert_eq!(up.hosts.len(), 3);

    for i in 1..=3 {
        // Each host answers over SSH with its own name, and its sshd is PID 1.
        let (code, out) = ssh(&c, i, "hostname; cat /proc/1/comm");
        assert_eq!(code, 0, "{out}");
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            [c.name(i).as_str(), "sshd"]
        );
    }
    // A file written on one host is not on another, nor on the control host.
    let (code, out) = ssh(
        &c,
        1,
        "echo n1 > /etc/shakedown-test && cat /etc/shakedown-test",
    );
    assert_eq!((code, out.trim()), (0, "n1"));
    let (code, _) = ssh(&c, 2, "test -e /etc/shakedown-test");
    assert_ne!(code, 0, "n2 sees n1's file");
    assert!(!std::path::Path::new("/etc/shakedown-test").exists());
    // A process on one host is invisible on another.
    let (code, out) = ssh(
        &c,
        1,
        "nohup sleep 300 >/dev/null 2>&1 & sleep 0.2; pgrep -x sleep",
    );
    assert_eq!(code, 0, "{out}");
    let (code, _) = ssh(&c, 2, "pgrep -x sleep");
    assert_ne!(code, 0, "n2 sees n1's process");
    // No host may set the machine's clock.
    let (code, out) = ssh(&c, 3, "date -s '2001-01-01'");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("not permitted"), "{out}");
    // Hosts reach each other, and nothing else: no default route.
    let (_, out) = ssh(&c, 2, "ip route");
    assert!(!out.contains("default"), "{out}");

    // Up again: the healthy cluster is kept.
    assert!(c.up().expect("second up").reused);

    drop(guard);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains("sdsn"),
        "namespaces left"
    );
    assert!(
        !std::path::Path::new("/sys/class/net/sdssdbr0").exists(),
        "bridge left"
    );
    assert!(
        !c.state_dir.exists() && !c.overlay_dir.exists(),
        "directories left"
    );
    let ps = Command::new("pgrep")
        .args(["-f", "shakedown-test"])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

/// Two clusters coming up and going down at once, three times each and
/// unsynchronised (one's `down` overlaps the other's `up`): every `up`
/// succeeds, since a `down` leaves the shared parent directories alone.
/// Then, with both up, one goes down: the bridge sysctl stays 0 for the
/// other, and is back at its old value when both are down.
#[test]
fn two_clusters_up_and_down_at_once_never_race() {
    use harness::testing::TestCluster;
    if !TestCluster::possible() {
        harness::testing::skip("the local cluster needs root");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let nf = std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables");
    let sysctl = || {
        std::fs::read_to_string(nf)
            .ok()
            .map(|v| v.trim().to_string())
    };
    let before = sysctl();
    let pairs = [("sq1", 70u8), ("sq2", 71u8)];
    let cycles: Vec<_> = pairs
        .into_iter()
        .map(|(tag, octet)| {
            std::thread::spawn(move || {
                for round in 0..3 {
                    let t = TestCluster::up(tag, octet, 1)
                        .unwrap_or_else(|e| panic!("{tag} round {round}: up: {e}"));
                    drop(t);
                }
            })
        })
        .collect();
    for t in cycles {
        t.join().expect("an up/down cycle failed");
    }
    let [a, b] = pairs.map(|(tag, octet)| TestCluster::up(tag, octet, 1).expect("cluster up"));
    drop(a);
    if before.is_some() {
        assert_eq!(
            sysctl().as_deref(),
            Some("0"),
            "sq1's down undid sq2's sysctl"
        );
    }
    drop(b);
    assert_eq!(sysctl(), before, "the sysctl is back once both are down");
    for (tag, _) in pairs {
        assert!(
            !std::path::Path::new(&format!("/var/lib/shakedown-test/{tag}")).exists(),
            "{tag}'s state left"
        );
    }
}

// The Vagrantfile cannot boot here; keep it at least valid Ruby.
#[test]
fn vagrantfile_is_valid_ruby() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vagrant/Vagrantfile");
    let out = Command::new("ruby")
        .arg("-c")
        .arg(&file)
        .output()
        .expect("ruby is installed by scripts/test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
