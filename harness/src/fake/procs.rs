//! The processes of fake nodes: reaped as init would, found by a marker in
//! their environment, and swept when their test process died first.

use super::lock;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The marker in the environment of every process a cluster started.
pub(super) const MARKER: &str = "SHAKEDOWN_FAKE_CLUSTER";

/// Pids of fake commands being waited for: not the reaper's.
pub(super) static WAITED: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Makes this process the reaper of its orphans, once, with a thread that
/// reaps exited children outside its own process group (the daemons of
/// fake nodes, in sessions of their own) unless a fake command is waited
/// for (see [`WAITED`]).
pub(super) fn start_reaper() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        // SAFETY: prctl(2) with plain integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        std::thread::spawn(|| loop {
            reap_orphans();
            std::thread::sleep(Duration::from_millis(2));
        });
    });
}

fn reap_orphans() {
    // SAFETY: getpgrp(2) has no preconditions.
    let ours = unsafe { libc::getpgrp() };
    loop {
        let waited = lock(&WAITED);
        // SAFETY: an all-zero siginfo_t is valid; waitid(2) with WNOWAIT
        // only looks at the first exited child.
        let pid = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            if r != 0 {
                return;
            }
            info.si_pid()
        };
        if pid == 0 || waited.contains(&pid) {
            return;
        }
        // A zombie's stat still says its group: "pid (comm) Z ppid pgrp".
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let pgrp = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(2)?.parse::<i32>().ok());
        if pgrp.is_none() || pgrp == Some(ours) {
            return;
        }
        // SAFETY: waitpid(2) of an exited child no one else waits for.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

/// Live processes whose environment holds `marker` (zombies have none).
pub(super) fn marked(marker: &str) -> Vec<i32> {
    marked_where(|kv| kv == marker.as_bytes())
}

/// Live processes with an environment entry that `pick` picks.
fn marked_where(pick: impl Fn(&[u8]) -> bool) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(&pick))
        })
        .collect()
}

/// The pid of the test process that made a cluster, from its directory's
/// name (`shakedown-fake-PID-...`).
fn maker(name: &str) -> Option<i32> {
    name.strip_prefix("shakedown-fake-")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// What fake clusters of test processes that are gone left behind (a
/// process killed before its drops ran): their processes and directories.
pub(super) fn sweep_stale() {
    let tmp = std::env::temp_dir();
    let gone = |pid: i32| !Path::new(&format!("/proc/{pid}")).exists();
    let prefix = format!("{MARKER}={}/", tmp.display());
    let stale = marked_where(|kv| {
        std::str::from_utf8(kv)
            .ok()
            .and_then(|kv| kv.strip_prefix(&prefix))
            .and_then(maker)
            .is_some_and(gone)
    });
    for pid in stale {
        // SAFETY: kill(2) of a process a fake cluster started, whose test
        // process is gone.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    if let Ok(dir) = std::fs::read_dir(&tmp) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if maker(&name).is_some_and(gone) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
