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

use crate::control::{ControlError, Remote};
use crate::daemon::Daemon;
use crate::nemesis::{self, Partition};
use crate::runner::{Op, Recorder};
use crate::store::Journal;
use checkers::history::{EventType, Process};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Partition,
    Kill,
    Pause,
    Loss,
    Clock,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Partition,
        Fault::Kill,
        Fault::Pause,
        Fault::Loss,
        Fault::Clock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Loss => "loss",
            Fault::Clock => "clock",
        }
    }

    /// One line for `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            Fault::Partition => "iptables partitions: random halves, one node isolated, majority/minority, majorities ring, bridge, the primary isolated (--partition picks)",
            Fault::Kill => "SIGKILL the system's process on a minority of nodes; heal restarts it",
            Fault::Pause => "SIGSTOP the system's process on a minority of nodes; heal sends SIGCONT",
            Fault::Loss => "drop 20% of incoming packets on every node (iptables statistic)",
            Fault::Clock => "move a minority's clocks by up to 60 s (real machines only: refused on local hosts)",
        }
    }

    /// Parses `--nemesis a,b,c` ("none" or "" for no faults).
    pub fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "none" {
                continue;
            }
            let f = Fault::ALL
                .into_iter()
                .find(|f| f.name() == part)
                .ok_or_else(|| {
                    format!(
                        "{part:?} is not a fault; choose from {} (or none)",
                        Fault::ALL.map(|f| f.name()).join(", ")
                    )
                })?;
            if !out.contains(&f) {
                out.push(f);
            }
        }
        Ok(out)
    }

    fn events(self) -> (&'static str, &'static str) {
        match self {
            Fault::Partition => ("start-partition", "stop-partition"),
            Fault::Kill => ("kill", "restart"),
            Fault::Pause => ("pause", "resume"),
            Fault::Loss => ("start-loss", "stop-loss"),
            Fault::Clock => ("clock-shift", "clock-reset"),
        }
    }
}

/// Drives faults on its own SSH sessions (one per node, in node order).
pub struct Nemesis<R: Remote + Send, W: Write> {
    pub nodes: Vec<R>,
    pub ips: Vec<Ipv4Addr>,
    /// Never dropped by a partition or loss.
    pub control: Ipv4Addr,
    pub daemon: Daemon,
    pub journal: Journal,
    pub recorder: Arc<Recorder<W>>,
    /// What is in force now, for progress lines.
    pub active: Arc<Mutex<Option<String>>>,
    rng: ChaCha8Rng,
    /// The fault in force, if any, so the heal's event is named after it.
    current: Option<Fault>,
    /// The partition strategies to draw from.
    pub partitions: Vec<Partition>,
    /// A shell command that exits 0 on the system's primary (for the
    /// `primary` strategy).
    pub primary_probe: Option<String>,
}

impl<R: Remote + Send, W: Write> Nemesis<R, W> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        nodes: Vec<R>,
        ips: Vec<Ipv4Addr>,
        control: Ipv4Addr,
        daemon: Daemon,
        journal: Journal,
        recorder: Arc<Recorder<W>>,
        seed: u64,
    ) -> Self {
        Nemesis {
            nodes,
            ips,
            control,
            daemon,
            journal,
            recorder,
            active: Arc::new(Mutex::new(None)),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6E65_6D65_7369_7300),
            current: None,
            partitions: Partition::ALL.to_vec(),
            primary_probe: None,
        }
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
        let probe = self.primary_probe.clone()?;
        self.nodes.iter_mut().position(|n| {
            n.exec(&probe, Duration::from_secs(3))
                .is_ok_and(|o| o.code == 0)
        })
    }

    /// Applies `fault`: journal, invoke, apply, info completion.
    pub fn apply(&mut self, fault: Fault) {
        let names = self.names();
        let (start, _) = fault.events();
        // Decide everything first, so the journal says exactly what will happen.
        let plan: Value = match fault {
            Fault::Partition => {
                // A strategy that cuts nothing on so few nodes (a ring of 3)
                // gives way to the next one.
                let all = if self.partitions.is_empty() {
                    Partition::ALL.to_vec()
                } else {
                    self.partitions.clone()
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
                let primary = if strategy == Partition::IsolatePrimary {
                    self.find_primary()
                } else {
                    None
                };
                match (strategy, primary) {
                    (Partition::IsolatePrimary, Some(i)) => json!({
                        "strategy": strategy.name(),
                        "grudge": Partition::isolate(&names, &names[i]),
                    }),
                    (Partition::IsolatePrimary, None) => json!({
                        "strategy": "isolate",
                        "grudge": grudge,
                        "note": "no node answered as the primary: a random node instead",
                    }),
                    _ => json!({"strategy": strategy.name(), "grudge": grudge}),
                }
            }
            Fault::Kill | Fault::Pause => {
                let hit: Vec<&String> = self.minority().into_iter().map(|i| &names[i]).collect();
                json!(hit)
            }
            Fault::Loss => json!({"probability": 0.2}),
            Fault::Clock => {
                let mut m = serde_json::Map::new();
                for i in self.minority() {
                    let s: i64 = self.rng.gen_range(1..=60) * if self.rng.gen() { 1 } else { -1 };
                    m.insert(names[i].clone(), json!(s));
                }
                Value::Object(m)
            }
        };
        if let Err(e) = self
            .journal
            .record(&json!({"fault": fault.name(), "plan": plan}))
        {
            // Without the journal a crash could leave this fault behind unseen.
            tracing::error!("fault journal: {e}; skipping the fault");
            return;
        }
        self.current = Some(fault);
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(describe(fault, &plan));
        self.record(EventType::Invoke, start, plan.clone(), None);
        let t = Instant::now();
        let result = self.execute(fault, &plan);
        let took = t.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(()) => {
                tracing::info!("{}: {} ({took:.0} ms)", start, describe(fault, &plan));
                self.record(EventType::Info, start, plan, None);
            }
            Err(e) => {
                tracing::error!("{start} failed: {e}");
                self.record(EventType::Info, start, plan, Some(e.to_string()));
            }
        }
    }

    fn execute(&mut self, fault: Fault, plan: &Value) -> Result<(), ControlError> {
        let names = self.names();
        let pick = |plan: &Value| -> Vec<usize> {
            plan.as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| names.iter().position(|n| Some(n.as_str()) == v.as_str()))
                .collect()
        };
        match fault {
            Fault::Partition => {
                let grudge: nemesis::Grudge =
                    serde_json::from_value(plan["grudge"].clone()).unwrap_or_default();
                let (names, ips) = (self.names(), self.ips.clone());
                let ip = move |n: &str| names.iter().position(|x| x == n).map(|i| ips[i]);
                nemesis::partition(&mut self.nodes, &ip, &grudge, self.control).map(|_| ())
            }
            Fault::Kill => {
                for i in pick(plan) {
                    nemesis::kill_daemon(&mut self.nodes[i], &self.daemon)?;
                }
                Ok(())
            }
            Fault::Pause => {
                for i in pick(plan) {
                    nemesis::pause(&mut self.nodes[i], &self.daemon.pidfile())?;
                }
                Ok(())
            }
            Fault::Loss => nemesis::loss(&mut self.nodes, 0.2, self.control).map(|_| ()),
            Fault::Clock => {
                for (name, s) in plan.as_object().into_iter().flatten() {
                    if let Some(i) = names.iter().position(|n| n == name) {
                        nemesis::shift_clock(&mut self.nodes[i], s.as_i64().unwrap_or(0))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Undoes everything on every node, recorded as the stop event of the
    /// fault in force (or "heal" when none is known).
    pub fn heal(&mut self) -> Result<(), ControlError> {
        let f = self.current.take().map_or("heal", |f| f.events().1);
        self.record(EventType::Invoke, f, Value::Null, None);
        let result = nemesis::heal(&mut self.nodes);
        match &result {
            Ok(took) => {
                tracing::info!("{f}: healed ({:.0} ms)", took.as_secs_f64() * 1000.0);
                self.record(EventType::Info, f, json!("healed"), None);
                let _ = self.journal.record(&json!({"heal": true}));
            }
            Err(e) => {
                tracing::error!("{f} failed: {e}");
                self.record(EventType::Info, f, Value::Null, Some(e.to_string()));
            }
        }
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = None;
        result.map(|_| ())
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
            self.apply(f);
            if !wait((Instant::now() + interval).min(deadline)) || Instant::now() >= deadline {
                return;
            }
            let _ = self.heal();
        }
    }
}

/// What a fault does, in words.
pub fn describe(fault: Fault, plan: &Value) -> String {
    match fault {
        Fault::Partition => {
            let g: nemesis::Grudge =
                serde_json::from_value(plan["grudge"].clone()).unwrap_or_default();
            format!(
                "partition ({}): {}",
                plan["strategy"].as_str().unwrap_or("?"),
                nemesis::describe(&g)
            )
        }
        Fault::Kill | Fault::Pause => format!(
            "{} {}",
            fault.name(),
            plan.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        ),
        Fault::Loss => format!(
            "loss {}%",
            plan["probability"].as_f64().unwrap_or(0.0) * 100.0
        ),
        Fault::Clock => format!("clock {plan}"),
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
        assert_eq!(describe(Fault::Kill, &json!(["n1", "n3"])), "kill n1,n3");
        let g = json!({"strategy": "isolate", "grudge": {"n1": ["n2"], "n2": ["n1"]}});
        assert_eq!(
            describe(Fault::Partition, &g),
            "partition (isolate): n1 drops n2; n2 drops n1"
        );
    }
}
