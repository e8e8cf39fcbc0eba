//! Generators of the workloads: seeded per worker (the runner gives each
//! its RNG), written values unique per run (worker `slot` of `c` writes
//! slot+1, slot+1+c, slot+1+2c, ...), never a coordination between workers,
//! so a seed replays the same operations whatever the timing.

use crate::readback::{KeyReads, ReadBack};
use harness::runner::{Generator, Op};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Unique values for one worker.
#[derive(Clone, Debug)]
pub struct Unique {
    next: u64,
    step: u64,
}

impl Unique {
    pub fn new(slot: usize, concurrency: usize) -> Unique {
        Unique {
            next: slot as u64 + 1,
            step: concurrency.max(1) as u64,
        }
    }

    pub fn take(&mut self) -> u64 {
        let v = self.next;
        self.next += self.step;
        v
    }
}

/// read / write / cas on `keys` keys at a time; after `per_key` operations
/// the worker moves to the next group of keys (Jepsen's independent keys),
/// which keeps each key's history small enough to check quickly. After a
/// recovery from a power cut it first reads back every key it wrote
/// before (see [`crate::readback`]).
pub struct RegisterGen {
    pub keys: u64,
    pub per_key: u64,
    n: u64,
    values: Unique,
    last: HashMap<u64, u64>,
    back: ReadBack,
    /// The highest key any worker used (for final reads).
    highest: Arc<AtomicU64>,
}

impl RegisterGen {
    pub fn new(slot: usize, concurrency: usize, keys: u64, per_key: u64) -> RegisterGen {
        RegisterGen {
            keys: keys.max(1),
            per_key: per_key.max(1),
            n: 0,
            values: Unique::new(slot, concurrency),
            last: HashMap::new(),
            back: ReadBack::default(),
            highest: Arc::default(),
        }
    }

    /// Records the highest key used in `highest` (shared by the workers).
    pub fn tracking(mut self, highest: Arc<AtomicU64>) -> RegisterGen {
        self.highest = highest;
        self
    }
}

impl Generator for RegisterGen {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Op> {
        if let Some(key) = self.back.next_key() {
            return Some(Op::new("read", Some(json!(key)), Value::Null));
        }
        let group = self.n / self.per_key;
        self.n += 1;
        let key = group * self.keys + rng.gen_range(0..self.keys);
        self.highest.fetch_max(key, Ordering::Relaxed);
        let k = Some(json!(key));
        Some(match rng.gen_range(0..10) {
            0..=3 => Op::new("read", k, Value::Null),
            4..=7 => {
                let v = self.values.take();
                self.last.insert(key, v);
                self.back.wrote(key);
                Op::new("write", k, json!(v))
            }
            _ => {
                // Swap from the value this worker last wrote: it may still be there.
                let old = self.last.get(&key).map_or(Value::Null, |v| json!(v));
                let v = self.values.take();
                self.last.insert(key, v);
                self.back.wrote(key);
                Op::new("cas", k, json!([old, v]))
            }
        })
    }

    fn observe(&mut self, epoch: u64) {
        self.back.observe(epoch);
    }
}

/// Adds unique elements to a set; the final phase reads it.
pub struct SetGen {
    values: Unique,
    /// Every `read_every`-th operation is a read (0: never).
    pub read_every: u64,
    n: u64,
}

impl SetGen {
    pub fn new(slot: usize, concurrency: usize, read_every: u64) -> SetGen {
        SetGen {
            values: Unique::new(slot, concurrency),
            read_every,
            n: 0,
        }
    }
}

impl Generator for SetGen {
    fn next(&mut self, _rng: &mut ChaCha8Rng) -> Option<Op> {
        self.n += 1;
        if self.read_every > 0 && self.n.is_multiple_of(self.read_every) {
            return Some(Op::new("read", None, Value::Null));
        }
        Some(Op::new("add", None, json!(self.values.take())))
    }
}

/// Transfers of 1..=5 between two different accounts of `accounts`, and
/// a read of every balance one operation in five.
pub struct BankGen {
    pub accounts: usize,
}

impl Generator for BankGen {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Op> {
        if self.accounts < 2 || rng.gen_range(0..5) == 0 {
            return Some(Op::new("read", None, Value::Null));
        }
        let from = rng.gen_range(0..self.accounts);
        let to = (from + rng.gen_range(1..self.accounts)) % self.accounts;
        Some(Op::new(
            "transfer",
            None,
            json!({"from": format!("a{from}"), "to": format!("a{to}"), "amount": rng.gen_range(1..=5)}),
        ))
    }
}

/// A final phase: `ops` once each.
pub struct Once(pub Vec<Op>);

impl Generator for Once {
    fn next(&mut self, _rng: &mut ChaCha8Rng) -> Option<Op> {
        if self.0.is_empty() {
            None
        } else {
            Some(self.0.remove(0))
        }
    }
}

/// acquire, hold a random short time, release, rest; on lock `name`.
pub struct LockGen {
    pub name: String,
    pub hold_ms: (u64, u64),
    holding: bool,
}

impl LockGen {
    pub fn new(name: &str, hold_ms: (u64, u64)) -> LockGen {
        LockGen {
            name: name.into(),
            hold_ms,
            holding: false,
        }
    }
}

impl Generator for LockGen {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Op> {
        let k = Some(json!(self.name));
        let op = if self.holding {
            let mut op = Op::new("release", k, Value::Null);
            op.wait = Duration::from_millis(rng.gen_range(self.hold_ms.0..=self.hold_ms.1));
            op
        } else {
            let mut op = Op::new("acquire", k, Value::Null);
            op.wait = Duration::from_millis(rng.gen_range(0..=self.hold_ms.0));
            op
        };
        // Alternate; a client asked to release a lock it does not hold
        // answers fail at once, without a call.
        self.holding = !self.holding;
        Some(op)
    }

    fn must_finish(&self) -> bool {
        self.holding
    }
}

/// Jepsen's list-append (and rw-register) transactions: 1-4 micro-ops, each
/// a write of a unique value (`append`, or `w` for registers) or a read, on
/// `keys` active keys at a time; after `per_keys` transactions the worker
/// moves to the next group of keys. `highest` records the highest key any
/// worker used, for the final reads.
pub struct AppendGen {
    pub keys: u64,
    pub per_keys: u64,
    /// The write micro-op: "append" or "w".
    pub write: &'static str,
    n: u64,
    values: Unique,
    highest: Arc<AtomicU64>,
    back: ReadBack,
}

impl AppendGen {
    pub fn new(
        slot: usize,
        concurrency: usize,
        keys: u64,
        per_keys: u64,
        highest: Arc<AtomicU64>,
    ) -> AppendGen {
        AppendGen {
            keys: keys.max(1),
            per_keys: per_keys.max(1),
            write: "append",
            n: 0,
            values: Unique::new(slot, concurrency),
            highest,
            back: ReadBack::default(),
        }
    }
}

impl Generator for AppendGen {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Op> {
        // After a recovery from a power cut: transactions reading back the
        // keys written before it, as many per transaction as a final read.
        let due = self.back.next_keys(FinalReads::PER_TXN as usize);
        if !due.is_empty() {
            let mops = due.iter().map(|k| json!(["r", k, null])).collect();
            return Some(Op::new("txn", None, Value::Array(mops)));
        }
        let group = self.n / self.per_keys;
        self.n += 1;
        let mops: Vec<Value> = (0..rng.gen_range(1..=4))
            .map(|_| {
                let k = group * self.keys + rng.gen_range(0..self.keys);
                self.highest.fetch_max(k, Ordering::Relaxed);
                if rng.gen_bool(0.5) {
                    self.back.wrote(k);
                    json!([self.write, k, self.values.take()])
                } else {
                    json!(["r", k, null])
                }
            })
            .collect();
        Some(Op::new("txn", None, Value::Array(mops)))
    }

    fn observe(&mut self, epoch: u64) {
        self.back.observe(epoch);
    }
}

/// The final phase of list-append: transactions reading every key used (0
/// to the highest, in key order), [`FinalReads::PER_TXN`] keys each, made
/// when they are due.
pub struct FinalReads {
    pub highest: Arc<AtomicU64>,
    /// The next key to read; `None` before the first.
    next: Option<u64>,
}

impl FinalReads {
    /// Keys per final transaction: etcd refuses a transaction of more than
    /// 128 operations (`--max-txn-ops`).
    pub const PER_TXN: u64 = 64;

    pub fn new(highest: Arc<AtomicU64>) -> FinalReads {
        FinalReads {
            highest,
            next: None,
        }
    }
}

impl Generator for FinalReads {
    fn next(&mut self, _rng: &mut ChaCha8Rng) -> Option<Op> {
        let top = self.highest.load(Ordering::Relaxed);
        let from = self.next.unwrap_or(0);
        if from > top {
            return None;
        }
        let to = top.min(from + Self::PER_TXN - 1);
        self.next = Some(to + 1);
        let mops = (from..=to).map(|k| json!(["r", k, null])).collect();
        Some(Op::new("txn", None, Value::Array(mops)))
    }
}

/// Any of the above, so a workload has one generator type.
pub enum AnyGen {
    Register(RegisterGen),
    Set(SetGen),
    Lock(LockGen),
    Bank(BankGen),
    Append(AppendGen),
    FinalReads(FinalReads),
    Once(Once),
    KeyReads(KeyReads),
    Maelstrom(crate::maelstrom::MaelstromGen),
}

impl Generator for AnyGen {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Op> {
        match self {
            AnyGen::Register(g) => g.next(rng),
            AnyGen::Set(g) => g.next(rng),
            AnyGen::Lock(g) => g.next(rng),
            AnyGen::Bank(g) => g.next(rng),
            AnyGen::Append(g) => g.next(rng),
            AnyGen::FinalReads(g) => g.next(rng),
            AnyGen::Once(g) => g.next(rng),
            AnyGen::KeyReads(g) => g.next(rng),
            AnyGen::Maelstrom(g) => g.next(rng),
        }
    }

    fn observe(&mut self, epoch: u64) {
        match self {
            AnyGen::Register(g) => g.observe(epoch),
            AnyGen::Append(g) => g.observe(epoch),
            AnyGen::Maelstrom(g) => g.observe(epoch),
            AnyGen::Set(_)
            | AnyGen::Lock(_)
            | AnyGen::Bank(_)
            | AnyGen::FinalReads(_)
            | AnyGen::Once(_)
            | AnyGen::KeyReads(_) => {}
        }
    }

    fn must_finish(&self) -> bool {
        match self {
            AnyGen::Lock(g) => g.must_finish(),
            AnyGen::Maelstrom(g) => g.must_finish(),
            AnyGen::Register(_)
            | AnyGen::Set(_)
            | AnyGen::Bank(_)
            | AnyGen::Append(_)
            | AnyGen::FinalReads(_)
            | AnyGen::Once(_)
            | AnyGen::KeyReads(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn values_are_unique_across_workers_and_keys_rotate() {
        let mut seen = std::collections::HashSet::new();
        for slot in 0..4 {
            let mut g = RegisterGen::new(slot, 4, 3, 10);
            let mut rng = ChaCha8Rng::seed_from_u64(slot as u64);
            let mut keys = std::collections::BTreeSet::new();
            for _ in 0..100 {
                let op = g.next(&mut rng).unwrap();
                keys.insert(op.key.as_ref().unwrap().as_u64().unwrap());
                let v = match op.f.as_str() {
                    "write" => op.value.as_u64(),
                    "cas" => op.value[1].as_u64(),
                    _ => None,
                };
                if let Some(v) = v {
                    assert!(seen.insert(v), "value {v} written twice");
                }
            }
            // 100 ops, 10 per group of 3 keys: keys 0..30.
            assert!(keys.iter().all(|k| *k < 30) && keys.len() > 10, "{keys:?}");
        }
    }

    /// After a recovery epoch a register worker reads back every key it
    /// wrote before it, in key order, then goes on exactly as it would
    /// have: the read-backs draw nothing from its RNG.
    #[test]
    fn registers_read_back_what_they_wrote_after_a_recovery() {
        let take = |g: &mut RegisterGen, rng: &mut ChaCha8Rng, n: usize| -> Vec<Op> {
            (0..n).map(|_| g.next(rng).unwrap()).collect()
        };
        let (mut plain, mut cut) = (RegisterGen::new(1, 3, 3, 10), RegisterGen::new(1, 3, 3, 10));
        let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(4), ChaCha8Rng::seed_from_u64(4));
        let before = take(&mut cut, &mut r2, 40);
        assert_eq!(take(&mut plain, &mut r1, 40), before);
        let written: std::collections::BTreeSet<u64> = before
            .iter()
            .filter(|o| o.f != "read")
            .map(|o| o.key.as_ref().unwrap().as_u64().unwrap())
            .collect();
        cut.observe(1);
        let back = take(&mut cut, &mut r2, written.len());
        assert!(back.iter().all(|o| o.f == "read" && o.value.is_null()));
        let keys: Vec<u64> = back
            .iter()
            .map(|o| o.key.as_ref().unwrap().as_u64().unwrap())
            .collect();
        assert_eq!(keys, written.into_iter().collect::<Vec<u64>>());
        assert_eq!(take(&mut cut, &mut r2, 40), take(&mut plain, &mut r1, 40));
        // The same epoch again: nothing more to read back.
        cut.observe(1);
        assert_eq!(take(&mut cut, &mut r2, 5), take(&mut plain, &mut r1, 5));
    }

    #[test]
    fn transactions_read_back_what_they_wrote_after_a_recovery() {
        let mut g = AppendGen::new(0, 2, 400, 1000, Arc::default());
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut written = std::collections::BTreeSet::new();
        for _ in 0..120 {
            for m in g.next(&mut rng).unwrap().value.as_array().unwrap() {
                if m[0] == "append" {
                    written.insert(m[1].as_u64().unwrap());
                }
            }
        }
        assert!(
            written.len() > FinalReads::PER_TXN as usize,
            "{}",
            written.len()
        );
        g.observe(3);
        let mut read = Vec::new();
        while read.len() < written.len() {
            let op = g.next(&mut rng).unwrap();
            let mops = op.value.as_array().unwrap();
            assert!(mops.len() as u64 <= FinalReads::PER_TXN);
            for m in mops {
                assert!(m[0] == "r" && m[2].is_null(), "{m}");
                read.push(m[1].as_u64().unwrap());
            }
        }
        assert_eq!(read, written.into_iter().collect::<Vec<u64>>());
    }

    #[test]
    fn locks_alternate_and_sets_read_now_and_then() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut g = LockGen::new("L", (10, 50));
        let fs: Vec<String> = (0..4).map(|_| g.next(&mut rng).unwrap().f).collect();
        assert_eq!(fs, ["acquire", "release", "acquire", "release"]);
        // A hold never outlives the run: after an acquire, the release must come.
        assert!(!g.must_finish());
        g.next(&mut rng);
        assert!(g.must_finish());
        let mut s = SetGen::new(0, 1, 3);
        let fs: Vec<String> = (0..6).map(|_| s.next(&mut rng).unwrap().f).collect();
        assert_eq!(fs, ["add", "add", "read", "add", "add", "read"]);
    }

    #[test]
    fn appends_are_unique_small_and_final_reads_cover_every_key() {
        let highest = Arc::new(AtomicU64::new(0));
        let mut seen = std::collections::HashSet::new();
        for slot in 0..3 {
            let mut g = AppendGen::new(slot, 3, 4, 10, highest.clone());
            let mut rng = ChaCha8Rng::seed_from_u64(slot as u64);
            for _ in 0..50 {
                let op = g.next(&mut rng).unwrap();
                let mops = op.value.as_array().unwrap();
                assert!((1..=4).contains(&mops.len()) && op.f == "txn");
                for m in mops {
                    assert!(m[1].as_u64().unwrap() < 20, "5 groups of 4 keys: {m}");
                    match m[0].as_str().unwrap() {
                        "append" => assert!(seen.insert(m[2].as_u64().unwrap())),
                        f => assert!(f == "r" && m[2].is_null()),
                    }
                }
            }
        }
        let top = highest.load(Ordering::Relaxed);
        let mut f = FinalReads::new(highest.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let op = f.next(&mut rng).unwrap();
        assert_eq!(op.value.as_array().unwrap().len() as u64, top + 1);
        assert_eq!(op.value[0], json!(["r", 0, null]));
        assert!(f.next(&mut rng).is_none());
        // Many keys: every one read once, in key order, 64 at most per txn.
        highest.store(150, Ordering::Relaxed);
        let mut f = FinalReads::new(highest);
        let mut keys = Vec::new();
        while let Some(op) = f.next(&mut rng) {
            let mops = op.value.as_array().unwrap();
            assert!(mops.len() as u64 <= FinalReads::PER_TXN);
            keys.extend(mops.iter().map(|m| m[1].as_u64().unwrap()));
        }
        assert_eq!(keys, (0..=150).collect::<Vec<u64>>());
    }

    #[test]
    fn register_transactions_write_unique_values() {
        let mut g = AppendGen::new(1, 2, 3, 5, Arc::default());
        g.write = "w";
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..40 {
            for m in g.next(&mut rng).unwrap().value.as_array().unwrap() {
                match m[0].as_str().unwrap() {
                    "w" => assert!(
                        seen.insert(m[2].as_u64().unwrap()) && m[2].as_u64().unwrap() % 2 == 0
                    ),
                    f => assert_eq!(f, "r"),
                }
            }
        }
        assert!(seen.len() > 10);
    }
}
