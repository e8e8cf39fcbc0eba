//! `shakedown test` from nodes to logs: the lifecycle Jepsen users know.
//!
//! connect -> preflight (clock faults refused on shared-clock hosts) ->
//! heal leftovers, wipe, set up the system on every node, wait until ready
//! -> main phase (clients + fault schedule) -> final heal -> recovery wait
//! -> final phase (e.g. final reads) -> fetch logs -> tear down.
//! Checking and the report come after, from the stored run.
//!
//! Invariants: faults are journaled before they are applied; the final heal
//! runs whatever happened (signals, errors, a panicking fault thread, and a
//! panic in this function via [`HealGuard`]); every event is flushed as it
//! is recorded.

use crate::control::{self, ControlError, NodeErrors, Remote, SshNode, SshOptions};
use crate::doctor;
use crate::needs::{self, Need};
use crate::nemesis;
use crate::nodes::NodeAddr;
use crate::progress::Progress;
use crate::runner::{run_clients, Client, Generator, Recorder, RunConfig, RunStats, Workers};
use crate::schedule::{ClockMode, Fault, Nemesis, Targets};
use crate::signals;
use crate::store::RunDir;
use crate::system::{NodeInfo, System};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The clients and operations of a workload.
pub trait Workload: Send + Sync + 'static {
    type Client: Client + 'static;
    type Gen: Generator + 'static;

    /// A client for worker `slot` (called again after each info).
    fn client(&self, slot: usize, nodes: &[NodeInfo]) -> Self::Client;

    /// The main phase's operations for worker `slot`.
    fn generator(&self, slot: usize) -> Self::Gen;

    /// Whether there is a final phase after the final heal.
    fn has_final_phase(&self) -> bool {
        false
    }

    /// Operations of the final phase (e.g. a final read) for worker `slot`.
    fn final_generator(&self, _slot: usize) -> Option<Self::Gen> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// Bad flags for these nodes (exit 3).
    #[error("{0}")]
    Usage(String),
    /// Nodes, SSH, set-up (exit 4).
    #[error("{0}")]
    Infra(String),
}

impl From<ControlError> for TestError {
    fn from(e: ControlError) -> Self {
        TestError::Infra(e.to_string())
    }
}

pub struct TestSpec {
    pub faults: Vec<Fault>,
    /// Between a fault and its heal, and between a heal and the next fault.
    pub interval: Duration,
    pub run: RunConfig,
    /// After the final heal, before the final phase.
    pub recovery: Duration,
    /// Time limit of the final phase.
    pub final_time: Duration,
    pub leave_running: bool,
    /// Partition strategies to draw from (empty: all).
    pub partitions: Vec<crate::nemesis::Partition>,
    /// What the delay fault does.
    pub delay: crate::nemesis::DelaySpec,
    /// The control host's shakedown-netem binary, uploaded to every node
    /// when the delay fault is asked for.
    pub netem_binary: Option<std::path::PathBuf>,
    /// The control host's shakedown-lostfs binary, uploaded to every node
    /// when the lost-writes fault is asked for.
    pub lostfs_binary: Option<std::path::PathBuf>,
}

/// Connected nodes, checked and ready for a run.
pub struct Prepared {
    addrs: Vec<NodeAddr>,
    ssh: SshOptions,
    sessions: Vec<SshNode>,
    pub nodes: Vec<NodeInfo>,
    control: Ipv4Addr,
    clock: ClockMode,
}

/// Every node, or an infrastructure error naming each one that failed.
fn connect_every(addrs: &[NodeAddr], ssh: &SshOptions) -> Result<Vec<SshNode>, TestError> {
    match control::connect_all(addrs, ssh) {
        (nodes, failed) if failed.is_empty() => Ok(nodes),
        (_, failed) => Err(TestError::Infra(NodeErrors(failed).to_string())),
    }
}

fn v4(ip: IpAddr, node: &str) -> Result<Ipv4Addr, TestError> {
    match ip {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(TestError::Usage(format!(
            "{node}: reached over IPv6; partitions support IPv4 nodes only"
        ))),
    }
}

/// Runs `f` on every session at once; every node's answer, or an error
/// naming each node that failed.
fn on_each<T: Send>(
    sessions: &mut [SshNode],
    f: impl Fn(usize, &mut SshNode) -> Result<T, ControlError> + Sync,
) -> Result<Vec<T>, TestError> {
    control::all_ok(control::on_nodes(sessions, f)).map_err(|e| TestError::Infra(e.to_string()))
}

/// What `faults` and `system` need of every node (see [`crate::needs`]).
pub fn node_needs(faults: &[Fault], system: &dyn System) -> doctor::Needs {
    let mut commands: Vec<Need> = needs::NODE.to_vec();
    for f in faults {
        commands.extend_from_slice(f.needs());
    }
    commands.extend(system.node_needs());
    doctor::Needs {
        commands,
        iptables: faults
            .iter()
            .any(|f| f.needs() == needs::IPTABLES || f.needs() == needs::DELAY),
        ports: Vec::new(),
        clock_offset: false,
    }
}

/// Connects, and refuses what these nodes cannot do before anything starts.
pub fn prepare(
    addrs: Vec<NodeAddr>,
    ssh: SshOptions,
    faults: &[Fault],
    system: &dyn System,
) -> Result<Prepared, TestError> {
    if addrs.is_empty() {
        return Err(TestError::Usage("the nodes file lists no nodes".into()));
    }
    let mut sessions = connect_every(&addrs, &ssh)?;
    let mut nodes = Vec::new();
    for s in &sessions {
        v4(s.ip(), s.name())?;
        nodes.push(NodeInfo {
            name: s.name().into(),
            ip: s.ip(),
        });
    }
    let control = v4(sessions[0].control_ip(), sessions[0].name())?;
    let mut clock = ClockMode::Date;
    if faults.contains(&Fault::Clock) {
        // Same kernel boot id: the node shares this machine's clock, and
        // `date -s` would move the control host's (and every test host's).
        // There, clock faults move a faked clock (libfaketime) of the
        // system's daemons instead.
        let ours = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let theirs = on_each(&mut sessions, |_, n| {
            n.run(
                "cat /proc/sys/kernel/random/boot_id",
                Duration::from_secs(10),
            )
        })?;
        let shared: Vec<&str> = theirs
            .iter()
            .zip(&nodes)
            .filter(|(b, _)| b.trim() == ours.trim())
            .map(|(_, n)| n.name.as_str())
            .collect();
        if shared.len() == nodes.len() {
            if !system.clock_via_libc() {
                return Err(TestError::Usage(format!(
                    "--nemesis clock: these are local test hosts (they share this machine's clock), where clock faults \
                     move a clock faked with libfaketime in the system's daemons; {} reads the time without libc \
                     (a Go binary reads the vDSO directly), so its clock cannot be moved here; clock faults on {} need real machines",
                    system.name(),
                    system.name()
                )));
            }
            clock = ClockMode::Faketime {
                lib: needs::faketime_lib(),
            };
        } else if !shared.is_empty() {
            return Err(TestError::Usage(format!(
                "--nemesis clock: {} share this machine's clock and the other nodes do not; use either local test hosts or real machines",
                shared.join(", ")
            )));
        }
    }
    // Preflight: everything this run needs, on every node, before anything
    // is set up. A fault that cannot happen must not become a quiet "valid".
    let mut needs = node_needs(faults, system);
    if matches!(clock, ClockMode::Faketime { .. }) {
        needs.commands.extend(needs::faketime());
    }
    let failed: Vec<String> =
        control::in_parallel(&mut sessions, |_, n| doctor::inspect(n, &needs))
            .into_iter()
            .zip(&nodes)
            .filter_map(|(r, n)| match r {
                Some(r) if r.ok() => None,
                Some(r) => Some(r.line()),
                None => Some(format!("{}  FAIL  the preflight itself failed", n.name)),
            })
            .collect();
    if !failed.is_empty() {
        return Err(TestError::Infra(format!(
            "preflight failed; nothing was started:\n{}",
            failed.join("\n")
        )));
    }
    Ok(Prepared {
        addrs,
        ssh,
        sessions,
        nodes,
        control,
        clock,
    })
}

/// What happened.
#[derive(Debug, Default)]
pub struct Outcome {
    pub main: RunStats,
    pub final_phase: RunStats,
    pub interrupted: bool,
    /// Things that went wrong after the run began but did not lose it:
    /// a log that could not be fetched, a teardown that failed.
    pub warnings: Vec<String>,
    /// The final heal failed: hosts may be left broken (exit 4).
    pub heal_failed: Option<String>,
}

/// Heals every node with fresh sessions: Ok when each one was reached and
/// healed (verified), else an error naming each node that was not.
pub fn heal_all(addrs: &[NodeAddr], ssh: &SshOptions) -> Result<usize, NodeErrors> {
    let (mut nodes, mut failed) = control::connect_all(addrs, ssh);
    // The run is over: its lost-writes layers go too (lazily: a daemon
    // still running there keeps what it has open).
    let healed = control::all_ok(nemesis::heal(&mut nodes)).and_then(|_| {
        control::all_ok(control::on_nodes(&mut nodes, |_, n| {
            n.run(nemesis::LOSTFS_UNMOUNT, Duration::from_secs(30))
        }))
    });
    match healed {
        Ok(_) if failed.is_empty() => Ok(nodes.len()),
        Ok(_) => Err(NodeErrors(failed)),
        Err(e) => {
            failed.extend(e.0);
            Err(NodeErrors(failed))
        }
    }
}

/// Heals with fresh sessions if dropped while panicking.
struct HealGuard {
    addrs: Vec<NodeAddr>,
    ssh: SshOptions,
}

impl Drop for HealGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            say_err!("shakedown: a panic during the run; healing every node");
            if let Err(e) = heal_all(&self.addrs, &self.ssh) {
                say_err!("shakedown: heal after panic failed:\n{e}\nrun `shakedown heal`");
            }
        }
    }
}

impl Prepared {
    /// The whole run. `run_dir` already holds test.json.
    pub fn run<W: Workload>(
        mut self,
        system: Arc<dyn System>,
        workload: Arc<W>,
        spec: &TestSpec,
        run_dir: &RunDir,
    ) -> Result<Outcome, TestError> {
        signals::install();
        let _guard = HealGuard {
            addrs: self.addrs.clone(),
            ssh: self.ssh.clone(),
        };
        let mut outcome = Outcome::default();
        let nodes = Arc::new(self.nodes.clone());

        // Leftovers of an earlier run first: heal, wipe; then set up.
        control::all_ok(nemesis::heal(&mut self.sessions)).map_err(|e| {
            TestError::Infra(format!("could not heal what an earlier run left:\n{e}"))
        })?;
        tracing::info!("setting up {} on {} nodes", system.name(), nodes.len());
        let sys = system.clone();
        on_each(&mut self.sessions, |_, n| {
            n.run(nemesis::LOSTFS_UNMOUNT, Duration::from_secs(30))
        })?;
        on_each(&mut self.sessions, |i, n| sys.teardown(n, i))?;
        // Daemons started from here on run under the faked clock, or not.
        let clock_script = match self.clock {
            ClockMode::Faketime { lib } => nemesis::faketime_setup_script(lib),
            ClockMode::Date => nemesis::FAKETIME_OFF.to_string(),
        };
        on_each(&mut self.sessions, |_, n| {
            n.run(&clock_script, Duration::from_secs(10))
        })?;
        if spec.faults.contains(&Fault::LostWrites) {
            // The data directory on the FUSE layer that can lose what was
            // not synced, before the system writes anything there.
            let local = spec.lostfs_binary.clone().ok_or_else(|| {
                TestError::Infra(
                    "the lost-writes fault needs shakedown-lostfs beside shakedown (cargo build --workspace)".into(),
                )
            })?;
            let layer = crate::daemon::Daemon::new("lostfs");
            let d = system.daemon();
            let mount = nemesis::lostfs_mount_script(&d.name, &format!("{}/data", d.dir()));
            on_each(&mut self.sessions, |_, n| {
                layer.install(
                    n,
                    &local,
                    "shakedown-lostfs",
                    "it is built with shakedown (cargo build --workspace)",
                )?;
                n.run(&mount, Duration::from_secs(10))
            })?;
        }
        if spec.faults.contains(&Fault::Delay) {
            let local = spec.netem_binary.clone().ok_or_else(|| {
                TestError::Infra("the delay fault needs shakedown-netem beside shakedown".into())
            })?;
            let netem = crate::daemon::Daemon::new("netem");
            on_each(&mut self.sessions, |_, n| {
                netem.install(
                    n,
                    &local,
                    "shakedown-netem",
                    "it is built with shakedown (cargo build)",
                )
            })?;
        }
        let ports = system.ports();
        if !ports.is_empty() {
            let busy: Vec<String> =
                control::in_parallel(&mut self.sessions, |_, n| doctor::ports_free(n, &ports))
                    .into_iter()
                    .zip(nodes.iter())
                    .filter_map(|(f, n)| match f {
                        Some(f) if f.ok => None,
                        Some(f) => Some(format!("{}: {}", n.name, f.detail)),
                        None => Some(format!("{}: the port check failed", n.name)),
                    })
                    .collect();
            if !busy.is_empty() {
                return Err(TestError::Infra(format!(
                    "preflight failed; nothing was started:\n{}",
                    busy.join("\n")
                )));
            }
        }
        let setup = on_each(&mut self.sessions, |i, n| sys.setup(n, i, &nodes))
            .and_then(|_| on_each(&mut self.sessions, |i, n| sys.await_ready(n, i, &nodes)));
        if let Err(e) = setup {
            self.fetch_logs(system.as_ref(), run_dir, &mut outcome);
            if !spec.leave_running {
                let _ = on_each(&mut self.sessions, |i, n| sys.teardown(n, i));
            }
            return Err(TestError::Infra(format!(
                "could not set up {}: {e}",
                system.name()
            )));
        }
        tracing::info!("{} is ready", system.name());
        if spec.faults.contains(&Fault::LostWrites) {
            // What set-up wrote counts as on disk (as on a machine that ran
            // a while): the faults lose what the run writes, not the install.
            let sock = format!("/run/shakedown-lostfs-{}.sock", system.daemon().name);
            on_each(&mut self.sessions, |_, n| {
                n.run(
                    &format!("{}/shakedown-lostfs ctl {sock} flush", nemesis::LOSTFS_DIR),
                    Duration::from_secs(30),
                )
            })?;
        }

        let history = run_dir
            .history()
            .map_err(|e| TestError::Infra(e.to_string()))?;
        let start = Instant::now();
        // The history's time 0 on the wall clock, to find node log lines.
        let origin_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if let Err(e) = run_dir.set_test_field("history_origin_unix_ms", origin_ms.into()) {
            tracing::warn!("{e}");
        }
        let recorder = Arc::new(Recorder::new(history, start));
        let nemesis_nodes = if spec.faults.is_empty() {
            Vec::new()
        } else {
            connect_every(&self.addrs, &self.ssh)?
        };
        let targets = Targets {
            nodes: nodes.clone(),
            control: self.control,
            system: system.clone(),
            partitions: spec.partitions.clone(),
            clock: self.clock,
            delay: spec.delay,
        };
        let nem = Nemesis::new(
            nemesis_nodes,
            targets.clone(),
            run_dir.journal(),
            recorder.clone(),
            spec.run.seed,
        );
        let active = nem.active();

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| TestError::Infra(format!("cannot start the async runtime: {e}")))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Workers::new(spec.run.concurrency, stop_rx);

        // A signal stops the clients and the fault schedule at once.
        let watcher = {
            let stop = stop.clone();
            runtime.spawn(async move {
                loop {
                    if signals::interrupted() {
                        stop.store(true, Ordering::Relaxed);
                        let _ = stop_tx.send(true);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };

        // Main phase.
        let deadline = Instant::now() + spec.run.time_limit;
        let faults = spec.faults.clone();
        let interval = spec.interval;
        let stop2 = stop.clone();
        let nemesis_thread = std::thread::spawn(move || {
            let mut nem = nem;
            nem.run(&faults, interval, deadline, &stop2);
            nem
        });
        let progress = Progress::start(
            spec.run.time_limit,
            workers.counters.clone(),
            active.clone(),
        );
        let main = {
            let (w, n) = (workload.clone(), nodes.clone());
            let wg = workload.clone();
            runtime.block_on(run_clients(
                &spec.run,
                &mut workers,
                move |slot| w.client(slot, &n),
                move |slot| wg.generator(slot),
                recorder.clone(),
            ))
        };
        drop(progress);
        stop.store(true, Ordering::Relaxed); // the schedule ends with the clients
        let nem = nemesis_thread.join();

        // Final heal: always.
        let mut nem = match nem {
            Ok(n) => n,
            Err(_) => {
                tracing::error!("the fault thread panicked; healing with new sessions");
                let (sessions, unreachable) = control::connect_all(&self.addrs, &self.ssh);
                if !unreachable.is_empty() {
                    outcome.heal_failed = Some(NodeErrors(unreachable).to_string());
                }
                Nemesis::new(
                    sessions,
                    targets,
                    run_dir.journal(),
                    recorder.clone(),
                    spec.run.seed,
                )
            }
        };
        if !spec.faults.is_empty() {
            if let Err(e) = nem.heal() {
                outcome.heal_failed = Some(match outcome.heal_failed.take() {
                    Some(unreachable) => format!("{unreachable}\n{e}"),
                    None => e,
                });
            }
        }
        let main_ok = main.is_ok();
        match main {
            Ok(s) => outcome.main = s,
            Err(e) => {
                outcome
                    .warnings
                    .push(format!("the history could not be written: {e}"));
            }
        }
        outcome.interrupted = signals::interrupted();

        // Recovery, then the final phase.
        if !outcome.interrupted && main_ok {
            let until = Instant::now() + spec.recovery;
            while Instant::now() < until && !signals::interrupted() {
                std::thread::sleep(Duration::from_millis(20));
            }
            if workload.has_final_phase() && !signals::interrupted() {
                tracing::info!("final phase");
                let cfg = RunConfig {
                    time_limit: spec.final_time,
                    rate: None,
                    ..spec.run.clone()
                };
                let (w, n) = (workload.clone(), nodes.clone());
                let wg = workload.clone();
                let r = runtime.block_on(run_clients(
                    &cfg,
                    &mut workers,
                    move |slot| w.client(slot, &n),
                    move |slot| FinalGen(wg.final_generator(slot)),
                    recorder.clone(),
                ));
                match r {
                    Ok(s) => outcome.final_phase = s,
                    Err(e) => outcome
                        .warnings
                        .push(format!("the history could not be written: {e}")),
                }
            }
            outcome.interrupted = signals::interrupted();
        }
        watcher.abort();
        drop(runtime);

        if signals::count() >= 2 {
            tracing::warn!("second interrupt: not fetching logs");
            outcome
                .warnings
                .push("logs were not fetched (interrupted twice)".into());
        } else {
            self.fetch_logs(system.as_ref(), run_dir, &mut outcome);
        }
        if spec.leave_running {
            tracing::info!("leaving {} running (--leave-running)", system.name());
        } else {
            let sys = system.clone();
            if let Err(e) = on_each(&mut self.sessions, |_, n| {
                n.run(nemesis::LOSTFS_UNMOUNT, Duration::from_secs(30))
            })
            .and_then(|_| on_each(&mut self.sessions, |i, n| sys.teardown(n, i)))
            {
                outcome.warnings.push(format!("teardown: {e}"));
            }
        }
        Ok(outcome)
    }

    fn fetch_logs(&mut self, system: &dyn System, run_dir: &RunDir, outcome: &mut Outcome) {
        let files = system.log_files();
        let dirs: Vec<_> = self
            .nodes
            .iter()
            .map(|n| run_dir.node_dir(&n.name))
            .collect();
        let r = on_each(&mut self.sessions, |i, n| {
            let mut missing = Vec::new();
            for f in &files {
                let Ok(dir) = &dirs[i] else { continue };
                let name = log_name(f);
                match n.download(f) {
                    Ok(data) => {
                        if let Err(e) = std::fs::write(dir.join(&name), data) {
                            missing.push(format!("{}: {f}: {e}", n.name()));
                        }
                    }
                    Err(e) => missing.push(e.to_string()),
                }
            }
            Ok(missing)
        });
        match r {
            Ok(m) => outcome.warnings.extend(m.into_iter().flatten()),
            Err(e) => outcome.warnings.push(e.to_string()),
        }
    }
}

/// A workload's final generator, or nothing.
struct FinalGen<G>(Option<G>);

impl<G: Generator> Generator for FinalGen<G> {
    fn next(&mut self, rng: &mut rand_chacha::ChaCha8Rng) -> Option<crate::runner::Op> {
        self.0.as_mut()?.next(rng)
    }

    fn must_finish(&self) -> bool {
        self.0.as_ref().is_some_and(|g| g.must_finish())
    }
}

/// The local name of a node's log file: a daemon's `/opt/shakedown/<name>/log`
/// is `<name>.log` (a system may have several daemons), any other file keeps
/// its name.
fn log_name(path: &str) -> String {
    let p = Path::new(path);
    let file = p
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "log".into());
    match p.parent().and_then(Path::file_name) {
        Some(dir) if file == "log" => format!("{}.log", dir.to_string_lossy()),
        _ => file,
    }
}

#[cfg(test)]
mod log_name_tests {
    #[test]
    fn daemons_logs_are_named_by_daemon() {
        assert_eq!(super::log_name("/opt/shakedown/etcd/log"), "etcd.log");
        assert_eq!(
            super::log_name("/opt/shakedown/redis-sentinel/log"),
            "redis-sentinel.log"
        );
        assert_eq!(
            super::log_name("/var/log/zookeeper/zookeeper.log"),
            "zookeeper.log"
        );
    }
}
