//! List-append: version orders from the longest read of each key, the
//! anomalies visible without cycles, and the ww/wr/rw edges.

use super::build::{MopKind, Txns, NIL};
use super::graph::{RawEdge, RW, WR, WW};
use super::Found;
use crate::history::Outcome;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value};

/// Who appended an element: transaction, micro-op, and whether it was the
/// transaction's last append to that key.
#[derive(Clone, Copy)]
pub(crate) struct Writer {
    pub txn: u32,
    pub mop: u32,
    pub last: bool,
}

/// The version order of every key, kept for explanations: the micro-op id
/// of the longest read (`NIL` when the key was never read).
pub(crate) fn version_orders(txns: &Txns) -> Vec<u32> {
    let mut longest = vec![NIL; txns.keys.len()];
    for (t, tx) in txns.txns.iter().enumerate() {
        if tx.outcome != Outcome::Ok {
            continue;
        }
        for i in txns.mop_range(t) {
            let m = &txns.mops[i];
            if m.kind == MopKind::Read && m.len != NIL {
                let cur = longest[m.key as usize];
                if cur == NIL || txns.mops[cur as usize].len < m.len {
                    longest[m.key as usize] = i as u32;
                }
            }
        }
    }
    longest
}

/// Every append's (or write's) writer, by (key, element); the first if
/// several transactions wrote the same element.
pub(crate) fn writers(txns: &Txns, kind: MopKind) -> FxHashMap<(u32, u64), Writer> {
    let mut w: FxHashMap<(u32, u64), Writer> = FxHashMap::default();
    w.reserve(txns.mops.len());
    for (t, _) in txns.txns.iter().enumerate() {
        let r = txns.mop_range(t);
        for i in r.clone() {
            let m = &txns.mops[i];
            if m.kind != kind {
                continue;
            }
            let last = !txns.mops[i + 1..r.end]
                .iter()
                .any(|n| n.kind == kind && n.key == m.key);
            w.entry((m.key, m.val)).or_insert(Writer {
                txn: t as u32,
                mop: i as u32,
                last,
            });
        }
    }
    w
}

pub(crate) fn events(txns: &Txns, ts: &[u32]) -> Vec<u64> {
    let mut e = Vec::new();
    for &t in ts {
        let tx = &txns.txns[t as usize];
        e.push(tx.call);
        e.extend(tx.ret);
    }
    e
}

fn key_value(txns: &Txns, k: u32) -> Option<Value> {
    Some(txns.keys.value(k as u64))
}

pub(crate) fn analyse(txns: &Txns) -> (Vec<Found>, Vec<RawEdge>) {
    let mut found = Vec::new();
    let mut edges = Vec::new();
    let writer = writers(txns, MopKind::Append);
    let longest = version_orders(txns);
    let t_of = |mop: usize| -> u32 {
        // Transactions are in mop order: binary search their starts.
        txns.txns.partition_point(|t| t.mops as usize <= mop) as u32 - 1
    };
    let show = |t: u32| {
        format!(
            "T{} {}",
            txns.txns[t as usize].call,
            txns.describe(t as usize)
        )
    };
    let failed = |w: &Writer| txns.txns[w.txn as usize].outcome == Outcome::Fail;

    // Keys whose version order is unusable (duplicates): no edges from them.
    let mut broken: FxHashSet<u32> = FxHashSet::default();
    // The writer of each position of each key's version order, looked up
    // once: ow[off[k] + i].
    let mut off = vec![0usize; longest.len() + 1];
    let mut ow: Vec<Option<Writer>> = Vec::new();
    // The key whose order last held each append (duplicates show twice).
    let mut stamp = vec![NIL; txns.mops.len()];
    // Per transaction: (key, micro-op) of its append seen last in an order.
    let mut last_append = vec![(NIL, 0u32); txns.len()];
    for (k, &lm) in longest.iter().enumerate() {
        off[k] = ow.len();
        off[k + 1] = ow.len();
        if lm == NIL {
            continue;
        }
        let m = &txns.mops[lm as usize];
        let v = txns.list(m);
        let mut dup = None;
        let mut reordered = None;
        for &e in v {
            let w = writer.get(&(k as u32, e)).copied();
            if let Some(w) = w {
                if stamp[w.mop as usize] == k as u32 && dup.is_none() {
                    dup = Some(e);
                }
                stamp[w.mop as usize] = k as u32;
                // A transaction's appends to k must show in the order it made them.
                let (lk, lm) = last_append[w.txn as usize];
                if lk == k as u32 && lm > w.mop && reordered.is_none() {
                    reordered = Some((w.txn, txns.mops[lm as usize].val, e));
                }
                last_append[w.txn as usize] = (k as u32, w.mop);
            }
            ow.push(w);
        }
        if let Some((t, first, second)) = reordered {
            broken.insert(k as u32);
            let r = t_of(lm as usize);
            found.push(Found {
                kind: "internal",
                key: key_value(txns, k as u32),
                message: format!(
                    "{} appended {} and then {} to {}, but {} read {}={}, with them the other way round",
                    show(t),
                    txns.vals.show(second),
                    txns.vals.show(first),
                    txns.keys.show(k as u64),
                    show(r),
                    txns.keys.show(k as u64),
                    txns.show_read(m)
                ),
                events: events(txns, &[t, r]),
                extra: vec![],
            });
        }
        off[k + 1] = ow.len();
        if let Some(dup) = dup {
            broken.insert(k as u32);
            let t = t_of(lm as usize);
            found.push(Found {
                kind: "duplicate-elements",
                key: key_value(txns, k as u32),
                message: format!(
                    "{} read {}={} in which {} appears more than once",
                    show(t),
                    txns.keys.show(k as u64),
                    txns.show_read(m),
                    txns.vals.show(dup)
                ),
                events: events(txns, &[t]),
                extra: vec![("element", txns.vals.value(dup))],
            });
        }
        // Garbage, aborted reads and dirty updates, along the version order.
        let mut prev: Option<Writer> = None;
        for (&e, &w) in v.iter().zip(&ow[off[k]..off[k + 1]]) {
            match w {
                None => {
                    let t = t_of(lm as usize);
                    found.push(Found {
                        kind: "garbage-read",
                        key: key_value(txns, k as u32),
                        message: format!(
                            "{} read {}={}, but no transaction appended {}",
                            show(t),
                            txns.keys.show(k as u64),
                            txns.show_read(m),
                            txns.vals.show(e)
                        ),
                        events: events(txns, &[t]),
                        extra: vec![("element", txns.vals.value(e))],
                    });
                    broken.insert(k as u32);
                }
                Some(w) if failed(&w) => {
                    // The first read that saw it.
                    let t = t_of(lm as usize);
                    found.push(Found {
                        kind: "G1a",
                        key: key_value(txns, k as u32),
                        message: format!(
                            "{} read {}={}, including {}, which {} appended but failed (an aborted read)",
                            show(t),
                            txns.keys.show(k as u64),
                            txns.show_read(m),
                            txns.vals.show(e),
                            show(w.txn)
                        ),
                        events: events(txns, &[w.txn, t]),
                        extra: vec![("element", txns.vals.value(e))],
                    });
                }
                Some(w) => {
                    if let Some(p) = prev
                        .filter(|p| failed(p))
                        .filter(|_| txns.txns[w.txn as usize].outcome == Outcome::Ok)
                    {
                        found.push(Found {
                            kind: "dirty-update",
                            key: key_value(txns, k as u32),
                            message: format!(
                                "in the version order of {}, {} appended by {} (which failed) is followed by {} appended by {} (which committed)",
                                txns.keys.show(k as u64),
                                txns.vals.show(txns.mops[p.mop as usize].val),
                                show(p.txn),
                                txns.vals.show(e),
                                show(w.txn)
                            ),
                            events: events(txns, &[p.txn, w.txn]),
                            extra: vec![],
                        });
                    }
                }
            }
            prev = w;
        }
    }

    // At most one ww edge per element of an order, a wr and an rw per read,
    // and the graph's process and real-time edges (three per transaction):
    // reserved once rather than grown (untouched reserve costs no memory).
    edges.reserve(ow.len() + 2 * txns.mops.len() + 3 * txns.len());
    // Version-order edges: consecutive elements.
    for (k, &lm) in longest.iter().enumerate() {
        if lm == NIL || broken.contains(&(k as u32)) {
            continue;
        }
        for pair in ow[off[k]..off[k + 1]].windows(2) {
            let (Some(a), Some(b)) = (&pair[0], &pair[1]) else {
                continue;
            };
            if a.txn != b.txn && !failed(a) && !failed(b) {
                edges.push(RawEdge {
                    from: a.txn,
                    to: b.txn,
                    label: WW,
                    why: b.mop,
                });
            }
        }
    }

    // Reads: prefixes, internal consistency, wr and rw edges, G1b, lost updates.
    let mut incompatible: FxHashSet<u32> = FxHashSet::default();
    // (key, read length, txn) of external reads followed by an append to the key.
    let mut rmw: Vec<(u32, u64, u32)> = Vec::new();
    let mut own: Vec<u64> = Vec::new();
    // (key, txn) of reads that fit the version order.
    let mut readers: Vec<(u32, u32)> = Vec::new();
    for (t, tx) in txns.txns.iter().enumerate() {
        if tx.outcome != Outcome::Ok {
            continue;
        }
        let range = txns.mop_range(t);
        for i in range.clone() {
            let m = &txns.mops[i];
            if m.kind != MopKind::Read || m.len == NIL {
                continue;
            }
            let k = m.key;
            let got = txns.list(m);
            // Internal: what this transaction's own earlier micro-ops imply.
            let before = &txns.mops[range.start..i];
            let prev_read = before
                .iter()
                .rposition(|n| n.key == k && n.kind == MopKind::Read && n.len != NIL);
            let since = prev_read.map_or(0, |p| p + 1);
            own.clear();
            own.extend(
                before[since..]
                    .iter()
                    .filter(|n| n.key == k && n.kind == MopKind::Append)
                    .map(|n| n.val),
            );
            let consistent = match prev_read {
                Some(p) => {
                    let base = txns.list(&before[p]);
                    got.len() == base.len() + own.len()
                        && got.starts_with(base)
                        && got.ends_with(&own)
                }
                None => got.ends_with(&own),
            };
            if !consistent {
                let expected = match prev_read {
                    Some(p) => {
                        let mut e = txns.list(&before[p]).to_vec();
                        e.extend(&own);
                        super::build::show_list(&txns.vals, &e)
                    }
                    None => format!(
                        "a list ending in {}",
                        super::build::show_list(&txns.vals, &own)
                    ),
                };
                found.push(Found {
                    kind: "internal",
                    key: key_value(txns, k),
                    message: format!(
                        "{} read {}={}, but its own earlier micro-ops imply {}",
                        show(t as u32),
                        txns.keys.show(k as u64),
                        txns.show_read(m),
                        expected
                    ),
                    events: events(txns, &[t as u32]),
                    extra: vec![],
                });
            }
            // A future read: it saw an element this transaction appends later.
            if let Some(f) = txns.mops[i + 1..range.end]
                .iter()
                .find(|n| n.key == k && n.kind == MopKind::Append && got.contains(&n.val))
            {
                found.push(Found {
                    kind: "future-read",
                    key: key_value(txns, k),
                    message: format!(
                        "{} read {}={}, including {}, which it only appends afterwards",
                        show(t as u32),
                        txns.keys.show(k as u64),
                        txns.show_read(m),
                        txns.vals.show(f.val)
                    ),
                    events: events(txns, &[t as u32]),
                    extra: vec![],
                });
            }
            // Prefix of the version order?
            let lm = longest[k as usize];
            let order = txns.list(&txns.mops[lm as usize]);
            if !order.starts_with(got) {
                if incompatible.insert(k) {
                    let lt = t_of(lm as usize);
                    found.push(Found {
                        kind: "incompatible-order",
                        key: key_value(txns, k),
                        message: format!(
                            "{} read {}={} and {} read {}={}: neither is a prefix of the other",
                            show(t as u32),
                            txns.keys.show(k as u64),
                            txns.show_read(m),
                            show(lt),
                            txns.keys.show(k as u64),
                            txns.show_read(&txns.mops[lm as usize])
                        ),
                        events: events(txns, &[t as u32, lt]),
                        extra: vec![],
                    });
                }
                continue;
            }
            // Writers of the last element seen and of the next one, by position.
            let at = |i: usize| ow.get(off[k as usize] + i).copied().flatten();
            let last_w = got.len().checked_sub(1).and_then(at);
            let next_w = (got.len() < order.len()).then(|| at(got.len())).flatten();
            // G1b: the last element is another transaction's intermediate append.
            if let Some(w) = &last_w {
                if w.txn != t as u32 && !w.last && !failed(w) {
                    found.push(Found {
                        kind: "G1b",
                        key: key_value(txns, k),
                        message: format!(
                            "{} read {}={}, ending in {}, which {} appended but then appended to {} again (an intermediate read)",
                            show(t as u32),
                            txns.keys.show(k as u64),
                            txns.show_read(m),
                            txns.vals.show(txns.mops[w.mop as usize].val),
                            show(w.txn),
                            txns.keys.show(k as u64)
                        ),
                        events: events(txns, &[w.txn, t as u32]),
                        extra: vec![],
                    });
                }
            }
            // Any read lacks the appends nobody saw (see unseen_appends).
            readers.push((k, t as u32));
            // Dependency edges come from external reads only.
            let external = !before
                .iter()
                .any(|n| n.key == k && (n.kind == MopKind::Append || n.kind == MopKind::Read));
            if !external || broken.contains(&k) {
                continue;
            }
            if let Some(w) = &last_w {
                if w.txn != t as u32 && !failed(w) {
                    edges.push(RawEdge {
                        from: w.txn,
                        to: t as u32,
                        label: WR,
                        why: i as u32,
                    });
                }
            }
            if let Some(w) = &next_w {
                if w.txn != t as u32 && !failed(w) {
                    edges.push(RawEdge {
                        from: t as u32,
                        to: w.txn,
                        label: RW,
                        why: i as u32,
                    });
                }
            }
            if txns.mops[i + 1..range.end]
                .iter()
                .any(|n| n.key == k && n.kind == MopKind::Append)
            {
                rmw.push((k, got.len() as u64, t as u32));
            }
        }
    }
    unseen_appends(txns, &stamp, &broken, readers, &mut edges);
    lost_updates(txns, rmw, &mut found);
    (found, edges)
}

/// Marks an rw edge whose `why` is the append nobody saw (see `unseen_appends`).
pub(crate) const UNSEEN: u32 = 1 << 31;

/// A committed append that no read saw: every read of its key, which lacks
/// it, comes before it. (Elle leaves these out; they are sound, and without
/// them a stale read with no later read goes unnoticed.) Keys where that
/// would take more than a million edges are left out.
fn unseen_appends(
    txns: &Txns,
    stamp: &[u32],
    broken: &FxHashSet<u32>,
    mut readers: Vec<(u32, u32)>,
    edges: &mut Vec<RawEdge>,
) {
    let mut unseen: Vec<(u32, u32, u32)> = Vec::new();
    for (t, tx) in txns.txns.iter().enumerate() {
        if tx.outcome != Outcome::Ok {
            continue;
        }
        for i in txns.mop_range(t) {
            let m = &txns.mops[i];
            if m.kind == MopKind::Append && stamp[i] == NIL && !broken.contains(&m.key) {
                unseen.push((m.key, t as u32, i as u32));
            }
        }
    }
    if unseen.is_empty() {
        return;
    }
    readers.sort_unstable();
    unseen.sort_unstable();
    for group in unseen.chunk_by(|a, b| a.0 == b.0) {
        let k = group[0].0;
        let lo = readers.partition_point(|r| r.0 < k);
        let hi = readers.partition_point(|r| r.0 <= k);
        if (hi - lo) * group.len() > 1_000_000 {
            continue;
        }
        for &(_, r) in &readers[lo..hi] {
            for &(_, u, mop) in group {
                if r != u {
                    edges.push(RawEdge {
                        from: r,
                        to: u,
                        label: RW,
                        why: mop | UNSEEN,
                    });
                }
            }
        }
    }
}

/// Two committed transactions that read the same version of a key and both
/// appended (or wrote) to it: one's update is lost on the other.
/// `rmw` holds (key, version, txn).
pub(crate) fn lost_updates(txns: &Txns, mut rmw: Vec<(u32, u64, u32)>, found: &mut Vec<Found>) {
    rmw.sort_unstable();
    for g in rmw.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        if g.len() < 2 {
            continue;
        }
        let ts: Vec<u32> = g.iter().map(|x| x.2).collect();
        let (k, v) = (g[0].0, g[0].1);
        let version = match txns.kind {
            super::TxnKind::ListAppend => format!(
                "the version of {} with {v} elements",
                txns.keys.show(k as u64)
            ),
            super::TxnKind::RwRegister => {
                format!("{}={}", txns.keys.show(k as u64), txns.vals.show(v))
            }
        };
        let names: Vec<String> = ts
            .iter()
            .map(|&t| {
                format!(
                    "T{} {}",
                    txns.txns[t as usize].call,
                    txns.describe(t as usize)
                )
            })
            .collect();
        found.push(Found {
            kind: "lost-update",
            key: Some(txns.keys.value(k as u64)),
            message: format!(
                "{} transactions read {version} and each updated {}: {}",
                ts.len(),
                txns.keys.show(k as u64),
                names.join("; ")
            ),
            events: events(txns, &ts),
            extra: vec![(
                "txns",
                json!(ts
                    .iter()
                    .map(|&t| txns.txns[t as usize].call)
                    .collect::<Vec<_>>()),
            )],
        });
    }
}
