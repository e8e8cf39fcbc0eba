//! A real lostfs mount in a temporary directory, unmounted and its daemon
//! reaped when dropped, also when the test fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_shakedown-lostfs");

pub struct Mount {
    pub dir: tempfile::TempDir,
    pub backing: PathBuf,
    pub mnt: PathBuf,
    pub sock: PathBuf,
    child: Option<Child>,
}

pub fn is_mounted(p: &Path) -> bool {
    let want = p.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Polls `f` until it holds or `secs` pass.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

impl Mount {
    pub fn new() -> Mount {
        Self::with_args(&[])
    }

    pub fn with_args(extra: &[&str]) -> Mount {
        let dir = tempfile::tempdir().expect("tempdir");
        let backing = dir.path().join("backing");
        let mnt = dir.path().join("mnt");
        let sock = dir.path().join("control.sock");
        std::fs::create_dir(&backing).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        let child = Command::new(BIN)
            .arg("mount")
            .arg(&backing)
            .arg(&mnt)
            .arg("--control")
            .arg(&sock)
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("start shakedown-lostfs");
        let m = Mount {
            dir,
            backing,
            mnt,
            sock,
            child: Some(child),
        };
        let (mnt, sock) = (m.mnt.clone(), m.sock.clone());
        // `m` is the guard already: a failed assertion still unmounts.
        assert!(
            wait_for(10, || is_mounted(&mnt) && sock.exists()),
            "lostfs did not mount {}",
            mnt.display()
        );
        m
    }

    /// Kills the filesystem's daemon, leaving a dead mount behind.
    pub fn kill_daemon(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.child = None;
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn ctl(&self, cmd: &str) -> String {
        lostfs::control(&self.sock, cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = lostfs::unmount(&self.mnt);
        if let Some(mut child) = self.child.take() {
            let exited = wait_for(10, || matches!(child.try_wait(), Ok(Some(_))));
            if !exited {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

pub fn fsync(p: &Path) {
    std::fs::OpenOptions::new()
        .read(true)
        .open(p)
        .and_then(|f| f.sync_all())
        .unwrap_or_else(|e| panic!("fsync {}: {e}", p.display()));
}

pub fn write(p: &Path, data: &[u8], sync: bool) {
    use std::io::Write;
    let mut f = std::fs::File::create(p).unwrap();
    f.write_all(data).unwrap();
    if sync {
        f.sync_all().unwrap();
    }
}

pub fn append(p: &Path, data: &[u8], sync: bool) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
    f.write_all(data).unwrap();
    if sync {
        f.sync_data().unwrap();
    }
}

/// A test whose prerequisite (`why`) is missing calls this just before it
/// returns: it fails under the README's test command (`scripts/test` sets
/// SHAKEDOWN_STRICT_TESTS) or any CI, else says "skipped" on stderr. (The
/// same rule as `harness::testing::skip`; lostfs depends on no other crate.)
#[allow(dead_code)]
pub fn skip(why: &str) {
    let set = |v: &str| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false");
    if set("SHAKEDOWN_STRICT_TESTS") || set("CI") {
        panic!("cannot run: {why} (SHAKEDOWN_STRICT_TESTS or CI is set, so a skipped test is a failure)");
    }
    eprintln!("skipped: {why}");
}
