//! The cycle search: strongly connected components first, then, inside
//! them only, breadth-first searches for the shortest cycle of each kind
//! (Elle's G0, G1c, G-single, G-nonadjacent, G2-item), first on data
//! dependencies alone, then with process order, then with real time.

use super::build::{Txns, NIL};
use super::explain;
use super::graph::{Graph, ALL, PROC, RT, RW, WR, WW};
use super::{Found, TxnKind};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::time::Instant;

/// One edge of a cycle between transactions (real-time hops collapsed).
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub from: u32,
    pub to: u32,
    pub label: u8,
    pub why: u32,
}

pub struct Search {
    pub found: Vec<Found>,
    /// Cycle kinds whose search the deadline cut short before finding one.
    pub incomplete: Vec<&'static str>,
}

const NAMES: [[&str; 3]; 5] = [
    ["G0", "G0-process", "G0-realtime"],
    ["G1c", "G1c-process", "G1c-realtime"],
    ["G-single", "G-single-process", "G-single-realtime"],
    [
        "G-nonadjacent",
        "G-nonadjacent-process",
        "G-nonadjacent-realtime",
    ],
    ["G2-item", "G2-item-process", "G2-item-realtime"],
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Any path in the mask.
    Plain,
    /// The key edge was rw; no two rw edges adjacent (cyclically), at least two in all.
    NonAdjacent,
    /// The key edge was rw; at least one more rw edge.
    TwoRw,
}

/// Which kind a simple cycle is.
pub fn classify(cycle: &[Step]) -> &'static str {
    let rw: Vec<bool> = cycle.iter().map(|s| s.label == RW).collect();
    let n_rw = rw.iter().filter(|&&r| r).count();
    let base = if n_rw == 0 {
        if cycle.iter().any(|s| s.label == WR) {
            1
        } else {
            0
        }
    } else if n_rw == 1 {
        2
    } else if (0..rw.len()).any(|i| rw[i] && rw[(i + 1) % rw.len()]) {
        4
    } else {
        3
    };
    let layer = if cycle.iter().any(|s| s.label == RT) {
        2
    } else if cycle.iter().any(|s| s.label == PROC) {
        1
    } else {
        0
    };
    NAMES[base][layer]
}

struct Bfs {
    dist: Vec<u32>,
    par: Vec<(u32, u32)>,
    touched: Vec<u32>,
}

impl Bfs {
    fn new(states: usize) -> Bfs {
        Bfs {
            dist: vec![NIL; states],
            par: vec![(NIL, NIL); states],
            touched: Vec::new(),
        }
    }

    fn reset(&mut self) {
        for &s in &self.touched {
            self.dist[s as usize] = NIL;
        }
        self.touched.clear();
    }
}

const RW_TAKEN: u32 = 1 << 31;

/// The preferred single label of an edge taken as a non-rw edge.
fn plain_label(l: u8) -> u8 {
    [WW, WR, PROC, RT]
        .into_iter()
        .find(|&b| l & b != 0)
        .unwrap_or(RT)
}

/// 0-1 BFS from `b` back to `a` inside component `cid` of `comp`, over
/// states (node, last edge rw, a second rw seen). Returns the steps b..a.
#[allow(clippy::too_many_arguments)]
fn walk(
    g: &Graph,
    bfs: &mut Bfs,
    a: u32,
    b: u32,
    mask: u8,
    comp: &[u32],
    cid: u32,
    mode: Mode,
) -> Option<Vec<Step>> {
    bfs.reset();
    let st = |v: u32, last_rw: u32, two: u32| v * 4 + last_rw * 2 + two;
    let start = match mode {
        Mode::Plain => st(b, 0, 0),
        _ => st(b, 1, 0),
    };
    let goal_ok = |s: u32| -> bool {
        let (v, last_rw, two) = (s / 4, (s >> 1) & 1, s & 1);
        v == a
            && match mode {
                Mode::Plain => true,
                Mode::NonAdjacent => last_rw == 0 && two == 1,
                Mode::TwoRw => two == 1,
            }
    };
    let mut q: VecDeque<u32> = VecDeque::new();
    bfs.dist[start as usize] = 0;
    bfs.touched.push(start);
    q.push_back(start);
    let mut goal = None;
    while let Some(s) = q.pop_front() {
        if goal_ok(s) {
            goal = Some(s);
            break;
        }
        let d = bfs.dist[s as usize];
        let (v, last_rw) = (s / 4, (s >> 1) & 1);
        let two = s & 1;
        for i in g.out(v) {
            let l = g.label[i] & mask;
            if l == 0 {
                continue;
            }
            let w = g.to[i];
            if comp[w as usize] != cid {
                continue;
            }
            let cost = u32::from((w as usize) < g.real);
            let mut opts: [(u32, u32); 2] = [(NIL, 0); 2];
            if l & !RW != 0 {
                opts[0] = (st(w, 0, two), i as u32);
            }
            if l & RW != 0 && mode != Mode::Plain && !(mode == Mode::NonAdjacent && last_rw == 1) {
                opts[1] = (st(w, 1, 1), i as u32 | RW_TAKEN);
            }
            for (ns, e) in opts {
                if ns == NIL || bfs.dist[ns as usize] <= d + cost {
                    continue;
                }
                if bfs.dist[ns as usize] == NIL {
                    bfs.touched.push(ns);
                }
                bfs.dist[ns as usize] = d + cost;
                bfs.par[ns as usize] = (s, e);
                if cost == 0 {
                    q.push_front(ns);
                } else {
                    q.push_back(ns);
                }
            }
        }
    }
    let mut s = goal?;
    let mut raw: Vec<(u32, u32, u32)> = Vec::new(); // (from, to, edge|flag)
    while s != start {
        let (p, e) = bfs.par[s as usize];
        raw.push((p / 4, s / 4, e));
        s = p;
    }
    raw.reverse();
    Some(collapse(g, raw))
}

/// Steps between transactions: chains through virtual nodes become one
/// real-time step.
fn collapse(g: &Graph, raw: Vec<(u32, u32, u32)>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut from_real: Option<u32> = None;
    for (f, t, e) in raw {
        let i = (e & !RW_TAKEN) as usize;
        if (t as usize) >= g.real {
            if (f as usize) < g.real {
                from_real = Some(f);
            }
            continue;
        }
        if (f as usize) >= g.real {
            steps.push(Step {
                from: from_real.unwrap_or(f),
                to: t,
                label: RT,
                why: NIL,
            });
            continue;
        }
        let label = if e & RW_TAKEN != 0 {
            RW
        } else {
            plain_label(g.label[i] & !RW)
        };
        steps.push(Step {
            from: f,
            to: t,
            label,
            why: g.why[i],
        });
    }
    steps
}

/// Splits a closed walk into simple cycles.
fn simple_cycles(walk: Vec<Step>) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    let mut stack: Vec<Step> = Vec::new();
    let mut pos: FxHashMap<u32, usize> = FxHashMap::default();
    for s in walk {
        pos.insert(s.from, stack.len());
        stack.push(s);
        if let Some(&p) = pos.get(&s.to) {
            let c: Vec<Step> = stack.drain(p..).collect();
            for x in &c {
                pos.remove(&x.from);
            }
            out.push(c);
        }
    }
    out
}

pub fn search(g: &Graph, txns: &Txns, kind: TxnKind, deadline: Instant) -> Search {
    let mut out = Search {
        found: Vec::new(),
        incomplete: Vec::new(),
    };
    let all = g.scc(ALL, None);
    let mut size: FxHashMap<u32, u32> = FxHashMap::default();
    for &c in &all {
        *size.entry(c).or_insert(0) += 1;
    }
    let active: Vec<bool> = all.iter().map(|c| size[c] > 1).collect();
    if !active.iter().any(|&a| a) {
        return out;
    }
    let mut best: FxHashMap<&'static str, Vec<Step>> = FxHashMap::default();
    let mut bfs = Bfs::new(g.nodes() * 4);
    let mut base_found = [false; 5];
    for (layer, extra) in [0u8, PROC, PROC | RT].into_iter().enumerate() {
        let m0 = WW | extra;
        let m1 = WW | WR | extra;
        let m2 = WW | WR | RW | extra;
        let c0 = g.scc(m0, Some(&active));
        let c1 = g.scc(m1, Some(&active));
        let c2 = g.scc(m2, Some(&active));
        for fam in 0..NAMES.len() {
            if base_found[fam] {
                continue;
            }
            let (key, mask, comp, mode) = match fam {
                0 => (WW, m0, &c0, Mode::Plain),
                1 => (WR, m1, &c1, Mode::Plain),
                2 => (RW, m1, &c2, Mode::Plain),
                3 => (RW, m2, &c2, Mode::NonAdjacent),
                _ => (RW, m2, &c2, Mode::TwoRw),
            };
            let min_len = [2, 2, 2, 4, 2][fam];
            let mut tries_since = 0usize;
            let mut shortest: Option<usize> = None;
            let mut cut = false;
            'edges: for a in 0..g.real as u32 {
                if !active[a as usize] {
                    continue;
                }
                for i in g.out(a) {
                    if g.label[i] & key == 0 {
                        continue;
                    }
                    let b = g.to[i];
                    let cid = comp[a as usize];
                    if cid == NIL || comp[b as usize] != cid {
                        continue;
                    }
                    // G-single: b must reach a over ww/wr; Tarjan's numbering
                    // rules out b's component coming after a's.
                    if fam == 2 && c1[b as usize] < c1[a as usize] {
                        continue;
                    }
                    if Instant::now() > deadline {
                        cut = shortest.is_none();
                        break 'edges;
                    }
                    let Some(path) = walk(g, &mut bfs, a, b, mask, comp, cid, mode) else {
                        continue;
                    };
                    let mut cycle = vec![Step {
                        from: a,
                        to: b,
                        label: key,
                        why: g.why[i],
                    }];
                    cycle.extend(path);
                    for c in simple_cycles(cycle) {
                        let name = classify(&c);
                        let fam_of = NAMES.iter().position(|r| r.contains(&name)).unwrap_or(0);
                        if fam_of == fam {
                            shortest = Some(shortest.map_or(c.len(), |s| s.min(c.len())));
                        }
                        let e = best.entry(name).or_insert_with(|| c.clone());
                        if c.len() < e.len() {
                            *e = c;
                        }
                    }
                    if let Some(s) = shortest {
                        tries_since += 1;
                        if s <= min_len || tries_since >= 64 {
                            break 'edges;
                        }
                    }
                }
            }
            if shortest.is_some() {
                base_found[fam] = true;
            } else if cut {
                out.incomplete.push(NAMES[fam][layer]);
                // Later layers would only be cut too.
                out.incomplete.extend(&NAMES[fam][layer + 1..]);
                base_found[fam] = true;
            }
        }
    }
    let mut names: Vec<&&str> = best.keys().collect();
    names.sort();
    let mut found: Vec<Found> = Vec::new();
    let explainer = explain::Explainer::new(txns, kind);
    for name in names {
        found.push(explainer.cycle(name, &best[*name]));
    }
    out.found = found;
    out
}
