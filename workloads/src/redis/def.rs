//! Redis's catalogue entry and typed options.

use super::client::{Config, Recipe, RedisClient};
use super::{Redis, RedisOpts};
use crate::opts::{OptInfo, Opts, UsageError};
use crate::registry::{self, Configured, Definition, Gens, Plan, SystemInfo};
use crate::work::Work;
use harness::lifecycle::{Outcome, Prepared, TestError, TestSpec};
use harness::store::RunDir;
use harness::system::{NodeInfo, System};
use std::sync::Arc;

pub struct Def;

static INFO: SystemInfo = SystemInfo {
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
};

/// `--system redis`'s options, read.
struct Configuration {
    server: RedisOpts,
    recipe: Recipe,
    read_from_replica: bool,
    lease_ms: u64,
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
        let recipe = opts.pick(
            "recipe",
            &[
                ("set-nx-px", Recipe::SetNxPx),
                ("setnx", Recipe::SetNx),
                ("redlock", Recipe::Redlock),
            ],
        )?;
        let mut failover = opts.choice("failover", &["sentinel", "none"])?;
        if recipe == Recipe::Redlock {
            // Independent primaries: nothing to fail over. Said so in the
            // options test.json records and the replay line prints.
            if failover == "sentinel" && opts.given("failover") {
                return Err(UsageError::Invalid(
                    "--opt recipe=redlock runs independent primaries: --opt failover=sentinel does not apply".into(),
                ));
            }
            failover = "none";
            opts.set("failover", failover);
        }
        Ok(Box::new(Configuration {
            server: RedisOpts {
                sentinel: failover == "sentinel",
                independent: recipe == Recipe::Redlock,
                aof: opts.choice("persistence", &["aof", "none"])? == "aof",
                down_after_ms: opts.positive("down-after-ms")?,
            },
            recipe,
            read_from_replica: opts.choice("read-from", &["primary", "replica"])? == "replica",
            lease_ms: opts.positive("lease-ms")?,
        }))
    }
}

impl Configured for Configuration {
    fn system(&self) -> Arc<dyn System> {
        Arc::new(Redis::new(self.server.clone()))
    }

    fn run(
        &self,
        prepared: Prepared,
        spec: &TestSpec,
        run_dir: &RunDir,
        gens: Gens,
    ) -> Result<Outcome, TestError> {
        let cfg = Arc::new(Config {
            sentinel: self.server.sentinel,
            read_from_replica: self.read_from_replica,
            recipe: self.recipe,
            lease_ms: self.lease_ms,
            timeout: spec.run.op_timeout,
        });
        let plan = Plan::new(gens, move |slot: usize, nodes: &[NodeInfo]| {
            RedisClient::new(slot, nodes, cfg.clone())
        });
        prepared.run(self.system(), plan, spec, run_dir)
    }
}
