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
    crate::cmd::verdict::finish(&args.run_dir, crate::cmd::verdict::Verb::Report)
}

/// Renders report.html, junit.xml and the store's index; the report's path.
pub fn render(run_dir: &Path) -> Result<PathBuf, String> {
    reports::render_run(run_dir).map_err(|e| e.to_string())
}
