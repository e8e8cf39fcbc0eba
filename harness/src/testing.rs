//! Real local clusters for tests and benchmarks.
//!
//! A [`TestCluster`] has its own names, subnet and directories, so it never
//! touches a user's cluster or another test's, and it is torn down when
//! dropped, also when a test fails.

use crate::control::{ControlError, SshNode, SshOptions};
use crate::local::{ClusterError, LocalCluster, Up};
use crate::nodes::{self, NodeAddr};
use std::path::PathBuf;
use std::time::Duration;

pub struct TestCluster {
    pub cluster: LocalCluster,
    pub up: Up,
}

impl TestCluster {
    /// Brings up `nodes` hosts named `<tag>n1`... on 10.`octet`.0.0/24, with
    /// state under /var/lib/shakedown-test/<tag>. Each test uses its own tag and octet.
    pub fn up(tag: &str, octet: u8, nodes: usize) -> Result<TestCluster, ClusterError> {
        let cluster = LocalCluster {
            nodes,
            prefix: tag.into(),
            subnet: [10, octet, 0],
            state_dir: PathBuf::from(format!("/var/lib/shakedown-test/{tag}")),
            overlay_dir: PathBuf::from(format!("/mnt/shakedown-test/{tag}")),
        };
        let up = match cluster.up() {
            Ok(u) => u,
            Err(e) => {
                let _ = cluster.down();
                return Err(e);
            }
        };
        Ok(TestCluster { cluster, up })
    }

    /// Whether this process may create hosts at all (they need root).
    pub fn possible() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    pub fn ssh_options(&self) -> SshOptions {
        SshOptions {
            key: self.up.key.clone(),
            known_hosts: self.up.known_hosts.clone(),
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(10),
        }
    }

    pub fn addrs(&self) -> Vec<NodeAddr> {
        // Written by `up` just now; unreadable only if the machine is broken.
        nodes::read(&self.up.nodes_file).unwrap_or_default()
    }

    /// One session per host, in order.
    pub fn connect_all(&self) -> Result<Vec<SshNode>, ControlError> {
        let opts = self.ssh_options();
        self.addrs()
            .iter()
            .map(|a| SshNode::connect(a, &opts))
            .collect()
    }

    /// Looks a host's address up by name.
    pub fn ip(&self, name: &str) -> Option<std::net::Ipv4Addr> {
        self.up
            .hosts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ip)| *ip)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Err(e) = self.cluster.down() {
            say_err!("test cluster cleanup failed: {e}");
        }
    }
}

/// The environment variable that makes a missing prerequisite fail a test
/// instead of skipping it. `scripts/test` (the README's test command, which
/// installs every prerequisite and runs as root) sets it, and so does any
/// CI (`CI` set to anything but `false`).
pub const STRICT: &str = "SHAKEDOWN_STRICT_TESTS";

/// Whether a test's missing prerequisite is a failure here.
pub fn strict() -> bool {
    let set = |v: &str| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false");
    set(STRICT) || set("CI")
}

/// Called by a test whose prerequisite (`why`: root, a Debian package) is
/// missing, just before it returns: under [`strict`] it fails, naming what
/// is missing, so the README's test command never passes a test that did
/// not run; elsewhere (a developer's `cargo test` without root) it says
/// "skipped" on stderr.
pub fn skip(why: &str) {
    if strict() {
        panic!("cannot run: {why} ({STRICT} or CI is set, so a skipped test is a failure)");
    }
    eprintln!("skipped: {why}");
}
