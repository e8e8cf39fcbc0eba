//! Sequential models: what a single correct copy of the system would do.
//!
//! A model is a small pure value, in the style of Porcupine's `Model` and
//! stateright's `SequentialSpec`: `init`, and `step(state, op)` giving the next
//! state or `None` when the operation is impossible in that state. The search
//! in [`crate::linear`] is generic over [`Model`]; adding a model never touches it.

mod mutex;
mod register;
mod val;

pub use mutex::{Mutex, MutexOp};
pub use register::{RegOp, Register};
pub use val::{Chunk, Text, Val};

use crate::history::Operation;
use std::fmt::Debug;
use std::hash::Hash;

/// A history operation the model cannot interpret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    pub message: String,
}

impl ModelError {
    pub fn new(message: impl Into<String>) -> Self {
        ModelError {
            message: message.into(),
        }
    }
}

/// What an operation does to the state, as far as the unique-value
/// optimisations need to know. Models that return `Opaque` (the default) opt out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Footprint<S> {
    /// Nothing is known: disables the optimisations for the whole key.
    Opaque,
    /// The operation requires the state to equal `S` and leaves it unchanged.
    Reads(S),
    /// The operation sets the state to `S` whatever it was.
    Writes(S),
    /// The operation requires the first state and sets the second.
    ReadsWrites(S, S),
}

pub trait Model: Send + Sync {
    type State: Clone + Eq + Hash + Send + Sync + Debug + 'static;
    type Op: Clone + Send + Sync + Debug;

    /// The model's name as `--model` spells it.
    fn name(&self) -> &'static str;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Translates a history operation into the model's terms.
    ///
    /// `Ok(None)` means the operation can neither change nor constrain the
    /// state (a failed operation, or a read whose result is unknown) and is
    /// left out of the search. Must not depend on other operations.
    fn prepare(&self, op: &Operation) -> Result<Option<Self::Op>, ModelError>;

    /// The state after `op`, or `None` if `op` is impossible in `state`.
    /// Must be pure and cheap: the search calls it millions of times.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// The operation in a few words: "read 3", "cas 1 -> 2".
    fn describe_op(&self, op: &Self::Op) -> String;

    /// The state as a clause: "the register held 4".
    fn describe_state(&self, state: &Self::State) -> String;

    /// The state as a compact value for JSON output.
    fn state_json(&self, state: &Self::State) -> serde_json::Value;

    /// True if `op`, whenever it can be taken, leaves the state unchanged (a
    /// read). The search uses it to prune: if such an operation can be taken
    /// at a configuration, some linearization from there (if any) takes it
    /// first, so its siblings need not be tried. The default, false, is
    /// always safe.
    fn read_only(&self, _op: &Self::Op) -> bool {
        false
    }

    /// True if `op` only ever extends the state in a way [`Model::reachable`]
    /// understands (an append). Enables read-guided pruning for parts that
    /// have such operations.
    fn monotone(&self, _op: &Self::Op) -> bool {
        false
    }

    /// For a read-only `read`: can `state`, extended only by monotone
    /// operations, become a state in which `read` can be taken? Answering
    /// true is always safe; false prunes the configuration.
    fn reachable(&self, _state: &Self::State, _read: &Self::Op) -> bool {
        true
    }

    /// Heap bytes a state owns beyond its own size, for the memory budget.
    fn state_heap_bytes(&self, _state: &Self::State) -> usize {
        0
    }

    /// See [`Footprint`]. The default opts out of the optimisations.
    fn footprint(&self, _op: &Self::Op) -> Footprint<Self::State> {
        Footprint::Opaque
    }
}

/// The models `shakedown check --model` offers for linearizability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    Register,
    CasRegister,
    Kv,
    Mutex,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::Kv,
        ModelKind::Mutex,
    ];

    pub fn parse(s: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::Mutex => "mutex",
        }
    }

    /// One line for `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            ModelKind::Register => "read and write on a register (per key)",
            ModelKind::CasRegister => "read, write and cas [old,new] on a register (per key)",
            ModelKind::Kv => {
                "per key: read/write/cas, and get/put/append on strings (a missing key gets \"\")"
            }
            ModelKind::Mutex => "acquire and release of a linearizable lock (per key)",
        }
    }
}
