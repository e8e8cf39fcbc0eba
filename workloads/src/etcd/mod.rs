//! etcd (`--system etcd`): the control host's etcd binary (Debian's
//! etcd-server) uploaded to every node and started as one cluster; clients
//! on its v3 JSON gateway (see [`client`]); transactions of list appends
//! and register writes in [`txn`].

pub mod client;
pub mod def;

pub mod txn;

use harness::control::{ControlError, Remote};
use harness::daemon::Daemon;
use harness::needs::{need, Need};
use harness::system::{NodeInfo, System};
use std::time::Duration;

/// Where the control host's binary is looked for.
pub const BINARY: &str = "/usr/bin/etcd";
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

pub struct Etcd {
    /// The binary uploaded to nodes.
    pub binary: std::path::PathBuf,
}

impl Default for Etcd {
    fn default() -> Self {
        Etcd {
            binary: BINARY.into(),
        }
    }
}

impl Etcd {
    /// The command line of member `i`.
    pub fn command(&self, i: usize, nodes: &[NodeInfo]) -> String {
        let d = self.daemon().dir();
        let me = &nodes[i];
        let cluster: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}=http://{}:{PEER_PORT}", n.name, n.ip))
            .collect();
        format!(
            "{d}/etcd --name {name} --data-dir {d}/data \
             --listen-peer-urls http://{ip}:{PEER_PORT} --initial-advertise-peer-urls http://{ip}:{PEER_PORT} \
             --listen-client-urls http://{ip}:{CLIENT_PORT},http://127.0.0.1:{CLIENT_PORT} \
             --advertise-client-urls http://{ip}:{CLIENT_PORT} \
             --initial-cluster {cluster} --initial-cluster-state new --initial-cluster-token shakedown",
            name = me.name,
            ip = me.ip,
            cluster = cluster.join(","),
        )
    }
}

/// `bash` asks the node's own member for /health over /dev/tcp (no curl
/// needed on the node).
fn health_probe() -> String {
    harness::control::tcp_probe(
        "127.0.0.1",
        CLIENT_PORT,
        "GET /health HTTP/1.0\\r\\n\\r\\n",
        3,
        "grep -q '\"health\":\"true\"'",
    )
}

impl System for Etcd {
    fn name(&self) -> &str {
        "etcd"
    }

    fn version(&self) -> Option<String> {
        let out = std::process::Command::new(&self.binary)
            .arg("--version")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("etcd Version: "))
            .map(|v| v.trim().to_string())
    }

    fn daemon(&self) -> Daemon {
        Daemon::new("etcd")
    }

    fn control_needs(&self) -> Vec<Need> {
        vec![need(BINARY, "etcd-server", "uploaded to every node")]
    }

    /// etcd is a Go binary: it reads the clock from the vDSO, past libc.
    fn clock_via_libc(&self) -> bool {
        false
    }

    fn ports(&self) -> Vec<u16> {
        vec![CLIENT_PORT, PEER_PORT]
    }

    fn setup(
        &self,
        node: &mut dyn Remote,
        i: usize,
        nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let d = self.daemon();
        d.install(node, &self.binary, "etcd", "install Debian's etcd-server")?;
        d.start(node, &self.command(i, nodes), &d.dir())?;
        Ok(())
    }

    fn await_ready(
        &self,
        node: &mut dyn Remote,
        _i: usize,
        _nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        self.daemon()
            .wait_until(node, &health_probe(), Duration::from_secs(30))
    }
}
