//! Lanes per process around a checker's failure: a picture some checkers'
//! results have. Each picture is a [`LaneSource`]; a new one (a checker
//! with a picture of its own) is one more entry in [`SOURCES`].

use crate::plots::{LaneKind, LaneOp, LanePlot, LaneUnit};
use crate::text::short;
use checkers::anomaly::Anomaly;
use checkers::history::{History, Outcome, Process};
use checkers::{CheckResult, Checker};
use serde_json::Value;

/// Lanes and what they show.
pub struct Lanes {
    pub plot: LanePlot,
    pub caption: String,
}

/// A picture of a failure on lanes, for the results it knows.
pub trait LaneSource: Sync {
    /// The lanes of `r` (the result of `checker`, when the name is known),
    /// or `None` when this source has no picture of it.
    fn lanes(&self, checker: Option<Checker>, r: &CheckResult, h: &History) -> Option<Lanes>;
}

/// Any linearizability counterexample: the failing operation, the pending
/// ones and the last steps of the longest linearizable prefix.
pub struct Counterexample;

impl LaneSource for Counterexample {
    fn lanes(&self, _: Option<Checker>, r: &CheckResult, _: &History) -> Option<Lanes> {
        r.counterexample
            .as_ref()
            .filter(|c| c.is_object())
            .map(linear_lanes)
    }
}

/// The lock checker's first anomaly: the processes' operations and holds.
pub struct LockHolds;

impl LaneSource for LockHolds {
    fn lanes(&self, checker: Option<Checker>, r: &CheckResult, h: &History) -> Option<Lanes> {
        if checker != Some(Checker::Lock) {
            return None;
        }
        r.anomalies.first().map(|a| lock_lanes(a, h))
    }
}

/// Every picture, the first that has one wins.
pub const SOURCES: &[&dyn LaneSource] = &[&Counterexample, &LockHolds];

/// The lanes of checker `name`'s result, if any source draws it.
pub fn lanes_of(name: &str, r: &CheckResult, h: &History) -> Option<Lanes> {
    let checker = Checker::parse(name);
    SOURCES.iter().find_map(|s| s.lanes(checker, r, h))
}

/// Seconds (or event indices when the history has no clock) of an operation in
/// a counterexample.
fn span_of(op: &Value) -> Option<(f64, f64, bool)> {
    match (op["call_time"].as_u64(), op["ret_time"].as_u64()) {
        (Some(c), r) => Some((c as f64 / 1e9, r.map_or(f64::NAN, |r| r as f64 / 1e9), true)),
        _ => {
            let c = op["call"].as_u64()? as f64;
            Some((c, op["ret"].as_u64().map_or(f64::NAN, |r| r as f64), false))
        }
    }
}

/// The failing operation, the pending ones and the last steps of the
/// longest linearizable prefix (with the state after each), on lanes.
fn linear_lanes(ce: &Value) -> Lanes {
    let mut ops = Vec::new();
    let mut timed = true;
    let mut push = |op: &Value, label: String, kind: LaneKind| {
        if let Some((a, b, t)) = span_of(op) {
            timed &= t;
            ops.push(LaneOp {
                lane: short(&op["process"]),
                start: a,
                end: b,
                label,
                kind,
                mark: None,
            });
        }
    };
    let prefix: Vec<&Value> = ce["prefix"].as_array().into_iter().flatten().collect();
    let shown = prefix.len().min(12);
    for step in &prefix[prefix.len() - shown..] {
        let op = &step["op"];
        push(
            op,
            format!("{} => {}", short(&op["description"]), short(&step["state"])),
            LaneKind::Done,
        );
    }
    for op in ce["pending"].as_array().into_iter().flatten().take(12) {
        push(
            op,
            format!("{} (pending)", short(&op["description"])),
            LaneKind::Pending,
        );
    }
    push(
        &ce["op"],
        format!("{} (cannot be linearized)", short(&ce["op"]["description"])),
        LaneKind::Named,
    );
    // An operation that never completed runs to the right edge.
    let right = ops
        .iter()
        .flat_map(|o| [o.start, o.end])
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max);
    for o in &mut ops {
        if !o.end.is_finite() {
            o.end = right;
        }
    }
    let unit = if timed {
        LaneUnit::Seconds
    } else {
        LaneUnit::EventIndex
    };
    let caption = format!(
        "Key {}: the last {shown} steps of the longest linearizable prefix (green, with the state after each), \
         the operations pending then (orange) and the operation that cannot be linearized (red){}.",
        short(&ce["key"]),
        if timed { "; fault windows shaded" } else { "" }
    );
    Lanes {
        plot: LanePlot { ops, unit },
        caption,
    }
}

/// The holds of the processes in a lock anomaly, from their events.
fn lock_lanes(a: &Anomaly, h: &History) -> Lanes {
    let idx: Vec<u64> = a.event_indices().to_vec();
    let procs: Vec<Process> = idx
        .iter()
        .filter_map(|&i| h.events.get(i as usize))
        .map(|e| e.process)
        .collect();
    let lo = idx
        .iter()
        .filter_map(|&i| h.events.get(i as usize)?.time)
        .min()
        .unwrap_or(0);
    let hi = idx
        .iter()
        .filter_map(|&i| h.events.get(i as usize)?.time)
        .max()
        .unwrap_or(0);
    let margin = (hi - lo).max(1_000_000) * 2;
    let (from, to) = (lo.saturating_sub(margin), hi + margin);
    let mut ops = Vec::new();
    let mut releases: Vec<(Process, u64)> = Vec::new();
    for op in &h.ops {
        if procs.contains(&op.process) && op.f == "release" {
            releases.push((op.process, op.call_time.unwrap_or(u64::MAX)));
        }
    }
    for op in &h.ops {
        if !procs.contains(&op.process) || op.key != a.key().cloned().or(op.key.clone()) {
            continue;
        }
        let (Some(c), r) = (op.call_time, op.ret_time) else {
            continue;
        };
        let r = r.unwrap_or(to);
        if r < from || c > to {
            continue;
        }
        let involved = idx.contains(&op.call) || op.ret.is_some_and(|x| idx.contains(&x));
        let label = match (&op.f[..], &op.output) {
            ("acquire", Some(v)) if v.get("token").is_some() => {
                format!("acquire (token {})", v["token"])
            }
            _ => op.f.clone(),
        };
        ops.push(LaneOp {
            lane: op.process.to_string(),
            start: c as f64 / 1e9,
            end: r as f64 / 1e9,
            label,
            kind: if involved {
                LaneKind::Named
            } else {
                LaneKind::Done
            },
            mark: None,
        });
        // The hold: from a granted acquire to the process's next release
        // (or the window's end), with the lease's end marked.
        if op.f == "acquire" && op.outcome == Outcome::Ok {
            let until = releases
                .iter()
                .filter(|(p, t)| *p == op.process && *t >= r)
                .map(|(_, t)| *t)
                .min()
                .unwrap_or(to)
                .min(to);
            let out = op.output.as_ref();
            let token = out.and_then(|v| v.get("token")).map(short);
            let lease = out
                .and_then(|v| v.get("lease_ms"))
                .and_then(Value::as_u64)
                .map(|ms| {
                    (
                        r.saturating_add(ms.saturating_mul(1_000_000)) as f64 / 1e9,
                        format!("lease ends ({ms} ms)"),
                    )
                });
            ops.push(LaneOp {
                lane: op.process.to_string(),
                start: r as f64 / 1e9,
                end: until as f64 / 1e9,
                label: match token {
                    Some(t) => format!("holds (token {t})"),
                    None => "holds".into(),
                },
                kind: LaneKind::Hold,
                mark: lease,
            });
        }
    }
    Lanes {
        plot: LanePlot {
            ops,
            unit: LaneUnit::Seconds,
        },
        caption: "The operations of the processes involved around the anomaly (red: the ones it names) and their holds (blue, from an acquire's completion to the next release, with the token; a black line where the lease ends, counted from the grant).".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkers::history::{read_history, Format};

    const LOCK: &str = r#"{"time":100000000,"process":0,"type":"invoke","f":"acquire","value":null}
{"time":150000000,"process":0,"type":"ok","f":"acquire","value":{"token":5,"lease_ms":300}}
{"time":300000000,"process":1,"type":"invoke","f":"acquire","value":null}
{"time":350000000,"process":1,"type":"ok","f":"acquire","value":{"token":3}}
{"time":400000000,"process":0,"type":"invoke","f":"release","value":null}
{"time":420000000,"process":0,"type":"ok","f":"release","value":null}
"#;

    #[test]
    fn the_lock_checker_s_anomaly_has_holds_on_lanes_and_no_other_checker_does() {
        let h = read_history("h", LOCK, Format::Jsonl).unwrap().history;
        let r = Checker::Lock
            .check(&Value::Null, &h, &Default::default())
            .unwrap();
        assert!(!r.anomalies.is_empty());
        let lanes = lanes_of("lock", &r, &h).expect("lock lanes");
        assert_eq!(lanes.plot.unit, LaneUnit::Seconds);
        let holds = lanes.plot.ops.iter().filter(|o| o.kind == LaneKind::Hold);
        assert_eq!(holds.count(), 2);
        let lease = lanes.plot.ops.iter().find_map(|o| o.mark.as_ref());
        assert_eq!(lease.map(|m| m.1.as_str()), Some("lease ends (300 ms)"));
        // The same anomalies under another name draw nothing: no counterexample.
        assert!(lanes_of("set", &r, &h).is_none());
    }
}
