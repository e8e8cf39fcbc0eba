//! Control of shakedown's hosts.
//!
//! Today: [`local`], a cluster of test hosts in network namespaces on this
//! machine, each with its own sshd, reached exactly as real VMs would be.
//! The SSH control layer, faults and the runner come next (ARCHITECTURE.md).

pub mod control;
pub mod doctor;
pub mod local;
pub mod nemesis;
pub mod nodes;
pub mod runner;
pub mod store;
pub mod testing;
