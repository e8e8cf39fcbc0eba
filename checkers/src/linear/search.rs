//! The Wing-Gong search with Lowe's memoisation, over one independent part.
//!
//! Call and return entries sit in a doubly linked list in time order. From the
//! head, a call entry whose operation the model can take from the current
//! state is linearized: the pair is unlinked, the configuration (set of
//! linearized operations, state) is cached, and the walk restarts at the head.
//! Reaching a return entry means that operation cannot be placed any later:
//! backtrack. A configuration seen before is never explored again.
//!
//! The cached set of linearized operations is stored compactly: every
//! operation before the first unlinearized one `m` is linearized, so a
//! configuration is `m` plus the few bits after it. Its size follows the
//! concurrency of the history, not its length.
//!
//! A [`Searcher`] is resumable: it runs in slices of steps, so parts can
//! share the cores round-robin and one hard part never starves the others.

use super::cache::{zobrist, Cache, Probe};
use super::prepare::{Item, PENDING};
use crate::model::{Footprint, Model};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

const NIL: u32 = u32::MAX;
/// Loop iterations between looks at the clock and the budgets. Each
/// iteration is one model step or one backtrack, well under a microsecond.
const CHECK_EVERY: u64 = 1024;
/// Entries read-guided pruning looks ahead.
const GUIDE_SCAN: usize = 16;
/// Caches bigger than this are freed on a background thread, so that
/// answering never waits for millions of frees.
const DROP_IN_BACKGROUND: usize = 64 << 20;

/// Once some part is invalid, the others are still searched (every failing
/// key is named), but a part past this many model steps is cancelled: one
/// hard key must not hold a known violation back until the time limit.
/// Steps, not time, so that which keys are decided does not depend on the
/// machine's speed (only on which part fails first, for parts this long).
pub const SETTLE_STEPS: u64 = 200_000;

/// Budgets shared by the parts searched in parallel.
pub(crate) struct Shared {
    pub deadline: Instant,
    pub time_limit_ms: u64,
    pub cancel: AtomicBool,
    pub mem_used: AtomicUsize,
    pub mem_limit: usize,
}

#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Valid,
    /// The iteration at which the deepest configuration was first reached,
    /// to replay for the witness.
    Invalid {
        best_iter: u64,
    },
    Unknown(String),
    /// Another part was found invalid.
    Cancelled,
}

/// The configuration with the most operations linearized.
#[derive(Debug)]
pub(crate) struct Capture<S> {
    /// Items in linearization order, each with the state after it.
    pub prefix: Vec<(usize, S)>,
    pub state: S,
    /// The item whose completion the search could not get past.
    pub blocked: usize,
    /// Items invoked before that completion and not linearized.
    pub pending: Vec<usize>,
    pub why: Why,
}

/// Why the blocked operation cannot be linearized after the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The model cannot take it in the state after the prefix.
    Step,
    /// It is a read that nothing invoked before its completion can satisfy
    /// (read-guided pruning ruled it out).
    Unreachable,
    /// It could be taken, but every continuation was tried and failed.
    Exhausted,
}

#[derive(Clone, Copy)]
struct Entry {
    item: u32,
    call: bool,
    /// The return entry of a crashed operation, at the end of time.
    pending: bool,
}

pub(crate) struct Searcher<'a, M: Model> {
    model: &'a M,
    items: &'a [Item<M::Op>],
    entries: Vec<Entry>,
    matching: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    read_only: Vec<bool>,
    /// Whether read-guided pruning is on (see `viable`), and what it uses.
    guided: bool,
    monotone: Vec<bool>,
    /// Every operation of the part has a footprint and none is monotone.
    footprints: bool,
    /// Footprint values, interned as state ids.
    prints: Vec<Print>,
    /// marks[v] == stamp: a pending operation can write state id v.
    marks: Vec<u32>,
    /// overwritten[r] == stamp: a pending write completed before read r was invoked.
    overwritten: Vec<u32>,
    stamp: u32,
    bits: Vec<u64>,
    /// Zobrist words per item, and their XOR over the linearized set.
    zob: Vec<u64>,
    set_hash: u64,
    /// The first unlinearized item.
    m: u32,
    cache: Cache<M::State>,
    /// (call entry, state id before it) per linearized operation.
    stack: Vec<(u32, u32)>,
    /// The current state's id in the cache.
    state: u32,
    entry: u32,
    pub iter: u64,
    best_depth: usize,
    best_iter: u64,
    /// At the deepest configuration, the item whose completion came first.
    pub best_blocked: Option<u32>,
    stop_at: Option<u64>,
    mem_reported: usize,
    pub capture: Option<Capture<M::State>>,
}

impl<'a, M: Model> Searcher<'a, M> {
    /// A search of `items` (sorted by call). With `stop_at`, the search is a
    /// replay that captures the configuration reached at that iteration.
    pub fn new(model: &'a M, items: &'a [Item<M::Op>], stop_at: Option<u64>) -> Self {
        let n = items.len();
        let mut order: Vec<(u64, u32, bool)> = Vec::with_capacity(2 * n);
        for (i, it) in items.iter().enumerate() {
            order.push((it.call, i as u32, true));
            order.push((it.ret, i as u32, false));
        }
        order.sort_unstable_by_key(|&(t, i, call)| (t, !call, i));
        // Entries 1..=2n; 0 is the head sentinel.
        let mut entries = Vec::with_capacity(2 * n + 1);
        entries.push(Entry {
            item: NIL,
            call: false,
            pending: false,
        });
        let mut matching = vec![0u32; 2 * n + 1];
        let mut call_entry = vec![0u32; n];
        for (pos, &(t, i, call)) in order.iter().enumerate() {
            let e = pos as u32 + 1;
            entries.push(Entry {
                item: i,
                call,
                pending: !call && t == PENDING,
            });
            if call {
                call_entry[i as usize] = e;
            } else {
                let c = call_entry[i as usize];
                matching[c as usize] = e;
                matching[e as usize] = c;
            }
        }
        let len = entries.len() as u32;
        let next: Vec<u32> = (1..=len).map(|x| if x == len { NIL } else { x }).collect();
        let prev: Vec<u32> = (0..len).map(|x| x.wrapping_sub(1)).collect();
        let monotone: Vec<bool> = items.iter().map(|i| model.monotone(&i.op)).collect();
        let mut cache = Cache::new();
        let state = cache.intern(model.init(), 0);
        let prints: Vec<Print> = items
            .iter()
            .map(|i| match model.footprint(&i.op) {
                Footprint::Reads(v) => Print::Reads(cache.intern(v, 0)),
                Footprint::Writes(w) | Footprint::ReadsWrites(_, w) => {
                    Print::Writes(cache.intern(w, 0))
                }
                Footprint::Opaque => Print::Opaque,
            })
            .collect();
        let any_monotone = monotone.iter().any(|&m| m);
        let footprints = !any_monotone && prints.iter().all(|p| !matches!(p, Print::Opaque));
        let marks = vec![0u32; cache.states()];
        let mut s = Searcher {
            model,
            items,
            guided: any_monotone || footprints,
            monotone,
            footprints,
            prints,
            marks,
            overwritten: vec![0; n],
            stamp: 0,
            read_only: items.iter().map(|i| model.read_only(&i.op)).collect(),
            entry: next[0],
            entries,
            matching,
            next,
            prev,
            bits: vec![0u64; n.div_ceil(64) + 1],
            zob: (0..n as u32).map(zobrist).collect(),
            set_hash: 0,
            m: 0,
            cache,
            stack: Vec::new(),
            state,
            iter: 0,
            best_depth: 0,
            best_iter: 0,
            best_blocked: None,
            stop_at,
            mem_reported: 0,
            capture: None,
        };
        if stop_at == Some(0) {
            s.capture = Some(s.capture_now());
        }
        s
    }

    pub fn cached(&self) -> u64 {
        self.cache.len()
    }

    fn unlink(&mut self, e: u32) {
        let (p, nx) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = nx;
        if nx != NIL {
            self.prev[nx as usize] = p;
        }
    }

    fn relink(&mut self, e: u32) {
        let (p, nx) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        if nx != NIL {
            self.prev[nx as usize] = e;
        }
    }

    fn lift(&mut self, e: u32) {
        self.unlink(e);
        self.unlink(self.matching[e as usize]);
    }

    fn unlift(&mut self, e: u32) {
        self.relink(self.matching[e as usize]);
        self.relink(e);
    }

    fn capture_now(&mut self) -> Capture<M::State> {
        let mut prefix = Vec::with_capacity(self.stack.len());
        for (k, (e, _)) in self.stack.iter().enumerate() {
            let after = self.stack.get(k + 1).map_or(self.state, |(_, s)| *s);
            prefix.push((
                self.entries[*e as usize].item as usize,
                self.cache.state(after).clone(),
            ));
        }
        let mut pending = Vec::new();
        let mut blocked = usize::MAX;
        let mut e = self.next[0];
        while e != NIL {
            let en = self.entries[e as usize];
            if en.call {
                pending.push(en.item as usize);
            } else {
                blocked = en.item as usize;
                break;
            }
            e = self.next[e as usize];
        }
        let mut why = Why::Step;
        let mut state = self.cache.state(self.state).clone();
        if let Some(item) = self.items.get(blocked) {
            if self.model.step(&state, &item.op).is_some() {
                // Not impossible in itself: every continuation failed.
                why = Why::Exhausted;
            }
        }
        // Every continuation fails. A read that nothing can satisfy from the
        // prefix's state, or from the state after one operation that may come
        // next, is the clearer culprit.
        if self.guided && blocked != usize::MAX {
            if let Some(r) = self.dead_read(self.state, u32::MAX) {
                pending.retain(|&q| q != r as usize);
                blocked = r as usize;
                why = Why::Unreachable;
            }
        }
        if self.guided && blocked != usize::MAX && why != Why::Unreachable {
            let candidates: Vec<usize> = std::iter::once(blocked)
                .chain(pending.iter().copied())
                .collect();
            for p in candidates {
                let Some(next) = self.model.step(&state, &self.items[p].op) else {
                    continue;
                };
                let id = self.cache.intern(next.clone(), 0);
                if let Some(r) = self.dead_read(id, p as u32) {
                    prefix.push((p, next.clone()));
                    pending.retain(|&q| q != p);
                    state = next;
                    blocked = r as usize;
                    why = Why::Unreachable;
                    break;
                }
            }
        }
        pending.retain(|&p| p != blocked);
        Capture {
            prefix,
            state,
            blocked,
            pending,
            why,
        }
    }

    /// Gives back this search's share of the memory budget and frees its
    /// cache, in the background when it is big.
    pub fn release(&mut self, shared: &Shared) {
        shared
            .mem_used
            .fetch_sub(self.mem_reported, Ordering::Relaxed);
        self.mem_reported = 0;
        let cache = std::mem::replace(&mut self.cache, Cache::new());
        if cache.bytes() > DROP_IN_BACKGROUND {
            // Without a thread to spare, the closure (and the cache) drops here.
            let _ = std::thread::Builder::new().spawn(move || drop(cache));
        }
    }

    fn account(&mut self, shared: &Shared) -> Option<Outcome> {
        let mine = self.cache.bytes()
            + self.stack.capacity() * 8
            + self.bits.len() * 8
            + self.entries.len() * 16;
        if mine > self.mem_reported {
            shared
                .mem_used
                .fetch_add(mine - self.mem_reported, Ordering::Relaxed);
        } else {
            shared
                .mem_used
                .fetch_sub(self.mem_reported - mine, Ordering::Relaxed);
        }
        self.mem_reported = mine;
        if shared.mem_used.load(Ordering::Relaxed) > shared.mem_limit {
            return Some(Outcome::Unknown(format!(
                "memory budget of {} MiB reached ({} configurations cached) with {} of {} operations linearized",
                shared.mem_limit >> 20,
                self.cache.len(),
                self.best_depth,
                self.items.len()
            )));
        }
        None
    }

    /// Runs at most `slice` more iterations. `None`: not finished yet.
    pub fn run(&mut self, shared: &Shared, slice: u64) -> Option<Outcome> {
        if self.capture.is_some() {
            return Some(Outcome::Invalid {
                best_iter: self.best_iter,
            });
        }
        let end = self.iter.saturating_add(slice);
        loop {
            // Checked before counting, so that the numbering of iterations
            // does not depend on the slicing (replays rely on it).
            if self.iter >= end {
                return None;
            }
            self.iter += 1;
            if self.iter.is_multiple_of(CHECK_EVERY) {
                if shared.cancel.load(Ordering::Relaxed) && self.iter >= SETTLE_STEPS {
                    return Some(Outcome::Cancelled);
                }
                if Instant::now() >= shared.deadline {
                    return Some(Outcome::Unknown(format!(
                        "time limit of {} ms reached after {} model steps with {} of {} operations linearized",
                        shared.time_limit_ms,
                        self.iter,
                        self.best_depth,
                        self.items.len()
                    )));
                }
                if let Some(o) = self.account(shared) {
                    return Some(o);
                }
            }
            if self.entry == NIL {
                return Some(Outcome::Valid);
            }
            let en = self.entries[self.entry as usize];
            if en.call {
                match self.try_linearize(self.entry) {
                    Step::Pushed => {
                        if self.stop_at == Some(self.iter) {
                            return Some(self.stop());
                        }
                    }
                    Step::Seen | Step::Impossible => {
                        self.entry = self.next[self.entry as usize];
                    }
                }
            } else {
                if en.pending {
                    // Only crashed operations remain: they may never take effect.
                    return Some(Outcome::Valid);
                }
                if !self.backtrack() {
                    return Some(Outcome::Invalid {
                        best_iter: self.best_iter,
                    });
                }
            }
        }
    }

    fn stop(&mut self) -> Outcome {
        self.capture = Some(self.capture_now());
        Outcome::Invalid {
            best_iter: self.best_iter,
        }
    }

    /// Linearizes the call entry `e` if the model allows it and the
    /// configuration is new; then the walk restarts at the head.
    #[inline]
    fn try_linearize(&mut self, e: u32) -> Step {
        let item = self.entries[e as usize].item;
        let Some(new_state) = self
            .model
            .step(self.cache.state(self.state), &self.items[item as usize].op)
        else {
            return Step::Impossible;
        };
        let heap = self.model.state_heap_bytes(&new_state);
        let new_state = self.cache.intern(new_state, heap);
        // A read-only operation changes neither the state nor the pending
        // writers: the configuration it came from was viable, so this one is.
        if self.guided && !self.read_only[item as usize] && !self.viable(new_state, item) {
            return Step::Impossible;
        }
        let (w, bit) = ((item >> 6) as usize, 1u64 << (item & 63));
        self.bits[w] |= bit;
        let depth = self.stack.len() + 1;
        let m = if item == self.m {
            advance(&self.bits, self.m)
        } else {
            self.m
        };
        let set_hash = self.set_hash ^ self.zob[item as usize];
        let probe = Probe {
            set_hash,
            m,
            depth: depth as u32,
            bits: &self.bits,
            state: new_state,
        };
        if !self.cache.insert(&probe) {
            self.bits[w] &= !bit;
            return Step::Seen;
        }
        let old = std::mem::replace(&mut self.state, new_state);
        self.stack.push((e, old));
        self.m = m;
        self.set_hash = set_hash;
        self.lift(e);
        if depth > self.best_depth {
            self.best_depth = depth;
            self.best_iter = self.iter;
            // The operation whose completion comes first: the likely culprit.
            let mut f = self.next[0];
            while f != NIL && self.entries[f as usize].call {
                f = self.next[f as usize];
            }
            self.best_blocked = (f != NIL).then(|| self.entries[f as usize].item);
        }
        self.entry = self.next[0];
        Step::Pushed
    }

    /// Read-guided pruning. After linearizing `item` into `state`, look at
    /// the read-only operations whose completions come next: each must still
    /// be possible using only operations invoked before that completion.
    ///
    /// - Only monotone operations pending (appends): the model decides
    ///   whether `state` can grow into what the read saw (Model::reachable).
    /// - Otherwise, in a part whose operations all have footprints: a read of
    ///   `v` needs `state == v` or a pending operation that writes `v`.
    ///
    /// An operation without a footprint ends the look-ahead, and so does
    /// [`GUIDE_SCAN`]. Pruning only removes configurations with no extension.
    fn viable(&mut self, state_id: u32, item: u32) -> bool {
        self.dead_read(state_id, item).is_none()
    }

    /// The read that rules the configuration out, if any (see `viable`).
    fn dead_read(&mut self, state_id: u32, item: u32) -> Option<u32> {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.fill(0);
            self.overwritten.fill(0);
            self.stamp = 1;
        }
        let mut writers = false;
        // A pending write has completed: reads invoked from here on cannot
        // see the current state any more.
        let mut write_returned = false;
        let mut e = self.next[0];
        let mut seen = 0;
        while e != NIL && seen < GUIDE_SCAN {
            let en = self.entries[e as usize];
            let i = en.item as usize;
            seen += 1;
            e = self.next[e as usize];
            if en.item == item {
                continue;
            }
            if en.call {
                if self.read_only[i] {
                    if write_returned {
                        self.overwritten[i] = self.stamp;
                    }
                    continue;
                }
                if self.monotone[i] {
                    continue;
                }
                match self.prints[i] {
                    Print::Writes(w) if self.footprints => {
                        writers = true;
                        self.marks[w as usize] = self.stamp;
                    }
                    _ => return None,
                }
            } else if self.read_only[i] {
                if !writers {
                    let state = self.cache.state(state_id);
                    if !self.model.reachable(state, &self.items[i].op) {
                        return Some(en.item);
                    }
                } else if let Print::Reads(v) = self.prints[i] {
                    let keeps = v == state_id && self.overwritten[i] != self.stamp;
                    if !keeps && self.marks[v as usize] != self.stamp {
                        return Some(en.item);
                    }
                }
            } else if writers && !self.monotone[i] {
                write_returned = true;
            }
        }
        None
    }

    /// Undoes the last linearization and moves past it. Popping a read-only
    /// operation means the configuration below it fails too: keep popping.
    /// False when there is nothing left to undo.
    fn backtrack(&mut self) -> bool {
        loop {
            let Some((e, s)) = self.stack.pop() else {
                return false;
            };
            let item = self.entries[e as usize].item;
            self.bits[(item >> 6) as usize] &= !(1u64 << (item & 63));
            self.set_hash ^= self.zob[item as usize];
            self.m = self.m.min(item);
            self.state = s;
            self.unlift(e);
            self.entry = self.next[e as usize];
            if !self.read_only[item as usize] {
                return true;
            }
        }
    }
}

/// What read-guided pruning needs of an operation's footprint, as state ids.
#[derive(Clone, Copy)]
enum Print {
    Reads(u32),
    /// Can set the state to this value (a write, or a cas's new value).
    Writes(u32),
    Opaque,
}

enum Step {
    Impossible,
    Seen,
    Pushed,
}

/// The first unset bit at or after `m`.
#[inline]
fn advance(bits: &[u64], mut m: u32) -> u32 {
    // The last word of `bits` is always zero, so this ends.
    loop {
        let unset = !bits[(m >> 6) as usize] >> (m & 63);
        if unset != 0 {
            return m + unset.trailing_zeros();
        }
        m = (m | 63) + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_finds_the_first_gap() {
        let mut bits = vec![0u64; 3];
        for i in [0u32, 1, 2, 5, 64, 70] {
            bits[(i >> 6) as usize] |= 1 << (i & 63);
        }
        assert_eq!(advance(&bits, 0), 3);
        assert_eq!(advance(&bits, 3), 3);
        let all = vec![u64::MAX, 0b1, 0];
        assert_eq!(advance(&all, 0), 65);
        assert_eq!(advance(&all, 10), 65);
    }
}
