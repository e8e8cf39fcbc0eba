//! Maelstrom nodes on real hosts (`--system maelstrom`): any executable that
//! speaks Maelstrom's protocol (a Gossip Glomers solution), unchanged.
//!
//! Each node runs under the shim `shakedown-agent maelstrom` (its own
//! binary, uploaded beside the node), which is the daemon: kill and pause
//! hit shim and node together, and a heal restarts both and sends `init`
//! again. Node-to-node messages cross the real network between the shims;
//! clients talk to the shim of their node ([`client`]); the services live on
//! the control host ([`services`]).

pub mod client;
pub mod def;
pub mod services;

use crate::gen::{RegisterGen, Unique};
use crate::opts::UsageError;
use checkers::model::ModelKind;
use checkers::txn::{Models, TxnKind};
use checkers::Checker;
use harness::control::{shell_quote, ControlError, Remote};
use harness::daemon::Daemon;
use harness::runner::{Generator, Op};
use harness::system::{NodeInfo, System};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Maelstrom's workloads that shakedown runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Echo,
    UniqueIds,
    Broadcast,
    GSet,
    GCounter,
    PnCounter,
    LinKv,
    Kafka,
    TxnListAppend,
    TxnRwRegister,
}

impl Kind {
    pub const ALL: [(&'static str, Kind); 10] = [
        ("echo", Kind::Echo),
        ("unique-ids", Kind::UniqueIds),
        ("broadcast", Kind::Broadcast),
        ("g-set", Kind::GSet),
        ("g-counter", Kind::GCounter),
        ("pn-counter", Kind::PnCounter),
        ("lin-kv", Kind::LinKv),
        ("kafka", Kind::Kafka),
        ("txn-list-append", Kind::TxnListAppend),
        ("txn-rw-register", Kind::TxnRwRegister),
    ];

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    /// The checker of the workload.
    pub fn checker(self) -> Checker {
        match self {
            Kind::Echo => Checker::Echo,
            Kind::UniqueIds => Checker::UniqueIds,
            Kind::Broadcast | Kind::GSet => Checker::EventualSet,
            Kind::GCounter | Kind::PnCounter => Checker::EventualCounter,
            Kind::LinKv => Checker::Linear(ModelKind::Kv),
            Kind::Kafka => Checker::Kafka,
            Kind::TxnListAppend => Checker::Txn(TxnKind::ListAppend, Models::STRICT_SERIALIZABLE),
            Kind::TxnRwRegister => Checker::Txn(TxnKind::RwRegister, Models::STRICT_SERIALIZABLE),
        }
    }

    /// Whether every worker reads once after the final heal and recovery.
    pub fn final_reads(self) -> bool {
        matches!(
            self,
            Kind::Broadcast | Kind::GSet | Kind::GCounter | Kind::PnCounter | Kind::Kafka
        )
    }
}

/// `--opt binary=`, `run=`, `port=`, checked.
#[derive(Clone, Debug)]
pub struct Opts {
    pub binary: PathBuf,
    /// The entry point inside a directory.
    pub run: String,
    pub port: u16,
}

impl Opts {
    /// Checks the options: a usage error names the option.
    pub fn new(binary: &str, run: &str, port: &str) -> Result<Opts, UsageError> {
        let bad = |key: &str, value: &str, need: String| UsageError::BadValue {
            key: key.into(),
            value: value.into(),
            need,
        };
        if binary.is_empty() {
            return Err(UsageError::Missing {
                system: "maelstrom".into(),
                key: "binary",
                what: "your node: an executable, or a directory with an executable `run`",
            });
        }
        let b = Path::new(binary);
        let entry = if b.is_dir() {
            if run.contains("..") || run.starts_with('/') {
                return Err(bad("run", run, format!("a path inside {binary} is needed")));
            }
            b.join(run)
        } else if b.is_file() {
            b.to_path_buf()
        } else {
            return Err(bad("binary", binary, "no such file or directory".into()));
        };
        let mode = std::fs::metadata(&entry).map(|m| m.permissions().mode());
        match mode {
            Ok(m) if m & 0o111 != 0 && entry.is_file() => {}
            Ok(_) => {
                return Err(UsageError::Invalid(format!(
                    "{}: not an executable file (chmod +x it, or name another with --opt run=NAME)",
                    entry.display()
                )))
            }
            Err(_) => {
                return Err(bad(
                    "binary",
                    binary,
                    format!(
                        "{} does not exist (name the entry point with --opt run=NAME)",
                        entry.display()
                    ),
                ))
            }
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("port", port, "a TCP port is needed".into()))?;
        Ok(Opts {
            binary: b.to_path_buf(),
            run: run.into(),
            port,
        })
    }
}

/// The Maelstrom id of node `i`: n1, n2, ... whatever the hosts are called,
/// as nodes expect.
pub fn node_id(i: usize) -> String {
    format!("n{}", i + 1)
}

/// The shim binary beside the running shakedown (or in `SHAKEDOWN_BIN_DIR`).
pub fn agent_path() -> PathBuf {
    harness::companions::companion("shakedown-agent")
}

pub struct Maelstrom {
    pub opts: Opts,
    pub kind: Kind,
    pub agent: PathBuf,
    services: Mutex<Option<SocketAddr>>,
}

impl Maelstrom {
    pub fn new(opts: Opts, kind: Kind) -> Maelstrom {
        Maelstrom {
            opts,
            kind,
            agent: agent_path(),
            services: Mutex::new(None),
        }
    }

    /// Files to upload: (path here, path under bin/, mode).
    fn files(&self) -> std::io::Result<Vec<(PathBuf, String, u32)>> {
        let b = &self.opts.binary;
        if !b.is_dir() {
            let name = b
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "node".into());
            let mode = std::fs::metadata(b)?.permissions().mode();
            return Ok(vec![(b.clone(), name, mode)]);
        }
        let mut out = Vec::new();
        let mut todo = vec![b.clone()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d)? {
                let p = e?.path();
                let meta = std::fs::metadata(&p)?;
                if meta.is_dir() {
                    todo.push(p);
                } else if meta.is_file() {
                    let rel = p
                        .strip_prefix(b)
                        .map(|r| r.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    out.push((p, rel, meta.permissions().mode()));
                }
            }
        }
        Ok(out)
    }

    /// The entry point on the node.
    fn entry(&self) -> String {
        let d = self.daemon().dir();
        if self.opts.binary.is_dir() {
            format!("{d}/bin/{}", self.opts.run)
        } else {
            format!(
                "{d}/bin/{}",
                self.opts
                    .binary
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "node".into())
            )
        }
    }

    /// The services' address, started on first use on the address the
    /// nodes reach the control host by.
    fn services(&self, node: &mut dyn Remote) -> Result<SocketAddr, ControlError> {
        let mut s = self.services.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = *s {
            return Ok(a);
        }
        let out = node.run("echo ${SSH_CONNECTION%% *}", Duration::from_secs(10))?;
        let fail = |what: String| ControlError {
            node: node.name().into(),
            what,
            command: None,
            code: None,
            stderr: String::new(),
        };
        let ip = out.trim().parse().map_err(|_| {
            fail(format!(
                "cannot tell the control host's address from SSH_CONNECTION ({:?})",
                out.trim()
            ))
        })?;
        let started = services::Services::start(ip)
            .map_err(|e| fail(format!("cannot start the Maelstrom services on {ip}: {e}")))?;
        *s = Some(started.addr);
        Ok(started.addr)
    }

    /// The shim's command on node `i`.
    pub fn command(&self, i: usize, nodes: &[NodeInfo], services: SocketAddr) -> String {
        let d = self.daemon().dir();
        let port = self.opts.port;
        let peers: Vec<String> = nodes
            .iter()
            .enumerate()
            .map(|(j, n)| format!("{}={}:{port}", node_id(j), n.ip))
            .collect();
        format!(
            "{d}/agent maelstrom --id {id} --listen {ip}:{port} --nodes {peers} --services {services} --topology {topo} -- {entry}",
            id = node_id(i),
            ip = nodes[i].ip,
            peers = shell_quote(&peers.join(",")),
            topo = if self.kind == Kind::Broadcast { "total" } else { "none" },
            entry = shell_quote(&self.entry()),
        )
    }
}

/// A file of the node that cannot be read here.
fn unreadable(path: &Path, e: std::io::Error) -> ControlError {
    ControlError {
        node: "control".into(),
        what: format!("cannot read {}", path.display()),
        command: None,
        code: None,
        stderr: e.to_string(),
    }
}

impl System for Maelstrom {
    fn name(&self) -> &str {
        "maelstrom"
    }

    fn version(&self) -> Option<String> {
        Some(format!(
            "{} (entry {})",
            self.opts.binary.display(),
            self.entry()
        ))
    }

    fn daemon(&self) -> Daemon {
        Daemon::new("maelstrom")
    }

    fn companions(&self) -> Vec<harness::companions::ControlFile> {
        vec![harness::companions::ControlFile::companion_at(
            &self.agent,
            "the Maelstrom shim, uploaded to every node",
        )]
    }

    fn setup(
        &self,
        node: &mut dyn Remote,
        i: usize,
        nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let services = self.services(node)?;
        let d = self.daemon();
        d.install(
            node,
            &self.agent,
            "agent",
            "shakedown-agent is built beside shakedown: cargo build --bin shakedown-agent",
        )?;
        let files = self.files().map_err(|e| unreadable(&self.opts.binary, e))?;
        let bin = format!("{}/bin", d.dir());
        let mut dirs: Vec<String> = files
            .iter()
            .filter_map(|(_, rel, _)| {
                Path::new(rel)
                    .parent()
                    .map(|p| format!("{bin}/{}", p.display()))
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        let quoted: Vec<String> = dirs.iter().map(|d| shell_quote(d)).collect();
        node.run(
            &format!("mkdir -p {}", quoted.join(" ")),
            Duration::from_secs(10),
        )?;
        for (local, rel, mode) in &files {
            let data = std::fs::read(local).map_err(|e| unreadable(local, e))?;
            node.upload(&data, &format!("{bin}/{rel}"), (*mode & 0o777) as i32)?;
        }
        d.start(node, &self.command(i, nodes, services), &bin)?;
        Ok(())
    }

    fn await_ready(
        &self,
        node: &mut dyn Remote,
        i: usize,
        nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let probe = harness::control::tcp_probe(
            &nodes[i].ip.to_string(),
            self.opts.port,
            "status\\n",
            3,
            "grep -q ready",
        );
        self.daemon()
            .wait_until(node, &probe, Duration::from_secs(30))
    }
}

/// The logs of the kafka workload.
pub const KAFKA_KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];

/// The operations of one worker.
pub struct MaelstromGen {
    kind: Kind,
    slot: usize,
    n: u64,
    values: Unique,
    register: RegisterGen,
    txn: TxnGen,
    /// Final phase: reads left.
    finals: Option<u32>,
}

impl MaelstromGen {
    pub fn new(kind: Kind, slot: usize, concurrency: usize) -> MaelstromGen {
        MaelstromGen {
            kind,
            slot,
            n: 0,
            values: Unique::new(slot, concurrency),
            register: RegisterGen::new(slot, concurrency, 5, 100),
            txn: TxnGen::new(slot, concurrency),
            finals: None,
        }
    }

    /// One read (kafka: ten polls), for the final phase.
    pub fn final_read(kind: Kind, slot: usize) -> MaelstromGen {
        MaelstromGen {
            finals: Some(if kind == Kind::Kafka { 10 } else { 1 }),
            ..MaelstromGen::new(kind, slot, 1)
        }
    }
}

impl Generator for MaelstromGen {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Op> {
        if let Some(left) = self.finals.as_mut() {
            if *left == 0 {
                return None;
            }
            *left -= 1;
            if self.kind == Kind::Kafka {
                return Some(Op::new("poll", None, json!(KAFKA_KEYS)));
            }
            return Some(Op::new("read", None, Value::Null));
        }
        self.n += 1;
        let read = |every: u64| self.n.is_multiple_of(every);
        Some(match self.kind {
            Kind::Echo => {
                // Now and then a payload of kilobytes: nodes' long lines.
                let pad = if self.n.is_multiple_of(10) {
                    "x".repeat(4096)
                } else {
                    String::new()
                };
                Op::new(
                    "echo",
                    None,
                    json!(format!("{}-{}{pad}", self.slot, self.n)),
                )
            }
            Kind::UniqueIds => Op::new("generate", None, Value::Null),
            Kind::Broadcast | Kind::GSet if read(5) => Op::new("read", None, Value::Null),
            Kind::Broadcast | Kind::GSet => Op::new("add", None, json!(self.values.take())),
            Kind::GCounter | Kind::PnCounter if read(4) => Op::new("read", None, Value::Null),
            Kind::GCounter => Op::new("add", None, json!(rng.gen_range(0..=5))),
            Kind::PnCounter => Op::new("add", None, json!(rng.gen_range(-5..=5))),
            Kind::LinKv => return self.register.next(rng),
            Kind::TxnListAppend => self.txn.next(rng, "append"),
            Kind::TxnRwRegister => self.txn.next(rng, "w"),
            Kind::Kafka => match rng.gen_range(0..20) {
                0..=11 => {
                    let key = KAFKA_KEYS[rng.gen_range(0..KAFKA_KEYS.len())];
                    Op::new("send", None, json!({"key": key, "msg": self.values.take()}))
                }
                12..=17 => Op::new("poll", None, json!(KAFKA_KEYS)),
                18 => Op::new("commit_offsets", None, Value::Null),
                _ => Op::new("list_committed_offsets", None, json!(KAFKA_KEYS)),
            },
        })
    }

    fn observe(&mut self, epoch: u64) {
        // lin-kv reads back its keys after a power cut, as register does.
        self.register.observe(epoch);
    }
}

/// Transactions as Jepsen's and Maelstrom's generators make them: 1-4
/// micro-ops, half reads, on a few active keys; a key is retired for a fresh
/// one after `WRITES_PER_KEY` writes of this worker, so keys' histories stay
/// short. Every worker walks the same sequence of keys; values are unique
/// across workers (slot + 1 + k * concurrency).
pub struct TxnGen {
    active: Vec<u64>,
    next_key: u64,
    writes: std::collections::HashMap<u64, u64>,
    values: Unique,
}

impl TxnGen {
    pub const ACTIVE_KEYS: usize = 5;
    pub const WRITES_PER_KEY: u64 = 16;

    pub fn new(slot: usize, concurrency: usize) -> TxnGen {
        TxnGen {
            active: (0..Self::ACTIVE_KEYS as u64).collect(),
            next_key: Self::ACTIVE_KEYS as u64,
            writes: Default::default(),
            values: Unique::new(slot, concurrency),
        }
    }

    /// One `txn` operation; `write` is `append` or `w`.
    pub fn next(&mut self, rng: &mut ChaCha8Rng, write: &str) -> Op {
        let n = rng.gen_range(1..=4);
        let mut mops = Vec::with_capacity(n);
        for _ in 0..n {
            let slot = rng.gen_range(0..self.active.len());
            let k = self.active[slot];
            if rng.gen_bool(0.5) {
                mops.push(json!(["r", k, null]));
                continue;
            }
            mops.push(json!([write, k, self.values.take()]));
            let w = self.writes.entry(k).or_insert(0);
            *w += 1;
            if *w >= Self::WRITES_PER_KEY {
                self.writes.remove(&k);
                self.active[slot] = self.next_key;
                self.next_key += 1;
            }
        }
        Op::new("txn", None, Value::Array(mops))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn options_name_what_is_wrong() {
        let dir = env!("CARGO_MANIFEST_DIR").to_string() + "/../tests/maelstrom-nodes";
        assert!(Opts::new(&dir, "broadcast", "7070").is_ok());
        let e = Opts::new(&dir, "nothing-here", "7070")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nothing-here") && e.contains("--opt run="),
            "{e}"
        );
        let e = Opts::new(&dir, "node.py", "7070").unwrap_err().to_string();
        assert!(e.contains("not an executable"), "{e}");
        let e = Opts::new("", "run", "7070").unwrap_err().to_string();
        assert!(e.contains("--opt binary=PATH"), "{e}");
        let e = Opts::new(&dir, "echo", "0").unwrap_err().to_string();
        assert!(e.contains("--opt port=0"), "{e}");
        let e = Opts::new(&dir, "../x", "1").unwrap_err().to_string();
        assert!(e.contains("--opt run=../x"), "{e}");
    }

    #[test]
    fn the_shim_command_names_every_peer_and_the_entry_point() {
        let dir = env!("CARGO_MANIFEST_DIR").to_string() + "/../tests/maelstrom-nodes";
        let m = Maelstrom::new(
            Opts::new(&dir, "broadcast", "7070").unwrap(),
            Kind::Broadcast,
        );
        let nodes: Vec<NodeInfo> = (1..=2)
            .map(|i| NodeInfo {
                name: format!("n{i}"),
                ip: format!("10.1.0.{i}").parse().unwrap(),
            })
            .collect();
        let c = m.command(1, &nodes, "10.1.0.254:4000".parse().unwrap());
        assert_eq!(c, "/opt/shakedown/maelstrom/agent maelstrom --id n2 --listen 10.1.0.2:7070 --nodes 'n1=10.1.0.1:7070,n2=10.1.0.2:7070' --services 10.1.0.254:4000 --topology total -- '/opt/shakedown/maelstrom/bin/broadcast'");
        let files = m.files().unwrap();
        assert!(files
            .iter()
            .any(|(_, rel, mode)| rel == "broadcast" && mode & 0o111 != 0));
        assert!(files.iter().any(|(_, rel, _)| rel == "node.py"));
    }

    #[test]
    fn generators_make_each_workloads_operations() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (name, kind) in Kind::ALL {
            let mut g = MaelstromGen::new(kind, 0, 2);
            for _ in 0..20 {
                let op = g.next(&mut rng).unwrap();
                assert!(client::request(kind, &op).is_some(), "{name}: {}", op.f);
                if kind == Kind::GCounter && op.f == "add" {
                    assert!(op.value.as_i64().unwrap() >= 0);
                }
            }
        }
        let mut f = MaelstromGen::final_read(Kind::Broadcast, 3);
        assert_eq!(f.next(&mut rng).unwrap().f, "read");
        assert!(f.next(&mut rng).is_none());
    }

    #[test]
    fn txn_values_are_unique_per_key_and_keys_rotate() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut seen = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for slot in 0..3 {
            let mut g = TxnGen::new(slot, 3);
            for _ in 0..200 {
                let op = g.next(&mut rng, "append");
                let mops = op.value.as_array().unwrap();
                assert!((1..=4).contains(&mops.len()), "{}", op.value);
                for m in mops {
                    keys.insert(m[1].as_u64().unwrap());
                    if m[0] == "append" {
                        assert!(seen.insert((m[1].clone(), m[2].clone())), "{m} twice");
                    }
                }
            }
        }
        assert!(keys.len() > TxnGen::ACTIVE_KEYS, "keys never rotated");
    }
}
