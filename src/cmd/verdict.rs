//! The end of `test` and `report`: check a stored run, write results,
//! report and JUnit, print the verdicts, and turn them into the exit code.
//!
//! "Valid" means tested and found nothing: a run whose faults did not all
//! take effect is INCOMPLETE (exit 4) unless a checker found it invalid
//! (exit 1); a run that recorded no client operation tested nothing.

use crate::exit;
use checkers::linear::Options;
use checkers::Validity;
use std::path::Path;
use std::time::Duration;

/// Which verb finishes: a run with no client operation is an
/// infrastructure failure of `test` (4), an input error of `report` (3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Test,
    Report,
}

/// Checks the stored run, writes results and the report, prints where; the exit code.
pub fn finish(run_dir: &Path, verb: Verb) -> u8 {
    let opts = Options {
        time_limit: Duration::from_secs(120),
        ..Options::default()
    };
    let r = match harness::results::check_run(run_dir, &opts) {
        Ok(r) => r,
        Err(harness::results::ResultsError::NothingRecorded(e)) => {
            err!("shakedown: {e}: the run recorded no client operation, so nothing was tested");
            return match verb {
                Verb::Test => exit::INFRA,
                Verb::Report => exit::USAGE,
            };
        }
        Err(e) => {
            err!("shakedown: {e}");
            return exit::USAGE;
        }
    };
    for (name, c) in &r.results.checkers {
        // An invalid verdict stands out.
        let word = match c.valid {
            Validity::Invalid => c.valid.word().to_uppercase(),
            v => v.word().to_string(),
        };
        let why = c.reason().map(|m| format!(": {m}")).unwrap_or_default();
        out!("{name}: {word}{why}");
    }
    match r.faults.headline() {
        Some(h) => {
            out!("faults: INCOMPLETE: {h}");
            for f in &r.faults.failed {
                err!(
                    "shakedown: {} failed{}: {}",
                    f.fault,
                    f.node
                        .as_ref()
                        .map(|n| format!(" on {n}"))
                        .unwrap_or_default(),
                    f.error
                );
            }
        }
        None if r.faults.scheduled > 0 => out!(
            "faults: {} of {} applied and verified",
            r.faults.applied,
            r.faults.scheduled
        ),
        None => {}
    }
    match crate::cmd::report::render(run_dir) {
        Ok(path) => out!("report: {}", path.display()),
        Err(e) => err!("shakedown: report: {e}"),
    }
    match r.verdict {
        Validity::Invalid => exit::INVALID,
        _ if r.faults.incomplete() => {
            err!("shakedown: INCOMPLETE: not every scheduled fault took effect, so a pass would mean nothing (exit 4)");
            exit::INFRA
        }
        Validity::Valid => exit::VALID,
        Validity::Unknown => exit::UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory whose history holds only the nemesis' events.
    fn run_without_client_ops() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("test.json"),
            r#"{"system":"noop","workload":"register","checkers":[{"checker":"kv","init":null}]}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("history.jsonl"),
            concat!(
                r#"{"index":0,"time":1,"process":"nemesis","type":"invoke","f":"start-partition","value":{}}"#,
                "\n",
                r#"{"index":1,"time":2,"process":"nemesis","type":"info","f":"start-partition","value":{}}"#,
                "\n"
            ),
        )
        .unwrap();
        d
    }

    #[test]
    fn a_run_that_recorded_no_client_operation_tested_nothing() {
        let d = run_without_client_ops();
        assert_eq!(finish(d.path(), Verb::Test), exit::INFRA);
        assert_eq!(finish(d.path(), Verb::Report), exit::USAGE);
    }
}
