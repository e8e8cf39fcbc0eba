//! The faults a run can inject, and what one fault will do (its plan), as
//! the history, the fault journal and the report know them.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The kinds of fault (`--nemesis`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Partition,
    Kill,
    Pause,
    Loss,
    Clock,
    Delay,
    LostWrites,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::Partition,
        Fault::Kill,
        Fault::Pause,
        Fault::Loss,
        Fault::Clock,
        Fault::Delay,
        Fault::LostWrites,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Loss => "loss",
            Fault::Clock => "clock",
            Fault::Delay => "delay",
            Fault::LostWrites => "lost-writes",
        }
    }

    /// One line for `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            Fault::Partition => "iptables partitions: random halves, one node isolated, majority/minority, majorities ring, bridge, the primary isolated (--partition picks)",
            Fault::Kill => "SIGKILL the system's process on a minority of nodes; heal restarts it",
            Fault::Pause => "SIGSTOP the system's process on a minority of nodes; heal sends SIGCONT",
            Fault::Loss => "drop 20% of incoming packets on every node (iptables statistic)",
            Fault::Delay => "hold every packet between nodes delay-ms +- jitter-ms, some let through at once (reorder) or sent twice (duplicate); NFQUEUE and shakedown-netem",
            Fault::LostWrites => "a power cut on a minority: SIGKILL and drop every write not yet fsynced (the data directory on shakedown-lostfs, FUSE); heal restarts on what survived",
            Fault::Clock => "move a minority's clocks by up to 60 s; on local test hosts the system's daemons run under libfaketime (bumps, strobes, and rate skews of 0.5x to 3x; refused for Go binaries such as etcd)",
        }
    }

    /// Parses `--nemesis a,b,c` ("none" or "" for no faults).
    pub fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "none" {
                continue;
            }
            let f = Fault::parse(part).ok_or_else(|| {
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

    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The history's names of this fault's start and stop events.
    pub const fn events(self) -> (&'static str, &'static str) {
        match self {
            Fault::Partition => ("start-partition", "stop-partition"),
            Fault::Kill => ("kill", "restart"),
            Fault::Pause => ("pause", "resume"),
            Fault::Loss => ("start-loss", "stop-loss"),
            Fault::Clock => ("clock-shift", "clock-reset"),
            Fault::Delay => ("start-delay", "stop-delay"),
            Fault::LostWrites => ("lose-writes", "recover"),
        }
    }

    /// The fault a history's start event names.
    pub fn of_start_event(f: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|x| x.events().0 == f)
    }

    /// The fault's own `--opt` keys, as `--help` and docs/faults.md list them.
    pub fn options(self) -> &'static [FaultOption] {
        match self {
            Fault::Delay => &DELAY_OPTIONS,
            _ => &[],
        }
    }

    /// One of them in words ("3 partitions took effect").
    pub fn noun(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Loss => "packet loss fault",
            Fault::Clock => "clock shift",
            Fault::Delay => "delay fault",
            Fault::LostWrites => "power cut",
        }
    }
}

/// An `--opt KEY=VALUE` a fault reads, with its default and one line of help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultOption {
    pub key: &'static str,
    pub default: &'static str,
    pub summary: &'static str,
}

/// The delay fault's options; their defaults are [`DelaySpec::default`]'s.
const DELAY_OPTIONS: [FaultOption; 4] = [
    FaultOption {
        key: "delay-ms",
        default: "100",
        summary: "how long each packet between nodes is held, ms (0 to 60000)",
    },
    FaultOption {
        key: "jitter-ms",
        default: "0",
        summary: "plus or minus this many ms, uniform (at most delay-ms)",
    },
    FaultOption {
        key: "reorder",
        default: "0",
        summary: "probability that a packet goes at once instead (0 to 1)",
    },
    FaultOption {
        key: "duplicate",
        default: "0",
        summary: "probability that a packet is also sent twice (0 to 1)",
    },
];

/// The events that undo faults: each fault's stop event, and "heal" (a
/// heal with no fault known to be in force). A heal's completion ends a
/// fault window.
pub const HEAL_EVENTS: [&str; 8] = {
    let mut a = ["heal"; 8];
    let mut i = 0;
    while i < Fault::ALL.len() {
        a[i] = Fault::ALL[i].events().1;
        i += 1;
    }
    a
};

/// Who drops whose packets: node -> the nodes it does not hear.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

/// Packet delay, as the `delay` fault applies it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DelaySpec {
    pub delay_ms: u32,
    pub jitter_ms: u32,
    /// Probability that a packet goes at once (reordering).
    pub reorder: f64,
    /// Probability that a packet is also sent twice.
    pub duplicate: f64,
}

impl Default for DelaySpec {
    fn default() -> Self {
        DelaySpec {
            delay_ms: 100,
            jitter_ms: 0,
            reorder: 0.0,
            duplicate: 0.0,
        }
    }
}

/// One node's clock fault.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClockShift {
    /// Moved by this many seconds.
    Bump(f64),
    /// Back and forth between +0 and `delta` seconds every `period_ms`.
    Strobe { delta: f64, period_ms: u32 },
    /// Running at `rate_milli`/1000 of real time (faked clocks only).
    Skew { rate_milli: u32 },
}

/// What a fault will do, decided before it is journaled and applied. On
/// disk (the invoke's value in the history, the journal's `plan`) it is
/// the JSON of [`FaultPlan::to_json`], whose shape depends on the fault.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultPlan {
    Partition {
        /// The strategy's name: "halves", "isolate", ...
        strategy: String,
        grudge: Grudge,
        /// Why the plan differs from the strategy's (no primary answered).
        note: Option<String>,
    },
    Kill(Vec<String>),
    Pause(Vec<String>),
    Loss {
        probability: f64,
    },
    /// How each node's clock moves.
    Clock(BTreeMap<String, ClockShift>),
    /// Every packet between nodes delayed.
    Delay(DelaySpec),
    /// A power cut on these nodes.
    LostWrites(Vec<String>),
}

/// A number as the history writes it ("5.0", "0.2").
fn num(x: f64) -> String {
    Value::from(x).to_string()
}

impl FaultPlan {
    pub fn fault(&self) -> Fault {
        match self {
            FaultPlan::Partition { .. } => Fault::Partition,
            FaultPlan::Kill(_) => Fault::Kill,
            FaultPlan::Pause(_) => Fault::Pause,
            FaultPlan::Loss { .. } => Fault::Loss,
            FaultPlan::Clock(_) => Fault::Clock,
            FaultPlan::Delay(_) => Fault::Delay,
            FaultPlan::LostWrites(_) => Fault::LostWrites,
        }
    }

    /// The plan as the history and the journal hold it.
    pub fn to_json(&self) -> Value {
        match self {
            FaultPlan::Partition {
                strategy,
                grudge,
                note,
            } => {
                let mut v = json!({"strategy": strategy, "grudge": grudge});
                if let Some(n) = note {
                    v["note"] = json!(n);
                }
                v
            }
            FaultPlan::Kill(nodes) | FaultPlan::Pause(nodes) | FaultPlan::LostWrites(nodes) => {
                json!(nodes)
            }
            FaultPlan::Loss { probability } => json!({ "probability": probability }),
            FaultPlan::Delay(d) => json!({
                "delay_ms": d.delay_ms, "jitter_ms": d.jitter_ms,
                "reorder": d.reorder, "duplicate": d.duplicate,
            }),
            FaultPlan::Clock(m) => Value::Object(
                m.iter()
                    .map(|(n, c)| {
                        let v = match c {
                            ClockShift::Bump(s) => json!(s),
                            ClockShift::Strobe { delta, period_ms } => {
                                json!({"strobe": delta, "period_ms": period_ms})
                            }
                            ClockShift::Skew { rate_milli } => {
                                json!({"skew": f64::from(*rate_milli) / 1000.0})
                            }
                        };
                        (n.clone(), v)
                    })
                    .collect(),
            ),
        }
    }

    /// `fault`'s plan read back from its JSON; `None` unless the JSON is
    /// exactly what [`FaultPlan::to_json`] writes (a foreign history's
    /// nemesis values are left as they are).
    pub fn from_json(fault: Fault, v: &Value) -> Option<FaultPlan> {
        let nodes = || -> Option<Vec<String>> { serde_json::from_value(v.clone()).ok() };
        let f64_of = |k: &str| v.get(k)?.as_f64();
        let u32_of = |k: &str| u32::try_from(v.get(k)?.as_u64()?).ok();
        let plan = match fault {
            Fault::Partition => FaultPlan::Partition {
                strategy: v.get("strategy")?.as_str()?.to_string(),
                grudge: serde_json::from_value(v.get("grudge")?.clone()).ok()?,
                note: match v.get("note") {
                    None => None,
                    Some(n) => Some(n.as_str()?.to_string()),
                },
            },
            Fault::Kill => FaultPlan::Kill(nodes()?),
            Fault::Pause => FaultPlan::Pause(nodes()?),
            Fault::LostWrites => FaultPlan::LostWrites(nodes()?),
            Fault::Loss => FaultPlan::Loss {
                probability: f64_of("probability")?,
            },
            Fault::Delay => FaultPlan::Delay(DelaySpec {
                delay_ms: u32_of("delay_ms")?,
                jitter_ms: u32_of("jitter_ms")?,
                reorder: f64_of("reorder")?,
                duplicate: f64_of("duplicate")?,
            }),
            Fault::Clock => FaultPlan::Clock(
                v.as_object()?
                    .iter()
                    .map(|(n, x)| {
                        let shift = match x {
                            Value::Object(_) if x.get("skew").is_some() => ClockShift::Skew {
                                rate_milli: (x.get("skew")?.as_f64()? * 1000.0).round() as u32,
                            },
                            Value::Object(_) => ClockShift::Strobe {
                                delta: x.get("strobe")?.as_f64()?,
                                period_ms: u32::try_from(x.get("period_ms")?.as_u64()?).ok()?,
                            },
                            x => ClockShift::Bump(x.as_f64()?),
                        };
                        Some((n.clone(), shift))
                    })
                    .collect::<Option<_>>()?,
            ),
        };
        Some(plan).filter(|p| p.to_json() == *v)
    }

    /// The plan a history's start event carries (its invoke's value).
    pub fn from_event(f: &str, v: &Value) -> Option<FaultPlan> {
        FaultPlan::from_json(Fault::of_start_event(f)?, v)
    }

    /// What the fault does, in words: "halves: n1 drops n2,n3; n2 drops n1"
    /// for a partition, the nodes for kill, pause and power cuts, ...
    pub fn describe(&self) -> String {
        match self {
            FaultPlan::Partition {
                strategy, grudge, ..
            } => {
                let cuts: Vec<String> = grudge
                    .iter()
                    .filter(|(_, peers)| !peers.is_empty())
                    .map(|(n, peers)| {
                        let p: Vec<&str> = peers.iter().map(String::as_str).collect();
                        format!("{n} drops {}", p.join(","))
                    })
                    .collect();
                format!("{strategy}: {}", cuts.join("; "))
            }
            FaultPlan::Kill(n) | FaultPlan::Pause(n) | FaultPlan::LostWrites(n) => n.join(", "),
            FaultPlan::Loss { probability } => {
                format!("{} of incoming packets dropped", num(*probability))
            }
            FaultPlan::Delay(d) => format!(
                "every packet between nodes delayed {} ms ± {} ms, reorder {}, duplicate {}",
                d.delay_ms,
                d.jitter_ms,
                num(d.reorder),
                num(d.duplicate)
            ),
            FaultPlan::Clock(m) => m
                .iter()
                .map(|(n, c)| match c {
                    ClockShift::Bump(s) => format!("{n} clock {} s", num(*s)),
                    ClockShift::Strobe { delta, period_ms } => {
                        format!(
                            "{n} clock strobing 0/{} s every {period_ms} ms",
                            num(*delta)
                        )
                    }
                    ClockShift::Skew { rate_milli } => {
                        format!("{n} clock running at {}x", f64::from(*rate_milli) / 1000.0)
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The fault and what it does, for progress lines and the log:
    /// "partition: halves: n1 drops n2".
    pub fn headline(&self) -> String {
        format!("{}: {}", self.fault().name(), self.describe())
    }
}

/// One node on which a fault or a heal did not take effect (the
/// completion's `value.failed` entries; the journal's `nodes`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeFailure {
    /// `null` when the failure was no one node's (the journal could not be written).
    pub node: Option<String>,
    pub error: String,
}

impl NodeFailure {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("node".into(), json!(self.node));
        m.insert("error".into(), json!(self.error));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_options_default_to_the_default_spec() {
        let opt = |k: &str| {
            Fault::Delay
                .options()
                .iter()
                .find(|o| o.key == k)
                .map(|o| o.default)
        };
        let d = DelaySpec::default();
        assert_eq!(opt("delay-ms"), Some(d.delay_ms.to_string().as_str()));
        assert_eq!(opt("jitter-ms"), Some(d.jitter_ms.to_string().as_str()));
        assert_eq!(opt("reorder").map(str::parse::<f64>), Some(Ok(d.reorder)));
        assert_eq!(
            opt("duplicate").map(str::parse::<f64>),
            Some(Ok(d.duplicate))
        );
        assert_eq!(Fault::Delay.options().len(), 4);
        assert!(Fault::ALL
            .iter()
            .filter(|f| **f != Fault::Delay)
            .all(|f| f.options().is_empty()));
    }

    #[test]
    fn heal_events_are_every_fault_s_stop_event_and_heal() {
        assert_eq!(
            HEAL_EVENTS,
            [
                "stop-partition",
                "restart",
                "resume",
                "stop-loss",
                "clock-reset",
                "stop-delay",
                "recover",
                "heal",
            ]
        );
    }

    #[test]
    fn plans_read_back_exactly_and_foreign_values_are_left_alone() {
        let grudge: Grudge = serde_json::from_value(json!({"n1": ["n2"], "n2": ["n1"]})).unwrap();
        let mut clock = BTreeMap::new();
        clock.insert("n1".to_string(), ClockShift::Bump(-5.0));
        clock.insert(
            "n2".to_string(),
            ClockShift::Strobe {
                delta: 3.0,
                period_ms: 50,
            },
        );
        clock.insert("n3".to_string(), ClockShift::Skew { rate_milli: 1250 });
        let plans = [
            FaultPlan::Partition {
                strategy: "isolate".into(),
                grudge,
                note: Some("no node answered".into()),
            },
            FaultPlan::Kill(vec!["n1".into(), "n3".into()]),
            FaultPlan::Pause(vec!["n2".into()]),
            FaultPlan::LostWrites(vec!["n2".into()]),
            FaultPlan::Loss { probability: 0.2 },
            FaultPlan::Delay(DelaySpec::default()),
            FaultPlan::Clock(clock),
        ];
        for p in plans {
            let (start, _) = p.fault().events();
            assert_eq!(FaultPlan::from_event(start, &p.to_json()), Some(p.clone()));
        }
        // Jepsen's grudge without a strategy, a kill of ":majority".
        assert_eq!(
            FaultPlan::from_event("start-partition", &json!({"n1": ["n2"]})),
            None
        );
        assert_eq!(FaultPlan::from_event("kill", &json!(":majority")), None);
        assert_eq!(
            FaultPlan::from_event("start-loss", &json!({"probability": 0.2, "x": 1})),
            None
        );
    }

    #[test]
    fn descriptions_are_the_report_s_words() {
        let grudge: Grudge =
            serde_json::from_value(json!({"n1": ["n2", "n3"], "n2": [], "n3": ["n1"]})).unwrap();
        let p = FaultPlan::Partition {
            strategy: "halves".into(),
            grudge,
            note: None,
        };
        assert_eq!(p.describe(), "halves: n1 drops n2,n3; n3 drops n1");
        assert_eq!(
            p.headline(),
            "partition: halves: n1 drops n2,n3; n3 drops n1"
        );
        assert_eq!(
            FaultPlan::Kill(vec!["n1".into(), "n3".into()]).describe(),
            "n1, n3"
        );
        assert_eq!(
            FaultPlan::Loss { probability: 0.2 }.describe(),
            "0.2 of incoming packets dropped"
        );
        assert_eq!(
            FaultPlan::Delay(DelaySpec::default()).describe(),
            "every packet between nodes delayed 100 ms ± 0 ms, reorder 0.0, duplicate 0.0"
        );
        let mut clock = BTreeMap::new();
        clock.insert("n1".to_string(), ClockShift::Bump(5.0));
        clock.insert(
            "n2".to_string(),
            ClockShift::Strobe {
                delta: -3.0,
                period_ms: 50,
            },
        );
        assert_eq!(
            FaultPlan::Clock(clock).describe(),
            "n1 clock 5.0 s, n2 clock strobing 0/-3.0 s every 50 ms"
        );
    }
}
