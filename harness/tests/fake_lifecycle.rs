//! The lifecycle's phases on fake nodes (harness::fake): their order, and
//! the final heal on every way out (a phase that fails, a client that
//! panics, a panic in a phase). No root, no network. tests/run.rs runs the
//! same lifecycle on real local hosts.

use harness::control::ControlError;
use harness::daemon::Daemon;
use harness::fake::{Action, Entry, FakeCluster};
use harness::lifecycle::{self, Outcome, TestError, TestSpec, Workload};
use harness::needs::Need;
use harness::nemesis;
use harness::runner::{Client, Completion, Generator, Op, RunConfig};
use harness::schedule::Fault;
use harness::store::RunDir;
use harness::system::{NodeInfo, Noop, System};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Clients that mark the fake cluster's log with their operation's name
/// ("main" or "final"), three operations per worker and phase.
struct Marks {
    cluster: FakeCluster,
    panic_client: bool,
    panic_generator: bool,
}

struct MarkClient {
    cluster: FakeCluster,
    panic: bool,
}

impl Client for MarkClient {
    fn invoke(&mut self, op: &Op) -> impl std::future::Future<Output = Completion> + Send {
        let (cluster, f, panic) = (self.cluster.clone(), op.f.clone(), self.panic);
        async move {
            cluster.mark("client", &f);
            if panic {
                panic!("a client panics");
            }
            Completion::Ok(Value::Null)
        }
    }
}

struct Three {
    f: &'static str,
    left: usize,
}

impl Generator for Three {
    fn next(&mut self, _: &mut rand_chacha::ChaCha8Rng) -> Option<Op> {
        self.left = self.left.checked_sub(1)?;
        Some(Op::new(self.f, None, Value::Null))
    }
}

impl Workload for Marks {
    type Client = MarkClient;
    type Gen = Three;

    fn client(&self, _: usize, _: &[NodeInfo]) -> MarkClient {
        MarkClient {
            cluster: self.cluster.clone(),
            panic: self.panic_client,
        }
    }

    fn generator(&self, _: usize) -> Three {
        // A fault in force first, so that the heal has work to do.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self
            .cluster
            .log()
            .iter()
            .any(|e| matches!(&e.action, Action::Exec(c) if is_fault(c)))
        {
            assert!(std::time::Instant::now() < deadline, "no fault within 20 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.panic_generator {
            self.cluster.mark("generator", "panics");
            panic!("a phase panics");
        }
        Three { f: "main", left: 3 }
    }

    fn has_final_phase(&self) -> bool {
        true
    }

    fn final_generator(&self, _: usize) -> Option<Three> {
        Some(Three {
            f: "final",
            left: 3,
        })
    }
}

/// The noop system, except that it never gets ready.
struct NeverReady(FakeCluster);

impl System for NeverReady {
    fn name(&self) -> &str {
        "noop"
    }
    fn daemon(&self) -> Daemon {
        Noop.daemon()
    }
    fn node_needs(&self) -> Vec<Need> {
        Noop.node_needs()
    }
    fn setup(
        &self,
        node: &mut dyn harness::control::Remote,
        i: usize,
        nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        Noop.setup(node, i, nodes)
    }
    fn await_ready(
        &self,
        node: &mut dyn harness::control::Remote,
        _: usize,
        _: &[NodeInfo],
    ) -> Result<(), ControlError> {
        self.0.mark("system", "not ready");
        Err(ControlError {
            node: node.name().into(),
            what: "not ready (as this test wants)".into(),
            command: None,
            code: None,
            stderr: String::new(),
        })
    }
}

fn spec() -> TestSpec {
    TestSpec {
        faults: vec![Fault::Partition, Fault::Kill, Fault::Pause],
        interval: Duration::from_millis(5),
        run: RunConfig {
            concurrency: 2,
            time_limit: Duration::from_secs(30),
            op_timeout: Duration::from_secs(5),
            seed: 3,
            rate: None,
        },
        recovery: Duration::ZERO,
        final_time: Duration::from_secs(30),
        leave_running: false,
        partitions: Vec::new(),
        delay: Default::default(),
        binaries: harness::companions::Binaries::located(),
    }
}

/// Prepares 3 fake nodes and runs `system` and `workload` on them.
fn run(
    cluster: &FakeCluster,
    system: Arc<dyn System>,
    workload: Marks,
    dir: &tempfile::TempDir,
) -> Result<Outcome, TestError> {
    let run_dir = RunDir {
        path: dir.path().to_path_buf(),
    };
    std::fs::write(run_dir.path.join("test.json"), "{}").unwrap();
    let spec = spec();
    let prepared = lifecycle::prepare(
        cluster.addrs(),
        cluster.clone(),
        &spec.faults,
        system.as_ref(),
    )?;
    prepared.run(system, Arc::new(workload), &spec, &run_dir)
}

fn marks(cluster: &FakeCluster) -> Marks {
    Marks {
        cluster: cluster.clone(),
        panic_client: false,
        panic_generator: false,
    }
}

/// Positions in the log of entries that `matches` picks.
fn at(log: &[Entry], matches: impl Fn(&Entry) -> bool) -> Vec<usize> {
    log.iter()
        .enumerate()
        .filter(|(_, e)| matches(e))
        .map(|(i, _)| i)
        .collect()
}

fn heal_on(node: &'static str) -> impl Fn(&Entry) -> bool {
    let script = nemesis::heal_script();
    move |e| e.node == node && e.action == Action::Exec(script.clone())
}

/// Nothing of a fault left on any node.
fn assert_healed(cluster: &FakeCluster) {
    for node in ["n1", "n2", "n3"] {
        assert!(
            !cluster
                .rules(node)
                .iter()
                .any(|r| r.starts_with("-A SHAKEDOWN ")),
            "{node}: {:?}",
            cluster.rules(node)
        );
        assert!(!cluster.path(node, nemesis::PAUSED).exists(), "{node}");
        assert!(!cluster.path(node, nemesis::KILLED).exists(), "{node}");
    }
}

/// A command that applies a partition, a kill or a pause.
fn is_fault(c: &str) -> bool {
    c.contains("iptables-restore")
        || (c.starts_with("echo ") && c.contains(nemesis::KILLED))
        || c.contains("kill -s STOP")
}

fn mark(text: &'static str) -> impl Fn(&Entry) -> bool {
    move |e| e.action == Action::Mark(text.into())
}

#[test]
fn phases_run_in_order_and_the_final_heal_comes_before_the_final_phase() {
    let cluster = FakeCluster::new(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(&cluster, Arc::new(Noop), marks(&cluster), &dir).unwrap();
    assert_eq!(outcome.main.ok, 6, "{outcome:?}");
    assert_eq!(outcome.final_phase.ok, 6, "{outcome:?}");
    assert_eq!(outcome.heal_failed, None);
    assert!(outcome.warnings.is_empty(), "{outcome:?}");

    let log = cluster.log();
    for node in ["n1", "n2", "n3"] {
        let on = |e: &Entry| e.node == node;
        let heals = at(&log, heal_on(node));
        let wipes = at(&log, |e| {
            on(e)
                && matches!(&e.action, Action::Exec(c) if c.starts_with("rm -rf /opt/shakedown/noop"))
        });
        let setup = at(&log, |e| {
            on(e) && e.action == Action::Upload("/opt/shakedown/noop/start.sh".into())
        });
        let logs = at(&log, |e| {
            on(e) && e.action == Action::Download("/opt/shakedown/noop/log".into())
        });
        let (main, last) = (at(&log, mark("main")), at(&log, mark("final")));
        let own = at(&log, on);
        assert!(!heals.is_empty() && !wipes.is_empty() && setup.len() == 1 && logs.len() == 1);
        // Leftovers healed and wiped, then set up, then the clients.
        assert!(
            heals[0] < wipes[0] && wipes[0] < setup[0],
            "{node}: {log:#?}"
        );
        assert!(setup[0] < main[0], "{node}: set up before the main phase");
        // The final heal after the main phase, before the final phase.
        let final_heal = *heals.last().unwrap();
        assert!(main.last().unwrap() < &final_heal, "{node}: {log:#?}");
        assert!(
            final_heal < last[0],
            "{node}: healed before the final phase"
        );
        // Logs after the final phase; the teardown last of all.
        assert!(last.last().unwrap() < &logs[0], "{node}");
        assert!(logs[0] < *wipes.last().unwrap(), "{node}");
        assert!(
            own.iter()
                .rev()
                .take_while(|i| **i > logs[0])
                .all(|i| matches!(&log[*i].action, Action::Exec(c) if !c.contains("iptables") && !c.contains(nemesis::PAUSED))),
            "{node}: after the logs only the teardown"
        );
    }
    assert_healed(&cluster);
    // The final heal is in the history, verified on every node.
    let history = std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap();
    let last_nemesis: Value = history
        .lines()
        .rev()
        .find(|l| l.contains("\"nemesis\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    assert_eq!(last_nemesis["type"], "info", "{last_nemesis}");
    assert_eq!(
        last_nemesis["value"]["verified"]
            .as_object()
            .map(|v| v.len()),
        Some(3),
        "{last_nemesis}"
    );
}

#[test]
fn a_phase_that_fails_still_heals_every_node() {
    let cluster = FakeCluster::new(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = run(
        &cluster,
        Arc::new(NeverReady(cluster.clone())),
        marks(&cluster),
        &dir,
    )
    .unwrap_err();
    assert!(e.to_string().contains("could not set up noop"), "{e}");
    let log = cluster.log();
    let failed = at(&log, mark("not ready"))[0];
    for node in ["n1", "n2", "n3"] {
        assert!(
            at(&log, heal_on(node)).last().unwrap() > &failed,
            "{node}: no heal after the failed set-up: {log:#?}"
        );
    }
}

#[test]
fn a_panicking_client_still_gets_the_final_heal_and_no_final_phase() {
    let cluster = FakeCluster::new(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let workload = Marks {
        panic_client: true,
        ..marks(&cluster)
    };
    let outcome = run(&cluster, Arc::new(Noop), workload, &dir).unwrap();
    assert!(
        outcome.warnings.iter().any(|w| w.contains("panic")),
        "{outcome:?}"
    );
    assert_eq!(outcome.heal_failed, None);
    let log = cluster.log();
    let panicked = at(&log, mark("main"))[0];
    for node in ["n1", "n2", "n3"] {
        assert!(
            at(&log, heal_on(node)).last().unwrap() > &panicked,
            "{node}"
        );
    }
    assert!(at(&log, mark("final")).is_empty(), "no final phase");
}

#[test]
fn a_panic_in_a_phase_stops_the_faults_and_heals_every_node() {
    let cluster = FakeCluster::new(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let workload = Marks {
        panic_generator: true,
        ..marks(&cluster)
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(&cluster, Arc::new(Noop), workload, &dir)
    }));
    assert!(r.is_err(), "the panic goes on up");
    let log = cluster.log();
    let panicked = at(&log, mark("panics"))[0];
    for node in ["n1", "n2", "n3"] {
        let last_heal = *at(&log, heal_on(node)).last().unwrap();
        assert!(last_heal > panicked, "{node}: no heal after the panic");
        let faults_after = at(&log, |e| {
            e.node == node && matches!(&e.action, Action::Exec(c) if is_fault(c))
        });
        assert!(
            faults_after.iter().all(|i| *i < last_heal),
            "{node}: a fault applied after the heal"
        );
    }
    assert_healed(&cluster);
}

/// Without the lost-writes fault's binary on the control host, a run stops
/// before it touches any node: not one command after the preflight's, no
/// upload, no heal of leftovers, no set-up; the error names the file and
/// the cargo command that builds it.
#[test]
fn a_missing_companion_binary_stops_the_run_before_any_node_is_touched() {
    let cluster = FakeCluster::new(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir {
        path: dir.path().to_path_buf(),
    };
    std::fs::write(run_dir.path.join("test.json"), "{}").unwrap();
    let mut spec = spec();
    spec.faults = vec![Fault::LostWrites];
    let missing = dir.path().join("target/release/shakedown-lostfs");
    spec.binaries.lostfs = missing.clone();
    let prepared =
        lifecycle::prepare(cluster.addrs(), cluster.clone(), &spec.faults, &Noop).unwrap();
    let before = cluster.log().len();
    let err = prepared
        .run(Arc::new(Noop), Arc::new(marks(&cluster)), &spec, &run_dir)
        .expect_err("refused");
    let TestError::Infra(text) = err else {
        panic!("not an infrastructure error: {err:?}")
    };
    assert!(
        text.contains(&format!(
            "shakedown-lostfs is missing on the control host: {}",
            missing.display()
        )) && text.contains("cargo build --release --locked --workspace --bins")
            && text.contains("nothing was set up"),
        "{text}"
    );
    assert_eq!(
        cluster.log()[before..],
        [],
        "the run touched a node after its preflight"
    );
    assert!(!dir.path().join("history.jsonl").exists());
}
