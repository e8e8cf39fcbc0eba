//! `shakedown test`: run a system under faults, check, report.

use super::nodes::NodeFlags;
use crate::exit;
use checkers::rundata::Fault;
use checkers::rundata::{NodeEntry, TestFile};
use clap::Args;
use harness::lifecycle::{self, TestError, TestSpec};
use harness::local::LocalCluster;
use harness::runner::RunConfig;
use harness::store::Store;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use workloads::Selection;

pub const INTERRUPTED: u8 = 130;

#[derive(Args)]
#[command(after_help = super::help::test_after())]
pub struct TestArgs {
    /// The system under test
    #[arg(long, default_value = "etcd")]
    system: String,
    /// The workload
    #[arg(long, default_value = "register")]
    workload: String,
    #[arg(long, default_value = "partition,kill", help = super::help::nemesis_flag())]
    nemesis: String,
    #[arg(long, default_value = "", help = super::help::partition_flag())]
    partition: String,
    /// Seconds of the main phase
    #[arg(long, default_value_t = 60.0, allow_negative_numbers = true)]
    time_limit: f64,
    /// Client workers: a number, or Nn for N per node (e.g. 3n)
    #[arg(long, default_value = "2n")]
    concurrency: String,
    /// Operations per second over all workers (default: as fast as answers come)
    #[arg(long)]
    rate: Option<f64>,
    /// Seed of the operations and the fault schedule (default: random, printed)
    #[arg(long)]
    seed: Option<u64>,
    /// A system's or workload's option, KEY=VALUE (repeatable; see below)
    #[arg(long = "opt", value_name = "KEY=VALUE")]
    opts: Vec<String>,
    /// Seconds between a fault and its heal, and between a heal and the next fault
    #[arg(long, default_value_t = 10.0)]
    interval: f64,
    /// Seconds to wait after the final heal before the final phase
    #[arg(long, default_value_t = 5.0)]
    recovery: f64,
    /// Seconds an operation may take before it is recorded as info (unknown)
    #[arg(long, default_value_t = 5.0)]
    op_timeout: f64,
    /// Where runs are stored
    #[arg(long, default_value = "store")]
    store: PathBuf,
    /// Leave the system running on the nodes after the run
    #[arg(long)]
    leave_running: bool,
    #[command(flatten)]
    nodes: NodeFlags,
}

fn usage(msg: impl std::fmt::Display) -> u8 {
    err!("shakedown test: {msg}");
    exit::USAGE
}

fn seconds(flag: &str, v: f64, zero_ok: bool) -> Result<Duration, String> {
    if v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0)) && v < 1e7 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "--{flag} {v}: a positive number of seconds is needed"
        ))
    }
}

/// The delay fault's spec from its `--opt`s (defaults otherwise).
fn delay_spec(opts: &[(String, String)]) -> Result<harness::nemesis::DelaySpec, String> {
    let mut d = harness::nemesis::DelaySpec::default();
    for (k, v) in opts {
        let bad = |what: &str| format!("--opt {k}={v}: {what}");
        match k.as_str() {
            "delay-ms" | "jitter-ms" => {
                let ms: u32 = v
                    .parse()
                    .ok()
                    .filter(|ms| *ms <= 60_000)
                    .ok_or_else(|| bad("milliseconds from 0 to 60000"))?;
                if k == "delay-ms" {
                    d.delay_ms = ms;
                } else {
                    d.jitter_ms = ms;
                }
            }
            _ => {
                let p: f64 = v
                    .parse()
                    .ok()
                    .filter(|p: &f64| (0.0..=1.0).contains(p))
                    .ok_or_else(|| bad("a probability from 0 to 1"))?;
                if k == "reorder" {
                    d.reorder = p;
                } else {
                    d.duplicate = p;
                }
            }
        }
    }
    if d.jitter_ms > d.delay_ms {
        return Err(format!(
            "--opt jitter-ms={} is more than delay-ms={}",
            d.jitter_ms, d.delay_ms
        ));
    }
    Ok(d)
}

/// "10" or "3n" (3 per node).
fn concurrency(s: &str, nodes: usize) -> Result<usize, String> {
    let bad = || format!("--concurrency {s:?}: a positive number, or Nn for N per node (e.g. 3n)");
    let n = match s.strip_suffix('n') {
        Some(per) => per.parse::<usize>().map_err(|_| bad())? * nodes,
        None => s.parse::<usize>().map_err(|_| bad())?,
    };
    if n == 0 || n > 10_000 {
        return Err(bad());
    }
    Ok(n)
}

fn random_seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Small enough to type back in.
    (t ^ (std::process::id() as u64).rotate_left(32)) % 1_000_000_000
}

pub fn run(args: TestArgs) -> u8 {
    let given: Result<Vec<(String, String)>, String> = args
        .opts
        .iter()
        .map(|o| {
            o.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("--opt {o:?}: expected KEY=VALUE"))
        })
        .collect();
    // The delay fault's own --opt keys; the rest are the system's and workload's.
    let given = given.and_then(|g| {
        let (fault_opts, rest): (Vec<_>, Vec<_>) = g
            .into_iter()
            .partition(|(k, _)| Fault::Delay.options().iter().any(|o| o.key == k));
        Ok((delay_spec(&fault_opts)?, fault_opts, rest))
    });
    let (delay, delay_opts, given) = match given {
        Ok(x) => x,
        Err(m) => return usage(m),
    };
    let sel = match Selection::new(&args.system, &args.workload, &given) {
        Ok(s) => s,
        Err(e) => return usage(e.to_string()),
    };
    let faults = match Fault::parse_list(&args.nemesis) {
        Ok(f) => f,
        Err(m) => return usage(format!("--nemesis: {m}")),
    };
    let partitions = match harness::nemesis::Partition::parse_list(&args.partition) {
        Ok(p) => p,
        Err(m) => return usage(format!("--partition: {m}")),
    };
    let durations = (|| {
        Ok::<_, String>((
            seconds("time-limit", args.time_limit, false)?,
            seconds("interval", args.interval, false)?,
            seconds("recovery", args.recovery, true)?,
            seconds("op-timeout", args.op_timeout, false)?,
        ))
    })();
    let (time_limit, interval, recovery, op_timeout) = match durations {
        Ok(d) => d,
        Err(m) => return usage(m),
    };
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            return usage(format!(
                "--rate {r}: a positive number of operations per second is needed"
            ));
        }
    }
    // What this run uploads from the control host, before any host is
    // touched (the local cluster is not even brought up without it).
    let system = sel.system();
    let binaries = harness::companions::Binaries::located();
    if let Err(e) = lifecycle::check_control_host(&faults, &binaries, system.as_ref()) {
        err!("shakedown test: {e}");
        return exit::INFRA;
    }
    let local = args.nodes.nodes_file.is_none();
    if local {
        // The contract: without --nodes-file, the local cluster, brought up if down.
        if let Err(e) = LocalCluster::new(5).up() {
            err!("shakedown test: cannot bring the local cluster up: {e}");
            return exit::INFRA;
        }
    }
    let nodes_file = args.nodes.nodes_file.clone();
    let (addrs, ssh) = match args.nodes.resolve("test") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let concurrency = match concurrency(&args.concurrency, addrs.len()) {
        Ok(c) => c,
        Err(m) => return usage(m),
    };
    let seed = args.seed.unwrap_or_else(random_seed);
    let prepared = match lifecycle::prepare(addrs.clone(), ssh, &faults, system.as_ref()) {
        Ok(p) => p,
        Err(TestError::Usage(m)) => return usage(m),
        Err(TestError::Infra(m)) => {
            err!("shakedown test: {m}");
            return exit::INFRA;
        }
    };
    let store = Store::new(&args.store);
    let run_dir = match store.create_run(sel.system.name, sel.workload.name, SystemTime::now()) {
        Ok(r) => r,
        Err(e) => {
            err!("shakedown test: {e}");
            return exit::INFRA;
        }
    };
    let _log = init_log(&run_dir.path);

    // The command that replays this run.
    let mut cmd = format!(
        "shakedown test --system {} --workload {} --nemesis {} --time-limit {} --concurrency {} --seed {seed}",
        sel.system.name,
        sel.workload.name,
        if faults.is_empty() { "none".to_string() } else { faults.iter().map(|f| f.name()).collect::<Vec<_>>().join(",") },
        args.time_limit,
        concurrency,
    );
    if let Some(r) = args.rate {
        cmd += &format!(" --rate {r}");
    }
    if !partitions.is_empty() {
        let names: Vec<&str> = partitions.iter().map(|p| p.name()).collect();
        cmd += &format!(" --partition {}", names.join(","));
    }
    use crate::cmd::quote::shell_quote;
    for (k, v) in sel
        .opts()
        .iter()
        .chain(delay_opts.iter().map(|(k, v)| (k, v)))
    {
        cmd += &format!(" --opt {}", shell_quote(&format!("{k}={v}")));
    }
    if let Some(f) = &nodes_file {
        cmd += &format!(" --nodes-file {}", shell_quote(&f.to_string_lossy()));
    }
    let mut test: TestFile = match serde_json::from_value(workloads::describe(&sel)) {
        Ok(t) => t,
        Err(e) => {
            err!("shakedown test: test.json: the selection's description: {e}");
            return exit::INFRA;
        }
    };
    test.command = Some(cmd.clone());
    test.seed = Some(seed);
    test.nemesis = Some(faults.iter().map(|f| f.name().to_string()).collect());
    test.time_limit_s = Some(args.time_limit);
    test.interval_s = Some(args.interval);
    test.partitions = Some(partitions.iter().map(|p| p.name().to_string()).collect());
    test.recovery_s = Some(args.recovery);
    test.op_timeout_s = Some(args.op_timeout);
    test.concurrency = Some(concurrency as u64);
    test.rate = Some(args.rate);
    test.nodes = Some(
        prepared
            .nodes
            .iter()
            .map(|n| NodeEntry {
                name: n.name.clone(),
                ip: n.ip.to_string(),
            })
            .collect(),
    );
    test.local_cluster = Some(local);
    test.versions = Some(BTreeMap::from([
        ("shakedown".to_string(), json!(env!("CARGO_PKG_VERSION"))),
        (sel.system.name.to_string(), json!(system.version())),
    ]));
    test.started = Some(harness::store::timestamp(SystemTime::now()));
    if let Err(e) = run_dir.write_test_json(&test) {
        err!("shakedown test: {e}");
        return exit::INFRA;
    }
    out!("seed {seed}: {cmd}");
    out!("run: {}", run_dir.path.display());
    tracing::info!("run {} seed {seed}: {cmd}", run_dir.path.display());

    let spec = TestSpec {
        faults,
        interval,
        run: RunConfig {
            concurrency,
            time_limit,
            op_timeout,
            seed,
            rate: args.rate,
        },
        recovery,
        final_time: Duration::from_secs(30),
        leave_running: args.leave_running,
        partitions,
        delay,
        binaries,
    };
    let outcome = match sel.execute(prepared, &spec, &run_dir) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e}");
            err!("shakedown test: {e}");
            return match e {
                TestError::Usage(_) => exit::USAGE,
                TestError::Infra(_) => exit::INFRA,
            };
        }
    };
    for w in &outcome.warnings {
        err!("shakedown test: warning: {w}");
        tracing::warn!("{w}");
    }
    let s = &outcome.main;
    out!(
        "recorded {} operations: {} ok, {} fail, {} info{}",
        s.ok + s.fail
            + s.info
            + outcome.final_phase.ok
            + outcome.final_phase.fail
            + outcome.final_phase.info,
        s.ok + outcome.final_phase.ok,
        s.fail + outcome.final_phase.fail,
        s.info + outcome.final_phase.info,
        if outcome.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    let verdict = super::verdict::finish(&run_dir.path, super::verdict::Verb::Test);
    if let Some(h) = &outcome.heal_failed {
        err!("shakedown test: the final heal could not reach or heal every node; hosts may still be faulty (run `shakedown heal`):\n{h}");
        return exit::INFRA;
    }
    if outcome.interrupted {
        err!("shakedown test: interrupted; faults healed, the partial history is kept");
        return INTERRUPTED;
    }
    verdict
}

/// The control process's log, in the run's directory.
fn init_log(dir: &Path) -> Option<()> {
    let f = std::fs::File::create(dir.join("shakedown.log")).ok()?;
    tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(f))
        .with_ansi(false)
        .with_target(false)
        .try_init()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_per_node() {
        assert_eq!(concurrency("3n", 5), Ok(15));
        assert_eq!(concurrency("7", 5), Ok(7));
        assert!(concurrency("0", 5).is_err());
        assert!(concurrency("xn", 5).unwrap_err().contains("--concurrency"));
    }
}
