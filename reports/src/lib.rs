//! Reports of runs: report.html (one self-contained page), junit.xml, and
//! the store's index.html. The only crate that knows HTML; templates are
//! minijinja with auto-escaping, so a value from a history or a node log
//! shows as text, never as markup.

pub mod cycle;
pub mod files;
pub mod junit;
pub mod logs;
pub mod plots;
pub mod timeline;
pub mod view;

use minijinja::Environment;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReportError(pub String);

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

/// Renders a view to HTML.
pub fn render_html(view: &view::View) -> Result<String, ReportError> {
    let ctx = minijinja::context! {
        script => SCRIPT,
        script_hash => script_hash(),
        ..minijinja::Value::from(minijinja::value::Serde(view))
    };
    env()
        .get_template("report.html")
        .and_then(|t| t.render(ctx))
        .map_err(|e| ReportError(format!("report template: {e}")))
}

/// Writes report.html and junit.xml of `run_dir` (which has results.json),
/// and the index of the store above it. Returns report.html's path.
pub fn render_run(run_dir: &Path) -> Result<PathBuf, ReportError> {
    let view = view::build(run_dir).map_err(ReportError)?;
    let html = render_html(&view)?;
    let p = run_dir.join("report.html");
    crate::files::write_replacing(&p, html)
        .map_err(|e| ReportError(format!("{}: {e}", p.display())))?;
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
    test: &Value,
    result: &Value,
    history: &checkers::history::History,
) -> Result<PathBuf, ReportError> {
    let view = view::build_view(test, result, history, None).map_err(ReportError)?;
    let html = render_html(&view)?;
    let p = dir.join("report.html");
    crate::files::write_replacing(&p, html)
        .map_err(|e| ReportError(format!("{}: {e}", p.display())))?;
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
            let t: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
            let r: Value = std::fs::read_to_string(rp.join("results.json"))
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(Value::Null);
            let incomplete =
                serde_json::from_value::<checkers::faults::FaultSummary>(r["faults"].clone())
                    .is_ok_and(|f| f.incomplete());
            let verdict = match &r["valid"] {
                Value::Bool(false) => "invalid",
                _ if incomplete => "incomplete",
                Value::Bool(true) => "valid",
                Value::String(_) => "unknown",
                _ => "none",
            };
            let rel = rp
                .strip_prefix(store)
                .unwrap_or(&rp)
                .to_string_lossy()
                .into_owned();
            let stamp = rp
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            runs.push((stamp, json!({
                "name": rel.clone(),
                "link": format!("{rel}/report.html"),
                "verdict": verdict,
                "system": t["system"], "workload": t["workload"],
                "nemesis": t["nemesis"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")).unwrap_or_default(),
                "duration": t["time_limit_s"], "seed": t["seed"],
            })));
        }
    }
    runs.sort_by(|a, b| b.0.cmp(&a.0));
    let runs: Vec<Value> = runs.into_iter().map(|(_, v)| v).collect();
    let html = env()
        .get_template("index.html")
        .and_then(|t| t.render(minijinja::value::Serde(json!({ "runs": runs }))))
        .map_err(|e| ReportError(format!("index template: {e}")))?;
    let p = store.join("index.html");
    crate::files::write_replacing(&p, html)
        .map_err(|e| ReportError(format!("{}: {e}", p.display())))?;
    Ok(p)
}
