//! Transactional consistency in the manner of Elle: list-append and
//! rw-register histories.
//!
//! Clients run small transactions of micro-operations (`["append",k,v]`,
//! `["w",k,v]`, `["r",k,observed]`). From what the reads observed we infer,
//! per key, an order of versions, and from it a dependency graph between
//! transactions (ww, wr, rw, after Adya), to which process order and real-time
//! order can be added. Cycles in that graph are anomalies (G0, G1c, G-single,
//! G-nonadjacent, G2-item, and their -process and -realtime variants); other
//! anomalies (G1a, G1b, internal, incompatible-order, ...) are found directly.
//! Which anomalies make a history invalid depends on the consistency models
//! asked for ([`Models`]), as in Elle's table.
//!
//! Representation: keys are interned to `u32`, values to `u64` (integers are
//! their own id), micro-operations live in one flat vector and read lists in
//! one pool, the graph is in CSR form; real-time order is encoded with a chain
//! of virtual nodes, so it costs two edges per transaction, not n².
//!
//! ```
//! use checkers::history::{read_history, Format};
//! use checkers::txn::{check, Models, TxnKind};
//!
//! let text = r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x",1],["r","y",null]]}
//! {"process":1,"type":"invoke","f":"txn","value":[["append","y",1],["r","x",null]]}
//! {"process":0,"type":"ok","f":"txn","value":[["append","x",1],["r","y",[]]]}
//! {"process":1,"type":"ok","f":"txn","value":[["append","y",1],["r","x",[]]]}
//! {"process":2,"type":"invoke","f":"txn","value":[["r","x",null],["r","y",null]]}
//! {"process":2,"type":"ok","f":"txn","value":[["r","x",[1]],["r","y",[1]]]}
//! "#;
//! let h = read_history("example", text, Format::Auto).unwrap().history;
//! let serial = check(TxnKind::ListAppend, Models::parse("serializable").unwrap(), &h, None).unwrap();
//! assert_eq!(serial.valid, checkers::Validity::Invalid); // write skew: G2-item
//! let si = check(TxnKind::ListAppend, Models::parse("snapshot-isolation").unwrap(), &h, None).unwrap();
//! assert_eq!(si.valid, checkers::Validity::Valid);
//! ```

mod append;
mod build;
mod cycles;
mod explain;
pub mod gen;
mod graph;
pub mod read;
mod register;

pub use build::{Mop, MopKind, Txn, Txns};

use crate::anomaly::{self, Anomaly, Severity};
use crate::history::History;
use crate::linear::CheckError;
use crate::{CheckResult, Validity};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Which transactional model a history follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnKind {
    ListAppend,
    RwRegister,
}

impl TxnKind {
    pub fn name(self) -> &'static str {
        match self {
            TxnKind::ListAppend => "list-append",
            TxnKind::RwRegister => "rw-register",
        }
    }
}

/// The consistency models of `--consistency-models`, weakest first.
pub const MODEL_NAMES: [&str; 6] = [
    "read-uncommitted",
    "read-committed",
    "repeatable-read",
    "snapshot-isolation",
    "serializable",
    "strict-serializable",
];

/// Every anomaly type the transactional checkers report, as Elle names them.
pub const ANOMALY_TYPES: [&str; 25] = [
    "G0",
    "G0-process",
    "G0-realtime",
    "G1a",
    "G1b",
    "G1c",
    "G1c-process",
    "G1c-realtime",
    "G-single",
    "G-single-process",
    "G-single-realtime",
    "G-nonadjacent",
    "G-nonadjacent-process",
    "G-nonadjacent-realtime",
    "G2-item",
    "G2-item-process",
    "G2-item-realtime",
    "incompatible-order",
    "duplicate-elements",
    "internal",
    "future-read",
    "dirty-update",
    "cyclic-versions",
    "lost-update",
    "garbage-read",
];

/// A set of consistency models the history must satisfy (all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Models(u8);

impl Default for Models {
    fn default() -> Self {
        Models::STRICT_SERIALIZABLE
    }
}

/// A `--consistency-models` list that names no model or an unknown one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelsError {
    #[error("{0:?} is not a consistency model; choose from {known}", known = MODEL_NAMES.join(", "))]
    Unknown(String),
    #[error("no consistency model given")]
    None,
}

impl Models {
    /// The default, as Elle's.
    pub const STRICT_SERIALIZABLE: Models = Models(1 << 5);

    /// Parses `M[,M...]`; `Err` names the unknown model.
    pub fn parse(s: &str) -> Result<Models, ModelsError> {
        let mut bits = 0u8;
        for part in s.split(',').map(str::trim) {
            let Some(i) = MODEL_NAMES.iter().position(|m| *m == part) else {
                return Err(ModelsError::Unknown(part.to_string()));
            };
            bits |= 1 << i;
        }
        if bits == 0 {
            return Err(ModelsError::None);
        }
        Ok(Models(bits))
    }

    pub fn names(self) -> Vec<&'static str> {
        (0..6)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| MODEL_NAMES[i])
            .collect()
    }

    /// Whether any of these models forbids an anomaly named as Elle names it.
    pub fn forbids(self, anomaly: &str) -> bool {
        (0..6).any(|i| self.0 & (1 << i) != 0 && forbidden_by(MODEL_NAMES[i], anomaly))
    }
}

/// Elle's table, reduced to our six models: which anomalies each model
/// proscribes (directly or because a weaker model it implies does).
pub fn forbidden_by(model: &str, anomaly: &str) -> bool {
    const RU: &[&str] = &[
        "G0",
        "duplicate-elements",
        "cyclic-versions",
        "garbage-read",
    ];
    const RC: &[&str] = &[
        "G1a",
        "G1b",
        "G1c",
        "incompatible-order",
        "dirty-update",
        "future-read",
    ];
    const RR: &[&str] = &["G-single", "G-nonadjacent", "G2-item", "lost-update"];
    const SI: &[&str] = &["G-single", "G-nonadjacent", "lost-update", "internal"];
    let has = |list: &[&str]| list.contains(&anomaly);
    let ru = has(RU);
    let rc = ru || has(RC);
    let rr = rc || has(RR);
    let si = rc || has(SI);
    let ser = rr || si;
    // Process order is part of real-time order, so strict serializability
    // forbids every -process and -realtime cycle too.
    let strict = ser
        || anomaly
            .strip_suffix("-process")
            .or_else(|| anomaly.strip_suffix("-realtime"))
            .is_some_and(|base| forbidden_by("serializable", base));
    match model {
        "read-uncommitted" => ru,
        "read-committed" => rc,
        "repeatable-read" => rr,
        "snapshot-isolation" => si,
        "serializable" => ser,
        "strict-serializable" => strict,
        _ => false,
    }
}

/// One anomaly found, before it is judged against the models.
pub(crate) struct Found {
    pub kind: &'static str,
    pub key: Option<Value>,
    pub message: String,
    pub events: Vec<u64>,
    pub extra: Vec<(&'static str, Value)>,
}

/// Checks a transactional history. `time_limit` bounds the cycle search
/// (default 60 s); when it runs out before every forbidden kind of cycle
/// was ruled out, and nothing forbidden was found, the answer is unknown.
pub fn check(
    kind: TxnKind,
    models: Models,
    history: &History,
    time_limit: Option<Duration>,
) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let txns = Txns::from_history(kind, history)?;
    Ok(check_txns(kind, models, &txns, start, time_limit))
}

/// Checks transactions already read (the streaming reader's path).
pub fn check_txns(
    kind: TxnKind,
    models: Models,
    txns: &Txns,
    start: Instant,
    time_limit: Option<Duration>,
) -> CheckResult {
    let deadline = start + time_limit.unwrap_or(Duration::from_secs(60));
    let t0 = Instant::now();
    let (mut found, edges) = match kind {
        TxnKind::ListAppend => append::analyse(txns),
        TxnKind::RwRegister => register::analyse(txns),
    };
    let t1 = Instant::now();
    let g = graph::Graph::build(txns, edges);
    let t2 = Instant::now();
    let search = cycles::search(&g, txns, kind, deadline);
    let t3 = Instant::now();
    let ms = |a: Instant, b: Instant| (b - a).as_millis() as u64;
    found.extend(search.found);
    let mut types: Vec<&str> = found.iter().map(|f| f.kind).collect();
    types.sort();
    types.dedup();
    let not: Vec<&str> = MODEL_NAMES
        .iter()
        .copied()
        .filter(|m| types.iter().any(|t| forbidden_by(m, t)))
        .collect();
    let anomalies: Vec<Anomaly> = found
        .into_iter()
        .map(|f| {
            let sev = if models.forbids(f.kind) {
                Severity::Invalid
            } else {
                Severity::Info
            };
            // The type leads, so that a verdict line names it.
            let message = format!("{}: {}", f.kind, f.message);
            let mut a = Anomaly::new(f.kind, sev, f.key.as_ref(), message);
            a.events = Some(f.events);
            for (k, v) in f.extra {
                a = a.with(k, v);
            }
            a
        })
        .collect();
    let extra = json!({
        "consistency_models": models.names(),
        "anomaly_types": types,
        "not": not,
        "txns": txns.len(),
        "edges": g.edge_count(),
        "phases_ms": {
            "read": ms(start, t0),
            "analyse": ms(t0, t1),
            "graph": ms(t1, t2),
            "cycles": ms(t2, t3),
        },
    });
    let mut r = anomaly::result(kind.name(), txns.len(), start, anomalies, Some(extra));
    let forbidden_unsearched: Vec<&str> = search
        .incomplete
        .iter()
        .copied()
        .filter(|t| models.forbids(t))
        .collect();
    if r.valid == Validity::Valid && !forbidden_unsearched.is_empty() {
        r.valid = Validity::Unknown;
        r.unknown_reason = Some(format!(
            "the time limit ran out before the search for {} cycles finished",
            forbidden_unsearched.join(", ")
        ));
    }
    r.elapsed_ms = start.elapsed().as_millis() as u64;
    r
}
