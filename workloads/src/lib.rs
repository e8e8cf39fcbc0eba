//! Systems under test and their workloads, each paired with the checkers
//! it needs. [`registry`] lists the systems (each module declares its own
//! catalogue entry and typed options); [`work`] lists the workloads. They
//! are what `shakedown test --help` prints and what `--opt` is checked
//! against, once, before anything runs.

pub mod call;
pub mod etcd;
pub mod gen;
pub mod http;
pub mod maelstrom;
pub mod memory;
pub mod opts;
pub mod postgres;
pub mod readback;
pub mod redis;
pub mod registry;
pub mod work;
pub mod zookeeper;

pub use opts::{OptInfo, UsageError};
pub use registry::{describe, systems, Selection, SystemInfo, REGISTRY};
pub use work::{Work, WorkloadInfo, WORKLOADS};
