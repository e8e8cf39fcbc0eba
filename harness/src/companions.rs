//! Files the control host uploads to the nodes: the faults' own binaries
//! (`shakedown-lostfs`, `shakedown-netem`), a system's (`shakedown-agent`,
//! a Debian package's server). A run looks for every one of them on the
//! control host before anything is set up anywhere (before even the local
//! cluster is brought up): a missing one is an infrastructure error
//! (exit 4) that names the file and the command that makes it, not a
//! failure half-way through set-up.
//!
//! shakedown's own binaries are looked for beside the running `shakedown`,
//! or in the directory `SHAKEDOWN_BIN_DIR` names.

use crate::needs::Need;
use checkers::rundata::Fault;
use std::path::{Path, PathBuf};

/// The environment variable naming the directory of shakedown's companion
/// binaries (default: the running shakedown's own directory).
pub const BIN_DIR_ENV: &str = "SHAKEDOWN_BIN_DIR";

/// Where shakedown's companion binaries are: `$SHAKEDOWN_BIN_DIR`, else
/// the running shakedown's directory.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// The companion binary `name` (e.g. "shakedown-lostfs").
pub fn companion(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The cargo command that builds every binary of the workspace into `dir`,
/// by the profile its name says (target/release, target/debug, target/ci).
pub fn build_command(dir: &Path) -> String {
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => String::new(),
        Some(p) if p != "release" && dir.parent().is_some_and(|d| d.ends_with("target")) => {
            format!(" --profile {p}")
        }
        _ => " --release".to_string(),
    };
    format!("cargo build{profile} --locked --workspace --bins")
}

/// The faults' own binaries on the control host, uploaded to every node
/// when their fault is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binaries {
    /// The lost-writes fault's FUSE layer.
    pub lostfs: PathBuf,
    /// The delay fault's NFQUEUE daemon.
    pub netem: PathBuf,
}

impl Binaries {
    /// Where this shakedown's companions are (see [`bin_dir`]).
    pub fn located() -> Binaries {
        Binaries {
            lostfs: companion("shakedown-lostfs"),
            netem: companion("shakedown-netem"),
        }
    }

    /// What `faults` upload from the control host.
    pub fn for_faults(&self, faults: &[Fault]) -> Vec<ControlFile> {
        let mut v = Vec::new();
        if faults.contains(&Fault::LostWrites) {
            v.push(ControlFile::companion_at(
                &self.lostfs,
                "the lost-writes fault's FUSE layer, uploaded to every node",
            ));
        }
        if faults.contains(&Fault::Delay) {
            v.push(ControlFile::companion_at(
                &self.netem,
                "the delay fault's packet scheduler, uploaded to every node",
            ));
        }
        v
    }
}

/// A file the control host must have before a run starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlFile {
    /// An absolute path, or a command looked up on PATH.
    pub path: PathBuf,
    /// What it is for (shown when it is missing).
    pub purpose: String,
    /// What makes it exist.
    pub fix: String,
}

impl ControlFile {
    /// shakedown's own binary `name`, in [`bin_dir`], built with the workspace.
    pub fn companion(name: &str, purpose: &str) -> ControlFile {
        ControlFile::companion_at(&companion(name), purpose)
    }

    /// shakedown's own binary at `path`, built with the workspace.
    pub fn companion_at(path: &Path, purpose: &str) -> ControlFile {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut fix = format!("build it: {}", build_command(dir));
        if std::env::var_os(BIN_DIR_ENV).is_some() {
            fix += &format!(" ({BIN_DIR_ENV} names the directory it is looked for in)");
        }
        ControlFile {
            path: path.to_path_buf(),
            purpose: purpose.into(),
            fix,
        }
    }

    /// A command a Debian package provides.
    pub fn package(need: &Need) -> ControlFile {
        ControlFile {
            path: need.command.into(),
            purpose: need.purpose.into(),
            fix: format!("apt-get install {}", need.package),
        }
    }

    /// Whether the control host has it: a regular executable file at its
    /// path (or, for a bare name, on PATH).
    pub fn present(&self) -> bool {
        if self.path.components().count() > 1 || self.path.is_absolute() {
            return executable(&self.path);
        }
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| executable(&d.join(&self.path))))
    }

    /// "shakedown-lostfs is missing: /x/shakedown-lostfs (what for); build it: ..."
    pub fn describe_missing(&self) -> String {
        let name = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        format!(
            "{name} is missing on the control host: {} ({}); {}",
            self.path.display(),
            self.purpose,
            self.fix
        )
    }
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One line for each of `files` the control host does not have.
pub fn missing(files: &[ControlFile]) -> Vec<String> {
    let mut seen = Vec::new();
    files
        .iter()
        .filter(|f| !f.present())
        .filter(|f| {
            let new = !seen.contains(&f.path);
            seen.push(f.path.clone());
            new
        })
        .map(ControlFile::describe_missing)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::needs::need;

    #[test]
    fn the_build_command_follows_the_profile_of_the_directory() {
        let c = |p: &str| build_command(Path::new(p));
        assert_eq!(
            c("/w/target/release"),
            "cargo build --release --locked --workspace --bins"
        );
        assert_eq!(
            c("/w/target/debug"),
            "cargo build --locked --workspace --bins"
        );
        assert_eq!(
            c("/w/target/ci"),
            "cargo build --profile ci --locked --workspace --bins"
        );
        assert_eq!(
            c("/usr/local/bin"),
            "cargo build --release --locked --workspace --bins"
        );
    }

    #[test]
    fn missing_files_are_named_with_their_fix_once() {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().join("tool");
        std::fs::write(&here, "#!/bin/sh\n").unwrap();
        let file = |p: &Path| ControlFile {
            path: p.to_path_buf(),
            purpose: "a test".into(),
            fix: "make it".into(),
        };
        let gone = dir.path().join("gone");
        assert_eq!(
            missing(&[file(&here)]),
            vec![format!(
                "tool is missing on the control host: {} (a test); make it",
                here.display()
            )]
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&here, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(missing(&[file(&here)]).is_empty());
        assert_eq!(missing(&[file(&gone), file(&gone)]).len(), 1);
        assert!(missing(&[ControlFile::package(&need("sh", "dash", "x"))]).is_empty());
        let m = missing(&[ControlFile::package(&need(
            "/no/such/redis-server",
            "redis-server",
            "uploaded to every node",
        ))]);
        assert_eq!(m, ["redis-server is missing on the control host: /no/such/redis-server (uploaded to every node); apt-get install redis-server"]);
    }
}
