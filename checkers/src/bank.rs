//! Bank (`--model bank`): money is conserved and no balance goes negative.
//!
//! Operations: `transfer {"from": a, "to": b, "amount": n}` and
//! `read null -> {"a": balance, ...}`. Every ok read must show every account,
//! sum to the initial total, and (unless allowed) have no negative balance.
//! Each bad read is reported with its total and the transfers concurrent
//! with it; the summary has the total of every read over time (the drift).

use crate::anomaly::{int, result, who, Anomaly, Severity};
use crate::history::{History, Operation, Outcome};
use crate::linear::CheckError;
use crate::CheckResult;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// Concurrent transfers listed per bad read.
const CONCURRENT_LISTED: usize = 10;
/// Points of the drift series kept in the summary.
const DRIFT_POINTS: usize = 2000;

/// Initial balances: `{"a": 10, ...}`, or `{"balances": {...}, "negative": true}`
/// to allow negative balances.
pub struct BankInit {
    pub balances: Map<String, Value>,
    pub allow_negative: bool,
}

impl BankInit {
    pub fn parse(init: &Value) -> Result<BankInit, CheckError> {
        let usage = || {
            CheckError::Init(
                "model bank needs the initial balances: --init '{\"a\":10,\"b\":10}' (or {\"balances\":{...},\"negative\":true} to allow negative balances)".into(),
            )
        };
        let Value::Object(m) = init else {
            return Err(usage());
        };
        let (balances, allow_negative) = match m.get("balances") {
            Some(Value::Object(b)) => (
                b.clone(),
                m.get("negative").and_then(Value::as_bool).unwrap_or(false),
            ),
            Some(_) => return Err(usage()),
            None => (m.clone(), false),
        };
        if balances.is_empty() {
            return Err(usage());
        }
        for (k, v) in &balances {
            if v.as_i64().is_none() {
                return Err(CheckError::Init(format!(
                    "--init: the balance of account {k:?} must be an integer, got {v}"
                )));
            }
        }
        Ok(BankInit {
            balances,
            allow_negative,
        })
    }
}

pub fn check(history: &History, init: &Value) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let init = BankInit::parse(init)?;
    // i128: sums of i64 balances must not wrap (a wrapped sum can equal the total).
    let total: i128 = init
        .balances
        .values()
        .filter_map(Value::as_i64)
        .map(i128::from)
        .sum();
    let mut transfers: Vec<&Operation> = Vec::new();
    let mut reads: Vec<&Operation> = Vec::new();
    for op in &history.ops {
        match op.f.as_str() {
            "transfer" => {
                if op.outcome != Outcome::Fail {
                    transfers.push(op);
                }
            }
            "read" => {
                if op.outcome == Outcome::Ok {
                    reads.push(op);
                }
            }
            // An operator's resolution of in-doubt transactions: in the
            // history for the report, no effect on balances of its own.
            "resolve" => {}
            f => {
                return Err(CheckError::Op {
                    event: op.call,
                    message: format!(
                        "model bank has no operation {f:?}: it knows transfer, read and resolve"
                    ),
                })
            }
        }
    }
    // Transfers by invocation, and the longest finite one, to find those
    // concurrent with a read without scanning them all; crashed ones stay
    // concurrent with everything after their invocation.
    transfers.sort_by_key(|t| t.call);
    let longest = transfers
        .iter()
        .filter_map(|t| t.ret.map(|r| r - t.call))
        .max()
        .unwrap_or(0);
    let crashed: Vec<&Operation> = transfers
        .iter()
        .copied()
        .filter(|t| t.ret.is_none() || t.outcome == Outcome::Info)
        .collect();

    let mut anomalies = Vec::new();
    let mut drift: Vec<Value> = Vec::new();
    let (mut lowest, mut highest) = (total, total);
    let step = (reads.len() / DRIFT_POINTS).max(1);
    for (n, r) in reads.iter().enumerate() {
        let Some(Value::Object(seen)) = &r.output else {
            return Err(CheckError::Op {
                event: r.ret.unwrap_or(r.call),
                message: format!(
                    "a bank read must return an object of balances, got {}",
                    r.output.as_ref().unwrap_or(&Value::Null)
                ),
            });
        };
        let mut sum = 0i128;
        let mut problems = Vec::new();
        for (acct, v) in seen {
            let Some(b) = v.as_i64() else {
                return Err(CheckError::Op {
                    event: r.ret.unwrap_or(r.call),
                    message: format!("balance of account {acct:?} must be an integer, got {v}"),
                });
            };
            sum += i128::from(b);
            if b < 0 && !init.allow_negative {
                problems.push(format!("account {acct:?} had {b}"));
            }
            if !init.balances.contains_key(acct) {
                problems.push(format!("account {acct:?} does not exist"));
            }
        }
        let missing: Vec<&String> = init
            .balances
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "account{} {} missing",
                if missing.len() > 1 { "s" } else { "" },
                missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        lowest = lowest.min(sum);
        highest = highest.max(sum);
        if n % step == 0 {
            drift.push(json!([r.ret_time.or(r.ret), int(sum)]));
        }
        if sum == total && problems.is_empty() {
            continue;
        }
        let (concurrent, count) = concurrent_with(r, &transfers, &crashed, longest);
        let kind = if sum != total {
            "wrong-total"
        } else if missing.is_empty() {
            "negative-balance"
        } else {
            "missing-accounts"
        };
        let mut what = Vec::new();
        if sum != total {
            what.push(format!("the balances summed to {sum} instead of {total}"));
        }
        what.extend(problems);
        let listed: Vec<String> = concurrent
            .iter()
            .take(CONCURRENT_LISTED)
            .map(|t| describe_transfer(t))
            .collect();
        let message = format!(
            "{} read at {} (completed {}), but {}; {}",
            who(r),
            r.describe_time(false),
            r.describe_time(true),
            what.join(", "),
            match count {
                0 => "no transfer was concurrent with it".to_string(),
                k => format!(
                    "{k} transfer{} concurrent with it: {}{}",
                    if k > 1 { "s were" } else { " was" },
                    listed.join("; "),
                    if k > listed.len() { "; ..." } else { "" }
                ),
            }
        );
        let mut a = Anomaly::new(kind, Severity::Invalid, None, message)
            .op(r)
            .with("total", int(sum))
            .with("expected", int(total));
        for t in &concurrent {
            a = a.op(t);
        }
        anomalies.push(a);
    }
    let summary = json!({
        "total": int(total),
        "reads": reads.len(),
        "transfers": transfers.len(),
        "lowest_total": int(lowest),
        "highest_total": int(highest),
        "drift": drift,
    });
    Ok(result(
        "bank",
        history.ops.len(),
        start,
        anomalies,
        Some(summary),
    ))
}

fn describe_transfer(t: &Operation) -> String {
    let v = &t.input;
    let state = match t.outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "failed",
        Outcome::Info => "crashed",
    };
    format!(
        "{} moved {} from {} to {} ({state}, {} to {})",
        who(t),
        v.get("amount").unwrap_or(&Value::Null),
        v.get("from").unwrap_or(&Value::Null),
        v.get("to").unwrap_or(&Value::Null),
        t.describe_time(false),
        if t.ret.is_some() {
            t.describe_time(true)
        } else {
            "never completed".into()
        }
    )
}

/// Transfers whose span meets the read's: invoked before the read completed
/// and completed (or not at all) after it was invoked. Returns the nearest
/// few (by invocation) and how many there are.
fn concurrent_with<'a>(
    r: &Operation,
    transfers: &[&'a Operation],
    crashed: &[&'a Operation],
    longest: u64,
) -> (Vec<&'a Operation>, usize) {
    let r_end = r.ret.unwrap_or(u64::MAX);
    let upto = transfers.partition_point(|t| t.call < r_end);
    let mut out: Vec<&Operation> = transfers[..upto]
        .iter()
        .rev()
        .take_while(|t| t.call.saturating_add(longest) >= r.call)
        .filter(|t| t.ret.is_some_and(|tr| tr > r.call) && t.outcome != Outcome::Info)
        .copied()
        .collect();
    let c_upto = crashed.partition_point(|t| t.call < r_end);
    let count = out.len() + c_upto;
    out.extend(
        crashed[..c_upto]
            .iter()
            .rev()
            .take(CONCURRENT_LISTED)
            .copied(),
    );
    out.sort_by_key(|t| std::cmp::Reverse(t.call));
    out.truncate(CONCURRENT_LISTED);
    out.reverse();
    (out, count)
}
