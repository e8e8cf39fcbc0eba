//! Systems under test and their workloads, each paired with the checkers
//! it needs. The catalog below is what `shakedown test --help` lists and
//! what `--opt` is validated against.

pub mod call;
pub mod etcd;
pub mod gen;
pub mod http;
pub mod maelstrom;
pub mod memory;
pub mod postgres;
pub mod redis;
pub mod zookeeper;

use checkers::model::ModelKind;
use checkers::Checker;
use gen::{AnyGen, AppendGen, BankGen, FinalReads, LockGen, Once, RegisterGen, SetGen};
use harness::lifecycle::{Outcome, Prepared, TestError, TestSpec, Workload};
use harness::runner::{Client, Op};
use harness::store::RunDir;
use harness::system::{NodeInfo, Noop, System};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

pub struct OptInfo {
    pub key: &'static str,
    pub default: &'static str,
    pub summary: &'static str,
}

pub struct SystemInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub workloads: &'static [&'static str],
    pub options: &'static [OptInfo],
}

pub struct WorkloadInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub options: &'static [OptInfo],
}

pub const WORKLOADS: &[WorkloadInfo] = &[
    WorkloadInfo {
        name: "register",
        summary: "read, write, cas with unique values on a few keys at a time; checked with the kv model",
        options: &[
            OptInfo { key: "keys", default: "5", summary: "keys in use at a time" },
            OptInfo { key: "ops-per-key", default: "100", summary: "operations of each worker on a group of keys before the next group" },
        ],
    },
    WorkloadInfo {
        name: "lock",
        summary: "acquire, hold a short random time, release; checked for lock safety and with the mutex model",
        options: &[
            OptInfo { key: "hold-ms", default: "100", summary: "longest hold (and rest) in ms; holds are 10..hold-ms" },
        ],
    },
    WorkloadInfo {
        name: "bank",
        summary: "transfers between accounts and reads of every balance; an operator's resolution of in-doubt transactions and a read in the final phase; bank checker",
        options: &[],
    },
    WorkloadInfo {
        name: "set",
        summary: "add unique elements, reads now and then, a final read of every worker after the heal; set checker",
        options: &[],
    },
    WorkloadInfo {
        name: "list-append",
        summary: "transactions of 1-4 appends of unique values and reads on a few keys at a time, a final read of every key; Elle-style list-append checker (strict-serializable)",
        options: &[
            OptInfo { key: "keys", default: "8", summary: "keys in use at a time" },
            OptInfo { key: "ops-per-key", default: "100", summary: "transactions of each worker on a group of keys before the next group" },
        ],
    },
    WorkloadInfo {
        name: "rw-register",
        summary: "transactions of 1-4 writes of unique values and reads on a few keys at a time, a final read of every key; Elle-style rw-register checker (strict-serializable)",
        options: &[
            OptInfo { key: "keys", default: "8", summary: "keys in use at a time" },
            OptInfo { key: "ops-per-key", default: "100", summary: "transactions of each worker on a group of keys before the next group" },
        ],
    },
    // Maelstrom's workloads (--system maelstrom), with its message bodies.
    WorkloadInfo { name: "echo", summary: "Maelstrom echo (some payloads of 4 KB); every answer equals what was sent", options: &[] },
    WorkloadInfo { name: "unique-ids", summary: "Maelstrom unique-ids: generate; no id twice", options: &[] },
    WorkloadInfo { name: "broadcast", summary: "Maelstrom broadcast (total topology): every acknowledged message in every node's final read; stale reads counted", options: &[] },
    WorkloadInfo { name: "g-set", summary: "Maelstrom g-set: every acknowledged element in every node's final read", options: &[] },
    WorkloadInfo { name: "g-counter", summary: "Maelstrom g-counter: adds of 0..5; final reads equal the sum, every read within bounds", options: &[] },
    WorkloadInfo { name: "pn-counter", summary: "Maelstrom pn-counter: adds of -5..5; final reads equal the sum, every read within bounds", options: &[] },
    WorkloadInfo { name: "kafka", summary: "Maelstrom kafka: send to 4 logs, poll from each client's positions, commit and list offsets; ten polls per worker after the heal; kafka checker", options: &[] },
    WorkloadInfo { name: "lin-kv", summary: "Maelstrom lin-kv: read, write, cas on a few keys at a time; linearizable (kv model)", options: &[] },
    WorkloadInfo { name: "txn-list-append", summary: "Maelstrom txn-list-append: txns of 1-4 appends and reads on 5 rotating keys; list-append checker (strict-serializable)", options: &[] },
    WorkloadInfo { name: "txn-rw-register", summary: "Maelstrom txn-rw-register: txns of 1-4 writes and reads on 5 rotating keys; rw-register checker (strict-serializable)", options: &[] },
];

pub const SYSTEMS: &[SystemInfo] = &[
    SystemInfo {
        name: "etcd",
        summary: "etcd (Raft), the control host's /usr/bin/etcd uploaded to every node; v3 JSON gateway clients; transactions compare mod revisions",
        workloads: &["register", "lock", "set", "list-append", "rw-register"],
        options: &[
            OptInfo { key: "read-mode", default: "linearizable", summary: "linearizable or serializable (may be stale; list-append and rw-register: the transactions' reads)" },
            OptInfo { key: "lease-ttl", default: "5", summary: "lock workload: lease TTL in seconds, kept alive while held" },
        ],
    },
    SystemInfo {
        name: "redis",
        summary: "Redis, the control host's redis-server uploaded to every node: a primary, replicas, and Redis Sentinel for failover",
        workloads: &["register", "lock"],
        options: &[
            OptInfo { key: "failover", default: "sentinel", summary: "sentinel (a sentinel per node promotes a replica; clients ask their node's sentinel) or none (always none with recipe=redlock)" },
            OptInfo { key: "recipe", default: "set-nx-px", summary: "lock workload: set-nx-px (SET NX PX, compare-and-delete release), setnx (SETNX, WATCH/MULTI/DEL release, no expiry) or redlock (SET NX PX on a majority of independent primaries: no replicas, no sentinels)" },
            OptInfo { key: "lease-ms", default: "2000", summary: "lock workload, set-nx-px and redlock: the lock's PX, ms" },
            OptInfo { key: "persistence", default: "aof", summary: "aof (append-only file, fsync every second) or none (a restarted server comes back empty)" },
            OptInfo { key: "read-from", default: "primary", summary: "register workload: primary, or replica (each client reads its own node)" },
            OptInfo { key: "down-after-ms", default: "2000", summary: "sentinel's down-after-milliseconds" },
        ],
    },
    SystemInfo {
        name: "zookeeper",
        summary: "ZooKeeper (ZAB), Debian's zookeeperd on every node (a Java runtime: not uploaded); zookeeper-client sessions, one server each",
        workloads: &["register", "lock"],
        options: &[
            OptInfo { key: "read-mode", default: "plain", summary: "register: plain (from the connected server, may lag) or sync (sync first)" },
            OptInfo { key: "session-timeout", default: "4000", summary: "session timeout, ms (2000..20000): the lock's lease" },
        ],
    },
    SystemInfo {
        name: "postgres",
        summary: "PostgreSQL 15 (Debian's postgresql-15 on every node, not uploaded): one independent server per node; the client coordinates two-phase commit",
        workloads: &["bank", "list-append", "rw-register"],
        options: &[
            OptInfo { key: "accounts", default: "8", summary: "bank accounts a0, a1, ..., 100 each, spread over the shards" },
            OptInfo { key: "shards", default: "2", summary: "servers holding accounts (the first nodes)" },
            OptInfo { key: "read", default: "per-shard", summary: "per-shard (each shard in its own transaction) or locking (FOR SHARE on every shard until all are read)" },
            OptInfo { key: "crash-after-prepare", default: "0.02", summary: "how often the coordinator stops between its commit decision and COMMIT PREPARED, leaving both sides in doubt (0 to 1)" },
            OptInfo { key: "isolation", default: "serializable", summary: "list-append and rw-register: read-committed, repeatable-read or serializable (node 1's server only)" },
            OptInfo { key: "synchronous-commit", default: "on", summary: "on, or off (a commit is acknowledged before its WAL is flushed: --nemesis lost-writes may lose it)" },
        ],
    },
    SystemInfo {
        name: "http",
        summary: "your own binary speaking shakedown's node protocol (docs/node-protocol.md), uploaded to every node",
        workloads: &["register", "lock", "set"],
        options: &[
            OptInfo { key: "binary", default: "", summary: "the node binary on this machine (required)" },
            OptInfo { key: "start", default: http::DEFAULT_START, summary: "start command; {binary} {id} {ip} {port} {peers} {data_dir} are filled in" },
            OptInfo { key: "port", default: "8080", summary: "the port the protocol is served on" },
            OptInfo { key: "lease-ms", default: "0", summary: "lock workload: lease asked for on acquire, ms (0: none)" },
        ],
    },
    SystemInfo {
        name: "maelstrom",
        summary: "your Maelstrom node (a Gossip Glomers solution), unchanged, on every node under shakedown's shim; services seq-kv, lin-kv, lww-kv, lin-tso on the control host",
        workloads: &["echo", "unique-ids", "broadcast", "g-set", "g-counter", "pn-counter", "lin-kv", "kafka", "txn-list-append", "txn-rw-register"],
        options: &[
            OptInfo { key: "binary", default: "", summary: "your node: an executable, or a directory uploaded whole (required)" },
            OptInfo { key: "run", default: "run", summary: "a directory's entry point, relative to it" },
            OptInfo { key: "port", default: "7070", summary: "the shims' port (peers and clients)" },
        ],
    },
    SystemInfo {
        name: "noop",
        summary: "nothing real: a sleeping process per node (the target of kill and pause) and correct in-process clients; tests the harness",
        workloads: &["register", "lock", "set"],
        options: &[],
    },
];

/// A validated `--system`, `--workload` and `--opt` set.
pub struct Selection {
    pub system: &'static SystemInfo,
    pub workload: &'static WorkloadInfo,
    pub opts: BTreeMap<String, String>,
    /// list-append: the highest key any worker used, for the final reads.
    highest_key: Arc<AtomicU64>,
}

impl Selection {
    /// Checks names and option keys; every option gets its default.
    pub fn new(
        system: &str,
        workload: &str,
        given: &[(String, String)],
    ) -> Result<Selection, String> {
        let sys = SYSTEMS.iter().find(|s| s.name == system).ok_or_else(|| {
            format!(
                "--system {system:?} is not known; choose one of {}",
                SYSTEMS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let wl = WORKLOADS
            .iter()
            .find(|w| w.name == workload && sys.workloads.contains(&w.name))
            .ok_or_else(|| {
                format!(
                    "--workload {workload:?} is not a workload of {system}; choose one of {}",
                    sys.workloads.join(", ")
                )
            })?;
        let known: Vec<&OptInfo> = sys.options.iter().chain(wl.options).collect();
        let mut opts: BTreeMap<String, String> = known
            .iter()
            .map(|o| (o.key.to_string(), o.default.to_string()))
            .collect();
        for (k, v) in given {
            if !known.iter().any(|o| o.key == k) {
                let keys: Vec<&str> = known.iter().map(|o| o.key).collect();
                return Err(format!(
                    "--opt {k}: not an option of --system {system} --workload {workload}; known: {}",
                    if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
                ));
            }
            opts.insert(k.clone(), v.clone());
        }
        if sys.name == "redis" && opts["recipe"] == "redlock" {
            // Independent primaries: nothing to fail over. Said so in the
            // options test.json records and the replay line prints.
            if given
                .iter()
                .any(|(k, v)| k == "failover" && v == "sentinel")
            {
                return Err(
                    "--opt recipe=redlock runs independent primaries: --opt failover=sentinel does not apply".into(),
                );
            }
            opts.insert("failover".into(), "none".into());
        }
        let s = Selection {
            system: sys,
            workload: wl,
            opts,
            highest_key: Arc::default(),
        };
        // Parse every option now, so a bad value is a usage error before the run.
        s.number("keys")?;
        s.number("ops-per-key")?;
        s.number("hold-ms")?;
        s.number("lease-ttl")?;
        if sys.name == "http" {
            let b = &s.opts["binary"];
            if b.is_empty() {
                return Err(
                    "--system http needs --opt binary=PATH (the node binary to upload)".into(),
                );
            }
            if !std::path::Path::new(b).is_file() {
                return Err(format!("--opt binary={b}: no such file"));
            }
            if s.opts["port"]
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .is_none()
            {
                return Err(format!(
                    "--opt port={}: a TCP port is needed",
                    s.opts["port"]
                ));
            }
            if s.opts["lease-ms"].parse::<u64>().is_err() {
                return Err(format!(
                    "--opt lease-ms={}: a whole number of ms is needed",
                    s.opts["lease-ms"]
                ));
            }
        }
        if sys.name == "maelstrom" {
            s.maelstrom_opts()?;
        }
        if sys.name == "redis" {
            for (k, allowed) in [
                ("failover", &["sentinel", "none"][..]),
                ("recipe", &["set-nx-px", "setnx", "redlock"][..]),
                ("persistence", &["aof", "none"][..]),
                ("read-from", &["primary", "replica"][..]),
            ] {
                if !allowed.contains(&s.opts[k].as_str()) {
                    return Err(format!(
                        "--opt {k}={}: choose {}",
                        s.opts[k],
                        allowed.join(" or ")
                    ));
                }
            }
            s.number("lease-ms")?;
            s.number("down-after-ms")?;
        }
        if sys.name == "postgres" {
            s.number("accounts")?;
            s.number("shards")?;
            let r = &s.opts["read"];
            if r != "per-shard" && r != "locking" {
                return Err(format!("--opt read={r}: choose per-shard or locking"));
            }
            let i = &s.opts["isolation"];
            if postgres::txn::Isolation::parse(i).is_none() {
                return Err(format!(
                    "--opt isolation={i}: choose read-committed, repeatable-read or serializable"
                ));
            }
            let sc = &s.opts["synchronous-commit"];
            if sc != "on" && sc != "off" {
                return Err(format!("--opt synchronous-commit={sc}: choose on or off"));
            }
            let c = &s.opts["crash-after-prepare"];
            if !c.parse::<f64>().is_ok_and(|p| (0.0..=1.0).contains(&p)) {
                return Err(format!(
                    "--opt crash-after-prepare={c}: a probability from 0 to 1 is needed"
                ));
            }
        }
        if sys.name == "zookeeper" {
            let m = &s.opts["read-mode"];
            if m != "plain" && m != "sync" {
                return Err(format!("--opt read-mode={m}: choose plain or sync"));
            }
            let t = s.number("session-timeout")?.unwrap_or(0);
            if !(2000..=20000).contains(&t) {
                return Err(format!(
                    "--opt session-timeout={t}: ZooKeeper here takes 2000 to 20000 ms (2 to 20 ticks of 1 s)"
                ));
            }
        } else if let Some(m) = s.opts.get("read-mode") {
            if m != "linearizable" && m != "serializable" {
                return Err(format!(
                    "--opt read-mode={m}: choose linearizable or serializable"
                ));
            }
        }
        Ok(s)
    }

    fn number(&self, key: &str) -> Result<Option<u64>, String> {
        self.opts
            .get(key)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--opt {key}={v}: a positive whole number is needed"))
            })
            .transpose()
    }

    fn num(&self, key: &str, default: u64) -> u64 {
        self.number(key).ok().flatten().unwrap_or(default)
    }

    /// The checkers for test.json: name and initial state.
    pub fn checkers(&self) -> Vec<(Checker, Value)> {
        match self.workload.name {
            "register" => vec![(Checker::Linear(ModelKind::Kv), Value::Null)],
            "lock" => vec![
                (Checker::Lock, Value::Null),
                (Checker::Linear(ModelKind::Mutex), Value::Null),
            ],
            "bank" => vec![(
                Checker::Bank,
                Value::Object(
                    self.pg_opts()
                        .names()
                        .into_iter()
                        .map(|n| (n, json!(postgres::BALANCE)))
                        .collect(),
                ),
            )],
            "set" => vec![(Checker::Set, Value::Null)],
            w @ ("list-append" | "rw-register") => Checker::parse(w)
                .map(|c| vec![(c, Value::Null)])
                .unwrap_or_default(),
            w => maelstrom::Kind::parse(w)
                .map(|k| vec![(k.checker(), Value::Null)])
                .unwrap_or_default(),
        }
    }

    /// list-append and rw-register: what the transactions hold.
    fn txn_kind(&self) -> Option<checkers::txn::TxnKind> {
        match self.workload.name {
            "list-append" => Some(checkers::txn::TxnKind::ListAppend),
            "rw-register" => Some(checkers::txn::TxnKind::RwRegister),
            _ => None,
        }
    }

    fn maelstrom_opts(&self) -> Result<maelstrom::Opts, String> {
        maelstrom::Opts::new(&self.opts["binary"], &self.opts["run"], &self.opts["port"])
    }

    fn pg_opts(&self) -> postgres::PgOpts {
        postgres::PgOpts {
            accounts: self.num("accounts", 8) as usize,
            shards: self.num("shards", 2) as usize,
            synchronous_commit: self.opts["synchronous-commit"] != "off",
        }
    }

    /// The system, for set-up and versions.
    pub fn system(&self) -> Arc<dyn System> {
        match self.system.name {
            "etcd" => Arc::new(etcd::Etcd::default()),
            "zookeeper" => Arc::new(zookeeper::ZooKeeper),
            "postgres" => Arc::new(postgres::Postgres {
                opts: self.pg_opts(),
            }),
            "redis" => Arc::new(redis::Redis::new(redis::RedisOpts {
                sentinel: self.redis_sentinel(),
                independent: self.opts["recipe"] == "redlock",
                aof: self.opts["persistence"] == "aof",
                down_after_ms: self.num("down-after-ms", 2000),
            })),
            "http" => http::system(&self.http_opts()),
            "maelstrom" => match (
                self.maelstrom_opts(),
                maelstrom::Kind::parse(self.workload.name),
            ) {
                // `new` checked both.
                (Ok(o), Some(k)) => Arc::new(maelstrom::Maelstrom::new(o, k)),
                _ => Arc::new(Noop),
            },
            _ => Arc::new(Noop),
        }
    }

    /// Sentinels (never with Redlock: `new` made its failover none).
    fn redis_sentinel(&self) -> bool {
        self.opts["failover"] == "sentinel"
    }

    fn http_opts(&self) -> http::HttpOpts {
        http::HttpOpts {
            binary: self.opts.get("binary").cloned().unwrap_or_default().into(),
            start: self.opts.get("start").cloned().unwrap_or_default(),
            port: self
                .opts
                .get("port")
                .and_then(|p| p.parse().ok())
                .unwrap_or(8080),
            lease_ms: self
                .opts
                .get("lease-ms")
                .and_then(|p| p.parse().ok())
                .filter(|ms| *ms > 0),
        }
    }

    fn generator(&self, slot: usize, concurrency: usize) -> AnyGen {
        match self.workload.name {
            "register" => AnyGen::Register(RegisterGen::new(
                slot,
                concurrency,
                self.num("keys", 5),
                self.num("ops-per-key", 100),
            )),
            "lock" => {
                let hold = self.num("hold-ms", 100);
                AnyGen::Lock(LockGen::new("lock", (hold.min(10), hold)))
            }
            "bank" => AnyGen::Bank(BankGen {
                accounts: self.pg_opts().accounts,
            }),
            w @ ("list-append" | "rw-register") => {
                let mut g = AppendGen::new(
                    slot,
                    concurrency,
                    self.num("keys", 8),
                    self.num("ops-per-key", 100),
                    self.highest_key.clone(),
                );
                if w == "rw-register" {
                    g.write = "w";
                }
                AnyGen::Append(g)
            }
            _ => AnyGen::Set(SetGen::new(slot, concurrency, 50)),
        }
    }

    fn final_generator(&self, slot: usize) -> Option<AnyGen> {
        let read = || Op::new("read", None, Value::Null);
        match self.workload.name {
            "set" => Some(AnyGen::Once(Once(vec![read()]))),
            // One operator: resolve what was left prepared, then read.
            "bank" if slot == 0 => Some(AnyGen::Once(Once(vec![
                Op::new("resolve", None, Value::Null),
                read(),
            ]))),
            "bank" => Some(AnyGen::Once(Once(Vec::new()))),
            // Transactions reading every key used.
            "list-append" | "rw-register" if slot == 0 => Some(AnyGen::FinalReads(
                FinalReads::new(self.highest_key.clone()),
            )),
            "list-append" | "rw-register" => Some(AnyGen::Once(Once(Vec::new()))),
            _ => None,
        }
    }

    /// Runs the test on prepared nodes.
    pub fn execute(
        &self,
        prepared: Prepared,
        spec: &TestSpec,
        run_dir: &RunDir,
    ) -> Result<Outcome, TestError> {
        let system = self.system();
        let concurrency = spec.run.concurrency;
        let gens = Gens {
            main: (0..concurrency)
                .map(|s| Mutex::new(Some(self.generator(s, concurrency))))
                .collect(),
            finals: (0..concurrency)
                .map(|s| Mutex::new(self.final_generator(s)))
                .collect(),
            has_final: self.final_generator(0).is_some(),
        };
        match self.system.name {
            "etcd" if self.txn_kind().is_some() => {
                let cfg = Arc::new(etcd::client::Config {
                    serializable: self.opts["read-mode"] == "serializable",
                    lease_ttl: self.num("lease-ttl", 5),
                    timeout: spec.run.op_timeout,
                });
                let kind = self.txn_kind().expect("a transactional workload");
                let w = Arc::new(Plan {
                    gens,
                    make: move |slot: usize, nodes: &[NodeInfo]| {
                        etcd::txn::EtcdTxnClient::new(slot, nodes, cfg.clone(), kind)
                    },
                });
                prepared.run(system, w, spec, run_dir)
            }
            "etcd" => {
                let cfg = Arc::new(etcd::client::Config {
                    serializable: self.opts.get("read-mode").map(String::as_str)
                        == Some("serializable"),
                    lease_ttl: self.num("lease-ttl", 5),
                    timeout: spec.run.op_timeout,
                });
                let w = Arc::new(Plan {
                    gens,
                    make: move |slot: usize, nodes: &[NodeInfo]| {
                        etcd::client::EtcdClient::new(slot, nodes, cfg.clone())
                    },
                });
                prepared.run(system, w, spec, run_dir)
            }
            "redis" => {
                let cfg = Arc::new(redis::client::Config {
                    sentinel: self.redis_sentinel(),
                    read_from_replica: self.opts["read-from"] == "replica",
                    recipe: match self.opts["recipe"].as_str() {
                        "setnx" => redis::client::Recipe::SetNx,
                        "redlock" => redis::client::Recipe::Redlock,
                        _ => redis::client::Recipe::SetNxPx,
                    },
                    lease_ms: self.num("lease-ms", 2000),
                    timeout: spec.run.op_timeout,
                });
                let w = Arc::new(Plan {
                    gens,
                    make: move |slot: usize, nodes: &[NodeInfo]| {
                        redis::client::RedisClient::new(slot, nodes, cfg.clone())
                    },
                });
                prepared.run(system, w, spec, run_dir)
            }
            "postgres" if self.txn_kind().is_some() => {
                let isolation = postgres::txn::Isolation::parse(&self.opts["isolation"])
                    .unwrap_or(postgres::txn::Isolation::Serializable);
                let timeout = spec.run.op_timeout;
                let kind = self.txn_kind().expect("a transactional workload");
                let w = Arc::new(Plan {
                    gens,
                    make: move |_slot: usize, nodes: &[NodeInfo]| {
                        postgres::txn::PgTxnClient::new(nodes, kind, isolation, timeout)
                    },
                });
                prepared.run(system, w, spec, run_dir)
            }
            "postgres" => {
                let opts = self.pg_opts();
                if opts.shards > prepared.nodes.len() {
                    return Err(TestError::Usage(format!(
                        "--opt shards={}: there are only {} nodes",
                        opts.shards,
                        prepared.nodes.len()
                    )));
                }
                if opts.accounts < 2 {
                    return Err(TestError::Usage("--opt accounts: at least 2".into()));
                }
                let cfg = Arc::new(postgres::client::Config {
                    opts,
                    locking_reads: self.opts["read"] == "locking",
                    timeout: spec.run.op_timeout,
                    crash_after_prepare: self.opts["crash-after-prepare"].parse().unwrap_or(0.0),
                    seed: spec.run.seed,
                });
                let log = Arc::new(postgres::client::CoordinatorLog::default());
                let w = Arc::new(Plan {
                    gens,
                    make: move |_slot: usize, nodes: &[NodeInfo]| {
                        postgres::client::PgCoordinator::new(nodes, cfg.clone(), log.clone())
                    },
                });
                prepared.run(system, w, spec, run_dir)
            }
            "zookeeper" => {
                let cfg = Arc::new(zookeeper::client::Config {
                    sync_reads: self.opts["read-mode"] == "sync",
                    session_timeout: std::time::Duration::from_millis(
                        self.num("session-timeout", 4000),
                    ),
                    timeout: spec.run.op_timeout,
                });
                let w = Arc::new(Plan {
                    gens,
                    make: move |slot: usize, nodes: &[NodeInfo]| {
                        zookeeper::client::ZkClient::new(slot, nodes, cfg.clone())
                    },
                });
                prepared.run(system, w, spec, run_dir)
            }
            "http" => {
                let o = self.http_opts();
                let (port, lease, timeout) = (o.port, o.lease_ms, spec.run.op_timeout);
                let w = Arc::new(Plan {
                    gens,
                    make: move |slot: usize, nodes: &[NodeInfo]| {
                        http::HttpClient::new(slot, nodes, port, timeout, lease)
                    },
                });
                prepared.run(system, w, spec, run_dir)
            }
            "maelstrom" => {
                let (Ok(o), Some(kind)) = (
                    self.maelstrom_opts(),
                    maelstrom::Kind::parse(self.workload.name),
                ) else {
                    return Err(TestError::Usage(
                        "--system maelstrom: options were not checked".into(),
                    ));
                };
                let w = Arc::new(maelstrom::Plan {
                    kind,
                    port: o.port,
                    timeout: spec.run.op_timeout,
                    concurrency,
                });
                prepared.run(system, w, spec, run_dir)
            }
            _ => {
                let state = Arc::new(Mutex::new(memory::State::default()));
                let w = Arc::new(Plan {
                    gens,
                    make: move |slot: usize, _: &[NodeInfo]| {
                        memory::Memory::new(state.clone(), slot)
                    },
                });
                prepared.run(system, w, spec, run_dir)
            }
        }
    }
}

/// Generators made up front (each handed out once), and a client maker.
struct Gens {
    main: Vec<Mutex<Option<AnyGen>>>,
    finals: Vec<Mutex<Option<AnyGen>>>,
    has_final: bool,
}

struct Plan<F> {
    gens: Gens,
    make: F,
}

impl<C, F> Workload for Plan<F>
where
    C: Client + 'static,
    F: Fn(usize, &[NodeInfo]) -> C + Send + Sync + 'static,
{
    type Client = C;
    type Gen = AnyGen;

    fn client(&self, slot: usize, nodes: &[NodeInfo]) -> C {
        (self.make)(slot, nodes)
    }

    fn generator(&self, slot: usize) -> AnyGen {
        take(&self.gens.main[slot]).unwrap_or(AnyGen::Once(Once(Vec::new())))
    }

    fn has_final_phase(&self) -> bool {
        self.gens.has_final
    }

    fn final_generator(&self, slot: usize) -> Option<AnyGen> {
        take(&self.gens.finals[slot])
    }
}

fn take(m: &Mutex<Option<AnyGen>>) -> Option<AnyGen> {
    m.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// test.json's description of the selection.
pub fn describe(sel: &Selection) -> Value {
    json!({
        "system": sel.system.name,
        "workload": sel.workload.name,
        "opts": sel.opts,
        "checkers": sel.checkers().iter().map(|(c, init)| json!({"checker": c.name(), "init": init})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn postgres_list_append_is_checked_as_list_append_at_a_valid_isolation() {
        let s = Selection::new("postgres", "list-append", &[]).unwrap();
        assert_eq!(s.opts["isolation"], "serializable");
        let names: Vec<&str> = s.checkers().iter().map(|(c, _)| c.name()).collect();
        assert_eq!(names, ["list-append"]);
        let e = Selection::new(
            "postgres",
            "list-append",
            &opts(&[("isolation", "snapshot")]),
        )
        .err()
        .unwrap();
        assert!(e.contains("--opt isolation=snapshot"), "{e}");
        for (sys, wl) in [
            ("etcd", "list-append"),
            ("etcd", "rw-register"),
            ("postgres", "rw-register"),
        ] {
            let s = Selection::new(sys, wl, &[]).unwrap();
            let names: Vec<&str> = s.checkers().iter().map(|(c, _)| c.name()).collect();
            assert_eq!(names, [wl]);
        }
        assert!(Selection::new("redis", "list-append", &[]).is_err());
    }

    #[test]
    fn redlock_runs_independent_primaries_and_says_so() {
        let s = Selection::new("redis", "lock", &opts(&[("recipe", "redlock")])).unwrap();
        assert_eq!(s.opts["failover"], "none");
        assert!(!s.redis_sentinel());
        let e = Selection::new(
            "redis",
            "lock",
            &opts(&[("recipe", "redlock"), ("failover", "sentinel")]),
        )
        .err()
        .unwrap();
        assert!(
            e.contains("--opt recipe=redlock") && e.contains("failover"),
            "{e}"
        );
        let e = Selection::new("redis", "lock", &opts(&[("persistence", "rdb")]))
            .err()
            .unwrap();
        assert!(e.contains("--opt persistence=rdb"), "{e}");
        let s = Selection::new("redis", "lock", &[]).unwrap();
        assert_eq!(
            (s.opts["failover"].as_str(), s.opts["persistence"].as_str()),
            ("sentinel", "aof")
        );
    }
}
