//! Histories, sequential models and checkers: the pure heart of shakedown.
//!
//! This crate does no I/O beyond parsing and writing history text, knows
//! nothing of SSH, tokio or HTML, and never panics on any input.
//!
//! ```
//! use checkers::history::{read_history, Format};
//! use checkers::linear::{check, Options};
//! use checkers::model::ModelKind;
//!
//! let text = r#"{"process":0,"type":"invoke","f":"write","value":1}
//! {"process":0,"type":"ok","f":"write","value":1}
//! {"process":1,"type":"invoke","f":"read","value":null}
//! {"process":1,"type":"ok","f":"read","value":2}
//! "#;
//! let parsed = read_history("example", text, Format::Auto).unwrap();
//! let result = check(ModelKind::Register, &serde_json::Value::Null, &parsed.history, &Options::default()).unwrap();
//! assert_eq!(result.valid, checkers::Validity::Invalid);
//! ```

pub mod anomaly;
pub mod bank;
mod checker;
pub mod counter;
pub mod eventual;
pub mod faults;
pub mod gen;
pub mod history;
pub mod linear;
pub mod lock;
pub mod model;
pub mod queue;
pub mod rundata;
pub mod set;
pub mod txn;
mod verdict;

pub use checker::Checker;
pub use verdict::{CheckResult, Stats, Validity};
