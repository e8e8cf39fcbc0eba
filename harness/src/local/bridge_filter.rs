//! `net.bridge.bridge-nf-call-iptables`, shared by every local cluster on
//! the machine. While any cluster is up it must be 0 (frames between hosts
//! must not cross the host's own iptables); the value from before the first
//! cluster came up is put back when the last one goes down. Each cluster
//! holds a file named for it under [`DIR`]; every change happens under an
//! exclusive `flock` of the directory's lock file, so clusters coming up and
//! going down at once (parallel tests) never undo each other.

use super::{io_err, write, ClusterError};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Machine-wide state of the local clusters (tmpfs: gone with a reboot,
/// as is the sysctl).
pub const DIR: &str = "/run/shakedown-clusters";
const SYSCTL: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// The lock, held until dropped.
struct Lock(File);

impl Lock {
    fn take() -> Result<Lock, ClusterError> {
        let dir = Path::new(DIR);
        std::fs::create_dir_all(dir).map_err(|e| io_err("lock the clusters' state", dir, e))?;
        let path = dir.join(".lock");
        let f = File::create(&path).map_err(|e| io_err("lock the clusters' state", &path, e))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(io_err("lock the clusters' state", &path, e));
        }
        Ok(Lock(f))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: the descriptor is still open; closing it would unlock too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn holder(prefix: &str) -> PathBuf {
    // The default cluster has the empty prefix.
    Path::new(DIR).join(format!("up-{prefix}"))
}

fn saved() -> PathBuf {
    Path::new(DIR).join("bridge-nf-call-iptables.saved")
}

fn holders() -> usize {
    std::fs::read_dir(DIR).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("up-"))
            .count()
    })
}

/// The cluster `prefix` is coming up: saves the value if no cluster holds
/// it yet, then sets it to 0. Without the sysctl (no br_netfilter), nothing
/// to do.
pub fn hold(prefix: &str) -> Result<(), ClusterError> {
    let nf = Path::new(SYSCTL);
    let Ok(old) = std::fs::read_to_string(nf) else {
        return Ok(());
    };
    let _lock = Lock::take()?;
    if !saved().exists() {
        write("save a sysctl", &saved(), old.trim())?;
    }
    write("note a cluster", &holder(prefix), "")?;
    write("set a sysctl", nf, "0")
}

/// The cluster `prefix` went down: the last one puts the saved value back.
pub fn release(prefix: &str) -> Result<(), ClusterError> {
    let _lock = Lock::take()?;
    let _ = std::fs::remove_file(holder(prefix));
    if holders() > 0 {
        return Ok(());
    }
    if let Ok(old) = std::fs::read_to_string(saved()) {
        let nf = Path::new(SYSCTL);
        if nf.exists() {
            write("restore a sysctl", nf, old.trim())?;
        }
        let _ = std::fs::remove_file(saved());
    }
    Ok(())
}
