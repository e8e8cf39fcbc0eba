//! `shakedown report RUN_DIR`: re-check a stored run and render its report.

use crate::exit;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ReportArgs {
    /// A run's directory (e.g. store/latest)
    run_dir: PathBuf,
}

pub fn run(args: ReportArgs) -> u8 {
    if let Err(m) = only_regular_files(&args.run_dir) {
        err!("shakedown report: {m}");
        return exit::USAGE;
    }
    if !args.run_dir.join("test.json").is_file() {
        err!(
            "shakedown report: {}: not a run directory (no test.json)",
            args.run_dir.display()
        );
        return exit::USAGE;
    }
    crate::cmd::verdict::finish(&args.run_dir, crate::cmd::verdict::Verb::Report)
}

/// Renders report.html, junit.xml and the store's index; the report's path.
pub fn render(run_dir: &Path) -> Result<PathBuf, reports::ReportError> {
    reports::render_run(run_dir)
}

/// Only regular files inside the run are read: a symlink could copy any
/// readable file of this machine into the page (or have results.json written
/// through it), a FIFO would hang the report.
fn only_regular_files(run_dir: &Path) -> Result<(), String> {
    for f in ["test.json", "history.jsonl", "results.json"] {
        let p = run_dir.join(f);
        match std::fs::symlink_metadata(&p) {
            // A missing file is the caller's to name.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", p.display())),
            Ok(m) if !m.file_type().is_file() => {
                return Err(format!(
                    "{}: not a regular file (a symlink, FIFO or device): refused",
                    p.display()
                ))
            }
            Ok(_) => {}
        }
    }
    Ok(())
}
