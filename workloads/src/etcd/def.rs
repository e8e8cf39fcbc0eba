//! etcd's catalogue entry and typed options.

use super::client::{Config, EtcdClient};
use super::txn::EtcdTxnClient;
use super::Etcd;
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
    name: "etcd",
    summary: "etcd (Raft), the control host's /usr/bin/etcd uploaded to every node; v3 JSON gateway clients; transactions compare mod revisions",
    workloads: &["register", "lock", "set", "list-append", "rw-register"],
    options: &[
        OptInfo { key: "read-mode", default: "linearizable", summary: "linearizable or serializable (may be stale; list-append and rw-register: the transactions' reads)" },
        OptInfo { key: "lease-ttl", default: "5", summary: "lock workload: lease TTL in seconds, kept alive while held" },
    ],
};

/// `--system etcd`'s options, read.
struct Configuration {
    serializable: bool,
    lease_ttl: u64,
    /// Transactions (list-append, rw-register) rather than single keys.
    txn: Option<TxnKind>,
}

impl Definition for Def {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn configure(&self, work: &Work, opts: &mut Opts) -> Result<Box<dyn Configured>, UsageError> {
        let txn = match work {
            Work::Register { .. } | Work::Lock { .. } | Work::Set => None,
            Work::Txn { kind, .. } => Some(*kind),
            other => return Err(registry::unsupported(INFO.name, other)),
        };
        Ok(Box::new(Configuration {
            txn,
            serializable: opts.choice("read-mode", &["linearizable", "serializable"])?
                == "serializable",
            lease_ttl: opts.positive("lease-ttl")?,
        }))
    }
}

impl Configured for Configuration {
    fn system(&self) -> Arc<dyn System> {
        Arc::new(Etcd::default())
    }

    fn run(
        &self,
        prepared: Prepared,
        spec: &TestSpec,
        run_dir: &RunDir,
        gens: Gens,
    ) -> Result<Outcome, TestError> {
        let cfg = Arc::new(Config {
            serializable: self.serializable,
            lease_ttl: self.lease_ttl,
            timeout: spec.run.op_timeout,
        });
        if let Some(kind) = self.txn {
            let plan = Plan::new(gens, move |slot: usize, nodes: &[NodeInfo]| {
                EtcdTxnClient::new(slot, nodes, cfg.clone(), kind)
            });
            return prepared.run(self.system(), plan, spec, run_dir);
        }
        let plan = Plan::new(gens, move |slot: usize, nodes: &[NodeInfo]| {
            EtcdClient::new(slot, nodes, cfg.clone())
        });
        prepared.run(self.system(), plan, spec, run_dir)
    }
}
