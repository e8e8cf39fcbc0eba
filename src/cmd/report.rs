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
    if !args.run_dir.join("test.json").is_file() {
        err!(
            "shakedown report: {}: not a run directory (no test.json)",
            args.run_dir.display()
        );
        return exit::USAGE;
    }
    // Only regular files inside the run are read: a symlink could copy any
    // readable file of this machine into the page, a FIFO would hang.
    for f in ["test.json", "history.jsonl", "results.json"] {
        let p = args.run_dir.join(f);
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(_) if f == "results.json" => continue,
            Err(e) => {
                err!("shakedown report: {}: {e}", p.display());
                return exit::USAGE;
            }
        };
        if !meta.file_type().is_file() {
            err!(
                "shakedown report: {}: not a regular file (a symlink, FIFO or device): refused",
                p.display()
            );
            return exit::USAGE;
        }
    }
    crate::cmd::test::finish(&args.run_dir)
}

/// Renders report.html, junit.xml and the store's index; the report's path.
pub fn render(run_dir: &Path) -> Result<PathBuf, String> {
    reports::render_run(run_dir).map_err(|e| e.to_string())
}
