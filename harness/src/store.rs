//! The store of runs (docs/formats.md):
//! `store/<system>-<workload>/<YYYYMMDDTHHMMSS>/` with test.json,
//! history.jsonl, results.json, nodes/<node>/ and the fault journal, and
//! `store/latest` pointing at the newest run.
//!
//! The fault journal is written (and synced) *before* a fault is applied, so
//! that `shakedown heal` can undo whatever a crashed run left behind.

use checkers::history::jsonl::HistoryWriter;
use checkers::rundata::{JournalEntry, TestFile};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StoreError {
    pub path: String,
    pub message: String,
}

fn err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// `YYYYMMDDTHHMMSS` in UTC.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub struct Store {
    pub root: PathBuf,
}

/// One run's directory.
pub struct RunDir {
    pub path: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// Makes a new run directory for `system`-`workload` at `now` and points
    /// `latest` at it.
    pub fn create_run(
        &self,
        system: &str,
        workload: &str,
        now: SystemTime,
    ) -> Result<RunDir, StoreError> {
        for part in [system, workload] {
            if part.is_empty()
                || !part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(err(
                    &self.root,
                    format!("{part:?} cannot name a run directory"),
                ));
            }
        }
        let test = format!("{system}-{workload}");
        let base = timestamp(now);
        let mut name = base.clone();
        let mut n = 1;
        // Two runs in the same second get -2, -3, ...
        let path = loop {
            let p = self.root.join(&test).join(&name);
            if !p.exists() {
                break p;
            }
            n += 1;
            name = format!("{base}-{n}");
        };
        std::fs::create_dir_all(path.join("nodes")).map_err(|e| err(&path, e))?;
        // Swap `latest` atomically: a new link beside it, renamed over it.
        let latest = self.root.join("latest");
        let tmp = self.root.join(format!(".latest-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(Path::new(&test).join(&name), &tmp).map_err(|e| err(&tmp, e))?;
        std::fs::rename(&tmp, &latest).map_err(|e| err(&latest, e))?;
        Ok(RunDir { path })
    }

    /// The newest run, if any.
    pub fn latest(&self) -> Option<PathBuf> {
        let target = std::fs::read_link(self.root.join("latest")).ok()?;
        let p = self.root.join(target);
        p.is_dir().then_some(p)
    }
}

impl RunDir {
    /// Writes test.json (every parameter, the seed, versions) before the run starts.
    pub fn write_test_json(&self, test: &TestFile) -> Result<(), StoreError> {
        let p = self.path.join("test.json");
        std::fs::write(&p, checkers::rundata::to_text(test)).map_err(|e| err(&p, e))
    }

    /// test.json read back.
    pub fn test_json(&self) -> Result<TestFile, StoreError> {
        let p = self.path.join("test.json");
        let text = std::fs::read(&p).map_err(|e| err(&p, e))?;
        checkers::rundata::parse(&p, &text).map_err(|e| StoreError {
            path: p.display().to_string(),
            message: match e {
                checkers::rundata::RunFileError::Malformed { source, .. } => source.to_string(),
                checkers::rundata::RunFileError::Io { source, .. } => source.to_string(),
            },
        })
    }

    /// Adds (or replaces) one field of test.json.
    pub fn set_test_field(&self, key: &str, value: Value) -> Result<(), StoreError> {
        let p = self.path.join("test.json");
        let mut test = serde_json::to_value(self.test_json()?).map_err(|e| err(&p, e))?;
        if let Value::Object(m) = &mut test {
            m.insert(key.to_string(), value);
        }
        let test: TestFile = serde_json::from_value(test).map_err(|e| err(&p, e))?;
        self.write_test_json(&test)
    }

    /// The history, written and flushed line by line.
    pub fn history(&self) -> Result<HistoryWriter<File>, StoreError> {
        let p = self.path.join("history.jsonl");
        let f = File::create(&p).map_err(|e| err(&p, e))?;
        Ok(HistoryWriter::new(f))
    }

    /// Where a node's logs go.
    pub fn node_dir(&self, node: &str) -> Result<PathBuf, StoreError> {
        let p = self.path.join("nodes").join(node);
        std::fs::create_dir_all(&p).map_err(|e| err(&p, e))?;
        Ok(p)
    }

    pub fn journal(&self) -> Journal {
        Journal {
            path: self.path.join("faults.jsonl"),
        }
    }
}

/// Faults as they are about to be applied, one [`JournalEntry`] a line, synced.
pub struct Journal {
    pub path: PathBuf,
}

impl Journal {
    /// Records `fault` durably; call before applying it.
    pub fn record(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| err(&self.path, e))?;
        let mut line = entry.to_json().to_string();
        line.push('\n');
        f.write_all(line.as_bytes())
            .map_err(|e| err(&self.path, e))?;
        f.sync_data().map_err(|e| err(&self.path, e))
    }

    /// Every fault recorded; a torn last line (a crash mid-write) is skipped.
    pub fn read(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(&self.path, e)),
        };
        let lines: Vec<String> = BufReader::new(f)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| err(&self.path, e))?;
        let last = lines.len();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            match serde_json::from_str(l) {
                Ok(v) => out.push(JournalEntry::from_json(v)),
                Err(_) if i + 1 == last => {}
                Err(e) => return Err(err(&self.path, format!("line {}: {e}", i + 1))),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_civil_time() {
        let t = |s: u64| timestamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(0), "19700101T000000");
        assert_eq!(t(951_782_400), "20000229T000000");
        assert_eq!(t(1_795_436_040), "20261123T121400");
        assert_eq!(t(4_102_444_799), "20991231T235959");
    }

    #[test]
    fn runs_latest_test_json_history_and_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.latest().is_none());
        let now = UNIX_EPOCH + Duration::from_secs(1_795_436_040);
        let a = store.create_run("etcd", "register", now).unwrap();
        assert!(a.path.ends_with("etcd-register/20261123T121400"));
        let b = store.create_run("etcd", "register", now).unwrap();
        assert!(b.path.ends_with("etcd-register/20261123T121400-2"));
        assert_eq!(store.latest().unwrap(), b.path);
        assert_eq!(
            std::fs::read_link(dir.path().join("latest")).unwrap(),
            Path::new("etcd-register/20261123T121400-2")
        );
        assert!(store.create_run("etcd", "../x", now).is_err());

        b.write_test_json(&serde_json::from_value(json!({"seed": 7})).unwrap())
            .unwrap();
        let t: Value =
            serde_json::from_str(&std::fs::read_to_string(b.path.join("test.json")).unwrap())
                .unwrap();
        assert_eq!(t["seed"], 7);
        assert!(b.node_dir("n1").unwrap().is_dir());

        let j = b.journal();
        assert!(j.read().unwrap().is_empty());
        let line = |v: Value| JournalEntry::from_json(v);
        j.record(&line(
            json!({"fault": "partition", "grudge": {"n1": ["n2"]}}),
        ))
        .unwrap();
        j.record(&line(json!({"fault": "pause", "node": "n3"})))
            .unwrap();
        // A crash mid-write tears the last line: it is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&j.path)
            .unwrap()
            .write_all(b"{\"fault\":\"ki")
            .unwrap();
        let faults = j.read().unwrap();
        assert_eq!(faults.len(), 2);
        assert_eq!(faults[1].to_json()["node"], "n3");
    }
}
