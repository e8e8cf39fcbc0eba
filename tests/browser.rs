//! The report in a real browser (Debian's chromium, headless, in an empty
//! network namespace): it loads from file:// with no console errors and no
//! requests, shows the verdict, and a value like <script>alert(1)</script>
//! from the history stays text. The report of a real failing run is opened
//! the same way in tests/node_protocol.rs.

use std::path::Path;
use std::process::Command;

mod common;

#[test]
fn the_report_loads_offline_shows_the_verdict_and_keeps_values_inert() {
    if !common::have_browser() || unsafe { libc::geteuid() } != 0 {
        harness::testing::skip(
            "needs chromium (scripts/test installs it) and root (network namespace)",
        );
        return;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/tests/data/invalid");
    let dir = tempfile::tempdir().unwrap();
    for f in ["test.json", "history.jsonl"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args(["report", &dir.path().display().to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = common::open_in_browser(&dir.path().join("report.html"));
    assert!(b.console_errors.is_empty(), "{:?}", b.console_errors);
    assert!(b.page_requests.is_empty(), "{:?}", b.page_requests);
    assert!(b.dom.contains("INVALID"), "the verdict is not on the page");
    assert!(
        b.dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the value is not shown as text"
    );
    assert!(
        !b.dom.contains("<script>alert"),
        "a script element came from the history"
    );
    assert!(b.screenshot.starts_with(b"\x89PNG") && b.screenshot.len() > 10_000);

    // The timeline: its script ran (the page's policy allows it by hash),
    // every operation is a row (the nemesis' too), the value from the history is text there too.
    let rows = |dom: &str| dom.matches("<tr id=\"op-").count();
    assert_eq!(rows(&b.dom), 6, "{}", b.dom);
    assert!(b.dom.contains("Operations 1–6 of 6;"));
    assert!(
        b.dom
            .contains("<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"),
        "the key is not text in the timeline"
    );
    // Filters from the address: process 0's info operations.
    let f = common::open_in_browser_at(&dir.path().join("report.html"), "#p=0&o=info");
    assert!(f.console_errors.is_empty(), "{:?}", f.console_errors);
    assert_eq!(rows(&f.dom), 1, "{}", f.dom);
    assert!(f.dom.contains("Operations 1–1 of 1 matching (6 in all)"));
    assert!(f.dom.contains("<tr id=\"op-4\">"), "{}", f.dom);
    // Regression: a malformed fragment emptied the timeline; it is ignored.
    let m = common::open_in_browser_at(&dir.path().join("report.html"), "#p=%E0%A4%A");
    assert!(m.console_errors.is_empty(), "{:?}", m.console_errors);
    assert_eq!(rows(&m.dom), 6, "{}", m.dom);
    // A checker's event link opens its operation in the timeline.
    assert!(b.dom.contains("href=\"#op="), "no links from the anomalies");
    let o = common::open_in_browser_at(&dir.path().join("report.html"), "#op=2");
    assert!(
        o.dom.contains("<tr id=\"op-2\" class=\"hit\">"),
        "{}",
        o.dom
    );
    assert!(o.dom.contains("<details id=\"tl\" open"));
}
