//! Maelstrom's catalogue entry and typed options.

use super::client::MaelstromClient;
use super::{Kind, Maelstrom, Opts as NodeOpts};
use crate::opts::{OptInfo, Opts, UsageError};
use crate::registry::{self, Configured, Definition, Gens, Plan, SystemInfo};
use crate::work::Work;
use harness::lifecycle::{Outcome, Prepared, TestError, TestSpec};
use harness::store::RunDir;
use harness::system::{NodeInfo, System};
use std::sync::Arc;

pub struct Def;

static INFO: SystemInfo = SystemInfo {
    name: "maelstrom",
    summary: "your Maelstrom node (a Gossip Glomers solution), unchanged, on every node under shakedown's shim; services seq-kv, lin-kv, lww-kv, lin-tso on the control host",
    workloads: &["echo", "unique-ids", "broadcast", "g-set", "g-counter", "pn-counter", "lin-kv", "kafka", "txn-list-append", "txn-rw-register"],
    options: &[
        OptInfo { key: "binary", default: "", summary: "your node: an executable, or a directory uploaded whole (required)" },
        OptInfo { key: "run", default: "run", summary: "a directory's entry point, relative to it" },
        OptInfo { key: "port", default: "7070", summary: "the shims' port (peers and clients)" },
    ],
};

/// `--system maelstrom`'s options, read, for one workload.
struct Configuration {
    node: NodeOpts,
    kind: Kind,
}

impl Definition for Def {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn configure(&self, work: &Work, opts: &mut Opts) -> Result<Box<dyn Configured>, UsageError> {
        let Work::Maelstrom(kind) = *work else {
            return Err(registry::unsupported(INFO.name, work));
        };
        let node = NodeOpts::new(opts.str("binary"), opts.str("run"), opts.str("port"))?;
        Ok(Box::new(Configuration { node, kind }))
    }
}

impl Configured for Configuration {
    fn system(&self) -> Arc<dyn System> {
        Arc::new(Maelstrom::new(self.node.clone(), self.kind))
    }

    fn run(
        &self,
        prepared: Prepared,
        spec: &TestSpec,
        run_dir: &RunDir,
        gens: Gens,
    ) -> Result<Outcome, TestError> {
        let (kind, port, timeout) = (self.kind, self.node.port, spec.run.op_timeout);
        let plan = Plan::new(gens, move |slot: usize, nodes: &[NodeInfo]| {
            MaelstromClient::new(kind, slot, nodes, port, timeout)
        });
        prepared.run(self.system(), plan, spec, run_dir)
    }
}
