//! Checking a stored run: test.json names the checkers (and their initial
//! states), history.jsonl holds the operations; results.json gets one result
//! per checker and the overall verdict (false beats unknown beats true).

use checkers::faults::FaultSummary;
use checkers::history::{read_history_from, Event, Format, ReadError};
use checkers::linear::{CheckError, Options};
use checkers::rundata::{ResultsFile, RunFileError, TestFile};
use checkers::{Checker, Validity};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::io::BufReader;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The history holds no client operation: nothing was tested.
    #[error("{0}")]
    NothingRecorded(ReadError),
    /// A file of the run could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// test.json is not JSON or not of its shape (serde names line and column).
    #[error(transparent)]
    TestFile(#[from] RunFileError),
    #[error("test.json: no \"checkers\" list")]
    NoCheckers,
    #[error("test.json: {0:?} is not a checker")]
    UnknownChecker(String),
    /// The history could not be read (file and line in the error).
    #[error("{0}")]
    History(ReadError),
    /// A checker refused the history (a model's input error).
    #[error("{path}: {checker:?}: {source}")]
    Check {
        path: String,
        checker: Checker,
        source: CheckError,
    },
}

/// The checkers of test.json: `[{"checker": "kv", "init": null}, ...]`.
pub fn checkers_of(test: &TestFile) -> Result<Vec<(Checker, Value)>, ResultsError> {
    let list = test.checkers.as_ref().ok_or(ResultsError::NoCheckers)?;
    list.iter()
        .map(|c| {
            let checker = Checker::parse(&c.checker)
                .ok_or_else(|| ResultsError::UnknownChecker(c.checker.clone()))?;
            Ok((checker, c.init.clone()))
        })
        .collect()
}

/// A stored run, checked.
#[derive(Debug)]
pub struct RunResults {
    /// results.json as written.
    pub results: ResultsFile,
    /// The checkers' verdict (false beats unknown beats true).
    pub verdict: Validity,
    /// Which faults took effect.
    pub faults: FaultSummary,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Checks `run_dir`'s history with the checkers of its test.json and
/// writes results.json, with the fault summary of its history.
pub fn check_run(run_dir: &Path, opts: &Options) -> Result<RunResults, ResultsError> {
    let test_path = run_dir.join("test.json");
    let text = std::fs::read(&test_path).map_err(io(&test_path))?;
    let test: TestFile = checkers::rundata::parse(&test_path, &text)?;
    let checkers = checkers_of(&test)?;
    let hist_path = run_dir.join("history.jsonl");
    let name = hist_path.display().to_string();
    let f = std::fs::File::open(&hist_path).map_err(io(&hist_path))?;
    let parsed =
        read_history_from(&name, BufReader::new(f), Format::Jsonl, false).map_err(|e| {
            if e.nothing_read() {
                ResultsError::NothingRecorded(e)
            } else {
                ResultsError::History(e)
            }
        })?;
    let mut worst = Validity::Valid;
    let mut out = BTreeMap::new();
    for (checker, init) in checkers {
        let r = checker
            .check(&init, &parsed.history, opts)
            .map_err(|source| ResultsError::Check {
                path: name.clone(),
                checker,
                source,
            })?;
        worst = worst.worst(r.valid);
        out.insert(checker.name().to_string(), r);
    }
    let faults = checkers::faults::summarize(&nemesis_events(&hist_path));
    let results = ResultsFile {
        valid: worst,
        checkers: out,
        faults: faults.clone(),
        warnings: parsed.warnings,
    };
    let p = run_dir.join("results.json");
    std::fs::write(&p, checkers::rundata::to_text(&results)).map_err(io(&p))?;
    Ok(RunResults {
        results,
        verdict: worst,
        faults,
    })
}

/// The fault injector's events of a stored history (JSON lines), read on
/// their own: the checkers' pass keeps no events, and these are few.
fn nemesis_events(path: &Path) -> Vec<Event> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("\"nemesis\""))
        .filter_map(|l| serde_json::from_str::<Event>(&l).ok())
        .collect()
}
