//! The files that pass between the crates, as types: test.json
//! ([`TestFile`]), results.json ([`ResultsFile`], each checker's
//! [`CheckResult`](crate::CheckResult) with typed anomalies), a fault's plan
//! ([`FaultPlan`], the history's and the journal's) and the fault journal
//! ([`JournalEntry`]). Pure data: reading and writing them is the harness'
//! and the binary's; each reads back exactly what it wrote (the JSON on disk
//! is docs/formats.md's).

pub mod fault;
pub mod journal;
pub mod results_file;
pub mod test_file;

pub use fault::{
    ClockShift, DelaySpec, Fault, FaultOption, FaultPlan, Grudge, NodeFailure, HEAL_EVENTS,
};
pub use journal::JournalEntry;
pub use results_file::{ResultsFile, Verdict};
pub use test_file::{CheckerSpec, NodeEntry, TestFile};

use std::path::Path;

/// A run file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Not JSON, or not of the file's shape: serde's message names line and column.
    #[error("{path}: {source}")]
    Malformed {
        path: String,
        source: serde_json::Error,
    },
}

/// Parses a run file's text (test.json, results.json) into its type.
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &[u8]) -> Result<T, RunFileError> {
    serde_json::from_slice(text).map_err(|source| RunFileError::Malformed {
        path: path.display().to_string(),
        source,
    })
}

/// A run file's text as shakedown writes it: pretty JSON with every
/// object's keys in order, and a final newline.
pub fn to_text<T: serde::Serialize>(value: &T) -> String {
    // Through `Value`, whose objects keep their keys sorted: the bytes of
    // results.json do not depend on the order of a struct's fields.
    let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}
