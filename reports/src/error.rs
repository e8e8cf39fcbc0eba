//! What can stop a report.

use checkers::history::ReadError;
use checkers::rundata::RunFileError;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A run's file was not read (a symlink, a FIFO, missing, unreadable).
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    /// test.json or results.json is not of its shape (file, line, column).
    #[error(transparent)]
    RunFile(#[from] RunFileError),
    /// The history could not be read (file and line).
    #[error(transparent)]
    History(#[from] ReadError),
    #[error(transparent)]
    Plot(#[from] crate::plots::PlotError),
    #[error("{template} template: {source}")]
    Template {
        template: &'static str,
        source: minijinja::Error,
    },
    #[error("junit: {0}")]
    Junit(#[from] quick_junit::SerializeError),
    #[error("{path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl ReportError {
    pub(crate) fn write(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
        move |source| ReportError::Write {
            path: path.display().to_string(),
            source,
        }
    }
}
