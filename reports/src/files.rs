//! Reading a run's files: only regular files, never through a symlink, and
//! never more than a bound. A run directory is data from a run (or from
//! anyone who hands one over): a symlink in nodes/ must not copy an
//! arbitrary file of this machine into the page, and a FIFO must not hang
//! the report.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A run's file that is not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}: a symlink: refused")]
    Symlink(String),
    #[error("{0}: not a regular file: refused")]
    NotRegular(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: p.display().to_string(),
        source,
    }
}

/// Opens `p` if it is a regular file and not a symlink. O_NOFOLLOW refuses a
/// symlink at open; O_NONBLOCK keeps a FIFO from blocking the open, and the
/// type is checked on the opened file, so nothing can be swapped in between.
pub fn open_regular(p: &Path) -> Result<std::fs::File, FileError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => FileError::Symlink(p.display().to_string()),
            _ => io(p)(e),
        })?;
    let meta = f.metadata().map_err(io(p))?;
    if !meta.is_file() {
        return Err(FileError::NotRegular(p.display().to_string()));
    }
    Ok(f)
}

/// The first `max` bytes of the regular file `p`.
pub fn read_regular(p: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    let mut out = Vec::new();
    open_regular(p)?
        .take(max)
        .read_to_end(&mut out)
        .map_err(io(p))?;
    Ok(out)
}

/// Writes `p` whole through a new file renamed over it: a symlink planted at
/// `p` is replaced, never followed (its target is not overwritten).
pub fn write_replacing(p: &Path, body: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = p.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(body.as_ref())?;
        std::fs::rename(&tmp, p)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// True for a directory that is not a symlink.
pub fn is_real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_fifos_and_devices_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real.log");
        std::fs::write(&real, "hello").unwrap();
        assert_eq!(read_regular(&real, 3).unwrap(), b"hel");
        let link = d.path().join("link.log");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        assert!(read_regular(&link, 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("symlink"));
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_regular(&fifo, 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert!(read_regular(Path::new("/dev/zero"), 1 << 20).is_err());
        assert!(!is_real_dir(&link));
        // Writing over a planted symlink replaces the link, not its target.
        let target = d.path().join("target.txt");
        std::fs::write(&target, "keep").unwrap();
        let planted = d.path().join("report.html");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        write_replacing(&planted, "page").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "page");
        assert!(!std::fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(is_real_dir(d.path()));
    }
}
