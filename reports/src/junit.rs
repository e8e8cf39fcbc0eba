//! junit.xml: one test case per checker; a failure's message is the explanation.

use crate::view::View;
use crate::ReportError;
use checkers::rundata::Verdict;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::path::Path;

/// `s` with every character XML 1.0 cannot hold (controls other than tab
/// and line ends, surrogates, U+FFFE, U+FFFF) written as `\u{..}` text:
/// quick-junit escapes markup, not these, and one makes the file unreadable.
pub fn xml_text(s: &str) -> String {
    let ok = |c: char| {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{d7ff}').contains(&c)
            || ('\u{e000}'..='\u{fffd}').contains(&c)
            || c >= '\u{10000}'
    };
    if s.chars().all(ok) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if ok(c) {
                c.to_string()
            } else {
                format!("\\u{{{:x}}}", c as u32)
            }
        })
        .collect()
}

pub fn write(run_dir: &Path, view: &View) -> Result<(), ReportError> {
    let mut report = Report::new("shakedown");
    let mut suite = TestSuite::new(xml_text(&format!("{}-{}", view.system, view.workload)));
    for c in &view.checkers {
        let status = match c.verdict {
            Verdict::Valid => TestCaseStatus::success(),
            v => {
                let mut s = TestCaseStatus::non_success(if v == Verdict::Invalid {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                });
                let msg = c
                    .anomalies
                    .first()
                    .map(|a| a.message.clone())
                    .unwrap_or_else(|| c.summary.clone());
                s.set_message(xml_text(&msg));
                s.set_description(xml_text(
                    &c.anomalies
                        .iter()
                        .map(|a| format!("{} ({}): {}", a.kind, a.severity, a.message))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ));
                s
            }
        };
        let mut case = TestCase::new(xml_text(&c.name), status);
        case.set_classname(xml_text(&format!(
            "shakedown.{}.{}",
            view.system, view.workload
        )));
        suite.add_test_case(case);
        // Transactional checkers: a case per anomaly type as well.
        for a in &c.anomaly_cases {
            let status = match &a.failure {
                None => TestCaseStatus::success(),
                Some(m) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(format!("{} found {} time(s): {m}", a.kind, a.found));
                    s
                }
            };
            let mut case = TestCase::new(format!("{}: {}", c.name, a.kind), status);
            case.set_classname(format!(
                "shakedown.{}.{}.{}",
                view.system, view.workload, c.name
            ));
            suite.add_test_case(case);
        }
    }
    // A case for the faults: failing when any scheduled fault (or a heal)
    // did not take effect, so CI never reads an untested run as a pass.
    if let Some(h) = &view.incomplete {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(xml_text(&format!("INCOMPLETE: {h}")));
        s.set_description(xml_text(
            &view
                .faults_failed
                .iter()
                .map(|[f, n, e]| format!("{f} on {}: {e}", if n.is_empty() { "?" } else { n }))
                .collect::<Vec<_>>()
                .join("\n"),
        ));
        let mut case = TestCase::new("faults", s);
        case.set_classname(format!("shakedown.{}.{}", view.system, view.workload));
        suite.add_test_case(case);
    } else if !view.windows.is_empty() {
        let mut case = TestCase::new("faults", TestCaseStatus::success());
        case.set_classname(format!("shakedown.{}.{}", view.system, view.workload));
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    let xml = report.to_string()?;
    let p = run_dir.join("junit.xml");
    crate::files::write_replacing(&p, xml).map_err(ReportError::write(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: a value holding U+FFFE made junit.xml not well-formed.
    #[test]
    fn xml_invalid_characters_are_written_as_text() {
        assert_eq!(xml_text("a\u{fffe}b\u{1}c\td"), "a\\u{fffe}b\\u{1}c\td");
        assert_eq!(xml_text("plain ✓ \u{10348}"), "plain ✓ \u{10348}");
    }
}
