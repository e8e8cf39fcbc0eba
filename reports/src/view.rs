//! The report's view model: everything the page shows, computed from the
//! stored run (test.json, history.jsonl, results.json, nodes/*/). No HTML
//! here: the template renders it, escaping every string.

use crate::cycle::Cycle;
use crate::error::ReportError;
use crate::lanes::lanes_of;
use crate::plots::{Buckets, LanePlot, Outcome as Plotted, Point, RunPlots, Shade};
use crate::text::short;
use checkers::anomaly::Anomaly as Found;
use checkers::history::{read_history_from, EventType, Format, History, Outcome, Process};
use checkers::rundata::{FaultPlan, ResultsFile, TestFile, Verdict, HEAL_EVENTS};
use checkers::CheckResult;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;

/// A fault in force from `start` to `end` (seconds).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Window {
    pub name: String,
    pub detail: String,
    pub start: f64,
    pub end: f64,
    /// The fault did not take effect (or was not verified) on some node:
    /// listed, never shaded as if it had happened.
    pub failed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    pub kind: String,
    pub severity: String,
    pub message: String,
    /// Operations involved, as rows.
    pub ops: Vec<OpRow>,
    /// A transactional cycle, drawn on the page with its nodes linked into
    /// the timeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle: Option<Cycle>,
    /// A transactional cycle's edges, one sentence each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckerView {
    pub name: String,
    pub verdict: Verdict,
    pub summary: String,
    pub anomalies: Vec<Anomaly>,
    pub hidden_anomalies: usize,
    /// The linearizability counterexample, pretty JSON.
    pub counterexample: Option<String>,
    /// Lanes per process around the failure, and what they show.
    pub lanes: Option<LanePlot>,
    pub lanes_caption: String,
    /// Transactional checkers: one JUnit case per anomaly type the models
    /// forbid or the history showed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anomaly_cases: Vec<AnomalyCase>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AnomalyCase {
    pub kind: String,
    /// The first such anomaly's message, when one made the history invalid.
    pub failure: Option<String>,
    /// How many of them were found (invalid or not).
    pub found: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct OpRow {
    pub index: u64,
    /// The operation's number in the timeline (its id in the history).
    pub op: Option<usize>,
    pub process: String,
    pub kind: String,
    pub f: String,
    pub key: String,
    pub value: String,
    pub time: String,
    pub node: String,
    pub error: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct LatencyRow {
    pub f: String,
    pub count: usize,
    pub p50: String,
    pub p95: String,
    pub p99: String,
}

pub use crate::logs::LogExcerpt;

#[derive(Clone, Debug, Serialize)]
pub struct View {
    /// valid, invalid, unknown, or incomplete (not every fault took effect,
    /// and no checker found the history invalid).
    pub verdict: Verdict,
    /// What did not take effect ("0 of 3 partitions took effect: ..."), if anything.
    pub incomplete: Option<String>,
    /// Every fault or heal that failed: fault, node, error.
    pub faults_failed: Vec<[String; 3]>,
    pub system: String,
    pub workload: String,
    pub nemesis: String,
    pub seed: String,
    pub duration: String,
    pub nodes: String,
    pub versions: String,
    pub command: String,
    pub counts: String,
    pub checkers: Vec<CheckerView>,
    pub windows: Vec<Window>,
    pub latency: Vec<LatencyRow>,
    pub plots_capped: Option<String>,
    /// Latency, throughput and availability, as data (the page draws them).
    pub plots: RunPlots,
    pub logs: Vec<LogExcerpt>,
    /// Every operation, as JSON for the timeline's script (safe inside a
    /// script element), and how many there are.
    pub timeline_json: String,
    pub timeline_ops: usize,
}

/// Most points drawn in the latency plot (an SVG with more gets heavy).
pub const MAX_POINTS: usize = 20_000;

fn secs(ns: Option<u64>) -> String {
    ns.map(|t| format!("{:.3}", t as f64 / 1e9))
        .unwrap_or_default()
}

/// A run file (test.json, results.json) read into its type.
fn read_file<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T, ReportError> {
    let t = crate::files::read_regular(p, 64 << 20)?;
    Ok(checkers::rundata::parse(p, &t)?)
}

fn pct(sorted: &[f64], q: f64) -> String {
    if sorted.is_empty() {
        return String::new();
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    format!("{:.1}", sorted[i])
}

/// The most throughput and availability buckets; a longer run gets wider ones.
const MAX_BUCKETS: usize = 3600;

/// Builds the view of a run from its files.
pub fn build(run_dir: &Path) -> Result<View, ReportError> {
    let test: TestFile = read_file(&run_dir.join("test.json"))?;
    let results: ResultsFile = read_file(&run_dir.join("results.json"))?;
    let hp = run_dir.join("history.jsonl");
    let name = hp.display().to_string();
    let f = crate::files::open_regular(&hp)?;
    let parsed = read_history_from(&name, BufReader::new(f), Format::Jsonl, true)?;
    Ok(build_view(&test, &results, &parsed.history, Some(run_dir)))
}

/// The view of any history: `test` describes it (a bare history checked
/// with `shakedown check --out` has only system, workload and command);
/// `results` is results.json of a run, or one checker's result read as a
/// run ([`ResultsFile::from_one`]); `logs` is a run's directory with nodes/*/.
pub fn build_view(
    test: &TestFile,
    results: &ResultsFile,
    h: &History,
    logs: Option<&Path>,
) -> View {
    // Event index -> timeline row, for links into the timeline.
    let tl = crate::timeline::data(h);
    let op_of = &tl.row_of;
    let row = |i: u64| -> Option<OpRow> {
        let e = h.events.get(i as usize)?;
        Some(OpRow {
            index: e.index,
            op: op_of
                .get(i as usize)
                .filter(|&&o| o != u32::MAX)
                .map(|&o| o as usize),
            process: e.process.to_string(),
            kind: format!("{:?}", e.kind).to_lowercase(),
            f: e.f.clone(),
            key: e.key.as_ref().map(short).unwrap_or_default(),
            value: short(&e.value),
            time: secs(e.time),
            node: e.node.clone().unwrap_or_default(),
            error: e.error.as_ref().map(short).unwrap_or_default(),
        })
    };

    // Fault windows: from a fault's invoke to the next heal's completion.
    let mut windows = Vec::new();
    let mut open: Option<(String, String, f64, bool)> = None;
    let end_of_run = h.events.last().and_then(|e| e.time).unwrap_or(0) as f64 / 1e9;
    for e in h.events.iter().filter(|e| e.process == Process::Nemesis) {
        let t = e.time.unwrap_or(0) as f64 / 1e9;
        let healing = HEAL_EVENTS.contains(&e.f.as_str());
        let failed = e.error.as_ref().is_some_and(|x| !x.is_null());
        match (e.kind, healing) {
            (EventType::Invoke, false) => {
                open = Some((e.f.clone(), fault_words(&e.f, &e.value), t, false))
            }
            (EventType::Info, false) if failed => {
                if let Some(o) = open.as_mut() {
                    o.3 = true;
                }
            }
            (EventType::Info, true) => {
                if let Some((n, d, s, f)) = open.take() {
                    windows.push(Window {
                        name: n,
                        detail: d,
                        start: s,
                        end: t,
                        failed: f,
                    });
                }
            }
            _ => {}
        }
    }
    if let Some((n, d, s, f)) = open {
        windows.push(Window {
            name: n,
            detail: d,
            start: s,
            end: end_of_run,
            failed: f,
        });
    }
    // Only faults that took effect are shaded in the plots.
    let shaded: Vec<Shade> = windows
        .iter()
        .filter(|w| !w.failed)
        .map(|w| Shade {
            name: w.name.clone(),
            start: w.start,
            end: w.end,
        })
        .collect();

    // Latencies, throughput, availability.
    let mut points = Vec::new();
    let mut per_f: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let span = end_of_run.ceil().max(1.0);
    // Buckets of whole seconds, at most MAX_BUCKETS of them: never an
    // allocation sized by a time read from the history (u64::MAX ns, or
    // Unix-epoch nanoseconds, would ask for hundreds of GB).
    let bucket_s = (span / MAX_BUCKETS as f64).ceil().max(1.0);
    let mut buckets = Buckets {
        bucket_s,
        counts: vec![[0u64; 3]; (span / bucket_s) as usize + 1],
    };
    let (mut ok, mut fail, mut info) = (0, 0, 0);
    for op in &h.ops {
        let kind = match op.outcome {
            Outcome::Ok => {
                ok += 1;
                Plotted::Ok
            }
            Outcome::Fail => {
                fail += 1;
                Plotted::Fail
            }
            Outcome::Info => {
                info += 1;
                Plotted::Info
            }
        };
        let (Some(c), Some(r)) = (op.call_time, op.ret_time) else {
            continue;
        };
        let ms = (r.saturating_sub(c)) as f64 / 1e6;
        let t = r as f64 / 1e9;
        points.push(Point {
            t,
            latency_ms: ms,
            kind,
        });
        if kind == Plotted::Ok {
            per_f.entry(op.f.clone()).or_default().push(ms);
        }
        buckets.add(t, kind);
    }
    let total_points = points.len();
    let plots_capped = (total_points > MAX_POINTS).then(|| {
        format!(
            "The latency plot shows a sample of {MAX_POINTS} of {total_points} operations (each kind sampled evenly; info first)."
        )
    });
    if total_points > MAX_POINTS {
        points = sample(points);
    }
    let latency = per_f
        .into_iter()
        .map(|(f, mut v)| {
            v.sort_by(|a, b| a.total_cmp(b));
            LatencyRow {
                count: v.len(),
                p50: pct(&v, 0.5),
                p95: pct(&v, 0.95),
                p99: pct(&v, 0.99),
                f,
            }
        })
        .collect();

    // Checkers, anomalies with their operations.
    let mut checkers = Vec::new();
    for (cname, r) in &results.checkers {
        let verdict = Verdict::of(r.valid, false);
        let anomalies = r
            .anomalies
            .iter()
            .take(50)
            .map(|a| Anomaly {
                kind: a.kind.clone(),
                severity: a.weight().word().into(),
                message: a.message.clone(),
                ops: a
                    .event_indices()
                    .iter()
                    .take(20)
                    .filter_map(|&i| row(i))
                    .collect(),
                cycle: cycle(a, op_of),
                edges: a
                    .extra
                    .get("edges")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        format!(
                            "{} → {} ({}): {}",
                            e["from"].as_str().unwrap_or("?"),
                            e["to"].as_str().unwrap_or("?"),
                            e["type"].as_str().unwrap_or("?"),
                            e["explanation"].as_str().unwrap_or_default()
                        )
                    })
                    .collect(),
            })
            .collect();
        let summary = match verdict {
            Verdict::Unknown => r.unknown_reason.clone().unwrap_or_default(),
            _ => format!("{} operations checked in {} ms", r.ops, r.elapsed_ms),
        };
        let lanes = lanes_of(cname, r, h);
        checkers.push(CheckerView {
            anomaly_cases: anomaly_cases(r),
            lanes_caption: lanes
                .as_ref()
                .map(|l| l.caption.clone())
                .unwrap_or_default(),
            lanes: lanes.map(|l| l.plot),
            name: cname.clone(),
            verdict,
            summary,
            hidden_anomalies: r.anomalies.len().saturating_sub(50),
            anomalies,
            counterexample: r
                .counterexample
                .as_ref()
                .map(|c| serde_json::to_string_pretty(c).unwrap_or_default())
                .map(|s| {
                    if s.len() > 200_000 {
                        format!(
                            "{}\n… (cut at 200 KB; see results.json)",
                            &s[..s.floor_char_boundary(200_000)]
                        )
                    } else {
                        s
                    }
                }),
        });
    }

    // Node logs: the lines near the failing operation's time (or the end).
    let focus = failure_time(results, h);
    let at = match (test.history_origin_unix_ms, focus) {
        (Some(origin), Some(ns)) => Some((
            origin.saturating_add((ns / 1_000_000) as i64),
            ns as f64 / 1e9,
        )),
        _ => None,
    };
    let logs = logs
        .map(|d| crate::logs::node_logs(d, at))
        .unwrap_or_default();

    let faults = &results.faults;
    let incomplete = faults.headline();
    let text = |s: &Option<String>| short(&s.clone().map_or(Value::Null, Value::String));
    View {
        verdict: results.verdict(),
        incomplete,
        faults_failed: faults
            .failed
            .iter()
            .map(|f| {
                [
                    f.fault.clone(),
                    f.node.clone().unwrap_or_default(),
                    short(&Value::String(f.error.clone())),
                ]
            })
            .collect(),
        system: text(&test.system),
        workload: text(&test.workload),
        nemesis: {
            let mut n = test
                .nemesis
                .iter()
                .flatten()
                .map(|f| short(&Value::from(f.as_str())))
                .collect::<Vec<_>>()
                .join(", ");
            if n.is_empty() {
                // A bare history: the faults its nemesis events name.
                let mut names: Vec<&str> = windows.iter().map(|w| w.name.as_str()).collect();
                names.sort();
                names.dedup();
                n = names.join(", ");
            }
            if n.is_empty() {
                "none".into()
            } else {
                n
            }
        },
        seed: test.seed.map(|s| s.to_string()).unwrap_or_default(),
        duration: format!("{:.1} s", end_of_run),
        nodes: test
            .nodes
            .iter()
            .flatten()
            .map(|n| {
                format!(
                    "{} ({})",
                    short(&Value::from(n.name.as_str())),
                    short(&Value::from(n.ip.as_str()))
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        versions: test
            .versions
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k} {}", short(v)))
            .collect::<Vec<_>>()
            .join(", "),
        command: test.command.clone().unwrap_or_default(),
        counts: format!(
            "{} operations: {ok} ok, {fail} fail, {info} info",
            h.ops.len()
        ),
        checkers,
        plots: RunPlots {
            points,
            span,
            buckets,
            shaded,
        },
        windows,
        latency,
        plots_capped,
        logs,
        timeline_ops: tl.rows,
        timeline_json: tl.json,
    }
}

/// At most MAX_POINTS points: info operations first (they are what a reader
/// looks for), then fail, then ok, each kind thinned evenly.
fn sample(points: Vec<Point>) -> Vec<Point> {
    let mut out = Vec::with_capacity(MAX_POINTS);
    for kind in [Plotted::Info, Plotted::Fail, Plotted::Ok] {
        let of: Vec<&Point> = points.iter().filter(|p| p.kind == kind).collect();
        let room = MAX_POINTS - out.len();
        let step = of.len().div_ceil(room.max(1)).max(1);
        out.extend(of.into_iter().step_by(step).take(room).cloned());
    }
    out
}

/// When the failure happened (ns): the invocation of the operation that
/// cannot be linearized, or the earliest event of a checker's first anomaly;
/// the earliest over the checkers.
fn failure_time(results: &ResultsFile, h: &History) -> Option<u64> {
    results
        .checkers
        .values()
        .filter_map(|r| {
            let ce = r.counterexample.as_ref();
            ce.and_then(|c| c["op"]["call_time"].as_u64()).or_else(|| {
                r.anomalies
                    .first()?
                    .event_indices()
                    .iter()
                    .filter_map(|&i| h.events.get(i as usize)?.time)
                    .min()
            })
        })
        .min()
}

/// What a fault did, in words: its plan's description (one for the whole
/// program), or a foreign history's value as it is.
fn fault_words(f: &str, v: &Value) -> String {
    match FaultPlan::from_event(f, v) {
        Some(p) => p.describe(),
        None => match v {
            Value::Array(a) => a.iter().map(short).collect::<Vec<_>>().join(", "),
            v => short(v),
        },
    }
}

/// A transactional anomaly's cycle, when it has one: its `txns` (name,
/// txn, invocation event) and `edges` (from, to, type).
fn cycle(a: &Found, op_of: &[u32]) -> Option<Cycle> {
    let txns = a.extra.get("txns")?.as_array()?;
    let edges = a.extra.get("edges")?.as_array()?;
    let nodes: Vec<crate::cycle::Node> = txns
        .iter()
        .map(|t| crate::cycle::Node {
            name: t["name"].as_str().unwrap_or("?").to_string(),
            label: t["txn"].as_str().unwrap_or_default().to_string(),
            op: t["index"]
                .as_u64()
                .and_then(|i| op_of.get(i as usize))
                .filter(|&&o| o != u32::MAX)
                .map(|&o| o as usize),
        })
        .collect();
    let at = |v: &Value| {
        nodes
            .iter()
            .position(|n| Some(n.name.as_str()) == v.as_str())
    };
    let edges: Vec<crate::cycle::Edge> = edges
        .iter()
        .filter_map(|e| {
            Some(crate::cycle::Edge {
                from: at(&e["from"])?,
                to: at(&e["to"])?,
                kind: e["type"].as_str().unwrap_or("?").to_string(),
            })
        })
        .collect();
    Some(Cycle { nodes, edges })
}

/// One case per anomaly type for a transactional checker's result.
fn anomaly_cases(r: &CheckResult) -> Vec<AnomalyCase> {
    let summary = r.summary.as_ref().unwrap_or(&Value::Null);
    let Some(models) = summary["consistency_models"].as_array() else {
        return Vec::new();
    };
    let names: Vec<&str> = models.iter().filter_map(Value::as_str).collect();
    let Ok(models) = checkers::txn::Models::parse(&names.join(",")) else {
        return Vec::new();
    };
    checkers::txn::ANOMALY_TYPES
        .iter()
        .filter_map(|&t| {
            let of: Vec<&Found> = r.anomalies.iter().filter(|a| a.kind == t).collect();
            let count = summary["counts"][t].as_u64().unwrap_or(of.len() as u64) as usize;
            if !models.forbids(t) && count == 0 {
                return None;
            }
            let failure = of
                .iter()
                .find(|a| a.severity == Some(checkers::anomaly::Severity::Invalid))
                .map(|a| a.message.clone());
            Some(AnomalyCase {
                kind: t.to_string(),
                failure,
                found: count,
            })
        })
        .collect()
}
