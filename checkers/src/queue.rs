//! Kafka-style logs (`--model kafka`, Maelstrom's kafka workload): append-only
//! logs per key, with offsets the server assigns.
//!
//! Operations: `send {"key":k,"msg":m}` -> `{"key":k,"msg":m,"offset":o}`;
//! `poll null` -> `{"from":{k:o},"msgs":{k:[[o,m],...]}}` (where the client
//! asked to start, and what came back); `commit_offsets` and
//! `list_committed_offsets` are accepted and not judged. Messages are unique.
//! Offsets may be sparse; what is known to exist is every offset an ok send
//! returned or any poll showed. Invalid:
//! - inconsistent-offsets: two messages at one offset of a key;
//! - duplicate: one message at two offsets;
//! - nonmonotonic-poll: a poll's offsets for a key not strictly increasing,
//!   or starting before the offset asked for;
//! - nonmonotonic-send: a process's later send to a key got a lower offset;
//! - lost-write: a poll of a key went from offset s to e but left out an
//!   offset between them that is known to exist.
//!
//! Counted: unobserved (acknowledged sends no poll showed).

use crate::anomaly::{result, who, Anomaly, Severity};
use crate::history::{History, Operation, Outcome};
use crate::linear::CheckError;
use crate::CheckResult;
use rustc_hash::FxHashMap;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

type Key = String;

fn bad(op: &Operation, what: &str) -> CheckError {
    CheckError::Op {
        event: op.ret.unwrap_or(op.call),
        message: format!("{what}, got {}", op.output.as_ref().unwrap_or(&Value::Null)),
    }
}

fn key_text(v: &Value) -> Key {
    v.as_str()
        .map(String::from)
        .unwrap_or_else(|| v.to_string())
}

/// One poll's messages of one key.
struct PollKey<'a> {
    op: &'a Operation,
    key: Key,
    from: Option<i64>,
    seen: Vec<(i64, Value)>,
}

/// Every offset known, and where each message was seen.
#[derive(Default)]
struct Index<'a> {
    at: FxHashMap<(Key, i64), (Value, &'a Operation)>,
    offset_of: FxHashMap<String, ((Key, i64), &'a Operation)>,
}

impl<'a> Index<'a> {
    /// Notes message `m` at offset `o` of key `k`, as `by` saw it.
    fn note(
        &mut self,
        k: &Key,
        o: i64,
        m: &Value,
        by: &'a Operation,
        anomalies: &mut Vec<Anomaly>,
    ) {
        if let Some((other, first)) = self.at.get(&(k.clone(), o)) {
            if other != m {
                anomalies.push(
                    Anomaly::new(
                        "inconsistent-offsets",
                        Severity::Invalid,
                        Some(&json!(k)),
                        format!(
                            "offset {o} of key {k} holds {other} for {} and {m} for {}",
                            who(first),
                            who(by)
                        ),
                    )
                    .op(first)
                    .op(by),
                );
            }
        } else {
            self.at.insert((k.clone(), o), (m.clone(), by));
        }
        let mk = m.to_string();
        match self.offset_of.get(&mk) {
            Some(((k2, o2), first)) if (k2, *o2) != (k, o) => anomalies.push(
                Anomaly::new("duplicate", Severity::Invalid, Some(&json!(k)),
                    format!("message {m} is at offset {o2} of key {k2} ({}) and at offset {o} of key {k} ({})", who(first), who(by)))
                .op(first).op(by),
            ),
            Some(_) => {}
            None => {
                self.offset_of.insert(mk, ((k.clone(), o), by));
            }
        }
    }
}

pub fn check(history: &History) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let mut anomalies = Vec::new();
    // Where each offset of each key is known from, and its message.
    let mut index = Index::default();
    let mut acked: Vec<(Key, i64, &Operation)> = Vec::new();
    let mut polls: Vec<PollKey> = Vec::new();
    let mut last_send: FxHashMap<(String, Key), (i64, &Operation)> = FxHashMap::default();
    for op in &history.ops {
        match op.f.as_str() {
            "send" if op.outcome == Outcome::Ok => {
                let out = op.output.as_ref().ok_or_else(|| bad(op, "a send's completion needs key, msg and offset"))?;
                let (Some(o), k) = (out["offset"].as_i64(), key_text(&out["key"])) else {
                    return Err(bad(op, "a send's completion needs an integer offset"));
                };
                index.note(&k, o, &out["msg"], op, &mut anomalies);
                acked.push((k.clone(), o, op));
                let pk = (op.process.to_string(), k.clone());
                if let Some((prev, first)) = last_send.get(&pk) {
                    if o <= *prev {
                        anomalies.push(
                            Anomaly::new("nonmonotonic-send", Severity::Invalid, Some(&json!(k)),
                                format!("{} sent to key {k} at offset {prev}, then again and got offset {o}", who(op)))
                            .op(first).op(op),
                        );
                    }
                }
                last_send.insert(pk, (o, op));
            }
            "poll" if op.outcome == Outcome::Ok => {
                let out = op.output.as_ref().ok_or_else(|| bad(op, "a poll's completion needs from and msgs"))?;
                let Some(msgs) = out["msgs"].as_object() else {
                    return Err(bad(op, "a poll's completion needs msgs: {key: [[offset, msg], ...]}"));
                };
                for (k, list) in msgs {
                    let mut seen = Vec::new();
                    for pair in list.as_array().into_iter().flatten() {
                        let Some(o) = pair[0].as_i64() else {
                            return Err(bad(op, "a poll's messages are [offset, msg] pairs"));
                        };
                        index.note(k, o, &pair[1], op, &mut anomalies);
                        seen.push((o, pair[1].clone()));
                    }
                    polls.push(PollKey { op, key: k.clone(), from: out["from"][k].as_i64(), seen });
                }
            }
            "send" | "poll" | "commit_offsets" | "list_committed_offsets" => {}
            f => {
                return Err(CheckError::Op {
                    event: op.call,
                    message: format!("model kafka has no operation {f:?}: it knows send, poll, commit_offsets and list_committed_offsets"),
                })
            }
        }
    }
    let mut known: BTreeMap<&Key, BTreeSet<i64>> = BTreeMap::new();
    for (k, o) in index.at.keys() {
        known.entry(k).or_default().insert(*o);
    }
    let mut observed: BTreeSet<(Key, i64)> = BTreeSet::new();
    for p in &polls {
        let offsets: Vec<i64> = p.seen.iter().map(|(o, _)| *o).collect();
        observed.extend(offsets.iter().map(|o| (p.key.clone(), *o)));
        let increasing = offsets.windows(2).all(|w| w[0] < w[1]);
        let early = matches!((p.from, offsets.first()), (Some(f), Some(&o)) if o < f);
        if !increasing || early {
            anomalies.push(
                Anomaly::new(
                    "nonmonotonic-poll",
                    Severity::Invalid,
                    Some(&json!(p.key)),
                    format!(
                        "{} polled key {} from offset {} and got offsets {:?}",
                        who(p.op),
                        p.key,
                        p.from.map_or("?".into(), |f| f.to_string()),
                        offsets
                    ),
                )
                .op(p.op),
            );
            continue;
        }
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            continue;
        };
        let lo = p.from.unwrap_or(first).min(first);
        let have: BTreeSet<i64> = offsets.iter().copied().collect();
        let missing: Vec<i64> = known
            .get(&p.key)
            .into_iter()
            .flat_map(|s| s.range(lo..=last))
            .filter(|o| !have.contains(o))
            .copied()
            .collect();
        if let Some(&m) = missing.first() {
            let (msg, by) = &index.at[&(p.key.clone(), m)];
            anomalies.push(
                Anomaly::new("lost-write", Severity::Invalid, Some(&json!(p.key)),
                    format!("{} polled key {} from offset {lo} to {last} without offset {m} ({msg}, known from {}){}",
                        who(p.op), p.key, who(by),
                        if missing.len() > 1 { format!(" and {} more", missing.len() - 1) } else { String::new() }))
                .op(p.op).op(by)
                .with("missing", json!(missing.len())),
            );
        }
    }
    let unobserved = acked
        .iter()
        .filter(|(k, o, _)| !observed.contains(&(k.clone(), *o)))
        .count();
    let totals =
        json!({"acknowledged": acked.len(), "polls": polls.len(), "unobserved": unobserved});
    Ok(result(
        "kafka",
        history.ops.len(),
        start,
        anomalies,
        Some(totals),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{read_history, Format};
    use crate::Validity;

    fn h(lines: &[&str]) -> History {
        read_history("t", &(lines.join("\n") + "\n"), Format::Jsonl)
            .unwrap()
            .history
    }

    const SENDS: [&str; 4] = [
        r#"{"process":0,"type":"invoke","f":"send","value":{"key":"a","msg":1}}"#,
        r#"{"process":0,"type":"ok","f":"send","value":{"key":"a","msg":1,"offset":0}}"#,
        r#"{"process":0,"type":"invoke","f":"send","value":{"key":"a","msg":2}}"#,
        r#"{"process":0,"type":"ok","f":"send","value":{"key":"a","msg":2,"offset":3}}"#,
    ];

    fn with_poll(result: &str) -> CheckResult {
        let poll = format!(r#"{{"process":1,"type":"ok","f":"poll","value":{result}}}"#);
        let mut lines = SENDS.to_vec();
        lines.push(r#"{"process":1,"type":"invoke","f":"poll","value":null}"#);
        lines.push(&poll);
        check(&h(&lines)).unwrap()
    }

    #[test]
    fn polls_are_judged_against_every_known_offset() {
        // (poll result, expected verdict, first anomaly)
        let rows = [
            (
                r#"{"from":{"a":0},"msgs":{"a":[[0,1],[3,2]]}}"#,
                Validity::Valid,
                "",
            ),
            (
                r#"{"from":{"a":0},"msgs":{"a":[[0,1]]}}"#,
                Validity::Valid,
                "",
            ),
            (
                r#"{"from":{"a":0},"msgs":{"a":[[3,2]]}}"#,
                Validity::Invalid,
                "lost-write",
            ),
            (
                r#"{"from":{"a":0},"msgs":{"a":[[3,2],[0,1]]}}"#,
                Validity::Invalid,
                "nonmonotonic-poll",
            ),
            (
                r#"{"from":{"a":1},"msgs":{"a":[[0,1]]}}"#,
                Validity::Invalid,
                "nonmonotonic-poll",
            ),
            (
                r#"{"from":{"a":0},"msgs":{"a":[[0,9]]}}"#,
                Validity::Invalid,
                "inconsistent-offsets",
            ),
            (
                r#"{"from":{"a":0},"msgs":{"a":[[0,1],[1,2]]}}"#,
                Validity::Invalid,
                "duplicate",
            ),
        ];
        for (poll, want, kind) in rows {
            let r = with_poll(poll);
            assert_eq!(r.valid, want, "{poll}: {:?}", r.anomalies);
            if !kind.is_empty() {
                assert_eq!(r.anomalies[0].kind, kind, "{poll}");
            }
        }
        let r = with_poll(r#"{"from":{"a":0},"msgs":{"a":[[3,2]]}}"#);
        assert_eq!(
            r.anomalies[0].message,
            "process 1 polled key a from offset 0 to 3 without offset 0 (1, known from process 0)"
        );
        assert_eq!(
            with_poll(r#"{"from":{"a":0},"msgs":{"a":[[0,1]]}}"#)
                .summary
                .unwrap()["unobserved"],
            1
        );
    }

    #[test]
    fn a_later_send_at_a_lower_offset_is_nonmonotonic() {
        let mut lines = SENDS.to_vec();
        lines.push(r#"{"process":0,"type":"invoke","f":"send","value":{"key":"a","msg":5}}"#);
        lines
            .push(r#"{"process":0,"type":"ok","f":"send","value":{"key":"a","msg":5,"offset":2}}"#);
        let r = check(&h(&lines)).unwrap();
        assert_eq!(r.anomalies[0].kind, "nonmonotonic-send");
    }
}
