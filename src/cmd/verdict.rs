//! The end of `test` and `report`: check a stored run, write results,
//! report and JUnit, print the verdicts, and turn them into the exit code.
//!
//! "Valid" means tested and found nothing: a run whose faults did not all
//! take effect is INCOMPLETE (exit 4) unless a checker found it invalid
//! (exit 1); a run that recorded no client operation tested nothing.

use crate::exit;
use checkers::linear::Options;
use checkers::Validity;
use serde_json::Value;
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
        Err(e) => {
            err!("shakedown: {e}");
            return exit::USAGE;
        }
    };
    for (name, c) in r.json["checkers"].as_object().into_iter().flatten() {
        let word = match &c["valid"] {
            Value::Bool(true) => "valid",
            Value::Bool(false) => "INVALID",
            _ => "unknown",
        };
        let why = c["anomalies"]
            .get(0)
            .and_then(|a| a["message"].as_str())
            .or_else(|| c["unknown_reason"].as_str())
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
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
    if r.client_ops == 0 {
        let hist = run_dir.join("history.jsonl");
        err!(
            "shakedown: {}: no client operation was recorded: nothing was tested",
            hist.display()
        );
        return match verb {
            Verb::Test => exit::INFRA,
            Verb::Report => exit::USAGE,
        };
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
