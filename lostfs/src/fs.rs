//! The FUSE filesystem: a pass-through to a backing directory that remembers,
//! until the next fsync, how to undo every change.
//!
//! Design (write-through with undo logs):
//! - Every operation reaches the backing directory at once, so reads, mmap and
//!   the kernel's page cache behave as on the plain directory.
//! - Data: per file, a [`FileUndo`] saves the synced bytes a write or truncate
//!   overwrites and the size at the last fsync; fsync/fdatasync (or a write on
//!   an `O_SYNC`/`O_DSYNC` handle) drops it.
//! - Names: creating, linking, removing and renaming are logged; removed files
//!   and directories are moved into a hidden graveyard in the backing root
//!   instead of being deleted, so they can be put back. Metadata follows
//!   ext4's journal: any fsync or fsyncdir makes every earlier name change
//!   durable (ext4 commits one journal for the whole filesystem).
//! - `crash` writes the saved bytes back, truncates each file to its synced
//!   size, undoes the name changes newest first, empties the graveyard, and
//!   tells the kernel to forget its cached pages and names.
//!
//! Inodes are held as `O_PATH` descriptors (as libfuse's passthrough_ll does),
//! so renames never leave a stale path behind.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileExt, FileTypeExt};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::undo::FileUndo;

/// The hidden directory in the backing root that holds removed entries until
/// the next sync makes their removal durable.
pub const GRAVEYARD: &str = ".lostfs-graveyard";

const TTL: Duration = Duration::from_secs(1);

/// Unsynced name changes kept at most (about 100 bytes each).
const MAX_NAMES: usize = 1 << 20;

/// What `status` reports: how much a crash would lose now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Files written, truncated or extended since their last fsync.
    pub unsynced_files: u64,
    /// Bytes past the synced sizes: lost by a crash.
    pub unsynced_appended_bytes: u64,
    /// Overwritten synced bytes held in memory to be put back.
    pub undo_bytes: u64,
    /// Name changes (create, remove, rename, link) not yet durable.
    pub unsynced_names: u64,
    /// Writes refused because the undo log would have passed its cap.
    pub refused_writes: u64,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unsynced_files={} unsynced_bytes={} undo_bytes={} unsynced_names={} refused_writes={}",
            self.unsynced_files,
            self.unsynced_appended_bytes + self.undo_bytes,
            self.undo_bytes,
            self.unsynced_names,
            self.refused_writes
        )
    }
}

struct Inode {
    /// Shared with the name log, so logging a change costs no descriptor.
    fd: Arc<OwnedFd>,
    lookups: u64,
    key: (u64, u64),
}

struct Dirty {
    /// Read-write descriptor of the backing file, for saving and restoring.
    file: File,
    undo: FileUndo,
    /// When the first unsynced change came (for `--writeback-secs`).
    since: Instant,
}

/// One name change, with what undoing it needs. Directory descriptors are
/// `O_PATH` duplicates, so they stay right when a parent is renamed later.
enum NameOp {
    Created {
        dir: Arc<OwnedFd>,
        name: CString,
        is_dir: bool,
        fuse_parent: u64,
    },
    Moved {
        from_dir: Arc<OwnedFd>,
        from: CString,
        to_dir: Arc<OwnedFd>,
        to: CString,
        fuse_parents: [Option<u64>; 2],
    },
    Exchanged {
        a_dir: Arc<OwnedFd>,
        a: CString,
        b_dir: Arc<OwnedFd>,
        b: CString,
        fuse_parents: [u64; 2],
    },
}

struct State {
    inodes: HashMap<u64, Inode>,
    by_key: HashMap<(u64, u64), u64>,
    next_ino: u64,
    /// Unsynced files by their backing identity (device, inode), not by
    /// FUSE inode number: the kernel may forget an inode while its file is
    /// unsynced, and a later lookup gives the same file a new number; its
    /// fsync must still find (and clear) the undo log kept so far.
    dirty: HashMap<(u64, u64), Dirty>,
    /// Unsynced name changes, oldest first, with when they happened.
    names: Vec<(Instant, NameOp)>,
    graveyard: Arc<OwnedFd>,
    graveyard_seq: u64,
    undo_bytes: u64,
    refused_writes: u64,
}

struct Handle {
    file: File,
    sync_writes: bool,
}

struct DirHandle {
    entries: Vec<(u64, FileType, OsString)>,
}

/// Options of one mount.
#[derive(Debug, Clone)]
pub struct Options {
    /// Cap on the overwritten synced bytes held in memory; a write that would
    /// pass it fails with ENOSPC and a message on stderr.
    pub max_undo_bytes: u64,
    /// None: nothing becomes durable without a sync (LazyFS' worst case).
    /// Some(age): changes older than `age` become durable on their own, as
    /// the kernel's writeback (30 s) and ext4's journal commit (5 s) make them.
    pub writeback: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_undo_bytes: 1 << 30,
            writeback: None,
        }
    }
}

/// The filesystem, shared between the FUSE session and the control channel.
pub struct LostFs {
    state: Mutex<State>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    next_fh: std::sync::atomic::AtomicU64,
    notifier: OnceLock<Notifier>,
    options: Options,
}

/// A poisoned lock still guards consistent state: every change under it is
/// a single step that either happened or did not.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn cstr(name: &OsStr) -> Result<CString, Errno> {
    CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn owned(ret: libc::c_int) -> io::Result<OwnedFd> {
    check(ret)?;
    // SAFETY: the call returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

const EMPTY: &std::ffi::CStr = c"";

fn stat_fd(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain old data; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe {
        libc::fstatat(
            fd,
            EMPTY.as_ptr(),
            &mut st,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

fn stat_at(dir: RawFd, name: &CString) -> io::Result<libc::stat> {
    // SAFETY: as in stat_fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

fn open_path_at(dir: RawFd, name: &CString) -> io::Result<OwnedFd> {
    owned(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

/// Opens the file an `O_PATH` descriptor names, with real access.
fn reopen(fd: RawFd, flags: i32) -> io::Result<File> {
    let path = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    let fd = owned(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    Ok(File::from(fd))
}

fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nsecs as u64)
    }
}

fn attr(ino: u64, st: &libc::stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: UNIX_EPOCH,
        kind: kind_of(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            libc::timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos() as i64,
            }
        }
    }
}

/// The checks rmdir, unlink and rename-over make before an entry `st` at
/// `dir/name` goes away: the kinds match (`as_dir`: a directory is expected)
/// and a directory is empty. Needed because the entry is moved to the
/// graveyard, which the kernel would allow in every case.
fn removable(dir: RawFd, name: &CString, st: &libc::stat, as_dir: bool) -> Result<(), Errno> {
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    match (as_dir, is_dir) {
        (true, false) => return Err(Errno::ENOTDIR),
        (false, true) => return Err(Errno::EISDIR),
        _ => {}
    }
    if is_dir {
        let fd = open_path_at(dir, name)?;
        let mut entries = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        if entries.next().is_some() {
            return Err(Errno::ENOTEMPTY);
        }
    }
    Ok(())
}

/// Removes everything under a directory descriptor (the graveyard).
fn empty_dir(dir: RawFd) -> io::Result<()> {
    let path = format!("/proc/self/fd/{dir}");
    for entry in std::fs::read_dir(&path)? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

impl State {
    fn fd(&self, ino: INodeNo) -> Result<RawFd, Errno> {
        self.inodes
            .get(&ino.0)
            .map(|i| i.fd.as_raw_fd())
            .ok_or(Errno::ESTALE)
    }

    fn dir_fd(&self, ino: INodeNo) -> Result<Arc<OwnedFd>, Errno> {
        self.inodes
            .get(&ino.0)
            .map(|i| i.fd.clone())
            .ok_or(Errno::ESTALE)
    }

    /// Refuses a name change the log has no room for (a system that never
    /// syncs would otherwise grow it without bound).
    fn names_room(&mut self) -> Result<(), Errno> {
        if self.names.len() < MAX_NAMES {
            return Ok(());
        }
        self.refused_writes += 1;
        eprintln!(
            "shakedown-lostfs: refusing a name change (ENOSPC): {MAX_NAMES} name changes \
             are unsynced; the system must fsync a file or directory"
        );
        Err(Errno::ENOSPC)
    }

    /// Registers one more kernel reference to the backing inode `fd` names.
    fn intern(&mut self, fd: OwnedFd, st: &libc::stat) -> u64 {
        let key = (st.st_dev, st.st_ino);
        if let Some(&ino) = self.by_key.get(&key) {
            if let Some(i) = self.inodes.get_mut(&ino) {
                i.lookups += 1;
                return ino;
            }
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.by_key.insert(key, ino);
        self.inodes.insert(
            ino,
            Inode {
                fd: Arc::new(fd),
                lookups: 1,
                key,
            },
        );
        ino
    }

    fn entry(&mut self, dir: RawFd, name: &CString) -> Result<FileAttr, Errno> {
        let fd = open_path_at(dir, name)?;
        let st = stat_fd(fd.as_raw_fd())?;
        let ino = self.intern(fd, &st);
        Ok(attr(ino, &st))
    }

    fn graveyard_name(&mut self) -> CString {
        self.graveyard_seq += 1;
        CString::new(format!("{}", self.graveyard_seq)).expect("no NUL")
    }

    /// Starts tracking `ino` before its first unsynced change.
    fn dirty(&mut self, ino: u64) -> io::Result<&mut Dirty> {
        let inode = self
            .inodes
            .get(&ino)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESTALE))?;
        let (key, fd) = (inode.key, inode.fd.as_raw_fd());
        match self.dirty.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let file = reopen(fd, libc::O_RDWR)?;
                let size = file.metadata()?.len();
                Ok(e.insert(Dirty {
                    file,
                    undo: FileUndo::new(size),
                    since: Instant::now(),
                }))
            }
        }
    }

    /// Saves the synced bytes of `[offset, offset + len)` of `ino` before they change.
    fn save_range(&mut self, ino: u64, offset: u64, len: u64, cap: u64) -> Result<(), Errno> {
        let used = self.undo_bytes;
        let d = self.dirty(ino)?;
        let missing = d.undo.missing(offset, len);
        let need: u64 = missing.iter().map(|&(_, l)| l).sum();
        if used + need > cap {
            self.refused_writes += 1;
            eprintln!(
                "shakedown-lostfs: refusing a write (ENOSPC): the undo log would hold {} bytes, \
                 over --max-undo-bytes {cap}; the system must fsync more often or the cap be raised",
                used + need
            );
            return Err(Errno::ENOSPC);
        }
        for (off, l) in missing {
            let mut buf = vec![0u8; l as usize];
            let n = d.file.read_at(&mut buf, off)?;
            buf.truncate(n);
            d.undo.save(off, buf);
        }
        self.undo_bytes += need;
        Ok(())
    }

    /// fsync of `ino`: its data is durable, and (ext4's single journal) so is
    /// every earlier name change.
    fn sync_file(&mut self, ino: u64) -> io::Result<()> {
        let key = self.inodes.get(&ino).map(|i| i.key);
        if let Some(d) = key.and_then(|k| self.dirty.remove(&k)) {
            self.undo_bytes -= d.undo.saved_bytes();
        }
        self.sync_names()
    }

    fn sync_names(&mut self) -> io::Result<()> {
        let had_removals = self.names.iter().map(|(_, op)| op).any(
            |op| matches!(op, NameOp::Moved { to_dir, .. } if Arc::ptr_eq(to_dir, &self.graveyard)),
        );
        self.names.clear();
        if had_removals {
            empty_dir(self.graveyard.as_raw_fd())?;
        }
        Ok(())
    }

    fn log_name(&mut self, op: NameOp) {
        self.names.push((Instant::now(), op));
    }

    /// What the kernel's periodic writeback and journal commits would have
    /// made durable by now: files whose first unsynced change is older than
    /// `age` (whole files: an approximation of page-by-page writeback) and
    /// name changes older than `age`.
    fn write_back(&mut self, age: Duration) -> io::Result<()> {
        let old: Vec<(u64, u64)> = self
            .dirty
            .iter()
            .filter(|(_, d)| d.since.elapsed() >= age)
            .map(|(&ino, _)| ino)
            .collect();
        for ino in old {
            if let Some(d) = self.dirty.remove(&ino) {
                self.undo_bytes -= d.undo.saved_bytes();
            }
        }
        let n = self
            .names
            .iter()
            .take_while(|(t, _)| t.elapsed() >= age)
            .count();
        for (_, op) in self.names.drain(..n) {
            if let NameOp::Moved { to_dir, to, .. } = op {
                if Arc::ptr_eq(&to_dir, &self.graveyard) {
                    let p = Path::new(&format!("/proc/self/fd/{}", to_dir.as_raw_fd()))
                        .join(OsStr::from_bytes(to.as_bytes()));
                    match std::fs::symlink_metadata(&p) {
                        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p)?,
                        Ok(_) => std::fs::remove_file(&p)?,
                        Err(_) => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.dirty.clear();
        self.undo_bytes = 0;
        self.sync_names()
    }

    fn status(&self) -> Status {
        let appended = self
            .dirty
            .values()
            .map(|d| {
                let size = d.file.metadata().map(|m| m.len()).unwrap_or(0);
                size.saturating_sub(d.undo.synced_size())
            })
            .sum();
        Status {
            unsynced_files: self.dirty.len() as u64,
            unsynced_appended_bytes: appended,
            undo_bytes: self.undo_bytes,
            unsynced_names: self.names.len() as u64,
            refused_writes: self.refused_writes,
        }
    }
}

/// What the kernel must forget after a crash.
struct Invalidate {
    inodes: Vec<u64>,
    entries: Vec<(u64, OsString)>,
}

impl LostFs {
    /// A filesystem over `backing`, an existing directory. Empties the
    /// graveyard a previous mount may have left: whatever it held was removed
    /// by a process whose undo log is gone, so the removal stands.
    pub fn new(backing: &Path, options: Options) -> io::Result<Self> {
        let root_c = CString::new(backing.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        let root = owned(unsafe {
            libc::open(
                root_c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        let grave_c = CString::new(GRAVEYARD).expect("no NUL");
        match check(unsafe { libc::mkdirat(root.as_raw_fd(), grave_c.as_ptr(), 0o700) }) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
            _ => {}
        }
        let graveyard = owned(unsafe {
            libc::openat(
                root.as_raw_fd(),
                grave_c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        empty_dir(graveyard.as_raw_fd())?;
        let st = stat_fd(root.as_raw_fd())?;
        let key = (st.st_dev, st.st_ino);
        let mut inodes = HashMap::new();
        inodes.insert(
            1,
            Inode {
                fd: Arc::new(root),
                lookups: 1,
                key,
            },
        );
        let state = State {
            inodes,
            by_key: HashMap::from([(key, 1)]),
            next_ino: 2,
            dirty: HashMap::new(),
            names: Vec::new(),
            graveyard: Arc::new(graveyard),
            graveyard_seq: 0,
            undo_bytes: 0,
            refused_writes: 0,
        };
        Ok(LostFs {
            state: Mutex::new(state),
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: std::sync::atomic::AtomicU64::new(1),
            notifier: OnceLock::new(),
            options,
        })
    }

    /// Gives the filesystem the session's notifier, so `crash` can drop the
    /// kernel's cached pages and names.
    pub fn set_notifier(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn new_fh(&self) -> u64 {
        self.next_fh
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<Handle>, Errno> {
        lock(&self.handles).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    /// What a crash would lose now.
    pub fn status(&self) -> Status {
        self.state().status()
    }

    /// The options it was mounted with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Makes durable what is older than `options.writeback`, if set; the
    /// mount calls this four times a second.
    pub fn write_back(&self) -> io::Result<()> {
        match self.options.writeback {
            Some(age) => self.state().write_back(age),
            None => Ok(()),
        }
    }

    /// Makes everything durable, as `sync` followed by a clean shutdown would.
    pub fn flush(&self) -> io::Result<()> {
        self.state().sync_all()
    }

    /// Drops every unsynced change: afterwards the backing directory holds what
    /// was synced, as after a power cut and a reboot. The processes using the
    /// mount should be dead first (a power cut kills them too).
    pub fn crash(&self) -> io::Result<Status> {
        let (before, inval, result) = {
            let mut s = self.state();
            let before = s.status();
            let mut inval = Invalidate {
                // Every inode the kernel knows is invalidated below.
                inodes: Vec::new(),
                entries: Vec::new(),
            };
            let result = Self::undo_all(&mut s, &mut inval);
            s.dirty.clear();
            s.undo_bytes = 0;
            (before, inval, result)
        };
        // Outside the lock: the kernel may call back into the filesystem.
        if let Some(n) = self.notifier.get() {
            for ino in inval.inodes {
                let _ = n.inval_inode(INodeNo(ino), 0, -1);
            }
            for (parent, name) in inval.entries {
                let _ = n.inval_entry(INodeNo(parent), &name);
            }
        }
        result.map(|()| before)
    }

    fn undo_all(s: &mut State, inval: &mut Invalidate) -> io::Result<()> {
        let mut first_error = None;
        for d in s.dirty.values() {
            let r = d.file.set_len(d.undo.synced_size()).and_then(|()| {
                d.undo
                    .saved()
                    .try_for_each(|(o, b)| d.file.write_all_at(b, o))
            });
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        let names = std::mem::take(&mut s.names);
        for (_, op) in names.into_iter().rev() {
            let r = match &op {
                NameOp::Created {
                    dir,
                    name,
                    is_dir,
                    fuse_parent,
                } => {
                    inval
                        .entries
                        .push((*fuse_parent, OsStr::from_bytes(name.as_bytes()).into()));
                    let flags = if *is_dir { libc::AT_REMOVEDIR } else { 0 };
                    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })
                }
                NameOp::Moved {
                    from_dir,
                    from,
                    to_dir,
                    to,
                    fuse_parents,
                } => {
                    for (p, n) in fuse_parents.iter().zip([from, to]) {
                        if let Some(p) = p {
                            inval
                                .entries
                                .push((*p, OsStr::from_bytes(n.as_bytes()).into()));
                        }
                    }
                    check(unsafe {
                        libc::renameat(
                            to_dir.as_raw_fd(),
                            to.as_ptr(),
                            from_dir.as_raw_fd(),
                            from.as_ptr(),
                        )
                    })
                }
                NameOp::Exchanged {
                    a_dir,
                    a,
                    b_dir,
                    b,
                    fuse_parents,
                } => {
                    inval
                        .entries
                        .push((fuse_parents[0], OsStr::from_bytes(a.as_bytes()).into()));
                    inval
                        .entries
                        .push((fuse_parents[1], OsStr::from_bytes(b.as_bytes()).into()));
                    check(unsafe {
                        libc::renameat2(
                            a_dir.as_raw_fd(),
                            a.as_ptr(),
                            b_dir.as_raw_fd(),
                            b.as_ptr(),
                            libc::RENAME_EXCHANGE,
                        )
                    })
                }
            };
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = empty_dir(s.graveyard.as_raw_fd()) {
            first_error.get_or_insert(e);
        }
        // The kernel may hold any inode's attributes (sizes, link counts).
        inval.inodes.extend(s.inodes.keys().copied());
        inval.inodes.sort_unstable();
        inval.inodes.dedup();
        first_error.map_or(Ok(()), Err)
    }

    /// Creates an entry with `make(dir, name)`, gives it to the caller and logs it.
    fn create_entry(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        is_dir: bool,
        make: impl FnOnce(RawFd, &CString) -> io::Result<()>,
    ) -> Result<FileAttr, Errno> {
        let name = cstr(name)?;
        let mut s = self.state();
        s.names_room()?;
        let dir = s.fd(parent)?;
        if parent == INodeNo::ROOT && name.as_bytes() == GRAVEYARD.as_bytes() {
            return Err(Errno::EPERM);
        }
        make(dir, &name)?;
        unsafe {
            libc::fchownat(
                dir,
                name.as_ptr(),
                req.uid(),
                req.gid(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        let dup = s.dir_fd(parent)?;
        s.log_name(NameOp::Created {
            dir: dup,
            name: name.clone(),
            is_dir,
            fuse_parent: parent.0,
        });
        s.entry(dir, &name)
    }

    /// Moves `dir/name` into the graveyard (an unlink or rmdir that can be undone).
    fn bury(s: &mut State, parent: INodeNo, dir: RawFd, name: &CString) -> Result<(), Errno> {
        s.names_room()?;
        let grave = s.graveyard_name();
        check(unsafe {
            libc::renameat(dir, name.as_ptr(), s.graveyard.as_raw_fd(), grave.as_ptr())
        })?;
        let dup = s.dir_fd(parent)?;
        let to_dir = s.graveyard.clone();
        s.log_name(NameOp::Moved {
            from_dir: dup,
            from: name.clone(),
            to_dir,
            to: grave,
            fuse_parents: [Some(parent.0), None],
        });
        Ok(())
    }

    fn remove(&self, parent: INodeNo, name: &OsStr, is_dir: bool) -> Result<(), Errno> {
        let name = cstr(name)?;
        let mut s = self.state();
        let dir = s.fd(parent)?;
        removable(dir, &name, &stat_at(dir, &name)?, is_dir)?;
        Self::bury(&mut s, parent, dir, &name)
    }

    fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: u32,
    ) -> Result<(), Errno> {
        let from = cstr(name)?;
        let to = cstr(newname)?;
        let mut s = self.state();
        s.names_room()?;
        let from_dir = s.fd(parent)?;
        let to_dir = s.fd(newparent)?;
        if newparent == INodeNo::ROOT && to.as_bytes() == GRAVEYARD.as_bytes() {
            return Err(Errno::EPERM);
        }
        if flags & libc::RENAME_EXCHANGE != 0 {
            check(unsafe {
                libc::renameat2(
                    from_dir,
                    from.as_ptr(),
                    to_dir,
                    to.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            })?;
            let (a_dir, b_dir) = (s.dir_fd(parent)?, s.dir_fd(newparent)?);
            s.log_name(NameOp::Exchanged {
                a_dir,
                a: from,
                b_dir,
                b: to,
                fuse_parents: [parent.0, newparent.0],
            });
            return Ok(());
        }
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(Errno::EINVAL);
        }
        let src = stat_at(from_dir, &from)?;
        match stat_at(to_dir, &to) {
            Ok(dst) => {
                if flags & libc::RENAME_NOREPLACE != 0 {
                    return Err(Errno::EEXIST);
                }
                if (src.st_dev, src.st_ino) == (dst.st_dev, dst.st_ino) {
                    return Ok(()); // POSIX: renaming a link onto itself does nothing
                }
                let src_dir = src.st_mode & libc::S_IFMT == libc::S_IFDIR;
                removable(to_dir, &to, &dst, src_dir)?;
                // The replaced entry goes to the graveyard so a crash can restore it.
                Self::bury(&mut s, newparent, to_dir, &to)?;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        check(unsafe { libc::renameat(from_dir, from.as_ptr(), to_dir, to.as_ptr()) })?;
        let (fd_from, fd_to) = (s.dir_fd(parent)?, s.dir_fd(newparent)?);
        s.log_name(NameOp::Moved {
            from_dir: fd_from,
            from,
            to_dir: fd_to,
            to,
            fuse_parents: [Some(parent.0), Some(newparent.0)],
        });
        Ok(())
    }

    fn open_handle(&self, ino: INodeNo, flags: i32) -> Result<u64, Errno> {
        let fd = self.state().fd(ino)?;
        // Offsets come from the kernel: O_APPEND on the backing file would
        // ignore them. Durability is ours to model, so O_SYNC goes too.
        let strip = libc::O_APPEND
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_TRUNC
            | libc::O_NOCTTY
            | libc::O_DIRECT
            | libc::O_SYNC
            | libc::O_DSYNC;
        let file = reopen(fd, flags & !strip)?;
        let fh = self.new_fh();
        let handle = Handle {
            file,
            sync_writes: flags & (libc::O_SYNC | libc::O_DSYNC) != 0,
        };
        lock(&self.handles).insert(fh, Arc::new(handle));
        Ok(fh)
    }

    #[allow(clippy::too_many_arguments)] // the fields of FUSE setattr
    fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<FileAttr, Errno> {
        let mut s = self.state();
        let fd = s.fd(ino)?;
        let path = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
        if let Some(size) = size {
            let d = s.dirty(ino.0)?;
            let cur = d.file.metadata()?.len();
            if size < cur {
                s.save_range(ino.0, size, cur - size, self.options.max_undo_bytes)?;
            }
            s.dirty(ino.0)?.file.set_len(size)?;
        }
        if let Some(mode) = mode {
            check(unsafe { libc::chmod(path.as_ptr(), mode & 0o7777) })?;
        }
        if uid.is_some() || gid.is_some() {
            check(unsafe {
                libc::fchownat(
                    fd,
                    EMPTY.as_ptr(),
                    uid.unwrap_or(u32::MAX),
                    gid.unwrap_or(u32::MAX),
                    libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                )
            })?;
        }
        if atime.is_some() || mtime.is_some() {
            let times = [timespec(atime), timespec(mtime)];
            let st = stat_fd(fd)?;
            // utimensat on a /proc path follows symlinks; a symlink's times stay.
            if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                check(unsafe {
                    libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0)
                })?;
            }
        }
        Ok(attr(ino.0, &stat_fd(fd)?))
    }
}

fn reply_entry(reply: ReplyEntry, r: Result<FileAttr, Errno>) {
    match r {
        Ok(a) => reply.entry(&TTL, &a, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

/// The FUSE face of a [`LostFs`] (the control channel holds another `Arc`).
pub struct Fuse(pub Arc<LostFs>);

impl std::ops::Deref for Fuse {
    type Target = LostFs;
    fn deref(&self) -> &LostFs {
        &self.0
    }
}

impl Filesystem for Fuse {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = (|| {
            if parent == INodeNo::ROOT && name.as_bytes() == GRAVEYARD.as_bytes() {
                return Err(Errno::ENOENT);
            }
            let name = cstr(name)?;
            let mut s = self.state();
            let dir = s.fd(parent)?;
            s.entry(dir, &name)
        })();
        reply_entry(reply, r);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        if ino == INodeNo::ROOT {
            return;
        }
        let mut s = self.state();
        let gone = match s.inodes.get_mut(&ino.0) {
            Some(i) => {
                i.lookups = i.lookups.saturating_sub(nlookup);
                (i.lookups == 0).then_some(i.key)
            }
            None => None,
        };
        if let Some(key) = gone {
            s.inodes.remove(&ino.0);
            s.by_key.remove(&key);
            // An unsynced file the kernel forgot still needs its undo log:
            // keep the dirty entry (it holds its own descriptor).
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = (|| {
            let fd = self.state().fd(ino)?;
            Ok::<_, Errno>(attr(ino.0, &stat_fd(fd)?))
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.do_setattr(ino, mode, uid, gid, size, atime, mtime) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = (|| {
            let fd = self.state().fd(ino)?;
            let mut buf = vec![0u8; libc::PATH_MAX as usize];
            let n =
                unsafe { libc::readlinkat(fd, EMPTY.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                return Err(Errno::from(io::Error::last_os_error()));
            }
            buf.truncate(n as usize);
            Ok(buf)
        })();
        match r {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = self.create_entry(req, parent, name, false, |dir, n| {
            check(unsafe { libc::mknodat(dir, n.as_ptr(), mode & !umask, rdev as libc::dev_t) })
        });
        reply_entry(reply, r);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.create_entry(req, parent, name, true, |dir, n| {
            check(unsafe { libc::mkdirat(dir, n.as_ptr(), mode & !umask & 0o7777) })
        });
        reply_entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.remove(parent, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.remove(parent, name, true));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = cstr(target.as_os_str()).and_then(|t| {
            self.create_entry(req, parent, link_name, false, |dir, n| {
                check(unsafe { libc::symlinkat(t.as_ptr(), dir, n.as_ptr()) })
            })
        });
        reply_entry(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            self.do_rename(parent, name, newparent, newname, flags.bits()),
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            let name = cstr(newname)?;
            let mut s = self.state();
            s.names_room()?;
            let src = s.fd(ino)?;
            let dir = s.fd(newparent)?;
            check(unsafe {
                libc::linkat(src, EMPTY.as_ptr(), dir, name.as_ptr(), libc::AT_EMPTY_PATH)
            })?;
            let dup = s.dir_fd(newparent)?;
            s.log_name(NameOp::Created {
                dir: dup,
                name: name.clone(),
                is_dir: false,
                fuse_parent: newparent.0,
            });
            s.entry(dir, &name)
        })();
        reply_entry(reply, r);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.open_handle(ino, flags.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self
            .create_entry(req, parent, name, false, |dir, n| {
                let fd = owned(unsafe {
                    libc::openat(
                        dir,
                        n.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                        mode & !umask & 0o7777,
                    )
                })?;
                drop(fd);
                Ok(())
            })
            .or_else(|e| {
                // A name the kernel thought absent (its cache was stale): an
                // open without O_EXCL opens the existing file, which is no new name.
                if e != Errno::EEXIST || flags & libc::O_EXCL != 0 {
                    return Err(e);
                }
                let name = cstr(name)?;
                let mut s = self.state();
                let dir = s.fd(parent)?;
                s.entry(dir, &name)
            })
            .and_then(|a| Ok((a, self.open_handle(a.ino, flags)?)));
        match r {
            Ok((a, fh)) => {
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = (|| {
            let h = self.handle(fh)?;
            let mut buf = vec![0u8; size as usize];
            let mut done = 0;
            while done < buf.len() {
                match h.file.read_at(&mut buf[done..], offset + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Errno::from(e)),
                }
            }
            buf.truncate(done);
            Ok(buf)
        })();
        match r {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = (|| {
            let h = self.handle(fh)?;
            let mut s = self.state();
            s.save_range(
                ino.0,
                offset,
                data.len() as u64,
                self.options.max_undo_bytes,
            )?;
            h.file.write_all_at(data, offset)?;
            if h.sync_writes {
                s.sync_file(ino.0)?;
            }
            Ok::<_, Errno>(data.len() as u32)
        })();
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            // Marked durable first, under the lock: a write that comes in
            // while the backing fsync runs is after this fsync and stays
            // unsynced. The backing fsync keeps the timing of a real disk.
            self.state().sync_file(ino.0)?;
            let h = self.handle(fh)?;
            if datasync {
                h.file.sync_data()?;
            } else {
                h.file.sync_all()?;
            }
            Ok(())
        })();
        reply_empty(reply, r);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let r = (|| {
            let fd = self.state().fd(ino)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, OsString::from(".")),
                (ino.0, FileType::Directory, OsString::from("..")),
            ];
            for e in std::fs::read_dir(format!("/proc/self/fd/{fd}"))? {
                let e = e?;
                let name = e.file_name();
                if ino == INodeNo::ROOT && name.as_bytes() == GRAVEYARD.as_bytes() {
                    continue;
                }
                let ft = e.file_type()?;
                let kind = if ft.is_dir() {
                    FileType::Directory
                } else if ft.is_symlink() {
                    FileType::Symlink
                } else if ft.is_fifo() {
                    FileType::NamedPipe
                } else if ft.is_socket() {
                    FileType::Socket
                } else if ft.is_char_device() {
                    FileType::CharDevice
                } else if ft.is_block_device() {
                    FileType::BlockDevice
                } else {
                    FileType::RegularFile
                };
                // The kernel does not use readdir's inode numbers for lookups.
                entries.push((e.ino().max(2), kind, name));
            }
            let fh = self.new_fh();
            lock(&self.dirs).insert(fh, Arc::new(DirHandle { entries }));
            Ok::<_, Errno>(fh)
        })();
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dir = self
            .dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned();
        let Some(dir) = dir else {
            return reply.error(Errno::EBADF);
        };
        for (i, (ino, kind, name)) in dir.entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.dirs).remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            let fd = {
                let mut s = self.state();
                s.sync_names()?;
                s.fd(ino)?
            };
            reopen(fd, libc::O_RDONLY | libc::O_DIRECTORY)?.sync_all()?;
            Ok(())
        })();
        reply_empty(reply, r);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let fd = match self.state().fd(INodeNo::ROOT) {
            Ok(fd) => fd,
            Err(e) => return reply.error(e),
        };
        // SAFETY: statvfs is plain old data; fstatvfs fills it.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if let Err(e) = check(unsafe { libc::fstatvfs(fd, &mut st) }) {
            return reply.error(e.into());
        }
        reply.statfs(
            st.f_blocks,
            st.f_bfree,
            st.f_bavail,
            st.f_files,
            st.f_ffree,
            st.f_bsize as u32,
            st.f_namemax as u32,
            st.f_frsize as u32,
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            let h = self.handle(fh)?;
            let mut s = self.state();
            let changes_bytes =
                mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0;
            if mode & (libc::FALLOC_FL_COLLAPSE_RANGE | libc::FALLOC_FL_INSERT_RANGE) != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            if changes_bytes {
                s.save_range(ino.0, offset, length, self.options.max_undo_bytes)?;
            } else {
                // The size may grow: remember the synced one.
                s.dirty(ino.0)?;
            }
            check(unsafe {
                libc::fallocate(h.file.as_raw_fd(), mode, offset as i64, length as i64)
            })?;
            Ok(())
        })();
        reply_empty(reply, r);
    }
}
