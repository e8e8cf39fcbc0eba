//! lostfs: a FUSE pass-through filesystem that keeps, until the next fsync,
//! what it needs to undo every write, and drops it all on `crash`, leaving
//! the backing directory as a power cut would (Jepsen's LazyFS idea, our own
//! code). shakedown's `lost-writes` nemesis mounts a node's data directory
//! through it, kills the node's processes and sends `crash`.
//!
//! ```no_run
//! use std::path::Path;
//! // Foreground: serves until the mountpoint is unmounted.
//! lostfs::mount(Path::new("/var/lib/db.real"), Path::new("/var/lib/db"),
//!               Path::new("/run/lostfs.sock"), lostfs::Options::default()).unwrap();
//! // Elsewhere: lostfs::control(Path::new("/run/lostfs.sock"), "crash");
//! ```
//!
//! What counts as durable: a file's bytes and size after fsync or fdatasync
//! of it (or a write through an `O_SYNC`/`O_DSYNC` descriptor); name changes
//! (create, unlink, rename, mkdir, rmdir, link, symlink) after any fsync or
//! fsyncdir, as ext4's single journal makes them. Not modelled: `sync_file_range`
//! and `sync`/`syncfs` (the kernel does not pass them to FUSE, so they make
//! nothing durable), mode, owner and time changes (kept), torn writes within
//! one write call. By default nothing becomes durable without a sync (LazyFS'
//! worst case); `--writeback-secs S` lets changes older than S seconds
//! become durable as the kernel's writeback would.
//!
//! A power cut with it, as the nemesis does it (root on the node):
//! 1. before the system's setup: `shakedown-lostfs mount DATA.real DATA
//!    --control SOCK &` (foreground daemon; DATA.real an empty directory on
//!    the same disk), wait until DATA is a mount point;
//! 2. the fault: SIGKILL every process of the system on the node, then
//!    `shakedown-lostfs ctl SOCK crash` (prints what was dropped);
//! 3. the heal: start the system again on DATA;
//! 4. teardown: `shakedown-lostfs unmount DATA` (lazy, idempotent; the
//!    daemon then exits by itself; also cleans a mount whose daemon died).

pub mod fs;
pub mod undo;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use fs::{LostFs, Options, Status};

/// Errors of mounting, controlling and unmounting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("backing directory {path}: {source}")]
    Backing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mount {path}: {source}")]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Control {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: {message}")]
    Refused { path: PathBuf, message: String },
    #[error("unmount {path}: {source}")]
    Unmount {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Mounts `backing` at `mountpoint` and serves until it is unmounted; the
/// control socket at `control` answers `crash`, `flush` and `status`.
pub fn mount(
    backing: &Path,
    mountpoint: &Path,
    control: &Path,
    options: Options,
) -> Result<(), Error> {
    let fs = Arc::new(
        LostFs::new(backing, options).map_err(|source| Error::Backing {
            path: backing.to_owned(),
            source,
        })?,
    );
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(format!("lostfs:{}", backing.display())),
        fuser::MountOption::Subtype("lostfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::Dev,
        fuser::MountOption::Suid,
    ];
    config.acl = fuser::SessionACL::All;
    config.n_threads = Some(4);
    let mount_err = |source| Error::Mount {
        path: mountpoint.to_owned(),
        source,
    };
    // Every open file, unsynced file and directory in use holds a descriptor.
    raise_fd_limit();
    // Modes come from the callers' create calls, already masked.
    unsafe { libc::umask(0) };
    let session =
        fuser::Session::new(fs::Fuse(fs.clone()), mountpoint, &config).map_err(mount_err)?;
    fs.set_notifier(session.notifier());
    let _ = std::fs::remove_file(control);
    let listener = UnixListener::bind(control).map_err(|source| Error::Control {
        path: control.to_owned(),
        source,
    })?;
    let control_fs = fs.clone();
    std::thread::Builder::new()
        .name("lostfs-control".into())
        .spawn(move || serve_control(listener, control_fs))
        .map_err(mount_err)?;
    if fs.options().writeback.is_some() {
        let wb = fs.clone();
        std::thread::Builder::new()
            .name("lostfs-writeback".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(250));
                if let Err(e) = wb.write_back() {
                    eprintln!("shakedown-lostfs: writeback: {e}");
                }
            })
            .map_err(mount_err)?;
    }
    let result = session.run().map_err(mount_err);
    let _ = std::fs::remove_file(control);
    result
}

fn raise_fd_limit() {
    // SAFETY: rlimit is plain old data filled by getrlimit.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < lim.rlim_max
    {
        lim.rlim_cur = lim.rlim_max;
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

fn serve_control(listener: UnixListener, fs: Arc<LostFs>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let mut line = String::new();
        let mut reader = BufReader::new(&conn);
        if reader.by_ref().take(256).read_line(&mut line).is_err() {
            continue;
        }
        let answer = match line.trim() {
            "status" => format!("ok {}", fs.status()),
            "flush" => match fs.flush() {
                Ok(()) => "ok flushed".into(),
                Err(e) => format!("error flush: {e}"),
            },
            "crash" => match fs.crash() {
                Ok(lost) => format!("ok crashed, dropped {lost}"),
                Err(e) => format!("error crash (some changes may survive): {e}"),
            },
            other => format!("error unknown command {other:?}: expected crash, flush or status"),
        };
        let _ = (&conn).write_all(format!("{answer}\n").as_bytes());
    }
}

/// Sends one command (`crash`, `flush`, `status`) and returns the answer
/// after `ok `; an `error` answer becomes [`Error::Refused`].
pub fn control(socket: &Path, command: &str) -> Result<String, Error> {
    let err = |source| Error::Control {
        path: socket.to_owned(),
        source,
    };
    let mut conn = UnixStream::connect(socket).map_err(err)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(err)?;
    conn.write_all(format!("{command}\n").as_bytes())
        .map_err(err)?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).map_err(err)?;
    let line = line.trim_end();
    match line.strip_prefix("ok") {
        Some(rest) => Ok(rest.trim_start().to_owned()),
        None => Err(Error::Refused {
            path: socket.to_owned(),
            message: if line.is_empty() {
                "no answer (is the filesystem still mounted?)".into()
            } else {
                line.to_owned()
            },
        }),
    }
}

/// Detaches the mount (a lazy unmount: it never waits for busy files or a
/// dead daemon). Returns false when nothing was mounted there, so cleanup can
/// run twice.
pub fn unmount(mountpoint: &Path) -> Result<bool, Error> {
    use std::os::unix::ffi::OsStrExt;
    let err = |source| Error::Unmount {
        path: mountpoint.to_owned(),
        source,
    };
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()).map_err(|_| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "NUL in path",
        ))
    })?;
    // SAFETY: c is a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(false),
        _ => Err(err(e)),
    }
}
