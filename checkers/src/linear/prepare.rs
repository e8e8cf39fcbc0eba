//! From a history to independent parts ready for the search.
//!
//! Splits operations by key (P-compositionality), translates them with the
//! model, and applies two exact reductions to crashed operations when the
//! model describes its operations' footprints:
//!
//! - A crashed operation whose written value nothing ever reads is left out:
//!   any linearization that includes it is still one without it.
//! - A crashed operation that is the only writer of a value that a completed
//!   operation read must take effect before that read returned: it gets that
//!   read's completion as its own.
//!
//! Both keep the verdict exact; they turn crashed operations, which otherwise
//! stay concurrent with everything after them, into ordinary ones.

use super::CheckError;
use crate::history::{History, Operation, Outcome};
use crate::model::{Footprint, Model};
use crate::verdict::Stats;
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::borrow::Cow;

/// Time of an entry in the search: event index * 2 + 1, so that a bound
/// derived from another operation's completion (index * 2) sorts just before it.
pub(crate) const PENDING: u64 = u64::MAX;

#[derive(Clone, Debug)]
pub(crate) struct Item<O> {
    pub op: O,
    pub call: u64,
    pub ret: u64,
    /// Position in `History::ops`.
    pub src: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct Part<O> {
    pub key: Option<Value>,
    pub items: Vec<Item<O>>,
}

pub(crate) fn prepare<M: Model>(
    model: &M,
    history: &History,
    stats: &mut Stats,
) -> Result<Vec<Part<M::Op>>, CheckError> {
    let mut parts: Vec<Part<M::Op>> = Vec::new();
    for (key, ops) in history.by_key() {
        let part = build_part(
            model,
            key,
            ops.iter().map(|&i| Cow::Borrowed(&history.ops[i])),
            stats,
        )?;
        parts.push(part);
    }
    stats.parts = parts.len();
    Ok(parts)
}

/// Translates one key's operations and reduces its crashed ones.
pub(crate) fn build_part<'h, M: Model>(
    model: &M,
    key: Option<Value>,
    ops: impl Iterator<Item = Cow<'h, Operation>>,
    stats: &mut Stats,
) -> Result<Part<M::Op>, CheckError> {
    let mut part = Part {
        key,
        items: Vec::new(),
    };
    for op in ops {
        let Some(prepared) = model.prepare(&op).map_err(|e| CheckError::Op {
            event: op.call,
            message: e.message,
        })?
        else {
            continue;
        };
        let ret = match (op.outcome, op.ret) {
            (Outcome::Info, _) | (_, None) => PENDING,
            (_, Some(r)) => r * 2 + 1,
        };
        part.items.push(Item {
            op: prepared,
            call: op.call * 2 + 1,
            ret,
            src: op.id,
        });
    }
    let init = model.init();
    reduce_crashed(model, &init, &mut part, stats);
    part.items.sort_by_key(|i| i.call);
    stats.searched_ops += part.items.len();
    Ok(part)
}

/// The operations of one key as they stood right after event `cut`: later
/// invocations are gone, and later completions are unknown (crashed).
pub(crate) fn truncate<'h>(
    history: &'h History,
    ops: &'h [usize],
    cut: u64,
) -> impl Iterator<Item = Cow<'h, Operation>> + 'h {
    ops.iter().filter_map(move |&i| {
        let op = &history.ops[i];
        if op.call > cut {
            return None;
        }
        match op.ret {
            Some(r) if r <= cut => Some(Cow::Borrowed(op)),
            _ => Some(Cow::Owned(Operation {
                outcome: Outcome::Info,
                output: None,
                ret: None,
                ret_time: None,
                ..op.clone()
            })),
        }
    })
}

fn reduce_crashed<M: Model>(model: &M, init: &M::State, part: &mut Part<M::Op>, stats: &mut Stats) {
    let prints: Vec<Footprint<M::State>> =
        part.items.iter().map(|i| model.footprint(&i.op)).collect();
    if prints.contains(&Footprint::Opaque) || !part.items.iter().any(|i| i.ret == PENDING) {
        return;
    }
    let mut alive = vec![true; part.items.len()];
    loop {
        // For each value: is it read at all, and the earliest completion of an ok reader.
        let mut read: FxHashMap<&M::State, Option<u64>> = FxHashMap::default();
        let mut writers: FxHashMap<&M::State, usize> = FxHashMap::default();
        for (i, p) in prints.iter().enumerate() {
            if !alive[i] {
                continue;
            }
            let ret = part.items[i].ret;
            let (r, w) = match p {
                Footprint::Reads(r) => (Some(r), None),
                Footprint::Writes(w) => (None, Some(w)),
                Footprint::ReadsWrites(r, w) => (Some(r), Some(w)),
                Footprint::Opaque => (None, None),
            };
            if let Some(r) = r {
                let slot = read.entry(r).or_insert(None);
                if ret != PENDING {
                    *slot = Some(slot.map_or(ret, |s: u64| s.min(ret)));
                }
            }
            if let Some(w) = w {
                *writers.entry(w).or_insert(0) += 1;
            }
        }
        let mut dropped = false;
        let mut bounds = Vec::new();
        for (i, p) in prints.iter().enumerate() {
            if !alive[i] || part.items[i].ret != PENDING {
                continue;
            }
            let w = match p {
                Footprint::Writes(w) | Footprint::ReadsWrites(_, w) => w,
                _ => continue,
            };
            match read.get(w) {
                None => {
                    alive[i] = false;
                    dropped = true;
                    stats.pruned_ops += 1;
                }
                Some(Some(first_ret)) if writers.get(w) == Some(&1) && w != init => {
                    // Just before the reader's completion entry.
                    let bound = first_ret - 1;
                    if bound > part.items[i].call {
                        bounds.push((i, bound));
                    }
                }
                Some(_) => {}
            }
        }
        // Bounds do not change which values are read or written, so apply them once.
        if !dropped {
            for (i, b) in bounds {
                part.items[i].ret = b;
                stats.bounded_ops += 1;
            }
            break;
        }
    }
    let mut keep = alive.into_iter();
    part.items.retain(|_| keep.next().unwrap_or(true));
}
