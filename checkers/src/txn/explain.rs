//! Cycles in words: each edge as one sentence, as Elle explains them.

use super::append;
use super::build::{MopKind, Txns, NIL, NIL_VALUE};
use super::cycles::Step;
use super::graph::{PROC, RT, RW, WR, WW};
use super::register;
use super::{Found, TxnKind};
use crate::history::Outcome;
use serde_json::{json, Value};

pub struct Explainer<'a> {
    txns: &'a Txns,
    kind: TxnKind,
    /// List-append: the longest read of each key (its micro-op id).
    longest: Vec<u32>,
}

pub fn label_name(l: u8) -> &'static str {
    match l {
        WW => "ww",
        WR => "wr",
        RW => "rw",
        PROC => "process",
        RT => "realtime",
        _ => "?",
    }
}

impl<'a> Explainer<'a> {
    pub fn new(txns: &'a Txns, kind: TxnKind) -> Explainer<'a> {
        let longest = match kind {
            TxnKind::ListAppend => append::version_orders(txns),
            TxnKind::RwRegister => Vec::new(),
        };
        Explainer {
            txns,
            kind,
            longest,
        }
    }

    fn when(&self, t: u32, ret: bool) -> String {
        let tx = &self.txns.txns[t as usize];
        let (time, idx) = if ret {
            (tx.ret_time, tx.ret)
        } else {
            (tx.call_time, Some(tx.call))
        };
        match (time, idx) {
            (Some(ns), _) => format!("{:.3} s", ns as f64 / 1e9),
            (None, Some(i)) => format!("event {i}"),
            _ => "the end".into(),
        }
    }

    /// One sentence for the edge `s` between the cycle's names `a` and `b`,
    /// and the key it concerns.
    fn sentence(&self, s: &Step, a: &str, b: &str) -> (String, Option<Value>) {
        let x = self.txns;
        let rel = format!("so {a} precedes {b} ({})", label_name(s.label));
        if s.label == RW && s.why != NIL && s.why & append::UNSEEN != 0 {
            if let Some(m) = x.mops.get((s.why & !append::UNSEEN) as usize) {
                let k = x.keys.show(m.key as u64);
                let read = x
                    .mop_range(s.from as usize)
                    .map(|i| &x.mops[i])
                    .find(|n| n.kind == MopKind::Read && n.key == m.key && n.len != NIL)
                    .map_or("?".into(), |n| x.show_read(n));
                return (
                    format!(
                        "{a} read {k}={read} without {}, which {b} appended and committed (no read saw it), {rel}",
                        x.vals.show(m.val)
                    ),
                    Some(x.keys.value(m.key as u64)),
                );
            }
        }
        if s.why == NIL || s.why as usize >= x.mops.len() {
            let text = match s.label {
                PROC => format!(
                    "{a} completed before {b} began on the same process {}, {rel}",
                    x.txns[s.from as usize].process
                ),
                _ => format!(
                    "{a} completed (at {}) before {b} began (at {}), {rel}",
                    self.when(s.from, true),
                    self.when(s.to, false)
                ),
            };
            return (text, None);
        }
        let m = &x.mops[s.why as usize];
        let k = x.keys.show(m.key as u64);
        let key = Some(x.keys.value(m.key as u64));
        let text = match (self.kind, s.label) {
            (TxnKind::ListAppend, WW) => {
                let prev = self.previous(m.key, m.val);
                match prev {
                    Some(p) => format!(
                        "{a} appended {} to {k} and {b} appended {} right after it, {rel}",
                        x.vals.show(p),
                        x.vals.show(m.val)
                    ),
                    None => format!(
                        "{b}'s append of {} to {k} follows {a}'s in the version order, {rel}",
                        x.vals.show(m.val)
                    ),
                }
            }
            (TxnKind::ListAppend, WR) => {
                let l = x.list(m);
                format!(
                    "{b} read {k}={}, whose last element {} {a} appended, {rel}",
                    x.show_read(m),
                    l.last().map_or("?".into(), |&e| x.vals.show(e))
                )
            }
            (TxnKind::ListAppend, _) => {
                let next = self
                    .longest
                    .get(m.key as usize)
                    .filter(|&&lm| lm != NIL)
                    .and_then(|&lm| x.list(&x.mops[lm as usize]).get(m.len as usize).copied());
                let outcome = match x.txns[s.to as usize].outcome {
                    Outcome::Ok => "and committed",
                    _ => "(its outcome unknown, but the append was seen)",
                };
                format!(
                    "{a} read {k}={} without {}, which {b} appended {outcome}, {rel}",
                    x.show_read(m),
                    next.map_or("the next element".into(), |e| x.vals.show(e))
                )
            }
            (TxnKind::RwRegister, WW) => {
                let read = register::external_read(x, s.to as usize, m.key)
                    .map(|i| x.vals.show(x.mops[i].val))
                    .unwrap_or_else(|| "?".into());
                format!(
                    "{b} read {k}={read}, which {a} wrote, then wrote {k}={}, {rel}",
                    x.vals.show(m.val)
                )
            }
            (TxnKind::RwRegister, WR) => {
                format!(
                    "{b} read {k}={}, which {a} wrote, {rel}",
                    x.vals.show(m.val)
                )
            }
            (TxnKind::RwRegister, _) => {
                let wrote = x
                    .mop_range(s.to as usize)
                    .rev()
                    .map(|i| &x.mops[i])
                    .find(|n| n.kind == MopKind::Write && n.key == m.key)
                    .map_or("?".into(), |n| x.vals.show(n.val));
                if m.val == NIL_VALUE {
                    format!("{a} read {k}=nil, the initial state, and {b} wrote {k}={wrote}, {rel}")
                } else {
                    format!(
                        "{a} read {k}={}, and {b} read that version then overwrote it with {wrote}, {rel}",
                        x.vals.show(m.val)
                    )
                }
            }
        };
        (text, key)
    }

    /// The element before `e` in `k`'s version order.
    fn previous(&self, k: u32, e: u64) -> Option<u64> {
        let lm = *self.longest.get(k as usize)?;
        if lm == NIL {
            return None;
        }
        let l = self.txns.list(&self.txns.mops[lm as usize]);
        let p = l.iter().position(|&x| x == e)?;
        p.checked_sub(1).map(|q| l[q])
    }

    pub fn cycle(&self, name: &'static str, steps: &[Step]) -> Found {
        let x = self.txns;
        let names: Vec<String> = (1..=steps.len()).map(|i| format!("T{i}")).collect();
        let mut sentences = Vec::new();
        let mut edges = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let a = &names[i];
            let b = &names[(i + 1) % steps.len()];
            let (text, key) = self.sentence(s, a, b);
            edges.push(json!({
                "from": a, "to": b,
                "type": label_name(s.label),
                "key": key,
                "explanation": text,
            }));
            sentences.push(text);
        }
        let txns: Vec<Value> = steps
            .iter()
            .zip(&names)
            .map(|(s, n)| {
                let tx = &x.txns[s.from as usize];
                json!({
                    "name": n,
                    "index": tx.call,
                    "completion": tx.ret,
                    "process": tx.process,
                    "outcome": tx.outcome,
                    "txn": x.describe(s.from as usize),
                })
            })
            .collect();
        let legend: Vec<String> = steps
            .iter()
            .zip(&names)
            .map(|(s, n)| {
                format!(
                    "{n} = {} (process {}, event {})",
                    x.describe(s.from as usize),
                    x.txns[s.from as usize].process,
                    x.txns[s.from as usize].call
                )
            })
            .collect();
        let mut events = Vec::new();
        for s in steps {
            let tx = &x.txns[s.from as usize];
            events.push(tx.call);
            events.extend(tx.ret);
        }
        Found {
            kind: name,
            key: None,
            message: format!(
                "a cycle of {} transactions: {}. {}: a contradiction",
                steps.len(),
                legend.join("; "),
                sentences.join("; ")
            ),
            events,
            extra: vec![("txns", Value::from(txns)), ("edges", Value::from(edges))],
        }
    }
}
