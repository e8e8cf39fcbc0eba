//! ZooKeeper's catalogue entry and typed options.

use super::client::{Config, ZkClient};
use super::ZooKeeper;
use crate::opts::{OptInfo, Opts, UsageError};
use crate::registry::{self, Configured, Definition, Gens, Plan, SystemInfo};
use crate::work::Work;
use harness::lifecycle::{Outcome, Prepared, TestError, TestSpec};
use harness::store::RunDir;
use harness::system::{NodeInfo, System};
use std::sync::Arc;
use std::time::Duration;

pub struct Def;

static INFO: SystemInfo = SystemInfo {
    name: "zookeeper",
    summary: "ZooKeeper (ZAB), Debian's zookeeperd on every node (a Java runtime: not uploaded); zookeeper-client sessions, one server each",
    workloads: &["register", "lock"],
    options: &[
        OptInfo { key: "read-mode", default: "plain", summary: "register: plain (from the connected server, may lag) or sync (sync first)" },
        OptInfo { key: "session-timeout", default: "4000", summary: "session timeout, ms (2000..20000): the lock's lease" },
    ],
};

/// `--system zookeeper`'s options, read.
struct Configuration {
    sync_reads: bool,
    session_timeout: Duration,
}

impl Definition for Def {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn configure(&self, work: &Work, opts: &mut Opts) -> Result<Box<dyn Configured>, UsageError> {
        match work {
            Work::Register { .. } | Work::Lock { .. } => {}
            other => return Err(registry::unsupported(INFO.name, other)),
        }
        let ms = opts.within(
            "session-timeout",
            2000..=20000,
            "ZooKeeper here takes 2000 to 20000 ms (2 to 20 ticks of 1 s)",
        )?;
        Ok(Box::new(Configuration {
            sync_reads: opts.choice("read-mode", &["plain", "sync"])? == "sync",
            session_timeout: Duration::from_millis(ms),
        }))
    }
}

impl Configured for Configuration {
    fn system(&self) -> Arc<dyn System> {
        Arc::new(ZooKeeper)
    }

    fn run(
        &self,
        prepared: Prepared,
        spec: &TestSpec,
        run_dir: &RunDir,
        gens: Gens,
    ) -> Result<Outcome, TestError> {
        let cfg = Arc::new(Config {
            sync_reads: self.sync_reads,
            session_timeout: self.session_timeout,
            timeout: spec.run.op_timeout,
        });
        let plan = Plan::new(gens, move |slot: usize, nodes: &[NodeInfo]| {
            ZkClient::new(slot, nodes, cfg.clone())
        });
        prepared.run(self.system(), plan, spec, run_dir)
    }
}
