//! test.json: every parameter of a run, written before it starts (and by
//! `check --out` for a bare history, with only system, workload, command).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One checker of a run and its initial state (`init`: a bank's balances).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckerSpec {
    /// A name `Checker::parse` knows: "kv", "lock", "list-append", ...
    pub checker: String,
    #[serde(default)]
    pub init: Value,
}

/// A node of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub name: String,
    pub ip: String,
}

/// test.json. Every field but system and workload is optional (a bare
/// history's has three); fields this version does not know are kept in
/// `rest`, so a file read back writes out the same JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TestFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// The replaying command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The system's and workload's `--opt`s, defaults filled in (values as
    /// the selection wrote them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opts: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkers: Option<Vec<CheckerSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The faults' names (`--nemesis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<Vec<String>>,
    /// The partition strategies drawn from (empty: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_timeout_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// `--rate`: `Some(None)` is written `null` (as fast as answers come).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate: Option<Option<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_cluster: Option<bool>,
    /// shakedown's version and the system's (`null` when it did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<BTreeMap<String, Value>>,
    /// UTC `YYYYMMDDTHHMMSS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// Unix time (ms) of the history's time 0, to find node log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_origin_unix_ms: Option<i64>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A field that is there, even as `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl TestFile {
    /// The checkers' names and initial states (none listed: empty).
    pub fn checker_specs(&self) -> &[CheckerSpec] {
        self.checkers.as_deref().unwrap_or_default()
    }
}
