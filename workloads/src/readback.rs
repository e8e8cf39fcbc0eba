//! Reading back what was written, as a power cut (`--nemesis lost-writes`)
//! needs: a lost write is only seen by a read of its key after the system
//! came back, and the register workloads move on to new keys. So each
//! worker keeps the keys it wrote since the last recovery epoch it saw
//! ([`harness::runner::Generator::observe`]); at a new epoch they become its
//! next operations (reads, in key order) before it goes on. With
//! lost-writes among the faults, the final phase also reads every key the
//! run used ([`KeyReads`], Jepsen's final reads).
//!
//! Nothing here draws from the worker's RNG: the operations stay a function
//! of its seed and of the epochs it observed.

use harness::runner::{Generator, Op};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One worker's keys to read back.
#[derive(Clone, Debug, Default)]
pub struct ReadBack {
    epoch: u64,
    /// Written since the epoch began.
    written: BTreeSet<u64>,
    /// Due now, read in key order.
    due: BTreeSet<u64>,
}

impl ReadBack {
    /// The worker invoked a write (or cas) on `key`.
    pub fn wrote(&mut self, key: u64) {
        self.written.insert(key);
    }

    /// The recovery epoch is `epoch`: if it is new, every key written
    /// before it is due for a read.
    pub fn observe(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.due.append(&mut self.written);
        }
    }

    /// The next key due, if any.
    pub fn next_key(&mut self) -> Option<u64> {
        self.due.pop_first()
    }

    /// Up to `n` keys due, in key order.
    pub fn next_keys(&mut self, n: usize) -> Vec<u64> {
        std::iter::from_fn(|| self.due.pop_first())
            .take(n)
            .collect()
    }
}

/// The register workload's final phase under lost-writes: worker `slot` of
/// `concurrency` reads every key from 0 to the highest any worker used
/// that is `slot` modulo `concurrency`, one read each.
pub struct KeyReads {
    next: u64,
    step: u64,
    highest: Arc<AtomicU64>,
}

impl KeyReads {
    pub fn new(slot: usize, concurrency: usize, highest: Arc<AtomicU64>) -> KeyReads {
        KeyReads {
            next: slot as u64,
            step: concurrency.max(1) as u64,
            highest,
        }
    }
}

impl Generator for KeyReads {
    fn next(&mut self, _rng: &mut ChaCha8Rng) -> Option<Op> {
        if self.next > self.highest.load(Ordering::Relaxed) {
            return None;
        }
        let k = self.next;
        self.next += self.step;
        Some(Op::new("read", Some(json!(k)), Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keys_written_before_an_epoch_are_due_once_in_key_order() {
        let mut b = ReadBack::default();
        for k in [7, 3, 7, 12] {
            b.wrote(k);
        }
        b.observe(0);
        assert_eq!(b.next_key(), None, "no new epoch: nothing due");
        b.observe(1);
        b.wrote(5);
        assert_eq!(b.next_keys(2), [3, 7]);
        // A second epoch before the first read-back ends: both sets due.
        b.observe(2);
        assert_eq!(b.next_keys(10), [5, 12]);
        b.observe(2);
        assert_eq!(b.next_key(), None);
    }

    #[test]
    fn final_key_reads_split_every_key_between_workers() {
        let highest = Arc::new(AtomicU64::new(9));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut all = Vec::new();
        for slot in 0..3 {
            let mut g = KeyReads::new(slot, 3, highest.clone());
            while let Some(op) = g.next(&mut rng) {
                assert_eq!(op.f, "read");
                all.push(op.key.unwrap().as_u64().unwrap());
            }
        }
        all.sort_unstable();
        assert_eq!(all, (0..=9).collect::<Vec<u64>>());
    }
}
