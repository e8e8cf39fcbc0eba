//! rw-register: unique values per key. A transaction that read v1 and then
//! wrote v2 tells us v1 precedes v2; nil (never written) precedes every
//! version. From those version orders come the ww, wr and rw edges.

use super::append::{events, lost_updates, writers};
use super::build::{MopKind, Txns, NIL, NIL_VALUE};
use super::graph::{RawEdge, RW, WR, WW};
use super::Found;
use crate::history::Outcome;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;

/// A transaction's external read of `k` (its first micro-op on k, if a known read).
pub(crate) fn external_read(txns: &Txns, t: usize, k: u32) -> Option<usize> {
    let i = txns.mop_range(t).find(|&i| txns.mops[i].key == k)?;
    let m = &txns.mops[i];
    (m.kind == MopKind::Read && m.len != NIL).then_some(i)
}

pub(crate) fn analyse(txns: &Txns) -> (Vec<Found>, Vec<RawEdge>) {
    let mut found = Vec::new();
    let mut edges = Vec::new();
    let writer = writers(txns, MopKind::Write);
    let show = |t: u32| {
        format!(
            "T{} {}",
            txns.txns[t as usize].call,
            txns.describe(t as usize)
        )
    };
    let failed = |t: u32| txns.txns[t as usize].outcome == Outcome::Fail;
    let kv = |k: u32| Some(txns.keys.value(k as u64));
    // (key, value read) -> external readers (txn, mop).
    let mut readers: FxHashMap<(u32, u64), Vec<(u32, u32)>> = FxHashMap::default();
    // (key, v1, v2, txn, write mop): txn read v1 then wrote v2.
    let mut versions: Vec<(u32, u64, u64, u32, u32)> = Vec::new();
    let mut rmw: Vec<(u32, u64, u32)> = Vec::new();

    for (t, tx) in txns.txns.iter().enumerate() {
        if tx.outcome != Outcome::Ok {
            continue;
        }
        let range = txns.mop_range(t);
        for i in range.clone() {
            let m = &txns.mops[i];
            let k = m.key;
            let before = &txns.mops[range.start..i];
            if m.kind == MopKind::Read && m.len != NIL {
                // Internal: the last thing this transaction read or wrote here.
                if let Some(p) = before
                    .iter()
                    .rev()
                    .find(|n| n.key == k && (n.kind == MopKind::Write || n.len != NIL))
                {
                    if p.val != m.val {
                        found.push(Found {
                            kind: "internal",
                            key: kv(k),
                            message: format!(
                                "{} read {}={}, but its own earlier micro-ops imply {}",
                                show(t as u32),
                                txns.keys.show(k as u64),
                                txns.vals.show(m.val),
                                txns.vals.show(p.val)
                            ),
                            events: events(txns, &[t as u32]),
                            extra: vec![],
                        });
                    }
                    continue;
                }
                if before.iter().any(|n| n.key == k) {
                    continue;
                }
                // External read.
                readers
                    .entry((k, m.val))
                    .or_default()
                    .push((t as u32, i as u32));
                if let Some(j) = txns.mops[i + 1..range.end]
                    .iter()
                    .rposition(|n| n.key == k && n.kind == MopKind::Write)
                {
                    let j = i + 1 + j;
                    rmw.push((k, m.val, t as u32));
                    versions.push((k, m.val, txns.mops[j].val, t as u32, j as u32));
                }
                if m.val == NIL_VALUE {
                    continue;
                }
                let w = writer.get(&(k, m.val));
                let (kind, why) = match w {
                    None => ("garbage-read", "no transaction wrote it".to_string()),
                    Some(w) if failed(w.txn) => (
                        "G1a",
                        format!("{} wrote it but failed (an aborted read)", show(w.txn)),
                    ),
                    Some(w) if w.txn != t as u32 && !w.last => (
                        "G1b",
                        format!(
                            "{} wrote it but then wrote {} again (an intermediate read)",
                            show(w.txn),
                            txns.keys.show(k as u64)
                        ),
                    ),
                    Some(w) if w.txn == t as u32 => (
                        "future-read",
                        "it only writes that value afterwards".to_string(),
                    ),
                    Some(w) => {
                        edges.push(RawEdge {
                            from: w.txn,
                            to: t as u32,
                            label: WR,
                            why: i as u32,
                        });
                        continue;
                    }
                };
                let mut involved = vec![t as u32];
                involved.extend(w.map(|w| w.txn));
                found.push(Found {
                    kind,
                    key: kv(k),
                    message: format!(
                        "{} read {}={}, but {why}",
                        show(t as u32),
                        txns.keys.show(k as u64),
                        txns.vals.show(m.val)
                    ),
                    events: events(txns, &involved),
                    extra: vec![("value", txns.vals.value(m.val))],
                });
            }
        }
    }

    // Version graphs per key: cycles are cyclic-versions.
    versions.sort_unstable();
    let mut cyclic: FxHashSet<u32> = FxHashSet::default();
    for g in versions.chunk_by(|a, b| a.0 == b.0) {
        if let Some(cycle) = version_cycle(g) {
            let k = g[0].0;
            cyclic.insert(k);
            let shown: Vec<String> = cycle.iter().map(|&v| txns.vals.show(v)).collect();
            let ts: Vec<u32> = g.iter().map(|x| x.3).collect();
            found.push(Found {
                kind: "cyclic-versions",
                key: kv(k),
                message: format!(
                    "the versions of {} form a cycle: {} (each read then overwritten by some transaction)",
                    txns.keys.show(k as u64),
                    shown.join(" < ")
                ),
                events: events(txns, &ts[..ts.len().min(8)]),
                extra: vec![(
                    "versions",
                    Value::from(cycle.iter().map(|&v| txns.vals.value(v)).collect::<Vec<_>>()),
                )],
            });
        }
    }
    // Versions with a known non-nil predecessor; all others follow nil directly.
    let mut has_pred: FxHashSet<(u32, u64)> = FxHashSet::default();
    for &(k, v1, v2, t, j) in &versions {
        if cyclic.contains(&k) || v1 == NIL_VALUE {
            continue;
        }
        has_pred.insert((k, v2));
        if let Some(w) = writer.get(&(k, v1)) {
            if w.txn != t && !failed(w.txn) {
                edges.push(RawEdge {
                    from: w.txn,
                    to: t,
                    label: WW,
                    why: j,
                });
            }
        }
        for &(r, rm) in readers.get(&(k, v1)).map_or(&[][..], |v| v.as_slice()) {
            if r != t {
                edges.push(RawEdge {
                    from: r,
                    to: t,
                    label: RW,
                    why: rm,
                });
            }
        }
    }
    // Readers of nil precede every root version's writer.
    for (&(k, v), w) in &writer {
        if !w.last || failed(w.txn) || cyclic.contains(&k) || has_pred.contains(&(k, v)) {
            continue;
        }
        for &(r, rm) in readers
            .get(&(k, NIL_VALUE))
            .map_or(&[][..], |v| v.as_slice())
        {
            if r != w.txn {
                edges.push(RawEdge {
                    from: r,
                    to: w.txn,
                    label: RW,
                    why: rm,
                });
            }
        }
    }
    lost_updates(txns, rmw, &mut found);
    (found, edges)
}

/// A cycle among one key's version edges (v1 -> v2), if any: Kahn's
/// algorithm, then a walk inside what remains.
fn version_cycle(g: &[(u32, u64, u64, u32, u32)]) -> Option<Vec<u64>> {
    let mut out: FxHashMap<u64, Vec<u64>> = FxHashMap::default();
    let mut inn: FxHashMap<u64, Vec<u64>> = FxHashMap::default();
    let mut indeg: FxHashMap<u64, usize> = FxHashMap::default();
    for &(_, a, b, _, _) in g {
        if a == NIL_VALUE || a == b {
            continue;
        }
        out.entry(a).or_default().push(b);
        inn.entry(b).or_default().push(a);
        indeg.entry(a).or_insert(0);
        *indeg.entry(b).or_insert(0) += 1;
    }
    let mut queue: Vec<u64> = indeg
        .iter()
        .filter(|(_, &d)| d == 0)
        .map(|(&v, _)| v)
        .collect();
    while let Some(v) = queue.pop() {
        indeg.remove(&v);
        for &w in out.get(&v).map_or(&[][..], |x| x.as_slice()) {
            if let Some(d) = indeg.get_mut(&w) {
                *d -= 1;
                if *d == 0 {
                    queue.push(w);
                }
            }
        }
    }
    // Every remaining vertex has a predecessor that remains: walk backwards.
    let mut v = *indeg.keys().min()?;
    let mut path = vec![v];
    let mut pos: FxHashMap<u64, usize> = FxHashMap::default();
    pos.insert(v, 0);
    loop {
        let next = inn
            .get(&v)
            .and_then(|s| s.iter().copied().find(|w| indeg.contains_key(w)))?;
        if let Some(&p) = pos.get(&next) {
            let mut c = path[p..].to_vec();
            c.push(next);
            c.reverse();
            return Some(c);
        }
        pos.insert(next, path.len());
        path.push(next);
        v = next;
    }
}
