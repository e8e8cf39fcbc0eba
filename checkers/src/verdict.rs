//! The result of a checker, as `check --json` and results.json carry it.

use serde::{Serialize, Serializer};
use serde_json::Value;

/// Three outcomes, kept apart: never report Valid when a budget ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Validity {
    Valid,
    Unknown,
    Invalid,
}

impl Validity {
    /// The exit code of CONTRACT.md.
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 2,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        }
    }

    /// Combines verdicts: invalid beats unknown beats valid.
    pub fn worst(self, other: Validity) -> Validity {
        self.max(other)
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub valid: Validity,
    pub model: String,
    /// Client operations in the history.
    pub ops: usize,
    pub elapsed_ms: u64,
    /// Each anomaly: at least "type" and "message".
    pub anomalies: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Checker-specific totals: anomaly counts, a bank's drift, a set's tallies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
    /// Search statistics, for benchmarks and curiosity.
    pub stats: Stats,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Independent parts (keys) checked.
    pub parts: usize,
    /// Operations given to the search after pruning.
    pub searched_ops: usize,
    /// Crashed operations left out because nothing could observe them.
    pub pruned_ops: usize,
    /// Crashed operations given a completion from their first observer.
    pub bounded_ops: usize,
    /// Model steps taken.
    pub steps: u64,
    /// Configurations cached.
    pub cached: u64,
}

impl CheckResult {
    /// The distinct keys the anomalies name, in order of first mention.
    pub fn failing_keys(&self) -> Vec<&Value> {
        let mut seen = rustc_hash::FxHashSet::default();
        self.anomalies
            .iter()
            .filter_map(|a| a.get("key"))
            .filter(|k| !k.is_null() && seen.insert(k.to_string()))
            .collect()
    }

    /// One sentence for the verdict line.
    pub fn summary(&self) -> String {
        match self.valid {
            Validity::Valid => format!(
                "valid ({}, {} ops, {} ms)",
                self.model, self.ops, self.elapsed_ms
            ),
            Validity::Unknown => format!(
                "unknown ({}, {} ops, {} ms): {}",
                self.model,
                self.ops,
                self.elapsed_ms,
                self.unknown_reason.as_deref().unwrap_or("no reason given")
            ),
            Validity::Invalid => {
                let why = self
                    .anomalies
                    .first()
                    .and_then(|a| a.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("an anomaly was found");
                let keys = self.failing_keys();
                let also = if keys.len() > 1 {
                    format!(
                        " ({} keys fail: {})",
                        keys.len(),
                        keys.iter()
                            .map(|k| k.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    String::new()
                };
                let undecided = self
                    .summary
                    .as_ref()
                    .and_then(|s| s.get("undecided_keys"))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let more = match undecided {
                    0 => String::new(),
                    1 => "; 1 more key was not searched to the end".to_string(),
                    n => format!("; {n} more keys were not searched to the end"),
                };
                format!(
                    "invalid ({}, {} ops, {} ms): {}{}{}",
                    self.model, self.ops, self.elapsed_ms, why, also, more
                )
            }
        }
    }
}
