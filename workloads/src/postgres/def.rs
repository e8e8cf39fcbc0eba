//! PostgreSQL's catalogue entry and typed options.

use super::client::{Config, CoordinatorLog, PgCoordinator};
use super::txn::{Isolation, PgTxnClient};
use super::{PgOpts, Postgres};
use crate::opts::{OptInfo, Opts, UsageError};
use crate::registry::{self, Configured, Definition, Gens, Plan, SystemInfo};
use crate::work::Work;
use checkers::txn::TxnKind;
use harness::lifecycle::{Outcome, Prepared, TestError, TestSpec};
use harness::store::RunDir;
use harness::system::{NodeInfo, System};
use std::sync::Arc;

pub struct Def;

static INFO: SystemInfo = SystemInfo {
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
};

/// What the clients do.
enum Clients {
    /// The bank, with the client as two-phase-commit coordinator.
    Bank {
        locking_reads: bool,
        crash_after_prepare: f64,
    },
    /// Transactions on node 1's server.
    Txn(TxnKind, Isolation),
}

/// `--system postgres`'s options, read.
struct Configuration {
    server: PgOpts,
    clients: Clients,
}

impl Definition for Def {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn configure(&self, work: &Work, opts: &mut Opts) -> Result<Box<dyn Configured>, UsageError> {
        let server = PgOpts {
            accounts: opts.positive("accounts")? as usize,
            shards: opts.positive("shards")? as usize,
            synchronous_commit: opts.on_off("synchronous-commit")?,
        };
        let locking_reads = opts.choice("read", &["per-shard", "locking"])? == "locking";
        let crash_after_prepare = opts.probability("crash-after-prepare")?;
        let isolation = opts.pick(
            "isolation",
            &[
                ("read-committed", Isolation::ReadCommitted),
                ("repeatable-read", Isolation::RepeatableRead),
                ("serializable", Isolation::Serializable),
            ],
        )?;
        let clients = match work {
            Work::Bank { .. } => Clients::Bank {
                locking_reads,
                crash_after_prepare,
            },
            Work::Txn { kind, .. } => Clients::Txn(*kind, isolation),
            other => return Err(registry::unsupported(INFO.name, other)),
        };
        Ok(Box::new(Configuration { server, clients }))
    }
}

impl Configured for Configuration {
    fn system(&self) -> Arc<dyn System> {
        Arc::new(Postgres {
            opts: self.server.clone(),
        })
    }

    fn run(
        &self,
        prepared: Prepared,
        spec: &TestSpec,
        run_dir: &RunDir,
        gens: Gens,
    ) -> Result<Outcome, TestError> {
        let timeout = spec.run.op_timeout;
        match self.clients {
            Clients::Txn(kind, isolation) => {
                let plan = Plan::new(gens, move |_slot: usize, nodes: &[NodeInfo]| {
                    PgTxnClient::new(nodes, kind, isolation, timeout)
                });
                prepared.run(self.system(), plan, spec, run_dir)
            }
            Clients::Bank {
                locking_reads,
                crash_after_prepare,
            } => {
                if self.server.shards > prepared.nodes.len() {
                    return Err(TestError::Usage(format!(
                        "--opt shards={}: there are only {} nodes",
                        self.server.shards,
                        prepared.nodes.len()
                    )));
                }
                let cfg = Arc::new(Config {
                    opts: self.server.clone(),
                    locking_reads,
                    timeout,
                    crash_after_prepare,
                    seed: spec.run.seed,
                });
                let log = Arc::new(CoordinatorLog::default());
                let plan = Plan::new(gens, move |_slot: usize, nodes: &[NodeInfo]| {
                    PgCoordinator::new(nodes, cfg.clone(), log.clone())
                });
                prepared.run(self.system(), plan, spec, run_dir)
            }
        }
    }
}
