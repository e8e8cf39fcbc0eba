//! Control of shakedown's hosts.
//!
//! Today: [`local`], a cluster of test hosts in network namespaces on this
//! machine, each with its own sshd, reached exactly as real VMs would be.
//! The SSH control layer, faults and the runner come next (ARCHITECTURE.md).

pub mod control;
pub mod daemon;
pub mod doctor;
pub mod lifecycle;
pub mod local;
pub mod nemesis;
pub mod nodes;
pub mod progress;
pub mod results;
pub mod runner;
pub mod schedule;
pub mod signals;
pub mod store;
pub mod system;
pub mod testing;
