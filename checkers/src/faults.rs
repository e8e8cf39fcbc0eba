//! Which faults a history says took effect.
//!
//! A run's fault injector writes each fault as an invoke and an info
//! completion of process "nemesis" (docs/formats.md). A completion with an
//! `error` did not take effect (or was not verified) on the nodes its
//! `value.failed` names. The summary is what results.json holds under
//! `"faults"`: a run whose faults did not all happen is INCOMPLETE, never
//! "valid" (exit 4), unless a checker found it invalid.

use crate::history::{Event, EventType, Process};
use crate::rundata::fault::Fault;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::rundata::fault::HEAL_EVENTS;

/// One fault (or heal) that did not take effect on one node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FailedFault {
    /// The event: "start-partition", "kill", ..., or a heal's "stop-partition".
    pub fault: String,
    /// The node, when the failure was one node's.
    pub node: Option<String>,
    pub error: String,
}

/// How many faults of one kind were scheduled and took effect.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultKind {
    pub fault: String,
    pub scheduled: usize,
    pub applied: usize,
}

/// results.json's `"faults"`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSummary {
    /// Faults started (heals not counted).
    pub scheduled: usize,
    /// Faults that took effect, verified, on every node they touched.
    pub applied: usize,
    /// Every fault and heal that failed, per node.
    pub failed: Vec<FailedFault>,
    /// Per fault event, in order of first appearance.
    #[serde(default)]
    pub kinds: Vec<FaultKind>,
}

impl FaultSummary {
    /// Some scheduled fault or heal did not take effect.
    pub fn incomplete(&self) -> bool {
        !self.failed.is_empty() || self.applied < self.scheduled
    }

    /// "0 of 3 partitions took effect: n1: iptables: command not found", or
    /// `None` when every fault did.
    pub fn headline(&self) -> Option<String> {
        if !self.incomplete() {
            return None;
        }
        let counts: Vec<String> = self
            .kinds
            .iter()
            .filter(|k| k.applied < k.scheduled)
            .map(|k| {
                format!(
                    "{} of {} {} took effect",
                    k.applied,
                    k.scheduled,
                    plural(&k.fault, k.scheduled)
                )
            })
            .collect();
        let first = self.failed.first().map(|f| match &f.node {
            Some(n) => format!("{n}: {}", f.error),
            None => f.error.clone(),
        });
        let mut s = if counts.is_empty() {
            "a heal failed".to_string()
        } else {
            counts.join(", ")
        };
        if let Some(first) = first {
            s.push_str(": ");
            s.push_str(&first);
            if self.failed.len() > 1 {
                s.push_str(&format!(" (and {} more)", self.failed.len() - 1));
            }
        }
        Some(s)
    }
}

/// "partitions" for start-partition, "kills" for kill, ...
fn plural(event: &str, n: usize) -> String {
    let word: &str = match Fault::of_start_event(event) {
        Some(f) => f.noun(),
        None => event,
    };
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// The failures a completion names: `value.failed` entries, or its error.
fn failures(f: &str, value: &Value, error: &Value) -> Vec<FailedFault> {
    let listed: Vec<FailedFault> = value
        .get("failed")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|x| FailedFault {
            fault: f.to_string(),
            node: x.get("node").and_then(Value::as_str).map(String::from),
            error: x
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("failed")
                .to_string(),
        })
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    vec![FailedFault {
        fault: f.to_string(),
        node: None,
        error: match error {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        },
    }]
}

/// The index of `f`'s counts in `s.kinds`, added if new.
fn kind(s: &mut FaultSummary, f: &str) -> usize {
    match s.kinds.iter().position(|k| k.fault == f) {
        Some(i) => i,
        None => {
            s.kinds.push(FaultKind {
                fault: f.to_string(),
                ..FaultKind::default()
            });
            s.kinds.len() - 1
        }
    }
}

/// The fault summary of a history's events (client events are skipped).
pub fn summarize<'a>(events: impl IntoIterator<Item = &'a Event>) -> FaultSummary {
    let mut s = FaultSummary::default();
    // The injector runs one fault at a time: an invoke, then its completion.
    let mut pending: Option<&str> = None;
    let never = |f: &str| FailedFault {
        fault: f.to_string(),
        node: None,
        error: "no completion was recorded: the run stopped while it was applied".into(),
    };
    for e in events.into_iter().filter(|e| e.process == Process::Nemesis) {
        let heal = HEAL_EVENTS.contains(&e.f.as_str());
        match e.kind {
            EventType::Invoke => {
                if let Some(p) = pending.take() {
                    if !HEAL_EVENTS.contains(&p) {
                        s.failed.push(never(p));
                    }
                }
                if !heal {
                    let i = kind(&mut s, &e.f);
                    s.kinds[i].scheduled += 1;
                    s.scheduled += 1;
                }
                pending = Some(&e.f);
            }
            _ => {
                pending = None;
                let failed = e.error.as_ref().is_some_and(|x| !x.is_null());
                if failed {
                    s.failed.extend(failures(
                        &e.f,
                        &e.value,
                        e.error.as_ref().unwrap_or(&Value::Null),
                    ));
                } else if !heal {
                    let i = kind(&mut s, &e.f);
                    s.kinds[i].applied += 1;
                    s.applied += 1;
                }
            }
        }
    }
    if let Some(p) = pending {
        if !HEAL_EVENTS.contains(&p) {
            s.failed.push(never(p));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{read_history, Format};

    fn summary(text: &str) -> FaultSummary {
        summarize(
            &read_history("t", text, Format::Jsonl)
                .unwrap()
                .history
                .events,
        )
    }

    const OP: &str = r#"{"process":0,"type":"invoke","f":"read","value":null}
{"process":0,"type":"ok","f":"read","value":1}
"#;

    #[test]
    fn every_fault_applied_is_complete() {
        let s = summary(&format!(
            "{OP}{}",
            r#"{"process":"nemesis","type":"invoke","f":"start-partition","value":{"strategy":"isolate","grudge":{}}}
{"process":"nemesis","type":"info","f":"start-partition","value":{"plan":{},"verified":{"n1":"drops 4"}}}
{"process":"nemesis","type":"invoke","f":"stop-partition","value":null}
{"process":"nemesis","type":"info","f":"stop-partition","value":{"verified":{}}}
"#
        ));
        assert_eq!((s.scheduled, s.applied), (1, 1));
        assert!(!s.incomplete());
        assert_eq!(s.headline(), None);
    }

    #[test]
    fn failed_faults_are_named_per_node() {
        let s = summary(&format!(
            "{OP}{}",
            r#"{"process":"nemesis","type":"invoke","f":"start-partition","value":{}}
{"process":"nemesis","type":"info","f":"start-partition","value":{"failed":[{"node":"n1","error":"iptables: command not found"},{"node":"n2","error":"iptables: command not found"}]},"error":"n1: ...; n2: ..."}
{"process":"nemesis","type":"invoke","f":"stop-partition","value":null}
{"process":"nemesis","type":"info","f":"stop-partition","value":{"verified":{}}}
{"process":"nemesis","type":"invoke","f":"start-partition","value":{}}
{"process":"nemesis","type":"info","f":"start-partition","value":{},"error":"journal full"}
{"process":"nemesis","type":"invoke","f":"kill","value":["n3"]}
{"process":"nemesis","type":"info","f":"kill","value":{"plan":["n3"]}}
{"process":"nemesis","type":"invoke","f":"restart","value":null}
{"process":"nemesis","type":"info","f":"restart","value":{"failed":[{"node":"n3","error":"etcd did not start again"}]},"error":"n3: etcd did not start again"}
{"process":"nemesis","type":"invoke","f":"pause","value":["n2"]}
"#
        ));
        assert_eq!((s.scheduled, s.applied), (4, 1));
        assert!(s.incomplete());
        let nodes: Vec<(&str, Option<&str>)> = s
            .failed
            .iter()
            .map(|f| (f.fault.as_str(), f.node.as_deref()))
            .collect();
        assert_eq!(
            nodes,
            [
                ("start-partition", Some("n1")),
                ("start-partition", Some("n2")),
                ("start-partition", None),
                ("restart", Some("n3")),
                ("pause", None),
            ]
        );
        assert_eq!(s.failed[2].error, "journal full");
        assert_eq!(
            s.headline().unwrap(),
            "0 of 2 partitions took effect, 0 of 1 pause took effect: n1: iptables: command not found (and 4 more)"
        );
    }

    #[test]
    fn no_faults_no_summary() {
        let s = summary(OP);
        assert_eq!(s, FaultSummary::default());
        assert!(!s.incomplete());
    }
}
