//! `--opt KEY=VALUE`: the catalogue's option lists, the checked map every
//! selection carries (each key present, defaults filled in), and typed
//! reads of it. Each system reads its options once, into its own typed
//! configuration; a bad value is a [`UsageError`] that names the flag.

use std::collections::BTreeMap;

/// One `--opt` key of a system or workload, as `shakedown test --help`
/// lists it. The default is written here and nowhere else.
pub struct OptInfo {
    pub key: &'static str,
    pub default: &'static str,
    pub summary: &'static str,
}

/// A `--system`, `--workload` or `--opt` the user got wrong. The message
/// names the flag and what would be right; the binary exits 3 with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("--system {given:?} is not known; choose one of {known}")]
    UnknownSystem { given: String, known: String },
    #[error("--workload {given:?} is not a workload of {system}; choose one of {known}")]
    UnknownWorkload {
        given: String,
        system: String,
        known: String,
    },
    #[error(
        "--opt {key}: not an option of --system {system} --workload {workload}; known: {known}"
    )]
    UnknownOpt {
        key: String,
        system: String,
        workload: String,
        known: String,
    },
    /// A value that does not parse, or is out of range: `need` says what
    /// would do ("choose on or off", "a TCP port is needed").
    #[error("--opt {key}={value}: {need}")]
    BadValue {
        key: String,
        value: String,
        need: String,
    },
    /// An option the system cannot run without.
    #[error("--system {system} needs --opt {key}=PATH ({what})")]
    Missing {
        system: String,
        key: &'static str,
        what: &'static str,
    },
    /// Anything else, in a message that names the flag itself (options
    /// that contradict each other, a file that is not executable).
    #[error("{0}")]
    Invalid(String),
}

/// Every option of a system and workload, checked against their lists:
/// each known key present (given or default), no unknown key.
#[derive(Clone, Debug, Default)]
pub struct Opts {
    map: BTreeMap<String, String>,
    /// The keys the user gave (the rest are defaults).
    given: std::collections::BTreeSet<String>,
}

impl Opts {
    /// Fills in defaults, then the given pairs; an unknown key is an error
    /// listing the known ones.
    pub fn new(
        known: &[&OptInfo],
        given: &[(String, String)],
        system: &str,
        workload: &str,
    ) -> Result<Opts, UsageError> {
        let mut map: BTreeMap<String, String> = known
            .iter()
            .map(|o| (o.key.to_string(), o.default.to_string()))
            .collect();
        for (k, v) in given {
            if !known.iter().any(|o| o.key == k) {
                let keys: Vec<&str> = known.iter().map(|o| o.key).collect();
                return Err(UsageError::UnknownOpt {
                    key: k.clone(),
                    system: system.into(),
                    workload: workload.into(),
                    known: if keys.is_empty() {
                        "none".into()
                    } else {
                        keys.join(", ")
                    },
                });
            }
            map.insert(k.clone(), v.clone());
        }
        let given = given.iter().map(|(k, _)| k.clone()).collect();
        Ok(Opts { map, given })
    }

    /// The checked pairs, as test.json records them and the replay line
    /// prints them.
    pub fn map(&self) -> &BTreeMap<String, String> {
        &self.map
    }

    /// Rewrites a value after parsing (e.g. Redlock has no failover), so that
    /// test.json and the replay line say what ran.
    pub fn set(&mut self, key: &str, value: &str) {
        self.map.insert(key.into(), value.into());
    }

    /// Whether the user gave `key` (rather than taking its default).
    pub fn given(&self, key: &str) -> bool {
        self.given.contains(key)
    }

    /// The raw value; "" for a key this selection does not have (a system
    /// reads only keys its own list declares, so that does not happen).
    pub fn str(&self, key: &str) -> &str {
        self.map.get(key).map(String::as_str).unwrap_or("")
    }

    fn bad(&self, key: &str, need: impl Into<String>) -> UsageError {
        UsageError::BadValue {
            key: key.into(),
            value: self.str(key).into(),
            need: need.into(),
        }
    }

    /// A whole number above zero.
    pub fn positive(&self, key: &str) -> Result<u64, UsageError> {
        self.str(key)
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| self.bad(key, "a positive whole number is needed"))
    }

    /// A whole number, zero allowed; `what` names the unit ("ms").
    pub fn whole(&self, key: &str, what: &str) -> Result<u64, UsageError> {
        self.str(key)
            .parse::<u64>()
            .map_err(|_| self.bad(key, format!("a whole number of {what} is needed")))
    }

    /// One of `allowed`, returned as the catalogue's own string.
    pub fn choice(&self, key: &str, allowed: &[&'static str]) -> Result<&'static str, UsageError> {
        let v = self.str(key);
        allowed.iter().copied().find(|a| *a == v).ok_or_else(|| {
            self.bad(
                key,
                match allowed {
                    [a, b] => format!("choose {a} or {b}"),
                    _ => format!(
                        "choose {} or {}",
                        allowed[..allowed.len() - 1].join(", "),
                        allowed[allowed.len() - 1]
                    ),
                },
            )
        })
    }

    /// One of `table`'s names, as its value.
    pub fn pick<T: Copy>(&self, key: &str, table: &[(&'static str, T)]) -> Result<T, UsageError> {
        match table.iter().find(|(n, _)| *n == self.str(key)) {
            Some((_, v)) => Ok(*v),
            None => {
                let names: Vec<&'static str> = table.iter().map(|(n, _)| *n).collect();
                Err(self
                    .choice(key, &names)
                    .err()
                    .unwrap_or_else(|| self.bad(key, "")))
            }
        }
    }

    /// on or off.
    pub fn on_off(&self, key: &str) -> Result<bool, UsageError> {
        Ok(self.choice(key, &["on", "off"])? == "on")
    }

    /// A probability, 0 to 1.
    pub fn probability(&self, key: &str) -> Result<f64, UsageError> {
        self.str(key)
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| self.bad(key, "a probability from 0 to 1 is needed"))
    }

    /// A TCP port other than 0.
    pub fn port(&self, key: &str) -> Result<u16, UsageError> {
        self.str(key)
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| self.bad(key, "a TCP port is needed"))
    }

    /// A number within `range`; `need` says so in the user's terms.
    pub fn within(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
        need: &str,
    ) -> Result<u64, UsageError> {
        self.str(key)
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| self.bad(key, need))
    }

    /// An error about `key`'s value, for checks only its system can make.
    pub fn invalid(&self, key: &str, need: impl Into<String>) -> UsageError {
        self.bad(key, need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[OptInfo] = &[
        OptInfo {
            key: "keys",
            default: "5",
            summary: "",
        },
        OptInfo {
            key: "mode",
            default: "a",
            summary: "",
        },
    ];

    fn opts(given: &[(&str, &str)]) -> Result<Opts, UsageError> {
        let known: Vec<&OptInfo> = KNOWN.iter().collect();
        let given: Vec<(String, String)> = given
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Opts::new(&known, &given, "s", "w")
    }

    #[test]
    fn defaults_fill_in_and_unknown_keys_are_named() {
        let o = opts(&[("mode", "b")]).unwrap();
        assert_eq!((o.str("keys"), o.str("mode")), ("5", "b"));
        let e = opts(&[("nope", "1")]).unwrap_err().to_string();
        assert_eq!(
            e,
            "--opt nope: not an option of --system s --workload w; known: keys, mode"
        );
    }

    #[test]
    fn typed_reads_name_the_flag_and_what_would_do() {
        let o = opts(&[("keys", "0"), ("mode", "c")]).unwrap();
        assert_eq!(
            o.positive("keys").unwrap_err().to_string(),
            "--opt keys=0: a positive whole number is needed"
        );
        assert_eq!(
            o.choice("mode", &["a", "b"]).unwrap_err().to_string(),
            "--opt mode=c: choose a or b"
        );
        assert_eq!(
            o.choice("mode", &["a", "b", "d"]).unwrap_err().to_string(),
            "--opt mode=c: choose a, b or d"
        );
        let o = opts(&[("keys", "70000")]).unwrap();
        assert!(o.port("keys").is_err());
        assert_eq!(o.positive("keys"), Ok(70000));
        assert_eq!(opts(&[]).unwrap().choice("mode", &["a", "b"]), Ok("a"));
    }
}
