//! Every checker `shakedown check --model` can name, behind one entry point.

use crate::history::History;
use crate::linear::{self, CheckError, Options};
use crate::model::ModelKind;
use crate::txn::{Models, TxnKind};
use crate::{bank, counter, eventual, lock, queue, set, txn, CheckResult};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checker {
    /// Linearizability against a sequential model.
    Linear(ModelKind),
    Lock,
    Bank,
    Set,
    Counter,
    EventualSet,
    EventualCounter,
    Echo,
    UniqueIds,
    Kafka,
    /// Transactional consistency (Elle's anomalies) under the given models.
    Txn(TxnKind, Models),
}

impl Checker {
    pub const ALL: [Checker; 15] = [
        Checker::Linear(ModelKind::Register),
        Checker::Linear(ModelKind::CasRegister),
        Checker::Linear(ModelKind::Kv),
        Checker::Linear(ModelKind::Mutex),
        Checker::Lock,
        Checker::Bank,
        Checker::Set,
        Checker::Counter,
        Checker::EventualSet,
        Checker::EventualCounter,
        Checker::Echo,
        Checker::UniqueIds,
        Checker::Kafka,
        Checker::Txn(TxnKind::ListAppend, Models::STRICT_SERIALIZABLE),
        Checker::Txn(TxnKind::RwRegister, Models::STRICT_SERIALIZABLE),
    ];

    pub fn parse(s: &str) -> Option<Checker> {
        Checker::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The same checker judged against other consistency models (a no-op
    /// for checkers that are not transactional).
    pub fn with_consistency_models(self, models: Models) -> Checker {
        match self {
            Checker::Txn(k, _) => Checker::Txn(k, models),
            other => other,
        }
    }

    pub fn is_transactional(self) -> bool {
        matches!(self, Checker::Txn(..))
    }

    pub fn name(self) -> &'static str {
        match self {
            Checker::Linear(m) => m.name(),
            Checker::Lock => "lock",
            Checker::Bank => "bank",
            Checker::Set => "set",
            Checker::Counter => "counter",
            Checker::EventualSet => "eventual-set",
            Checker::EventualCounter => "eventual-counter",
            Checker::Echo => "echo",
            Checker::UniqueIds => "unique-ids",
            Checker::Kafka => "kafka",
            Checker::Txn(k, _) => k.name(),
        }
    }

    /// One line for `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            Checker::Linear(m) => m.summary(),
            Checker::Lock => {
                "lock safety: overlapping holds, stale fencing tokens, expired leases (per key)"
            }
            Checker::Bank => "transfers conserve the total, no negative balance (--init balances)",
            Checker::Set => "lost, unexpected, recovered and vanished elements (per key)",
            Checker::Counter => "every read within the bounds the adds allow (per key)",
            Checker::EventualSet => "every acknowledged add in every node's final read; stale reads during the run counted",
            Checker::EventualCounter => "final reads equal the sum of the adds; every read within what the adds allow",
            Checker::Echo => "every echo answered with what was sent",
            Checker::UniqueIds => "no generated id twice",
            Checker::Kafka => "append-only logs: lost writes, duplicates, inconsistent offsets, nonmonotonic polls and sends",
            Checker::Txn(TxnKind::ListAppend, _) => {
                "txns of [\"append\",k,v] and [\"r\",k,[...]]: Elle's anomalies (G0 ... G2-item, -process/-realtime, internal, lost-update, ...) under --consistency-models"
            }
            Checker::Txn(TxnKind::RwRegister, _) => {
                "txns of [\"w\",k,v] and [\"r\",k,v], values unique per key: Elle's anomalies under --consistency-models"
            }
        }
    }

    /// Runs the checker. `opts` bounds the linearizability search; the
    /// others are linear or n log n and need no budget.
    pub fn check(
        self,
        init: &Value,
        history: &History,
        opts: &Options,
    ) -> Result<CheckResult, CheckError> {
        match self {
            Checker::Linear(m) => linear::check(m, init, history, opts),
            Checker::Lock => lock::check(history),
            Checker::Bank => bank::check(history, init),
            Checker::Set => set::check(history),
            Checker::Counter => counter::check(history, init),
            Checker::EventualSet => eventual::check_set(history),
            Checker::EventualCounter => eventual::check_counter(history, init),
            Checker::Echo => eventual::check_echo(history),
            Checker::UniqueIds => eventual::check_unique(history),
            Checker::Kafka => queue::check(history),
            Checker::Txn(k, m) => txn::check(k, m, history, Some(opts.time_limit)),
        }
    }
}
