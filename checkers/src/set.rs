//! Set (`--model set`): what the final read says about every add.
//!
//! Operations: `add v` and `read null -> [v, ...]`, per key (one set when
//! absent). The final reads are the ok reads invoked after every add had
//! completed (or, if there are none, the last ok read). Against each:
//! - lost: an ok add missing (invalid);
//! - unexpected: an element never added, or whose add failed (invalid);
//! - recovered: an element whose add crashed, present (counted).
//!
//! With reads during the run, an element seen by one read and missing from a
//! read invoked after that one completed has vanished (invalid).

use crate::anomaly::{result, who, Anomaly, Severity};
use crate::history::{History, Operation, Outcome};
use crate::linear::CheckError;
use crate::CheckResult;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value};
use std::time::Instant;

/// Vanished elements listed per read.
const PER_READ: usize = 10;

pub fn check(history: &History) -> Result<CheckResult, CheckError> {
    let start = Instant::now();
    let mut anomalies = Vec::new();
    let mut totals = json!({"attempted": 0, "acknowledged": 0, "lost": 0, "unexpected": 0, "recovered": 0, "vanished": 0});
    for (key, ids) in history.by_key() {
        let ops: Vec<&Operation> = ids.iter().map(|&i| &history.ops[i]).collect();
        check_key(&ops, key.as_ref(), &mut anomalies, &mut totals)?;
    }
    Ok(result(
        "set",
        history.ops.len(),
        start,
        anomalies,
        Some(totals),
    ))
}

fn bump(totals: &mut Value, field: &str, by: usize) {
    if let Some(v) = totals.get_mut(field) {
        *v = json!(v.as_u64().unwrap_or(0).saturating_add(by as u64));
    }
}

/// Elements by value, as small ids. Integers in the dense range the adds
/// span go through a table (set workloads add small distinct integers);
/// other integers through a hash map; anything else by canonical JSON text.
struct Elements {
    lo: i64,
    table: Vec<u32>,
    ints: FxHashMap<i64, u32>,
    ids: FxHashMap<String, u32>,
    names: Vec<Value>,
}

impl Elements {
    fn new(ops: &[&Operation]) -> Elements {
        let (lo, hi) = ops
            .iter()
            .filter(|o| o.f == "add")
            .filter_map(|o| o.input.as_i64())
            .fold((i64::MAX, i64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let span = hi
            .checked_sub(lo)
            .and_then(|d| usize::try_from(d).ok())
            .map(|d| d + 1);
        Elements {
            lo,
            table: match span {
                Some(n) if n <= 8 * ops.len() + 1024 => vec![u32::MAX; n],
                _ => Vec::new(),
            },
            ints: FxHashMap::default(),
            ids: FxHashMap::default(),
            names: Vec::new(),
        }
    }

    fn intern(&mut self, v: &Value) -> u32 {
        let next = self.names.len() as u32;
        let i = if let Some(n) = v.as_i64() {
            let slot = n
                .checked_sub(self.lo)
                .and_then(|d| usize::try_from(d).ok())
                .and_then(|d| self.table.get_mut(d));
            match slot {
                Some(s) => {
                    if *s == u32::MAX {
                        *s = next;
                    }
                    *s
                }
                None => *self.ints.entry(n).or_insert(next),
            }
        } else {
            *self.ids.entry(v.to_string()).or_insert(next)
        };
        if i == next {
            self.names.push(v.clone());
        }
        i
    }
}

/// One key's adds and ok reads, elements interned.
struct KeyOps<'a> {
    elements: Elements,
    /// The add of each element (the first one, if several), by element id.
    adds: Vec<Option<&'a Operation>>,
    /// Each ok read's elements, sorted: membership by binary search.
    reads: Vec<(&'a Operation, Vec<u32>)>,
    /// When the last add completed (or was invoked, if it never did).
    last_add: u64,
}

impl<'a> KeyOps<'a> {
    fn collect(ops: &[&'a Operation]) -> Result<KeyOps<'a>, CheckError> {
        let mut k = KeyOps {
            elements: Elements::new(ops),
            adds: Vec::new(),
            reads: Vec::new(),
            last_add: 0,
        };
        for &op in ops {
            match op.f.as_str() {
                "add" => {
                    let e = k.elements.intern(&op.input) as usize;
                    if k.adds.len() <= e {
                        k.adds.resize(e + 1, None);
                    }
                    k.adds[e].get_or_insert(op);
                    k.last_add = k.last_add.max(op.ret.unwrap_or(op.call));
                }
                "read" if op.outcome == Outcome::Ok => {
                    let Some(Value::Array(items)) = &op.output else {
                        return Err(CheckError::Op {
                            event: op.ret.unwrap_or(op.call),
                            message: format!(
                                "a set read must return an array, got {}",
                                op.output.as_ref().unwrap_or(&Value::Null)
                            ),
                        });
                    };
                    let mut set: Vec<u32> = items.iter().map(|v| k.elements.intern(v)).collect();
                    set.sort_unstable();
                    set.dedup();
                    k.reads.push((op, set));
                }
                "read" => {}
                f => {
                    return Err(CheckError::Op {
                        event: op.call,
                        message: format!("model set has no operation {f:?}: it knows add and read"),
                    })
                }
            }
        }
        k.adds.resize(k.elements.names.len(), None);
        Ok(k)
    }

    fn name(&self, e: u32) -> &Value {
        &self.elements.names[e as usize]
    }

    /// The ok reads invoked after every add completed, or else the last.
    fn finals(&self) -> Vec<usize> {
        let reads = &self.reads;
        let mut finals: Vec<usize> = (0..reads.len())
            .filter(|&i| reads[i].0.call > self.last_add)
            .collect();
        if finals.is_empty() {
            if let Some(last) = (0..reads.len()).max_by_key(|&i| reads[i].0.ret) {
                finals.push(last);
            }
        }
        finals
    }
}

fn check_key(
    ops: &[&Operation],
    key: Option<&Value>,
    anomalies: &mut Vec<Anomaly>,
    totals: &mut Value,
) -> Result<(), CheckError> {
    let k = KeyOps::collect(ops)?;
    let ok_adds = k
        .adds
        .iter()
        .flatten()
        .filter(|a| a.outcome == Outcome::Ok)
        .count();
    bump(totals, "attempted", k.adds.iter().flatten().count());
    bump(totals, "acknowledged", ok_adds);
    check_finals(&k, key, anomalies, totals);
    check_vanished(&k, key, anomalies, totals);
    Ok(())
}

/// Lost, unexpected and recovered elements against the final reads.
fn check_finals(k: &KeyOps, key: Option<&Value>, anomalies: &mut Vec<Anomaly>, totals: &mut Value) {
    // Each element is tallied once, however many final reads saw it.
    let mut lost_elems: FxHashSet<u32> = FxHashSet::default();
    let mut recovered: FxHashSet<u32> = FxHashSet::default();
    let mut unexpected: FxHashSet<u32> = FxHashSet::default();
    for f in k.finals() {
        let (r, seen) = &k.reads[f];
        let at = format!(
            "{}'s final read (completed {})",
            who(r),
            r.describe_time(true)
        );
        let mut in_read = vec![false; k.elements.names.len()];
        for &e in seen {
            in_read[e as usize] = true;
        }
        let mut lost: Vec<(u32, &Operation)> = k
            .adds
            .iter()
            .enumerate()
            .filter_map(|(e, a)| {
                a.filter(|a| a.outcome == Outcome::Ok && !in_read[e])
                    .map(|a| (e as u32, a))
            })
            .collect();
        lost.sort_by_key(|(_, a)| a.call);
        for (e, a) in lost {
            lost_elems.insert(e);
            anomalies.push(
                Anomaly::new(
                    "lost",
                    Severity::Invalid,
                    key,
                    format!(
                        "element {} was added by {} (acknowledged at {}) but is missing from {at}",
                        a.input,
                        who(a),
                        a.describe_time(true)
                    ),
                )
                .op(a)
                .op(r)
                .with("element", a.input.clone()),
            );
        }
        for &e in seen {
            let add = k.adds[e as usize];
            let why = match add {
                None => format!("element {} was never added, yet it is in {at}", k.name(e)),
                Some(a) if a.outcome == Outcome::Fail => format!(
                    "element {}'s add by {} failed (at {}), yet it is in {at}",
                    a.input,
                    who(a),
                    a.describe_time(true)
                ),
                Some(a) if a.outcome == Outcome::Info => {
                    recovered.insert(e);
                    continue;
                }
                Some(_) => continue,
            };
            unexpected.insert(e);
            let mut anomaly = Anomaly::new("unexpected", Severity::Invalid, key, why);
            if let Some(a) = add {
                anomaly = anomaly.op(a);
            }
            anomalies.push(anomaly.op(r).with("element", k.name(e).clone()));
        }
    }
    bump(totals, "lost", lost_elems.len());
    bump(totals, "unexpected", unexpected.len());
    bump(totals, "recovered", recovered.len());
}

/// Vanished: seen by a read, missing from a read invoked after that one
/// completed.
fn check_vanished(
    k: &KeyOps,
    key: Option<&Value>,
    anomalies: &mut Vec<Anomaly>,
    totals: &mut Value,
) {
    let reads = &k.reads;
    let mut first_seen: FxHashMap<u32, (u64, usize)> = FxHashMap::default();
    for (i, (r, set)) in reads.iter().enumerate() {
        let done = r.ret.unwrap_or(u64::MAX);
        for &e in set {
            let slot = first_seen.entry(e).or_insert((done, i));
            if done < slot.0 {
                *slot = (done, i);
            }
        }
    }
    let mut by_first: Vec<(u64, u32, usize)> =
        first_seen.iter().map(|(&e, &(t, i))| (t, e, i)).collect();
    by_first.sort_unstable();
    let mut order: Vec<usize> = (0..reads.len()).collect();
    order.sort_by_key(|&i| reads[i].0.call);
    for i in order {
        let (r, set) = &reads[i];
        let n = by_first.partition_point(|&(t, _, _)| t < r.call);
        let present = set
            .iter()
            .filter(|e| first_seen.get(e).is_some_and(|&(t, _)| t < r.call))
            .count();
        if present == n {
            continue;
        }
        let gone: Vec<&(u64, u32, usize)> = by_first[..n]
            .iter()
            .filter(|(_, e, _)| set.binary_search(e).is_err())
            .collect();
        bump(totals, "vanished", gone.len());
        for &&(_, e, w) in gone.iter().take(PER_READ) {
            let seer = reads[w].0;
            anomalies.push(
                Anomaly::new(
                    "vanished",
                    Severity::Invalid,
                    key,
                    format!(
                        "element {} was seen by {}'s read (completed {}) but is missing from {}'s read invoked at {}",
                        k.name(e),
                        who(seer),
                        seer.describe_time(true),
                        who(r),
                        r.describe_time(false)
                    ),
                )
                .op(seer)
                .op(r)
                .with("element", k.name(e).clone()),
            );
        }
    }
}
