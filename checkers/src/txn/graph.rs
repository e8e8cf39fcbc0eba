//! The dependency graph in CSR form, with process order and a chain of
//! virtual nodes for real-time order, and Tarjan's strongly connected
//! components under an edge mask.

use super::build::{Txns, NIL};
use crate::history::Outcome;
use rustc_hash::FxHashMap;

pub const WW: u8 = 1;
pub const WR: u8 = 2;
pub const RW: u8 = 4;
pub const PROC: u8 = 8;
pub const RT: u8 = 16;
pub const ALL: u8 = WW | WR | RW | PROC | RT;

/// An edge before the CSR: `why` is the micro-op that explains it (see
/// `explain`), or `NIL` for process and real-time edges.
#[derive(Clone, Copy, Debug)]
pub struct RawEdge {
    pub from: u32,
    pub to: u32,
    pub label: u8,
    pub why: u32,
}

pub struct Graph {
    /// Transactions are nodes 0..real; real-time chain nodes follow.
    pub real: usize,
    off: Vec<u32>,
    pub to: Vec<u32>,
    pub label: Vec<u8>,
    pub why: Vec<u32>,
}

impl Graph {
    pub fn build(txns: &Txns, mut edges: Vec<RawEdge>) -> Graph {
        let real = txns.len();
        // Process order: each transaction after the previous one of its
        // process that did not fail.
        let mut last: FxHashMap<u64, u32> = FxHashMap::default();
        for (t, tx) in txns.txns.iter().enumerate() {
            if tx.outcome == Outcome::Fail {
                continue;
            }
            if let Some(p) = last.insert(tx.process, t as u32) {
                edges.push(RawEdge {
                    from: p,
                    to: t as u32,
                    label: PROC,
                    why: NIL,
                });
            }
        }
        // Real time: U precedes T when U completed before T was invoked. A
        // chain node stands for "everything completed so far": completions
        // point to the newest chain node, invocations hang off it.
        let mut stamps: Vec<(u64, u32)> = Vec::with_capacity(real * 2);
        for (t, tx) in txns.txns.iter().enumerate() {
            if tx.outcome == Outcome::Fail {
                continue;
            }
            stamps.push((tx.call << 1 | 1, t as u32));
            if let (Outcome::Ok, Some(r)) = (tx.outcome, tx.ret) {
                stamps.push((r << 1, t as u32));
            }
        }
        stamps.sort_unstable();
        let mut nodes = real as u32;
        let mut cur: Option<u32> = None;
        let mut used = false;
        for (s, t) in stamps {
            if s & 1 == 0 {
                if cur.is_none() || used {
                    let r = nodes;
                    nodes += 1;
                    if let Some(c) = cur {
                        edges.push(RawEdge {
                            from: c,
                            to: r,
                            label: RT,
                            why: NIL,
                        });
                    }
                    cur = Some(r);
                    used = false;
                }
                edges.push(RawEdge {
                    from: t,
                    to: cur.unwrap_or(t),
                    label: RT,
                    why: NIL,
                });
            } else if let Some(c) = cur {
                edges.push(RawEdge {
                    from: c,
                    to: t,
                    label: RT,
                    why: NIL,
                });
                used = true;
            }
        }
        let n = nodes as usize;
        let mut off = vec![0u32; n + 1];
        for e in &edges {
            off[e.from as usize + 1] += 1;
        }
        for i in 0..n {
            off[i + 1] += off[i];
        }
        let m = edges.len();
        let mut fill = off.clone();
        let mut to = vec![0u32; m];
        let mut label = vec![0u8; m];
        let mut why = vec![0u32; m];
        for e in edges {
            let p = &mut fill[e.from as usize];
            let i = *p as usize;
            *p += 1;
            to[i] = e.to;
            label[i] = e.label;
            why[i] = e.why;
        }
        Graph {
            real,
            off,
            to,
            label,
            why,
        }
    }

    pub fn nodes(&self) -> usize {
        self.off.len() - 1
    }

    pub fn edge_count(&self) -> usize {
        self.to.len()
    }

    /// Edge ids leaving `v`.
    pub fn out(&self, v: u32) -> std::ops::Range<usize> {
        self.off[v as usize] as usize..self.off[v as usize + 1] as usize
    }

    /// Strongly connected components over edges whose label meets `mask`,
    /// among `active` nodes (all when `None`). Components are numbered in
    /// reverse topological order (an edge between components goes from a
    /// higher number to a lower one); inactive nodes get `NIL`.
    pub fn scc(&self, mask: u8, active: Option<&[bool]>) -> Vec<u32> {
        let n = self.nodes();
        let act = |v: usize| active.is_none_or(|a| a[v]);
        let mut index = vec![NIL; n];
        let mut low = vec![0u32; n];
        let mut comp = vec![NIL; n];
        let mut stack: Vec<u32> = Vec::new();
        let mut call: Vec<(u32, usize)> = Vec::new();
        let (mut next_index, mut next_comp) = (0u32, 0u32);
        for s in 0..n {
            if index[s] != NIL || !act(s) {
                continue;
            }
            index[s] = next_index;
            low[s] = next_index;
            next_index += 1;
            stack.push(s as u32);
            call.push((s as u32, self.off[s] as usize));
            while let Some(top) = call.last_mut() {
                let v = top.0 as usize;
                if top.1 < self.off[v + 1] as usize {
                    let i = top.1;
                    top.1 += 1;
                    if self.label[i] & mask == 0 {
                        continue;
                    }
                    let w = self.to[i] as usize;
                    if !act(w) {
                        continue;
                    }
                    if index[w] == NIL {
                        index[w] = next_index;
                        low[w] = next_index;
                        next_index += 1;
                        stack.push(w as u32);
                        call.push((w as u32, self.off[w] as usize));
                    } else if comp[w] == NIL {
                        low[v] = low[v].min(index[w]);
                    }
                } else {
                    call.pop();
                    if let Some(&(p, _)) = call.last() {
                        low[p as usize] = low[p as usize].min(low[v]);
                    }
                    if low[v] == index[v] {
                        while let Some(w) = stack.pop() {
                            comp[w as usize] = next_comp;
                            if w as usize == v {
                                break;
                            }
                        }
                        next_comp += 1;
                    }
                }
            }
        }
        comp
    }
}
