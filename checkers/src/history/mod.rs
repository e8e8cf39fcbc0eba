//! Histories: events as recorded, operations as checked.
//!
//! An [`Event`] is one line of a history: an invocation or a completion. A
//! [`History`] pairs them into [`Operation`]s (one invocation with its completion,
//! if any), which is what models and checkers consume.
//!
//! Readers live in submodules, one per format; [`read`] sniffs the format.

pub mod edn;
mod edn_history;
mod jepsen_log;
pub mod jsonl;
pub(crate) mod read;

pub use read::{read_history, read_history_from, Format, Parsed, ReadError, MAX_RECORD};

/// Why one record (a line, a form) could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub message: String,
    /// The record ends before it is complete: only this, on the last line
    /// of a file without a final newline, is a torn write.
    pub incomplete: bool,
}

impl RecordError {
    pub fn bad(message: impl Into<String>) -> RecordError {
        RecordError {
            message: message.into(),
            incomplete: false,
        }
    }
}

/// Input echoed in a message is cut to this many characters: a 5 MB keyword
/// must not give 5 MB of stderr.
pub const ECHO_CHARS: usize = 200;

/// `s`, cut to [`ECHO_CHARS`] characters with a note of how much was left out.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(ECHO_CHARS) {
        None => s.to_string(),
        Some((at, _)) => format!("{}... ({} bytes in all)", &s[..at], s.len()),
    }
}

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Who performed an event: a client process or the fault injector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u64),
    Nemesis,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Process::from_value(&v).map_err(serde::de::Error::custom)
    }
}

impl Process {
    /// Accepts a non-negative integer or the string "nemesis".
    pub fn from_value(v: &Value) -> Result<Process, String> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .map(Process::Client)
                .ok_or_else(|| format!("process must be an integer >= 0 or \"nemesis\", got {n}")),
            Value::String(s) if s == "nemesis" => Ok(Process::Nemesis),
            other => Err(format!(
                "process must be an integer >= 0 or \"nemesis\", got {}",
                clip(&other.to_string())
            )),
        }
    }
}

/// The four event types of docs/formats.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Invoke,
    /// Took effect.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// Unknown: may take effect at any time after the invocation, or never.
    Info,
}

impl EventType {
    pub fn parse(s: &str) -> Option<EventType> {
        Some(match s {
            "invoke" => EventType::Invoke,
            "ok" => EventType::Ok,
            "fail" => EventType::Fail,
            "info" => EventType::Info,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 0, 1, 2, ... in file order.
    pub index: u64,
    /// Nanoseconds since the run started; absent in formats that have no clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub f: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    /// An info completion, or an invocation that never completed.
    Info,
}

/// An invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operation {
    /// Position in [`History::ops`], in invocation order.
    pub id: usize,
    pub process: Process,
    pub f: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The invocation's value (the argument).
    pub input: Value,
    /// The completion's value; `None` when the operation has no completion.
    pub output: Option<Value>,
    pub outcome: Outcome,
    /// Index of the invocation event.
    pub call: u64,
    /// Index of the completion event, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Operation {
    /// Seconds since the start of the run at which it was invoked, or the
    /// event index when the history has no clock.
    pub fn describe_time(&self, ret: bool) -> String {
        let (t, i) = if ret {
            (self.ret_time, self.ret)
        } else {
            (self.call_time, Some(self.call))
        };
        match (t, i) {
            (Some(ns), _) => format!("{:.3} s", ns as f64 / 1e9),
            (None, Some(i)) => format!("event {i}"),
            (None, None) => "the end".to_string(),
        }
    }
}

/// Why a sequence of events is not a well-formed history.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("event {index}: {message}")]
pub struct PairError {
    /// The offending event's index (its position in the file).
    pub index: u64,
    pub message: String,
}

/// A history: all events, plus the client operations paired from them.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub events: Vec<Event>,
    /// Client operations in invocation order. Nemesis events are not here.
    pub ops: Vec<Operation>,
}

impl History {
    /// Pairs each process's invocation with its next completion.
    ///
    /// A process has at most one operation outstanding: a second invocation
    /// before a completion, or a completion without an invocation, is an error.
    /// Nemesis events are kept in `events` but are not operations.
    pub fn from_events(events: Vec<Event>) -> Result<History, PairError> {
        let mut b = HistoryBuilder::new(true);
        for e in events {
            b.push(e)?;
        }
        Ok(b.finish())
    }
}

impl History {
    /// Operation ids grouped by `key` (canonical JSON text), keys in order of
    /// first appearance; operations without a key form one group.
    pub fn by_key(&self) -> Vec<(Option<Value>, Vec<usize>)> {
        let mut groups: Vec<(Option<Value>, Vec<usize>)> = Vec::new();
        let mut index: rustc_hash::FxHashMap<String, usize> = Default::default();
        for op in &self.ops {
            let text = op.key.as_ref().map(|k| k.to_string()).unwrap_or_default();
            let g = *index.entry(text).or_insert_with(|| {
                groups.push((op.key.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(op.id);
        }
        groups
    }
}

/// Builds a [`History`] one event at a time, so a reader can stream.
/// Without `keep_events`, event data moves into the operations and the
/// events themselves are not kept (what `check` needs, in half the memory).
pub struct HistoryBuilder {
    keep_events: bool,
    events: Vec<Event>,
    ops: Vec<Operation>,
    open: rustc_hash::FxHashMap<u64, usize>,
    count: u64,
}

impl HistoryBuilder {
    pub fn new(keep_events: bool) -> Self {
        HistoryBuilder {
            keep_events,
            events: Vec::new(),
            ops: Vec::new(),
            open: Default::default(),
            count: 0,
        }
    }

    /// Events pushed so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds the next event; its `index` must be the number of events pushed before it.
    pub fn push(&mut self, e: Event) -> Result<(), PairError> {
        self.count += 1;
        let Process::Client(p) = e.process else {
            if self.keep_events {
                self.events.push(e);
            }
            return Ok(());
        };
        let (ops, open) = (&mut self.ops, &mut self.open);
        let stored = if self.keep_events {
            Some(e.clone())
        } else {
            None
        };
        match e.kind {
            EventType::Invoke => {
                if let Some(&prev) = open.get(&p) {
                    return Err(PairError {
                        index: e.index,
                        message: format!(
                            "process {p} invokes {} while its {} (event {}) is still outstanding",
                            e.f, ops[prev].f, ops[prev].call
                        ),
                    });
                }
                open.insert(p, ops.len());
                ops.push(Operation {
                    id: ops.len(),
                    process: e.process,
                    f: e.f,
                    key: e.key,
                    input: e.value,
                    output: None,
                    outcome: Outcome::Info,
                    call: e.index,
                    ret: None,
                    call_time: e.time,
                    ret_time: None,
                    node: e.node,
                });
            }
            kind => {
                let Some(i) = open.remove(&p) else {
                    return Err(PairError {
                        index: e.index,
                        message: format!(
                            "process {p} completes {} ({}) without an outstanding invocation",
                            e.f,
                            kind.as_str()
                        ),
                    });
                };
                let op = &mut ops[i];
                if op.f != e.f {
                    return Err(PairError {
                        index: e.index,
                        message: format!(
                            "process {p} invoked {} (event {}) but completes {}",
                            op.f, op.call, e.f
                        ),
                    });
                }
                if e.key.is_some() && op.key.is_some() && e.key != op.key {
                    return Err(PairError {
                        index: e.index,
                        message: format!(
                            "process {p} invoked key {} (event {}) but completes key {}",
                            op.key.as_ref().unwrap_or(&Value::Null),
                            op.call,
                            e.key.as_ref().unwrap_or(&Value::Null)
                        ),
                    });
                }
                if op.key.is_none() {
                    op.key = e.key;
                }
                op.outcome = match kind {
                    EventType::Ok => Outcome::Ok,
                    EventType::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                op.output = Some(e.value);
                op.ret = Some(e.index);
                op.ret_time = e.time;
                if e.node.is_some() {
                    op.node = e.node;
                }
            }
        }
        if let Some(e) = stored {
            self.events.push(e);
        }
        Ok(())
    }

    pub fn finish(self) -> History {
        History {
            events: self.events,
            ops: self.ops,
        }
    }
}
