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
//! Crashed operations (never completed, so concurrent with everything after
//! their invocation) are what makes Jepsen's histories hard: with values from
//! a small domain none can be left out or bounded in advance. In a part whose
//! operations all have footprints they become *jokers*, taken out of the walk:
//!
//! - A crashed write or cas is only ever needed right before an operation
//!   that reads the value it wrote: in a linearization with the fewest
//!   operations, one followed by a write (or by nothing) can be removed, and
//!   so can a run of crashed operations that returns to the state it started
//!   from. So jokers are linearized only as a chain (a simple path of values)
//!   right before a read or cas that cannot otherwise be taken.
//! - Crashed operations with the same footprint are interchangeable: the one
//!   invoked first can stand in for any other. So each class is used in
//!   invocation order, and the configuration records how many of each class
//!   are used, not which.
//! - A read or cas of a value that nothing writes (and not the initial
//!   state) makes the part invalid before any search, and so does one that
//!   is certainly stale (see [`certainly_stale`]).
//!
//! A [`Searcher`] is resumable: it runs in slices of steps, so parts can
//! share the cores round-robin and one hard part never starves the others.

use super::cache::{zobrist, Cache, Probe};
use super::prepare::{Item, PENDING};
use crate::model::{Footprint, Model};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

const NIL: u32 = u32::MAX;
/// Loop iterations between looks at the clock and the budgets. Each
/// iteration is one model step or one backtrack, well under a microsecond.
const CHECK_EVERY: u64 = 1024;
/// Entries read-guided pruning looks ahead. With 30 clients, 16 entries are
/// mostly invocations and prune next to nothing: 64 reach the completions
/// of the reads in flight (steps on Jepsen-shaped histories drop 10-100x;
/// the 1M-operation kv history takes the same steps and time).
const GUIDE_SCAN: usize = 64;
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
    /// It reads a value that no operation of the part writes.
    Never,
    /// Every operation that could write the value it reads is certainly
    /// followed by one that sees or leaves another value before it begins
    /// (see [`certainly_stale`]).
    Stale,
}

/// A stack frame: one linearized operation.
#[derive(Clone, Copy)]
struct Frame {
    /// Its call entry.
    e: u32,
    /// The state id before it.
    old: u32,
    /// DIRECT, or the index of the joker chain taken before it.
    alt: u32,
    /// A joker of the chain before the next frame.
    joker: bool,
}

const DIRECT: u32 = u32::MAX;

/// Crashed operations with one footprint, used in invocation order.
struct Class {
    /// Items, in invocation order.
    members: Vec<u32>,
    /// The state id a cas needs; None for a write.
    from: Option<u32>,
    /// The state id it writes.
    to: u32,
    used: u32,
    /// Where its count sits in `Searcher::packed`: word, shift, width.
    word: usize,
    shift: u32,
    width: u32,
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
    stack: Vec<Frame>,
    /// Non-joker items linearized.
    lin_count: u32,
    /// Jokers: per item its class (NIL: not a joker), the classes, the
    /// classes writing each state id, the call entry of every item, the
    /// used counts packed for the memo, and how many jokers are unused.
    class_of: Vec<u32>,
    classes: Vec<Class>,
    writers_of: Vec<SmallVec<[u32; 4]>>,
    call_entry: Vec<u32>,
    packed: Vec<u64>,
    /// The guard bit above each field of `packed`.
    guards: Vec<u64>,
    jokers_left: usize,
    /// `bits` with every joker's bit set: `m` is its first unset bit.
    occupied: Vec<u64>,
    /// Jokers among the items below each index.
    jokers_before: Vec<u32>,
    /// A read of a value nothing writes, or a certainly stale one (`stale`,
    /// see [`certainly_stale`]): the part is invalid.
    doomed: Option<u32>,
    stale: bool,
    /// DIRECT: try `entry` as it is; else the next chain of jokers to try
    /// before it.
    alt: u32,
    /// `entry` is a read-only operation the state allows, taken before any
    /// sibling (see `eager`): if its configuration was seen, so was this one.
    forced: bool,
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
                Footprint::Writes(w) => Print::Writes(cache.intern(w, 0)),
                Footprint::ReadsWrites(o, w) => {
                    Print::ReadsWrites(cache.intern(o, 0), cache.intern(w, 0))
                }
                Footprint::Opaque => Print::Opaque,
            })
            .collect();
        let any_monotone = monotone.iter().any(|&m| m);
        let footprints = !any_monotone && prints.iter().all(|p| !matches!(p, Print::Opaque));
        let marks = vec![0u32; cache.states()];
        let bits = vec![0u64; n.div_ceil(64) + 1];
        let mut skip = vec![0u64; n.div_ceil(64) + 1];
        let mut class_of = vec![NIL; n];
        let mut classes: Vec<Class> = Vec::new();
        let mut writers_of: Vec<SmallVec<[u32; 4]>> = vec![SmallVec::new(); cache.states()];
        let mut doomed = None;
        let mut stale = false;
        if footprints {
            let mut index: rustc_hash::FxHashMap<(u32, u32), u32> = Default::default();
            let mut written = vec![false; cache.states()];
            written[state as usize] = true;
            for (i, it) in items.iter().enumerate() {
                let (from, to) = match prints[i] {
                    Print::Writes(w) => (None, w),
                    Print::ReadsWrites(o, w) => (Some(o), w),
                    _ => continue,
                };
                written[to as usize] = true;
                // A crashed cas that keeps the value is a read: never needed.
                if it.ret != PENDING || from == Some(to) {
                    continue;
                }
                let c = *index.entry((from.unwrap_or(NIL), to)).or_insert_with(|| {
                    writers_of[to as usize].push(classes.len() as u32);
                    classes.push(Class {
                        members: Vec::new(),
                        from,
                        to,
                        used: 0,
                        word: 0,
                        shift: 0,
                        width: 0,
                    });
                    classes.len() as u32 - 1
                });
                classes[c as usize].members.push(i as u32);
                class_of[i] = c;
                skip[i >> 6] |= 1 << (i & 63);
            }
            // The first read (by completion) of a value nothing writes.
            doomed = items
                .iter()
                .enumerate()
                .filter(|(i, it)| {
                    class_of[*i] == NIL
                        && it.ret != PENDING
                        && match prints[*i] {
                            Print::Reads(v) | Print::ReadsWrites(v, _) => !written[v as usize],
                            _ => false,
                        }
                })
                .min_by_key(|(_, it)| it.ret)
                .map(|(i, _)| i as u32);
            if doomed.is_none() {
                doomed = certainly_stale(items, &prints, state, cache.states());
                stale = doomed.is_some();
            }
        }
        // Pack the used counts: each in as few bits as its class needs,
        // with a guard bit on top (see cache::fields_le).
        let mut at = 0u32;
        let mut guards = Vec::new();
        for c in &mut classes {
            c.width = 32 - (c.members.len() as u32).leading_zeros();
            if at % 64 + c.width + 1 > 64 {
                at = at.next_multiple_of(64);
            }
            c.word = (at / 64) as usize;
            c.shift = at % 64;
            at += c.width + 1;
            guards.resize(c.word + 1, 0);
            guards[c.word] |= 1 << (c.shift + c.width);
        }
        let packed = vec![0u64; guards.len()];
        let mut call_entry = vec![0u32; n];
        for (e, en) in entries.iter().enumerate().skip(1) {
            if en.call {
                call_entry[en.item as usize] = e as u32;
            }
        }
        let jokers = classes.iter().map(|c| c.members.len()).sum::<usize>();
        let mut jokers_before = Vec::with_capacity(n + 1);
        let mut k = 0u32;
        for &c in &class_of {
            jokers_before.push(k);
            k += u32::from(c != NIL);
        }
        jokers_before.push(k);
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
            bits,
            zob: (0..n as u32).map(zobrist).collect(),
            set_hash: 0,
            m: 0,
            cache,
            stack: Vec::new(),
            lin_count: 0,
            class_of,
            classes,
            writers_of,
            call_entry,
            packed,
            guards,
            jokers_left: jokers,
            occupied: skip,
            jokers_before,
            doomed,
            stale,
            alt: DIRECT,
            forced: false,
            state,
            iter: 0,
            best_depth: 0,
            best_iter: 0,
            best_blocked: None,
            stop_at,
            mem_reported: 0,
            capture: None,
        };
        // Jokers leave the walk (and `m` passes them).
        for i in 0..n {
            if s.class_of[i] != NIL {
                let e = s.call_entry[i];
                s.lift(e);
            }
        }
        s.m = advance(&s.occupied, 0);
        s.walk_from_head();
        if let Some(d) = s.doomed {
            s.best_blocked = Some(d);
        }
        if stop_at == Some(0) {
            s.capture = Some(s.capture_now());
        }
        s
    }

    /// The read of a value nothing writes, if the part has one.
    pub fn doomed(&self) -> Option<u32> {
        self.doomed
    }

    /// Whether `doomed` is a certainly stale read (not a value nothing writes).
    pub fn stale(&self) -> bool {
        self.stale
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
        for (k, f) in self.stack.iter().enumerate() {
            let after = self.stack.get(k + 1).map_or(self.state, |g| g.old);
            prefix.push((
                self.entries[f.e as usize].item as usize,
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
        if let Some(d) = self.doomed {
            pending.retain(|&q| q != d as usize);
            return Capture {
                prefix,
                state,
                blocked: d as usize,
                pending,
                why: if self.stale { Why::Stale } else { Why::Never },
            };
        }
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
            + self.stack.capacity() * std::mem::size_of::<Frame>()
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
            if let Some(d) = self.doomed {
                self.best_blocked = Some(d);
                if self.stop_at.is_some() {
                    return Some(self.stop());
                }
                return Some(Outcome::Invalid { best_iter: 0 });
            }
            if self.entry == NIL {
                return Some(Outcome::Valid);
            }
            let en = self.entries[self.entry as usize];
            if en.call {
                let step = if self.alt == DIRECT {
                    self.try_linearize(self.entry)
                } else {
                    self.try_chain(self.entry, self.alt)
                };
                match step {
                    Step::Pushed => {
                        if self.stop_at == Some(self.iter) {
                            return Some(self.stop());
                        }
                    }
                    Step::Seen if self.forced => {
                        if !self.backtrack() {
                            return Some(Outcome::Invalid {
                                best_iter: self.best_iter,
                            });
                        }
                    }
                    // Not expected (the state allows it): walk as usual.
                    Step::Impossible | Step::NoMore if self.forced => {
                        self.forced = false;
                        self.entry = self.next[0];
                    }
                    // Not possible as it is: with jokers before it, then.
                    Step::Impossible if self.alt == DIRECT && self.jokers_left > 0 => self.alt = 0,
                    Step::Seen | Step::Impossible if self.alt != DIRECT => self.alt += 1,
                    Step::Seen | Step::Impossible | Step::NoMore => {
                        self.entry = self.next[self.entry as usize];
                        self.alt = DIRECT;
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
        if self.footprints && !self.read_only[item as usize] && self.twin_first(item) {
            return Step::Impossible;
        }
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
        self.commit(e, new_state, DIRECT)
    }

    /// Whether another operation with the same footprint as `item`, invoked
    /// before the first completion still linked, completes before it. Then
    /// that one goes first: in any linearization from here that takes
    /// `item` first, swapping the two keeps every state the same, and every
    /// operation between them was invoked before the earlier completion.
    fn twin_first(&self, item: u32) -> bool {
        let (print, ret) = (self.prints[item as usize], self.items[item as usize].ret);
        let mut e = self.next[0];
        while e != NIL {
            let en = self.entries[e as usize];
            if !en.call {
                return false;
            }
            let j = en.item;
            if j != item && self.prints[j as usize] == print {
                let rj = self.items[j as usize].ret;
                if rj < ret || (rj == ret && j < item) {
                    return true;
                }
            }
            e = self.next[e as usize];
        }
        false
    }

    /// Linearizes the call entry `e` after the `alt`-th chain of jokers that
    /// leads from the state to the value it reads (NoMore past the last).
    fn try_chain(&mut self, e: u32, alt: u32) -> Step {
        let item = self.entries[e as usize].item;
        let need = match self.prints[item as usize] {
            Print::Reads(v) | Print::ReadsWrites(v, _) => v,
            _ => return Step::NoMore,
        };
        if !self.read_only[item as usize] && self.twin_first(item) {
            return Step::NoMore;
        }
        // Only jokers invoked before the first completion still linked.
        let mut lim = self.next[0];
        while lim != NIL && self.entries[lim as usize].call {
            lim = self.next[lim as usize];
        }
        let lim = if lim == NIL { u32::MAX } else { lim };
        // Every chain ends with a joker that writes the value.
        if !self.joker_writes(need, lim) {
            return Step::NoMore;
        }
        let Some(chain) = self.chain(self.state, need, lim, alt) else {
            return Step::NoMore;
        };
        let base = self.stack.len();
        for &c in &chain {
            let cls = &mut self.classes[c as usize];
            let j = cls.members[cls.used as usize];
            cls.used += 1;
            let (used, word, shift, width) = (cls.used, cls.word, cls.shift, cls.width);
            set_field(&mut self.packed[word], shift, width, used);
            self.jokers_left -= 1;
            let next = self
                .model
                .step(self.cache.state(self.state), &self.items[j as usize].op);
            let next = match next {
                Some(n) => {
                    let heap = self.model.state_heap_bytes(&n);
                    self.cache.intern(n, heap)
                }
                // Footprints promise otherwise; undo rather than trust.
                None => self.state,
            };
            self.stack.push(Frame {
                e: self.call_entry[j as usize],
                old: self.state,
                alt: DIRECT,
                joker: true,
            });
            self.state = next;
        }
        let step = match self
            .model
            .step(self.cache.state(self.state), &self.items[item as usize].op)
        {
            Some(n) if self.state == need => {
                let heap = self.model.state_heap_bytes(&n);
                let n = self.cache.intern(n, heap);
                if self.guided && !self.viable(n, item) {
                    Step::Impossible
                } else {
                    self.commit(e, n, alt)
                }
            }
            _ => Step::Impossible,
        };
        if !matches!(step, Step::Pushed) {
            while self.stack.len() > base {
                self.pop_joker();
            }
        }
        step
    }

    /// The `alt`-th simple path of values (a write first, then cas steps;
    /// each class once) from state `from` to state `to` through unused jokers
    /// invoked before entry `lim`, in a fixed order.
    fn chain(&self, from: u32, to: u32, lim: u32, alt: u32) -> Option<SmallVec<[u32; 4]>> {
        let mut path: SmallVec<[u32; 4]> = SmallVec::new();
        let mut seen: SmallVec<[u32; 8]> = SmallVec::new();
        seen.push(from);
        let mut left = alt;
        self.paths(from, to, lim, true, &mut path, &mut seen, &mut left)
            .then_some(path)
    }

    /// Depth-first over the paths from `at`; true once the path numbered
    /// `left` (counting down) is in `path`.
    #[allow(clippy::too_many_arguments)]
    fn paths(
        &self,
        at: u32,
        to: u32,
        lim: u32,
        first: bool,
        path: &mut SmallVec<[u32; 4]>,
        seen: &mut SmallVec<[u32; 8]>,
        left: &mut u32,
    ) -> bool {
        for (c, cls) in self.classes.iter().enumerate() {
            let fits = match cls.from {
                None => first,
                Some(o) => o == at,
            };
            if !fits || seen.contains(&cls.to) {
                continue;
            }
            match cls.members.get(cls.used as usize) {
                Some(&j) if self.call_entry[j as usize] < lim => {}
                _ => continue,
            }
            path.push(c as u32);
            if cls.to == to {
                if *left == 0 {
                    return true;
                }
                *left -= 1;
            } else {
                seen.push(cls.to);
                if self.paths(cls.to, to, lim, false, path, seen, left) {
                    return true;
                }
                seen.pop();
            }
            path.pop();
        }
        false
    }

    /// Undoes the joker on top of the stack.
    fn pop_joker(&mut self) {
        let Some(f) = self.stack.pop() else { return };
        let j = self.entries[f.e as usize].item;
        let cls = &mut self.classes[self.class_of[j as usize] as usize];
        cls.used -= 1;
        let (used, word, shift, width) = (cls.used, cls.word, cls.shift, cls.width);
        set_field(&mut self.packed[word], shift, width, used);
        self.jokers_left += 1;
        self.state = f.old;
    }

    /// Records the configuration after the non-joker call entry `e` (taken
    /// into `new_state`) unless it was seen before, and pushes it.
    #[inline]
    fn commit(&mut self, e: u32, new_state: u32, alt: u32) -> Step {
        let item = self.entries[e as usize].item;
        let (w, bit) = ((item >> 6) as usize, 1u64 << (item & 63));
        self.bits[w] |= bit;
        self.occupied[w] |= bit;
        let depth = self.stack.len() + 1;
        let m = if item == self.m {
            advance(&self.occupied, self.m)
        } else {
            self.m
        };
        let set_hash = self.set_hash ^ self.zob[item as usize];
        let probe = Probe {
            set_hash,
            m,
            // Every non-joker below m is linearized: this makes depth - m
            // the number of bits set from m on.
            depth: self.lin_count + 1 + self.jokers_before[m as usize],
            bits: &self.bits,
            state: new_state,
            extra: &self.packed,
            guards: &self.guards,
        };
        if !self.cache.insert(&probe) {
            self.bits[w] &= !bit;
            self.occupied[w] &= !bit;
            return Step::Seen;
        }
        let old = std::mem::replace(&mut self.state, new_state);
        self.stack.push(Frame {
            e,
            old,
            alt,
            joker: false,
        });
        self.lin_count += 1;
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
        self.walk_from_head();
        Step::Pushed
    }

    /// Restarts the walk at the head, or at a read-only operation invoked
    /// before the first completion still linked that the state allows
    /// (`forced`). Taking it first loses nothing: it leaves the state as it
    /// is, every operation that must precede it is linearized, and moving it
    /// earlier in any linearization from here keeps that a linearization.
    /// So reads never branch, and a configuration whose forced read leads
    /// to a seen configuration fails like it.
    fn walk_from_head(&mut self) {
        self.alt = DIRECT;
        self.forced = false;
        self.entry = self.next[0];
        let state = self.cache.state(self.state);
        let mut e = self.next[0];
        while e != NIL {
            let en = self.entries[e as usize];
            if !en.call {
                break;
            }
            let i = en.item as usize;
            if self.read_only[i] && self.model.step(state, &self.items[i].op).is_some() {
                self.entry = e;
                self.forced = true;
                return;
            }
            e = self.next[e as usize];
        }
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
            let here = e;
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
                    Print::Writes(w) | Print::ReadsWrites(_, w) if self.footprints => {
                        writers = true;
                        self.marks[w as usize] = self.stamp;
                    }
                    _ => return None,
                }
            } else if self.read_only[i] {
                if let (true, Print::Reads(v)) = (self.footprints, self.prints[i]) {
                    let keeps = v == state_id && self.overwritten[i] != self.stamp;
                    if !keeps && self.marks[v as usize] != self.stamp && !self.joker_writes(v, here)
                    {
                        return Some(en.item);
                    }
                } else if !writers {
                    let state = self.cache.state(state_id);
                    if !self.model.reachable(state, &self.items[i].op) {
                        return Some(en.item);
                    }
                }
            } else if writers && !self.monotone[i] {
                write_returned = true;
            }
        }
        None
    }

    /// Whether an unused joker invoked before entry `lim` writes state `v`.
    fn joker_writes(&self, v: u32, lim: u32) -> bool {
        self.writers_of.get(v as usize).is_some_and(|cs| {
            cs.iter().any(|&c| {
                let cls = &self.classes[c as usize];
                cls.members
                    .get(cls.used as usize)
                    .is_some_and(|&j| self.call_entry[j as usize] < lim)
            })
        })
    }

    /// Undoes the last linearization (and the jokers before it) and moves
    /// to the next alternative. Popping a read-only operation taken directly
    /// means the configuration below it fails too: keep popping. False when
    /// there is nothing left to undo.
    fn backtrack(&mut self) -> bool {
        loop {
            let Some(f) = self.stack.pop() else {
                return false;
            };
            let item = self.entries[f.e as usize].item;
            self.bits[(item >> 6) as usize] &= !(1u64 << (item & 63));
            self.occupied[(item >> 6) as usize] &= !(1u64 << (item & 63));
            self.set_hash ^= self.zob[item as usize];
            self.lin_count -= 1;
            self.m = self.m.min(item);
            self.state = f.old;
            self.unlift(f.e);
            while self.stack.last().is_some_and(|g| g.joker) {
                self.pop_joker();
            }
            self.forced = false;
            if f.alt == DIRECT {
                self.entry = self.next[f.e as usize];
                self.alt = DIRECT;
                if !self.read_only[item as usize] {
                    return true;
                }
            } else {
                self.entry = f.e;
                self.alt = f.alt + 1;
                return true;
            }
        }
    }
}

/// The first (by completion) completed operation that needs a state `v`
/// (a read, or a cas from `v`) no linearization can give it. Whatever the
/// order, the state it sees is written by the last writer `y` before it (or
/// is the initial state, with no writer before it), and every operation
/// between `y` and it sees `v` throughout. So `y` writes `v`, is invoked
/// before the read completes, and no completed operation `x` that sees or
/// leaves another value fits between them in real time: `y` completed
/// before `x` was invoked, and `x` completed before the read was invoked
/// (then `x` is linearized between the two). If every candidate `y`
/// (crashed ones included: they never complete) has such an `x`, the part is
/// invalid whatever the search would try. One sweep over completions:
/// `x` is only needed through the latest invocation among those completed
/// before the read, kept per value for the two best values.
fn certainly_stale<O>(
    items: &[Item<O>],
    prints: &[Print],
    init: u32,
    states: usize,
) -> Option<u32> {
    const MIXED: u32 = NIL;
    let n = items.len();
    // Writers of each value, in call order (items are sorted by call), with
    // the running maximum of their completions.
    let mut start = vec![0u32; states + 1];
    let writes = |p: Print| match p {
        Print::Writes(w) | Print::ReadsWrites(_, w) => Some(w),
        _ => None,
    };
    for &p in prints {
        if let Some(w) = writes(p) {
            start[w as usize + 1] += 1;
        }
    }
    for v in 0..states {
        start[v + 1] += start[v];
    }
    let mut fill = start.clone();
    let mut wr: Vec<(u64, u64)> = vec![(0, 0); start[states] as usize];
    for (it, &p) in items.iter().zip(prints) {
        if let Some(w) = writes(p) {
            let at = fill[w as usize] as usize;
            let before = if at > start[w as usize] as usize {
                wr[at - 1].1
            } else {
                0
            };
            wr[at] = (it.call, it.ret.max(before));
            fill[w as usize] += 1;
        }
    }
    // The one value an operation sees and leaves, or MIXED.
    let value = |p: Print| match p {
        Print::Reads(u) | Print::Writes(u) => u,
        Print::ReadsWrites(a, b) if a == b => a,
        _ => MIXED,
    };
    let mut done: Vec<u32> = (0..n as u32)
        .filter(|&i| items[i as usize].ret != PENDING)
        .collect();
    done.sort_unstable_by_key(|&i| items[i as usize].ret);
    // The latest invocation among the added operations, and the latest
    // among those of another value than the best's: (call, value).
    let mut best: Option<(u64, u32)> = None;
    let mut second: Option<(u64, u32)> = None;
    let mut k = 0;
    let mut found: Option<u32> = None;
    for (r, it) in items.iter().enumerate() {
        let v = match prints[r] {
            Print::Reads(v) | Print::ReadsWrites(v, _) => v,
            _ => continue,
        };
        if it.ret == PENDING || found.is_some_and(|f| items[f as usize].ret <= it.ret) {
            continue;
        }
        while k < done.len() && items[done[k] as usize].ret < it.call {
            let x = done[k] as usize;
            let (c, u) = (items[x].call, value(prints[x]));
            match best {
                Some((bc, bu)) if bu == u => best = Some((bc.max(c), u)),
                Some((bc, bu)) if c > bc => {
                    second = Some((bc, bu));
                    best = Some((c, u));
                }
                Some(_) => {
                    if second.is_none_or(|(sc, _)| c > sc) {
                        second = Some((c, u));
                    }
                }
                None => best = Some((c, u)),
            }
            k += 1;
        }
        // The latest invocation of an operation that sees another value.
        let latest = match (best, second) {
            (Some((bc, bu)), _) if bu != v || bu == MIXED => bc,
            (_, Some((sc, _))) => sc,
            _ => continue,
        };
        let survives = |call: u64, ret: u64| call <= it.ret && ret >= latest;
        let (a, b) = (start[v as usize] as usize, start[v as usize + 1] as usize);
        let upto = a + wr[a..b].partition_point(|&(c, _)| c <= it.ret);
        let from_writer = upto > a && survives(wr[upto - 1].0, wr[upto - 1].1);
        let from_init = v == init && survives(0, 0);
        if !(from_writer || from_init) {
            found = Some(r as u32);
        }
    }
    found
}

/// What read-guided pruning needs of an operation's footprint, as state ids.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Print {
    Reads(u32),
    /// Sets the state to this value whatever it was.
    Writes(u32),
    /// Needs the first, sets the second (a cas).
    ReadsWrites(u32, u32),
    Opaque,
}

enum Step {
    Impossible,
    Seen,
    Pushed,
    /// No chain of jokers left to try at this entry.
    NoMore,
}

/// Sets the `width`-bit field at `shift` of `word` to `v`.
#[inline]
fn set_field(word: &mut u64, shift: u32, width: u32, v: u32) {
    let mask = if width >= 64 {
        u64::MAX
    } else {
        ((1u64 << width) - 1) << shift
    };
    *word = (*word & !mask) | (((v as u64) << shift) & mask);
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
