//! Eventually consistent sets and counters (Maelstrom's broadcast, g-set,
//! g-counter and pn-counter): reads during the run may lag, but once every
//! add has completed (after the final heal and recovery) the read on every
//! node must show them all.
//!
//! The final reads are the ok reads invoked after every add that completed
//! had completed. `eventual-set` (`add v`, `read null -> [v...]`):
//! - lost: an ok add missing from a node's final read (invalid);
//! - unexpected: an element never added, or whose add failed, in any read (invalid);
//! - stale: a read during the run missing an ok add completed before it began
//!   (counted: that is what eventual consistency allows).
//!
//! `eventual-counter` (`add n`, `read null -> n`): a final read must equal
//! the sum of the ok adds, give or take the crashed ones (within the sum of
//! their negative parts and of their positive parts); any read must lie
//! within what the adds invoked before it completed could make (invalid
//! otherwise).
//!
//! Without a final read the verdict is unknown, never valid: nothing showed
//! that the values arrived.

use crate::anomaly::{result, who, Anomaly, Severity};
use crate::history::{History, Operation, Outcome};
use crate::linear::CheckError;
use crate::{CheckResult, Validity};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// Elements named in one message.
const NAMED: usize = 10;

fn node_of(op: &Operation) -> String {
    op.node.clone().unwrap_or_else(|| "?".into())
}

/// The event index after which a read counts as final: every add that
/// completed had completed by then.
fn settled(ops: &[Operation]) -> u64 {
    ops.iter()
        .filter(|o| o.f == "add")
        .map(|o| o.ret.unwrap_or(o.call))
        .max()
        .unwrap_or(0)
}

fn unknown_without_final(mut r: CheckResult, finals: usize) -> CheckResult {
    if finals == 0 && r.valid == Validity::Valid {
        r.valid = Validity::Unknown;
        r.unknown_reason = Some(
            "no read succeeded after the last add completed, so nothing shows the values arrived"
                .into(),
        );
    }
    r
}

fn unknown_op(op: &Operation, model: &str) -> CheckError {
    CheckError::Op {
        event: op.call,
        message: format!(
            "model {model} has no operation {:?}: it knows add and read",
            op.f
        ),
    }
}

fn list(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > NAMED {
        s.push_str(&format!(" and {} more", items.len() - NAMED));
    }
    s
}

pub fn check_set(history: &History) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let ops = &history.ops;
    let after = settled(ops);
    let mut attempted: FxHashSet<String> = FxHashSet::default();
    let mut acked: Vec<(u64, String)> = Vec::new(); // (completion, element)
    let mut reads: Vec<(&Operation, FxHashSet<String>)> = Vec::new();
    for op in ops {
        match op.f.as_str() {
            "add" => {
                let v = op.input.to_string();
                match op.outcome {
                    Outcome::Ok => {
                        acked.push((op.ret.unwrap_or(op.call), v.clone()));
                        attempted.insert(v);
                    }
                    Outcome::Info => {
                        attempted.insert(v);
                    }
                    Outcome::Fail => {}
                }
            }
            "read" if op.outcome == Outcome::Ok => {
                let Some(Value::Array(items)) = &op.output else {
                    return Err(CheckError::Op {
                        event: op.ret.unwrap_or(op.call),
                        message: format!(
                            "a read must return a list, got {}",
                            op.output.as_ref().unwrap_or(&Value::Null)
                        ),
                    });
                };
                reads.push((op, items.iter().map(Value::to_string).collect()));
            }
            "read" => {}
            _ => return Err(unknown_op(op, "eventual-set")),
        }
    }
    acked.sort();
    let mut anomalies = Vec::new();
    let (mut finals, mut stale_reads, mut stale_elements, mut lost_total) = (0, 0u64, 0u64, 0u64);
    let mut final_nodes: BTreeMap<String, usize> = BTreeMap::new();
    for (r, seen) in &reads {
        let mut unexpected: Vec<String> = seen
            .iter()
            .filter(|v| !attempted.contains(*v))
            .cloned()
            .collect();
        if !unexpected.is_empty() {
            unexpected.sort();
            anomalies.push(
                Anomaly::new(
                    "unexpected",
                    Severity::Invalid,
                    None,
                    format!(
                        "{} read on {} (completed {}) {} element(s) no one added, or whose add failed: {}",
                        who(r),
                        node_of(r),
                        r.describe_time(true),
                        unexpected.len(),
                        list(&unexpected)
                    ),
                )
                .op(r),
            );
        }
        if r.call > after {
            finals += 1;
            *final_nodes.entry(node_of(r)).or_default() += 1;
            let lost: Vec<String> = acked
                .iter()
                .filter(|(_, v)| !seen.contains(v))
                .map(|(_, v)| v.clone())
                .collect();
            if !lost.is_empty() {
                lost_total += lost.len() as u64;
                anomalies.push(
                    Anomaly::new(
                        "lost",
                        Severity::Invalid,
                        None,
                        format!(
                            "the final read on {} ({}, invoked {}, after every add had completed and the network had healed) misses {} acknowledged element(s): {}",
                            node_of(r),
                            who(r),
                            r.describe_time(false),
                            lost.len(),
                            list(&lost)
                        ),
                    )
                    .op(r)
                    .with("lost", json!(lost.len())),
                );
            }
        } else {
            let k = acked.partition_point(|(t, _)| *t < r.call);
            let missing = acked[..k].iter().filter(|(_, v)| !seen.contains(v)).count();
            if missing > 0 {
                stale_reads += 1;
                stale_elements += missing as u64;
            }
        }
    }
    let totals = json!({
        "attempted": attempted.len(), "acknowledged": acked.len(), "reads": reads.len(),
        "final_reads": final_nodes, "lost": lost_total,
        "stale_reads": stale_reads, "stale_elements": stale_elements,
    });
    let r = result("eventual-set", ops.len(), start, anomalies, Some(totals));
    Ok(unknown_without_final(r, finals))
}

pub fn check_counter(history: &History, init: &Value) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let base: i128 = match init {
        Value::Null => 0,
        v => v.as_i64().ok_or_else(|| {
            CheckError::Init(format!(
                "--init for eventual-counter must be an integer, got {v}"
            ))
        })? as i128,
    };
    let ops = &history.ops;
    let after = settled(ops);
    let (mut ok_sum, mut info_pos, mut info_neg) = (0i128, 0i128, 0i128);
    // (invocation, delta) of every add that may have happened, for the bounds.
    let mut possible: Vec<(u64, i128)> = Vec::new();
    let mut reads: Vec<(&Operation, i128)> = Vec::new();
    for op in ops {
        match op.f.as_str() {
            "add" => {
                let n = op.input.as_i64().ok_or_else(|| CheckError::Op {
                    event: op.call,
                    message: format!("a counter add needs an integer, got {}", op.input),
                })? as i128;
                match op.outcome {
                    Outcome::Ok => ok_sum += n,
                    Outcome::Info => {
                        info_pos += n.max(0);
                        info_neg += n.min(0);
                    }
                    Outcome::Fail => continue,
                }
                possible.push((op.call, n));
            }
            "read" if op.outcome == Outcome::Ok => {
                let v =
                    op.output
                        .as_ref()
                        .and_then(Value::as_i64)
                        .ok_or_else(|| CheckError::Op {
                            event: op.ret.unwrap_or(op.call),
                            message: format!(
                                "a counter read must return an integer, got {}",
                                op.output.as_ref().unwrap_or(&Value::Null)
                            ),
                        })?;
                reads.push((op, v as i128));
            }
            "read" => {}
            _ => return Err(unknown_op(op, "eventual-counter")),
        }
    }
    possible.sort();
    let (mut pos, mut neg) = (vec![0i128], vec![0i128]);
    for &(_, n) in &possible {
        pos.push(pos[pos.len() - 1] + n.max(0));
        neg.push(neg[neg.len() - 1] + n.min(0));
    }
    let mut anomalies = Vec::new();
    let mut finals = 0;
    for &(r, v) in &reads {
        if r.call > after {
            finals += 1;
            let (lo, hi) = (base + ok_sum + info_neg, base + ok_sum + info_pos);
            if v < lo || v > hi {
                let expect = if lo == hi {
                    format!("{lo}, the sum of the acknowledged adds")
                } else {
                    format!("between {lo} and {hi}: {} acknowledged, give or take adds whose outcome is unknown", base + ok_sum)
                };
                anomalies.push(
                    Anomaly::new(
                        "final-read",
                        Severity::Invalid,
                        None,
                        format!(
                            "the final read on {} ({}, invoked {}, after every add had completed and the network had healed) is {v}, but the counter must be {expect}",
                            node_of(r),
                            who(r),
                            r.describe_time(false)
                        ),
                    )
                    .op(r)
                    .with("bounds", json!([lo as i64, hi as i64])),
                );
            }
            continue;
        }
        let k = possible.partition_point(|(t, _)| *t < r.ret.unwrap_or(u64::MAX));
        let (lo, hi) = (base + neg[k], base + pos[k]);
        if v < lo || v > hi {
            anomalies.push(
                Anomaly::new(
                    "out-of-bounds",
                    Severity::Invalid,
                    None,
                    format!(
                        "{} read {v} on {} (completed {}), but the adds invoked by then allow only {lo} to {hi}",
                        who(r),
                        node_of(r),
                        r.describe_time(true)
                    ),
                )
                .op(r)
                .with("bounds", json!([lo as i64, hi as i64])),
            );
        }
    }
    let totals = json!({"reads": reads.len(), "final_reads": finals, "acknowledged_sum": (base + ok_sum) as i64});
    let r = result(
        "eventual-counter",
        ops.len(),
        start,
        anomalies,
        Some(totals),
    );
    Ok(unknown_without_final(r, finals))
}

/// Answers that must be what was asked (`echo`) or never repeat
/// (`unique-ids`: ok `generate` completions).
pub fn check_echo(history: &History) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let mut anomalies = Vec::new();
    let mut ok = 0;
    for op in ok_ops(history, "echo", "echo")? {
        ok += 1;
        let got = op.output.clone().unwrap_or(Value::Null);
        if got != op.input {
            anomalies.push(
                Anomaly::new(
                    "wrong-echo",
                    Severity::Invalid,
                    None,
                    format!(
                        "{} sent {} to {} and got {} back",
                        who(op),
                        op.input,
                        node_of(op),
                        got
                    ),
                )
                .op(op),
            );
        }
    }
    let r = result(
        "echo",
        history.ops.len(),
        start,
        anomalies,
        Some(json!({"answered": ok})),
    );
    Ok(unknown_if_none(r, ok, "no echo was answered"))
}

/// The ok operations, when every operation is `f`.
fn ok_ops<'a>(
    history: &'a History,
    f: &str,
    model: &str,
) -> Result<Vec<&'a Operation>, CheckError> {
    let mut out = Vec::new();
    for op in &history.ops {
        if op.f != f {
            return Err(CheckError::Op {
                event: op.call,
                message: format!("model {model} has no operation {:?}: it knows {f}", op.f),
            });
        }
        if op.outcome == Outcome::Ok {
            out.push(op);
        }
    }
    Ok(out)
}

fn unknown_if_none(mut r: CheckResult, n: usize, why: &str) -> CheckResult {
    if n == 0 && r.valid == Validity::Valid {
        r.valid = Validity::Unknown;
        r.unknown_reason = Some(why.into());
    }
    r
}

pub fn check_unique(history: &History) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let mut anomalies = Vec::new();
    let mut first: FxHashMap<String, &Operation> = FxHashMap::default();
    for op in ok_ops(history, "generate", "unique-ids")? {
        let id = op.output.clone().unwrap_or(Value::Null);
        if let Some(prev) = first.get(&id.to_string()) {
            anomalies.push(
                Anomaly::new(
                    "duplicate-id",
                    Severity::Invalid,
                    None,
                    format!(
                        "id {id} was generated twice: by {} for {} (completed {}) and by {} for {} (completed {})",
                        node_of(prev),
                        who(prev),
                        prev.describe_time(true),
                        node_of(op),
                        who(op),
                        op.describe_time(true)
                    ),
                )
                .op(prev)
                .op(op),
            );
        } else {
            first.insert(id.to_string(), op);
        }
    }
    let n = first.len();
    let r = result(
        "unique-ids",
        history.ops.len(),
        start,
        anomalies,
        Some(json!({"ids": n})),
    );
    Ok(unknown_if_none(r, n, "no id was generated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{read_history, Format};

    fn h(lines: &[&str]) -> History {
        read_history("t", &(lines.join("\n") + "\n"), Format::Jsonl)
            .unwrap()
            .history
    }

    #[test]
    fn a_node_missing_an_acknowledged_element_at_the_end_is_lost() {
        let hist = h(&[
            r#"{"process":0,"type":"invoke","f":"add","value":1}"#,
            r#"{"process":0,"type":"ok","f":"add","value":1,"node":"n1"}"#,
            r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
            r#"{"process":1,"type":"ok","f":"read","value":[],"node":"n2"}"#,
            r#"{"process":0,"type":"invoke","f":"read","value":null}"#,
            r#"{"process":0,"type":"ok","f":"read","value":[1],"node":"n1"}"#,
        ]);
        let r = check_set(&hist).unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        let m = r.anomalies[0].message.as_str();
        assert!(
            m.starts_with("the final read on n2") && m.ends_with(": 1"),
            "{m}"
        );
    }

    #[test]
    fn a_lagging_read_during_the_run_is_stale_not_wrong() {
        let hist = h(&[
            r#"{"process":0,"type":"invoke","f":"add","value":1}"#,
            r#"{"process":0,"type":"ok","f":"add","value":1,"node":"n1"}"#,
            r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
            r#"{"process":0,"type":"invoke","f":"add","value":2}"#,
            r#"{"process":1,"type":"ok","f":"read","value":[],"node":"n2"}"#,
            r#"{"process":0,"type":"info","f":"add","value":2}"#,
            r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
            r#"{"process":1,"type":"ok","f":"read","value":[1,2],"node":"n2"}"#,
        ]);
        let r = check_set(&hist).unwrap();
        assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);
        assert_eq!(r.summary.as_ref().unwrap()["stale_reads"], 1);
    }

    #[test]
    fn without_a_final_read_the_set_is_unknown() {
        let hist = h(&[
            r#"{"process":0,"type":"invoke","f":"add","value":1}"#,
            r#"{"process":0,"type":"ok","f":"add","value":1}"#,
        ]);
        assert_eq!(check_set(&hist).unwrap().valid, Validity::Unknown);
    }

    #[test]
    fn counter_final_reads_equal_the_sum_give_or_take_crashed_adds() {
        let run = |final_value: i64| {
            let last = format!(
                r#"{{"process":1,"type":"ok","f":"read","value":{final_value},"node":"n2"}}"#
            );
            let hist = h(&[
                r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
                r#"{"process":1,"type":"ok","f":"read","value":0}"#,
                r#"{"process":0,"type":"invoke","f":"add","value":5}"#,
                r#"{"process":0,"type":"ok","f":"add","value":5}"#,
                r#"{"process":0,"type":"invoke","f":"add","value":-2}"#,
                r#"{"process":0,"type":"info","f":"add","value":-2}"#,
                r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
                &last,
            ]);
            check_counter(&hist, &Value::Null).unwrap()
        };
        // (final read, expected verdict)
        for (v, want) in [
            (5, Validity::Valid),
            (3, Validity::Valid),
            (4, Validity::Valid),
            (6, Validity::Invalid),
            (2, Validity::Invalid),
        ] {
            assert_eq!(run(v).valid, want, "final read {v}");
        }
        assert!(run(6).anomalies[0]
            .message
            .as_str()
            .contains("between 3 and 5"));
    }

    #[test]
    fn a_read_beyond_every_add_is_out_of_bounds() {
        let hist = h(&[
            r#"{"process":0,"type":"invoke","f":"add","value":1}"#,
            r#"{"process":0,"type":"ok","f":"add","value":1}"#,
            r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
            r#"{"process":0,"type":"invoke","f":"add","value":1}"#,
            r#"{"process":1,"type":"ok","f":"read","value":7}"#,
            r#"{"process":0,"type":"ok","f":"add","value":1}"#,
        ]);
        let r = check_counter(&hist, &Value::Null).unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.anomalies[0].kind, "out-of-bounds");
    }

    #[test]
    fn echoes_must_match_and_ids_must_not_repeat() {
        let hist = h(&[
            r#"{"process":0,"type":"invoke","f":"echo","value":"a"}"#,
            r#"{"process":0,"type":"ok","f":"echo","value":"b","node":"n1"}"#,
        ]);
        let r = check_echo(&hist).unwrap();
        assert_eq!(
            r.anomalies[0].message,
            "process 0 sent \"a\" to n1 and got \"b\" back"
        );
        let hist = h(&[
            r#"{"process":0,"type":"invoke","f":"generate","value":null}"#,
            r#"{"process":0,"type":"ok","f":"generate","value":"x","node":"n1"}"#,
            r#"{"process":1,"type":"invoke","f":"generate","value":null}"#,
            r#"{"process":1,"type":"ok","f":"generate","value":"y","node":"n2"}"#,
            r#"{"process":1,"type":"invoke","f":"generate","value":null}"#,
            r#"{"process":1,"type":"ok","f":"generate","value":"x","node":"n2"}"#,
        ]);
        let r = check_unique(&hist).unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.anomalies[0]
            .message
            .as_str()
            .starts_with("id \"x\" was generated twice: by n1"));
    }
}
