//! Checking a stored run: test.json names the checkers (and their initial
//! states), history.jsonl holds the operations; results.json gets one result
//! per checker and the overall verdict (false beats unknown beats true).

use checkers::faults::FaultSummary;
use checkers::history::{read_history_from, Event, Format};
use checkers::linear::Options;
use checkers::{Checker, Validity};
use serde_json::{json, Map, Value};
use std::io::BufRead;
use std::io::BufReader;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The history holds no client operation: nothing was tested.
    #[error("{0}")]
    NothingRecorded(String),
    #[error("{0}")]
    Other(String),
}

/// The checkers of test.json: `[{"checker": "kv", "init": null}, ...]`.
pub fn checkers_of(test: &Value) -> Result<Vec<(Checker, Value)>, ResultsError> {
    let list = test["checkers"]
        .as_array()
        .ok_or_else(|| ResultsError::Other("test.json: no \"checkers\" list".into()))?;
    list.iter()
        .map(|c| {
            let name = c["checker"].as_str().unwrap_or_default();
            let checker = Checker::parse(name).ok_or_else(|| {
                ResultsError::Other(format!("test.json: {name:?} is not a checker"))
            })?;
            Ok((checker, c.get("init").cloned().unwrap_or(Value::Null)))
        })
        .collect()
}

/// A stored run, checked.
#[derive(Debug)]
pub struct RunResults {
    /// results.json as written.
    pub json: Value,
    /// The checkers' verdict (false beats unknown beats true).
    pub verdict: Validity,
    /// Which faults took effect.
    pub faults: FaultSummary,
}

/// Checks `run_dir`'s history with the checkers of its test.json and
/// writes results.json, with the fault summary of its history.
pub fn check_run(run_dir: &Path, opts: &Options) -> Result<RunResults, ResultsError> {
    let test_path = run_dir.join("test.json");
    let test: Value = std::fs::read_to_string(&test_path)
        .map_err(|e| ResultsError::Other(format!("{}: {e}", test_path.display())))
        .and_then(|t| {
            serde_json::from_str(&t)
                .map_err(|e| ResultsError::Other(format!("{}: {e}", test_path.display())))
        })?;
    let checkers = checkers_of(&test)?;
    let hist_path = run_dir.join("history.jsonl");
    let name = hist_path.display().to_string();
    let f =
        std::fs::File::open(&hist_path).map_err(|e| ResultsError::Other(format!("{name}: {e}")))?;
    let parsed =
        read_history_from(&name, BufReader::new(f), Format::Jsonl, false).map_err(|e| {
            if e.nothing_read() {
                ResultsError::NothingRecorded(e.to_string())
            } else {
                ResultsError::Other(e.to_string())
            }
        })?;
    let mut worst = Validity::Valid;
    let mut out = Map::new();
    for (checker, init) in checkers {
        let r = checker
            .check(&init, &parsed.history, opts)
            .map_err(|e| ResultsError::Other(format!("{name}: {checker:?}: {e}")))?;
        worst = worst.worst(r.valid);
        out.insert(
            checker.name().into(),
            serde_json::to_value(&r).unwrap_or(Value::Null),
        );
    }
    let faults = checkers::faults::summarize(&nemesis_events(&hist_path));
    let results = json!({
        "valid": match worst { Validity::Valid => json!(true), Validity::Invalid => json!(false), Validity::Unknown => json!("unknown") },
        "checkers": out,
        "faults": faults,
        "warnings": parsed.warnings,
    });
    let p = run_dir.join("results.json");
    let body = serde_json::to_string_pretty(&results).unwrap_or_default();
    std::fs::write(&p, body + "\n")
        .map_err(|e| ResultsError::Other(format!("{}: {e}", p.display())))?;
    Ok(RunResults {
        json: results,
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
