//! The memo of configurations already explored: (linearized set, state).
//!
//! - States are interned: each distinct state is stored once and named by a
//!   `u32`, so a configuration is plain data and the search never clones states.
//! - The set's hash is kept incrementally (Zobrist: the XOR of a fixed random
//!   word per linearized operation), so hashing a configuration is O(1).
//! - A probe compares a stored key with the live bitset directly; only a
//!   configuration that is really new is copied into the table.
//! - A search with jokers (see `search`) adds a vector of counts, of crashed
//!   operations used per class. Configurations that differ only there share a
//!   key, whose last word names a bucket of count vectors; a configuration
//!   whose counts are all at least those of one already explored has fewer
//!   operations left to use, so it cannot succeed where that one failed.
//! - Sharded so that no single rehash moves more than a sliver of the table
//!   (a rehash is one uninterruptible step, and the time limit is honoured to
//!   100 ms).

use hashbrown::hash_table::{Entry, HashTable};
use rustc_hash::FxHasher;
use std::hash::{Hash, Hasher};

const SHARDS: usize = 64;

/// A configuration: every item below `m` is linearized; `words` holds the
/// linearized items from `m`'s word on (bits below `m` cleared), inline when
/// there are at most two words, else at `words[0]` in the spill arena.
#[derive(Clone, Copy)]
struct Key {
    hash: u64,
    m: u32,
    depth: u32,
    state: u32,
    nwords: u32,
    words: [u64; 2],
}

/// The Zobrist word of item `i` (splitmix64).
#[inline]
pub(crate) fn zobrist(i: u32) -> u64 {
    let mut z = (i as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The live configuration being probed.
pub(crate) struct Probe<'a> {
    pub set_hash: u64,
    pub m: u32,
    pub depth: u32,
    /// The whole bitset of linearized items.
    pub bits: &'a [u64],
    pub state: u32,
    /// The counts of crashed operations used per class, packed in fields
    /// whose top bit (in `guards`) is zero; the same length for one search.
    pub extra: &'a [u64],
    pub guards: &'a [u64],
}

/// Whether every field of `a` is at most the same field of `b` (fields
/// packed with a zero guard bit on top, the guard bits in `g`).
#[inline]
fn fields_le(a: &[u64], b: &[u64], g: &[u64]) -> bool {
    a.iter()
        .zip(b)
        .zip(g)
        .all(|((a, b), g)| ((b | g).wrapping_sub(*a)) & g == *g)
}

impl Probe<'_> {
    #[inline]
    fn hash(&self, state_hash: u64) -> u64 {
        // Mixed so that the state and set hashes cannot cancel out.
        self.set_hash ^ state_hash.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[inline]
    fn live_word(&self, j: usize) -> u64 {
        let w = self
            .bits
            .get((self.m >> 6) as usize + j)
            .copied()
            .unwrap_or(0);
        if j == 0 {
            w & !((1u64 << (self.m & 63)) - 1)
        } else {
            w
        }
    }

    #[inline]
    fn matches(&self, hash: u64, k: &Key, spill: &[u64]) -> bool {
        if k.hash != hash || k.m != self.m || k.depth != self.depth || k.state != self.state {
            return false;
        }
        // Same m and depth: equal stored words mean equal sets.
        let stored: &[u64] = if k.nwords <= 2 {
            &k.words[..k.nwords as usize]
        } else {
            let at = k.words[0] as usize;
            &spill[at..at + k.nwords as usize]
        };
        // With counts, the last word is the bucket's index.
        let window = &stored[..stored.len() - usize::from(!self.extra.is_empty())];
        window
            .iter()
            .enumerate()
            .all(|(j, w)| self.live_word(j) == *w)
    }
}

pub(crate) struct Cache<S> {
    shards: Vec<HashTable<Key>>,
    spill: Vec<u64>,
    states: Vec<S>,
    state_hashes: Vec<u64>,
    state_index: HashTable<u32>,
    /// Count vectors per key, for searches with jokers.
    buckets: Vec<Vec<u64>>,
    bucket_words: usize,
    len: u64,
    state_heap: usize,
}

fn hash_of<S: Hash>(s: &S) -> u64 {
    let mut h = FxHasher::default();
    s.hash(&mut h);
    h.finish()
}

impl<S: Eq + Hash> Cache<S> {
    pub fn new() -> Self {
        Cache {
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            spill: Vec::new(),
            states: Vec::new(),
            state_hashes: Vec::new(),
            state_index: HashTable::new(),
            buckets: Vec::new(),
            bucket_words: 0,
            len: 0,
            state_heap: 0,
        }
    }

    /// The id of `state`, storing it if it is new. `heap` is what the state
    /// holds on the heap, for the memory budget.
    #[inline]
    pub fn intern(&mut self, state: S, heap: usize) -> u32 {
        let h = hash_of(&state);
        let Cache {
            states,
            state_hashes,
            state_index,
            state_heap,
            ..
        } = self;
        match state_index.entry(
            h,
            |&id| states[id as usize] == state,
            |&id| state_hashes[id as usize],
        ) {
            Entry::Occupied(o) => *o.get(),
            Entry::Vacant(v) => {
                let id = states.len() as u32;
                states.push(state);
                state_hashes.push(h);
                *state_heap += heap;
                v.insert(id);
                id
            }
        }
    }

    /// Distinct states stored.
    pub fn states(&self) -> usize {
        self.states.len()
    }

    #[inline]
    pub fn state(&self, id: u32) -> &S {
        &self.states[id as usize]
    }

    /// Inserts the probed configuration; false if it was already there.
    #[inline]
    pub fn insert(&mut self, probe: &Probe<'_>) -> bool {
        let hash = probe.hash(self.state_hashes[probe.state as usize]);
        // Bits 40..46 pick the shard: hashbrown uses the low bits for the
        // bucket and the top 7 for its tags, which must stay random within a shard.
        let Cache {
            shards,
            spill,
            buckets,
            bucket_words,
            ..
        } = self;
        let shard = &mut shards[((hash >> 40) as usize) % SHARDS];
        match shard.entry(hash, |k| probe.matches(hash, k, spill), |k| k.hash) {
            Entry::Occupied(o) if !probe.extra.is_empty() => {
                let k = o.get();
                let at = if k.nwords <= 2 {
                    k.words[k.nwords as usize - 1]
                } else {
                    spill[k.words[0] as usize + k.nwords as usize - 1]
                };
                let bucket = &mut buckets[at as usize];
                let n = probe.extra.len();
                if bucket
                    .chunks_exact(n)
                    .any(|old| fields_le(old, probe.extra, probe.guards))
                {
                    return false;
                }
                // Vectors the new one dominates are no longer needed.
                let before = bucket.len();
                let mut kept = Vec::with_capacity(before + n);
                for old in bucket.chunks_exact(n) {
                    if !fields_le(probe.extra, old, probe.guards) {
                        kept.extend_from_slice(old);
                    }
                }
                kept.extend_from_slice(probe.extra);
                *bucket_words = *bucket_words + kept.len() - before;
                *bucket = kept;
                self.len += 1;
                true
            }
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                let mut words = Vec::new();
                let mut seen = 0u32;
                while seen < probe.depth - probe.m {
                    let w = probe.live_word(words.len());
                    seen += w.count_ones();
                    words.push(w);
                }
                if !probe.extra.is_empty() {
                    words.push(buckets.len() as u64);
                    buckets.push(probe.extra.to_vec());
                    *bucket_words += probe.extra.len();
                }
                let mut key = Key {
                    hash,
                    m: probe.m,
                    depth: probe.depth,
                    state: probe.state,
                    nwords: words.len() as u32,
                    words: [0; 2],
                };
                if words.len() <= 2 {
                    key.words[..words.len()].copy_from_slice(&words);
                } else {
                    key.words[0] = spill.len() as u64;
                    spill.extend_from_slice(&words);
                }
                v.insert(key);
                self.len += 1;
                true
            }
        }
    }

    /// Configurations stored.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// An estimate of the heap this cache holds.
    pub fn bytes(&self) -> usize {
        let slot = std::mem::size_of::<Key>() + 1;
        self.shards
            .iter()
            .map(|s| s.capacity() * slot)
            .sum::<usize>()
            + self.spill.capacity() * 8
            + self.states.capacity() * (std::mem::size_of::<S>() + 8)
            + self.state_index.capacity() * 5
            + self.buckets.capacity() * 24
            + self.bucket_words * 8
            + self.state_heap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_equality_is_exact() {
        let mut c: Cache<i64> = Cache::new();
        let five = c.intern(5, 0);
        let six = c.intern(6, 0);
        assert_eq!(c.intern(5, 0), five);
        // Items 0, 1 and 3 linearized: m = 2, depth 3.
        let bits = [0b1011u64, 0];
        let p = |bits: &'static [u64], state| Probe {
            set_hash: 7,
            m: 2,
            depth: 3,
            bits,
            state,
            extra: &[],
            guards: &[],
        };
        assert!(c.insert(&p(&[0b1011, 0], five)));
        assert!(!c.insert(&p(&[0b1011, 0], five)));
        // Same hash and m, another item after m.
        assert!(c.insert(&p(&[0b10011, 0], five)));
        assert!(c.insert(&p(&[0b1011, 0], six)));
        assert_eq!(c.len(), 3);
        let _ = bits;
        // A window longer than two words goes to the spill arena.
        let wide: &'static [u64] = &[0b11, 1, 1, 1, 0];
        let q = Probe {
            set_hash: 1,
            m: 2,
            depth: 5,
            bits: wide,
            state: five,
            extra: &[],
            guards: &[],
        };
        assert!(c.insert(&q));
        assert!(!c.insert(&q));
        // Counts: two 3-bit fields with guard bits 3 and 7. A vector at
        // least as big as one stored, field by field, is not new.
        let g: &[u64] = &[(1 << 3) | (1 << 7)];
        let v = |a: u64, b: u64| [a | (b << 4)];
        let mut ins = |extra: &[u64]| {
            c.insert(&Probe {
                set_hash: 1,
                m: 2,
                depth: 3,
                bits: &[0b1011, 0],
                state: six,
                extra,
                guards: g,
            })
        };
        assert!(ins(&v(1, 2)));
        assert!(!ins(&v(1, 2)));
        assert!(ins(&v(2, 1)));
        assert!(!ins(&v(2, 2)));
        assert!(ins(&v(1, 1)));
        assert!(!ins(&v(1, 2)));
        assert!(!ins(&v(2, 1)));
        assert!(fields_le(&v(3, 0), &v(7, 0), g));
        assert!(!fields_le(&v(0, 7), &v(7, 6), g));
    }
}
