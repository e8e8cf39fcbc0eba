//! The result of a checker, as `check --json` and results.json carry it.

use crate::anomaly::Anomaly;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Three outcomes, kept apart: never report Valid when a budget ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Validity {
    Valid,
    Unknown,
    Invalid,
}

impl Validity {
    /// The exit code of docs/formats.md.
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 2,
        }
    }

    /// The verdict's word, everywhere it is shown: "valid", "invalid", "unknown".
    pub fn word(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        }
    }

    /// The JSON of `"valid"`: true, false or "unknown".
    pub fn to_json(self) -> Value {
        match self {
            Validity::Valid => Value::Bool(true),
            Validity::Invalid => Value::Bool(false),
            Validity::Unknown => Value::from("unknown"),
        }
    }

    /// `"valid"` read back: anything but true and false is unknown.
    pub fn from_json(v: &Value) -> Validity {
        match v {
            Value::Bool(true) => Validity::Valid,
            Value::Bool(false) => Validity::Invalid,
            _ => Validity::Unknown,
        }
    }

    /// Combines verdicts: invalid beats unknown beats valid.
    pub fn worst(self, other: Validity) -> Validity {
        self.max(other)
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(if b {
                Validity::Valid
            } else {
                Validity::Invalid
            }),
            Value::String(s) if s == "unknown" => Ok(Validity::Unknown),
            v => Err(serde::de::Error::custom(format!(
                "\"valid\" is {v}: true, false or \"unknown\" expected"
            ))),
        }
    }
}

/// One checker's result: `check --json`, `check --out`'s results.json and
/// each entry of a run's results.json; read back as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    pub valid: Validity,
    pub model: String,
    /// Client operations in the history.
    pub ops: usize,
    pub elapsed_ms: u64,
    /// Each anomaly: its type, message and the checker's own details.
    pub anomalies: Vec<Anomaly>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Checker-specific totals: anomaly counts, a bank's drift, a set's tallies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
    /// Search statistics, for benchmarks and curiosity.
    #[serde(default)]
    pub stats: Stats,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
            .filter_map(Anomaly::key)
            .filter(|k| seen.insert(k.to_string()))
            .collect()
    }

    /// What a verdict line says after the word: the first anomaly's
    /// sentence, or why the checker could not decide.
    pub fn reason(&self) -> Option<&str> {
        self.anomalies
            .first()
            .map(|a| a.message.as_str())
            .or(self.unknown_reason.as_deref())
    }

    /// One sentence for the verdict line.
    pub fn summary(&self) -> String {
        match self.valid {
            Validity::Valid => format!(
                "{} ({}, {} ops, {} ms)",
                self.valid.word(),
                self.model,
                self.ops,
                self.elapsed_ms
            ),
            Validity::Unknown => format!(
                "{} ({}, {} ops, {} ms): {}",
                self.valid.word(),
                self.model,
                self.ops,
                self.elapsed_ms,
                self.unknown_reason.as_deref().unwrap_or("no reason given")
            ),
            Validity::Invalid => {
                let why = self
                    .anomalies
                    .first()
                    .map(|a| a.message.as_str())
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
                    "{} ({}, {} ops, {} ms): {}{}{}",
                    self.valid.word(),
                    self.model,
                    self.ops,
                    self.elapsed_ms,
                    why,
                    also,
                    more
                )
            }
        }
    }
}
