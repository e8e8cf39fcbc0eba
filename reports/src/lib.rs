//! Reports of runs: report.html (one self-contained page), junit.xml, and
//! the store's index.html. The only crate that knows HTML; templates are
//! minijinja with auto-escaping, so a value from a history or a node log
//! shows as text, never as markup.

pub mod cycle;
pub mod error;
pub mod files;
pub mod junit;
pub mod lanes;
pub mod logs;
pub mod plots;
mod text;
pub mod timeline;
pub mod view;

pub use error::ReportError;

use checkers::rundata::{ResultsFile, TestFile};
use checkers::CheckResult;
use minijinja::Environment;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    // Names ending in .html are auto-escaped.
    env.add_template("report.html", include_str!("../templates/report.html"))
        .expect("the report template parses");
    env.add_template("index.html", include_str!("../templates/index.html"))
        .expect("the index template parses");
    env
}

/// The timeline's script, the only one on the page; the page's
/// Content-Security-Policy allows exactly this text (by its SHA-256).
const SCRIPT: &str = include_str!("../templates/timeline.js");

fn script_hash() -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT.as_bytes()))
}

/// Renders a view to HTML: the plots, lanes and cycles are drawn here.
pub fn render_html(view: &view::View) -> Result<String, ReportError> {
    let svgs = view.plots.render()?;
    let shaded = &view.plots.shaded;
    // A picture plotters cannot draw is left out (it was never essential).
    let lanes_svgs: Vec<Option<String>> = view
        .checkers
        .iter()
        .map(|c| c.lanes.as_ref().and_then(|l| l.render(shaded).ok()))
        .collect();
    let cycle_svgs: Vec<Vec<Option<String>>> = view
        .checkers
        .iter()
        .map(|c| {
            c.anomalies
                .iter()
                .map(|a| a.cycle.as_ref().and_then(cycle::Cycle::render))
                .collect()
        })
        .collect();
    let ctx = minijinja::context! {
        script => SCRIPT,
        script_hash => script_hash(),
        latency_svg => svgs.latency,
        throughput_svg => svgs.throughput,
        availability_svg => svgs.availability,
        lanes_svgs => lanes_svgs,
        cycle_svgs => cycle_svgs,
        ..minijinja::Value::from(minijinja::value::Serde(view))
    };
    env()
        .get_template("report.html")
        .and_then(|t| t.render(ctx))
        .map_err(|source| ReportError::Template {
            template: "report",
            source,
        })
}

/// Writes report.html and junit.xml of `run_dir` (which has results.json),
/// and the index of the store above it. Returns report.html's path.
pub fn render_run(run_dir: &Path) -> Result<PathBuf, ReportError> {
    let view = view::build(run_dir)?;
    let html = render_html(&view)?;
    let p = run_dir.join("report.html");
    crate::files::write_replacing(&p, html).map_err(ReportError::write(&p))?;
    junit::write(run_dir, &view)?;
    // store/<test>/<stamp>: the store is two levels up.
    if let Some(store) = run_dir.parent().and_then(Path::parent) {
        if store.join("latest").exists() {
            write_index(store)?;
        }
    }
    Ok(p)
}

/// report.html and junit.xml in `dir` for a bare history (`shakedown check
/// --out`): `test` describes it (system, workload, command), `result` is the
/// checker's result.
pub fn render_history(
    dir: &Path,
    test: &TestFile,
    result: &CheckResult,
    history: &checkers::history::History,
) -> Result<PathBuf, ReportError> {
    let results = ResultsFile::from_one(result.clone());
    let view = view::build_view(test, &results, history, None);
    let html = render_html(&view)?;
    let p = dir.join("report.html");
    crate::files::write_replacing(&p, html).map_err(ReportError::write(&p))?;
    junit::write(dir, &view)?;
    Ok(p)
}

/// store/index.html: every run, newest first, coloured by verdict.
pub fn write_index(store: &Path) -> Result<PathBuf, ReportError> {
    let mut runs = Vec::new();
    for test in std::fs::read_dir(store).into_iter().flatten().flatten() {
        let tp = test.path();
        if !tp.is_dir() || tp.file_name().is_some_and(|n| n == "latest") {
            continue;
        }
        for run in std::fs::read_dir(&tp).into_iter().flatten().flatten() {
            let rp = run.path();
            let Ok(t) = std::fs::read_to_string(rp.join("test.json")) else {
                continue;
            };
            // The index lists what it can read; a run it cannot is "none".
            let t: TestFile = serde_json::from_str(&t).unwrap_or_default();
            let r: Option<ResultsFile> = std::fs::read_to_string(rp.join("results.json"))
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok());
            let verdict = r.as_ref().map_or("none", |r| r.verdict().word());
            let rel = rp
                .strip_prefix(store)
                .unwrap_or(&rp)
                .to_string_lossy()
                .into_owned();
            let stamp = rp
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            runs.push((
                stamp,
                json!({
                    "name": rel.clone(),
                    "link": format!("{rel}/report.html"),
                    "verdict": verdict,
                    "system": t.system, "workload": t.workload,
                    "nemesis": t.nemesis.unwrap_or_default().join(","),
                    "duration": t.time_limit_s, "seed": t.seed,
                }),
            ));
        }
    }
    runs.sort_by(|a, b| b.0.cmp(&a.0));
    let runs: Vec<Value> = runs.into_iter().map(|(_, v)| v).collect();
    let html = env()
        .get_template("index.html")
        .and_then(|t| t.render(minijinja::value::Serde(json!({ "runs": runs }))))
        .map_err(|source| ReportError::Template {
            template: "index",
            source,
        })?;
    let p = store.join("index.html");
    crate::files::write_replacing(&p, html).map_err(ReportError::write(&p))?;
    Ok(p)
}
