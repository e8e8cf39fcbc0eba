//! Counter (`--model counter`): every read within what the adds allow.
//!
//! Operations: `add n` (n may be negative) and `read null -> value`. A read
//! must see every ok add that completed before it was invoked, may see any
//! add (ok or crashed) invoked before it completed, and sees no other. So
//! with certain = ok adds completed before the read's invocation and
//! possible = adds invoked before its completion, the value lies within
//! `init + sum(certain) + sum(negative parts of possible - certain)` and
//! `init + sum(certain) + sum(positive parts of possible - certain)`.
//! Prefix sums make it n log n.

use crate::anomaly::{int, result, who, Anomaly, Severity};
use crate::history::{History, Operation, Outcome};
use crate::linear::CheckError;
use crate::CheckResult;
use serde_json::{json, Value};
use std::time::Instant;

pub fn check(history: &History, init: &Value) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let base = match init {
        Value::Null => 0,
        v => v.as_i64().ok_or_else(|| {
            CheckError::Init(format!("--init for counter must be an integer, got {v}"))
        })?,
    };
    let mut anomalies = Vec::new();
    let mut reads_checked = 0usize;
    for (key, ids) in history.by_key() {
        let ops: Vec<&Operation> = ids.iter().map(|&i| &history.ops[i]).collect();
        reads_checked += check_key(&ops, key.as_ref(), base, &mut anomalies)?;
    }
    Ok(result(
        "counter",
        history.ops.len(),
        start,
        anomalies,
        Some(json!({"reads": reads_checked})),
    ))
}

/// Prefix sums of positive and negative parts over times.
struct Sums {
    times: Vec<u64>,
    pos: Vec<i128>,
    neg: Vec<i128>,
}

impl Sums {
    fn new(mut items: Vec<(u64, i64)>) -> Sums {
        items.sort_unstable();
        let (mut pos, mut neg) = (vec![0i128], vec![0i128]);
        for &(_, v) in &items {
            pos.push(pos[pos.len() - 1] + (v.max(0) as i128));
            neg.push(neg[neg.len() - 1] + (v.min(0) as i128));
        }
        Sums {
            times: items.into_iter().map(|(t, _)| t).collect(),
            pos,
            neg,
        }
    }

    /// Sums over items with time < t.
    fn before(&self, t: u64) -> (i128, i128) {
        let k = self.times.partition_point(|&x| x < t);
        (self.pos[k], self.neg[k])
    }
}

fn check_key(
    ops: &[&Operation],
    key: Option<&Value>,
    base: i64,
    anomalies: &mut Vec<Anomaly>,
) -> Result<usize, CheckError> {
    let mut certain = Vec::new(); // (completion, n) of ok adds
    let mut possible = Vec::new(); // (invocation, n) of ok and crashed adds
    let mut reads = Vec::new();
    for op in ops {
        match op.f.as_str() {
            "add" => {
                let n = op.input.as_i64().ok_or_else(|| CheckError::Op {
                    event: op.call,
                    message: format!("a counter add needs an integer, got {}", op.input),
                })?;
                match op.outcome {
                    Outcome::Ok => {
                        certain.push((op.ret.unwrap_or(op.call), n));
                        possible.push((op.call, n));
                    }
                    Outcome::Info => possible.push((op.call, n)),
                    Outcome::Fail => {}
                }
            }
            "read" => {
                if op.outcome == Outcome::Ok {
                    let v = op.output.as_ref().and_then(Value::as_i64).ok_or_else(|| {
                        CheckError::Op {
                            event: op.ret.unwrap_or(op.call),
                            message: format!(
                                "a counter read must return an integer, got {}",
                                op.output.as_ref().unwrap_or(&Value::Null)
                            ),
                        }
                    })?;
                    reads.push((*op, v));
                }
            }
            f => {
                return Err(CheckError::Op {
                    event: op.call,
                    message: format!("model counter has no operation {f:?}: it knows add and read"),
                })
            }
        }
    }
    let (certain, possible) = (Sums::new(certain), Sums::new(possible));
    for &(r, v) in &reads {
        let (cp, cn) = certain.before(r.call);
        let (pp, pn) = possible.before(r.ret.unwrap_or(u64::MAX));
        let sure = base as i128 + cp + cn;
        let (lo, hi) = (sure + (pn - cn), sure + (pp - cp));
        let v = v as i128;
        if v < lo || v > hi {
            anomalies.push(
                Anomaly::new(
                    "out-of-bounds",
                    Severity::Invalid,
                    key,
                    format!(
                        "{} read {v} (invoked at {}, completed {}), but the counter must have been between {lo} and {hi}: {} by the adds completed before the read began, plus or minus those concurrent with it",
                        who(r),
                        r.describe_time(false),
                        r.describe_time(true),
                        sure
                    ),
                )
                .op(r)
                .with("bounds", json!([int(lo), int(hi)]))
                .with("value", int(v)),
            );
        }
    }
    Ok(reads.len())
}
