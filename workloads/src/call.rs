//! What a client's failed call means for its operation: certainly not done
//! (`fail`), or maybe done (`info`). Shared by every system's client.

use harness::runner::Completion;
use serde_json::Value;

pub enum CallError {
    /// Certainly not done: nothing was sent, or the system refused.
    NotDone(String),
    /// May have taken effect, now or later.
    Unknown(String),
}

/// The completion of a call's result.
pub fn complete(r: Result<Completion, CallError>) -> Completion {
    match r {
        Ok(c) => c,
        Err(CallError::NotDone(m)) => Completion::Fail(Value::Null, m),
        Err(CallError::Unknown(m)) => Completion::Info(m),
    }
}

/// The completion of an operation a client does not know.
pub fn unknown_op(f: &str) -> Result<Completion, CallError> {
    Ok(Completion::Fail(
        Value::Null,
        format!("unknown operation {f}"),
    ))
}

/// How long a worker waits before its next attempt: 100 ms while its
/// server refuses connections (rather than fail thousands of operations a
/// second), else not at all.
pub fn backoff(refused: bool) -> std::time::Duration {
    if refused {
        std::time::Duration::from_millis(100)
    } else {
        std::time::Duration::ZERO
    }
}
