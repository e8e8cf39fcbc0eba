//! Real FUSE mounts: what survives `crash` is exactly what was synced.

mod common;

use common::{append, fsync, write, Mount};
use std::fs;
use std::os::unix::fs::FileExt;

fn read(m: &Mount, rel: &str) -> String {
    fs::read_to_string(m.path(rel)).unwrap_or_else(|e| format!("<{e}>"))
}

#[test]
fn a_write_without_fsync_is_lost_and_a_synced_one_stays() {
    let m = Mount::new();
    write(&m.path("aof"), b"SET a 1\n", true);
    append(&m.path("aof"), b"SET b 2\n", true);
    append(&m.path("aof"), b"SET c 3\n", false);
    assert_eq!(read(&m, "aof"), "SET a 1\nSET b 2\nSET c 3\n");
    let status = m.ctl("status");
    assert!(
        status.contains("unsynced_files=1 unsynced_bytes=8 "),
        "{status}"
    );
    // The command line the nemesis runs.
    let out = std::process::Command::new(common::BIN)
        .arg("ctl")
        .arg(&m.sock)
        .arg("crash")
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("crashed, dropped unsynced_files=1 unsynced_bytes=8 "),
        "{said}"
    );
    assert_eq!(read(&m, "aof"), "SET a 1\nSET b 2\n");
    assert_eq!(
        fs::read_to_string(m.backing.join("aof")).unwrap(),
        "SET a 1\nSET b 2\n"
    );
    assert!(m
        .ctl("status")
        .starts_with("unsynced_files=0 unsynced_bytes=0 "));
}

#[test]
fn overwritten_synced_bytes_come_back() {
    let m = Mount::new();
    write(&m.path("page"), &[b'a'; 8192], true);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.path("page"))
        .unwrap();
    f.write_all_at(&[b'b'; 100], 4000).unwrap();
    f.write_all_at(&[b'c'; 100], 4050).unwrap(); // overlaps the first: saved once
    f.write_all_at(&[b'd'; 10], 8190).unwrap(); // crosses the synced size
    drop(f);
    let status = m.ctl("status");
    assert!(status.contains("undo_bytes=152 "), "{status}");
    m.ctl("crash");
    assert_eq!(fs::read(m.path("page")).unwrap(), vec![b'a'; 8192]);
}

#[test]
fn fdatasync_makes_an_overwrite_durable() {
    let m = Mount::new();
    write(&m.path("f"), b"0123456789", true);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.path("f"))
        .unwrap();
    f.write_all_at(b"xy", 3).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b"zz", 0).unwrap();
    drop(f);
    m.ctl("crash");
    assert_eq!(read(&m, "f"), "012xy56789");
}

#[test]
fn o_dsync_writes_are_durable_at_once() {
    use std::os::unix::fs::OpenOptionsExt;
    let m = Mount::new();
    write(&m.path("wal"), b"", true);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_DSYNC)
        .open(m.path("wal"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"commit 1\n").unwrap();
    drop(f);
    m.ctl("crash");
    assert_eq!(read(&m, "wal"), "commit 1\n");
}

#[test]
fn truncate_is_undone_unless_synced() {
    let m = Mount::new();
    write(&m.path("t"), b"hello world", true);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.path("t"))
        .unwrap();
    f.set_len(5).unwrap();
    f.set_len(20).unwrap(); // extended with zeros over the old bytes
    drop(f);
    assert_eq!(fs::metadata(m.path("t")).unwrap().len(), 20);
    m.ctl("crash");
    assert_eq!(read(&m, "t"), "hello world");

    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.path("t"))
        .unwrap();
    f.set_len(5).unwrap();
    f.sync_all().unwrap();
    drop(f);
    m.ctl("crash");
    assert_eq!(read(&m, "t"), "hello");
}

// The atomic-replace idiom (write tmp, fsync, rename over, fsync dir): the
// rename is durable only after a sync, and the replaced file comes back.
#[test]
fn rename_over_a_file_is_durable_only_after_a_sync() {
    let m = Mount::new();
    write(&m.path("conf"), b"old", true);
    fs::create_dir(m.path("dir")).unwrap();
    fsync(&m.path("dir"));
    write(&m.path("conf.tmp"), b"new", true);
    fs::rename(m.path("conf.tmp"), m.path("conf")).unwrap();
    assert_eq!(read(&m, "conf"), "new");
    assert!(!m.path("conf.tmp").exists());
    m.ctl("crash");
    assert_eq!(read(&m, "conf"), "old");
    assert_eq!(read(&m, "conf.tmp"), "new");

    fs::rename(m.path("conf.tmp"), m.path("conf")).unwrap();
    fsync(&m.mnt); // fsyncdir of the parent
    m.ctl("crash");
    assert_eq!(read(&m, "conf"), "new");
    assert!(!m.path("conf.tmp").exists());
    // The replaced file is really gone, also from the hidden graveyard.
    let grave = m.backing.join(lostfs::fs::GRAVEYARD);
    assert_eq!(fs::read_dir(grave).unwrap().count(), 0);
}

#[test]
fn unlink_and_rmdir_are_undone_and_creates_removed() {
    let m = Mount::new();
    fs::create_dir_all(m.path("base/sub")).unwrap();
    write(&m.path("base/sub/keep"), b"synced", true);
    fs::remove_file(m.path("base/sub/keep")).unwrap();
    fs::remove_dir(m.path("base/sub")).unwrap();
    fs::create_dir(m.path("fresh")).unwrap();
    write(&m.path("fresh/file"), b"x", false);
    std::os::unix::fs::symlink("base", m.path("link")).unwrap();
    m.ctl("crash");
    assert_eq!(read(&m, "base/sub/keep"), "synced");
    assert!(!m.path("fresh").exists());
    assert!(fs::symlink_metadata(m.path("link")).is_err());
    let names: Vec<_> = fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["base".to_string()],
        "the graveyard stays hidden"
    );
}

// Names follow ext4's journal: the fsync of any file makes earlier creates
// durable (empty if their data was not synced); later ones vanish.
#[test]
fn many_files_keep_exactly_what_was_synced() {
    let m = Mount::new();
    fs::create_dir(m.path("d")).unwrap();
    for i in 0..200 {
        let sync = i % 2 == 0 && i < 150;
        write(
            &m.path(&format!("d/{i}")),
            format!("file {i}").as_bytes(),
            sync,
        );
    }
    m.ctl("crash");
    for i in 0..200 {
        let p = m.path(&format!("d/{i}"));
        let expect = match i {
            _ if i % 2 == 0 && i < 150 => Some(format!("file {i}")),
            _ if i < 148 => Some(String::new()),
            _ => None,
        };
        assert_eq!(fs::read_to_string(&p).ok(), expect, "file {i}");
    }
}

#[test]
fn flush_makes_everything_durable() {
    let m = Mount::new();
    write(&m.path("a"), b"one", false);
    fs::create_dir(m.path("d")).unwrap();
    m.ctl("flush");
    m.ctl("crash");
    assert_eq!(read(&m, "a"), "one");
    assert!(m.path("d").is_dir());
}

#[test]
fn the_undo_cap_refuses_writes_with_enospc() {
    let m = Mount::with_args(&["--max-undo-bytes", "1000"]);
    write(&m.path("big"), &[b'a'; 4096], true);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(m.path("big"))
        .unwrap();
    f.write_all_at(&[b'b'; 500], 0).unwrap();
    let err = f.write_all_at(&[b'c'; 600], 1000).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    // Appends cost no undo memory and still work.
    f.write_all_at(&[b'd'; 5000], 4096).unwrap();
    drop(f);
    assert!(m.ctl("status").contains("refused_writes=1"));
    m.ctl("crash");
    assert_eq!(fs::read(m.path("big")).unwrap(), vec![b'a'; 4096]);
}

#[test]
fn mmap_reads_see_written_data() {
    let m = Mount::new();
    write(&m.path("db"), &[7u8; 4096], true);
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("db"))
        .unwrap();
    f.write_all_at(&[9u8; 16], 100).unwrap();
    // SAFETY: a private read-only mapping of a file this test owns.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let page = unsafe { std::slice::from_raw_parts(p as *const u8, 4096) };
    assert_eq!((page[99], page[100], page[115], page[116]), (7, 9, 9, 7));
    unsafe { libc::munmap(p, 4096) };
}

#[test]
fn unmount_twice_and_ctl_errors_are_clear() {
    let m = Mount::new();
    assert!(lostfs::unmount(&m.mnt).unwrap());
    assert!(common::wait_for(10, || !common::is_mounted(&m.mnt)));
    assert!(!lostfs::unmount(&m.mnt).unwrap());
    let out = std::process::Command::new(common::BIN)
        .args(["ctl", "/nonexistent/lostfs.sock", "crash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/lostfs.sock"));
    let out = std::process::Command::new(common::BIN)
        .args(["mount", "/tmp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

// --writeback-secs: what the kernel would have written back by itself
// survives the crash; what is younger does not.
#[test]
fn writeback_makes_old_changes_durable() {
    let m = Mount::with_args(&["--writeback-secs", "1"]);
    write(&m.path("old"), b"synced", true);
    write(&m.path("snapshot"), b"never fsynced", false);
    fs::remove_file(m.path("old")).unwrap();
    fs::create_dir(m.path("d")).unwrap();
    assert!(
        common::wait_for(10, || m.ctl("status").starts_with(
            "unsynced_files=0 unsynced_bytes=0 undo_bytes=0 unsynced_names=0"
        )),
        "writeback did not run: {}",
        m.ctl("status")
    );
    write(&m.path("young"), b"x", false);
    m.ctl("crash");
    assert_eq!(read(&m, "snapshot"), "never fsynced");
    assert!(!m.path("old").exists());
    assert!(m.path("d").is_dir());
    assert!(!m.path("young").exists());
    let grave = m.backing.join(lostfs::fs::GRAVEYARD);
    assert_eq!(fs::read_dir(grave).unwrap().count(), 0);
}

#[test]
fn unmount_cleans_up_after_a_dead_daemon() {
    let mut m = Mount::new();
    m.kill_daemon();
    let err = fs::read_dir(&m.mnt).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    let out = std::process::Command::new(common::BIN)
        .arg("unmount")
        .arg(&m.mnt)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!common::is_mounted(&m.mnt));
    assert_eq!(fs::read_dir(&m.mnt).unwrap().count(), 0);
}

#[test]
fn a_missing_backing_directory_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("mount")
        .arg(dir.path().join("nope"))
        .arg(dir.path())
        .arg("--control")
        .arg(dir.path().join("s"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope") && err.contains("No such file"),
        "{err}"
    );
    assert!(!common::is_mounted(dir.path()));
}

// Writers in parallel threads (the daemon serves with several): each file
// keeps exactly its records up to its own last fdatasync.
#[test]
fn parallel_writers_keep_what_each_synced() {
    let m = Mount::new();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let p = m.path(&format!("log{t}"));
            std::thread::spawn(move || {
                use std::io::Write;
                let mut f = fs::File::create(&p).unwrap();
                let mut synced = 0;
                for i in 0..200u32 {
                    f.write_all(&[t as u8; 512]).unwrap();
                    if i % 7 == t {
                        f.sync_data().unwrap();
                        synced = (i + 1) as u64 * 512;
                    }
                }
                synced
            })
        })
        .collect();
    let synced: Vec<u64> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    m.ctl("crash");
    for (t, len) in synced.into_iter().enumerate() {
        let data = fs::read(m.path(&format!("log{t}"))).unwrap();
        assert_eq!(data.len() as u64, len, "log{t}");
        assert!(
            data.iter().all(|&b| b == t as u8),
            "log{t} holds another writer's bytes"
        );
    }
}

/// An unsynced file whose inode the kernel forgets (here by dropping the
/// dentry and inode caches) gets a new inode number at its next lookup; an
/// fsync through that number makes everything written before durable too,
/// as on a disk. (The undo log was once kept by inode number: the forgotten
/// number's log survived the fsync and the crash cut fsynced data off.)
#[test]
fn an_fsync_after_the_kernel_forgot_the_inode_keeps_everything() {
    use std::os::unix::fs::MetadataExt;
    let m = Mount::new();
    write(&m.path("wal"), b"synced\n", true);
    append(&m.path("wal"), b"unsynced\n", false);
    let before = fs::metadata(m.path("wal")).unwrap().ino();
    let forgotten = common::wait_for(10, || {
        fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
        fs::metadata(m.path("wal")).unwrap().ino() != before
    });
    assert!(forgotten, "the kernel never forgot the file's inode");
    append(&m.path("wal"), b"more\n", true);
    m.ctl("crash");
    assert_eq!(read(&m, "wal"), "synced\nunsynced\nmore\n");
}
