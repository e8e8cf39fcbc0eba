//! Anomalies as the safety checkers (lock, bank, set, counter) report them.

use crate::history::Operation;
use crate::verdict::{CheckResult, Stats, Validity};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::time::Instant;

/// How much an anomaly weighs on the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Certain: makes the verdict invalid.
    Invalid,
    /// Indeterminate operations could explain it: shown, verdict unaffected.
    Possible,
    /// Worth knowing (a release of a lock not held, a recovered element).
    Info,
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Invalid => "invalid",
            Severity::Possible => "possible",
            Severity::Info => "info",
        }
    }
}

/// One finding, as every checker reports it and results.json holds it: the
/// fields every anomaly has, typed, and the checker's own details in
/// `extra`, kept as they were (a result read back writes out the same JSON).
/// On disk it is one object with its keys in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    /// `"type"`: "nonlinearizable", "double-grant", "G-single", ...
    pub kind: String,
    /// Absent only in anomalies of older results (read as invalid).
    pub severity: Option<Severity>,
    /// The independent key; `Some(Value::Null)` when written as `null`.
    pub key: Option<Value>,
    /// One plain sentence.
    pub message: String,
    /// Event indices (invocations and completions) of the operations involved.
    pub events: Option<Vec<u64>>,
    /// Checker-specific details.
    pub extra: Map<String, Value>,
}

impl Anomaly {
    pub fn new(
        kind: impl Into<String>,
        severity: Severity,
        key: Option<&Value>,
        message: String,
    ) -> Self {
        Anomaly {
            kind: kind.into(),
            severity: Some(severity),
            key: key.cloned(),
            message,
            events: Some(Vec::new()),
            extra: Map::new(),
        }
    }

    /// Adds an operation's invocation and completion to `events`.
    pub fn op(mut self, op: &Operation) -> Self {
        let events = self.events.get_or_insert_with(Vec::new);
        events.push(op.call);
        events.extend(op.ret);
        self
    }

    pub fn with(mut self, field: &str, value: Value) -> Self {
        self.extra.insert(field.into(), value);
        self
    }

    /// The severity that counts: an anomaly without one is invalid.
    pub fn weight(&self) -> Severity {
        self.severity.unwrap_or(Severity::Invalid)
    }

    /// The events involved (none listed: empty).
    pub fn event_indices(&self) -> &[u64] {
        self.events.as_deref().unwrap_or_default()
    }

    /// The key, unless absent or null.
    pub fn key(&self) -> Option<&Value> {
        self.key.as_ref().filter(|k| !k.is_null())
    }

    /// The anomaly as one JSON object (keys in order).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = self.extra.clone();
        m.insert("type".into(), Value::from(self.kind.clone()));
        if let Some(s) = self.severity {
            m.insert("severity".into(), Value::from(s.word()));
        }
        if let Some(k) = &self.key {
            m.insert("key".into(), k.clone());
        }
        m.insert("message".into(), Value::from(self.message.clone()));
        if let Some(e) = &self.events {
            m.insert("events".into(), Value::from(e.clone()));
        }
        m
    }

    /// An anomaly from its JSON object: "type" and "message" are needed.
    pub fn from_json(mut m: Map<String, Value>) -> Result<Anomaly, String> {
        let text = |m: &mut Map<String, Value>, k: &str| match m.remove(k) {
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(format!("an anomaly's {k:?} is {v}, not a string")),
            None => Err(format!("an anomaly has no {k:?}")),
        };
        let kind = text(&mut m, "type")?;
        let message = text(&mut m, "message")?;
        let severity = match m.remove("severity") {
            None => None,
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| {
                format!("an anomaly's severity {v} is not invalid, possible or info")
            })?),
        };
        let events =
            match m.remove("events") {
                None => None,
                Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| {
                    format!("an anomaly's events {v} are not a list of event indices")
                })?),
            };
        Ok(Anomaly {
            kind,
            severity,
            key: m.remove("key"),
            message,
            events,
            extra: m,
        })
    }
}

impl Serialize for Anomaly {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Anomaly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Map::<String, Value>::deserialize(d)?;
        Anomaly::from_json(m).map_err(serde::de::Error::custom)
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
    let valid = if anomalies.iter().any(|a| a.weight() == Severity::Invalid) {
        Validity::Invalid
    } else {
        Validity::Valid
    };
    // Certain anomalies first, so that the verdict line names one.
    let mut sorted = anomalies;
    sorted.sort_by_key(|a| match a.weight() {
        Severity::Invalid => 0,
        Severity::Possible => 1,
        Severity::Info => 2,
    });
    let mut counts: Map<String, Value> = Map::new();
    for a in &sorted {
        let c = counts.entry(a.kind.clone()).or_insert(Value::from(0));
        *c = Value::from(c.as_u64().unwrap_or(0) + 1);
    }
    let mut listed: Map<String, Value> = Map::new();
    let anomalies: Vec<Anomaly> = sorted
        .into_iter()
        .filter(|a| {
            let n = listed.entry(a.kind.clone()).or_insert(Value::from(0));
            let k = n.as_u64().unwrap_or(0);
            *n = Value::from(k + 1);
            (k as usize) < MAX_LISTED
        })
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
