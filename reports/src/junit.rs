//! junit.xml: one test case per checker; a failure's message is the explanation.

use crate::view::View;
use crate::ReportError;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::path::Path;

pub fn write(run_dir: &Path, view: &View) -> Result<(), ReportError> {
    let mut report = Report::new("shakedown");
    let mut suite = TestSuite::new(format!("{}-{}", view.system, view.workload));
    for c in &view.checkers {
        let status = match c.verdict.as_str() {
            "valid" => TestCaseStatus::success(),
            v => {
                let mut s = TestCaseStatus::non_success(if v == "invalid" {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                });
                let msg = c
                    .anomalies
                    .first()
                    .map(|a| a.message.clone())
                    .unwrap_or_else(|| c.summary.clone());
                s.set_message(msg);
                s.set_description(
                    c.anomalies
                        .iter()
                        .map(|a| format!("{} ({}): {}", a.kind, a.severity, a.message))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
                s
            }
        };
        let mut case = TestCase::new(c.name.clone(), status);
        case.set_classname(format!("shakedown.{}.{}", view.system, view.workload));
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
    report.add_test_suite(suite);
    let xml = report
        .to_string()
        .map_err(|e| ReportError(format!("junit: {e}")))?;
    let p = run_dir.join("junit.xml");
    std::fs::write(&p, xml).map_err(|e| ReportError(format!("{}: {e}", p.display())))
}
