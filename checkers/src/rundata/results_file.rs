//! results.json of a run: each checker's result, the overall verdict and
//! the fault summary.

use crate::faults::FaultSummary;
use crate::verdict::{CheckResult, Validity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// results.json of a run (`check --out` writes one [`CheckResult`] instead;
/// [`ResultsFile::from_one`] reads that as a run with one checker).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultsFile {
    /// The checkers' verdict: false beats unknown beats true.
    pub valid: Validity,
    /// By checker name.
    pub checkers: BTreeMap<String, CheckResult>,
    /// Which faults took effect.
    #[serde(default)]
    pub faults: FaultSummary,
    /// What the history reader skipped (a torn last line).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl ResultsFile {
    /// One checker's result read as a run with that one checker.
    pub fn from_one(r: CheckResult) -> ResultsFile {
        ResultsFile {
            valid: r.valid,
            checkers: BTreeMap::from([(r.model.clone(), r)]),
            faults: FaultSummary::default(),
            warnings: Vec::new(),
        }
    }

    /// The run's verdict: invalid if a checker found it so; else
    /// incomplete when a scheduled fault did not take effect.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(self.valid, self.faults.incomplete())
    }
}

/// A run's verdict, as the report, the store's index and junit.xml show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
    Unknown,
    /// Not every scheduled fault took effect, and no checker found the
    /// history invalid: nothing can be concluded.
    Incomplete,
}

impl Verdict {
    pub fn of(checkers: Validity, incomplete: bool) -> Verdict {
        match checkers {
            Validity::Invalid => Verdict::Invalid,
            _ if incomplete => Verdict::Incomplete,
            Validity::Valid => Verdict::Valid,
            Validity::Unknown => Verdict::Unknown,
        }
    }

    /// The verdict's word: Validity's, or "incomplete".
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Valid => Validity::Valid.word(),
            Verdict::Invalid => Validity::Invalid.word(),
            Verdict::Unknown => Validity::Unknown.word(),
            Verdict::Incomplete => "incomplete",
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.word())
    }
}
