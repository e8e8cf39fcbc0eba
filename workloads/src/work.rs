//! The workloads: each catalogue entry parses its options into a typed
//! [`Work`], which knows its checkers and generators. Which system offers
//! which workload is the system's own catalogue entry (see
//! [`crate::registry`]).

use crate::gen::{AnyGen, AppendGen, BankGen, FinalReads, LockGen, Once, RegisterGen, SetGen};
use crate::maelstrom::{self, MaelstromGen};
use crate::opts::{OptInfo, Opts, UsageError};
use crate::postgres;
use crate::readback::KeyReads;
use checkers::model::ModelKind;
use checkers::txn::{Models, TxnKind};
use checkers::Checker;
use harness::runner::Op;
use serde_json::{json, Value};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// A `--workload`, as `--help` lists it, with the parser of its options.
pub struct WorkloadInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub options: &'static [OptInfo],
    /// Reads the workload's options (and a system's it relies on) once.
    pub parse: fn(&Opts) -> Result<Work, UsageError>,
}

/// A workload with its options read.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    Register {
        keys: u64,
        ops_per_key: u64,
    },
    Lock {
        hold_ms: u64,
    },
    /// Transfers between `accounts` accounts (the system says how many).
    Bank {
        accounts: usize,
    },
    Set,
    /// Transactions of list appends or register writes, and reads.
    Txn {
        kind: TxnKind,
        keys: u64,
        ops_per_key: u64,
    },
    /// One of Maelstrom's workloads, with its own generators and checker.
    Maelstrom(maelstrom::Kind),
}

fn register(o: &Opts) -> Result<Work, UsageError> {
    Ok(Work::Register {
        keys: o.positive("keys")?,
        ops_per_key: o.positive("ops-per-key")?,
    })
}

fn lock(o: &Opts) -> Result<Work, UsageError> {
    Ok(Work::Lock {
        hold_ms: o.positive("hold-ms")?,
    })
}

fn bank(o: &Opts) -> Result<Work, UsageError> {
    // The accounts are the system's option (its servers hold them).
    let accounts = o.positive("accounts")? as usize;
    if accounts < 2 {
        return Err(o.invalid("accounts", "at least 2 accounts are needed"));
    }
    Ok(Work::Bank { accounts })
}

fn set(_: &Opts) -> Result<Work, UsageError> {
    Ok(Work::Set)
}

fn txn(kind: TxnKind, o: &Opts) -> Result<Work, UsageError> {
    Ok(Work::Txn {
        kind,
        keys: o.positive("keys")?,
        ops_per_key: o.positive("ops-per-key")?,
    })
}

fn list_append(o: &Opts) -> Result<Work, UsageError> {
    txn(TxnKind::ListAppend, o)
}

fn rw_register(o: &Opts) -> Result<Work, UsageError> {
    txn(TxnKind::RwRegister, o)
}

macro_rules! maelstrom_workload {
    ($name:literal, $kind:ident, $summary:literal) => {
        WorkloadInfo {
            name: $name,
            summary: $summary,
            options: &[],
            parse: |_| Ok(Work::Maelstrom(maelstrom::Kind::$kind)),
        }
    };
}

/// The transactional workloads' options (list-append, rw-register).
const TXN_OPTIONS: &[OptInfo] = &[
    OptInfo {
        key: "keys",
        default: "8",
        summary: "keys in use at a time",
    },
    OptInfo {
        key: "ops-per-key",
        default: "100",
        summary: "transactions of each worker on a group of keys before the next group",
    },
];

pub const WORKLOADS: &[WorkloadInfo] = &[
    WorkloadInfo {
        name: "register",
        summary: "read, write, cas with unique values on a few keys at a time; checked with the kv model",
        options: &[
            OptInfo { key: "keys", default: "5", summary: "keys in use at a time" },
            OptInfo { key: "ops-per-key", default: "100", summary: "operations of each worker on a group of keys before the next group" },
        ],
        parse: register,
    },
    WorkloadInfo {
        name: "lock",
        summary: "acquire, hold a short random time, release; checked for lock safety and with the mutex model",
        options: &[
            OptInfo { key: "hold-ms", default: "100", summary: "longest hold (and rest) in ms; holds are 10..hold-ms" },
        ],
        parse: lock,
    },
    WorkloadInfo {
        name: "bank",
        summary: "transfers between accounts and reads of every balance; an operator's resolution of in-doubt transactions and a read in the final phase; bank checker",
        options: &[],
        parse: bank,
    },
    WorkloadInfo {
        name: "set",
        summary: "add unique elements, reads now and then, a final read of every worker after the heal; set checker",
        options: &[],
        parse: set,
    },
    WorkloadInfo {
        name: "list-append",
        summary: "transactions of 1-4 appends of unique values and reads on a few keys at a time, a final read of every key; Elle-style list-append checker (strict-serializable)",
        options: TXN_OPTIONS,
        parse: list_append,
    },
    WorkloadInfo {
        name: "rw-register",
        summary: "transactions of 1-4 writes of unique values and reads on a few keys at a time, a final read of every key; Elle-style rw-register checker (strict-serializable)",
        options: TXN_OPTIONS,
        parse: rw_register,
    },
    // Maelstrom's workloads (--system maelstrom), with its message bodies.
    maelstrom_workload!("echo", Echo, "Maelstrom echo (some payloads of 4 KB); every answer equals what was sent"),
    maelstrom_workload!("unique-ids", UniqueIds, "Maelstrom unique-ids: generate; no id twice"),
    maelstrom_workload!("broadcast", Broadcast, "Maelstrom broadcast (total topology): every acknowledged message in every node's final read; stale reads counted"),
    maelstrom_workload!("g-set", GSet, "Maelstrom g-set: every acknowledged element in every node's final read"),
    maelstrom_workload!("g-counter", GCounter, "Maelstrom g-counter: adds of 0..5; final reads equal the sum, every read within bounds"),
    maelstrom_workload!("pn-counter", PnCounter, "Maelstrom pn-counter: adds of -5..5; final reads equal the sum, every read within bounds"),
    maelstrom_workload!("kafka", Kafka, "Maelstrom kafka: send to 4 logs, poll from each client's positions, commit and list offsets; ten polls per worker after the heal; kafka checker"),
    maelstrom_workload!("lin-kv", LinKv, "Maelstrom lin-kv: read, write, cas on a few keys at a time; linearizable (kv model)"),
    maelstrom_workload!("txn-list-append", TxnListAppend, "Maelstrom txn-list-append: txns of 1-4 appends and reads on 5 rotating keys; list-append checker (strict-serializable)"),
    maelstrom_workload!("txn-rw-register", TxnRwRegister, "Maelstrom txn-rw-register: txns of 1-4 writes and reads on 5 rotating keys; rw-register checker (strict-serializable)"),
];

/// The catalogue entry called `name`.
pub fn info(name: &str) -> Option<&'static WorkloadInfo> {
    WORKLOADS.iter().find(|w| w.name == name)
}

impl Work {
    /// The checkers test.json names, with their initial states.
    pub fn checkers(&self) -> Vec<(Checker, Value)> {
        match self {
            Work::Register { .. } => vec![(Checker::Linear(ModelKind::Kv), Value::Null)],
            Work::Lock { .. } => vec![
                (Checker::Lock, Value::Null),
                (Checker::Linear(ModelKind::Mutex), Value::Null),
            ],
            Work::Bank { accounts } => vec![(
                Checker::Bank,
                Value::Object(
                    postgres::account_names(*accounts)
                        .into_iter()
                        .map(|n| (n, json!(postgres::BALANCE)))
                        .collect(),
                ),
            )],
            Work::Set => vec![(Checker::Set, Value::Null)],
            Work::Txn { kind, .. } => {
                vec![(
                    Checker::Txn(*kind, Models::STRICT_SERIALIZABLE),
                    Value::Null,
                )]
            }
            Work::Maelstrom(k) => vec![(k.checker(), Value::Null)],
        }
    }

    /// Worker `slot`'s generator of the main phase.
    pub fn generator(
        &self,
        slot: usize,
        concurrency: usize,
        highest_key: &Arc<AtomicU64>,
    ) -> AnyGen {
        match *self {
            Work::Register { keys, ops_per_key } => AnyGen::Register(
                RegisterGen::new(slot, concurrency, keys, ops_per_key)
                    .tracking(highest_key.clone()),
            ),
            Work::Lock { hold_ms } => {
                AnyGen::Lock(LockGen::new("lock", (hold_ms.min(10), hold_ms)))
            }
            Work::Bank { accounts } => AnyGen::Bank(BankGen { accounts }),
            Work::Set => AnyGen::Set(SetGen::new(slot, concurrency, 50)),
            Work::Txn {
                kind,
                keys,
                ops_per_key,
            } => {
                let mut g =
                    AppendGen::new(slot, concurrency, keys, ops_per_key, highest_key.clone());
                g.write = match kind {
                    TxnKind::ListAppend => "append",
                    TxnKind::RwRegister => "w",
                };
                AnyGen::Append(g)
            }
            Work::Maelstrom(k) => AnyGen::Maelstrom(MaelstromGen::new(k, slot, concurrency)),
        }
    }

    /// Worker `slot`'s generator of the final phase, for workloads that have
    /// one (`None`: no final phase). `power_cuts`: lost-writes is among the
    /// faults, so the register workload reads every key it used at the end.
    pub fn final_generator(
        &self,
        slot: usize,
        concurrency: usize,
        highest_key: &Arc<AtomicU64>,
        power_cuts: bool,
    ) -> Option<AnyGen> {
        let read = || Op::new("read", None, Value::Null);
        let nothing = || AnyGen::Once(Once(Vec::new()));
        match *self {
            Work::Register { .. } if power_cuts => Some(AnyGen::KeyReads(KeyReads::new(
                slot,
                concurrency,
                highest_key.clone(),
            ))),
            Work::Register { .. } | Work::Lock { .. } => None,
            Work::Set => Some(AnyGen::Once(Once(vec![read()]))),
            // One operator: resolve what was left prepared, then read.
            Work::Bank { .. } if slot == 0 => Some(AnyGen::Once(Once(vec![
                Op::new("resolve", None, Value::Null),
                read(),
            ]))),
            Work::Bank { .. } => Some(nothing()),
            // Transactions reading every key used.
            Work::Txn { .. } if slot == 0 => {
                Some(AnyGen::FinalReads(FinalReads::new(highest_key.clone())))
            }
            Work::Txn { .. } => Some(nothing()),
            Work::Maelstrom(k) => k
                .final_reads()
                .then(|| AnyGen::Maelstrom(MaelstromGen::final_read(k, slot))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_parses_its_defaults_and_names_its_checkers() {
        for w in WORKLOADS {
            let mut known: Vec<&OptInfo> = w.options.iter().collect();
            // bank reads the system's accounts.
            let accounts = OptInfo {
                key: "accounts",
                default: "8",
                summary: "",
            };
            known.push(&accounts);
            let o = Opts::new(&known, &[], "s", w.name).unwrap();
            let work = (w.parse)(&o).unwrap_or_else(|e| panic!("{}: {e}", w.name));
            assert!(!work.checkers().is_empty(), "{}", w.name);
            let hk = Arc::default();
            // Every worker gets a generator; the final phase is all or none.
            for cuts in [false, true] {
                let finals: Vec<bool> = (0..3)
                    .map(|s| work.final_generator(s, 3, &hk, cuts).is_some())
                    .collect();
                assert!(finals.iter().all(|f| *f == finals[0]), "{}", w.name);
            }
        }
    }

    #[test]
    fn maelstrom_workloads_match_their_kinds() {
        for (name, kind) in maelstrom::Kind::ALL {
            let w = info(name).unwrap_or_else(|| panic!("{name} not in the catalogue"));
            let o = Opts::default();
            assert_eq!((w.parse)(&o), Ok(Work::Maelstrom(kind)));
        }
    }
}
