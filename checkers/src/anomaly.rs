//! Anomalies as the safety checkers (lock, bank, set, counter) report them.

use crate::history::Operation;
use crate::verdict::{CheckResult, Stats, Validity};
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::Instant;

/// How much an anomaly weighs on the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Certain: makes the verdict invalid.
    Invalid,
    /// Indeterminate operations could explain it: shown, verdict unaffected.
    Possible,
    /// Worth knowing (a release of a lock not held, a recovered element).
    Info,
}

/// One finding, with the history indices of the events involved (the report
/// links them) and one plain sentence.
#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    pub message: String,
    /// Event indices (invocations and completions) of the operations involved.
    pub events: Vec<u64>,
    /// Checker-specific details.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Anomaly {
    pub fn new(
        kind: &'static str,
        severity: Severity,
        key: Option<&Value>,
        message: String,
    ) -> Self {
        Anomaly {
            kind,
            severity,
            key: key.cloned(),
            message,
            events: Vec::new(),
            extra: Map::new(),
        }
    }

    /// Adds an operation's invocation and completion to `events`.
    pub fn op(mut self, op: &Operation) -> Self {
        self.events.push(op.call);
        self.events.extend(op.ret);
        self
    }

    pub fn with(mut self, field: &str, value: Value) -> Self {
        self.extra.insert(field.into(), value);
        self
    }
}

/// How many anomalies of one kind are listed; the rest are counted.
pub const MAX_LISTED: usize = 1000;

/// A result from anomalies: invalid if any is certain.
pub fn result(
    model: &str,
    ops: usize,
    start: Instant,
    anomalies: Vec<Anomaly>,
    extra: Option<Value>,
) -> CheckResult {
    let valid = if anomalies.iter().any(|a| a.severity == Severity::Invalid) {
        Validity::Invalid
    } else {
        Validity::Valid
    };
    // Certain anomalies first, so that the verdict line names one.
    let mut sorted = anomalies;
    sorted.sort_by_key(|a| match a.severity {
        Severity::Invalid => 0,
        Severity::Possible => 1,
        Severity::Info => 2,
    });
    let mut counts: Map<String, Value> = Map::new();
    for a in &sorted {
        let c = counts.entry(a.kind).or_insert(Value::from(0));
        *c = Value::from(c.as_u64().unwrap_or(0) + 1);
    }
    let mut listed: Map<String, Value> = Map::new();
    let anomalies: Vec<Value> = sorted
        .into_iter()
        .filter(|a| {
            let n = listed.entry(a.kind).or_insert(Value::from(0));
            let k = n.as_u64().unwrap_or(0);
            *n = Value::from(k + 1);
            (k as usize) < MAX_LISTED
        })
        .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
        .collect();
    let mut summary = Map::new();
    summary.insert("counts".into(), Value::Object(counts));
    if let Some(Value::Object(m)) = extra {
        summary.extend(m);
    }
    CheckResult {
        valid,
        model: model.to_string(),
        ops,
        elapsed_ms: start.elapsed().as_millis() as u64,
        anomalies,
        counterexample: None,
        unknown_reason: None,
        summary: Some(Value::Object(summary)),
        stats: Stats::default(),
    }
}

/// "process 3" for messages.
pub fn who(op: &Operation) -> String {
    format!("process {}", op.process)
}

/// An integer sum as JSON: exact while it fits 64 bits, else the nearest float
/// (a sum of i64 balances or adds can leave i64's range; it must never wrap).
pub fn int(v: i128) -> Value {
    if let Ok(i) = i64::try_from(v) {
        Value::from(i)
    } else if let Ok(u) = u64::try_from(v) {
        Value::from(u)
    } else {
        Value::from(v as f64)
    }
}
