//! The fault schedule: alternate a fault and a heal every `interval` until
//! the main phase ends; every fault is journaled (synced) before it is
//! applied and recorded in the history as process "nemesis".
//!
//! Events: `start-partition`/`stop-partition`, `kill`/`restart`,
//! `pause`/`resume`, `start-loss`/`stop-loss`, `clock-shift`/`clock-reset`;
//! each an invoke and an info completion (Jepsen's shape), the completion's
//! value naming exactly what was done. A heal always undoes everything
//! (see [`nemesis::heal`]), so a window is from a fault's invoke to the next
//! heal's completion.

use crate::control::{on_nodes, ControlError, NodeResult, Remote};
use crate::nemesis::{self, Partition};
use crate::runner::{Counters, Op, Recorder};
use crate::store::Journal;
use crate::system::{NodeInfo, System};
use crate::watch::ClientWatch;
use checkers::history::{EventType, Process};
use checkers::rundata::{JournalEntry, NodeFailure};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use checkers::rundata::{ClockShift, Fault, FaultPlan};

/// How clock faults move a node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockMode {
    /// `date -s` on real machines (each has its own clock).
    Date,
    /// On local test hosts (they share this machine's clock): the system's
    /// daemons run under libfaketime (`lib`), whose offset the fault moves.
    Faketime { lib: &'static str },
}

/// A fault or heal that did not take effect (or could not be verified) on
/// some nodes: each node and what went wrong, as the history and the
/// journal record them.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", describe_failures(failures))]
pub struct FaultError {
    /// The history event (e.g. "start-partition", "stop-partition").
    pub event: String,
    pub failures: Vec<NodeFailure>,
}

fn describe_failures(failures: &[NodeFailure]) -> String {
    failures
        .iter()
        .map(|f| match &f.node {
            Some(n) => format!("{n}: {}", f.error),
            None => f.error.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The rates a skewed clock runs at, in thousandths: at least 25% off, so
/// a probe tells them from real time at once.
const SKEW_RATES: [u32; 6] = [500, 750, 1250, 1500, 2000, 3000];

/// What the fault schedule acts on, besides its sessions.
#[derive(Clone)]
pub struct Targets {
    /// The nodes, in the sessions' order.
    pub nodes: Arc<Vec<NodeInfo>>,
    /// Never dropped by a partition or loss.
    pub control: Ipv4Addr,
    /// Its daemon is what kill and pause hit; after a heal restarts it,
    /// the node must serve again (`System::await_ready`).
    pub system: Arc<dyn System>,
    /// The partition strategies to draw from (empty: all).
    pub partitions: Vec<Partition>,
    pub clock: ClockMode,
    /// What the delay fault does.
    pub delay: nemesis::DelaySpec,
}

impl Targets {
    fn ip(&self, name: &str) -> Option<Ipv4Addr> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .and_then(|n| match n.ip {
                std::net::IpAddr::V4(a) => Some(a),
                std::net::IpAddr::V6(_) => None,
            })
    }
}

/// Drives faults on its own SSH sessions (one per node, in node order).
pub struct Nemesis<R: Remote + Send, W: Write> {
    nodes: Vec<R>,
    targets: Targets,
    journal: Journal,
    recorder: Arc<Recorder<W>>,
    /// What is in force now, for progress lines.
    active: Arc<Mutex<Option<String>>>,
    rng: ChaCha8Rng,
    /// The fault in force, if any, so the heal's event is named after it.
    current: Option<Fault>,
    /// The clients, when a run has them: power cuts wait for their
    /// acknowledgements, and raise their recovery epoch when healed.
    clients: Option<ClientWatch>,
}

/// The short form of a node's error for the history: what failed and the
/// node's own words, without the (long) script.
fn brief(e: &ControlError) -> String {
    let s = if e.stderr.is_empty() {
        e.what.clone()
    } else {
        format!("{}: {}", e.what, e.stderr)
    };
    s.chars().take(300).collect()
}

impl<R: Remote + Send, W: Write> Nemesis<R, W> {
    pub fn new(
        nodes: Vec<R>,
        targets: Targets,
        journal: Journal,
        recorder: Arc<Recorder<W>>,
        seed: u64,
    ) -> Self {
        Nemesis {
            nodes,
            targets,
            journal,
            recorder,
            active: Arc::new(Mutex::new(None)),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6E65_6D65_7369_7300),
            current: None,
            clients: None,
        }
    }

    /// Watches the clients: a power cut waits for their acknowledgements,
    /// and each heal of one adds one to `epoch` (the workers' recovery
    /// epoch: they read back what they wrote, see
    /// [`crate::runner::Generator::observe`]).
    pub fn watch_clients(&mut self, counters: Arc<Counters>, epoch: Arc<AtomicU64>) {
        self.clients = Some(ClientWatch::new(counters, epoch));
    }

    /// What is in force now (for progress lines).
    pub fn active(&self) -> Arc<Mutex<Option<String>>> {
        self.active.clone()
    }

    fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name().to_string()).collect()
    }

    fn record(&self, kind: EventType, f: &str, value: Value, error: Option<String>) {
        let op = Op::new(f, None, Value::Null);
        if let Err(e) = self
            .recorder
            .record(Process::Nemesis, kind, &op, value, None, error)
        {
            tracing::error!("cannot record a fault in the history: {e}");
        }
    }

    /// A random minority (at least one node), as indices.
    fn minority(&mut self) -> Vec<usize> {
        let n = self.nodes.len();
        let k = self.rng.gen_range(1..=((n - 1) / 2).max(1));
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut self.rng);
        idx.truncate(k);
        idx.sort_unstable();
        idx
    }

    /// The first node on which the system's primary probe succeeds.
    fn find_primary(&mut self) -> Option<usize> {
        let probe = self.targets.system.primary_probe()?;
        self.nodes.iter_mut().position(|n| {
            n.exec(&probe, Duration::from_secs(3))
                .is_ok_and(|o| o.code == 0)
        })
    }

    /// Decides what `fault` will do, from the seeded RNG.
    fn plan(&mut self, fault: Fault) -> FaultPlan {
        let names = self.names();
        match fault {
            Fault::Partition => {
                // A strategy that cuts nothing on so few nodes (a ring of 3)
                // gives way to the next one.
                let all = if self.targets.partitions.is_empty() {
                    Partition::ALL.to_vec()
                } else {
                    self.targets.partitions.clone()
                };
                let first = self.rng.gen_range(0..all.len());
                let seed: u64 = self.rng.gen();
                let (strategy, grudge) = (0..all.len())
                    .map(|k| all[(first + k) % all.len()])
                    .map(|p| (p, p.grudge(&names, seed)))
                    .find(|(_, g)| g.values().any(|v| !v.is_empty()))
                    .unwrap_or_else(|| {
                        let p = all[first];
                        (p, p.grudge(&names, seed))
                    });
                if strategy != Partition::IsolatePrimary {
                    return FaultPlan::Partition {
                        strategy: strategy.name().into(),
                        grudge,
                        note: None,
                    };
                }
                match self.find_primary() {
                    Some(i) => FaultPlan::Partition {
                        strategy: strategy.name().into(),
                        grudge: Partition::isolate(&names, &names[i]),
                        note: None,
                    },
                    None => FaultPlan::Partition {
                        strategy: "isolate".into(),
                        grudge,
                        note: Some("no node answered as the primary: a random node instead".into()),
                    },
                }
            }
            Fault::Kill | Fault::Pause | Fault::LostWrites => {
                let mut hit = self.minority();
                if fault == Fault::LostWrites {
                    // A power cut can only lose an acknowledged write on a
                    // node that acknowledged it: the primary, where the
                    // system has one, is always among those cut.
                    if let Some(p) = self.find_primary().filter(|p| !hit.contains(p)) {
                        hit[0] = p;
                        hit.sort_unstable();
                    }
                }
                let hit: Vec<String> = hit.into_iter().map(|i| names[i].clone()).collect();
                match fault {
                    Fault::Kill => FaultPlan::Kill(hit),
                    Fault::Pause => FaultPlan::Pause(hit),
                    _ => FaultPlan::LostWrites(hit),
                }
            }
            Fault::Loss => FaultPlan::Loss { probability: 0.2 },
            Fault::Delay => FaultPlan::Delay(self.targets.delay),
            Fault::Clock => {
                let mut m = BTreeMap::new();
                let faked = matches!(self.targets.clock, ClockMode::Faketime { .. });
                for i in self.minority() {
                    let sign = if self.rng.gen() { 1.0 } else { -1.0 };
                    // A faked clock can also strobe (a loop on the node)
                    // and run fast or slow; `date -s` only bumps.
                    let roll = if faked { self.rng.gen_range(0..10) } else { 9 };
                    let shift = if roll < 3 {
                        ClockShift::Strobe {
                            delta: sign * f64::from(self.rng.gen_range(1..=10u32)),
                            period_ms: self.rng.gen_range(20..=200),
                        }
                    } else if roll < 6 {
                        ClockShift::Skew {
                            rate_milli: *SKEW_RATES.choose(&mut self.rng).expect("non-empty"),
                        }
                    } else {
                        ClockShift::Bump(sign * f64::from(self.rng.gen_range(1..=60u32)))
                    };
                    m.insert(names[i].clone(), shift);
                }
                FaultPlan::Clock(m)
            }
        }
    }

    /// Applies `fault`: plan, journal, invoke, apply and verify, info
    /// completion. A fault that could not be journaled, applied or verified
    /// on some node is recorded as failed there (the completion's `error`
    /// and `value.failed`), never as done.
    pub fn apply(&mut self, fault: Fault) {
        let (start, _) = fault.events();
        let plan = self.plan(fault);
        let json_plan = plan.to_json();
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(plan.headline());
        self.record(EventType::Invoke, start, json_plan.clone(), None);
        if let Err(e) = self.journal.record(&JournalEntry::Fault(plan.clone())) {
            // Without the journal a crash could leave this fault behind
            // unseen: it is not applied, and it is recorded as failed.
            tracing::error!("fault journal: {e}; skipping the fault");
            let failed = vec![(
                None,
                format!("not applied: the fault journal could not be written: {e}"),
            )];
            let _ = self.complete(start, json!({"plan": json_plan}), failed);
            return;
        }
        self.current = Some(fault);
        let t = Instant::now();
        let results = self.execute(&plan);
        let took = t.elapsed().as_secs_f64() * 1000.0;
        let mut verified = serde_json::Map::new();
        let mut failed = Vec::new();
        for r in results {
            match r.result {
                Ok(text) => {
                    verified.insert(r.node, json!(text));
                }
                Err(e) => failed.push((Some(r.node), brief(&e))),
            }
        }
        tracing::info!("{start}: {} ({took:.0} ms)", plan.describe());
        let _ = self.complete(
            start,
            json!({"plan": json_plan, "verified": verified}),
            failed,
        );
    }

    /// Records a fault's or a heal's completion; failures (node, error)
    /// also go to the journal. Ok when nothing failed.
    fn complete(
        &self,
        f: &str,
        mut value: Value,
        failed: Vec<(Option<String>, String)>,
    ) -> Result<(), FaultError> {
        if failed.is_empty() {
            self.record(EventType::Info, f, value, None);
            return Ok(());
        }
        let err = FaultError {
            event: f.to_string(),
            failures: failed
                .into_iter()
                .map(|(node, error)| NodeFailure { node, error })
                .collect(),
        };
        let text = err.to_string();
        tracing::error!("{f} failed: {text}");
        let entry = JournalEntry::Failed {
            event: f.to_string(),
            nodes: err.failures.clone(),
        };
        if let Err(e) = self.journal.record(&entry) {
            tracing::error!("fault journal: {e}");
        }
        value["failed"] = Value::Array(err.failures.iter().map(NodeFailure::to_json).collect());
        self.record(EventType::Info, f, value, Some(text));
        Err(err)
    }

    /// Applies a plan on the nodes and verifies it: a result per node it
    /// touched, saying what was verified.
    fn execute(&mut self, plan: &FaultPlan) -> Vec<NodeResult<String>> {
        let names = self.names();
        let index = |n: &String| names.iter().position(|x| x == n);
        let mut each =
            |who: &[String], f: &mut dyn FnMut(&mut R) -> Result<String, ControlError>| {
                who.iter()
                    .map(|n| NodeResult {
                        node: n.clone(),
                        result: match index(n) {
                            Some(i) => f(&mut self.nodes[i]),
                            None => Err(ControlError {
                                node: n.clone(),
                                what: "no such node".into(),
                                command: None,
                                code: None,
                                stderr: String::new(),
                            }),
                        },
                    })
                    .collect::<Vec<_>>()
            };
        let daemon = self.targets.system.daemon();
        match plan {
            FaultPlan::Partition { grudge, .. } => {
                let t = &self.targets;
                let ip = |n: &str| t.ip(n);
                nemesis::partition(&mut self.nodes, &ip, grudge, t.control)
            }
            FaultPlan::Kill(who) => each(who, &mut |n| {
                nemesis::kill_daemon(n, &daemon)
                    .map(|pid| format!("{} (pid {pid}) gone after SIGKILL", daemon.name))
            }),
            FaultPlan::LostWrites(who) => each(who, &mut |n| nemesis::lose_writes(n, &daemon)),
            FaultPlan::Pause(who) => each(who, &mut |n| {
                nemesis::pause(n, &daemon.pidfile())
                    .map(|pid| format!("{} (pid {pid}) stopped (state T)", daemon.name))
            }),
            FaultPlan::Loss { probability } => {
                nemesis::loss(&mut self.nodes, *probability, self.targets.control)
            }
            FaultPlan::Delay(spec) => {
                let ips: Vec<Ipv4Addr> = names.iter().filter_map(|n| self.targets.ip(n)).collect();
                let seed = self.rng.gen();
                nemesis::delay(&mut self.nodes, &ips, spec, seed)
            }
            FaultPlan::Clock(m) => {
                let who: Vec<String> = m.keys().cloned().collect();
                let mode = self.targets.clock;
                each(&who, &mut |n| {
                    let shift = m.get(n.name()).copied().unwrap_or(ClockShift::Bump(0.0));
                    match (mode, shift) {
                        (ClockMode::Faketime { lib }, ClockShift::Bump(s)) => {
                            nemesis::faketime_bump(n, lib, s)
                        }
                        (ClockMode::Faketime { lib }, ClockShift::Strobe { delta, period_ms }) => {
                            nemesis::faketime_strobe(n, lib, delta, period_ms)
                        }
                        (ClockMode::Faketime { lib }, ClockShift::Skew { rate_milli }) => {
                            nemesis::faketime_skew(n, lib, rate_milli)
                        }
                        (ClockMode::Date, ClockShift::Bump(s)) => nemesis::shift_clock(n, s as i64)
                            .map(|_| format!("clock moved by {s:+} s (date -s, read back)")),
                        (ClockMode::Date, _) => Err(ControlError {
                            node: n.name().into(),
                            what: "a clock strobe or skew needs a faked clock".into(),
                            command: None,
                            code: None,
                            stderr: String::new(),
                        }),
                    }
                })
            }
        }
    }

    /// Undoes everything on every node and verifies it (see
    /// [`nemesis::heal`]); a node whose daemon it restarted must serve
    /// again. Recorded as the stop event of the fault in force (or "heal"
    /// when none is known). An error names every node it could not heal.
    pub fn heal(&mut self) -> Result<(), FaultError> {
        let cut = self.current == Some(Fault::LostWrites);
        let f = self.current.take().map_or("heal", |f| f.events().1);
        self.record(EventType::Invoke, f, Value::Null, None);
        let t = Instant::now();
        let healed: Vec<NodeResult<nemesis::Healed>> = nemesis::heal(&mut self.nodes);
        let (sys, infos) = (self.targets.system.clone(), self.targets.nodes.clone());
        let restarted: Vec<bool> = healed
            .iter()
            .map(|r| r.result.as_ref().is_ok_and(|h| !h.restarted.is_empty()))
            .collect();
        let ready = on_nodes(&mut self.nodes, |i, n| {
            if restarted[i] {
                sys.await_ready(n, i, &infos)
            } else {
                Ok(())
            }
        });
        let mut verified = serde_json::Map::new();
        let mut failed = Vec::new();
        for (hr, rr) in healed.into_iter().zip(ready) {
            match (hr.result, rr.result) {
                (Ok(h), Ok(())) => {
                    let mut said = vec![if h.rules_checked {
                        "no rule left".to_string()
                    } else {
                        "no iptables here".to_string()
                    }];
                    if h.resumed > 0 {
                        said.push(format!("{} resumed", h.resumed));
                    }
                    if h.clock_reset {
                        said.push("clock put back".to_string());
                    }
                    if h.delay_stopped {
                        said.push("delay stopped".to_string());
                    }
                    for d in &h.restarted {
                        said.push(format!("{d} restarted and serving"));
                    }
                    verified.insert(hr.node, json!(said.join(", ")));
                }
                (Err(e), _) => failed.push((Some(hr.node), brief(&e))),
                (Ok(_), Err(e)) => failed.push((
                    Some(hr.node),
                    format!("restarted, but it does not serve again: {}", brief(&e)),
                )),
            }
        }
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!("{f}: {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
        let ok = failed.is_empty();
        let result = self.complete(f, json!({"verified": verified}), failed);
        if ok {
            let _ = self.journal.record(&JournalEntry::Healed);
        }
        if let Some(c) = self.clients.as_mut() {
            // Back from a power cut: the workers read back what they wrote.
            c.healed(cut);
        }
        result
    }

    /// Alternates fault and heal every `interval` until `deadline` or
    /// `stop`. Leaves the last fault in force: the caller's final heal
    /// undoes it (and anything else).
    pub fn run(
        &mut self,
        faults: &[Fault],
        interval: Duration,
        deadline: Instant,
        stop: &AtomicBool,
    ) {
        if faults.is_empty() {
            return;
        }
        let wait = |until: Instant| {
            while Instant::now() < until {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            true
        };
        loop {
            if !wait((Instant::now() + interval).min(deadline)) || Instant::now() >= deadline {
                return;
            }
            let f = *faults.choose(&mut self.rng).expect("non-empty");
            if f == Fault::LostWrites {
                // At most one more interval: a cut of a system that does
                // not serve still happens (and says so in the log).
                let until = (Instant::now() + interval).min(deadline);
                let moment = self
                    .clients
                    .as_ref()
                    .map(|c| c.await_moment_to_cut(until, stop));
                if moment == Some(false) {
                    if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                        return;
                    }
                    tracing::warn!(
                        "lose-writes: the clients had no burst of acknowledgements within {} s; cutting anyway",
                        interval.as_secs_f64()
                    );
                }
            }
            self.apply(f);
            if !wait((Instant::now() + interval).min(deadline)) || Instant::now() >= deadline {
                return;
            }
            let _ = self.heal();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_with_clear_errors() {
        assert_eq!(
            Fault::parse_list("partition,kill").unwrap(),
            vec![Fault::Partition, Fault::Kill]
        );
        assert_eq!(Fault::parse_list("none").unwrap(), vec![]);
        assert_eq!(Fault::parse_list("").unwrap(), vec![]);
        assert_eq!(Fault::parse_list("kill,kill").unwrap(), vec![Fault::Kill]);
        let e = Fault::parse_list("partition,clok").unwrap_err();
        assert!(e.contains("\"clok\" is not a fault"), "{e}");
    }

    #[test]
    fn descriptions_name_nodes() {
        let kill = FaultPlan::Kill(vec!["n1".into(), "n3".into()]);
        assert_eq!(kill.headline(), "kill: n1, n3");
        assert_eq!(kill.to_json(), json!(["n1", "n3"]));
        let grudge: nemesis::Grudge =
            serde_json::from_value(json!({"n1": ["n2"], "n2": ["n1"]})).unwrap();
        let p = FaultPlan::Partition {
            strategy: "isolate".into(),
            grudge,
            note: None,
        };
        assert_eq!(p.headline(), "partition: isolate: n1 drops n2; n2 drops n1");
        assert_eq!(
            p.to_json(),
            json!({"strategy": "isolate", "grudge": {"n1": ["n2"], "n2": ["n1"]}})
        );
        assert_eq!(
            FaultPlan::Loss { probability: 0.2 }.to_json(),
            json!({"probability": 0.2})
        );
    }
}
