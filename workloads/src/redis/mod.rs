//! Redis (`--system redis`): the control host's redis-server (Debian's
//! package) uploaded to every node; the first node starts as the primary,
//! the others as its replicas. With `--opt failover=sentinel` (the default)
//! a Redis Sentinel (the same binary, `--sentinel`) runs beside each server
//! and promotes a replica when a majority of sentinels lose the primary;
//! clients ask their own node's sentinel where the primary is, as Redis's
//! client libraries do. For Redlock (`--opt recipe=redlock`) every node
//! runs an independent primary instead: no replicas, no sentinels.
//! Clients in [`client`].

pub mod client;
pub mod def;
pub mod resp;

use harness::control::{shell_quote, tcp_probe, ControlError, Remote};
use harness::daemon::Daemon;
use harness::needs::{need, Need};
use harness::system::{NodeInfo, System};
use std::time::Duration;

/// Where the control host's binary is looked for.
pub const BINARY: &str = "/usr/bin/redis-server";
pub const PORT: u16 = 6379;
pub const SENTINEL_PORT: u16 = 26379;
/// The name sentinels know the primary by.
pub const MASTER: &str = "shakedown";

#[derive(Clone, Debug)]
pub struct RedisOpts {
    pub sentinel: bool,
    /// Every node its own primary (Redlock): no replicas, no sentinels.
    pub independent: bool,
    /// The append-only file, fsync every second; without it a restarted
    /// server comes back empty.
    pub aof: bool,
    /// Sentinel's down-after-milliseconds.
    pub down_after_ms: u64,
}

pub struct Redis {
    pub binary: std::path::PathBuf,
    pub opts: RedisOpts,
}

impl Redis {
    pub fn new(opts: RedisOpts) -> Redis {
        Redis {
            binary: BINARY.into(),
            opts,
        }
    }

    fn sentinel(&self) -> Daemon {
        Daemon::new("redis-sentinel")
    }

    /// The server's command line on node `i`: durable as Redis recommends
    /// (append-only file, fsync every second) unless told otherwise, a
    /// replica of node 0 unless it is node 0 or every node is independent.
    pub fn command(&self, i: usize, nodes: &[NodeInfo]) -> String {
        let d = self.daemon().dir();
        let aof = if self.opts.aof {
            "--appendonly yes --appendfsync everysec"
        } else {
            "--appendonly no"
        };
        let mut c = format!(
            "{d}/redis-server --bind {ip} 127.0.0.1 --port {PORT} --protected-mode no \
             --dir {d}/data {aof} --save ''",
            ip = nodes[i].ip
        );
        if i > 0 && !self.opts.independent {
            c.push_str(&format!(" --replicaof {} {PORT}", nodes[0].ip));
        }
        c
    }

    /// Sentinel's configuration on node `i` (it rewrites the file as it
    /// learns, so each node has its own).
    pub fn sentinel_conf(&self, i: usize, nodes: &[NodeInfo]) -> String {
        format!(
            "port {SENTINEL_PORT}\nbind {ip} 127.0.0.1\nprotected-mode no\ndir {dir}\n\
             sentinel monitor {MASTER} {primary} {PORT} {quorum}\n\
             sentinel down-after-milliseconds {MASTER} {down}\n\
             sentinel failover-timeout {MASTER} 10000\n\
             sentinel parallel-syncs {MASTER} 1\n",
            ip = nodes[i].ip,
            dir = self.sentinel().dir(),
            primary = nodes[0].ip,
            quorum = nodes.len() / 2 + 1,
            down = self.opts.down_after_ms,
        )
    }
}

/// A bash probe: sends `command` (inline) to 127.0.0.1:`port` and greps
/// the reply for `pattern`. No redis-cli needed on the node.
fn probe(port: u16, command: &str, pattern: &str) -> String {
    tcp_probe(
        "127.0.0.1",
        port,
        &format!("{command}\\r\\n"),
        1,
        &format!("tr -d '\\r' | grep -q {}", shell_quote(pattern)),
    )
}

impl System for Redis {
    fn name(&self) -> &str {
        "redis"
    }

    fn version(&self) -> Option<String> {
        let out = std::process::Command::new(&self.binary)
            .arg("--version")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .map(String::from)
    }

    fn daemon(&self) -> Daemon {
        Daemon::new("redis")
    }

    fn control_needs(&self) -> Vec<Need> {
        vec![need(BINARY, "redis-server", "uploaded to every node")]
    }

    fn ports(&self) -> Vec<u16> {
        vec![PORT, SENTINEL_PORT]
    }

    fn setup(
        &self,
        node: &mut dyn Remote,
        i: usize,
        nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let d = self.daemon();
        d.install(
            node,
            &self.binary,
            "redis-server",
            "install Debian's redis-server",
        )?;
        d.start(node, &self.command(i, nodes), &d.dir())?;
        if self.opts.sentinel {
            let s = self.sentinel();
            node.run(&format!("mkdir -p {}", s.dir()), Duration::from_secs(10))?;
            let conf = format!("{}/sentinel.conf", s.dir());
            node.upload(self.sentinel_conf(i, nodes).as_bytes(), &conf, 0o644)?;
            s.start(
                node,
                &format!("{}/redis-server {conf} --sentinel", d.dir()),
                &s.dir(),
            )?;
        }
        Ok(())
    }

    fn await_ready(
        &self,
        node: &mut dyn Remote,
        i: usize,
        nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let d = self.daemon();
        let within = Duration::from_secs(30);
        if i == 0 || self.opts.independent {
            d.wait_until(node, &probe(PORT, "PING", "PONG"), within)?;
        } else {
            d.wait_until(
                node,
                &probe(PORT, "INFO replication", "master_link_status:up"),
                within,
            )?;
        }
        if self.opts.sentinel {
            // Every sentinel knows the others (they find each other through
            // the primary), or a failover could not reach its quorum.
            let others = format!("^{}$", nodes.len() - 1);
            let probe = tcp_probe(
                "127.0.0.1",
                SENTINEL_PORT,
                &format!("SENTINEL master {MASTER}\\r\\n"),
                1,
                &format!(
                    "tr -d '\\r' | grep -A2 '^num-other-sentinels$' | grep -q {}",
                    shell_quote(&others)
                ),
            );
            self.sentinel().wait_until(node, &probe, within)?;
        }
        Ok(())
    }

    fn primary_probe(&self) -> Option<String> {
        if self.opts.independent {
            return None;
        }
        // A primary with replicas: an old primary cut off (or just healed,
        // not yet turned into a replica) still says "master", but has none.
        Some(probe(PORT, "INFO replication", "^connected_slaves:[1-9]"))
    }

    fn log_files(&self) -> Vec<String> {
        let mut v = vec![self.daemon().log()];
        if self.opts.sentinel {
            v.push(self.sentinel().log());
        }
        v
    }

    fn teardown(&self, node: &mut dyn Remote, _i: usize) -> Result<(), ControlError> {
        // The sentinel first: it must not act on the server's going away.
        self.sentinel().wipe(node)?;
        self.daemon().wipe(node)
    }
}
