//! `shakedown test` from nodes to logs: the lifecycle Jepsen users know,
//! one method per phase:
//!
//! 1. [`prepare`]: connect, clock mode (clock faults refused on hosts that
//!    share this machine's clock and cannot fake it), preflight;
//! 2. `heal_leftovers`, `teardown_leftovers`: what an earlier run left;
//! 3. `set_up`: fault tools, ports, the system on every node, ready;
//! 4. `main_phase`: clients and the fault schedule on its own thread;
//! 5. `final_heal` (through [`HealGuard`]), 6. `recovery`, 7. `final_phase`
//!    (e.g. final reads), 8. `fetch_logs`, 9. `tear_down`.
//!
//! Checking and the report come after, from the stored run.
//!
//! Invariants: faults are journaled before they are applied; from the
//! first set-up step on, the final heal is owned by a [`HealGuard`]: the
//! normal path heals through the fault schedule (recorded in the history),
//! and any other way out (an error or a panic in a phase, a panicking fault
//! thread) heals every node too; every event is flushed as it is recorded.
//!
//! Generic over the [`Connector`]: SSH in a run, a
//! [`FakeCluster`](crate::fake::FakeCluster) in harness/tests/fake_lifecycle.rs.

use crate::companions::{self, Binaries, ControlFile};
use crate::control::{self, Connector, ControlError, NodeErrors, Remote, SshOptions};
use crate::doctor;
use crate::needs::{self, FaultNeeds, Need};
use crate::nemesis;
use crate::nodes::NodeAddr;
use crate::progress::Progress;
use crate::runner::{run_clients, Client, Generator, Recorder, RunConfig, RunStats, Workers};
use crate::schedule::{ClockMode, Fault, Nemesis, Targets};
use crate::signals;
use crate::store::RunDir;
use crate::system::{NodeInfo, System};
use std::fs::File;
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
    /// The faults' binaries on the control host (shakedown-lostfs,
    /// shakedown-netem), uploaded to every node when their fault is asked for.
    pub binaries: Binaries,
}

/// Every file this run uploads from the control host (the faults' binaries,
/// the system's), looked for before anything is set up anywhere: a missing
/// one is an infrastructure error naming it and what makes it.
pub fn check_control_host(
    faults: &[Fault],
    binaries: &Binaries,
    system: &dyn System,
) -> Result<(), TestError> {
    let mut files = binaries.for_faults(faults);
    files.extend(system.companions());
    files.extend(system.control_needs().iter().map(ControlFile::package));
    let missing = companions::missing(&files);
    if missing.is_empty() {
        return Ok(());
    }
    Err(TestError::Infra(format!(
        "preflight failed; nothing was set up:\n{}",
        missing.join("\n")
    )))
}

/// Connected nodes, checked and ready for a run.
pub struct Prepared<C: Connector = SshOptions> {
    addrs: Vec<NodeAddr>,
    connector: C,
    sessions: Vec<C::Node>,
    pub nodes: Vec<NodeInfo>,
    control: Ipv4Addr,
    clock: ClockMode,
}

/// Every node, or an infrastructure error naming each one that failed.
fn connect_every<C: Connector>(addrs: &[NodeAddr], c: &C) -> Result<Vec<C::Node>, TestError> {
    match control::connect_all(addrs, c) {
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
fn on_each<R: Remote + Send, T: Send>(
    sessions: &mut [R],
    f: impl Fn(usize, &mut R) -> Result<T, ControlError> + Sync,
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

/// Phase 1: connects, and refuses what these nodes cannot do before
/// anything starts.
pub fn prepare<C: Connector>(
    addrs: Vec<NodeAddr>,
    connector: C,
    faults: &[Fault],
    system: &dyn System,
) -> Result<Prepared<C>, TestError> {
    if addrs.is_empty() {
        return Err(TestError::Usage("the nodes file lists no nodes".into()));
    }
    let mut sessions = connect_every(&addrs, &connector)?;
    let mut nodes = Vec::new();
    for s in &sessions {
        let (ip, _) = connector.addresses(s);
        v4(ip, s.name())?;
        nodes.push(NodeInfo {
            name: s.name().into(),
            ip,
        });
    }
    let control = v4(connector.addresses(&sessions[0]).1, sessions[0].name())?;
    let clock = clock_mode(&mut sessions, &nodes, faults, system)?;
    preflight(&mut sessions, &nodes, faults, system, clock)?;
    Ok(Prepared {
        addrs,
        connector,
        sessions,
        nodes,
        control,
        clock,
    })
}

/// How clock faults move clocks on these nodes: `date -s` on real machines;
/// a faked clock on hosts that share this machine's kernel (same boot id),
/// where `date -s` would move the control host's clock and every test
/// host's. Refused where neither works.
fn clock_mode<R: Remote + Send>(
    sessions: &mut [R],
    nodes: &[NodeInfo],
    faults: &[Fault],
    system: &dyn System,
) -> Result<ClockMode, TestError> {
    if !faults.contains(&Fault::Clock) {
        return Ok(ClockMode::Date);
    }
    let ours = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let theirs = on_each(sessions, |_, n| {
        n.run(
            "cat /proc/sys/kernel/random/boot_id",
            Duration::from_secs(10),
        )
    })?;
    let shared: Vec<&str> = theirs
        .iter()
        .zip(nodes)
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
        return Ok(ClockMode::Faketime {
            lib: needs::faketime_lib(),
        });
    }
    if !shared.is_empty() {
        return Err(TestError::Usage(format!(
            "--nemesis clock: {} share this machine's clock and the other nodes do not; use either local test hosts or real machines",
            shared.join(", ")
        )));
    }
    Ok(ClockMode::Date)
}

/// Everything this run needs, on every node, before anything is set up. A
/// fault that cannot happen must not become a quiet "valid".
fn preflight<R: Remote + Send>(
    sessions: &mut [R],
    nodes: &[NodeInfo],
    faults: &[Fault],
    system: &dyn System,
    clock: ClockMode,
) -> Result<(), TestError> {
    let mut needs = node_needs(faults, system);
    if matches!(clock, ClockMode::Faketime { .. }) {
        needs.commands.extend(needs::faketime());
    }
    let failed: Vec<String> = control::in_parallel(sessions, |_, n| doctor::inspect(n, &needs))
        .into_iter()
        .zip(nodes)
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
    Ok(())
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
pub fn heal_all<C: Connector>(addrs: &[NodeAddr], connector: &C) -> Result<usize, NodeErrors> {
    let (mut nodes, mut failed) = control::connect_all(addrs, connector);
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

/// Owns a run's final heal. The normal path calls [`HealGuard::heal`] with
/// the fault schedule (the heal is verified and recorded in the history)
/// or [`HealGuard::nothing_to_heal`]; on any other way out (an error or a
/// panic in a phase, or in the heal itself) dropping the guard heals every
/// node with fresh sessions and says so.
struct HealGuard<C: Connector> {
    addrs: Vec<NodeAddr>,
    connector: C,
    done: bool,
}

impl<C: Connector> HealGuard<C> {
    fn new(addrs: Vec<NodeAddr>, connector: C) -> Self {
        HealGuard {
            addrs,
            connector,
            done: false,
        }
    }

    /// The final heal, through the fault schedule. Once done (even when it
    /// failed: it said so), the guard has nothing left to do.
    fn heal<W: std::io::Write>(
        &mut self,
        nem: &mut Nemesis<C::Node, W>,
    ) -> Result<(), crate::schedule::FaultError> {
        let r = nem.heal();
        self.done = true;
        r
    }

    /// No fault was asked for: nothing of this run to undo.
    fn nothing_to_heal(&mut self) {
        self.done = true;
    }
}

impl<C: Connector> Drop for HealGuard<C> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let why = if std::thread::panicking() {
            "a panic during the run"
        } else {
            "the run stopped early"
        };
        say_err!("shakedown: {why}; healing every node");
        if let Err(e) = heal_all(&self.addrs, &self.connector) {
            say_err!("shakedown: heal after {why} failed:\n{e}\nrun `shakedown heal`");
        }
    }
}

/// The fault schedule's thread. Dropped without [`FaultThread::join`]
/// (a panic in the main phase), it stops the schedule and waits for it, so
/// no fault is applied after the guard's heal.
struct FaultThread<R: Remote + Send + 'static> {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Nemesis<R, File>>>,
}

impl<R: Remote + Send + 'static> FaultThread<R> {
    fn start(
        mut nem: Nemesis<R, File>,
        faults: Vec<Fault>,
        interval: Duration,
        deadline: Instant,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            nem.run(&faults, interval, deadline, &s);
            nem
        });
        FaultThread {
            stop,
            handle: Some(handle),
        }
    }

    /// Ends the schedule (it ends with the clients) and takes it back; an
    /// error when its thread panicked.
    fn join(mut self) -> std::thread::Result<Nemesis<R, File>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join(),
            None => Err(Box::new("the fault thread was already joined")),
        }
    }
}

impl<R: Remote + Send + 'static> Drop for FaultThread<R> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What the main phase hands on: the clients' runtime and workers (the
/// final phase goes on with them), the history, the fault schedule.
struct MainPhase<R: Remote + Send + 'static> {
    runtime: tokio::runtime::Runtime,
    workers: Workers,
    watcher: tokio::task::JoinHandle<()>,
    recorder: Arc<Recorder<File>>,
    targets: Targets,
    stats: std::io::Result<RunStats>,
    nemesis: std::thread::Result<Nemesis<R, File>>,
}

impl<C: Connector> Prepared<C> {
    /// The whole run, phase by phase (see the module's documentation).
    /// `run_dir` already holds test.json.
    pub fn run<W: Workload>(
        mut self,
        system: Arc<dyn System>,
        workload: Arc<W>,
        spec: &TestSpec,
        run_dir: &RunDir,
    ) -> Result<Outcome, TestError> {
        signals::install();
        let mut outcome = Outcome::default();
        check_control_host(&spec.faults, &spec.binaries, system.as_ref())?;
        self.heal_leftovers()?;
        // From here on every way out heals: the guard owns the final heal.
        let mut guard = HealGuard::new(self.addrs.clone(), self.connector.clone());
        self.teardown_leftovers(system.as_ref())?;
        self.set_up(system.as_ref(), spec, run_dir, &mut outcome)?;
        let mut main = self.main_phase(&system, &workload, spec, run_dir)?;
        self.final_heal(&mut guard, &mut main, spec, run_dir, &mut outcome);
        let main_ok = match std::mem::replace(&mut main.stats, Ok(RunStats::default())) {
            Ok(s) => {
                outcome.main = s;
                true
            }
            Err(e) => {
                outcome
                    .warnings
                    .push(format!("the history could not be written: {e}"));
                false
            }
        };
        outcome.interrupted = signals::interrupted();
        if !outcome.interrupted && main_ok {
            recovery(spec.recovery);
            if workload.has_final_phase() && !signals::interrupted() {
                self.final_phase(&workload, &mut main, spec, &mut outcome);
            }
            outcome.interrupted = signals::interrupted();
        }
        main.watcher.abort();
        drop(main.runtime);
        if signals::count() >= 2 {
            tracing::warn!("second interrupt: not fetching logs");
            outcome
                .warnings
                .push("logs were not fetched (interrupted twice)".into());
        } else {
            self.fetch_logs(system.as_ref(), run_dir, &mut outcome);
        }
        self.tear_down(system.as_ref(), spec, &mut outcome);
        Ok(outcome)
    }

    /// Phase 2a: heals what an earlier run (or a crash) left on the nodes.
    fn heal_leftovers(&mut self) -> Result<(), TestError> {
        control::all_ok(nemesis::heal(&mut self.sessions)).map_err(|e| {
            TestError::Infra(format!("could not heal what an earlier run left:\n{e}"))
        })?;
        Ok(())
    }

    /// Phase 2b: unmounts an earlier run's lost-writes layers and tears
    /// the system down on every node.
    fn teardown_leftovers(&mut self, system: &dyn System) -> Result<(), TestError> {
        on_each(&mut self.sessions, |_, n| {
            n.run(nemesis::LOSTFS_UNMOUNT, Duration::from_secs(30))
        })?;
        on_each(&mut self.sessions, |i, n| system.teardown(n, i))?;
        Ok(())
    }

    /// Phase 3: the faults' tools, the ports, then the system on every node
    /// at once until each serves. When the system cannot be set up, its
    /// logs are fetched and it is torn down (unless left running).
    fn set_up(
        &mut self,
        system: &dyn System,
        spec: &TestSpec,
        run_dir: &RunDir,
        outcome: &mut Outcome,
    ) -> Result<(), TestError> {
        tracing::info!("setting up {} on {} nodes", system.name(), self.nodes.len());
        self.install_fault_tools(system, spec)?;
        self.check_ports(system)?;
        let nodes = self.nodes.clone();
        let setup = on_each(&mut self.sessions, |i, n| system.setup(n, i, &nodes))
            .and_then(|_| on_each(&mut self.sessions, |i, n| system.await_ready(n, i, &nodes)));
        if let Err(e) = setup {
            self.fetch_logs(system, run_dir, outcome);
            if !spec.leave_running {
                let _ = on_each(&mut self.sessions, |i, n| system.teardown(n, i));
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
        Ok(())
    }

    /// The faked clock (or none) for daemons started from here on, and the
    /// node-side tools of the lost-writes and delay faults.
    fn install_fault_tools(
        &mut self,
        system: &dyn System,
        spec: &TestSpec,
    ) -> Result<(), TestError> {
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
            let local = &spec.binaries.lostfs;
            let layer = crate::daemon::Daemon::new("lostfs");
            let d = system.daemon();
            let mount = nemesis::lostfs_mount_script(&d.name, &format!("{}/data", d.dir()));
            on_each(&mut self.sessions, |_, n| {
                layer.install(
                    n,
                    local,
                    "shakedown-lostfs",
                    "it is built with shakedown (cargo build --workspace --bins)",
                )?;
                n.run(&mount, Duration::from_secs(10))
            })?;
        }
        if spec.faults.contains(&Fault::Delay) {
            let local = &spec.binaries.netem;
            let netem = crate::daemon::Daemon::new("netem");
            on_each(&mut self.sessions, |_, n| {
                netem.install(
                    n,
                    local,
                    "shakedown-netem",
                    "it is built with shakedown (cargo build)",
                )
            })?;
        }
        Ok(())
    }

    /// The system's ports must be free once leftovers are torn down.
    fn check_ports(&mut self, system: &dyn System) -> Result<(), TestError> {
        let ports = system.ports();
        if ports.is_empty() {
            return Ok(());
        }
        let busy: Vec<String> =
            control::in_parallel(&mut self.sessions, |_, n| doctor::ports_free(n, &ports))
                .into_iter()
                .zip(self.nodes.iter())
                .filter_map(|(f, n)| match f {
                    Some(f) if f.ok => None,
                    Some(f) => Some(format!("{}: {}", n.name, f.detail)),
                    None => Some(format!("{}: the port check failed", n.name)),
                })
                .collect();
        if busy.is_empty() {
            Ok(())
        } else {
            Err(TestError::Infra(format!(
                "preflight failed; nothing was started:\n{}",
                busy.join("\n")
            )))
        }
    }

    /// A fault schedule on `sessions`, writing to this run's journal and
    /// history.
    fn schedule(
        &self,
        sessions: Vec<C::Node>,
        targets: Targets,
        run_dir: &RunDir,
        recorder: Arc<Recorder<File>>,
        seed: u64,
    ) -> Nemesis<C::Node, File> {
        Nemesis::new(sessions, targets, run_dir.journal(), recorder, seed)
    }

    /// Phase 4: the clients until the time limit, and the fault schedule
    /// on its own thread and sessions (it ends with the clients; the last
    /// fault stays in force for the final heal). A signal stops both.
    fn main_phase<W: Workload>(
        &mut self,
        system: &Arc<dyn System>,
        workload: &Arc<W>,
        spec: &TestSpec,
        run_dir: &RunDir,
    ) -> Result<MainPhase<C::Node>, TestError> {
        let nodes = Arc::new(self.nodes.clone());
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
            connect_every(&self.addrs, &self.connector)?
        };
        let targets = Targets {
            nodes: nodes.clone(),
            control: self.control,
            system: system.clone(),
            partitions: spec.partitions.clone(),
            clock: self.clock,
            delay: spec.delay,
        };
        let mut nem = self.schedule(
            nemesis_nodes,
            targets.clone(),
            run_dir,
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
        nem.watch_clients(workers.counters.clone(), workers.epoch.clone());

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

        let deadline = Instant::now() + spec.run.time_limit;
        let faults = FaultThread::start(nem, spec.faults.clone(), spec.interval, deadline, stop);
        let progress = Progress::start(spec.run.time_limit, workers.counters.clone(), active);
        let stats = {
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
        let nemesis = faults.join();
        Ok(MainPhase {
            runtime,
            workers,
            watcher,
            recorder,
            targets,
            stats,
            nemesis,
        })
    }

    /// Phase 5: the final heal, whatever happened in the main phase:
    /// through the fault schedule, or through a new one on fresh sessions
    /// when its thread panicked. A heal that fails is `heal_failed`.
    fn final_heal(
        &self,
        guard: &mut HealGuard<C>,
        main: &mut MainPhase<C::Node>,
        spec: &TestSpec,
        run_dir: &RunDir,
        outcome: &mut Outcome,
    ) {
        if spec.faults.is_empty() {
            guard.nothing_to_heal();
            return;
        }
        let taken = std::mem::replace(&mut main.nemesis, Err(Box::new("taken")));
        let mut nem = match taken {
            Ok(n) => n,
            Err(_) => {
                tracing::error!("the fault thread panicked; healing with new sessions");
                let (sessions, unreachable) = control::connect_all(&self.addrs, &self.connector);
                if !unreachable.is_empty() {
                    outcome.heal_failed = Some(NodeErrors(unreachable).to_string());
                }
                self.schedule(
                    sessions,
                    main.targets.clone(),
                    run_dir,
                    main.recorder.clone(),
                    spec.run.seed,
                )
            }
        };
        if let Err(e) = guard.heal(&mut nem) {
            outcome.heal_failed = Some(match outcome.heal_failed.take() {
                Some(unreachable) => format!("{unreachable}\n{e}"),
                None => e.to_string(),
            });
        }
    }

    /// Phase 7: the workload's final operations (e.g. final reads), with
    /// the main phase's workers, after the heal and the recovery wait.
    fn final_phase<W: Workload>(
        &self,
        workload: &Arc<W>,
        main: &mut MainPhase<C::Node>,
        spec: &TestSpec,
        outcome: &mut Outcome,
    ) {
        tracing::info!("final phase");
        let cfg = RunConfig {
            time_limit: spec.final_time,
            rate: None,
            ..spec.run.clone()
        };
        let nodes = Arc::new(self.nodes.clone());
        let (w, n) = (workload.clone(), nodes);
        let wg = workload.clone();
        let r = main.runtime.block_on(run_clients(
            &cfg,
            &mut main.workers,
            move |slot| w.client(slot, &n),
            move |slot| FinalGen(wg.final_generator(slot)),
            main.recorder.clone(),
        ));
        match r {
            Ok(s) => outcome.final_phase = s,
            Err(e) => outcome
                .warnings
                .push(format!("the history could not be written: {e}")),
        }
    }

    /// Phase 9: unmounts the lost-writes layers and tears the system down
    /// (unless it is to be left running); a failure is a warning.
    fn tear_down(&mut self, system: &dyn System, spec: &TestSpec, outcome: &mut Outcome) {
        if spec.leave_running {
            tracing::info!("leaving {} running (--leave-running)", system.name());
            return;
        }
        if let Err(e) = on_each(&mut self.sessions, |_, n| {
            n.run(nemesis::LOSTFS_UNMOUNT, Duration::from_secs(30))
        })
        .and_then(|_| on_each(&mut self.sessions, |i, n| system.teardown(n, i)))
        {
            outcome.warnings.push(format!("teardown: {e}"));
        }
    }

    /// Phase 8: the system's log files from every node into the run's
    /// nodes/<node>/; what cannot be fetched is a warning.
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

/// Phase 6: time for the system to recover after the final heal (cut
/// short by a signal).
fn recovery(wait: Duration) {
    let until = Instant::now() + wait;
    while Instant::now() < until && !signals::interrupted() {
        std::thread::sleep(Duration::from_millis(20));
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

    fn observe(&mut self, epoch: u64) {
        if let Some(g) = self.0.as_mut() {
            g.observe(epoch);
        }
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
