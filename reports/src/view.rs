//! The report's view model: everything the page shows, computed from the
//! stored run (test.json, history.jsonl, results.json, nodes/*/). No HTML
//! here: the template renders it, escaping every string.

use checkers::history::{read_history_from, EventType, Format, Outcome, Process};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;

/// One point of the latency plot: seconds, milliseconds, 0 ok / 1 fail / 2 info.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub t: f64,
    pub latency_ms: f64,
    pub kind: u8,
}

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
    /// A transactional cycle drawn (SVG), its nodes linked into the timeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycle_svg: Option<String>,
    /// A transactional cycle's edges, one sentence each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckerView {
    pub name: String,
    pub verdict: String,
    pub summary: String,
    pub anomalies: Vec<Anomaly>,
    pub hidden_anomalies: usize,
    /// The linearizability counterexample, pretty JSON.
    pub counterexample: Option<String>,
    /// Lanes per process around the failure (SVG), and what they show.
    pub lanes_svg: Option<String>,
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
    pub verdict: String,
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
    pub latency_svg: String,
    pub throughput_svg: String,
    pub availability_svg: String,
    pub logs: Vec<LogExcerpt>,
    /// Every operation, as JSON for the timeline's script (safe inside a
    /// script element), and how many there are.
    pub timeline_json: String,
    pub timeline_ops: usize,
}

/// Most points drawn in the latency plot (an SVG with more gets heavy).
pub const MAX_POINTS: usize = 20_000;

fn short(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

fn secs(ns: Option<u64>) -> String {
    ns.map(|t| format!("{:.3}", t as f64 / 1e9))
        .unwrap_or_default()
}

fn read_json(p: &Path) -> Result<Value, String> {
    let t = crate::files::read_regular(p, 64 << 20)?;
    serde_json::from_slice(&t).map_err(|e| format!("{}: {e}", p.display()))
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

/// Builds the view of a run; the plots are rendered here as SVG strings.
pub fn build(run_dir: &Path) -> Result<View, String> {
    let test = read_json(&run_dir.join("test.json"))?;
    let results = read_json(&run_dir.join("results.json"))?;
    let hp = run_dir.join("history.jsonl");
    let name = hp.display().to_string();
    let f = crate::files::open_regular(&hp)?;
    let parsed = read_history_from(&name, BufReader::new(f), Format::Jsonl, true)
        .map_err(|e| e.to_string())?;
    build_view(&test, &results, &parsed.history, Some(run_dir))
}

/// The view of any history: `test` may be null (a bare history checked with
/// `shakedown check --out`); `results` is results.json of a run, or one
/// checker's result; `logs` is a run's directory with nodes/*/.
pub fn build_view(
    test: &Value,
    results: &Value,
    h: &checkers::history::History,
    logs: Option<&Path>,
) -> Result<View, String> {
    // One checker's result (check --out) reads as a run with one checker.
    let wrapped;
    let results = if results.get("checkers").is_some() {
        results
    } else {
        let name = results["model"].as_str().unwrap_or("checker").to_string();
        wrapped = serde_json::json!({"valid": results["valid"], "checkers": {name: results}});
        &wrapped
    };

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
        let healing = checkers::faults::HEAL_EVENTS.contains(&e.f.as_str());
        let failed = e.error.as_ref().is_some_and(|x| !x.is_null());
        match (e.kind, healing) {
            (EventType::Invoke, false) => {
                open = Some((e.f.clone(), fault_words(&e.value), t, false))
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
    let shaded: Vec<Window> = windows.iter().filter(|w| !w.failed).cloned().collect();

    // Latencies, throughput, availability.
    let mut points = Vec::new();
    let mut per_f: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let span = end_of_run.ceil().max(1.0);
    // Buckets of whole seconds, at most MAX_BUCKETS of them: never an
    // allocation sized by a time read from the history (u64::MAX ns, or
    // Unix-epoch nanoseconds, would ask for hundreds of GB).
    let bucket_s = (span / MAX_BUCKETS as f64).ceil().max(1.0);
    let mut per_sec = vec![[0u64; 3]; (span / bucket_s) as usize + 1];
    let (mut ok, mut fail, mut info) = (0, 0, 0);
    for op in &h.ops {
        let kind = match op.outcome {
            Outcome::Ok => {
                ok += 1;
                0
            }
            Outcome::Fail => {
                fail += 1;
                1
            }
            Outcome::Info => {
                info += 1;
                2
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
        if kind == 0 {
            per_f.entry(op.f.clone()).or_default().push(ms);
        }
        if let Some(b) = per_sec.get_mut((t / bucket_s) as usize) {
            b[kind as usize] += 1;
        }
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
    for (cname, r) in results["checkers"].as_object().into_iter().flatten() {
        let verdict = match &r["valid"] {
            Value::Bool(true) => "valid",
            Value::Bool(false) => "invalid",
            _ => "unknown",
        };
        let all: Vec<&Value> = r["anomalies"].as_array().into_iter().flatten().collect();
        let anomalies = all
            .iter()
            .take(50)
            .map(|a| Anomaly {
                kind: a["type"].as_str().unwrap_or("anomaly").into(),
                severity: a["severity"].as_str().unwrap_or("invalid").into(),
                message: a["message"].as_str().unwrap_or_default().into(),
                ops: a["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.as_u64())
                    .take(20)
                    .filter_map(row)
                    .collect(),
                cycle_svg: cycle_svg(a, op_of),
                edges: a["edges"]
                    .as_array()
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
            "unknown" => r["unknown_reason"].as_str().unwrap_or_default().to_string(),
            _ => format!("{} operations checked in {} ms", r["ops"], r["elapsed_ms"]),
        };
        let (lanes_svg, lanes_caption) = match (r.get("counterexample"), all.first()) {
            (Some(ce), _) if ce.is_object() => linear_lanes(ce, &shaded),
            (_, Some(a)) if cname == "lock" => lock_lanes(a, h, &shaded),
            _ => (None, String::new()),
        };
        checkers.push(CheckerView {
            anomaly_cases: anomaly_cases(r),
            lanes_svg,
            lanes_caption,
            name: cname.clone(),
            verdict: verdict.into(),
            summary,
            hidden_anomalies: all.len().saturating_sub(50),
            anomalies,
            counterexample: r
                .get("counterexample")
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
    let at = match (test["history_origin_unix_ms"].as_i64(), focus) {
        (Some(origin), Some(ns)) => Some((
            origin.saturating_add((ns / 1_000_000) as i64),
            ns as f64 / 1e9,
        )),
        _ => None,
    };
    let logs = logs
        .map(|d| crate::logs::node_logs(d, at))
        .unwrap_or_default();

    let faults: checkers::faults::FaultSummary =
        serde_json::from_value(results["faults"].clone()).unwrap_or_default();
    let incomplete = faults.headline();
    let verdict = match &results["valid"] {
        Value::Bool(false) => "invalid",
        _ if incomplete.is_some() => "incomplete",
        Value::Bool(true) => "valid",
        _ => "unknown",
    };
    let list = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(short).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    Ok(View {
        verdict: verdict.into(),
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
        system: short(&test["system"]),
        workload: short(&test["workload"]),
        nemesis: {
            let mut n = list(&test["nemesis"]);
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
        seed: short(&test["seed"]),
        duration: format!("{:.1} s", end_of_run),
        nodes: test["nodes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|n| format!("{} ({})", short(&n["name"]), short(&n["ip"])))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        versions: test["versions"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {}", short(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        command: short_long(&test["command"]),
        counts: format!(
            "{} operations: {ok} ok, {fail} fail, {info} info",
            h.ops.len()
        ),
        checkers,
        latency_svg: crate::plots::latency(&points, &shaded, span)?,
        throughput_svg: crate::plots::throughput(&per_sec, bucket_s, &shaded)?,
        availability_svg: crate::plots::availability(&per_sec, bucket_s, &shaded)?,
        windows,
        latency,
        plots_capped,
        logs,
        timeline_ops: tl.rows,
        timeline_json: tl.json,
    })
}

/// At most MAX_POINTS points: info operations first (they are what a reader
/// looks for), then fail, then ok, each kind thinned evenly.
fn sample(points: Vec<Point>) -> Vec<Point> {
    let mut out = Vec::with_capacity(MAX_POINTS);
    for kind in [2u8, 1, 0] {
        let of: Vec<&Point> = points.iter().filter(|p| p.kind == kind).collect();
        let room = MAX_POINTS - out.len();
        let step = of.len().div_ceil(room.max(1)).max(1);
        out.extend(of.into_iter().step_by(step).take(room).cloned());
    }
    out
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
fn linear_lanes(ce: &Value, windows: &[Window]) -> (Option<String>, String) {
    let mut ops = Vec::new();
    let mut timed = true;
    let mut push = |op: &Value, label: String, kind: u8| {
        if let Some((a, b, t)) = span_of(op) {
            timed &= t;
            ops.push(crate::plots::LaneOp {
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
            0,
        );
    }
    for op in ce["pending"].as_array().into_iter().flatten().take(12) {
        push(op, format!("{} (pending)", short(&op["description"])), 1);
    }
    push(
        &ce["op"],
        format!("{} (cannot be linearized)", short(&ce["op"]["description"])),
        2,
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
    let w: &[Window] = if timed { windows } else { &[] };
    let svg = crate::plots::lanes(&ops, w, if timed { "seconds" } else { "event index" }).ok();
    let caption = format!(
        "Key {}: the last {shown} steps of the longest linearizable prefix (green, with the state after each), \
         the operations pending then (orange) and the operation that cannot be linearized (red){}.",
        short(&ce["key"]),
        if timed { "; fault windows shaded" } else { "" }
    );
    (svg, caption)
}

/// The holds of the processes in a lock anomaly, from their events.
fn lock_lanes(
    a: &Value,
    h: &checkers::history::History,
    windows: &[Window],
) -> (Option<String>, String) {
    let idx: Vec<u64> = a["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
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
        if !procs.contains(&op.process)
            || op.key
                != a.get("key")
                    .cloned()
                    .filter(|k| !k.is_null())
                    .or(op.key.clone())
        {
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
        ops.push(crate::plots::LaneOp {
            lane: op.process.to_string(),
            start: c as f64 / 1e9,
            end: r as f64 / 1e9,
            label,
            kind: if involved { 2 } else { 0 },
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
            ops.push(crate::plots::LaneOp {
                lane: op.process.to_string(),
                start: r as f64 / 1e9,
                end: until as f64 / 1e9,
                label: match token {
                    Some(t) => format!("holds (token {t})"),
                    None => "holds".into(),
                },
                kind: 3,
                mark: lease,
            });
        }
    }
    let svg = crate::plots::lanes(&ops, windows, "seconds").ok();
    (svg, "The operations of the processes involved around the anomaly (red: the ones it names) and their holds (blue, from an acquire's completion to the next release, with the token; a black line where the lease ends, counted from the grant).".into())
}

/// What a fault did, in words: "halves: n1 drops n2,n3; ..." for a
/// partition, the nodes for kill and pause.
fn fault_words(v: &Value) -> String {
    if let Some(g) = v.get("grudge").and_then(Value::as_object) {
        let cuts: Vec<String> = g
            .iter()
            .filter_map(|(n, peers)| {
                let p: Vec<String> = peers.as_array()?.iter().map(short).collect();
                (!p.is_empty()).then(|| format!("{n} drops {}", p.join(",")))
            })
            .collect();
        return format!("{}: {}", short(&v["strategy"]), cuts.join("; "));
    }
    if let Some(d) = v.get("delay_ms") {
        return format!(
            "every packet between nodes delayed {} ms ± {} ms, reorder {}, duplicate {}",
            short(d),
            short(&v["jitter_ms"]),
            short(&v["reorder"]),
            short(&v["duplicate"])
        );
    }
    if let Some(p) = v.get("probability") {
        return format!("{} of incoming packets dropped", short(p));
    }
    match v {
        Value::Array(a) => a.iter().map(short).collect::<Vec<_>>().join(", "),
        // A clock fault: each node's shift (seconds), strobe or skew.
        Value::Object(m)
            if m.values()
                .all(|x| x.is_number() || x.get("strobe").is_some() || x.get("skew").is_some()) =>
        {
            m.iter()
                .map(|(n, x)| match (x.get("strobe"), x.get("skew")) {
                    (Some(d), _) => format!(
                        "{n} clock strobing 0/{} s every {} ms",
                        short(d),
                        short(&x["period_ms"])
                    ),
                    (None, Some(r)) => format!("{n} clock running at {}x", short(r)),
                    (None, None) => format!("{n} clock {} s", short(x)),
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
        v => short(v),
    }
}

fn short_long(v: &Value) -> String {
    v.as_str().map(String::from).unwrap_or_default()
}

/// When the failure happened (ns): the invocation of the operation that
/// cannot be linearized, or the earliest event of a checker's first anomaly;
/// the earliest over the checkers.
fn failure_time(results: &Value, h: &checkers::history::History) -> Option<u64> {
    results["checkers"]
        .as_object()?
        .values()
        .filter_map(|r| {
            r["counterexample"]["op"]["call_time"].as_u64().or_else(|| {
                r["anomalies"][0]["events"]
                    .as_array()?
                    .iter()
                    .filter_map(|i| h.events.get(i.as_u64()? as usize)?.time)
                    .min()
            })
        })
        .min()
}

/// A transactional anomaly's cycle as SVG, when it has one: its `txns`
/// (name, txn, invocation event) and `edges` (from, to, type).
fn cycle_svg(a: &Value, op_of: &[u32]) -> Option<String> {
    let txns = a["txns"].as_array()?;
    let edges = a["edges"].as_array()?;
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
    crate::cycle::svg(&nodes, &edges)
}

/// One case per anomaly type for a transactional checker's result.
fn anomaly_cases(r: &Value) -> Vec<AnomalyCase> {
    let Some(models) = r["summary"]["consistency_models"].as_array() else {
        return Vec::new();
    };
    let names: Vec<&str> = models.iter().filter_map(Value::as_str).collect();
    let Ok(models) = checkers::txn::Models::parse(&names.join(",")) else {
        return Vec::new();
    };
    let all = r["anomalies"].as_array().map_or(&[][..], |a| a.as_slice());
    checkers::txn::ANOMALY_TYPES
        .iter()
        .filter_map(|&t| {
            let of: Vec<&Value> = all.iter().filter(|a| a["type"] == t).collect();
            let count = r["summary"]["counts"][t]
                .as_u64()
                .unwrap_or(of.len() as u64) as usize;
            if !models.forbids(t) && count == 0 {
                return None;
            }
            let failure = of
                .iter()
                .find(|a| a["severity"] == "invalid")
                .map(|a| a["message"].as_str().unwrap_or_default().to_string());
            Some(AnomalyCase {
                kind: t.to_string(),
                failure,
                found: count,
            })
        })
        .collect()
}
