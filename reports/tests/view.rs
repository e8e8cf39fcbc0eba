//! Golden tests of the view model (a valid and an invalid run), and the
//! rendered page: every value from the history shows as text.
//! `UPDATE_GOLDEN=1 cargo test -p reports` rewrites the expected files.

use checkers::linear::Options;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    for f in ["test.json", "history.jsonl"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    harness::results::check_run(dir.path(), &Options::default()).unwrap();
    let p = dir.path().to_path_buf();
    (dir, p)
}

/// The view: data only (the plots' and lanes' points, not their SVG), so
/// all of it is compared.
fn golden_view(run: &Path) -> Value {
    let v = reports::view::build(run).unwrap();
    let mut j = serde_json::to_value(&v).unwrap();
    for c in j["checkers"].as_array_mut().unwrap() {
        // Timing varies.
        c["summary"] = Value::from("<summary>");
    }
    j
}

fn compare(name: &str) {
    let (_keep, run) = fixture(name);
    let got = golden_view(&run);
    let expected =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}/view.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(
            &expected,
            serde_json::to_string_pretty(&got).unwrap() + "\n",
        )
        .unwrap();
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&expected).unwrap()).unwrap();
    assert_eq!(
        got, want,
        "{name}: the view changed (UPDATE_GOLDEN=1 to accept)"
    );
}

#[test]
fn golden_valid_run() {
    compare("valid");
}

#[test]
fn golden_invalid_run() {
    compare("invalid");
    let (_keep, run) = fixture("invalid");
    let v = reports::view::build(&run).unwrap();
    assert_eq!(v.verdict.word(), "invalid");
    assert_eq!(v.windows.len(), 1);
    assert_eq!(v.windows[0].name, "start-partition");
    let kv = &v.checkers[0];
    assert!(
        kv.anomalies[0].message.contains("process 2 read 1"),
        "{}",
        kv.anomalies[0].message
    );
    assert!(kv.lanes.is_some());
}

#[test]
fn values_from_the_history_stay_inert() {
    let (_keep, run) = fixture("invalid");
    let path = reports::render_run(&run).unwrap();
    let html = std::fs::read_to_string(path).unwrap();
    assert!(
        !html.contains("<script>alert(1)</script>"),
        "a script tag from the history was not escaped"
    );
    // In the timeline's data, `<` cannot end the element.
    assert!(html.contains(r#""\u003cscript\u003ealert(1)\u003c/script\u003e""#));
    // No network: nothing is fetched from anywhere.
    for needle in ["http://", "https://", "src=\"", "<link", "@import"] {
        let hits: Vec<&str> = html
            .match_indices(needle)
            .map(|(i, _)| &html[i.saturating_sub(40)..(i + 60).min(html.len())])
            .collect();
        assert!(
            hits.iter().all(|h| h.contains("www.w3.org")),
            "{needle}: {hits:?}"
        );
    }
    let junit = std::fs::read_to_string(run.join("junit.xml")).unwrap();
    assert!(junit.contains("failures=\"1\""), "{junit}");
}
