//! The fault journal (a run's `faults.jsonl`): one entry a line, written
//! and synced before a fault is applied, so that `shakedown heal` knows
//! what a crashed run left behind.

use super::fault::{Fault, FaultPlan, NodeFailure};
use serde_json::{json, Value};

/// One line of the journal.
#[derive(Clone, Debug, PartialEq)]
pub enum JournalEntry {
    /// `{"fault": "partition", "plan": P}`: about to be applied.
    Fault(FaultPlan),
    /// `{"failed": "start-partition", "nodes": [{"node", "error"}]}`: a
    /// fault's or a heal's event that did not take effect there.
    Failed {
        event: String,
        nodes: Vec<NodeFailure>,
    },
    /// `{"heal": true}`: everything was undone and verified.
    Healed,
    /// Any other line (a newer or older shakedown's), kept as it is.
    Other(Value),
}

impl JournalEntry {
    pub fn to_json(&self) -> Value {
        match self {
            JournalEntry::Fault(p) => json!({"fault": p.fault().name(), "plan": p.to_json()}),
            JournalEntry::Failed { event, nodes } => json!({
                "failed": event,
                "nodes": nodes.iter().map(NodeFailure::to_json).collect::<Vec<_>>(),
            }),
            JournalEntry::Healed => json!({"heal": true}),
            JournalEntry::Other(v) => v.clone(),
        }
    }

    /// A line read back: the entry it was written from (`Other` for a line
    /// of another shape, kept as it is).
    pub fn from_json(v: Value) -> JournalEntry {
        let typed = (|| {
            let m = v.as_object()?;
            let entry = match (m.get("fault"), m.get("failed"), m.get("heal")) {
                (Some(Value::String(f)), None, None) if m.len() == 2 => {
                    JournalEntry::Fault(FaultPlan::from_json(Fault::parse(f)?, m.get("plan")?)?)
                }
                (None, Some(Value::String(f)), None) if m.len() == 2 => JournalEntry::Failed {
                    event: f.clone(),
                    nodes: serde_json::from_value(m.get("nodes")?.clone()).ok()?,
                },
                (None, None, Some(Value::Bool(true))) if m.len() == 1 => JournalEntry::Healed,
                _ => return None,
            };
            Some(entry).filter(|e| e.to_json() == v)
        })();
        typed.unwrap_or(JournalEntry::Other(v))
    }

    /// The last entry says every fault was healed.
    pub fn is_healed(&self) -> bool {
        matches!(self, JournalEntry::Healed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_written() {
        let lines = [
            json!({"fault": "kill", "plan": ["n1", "n3"]}),
            json!({"fault": "partition", "plan": {"strategy": "isolate", "grudge": {"n1": ["n2"], "n2": ["n1"]}}}),
            json!({"failed": "restart", "nodes": [{"node": "n3", "error": "etcd did not start again"}, {"node": null, "error": "x"}]}),
            json!({"heal": true}),
        ];
        for v in lines {
            let e = JournalEntry::from_json(v.clone());
            assert!(!matches!(e, JournalEntry::Other(_)), "{v}");
            assert_eq!(e.to_json(), v);
        }
        assert!(JournalEntry::from_json(json!({"heal": true})).is_healed());
        let odd = json!({"fault": "partition", "grudge": {"n1": ["n2"]}});
        assert_eq!(
            JournalEntry::from_json(odd.clone()),
            JournalEntry::Other(odd)
        );
    }
}
