//! What a system under test must provide: set it up on a node, say when the
//! cluster serves, name its daemon (the target of kill and pause) and its
//! logs, tear it down. Blocking (SSH is); the runner calls `setup` on every
//! node at once, each on its own session.

use crate::companions::ControlFile;
use crate::control::{ControlError, Remote};
use crate::daemon::Daemon;
use crate::needs::{need, Need};
use std::net::IpAddr;
use std::time::Duration;

/// A node as systems see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub ip: IpAddr,
}

pub trait System: Send + Sync {
    fn name(&self) -> &str;

    /// The version of what is deployed, for test.json.
    fn version(&self) -> Option<String> {
        None
    }

    /// The daemon on each node: kill and pause hit it, heal restarts it.
    fn daemon(&self) -> Daemon;

    /// Commands the system runs on each node (checked on every node before
    /// a run; see [`crate::needs`]).
    fn node_needs(&self) -> Vec<Need> {
        Vec::new()
    }

    /// Files or commands the system takes from the control host (e.g. a
    /// binary it uploads), from Debian packages; looked for on the control
    /// host before anything is set up.
    fn control_needs(&self) -> Vec<Need> {
        Vec::new()
    }

    /// shakedown's own binaries the system uploads from the control host
    /// (e.g. `shakedown-agent`); looked for before anything is set up.
    fn companions(&self) -> Vec<ControlFile> {
        Vec::new()
    }

    /// Whether the system's daemons read the clock through libc, so that
    /// libfaketime can move it on local test hosts (Go binaries such as
    /// etcd read the vDSO directly: no).
    fn clock_via_libc(&self) -> bool {
        true
    }

    /// Ports the system listens on, on each node: they must be free once an
    /// earlier run's leftovers are torn down.
    fn ports(&self) -> Vec<u16> {
        Vec::new()
    }

    /// Installs and starts the system on `nodes[i]`.
    fn setup(
        &self,
        node: &mut dyn Remote,
        i: usize,
        nodes: &[NodeInfo],
    ) -> Result<(), ControlError>;

    /// After every node is set up: waits until `nodes[i]` serves clients.
    fn await_ready(
        &self,
        _node: &mut dyn Remote,
        _i: usize,
        _nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        Ok(())
    }

    /// A shell command that exits 0 on the node that is the primary now
    /// (the `primary` partition strategy isolates it); `None`: no primary.
    fn primary_probe(&self) -> Option<String> {
        None
    }

    /// Files on a node to fetch into the run's nodes/<node>/.
    fn log_files(&self) -> Vec<String> {
        vec![self.daemon().log()]
    }

    /// Stops the system on a node and removes its data.
    fn teardown(&self, node: &mut dyn Remote, _i: usize) -> Result<(), ControlError> {
        self.daemon().wipe(node)
    }
}

/// A system that runs nothing but a sleeping process on each node: kill,
/// pause and heal have a real target, and the clients can be in-process.
/// For tests of the runner and the harness's own benchmark.
pub struct Noop;

impl System for Noop {
    fn name(&self) -> &str {
        "noop"
    }

    fn daemon(&self) -> Daemon {
        Daemon::new("noop")
    }

    fn node_needs(&self) -> Vec<Need> {
        vec![need("sleep", "coreutils", "the noop system's process")]
    }

    fn setup(
        &self,
        node: &mut dyn Remote,
        _i: usize,
        _nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let d = self.daemon();
        d.start(node, "sleep 1000000", &d.dir())?;
        d.wait_until(node, &d.running_check(), Duration::from_secs(5))
    }
}
