//! A transactional anomaly in the report: its cycle drawn with links into
//! the timeline, its edges in sentences, and one JUnit case per anomaly type.

use checkers::history::{read_history, Format};
use checkers::txn::{check, Models, TxnKind};

#[test]
fn cycle_svg_edges_and_junit_cases() {
    // Read skew (G-single): T1 reads x before and y after T2's appends.
    let text = r#"{"process":0,"type":"invoke","f":"txn","value":[["r","x",null],["r","y",null]]}
{"process":1,"type":"invoke","f":"txn","value":[["append","x",1],["append","y",1]]}
{"process":1,"type":"ok","f":"txn","value":[["append","x",1],["append","y",1]]}
{"process":0,"type":"ok","f":"txn","value":[["r","x",[]],["r","y",[1]]]}
{"process":2,"type":"invoke","f":"txn","value":[["r","x",null]]}
{"process":2,"type":"ok","f":"txn","value":[["r","x",[1]]]}
"#;
    let h = read_history("h.jsonl", text, Format::Jsonl)
        .unwrap()
        .history;
    let r = check(TxnKind::ListAppend, Models::default(), &h, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let test: checkers::rundata::TestFile =
        serde_json::from_value(serde_json::json!({"system": "history file", "workload": "h"}))
            .unwrap();
    let page = reports::render_history(dir.path(), &test, &r, &h).unwrap();
    let html = std::fs::read_to_string(page).unwrap();
    assert!(html.contains("A cycle of 2 transactions"), "no cycle drawn");
    assert!(html.contains("href=\"#op="), "no link into the timeline");
    assert!(
        html.contains("which T2 appended and committed"),
        "no sentence"
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains("name=\"list-append: G-single\""), "{junit}");
    assert!(junit.contains("name=\"list-append: G0\""), "{junit}");
    // G-single failed; G0 passed.
    let case = |name: &str| {
        let rest = junit
            .split(&format!("name=\"{name}\""))
            .nth(1)
            .unwrap()
            .to_string();
        let end = rest.find("<testcase").unwrap_or(rest.len());
        rest[..end].to_string()
    };
    assert!(
        case("list-append: G-single").contains("<failure"),
        "{junit}"
    );
    assert!(!case("list-append: G0").contains("<failure"), "{junit}");
}
