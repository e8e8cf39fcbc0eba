//! One registry of systems. Each system module declares a [`Definition`]:
//! its catalogue entry (name, workloads, options with defaults and help)
//! and how its options become a typed configuration ([`Configured`]) that
//! makes its `System` and runs its clients. Adding a system is one module
//! and one line in [`REGISTRY`]; no name is compared anywhere else, and an
//! unknown name cannot get past [`Selection::new`].

use crate::gen::AnyGen;
use crate::opts::{OptInfo, Opts, UsageError};
use crate::work::{self, Work, WorkloadInfo};
use crate::{etcd, http, maelstrom, memory, postgres, redis, zookeeper};
use checkers::Checker;
use harness::lifecycle::{Outcome, Prepared, TestError, TestSpec, Workload};
use harness::runner::Client;
use harness::store::RunDir;
use harness::system::{NodeInfo, System};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// A `--system`, as `--help` lists it.
pub struct SystemInfo {
    pub name: &'static str,
    pub summary: &'static str,
    /// The catalogue names of the workloads it runs.
    pub workloads: &'static [&'static str],
    pub options: &'static [OptInfo],
}

/// What a system module declares.
pub trait Definition: Sync {
    fn info(&self) -> &'static SystemInfo;

    /// Reads the system's options (every key of its list is in `opts`) for
    /// `work`, once, into its typed configuration. May rewrite an option
    /// whose value another makes moot (test.json records what ran).
    fn configure(&self, work: &Work, opts: &mut Opts) -> Result<Box<dyn Configured>, UsageError>;
}

/// A system with its options read, for one workload.
pub trait Configured: Send + Sync {
    /// The system, for preflight, set-up and versions.
    fn system(&self) -> Arc<dyn System>;

    /// Runs the workload's clients on prepared nodes.
    fn run(
        &self,
        prepared: Prepared,
        spec: &TestSpec,
        run_dir: &RunDir,
        gens: Gens,
    ) -> Result<Outcome, TestError>;
}

/// Every system, in `--help`'s order.
pub static REGISTRY: &[&dyn Definition] = &[
    &etcd::def::Def,
    &redis::def::Def,
    &zookeeper::def::Def,
    &postgres::def::Def,
    &http::Def,
    &maelstrom::def::Def,
    &memory::Def,
];

/// The registry's catalogue entries.
pub fn systems() -> impl Iterator<Item = &'static SystemInfo> {
    REGISTRY.iter().map(|d| d.info())
}

/// A checked `--system`, `--workload` and `--opt` set.
pub struct Selection {
    pub system: &'static SystemInfo,
    pub workload: &'static WorkloadInfo,
    pub work: Work,
    opts: Opts,
    configured: Box<dyn Configured>,
}

impl Selection {
    /// Checks the names and every option's value: whatever is wrong is a
    /// usage error before anything runs.
    pub fn new(
        system: &str,
        workload: &str,
        given: &[(String, String)],
    ) -> Result<Selection, UsageError> {
        let def = REGISTRY
            .iter()
            .find(|d| d.info().name == system)
            .ok_or_else(|| UsageError::UnknownSystem {
                given: system.into(),
                known: systems().map(|s| s.name).collect::<Vec<_>>().join(", "),
            })?;
        let info = def.info();
        let wl = work::info(workload)
            .filter(|w| info.workloads.contains(&w.name))
            .ok_or_else(|| UsageError::UnknownWorkload {
                given: workload.into(),
                system: system.into(),
                known: info.workloads.join(", "),
            })?;
        let known: Vec<&OptInfo> = info.options.iter().chain(wl.options).collect();
        let mut opts = Opts::new(&known, given, system, workload)?;
        let work = (wl.parse)(&opts)?;
        let configured = def.configure(&work, &mut opts)?;
        Ok(Selection {
            system: info,
            workload: wl,
            work,
            opts,
            configured,
        })
    }

    /// The options in force, given or default.
    pub fn opts(&self) -> &BTreeMap<String, String> {
        self.opts.map()
    }

    /// The checkers for test.json: name and initial state.
    pub fn checkers(&self) -> Vec<(Checker, Value)> {
        self.work.checkers()
    }

    /// The system, for set-up and versions.
    pub fn system(&self) -> Arc<dyn System> {
        self.configured.system()
    }

    /// Runs the test on prepared nodes.
    pub fn execute(
        &self,
        prepared: Prepared,
        spec: &TestSpec,
        run_dir: &RunDir,
    ) -> Result<Outcome, TestError> {
        let cuts = spec.faults.contains(&harness::schedule::Fault::LostWrites);
        let gens = Gens::new(&self.work, spec.run.concurrency, cuts);
        self.configured.run(prepared, spec, run_dir, gens)
    }
}

/// test.json's description of the selection.
pub fn describe(sel: &Selection) -> Value {
    json!({
        "system": sel.system.name,
        "workload": sel.workload.name,
        "opts": sel.opts(),
        "checkers": sel.checkers().iter().map(|(c, init)| json!({"checker": c.name(), "init": init})).collect::<Vec<_>>(),
    })
}

/// Every worker's generators, made up front and each handed out once.
pub struct Gens {
    main: Vec<Mutex<Option<AnyGen>>>,
    finals: Vec<Mutex<Option<AnyGen>>>,
    has_final: bool,
}

impl Gens {
    /// `power_cuts`: lost-writes is among the faults (the register
    /// workload then ends with a read of every key it used).
    pub fn new(work: &Work, concurrency: usize, power_cuts: bool) -> Gens {
        // The highest key any worker used, for the final reads.
        let highest: Arc<AtomicU64> = Arc::default();
        let finals = |s| work.final_generator(s, concurrency, &highest, power_cuts);
        Gens {
            main: (0..concurrency)
                .map(|s| Mutex::new(Some(work.generator(s, concurrency, &highest))))
                .collect(),
            finals: (0..concurrency).map(|s| Mutex::new(finals(s))).collect(),
            has_final: finals(0).is_some(),
        }
    }
}

/// The generic workload: the generators and a client maker.
pub struct Plan<F> {
    pub gens: Gens,
    pub make: F,
}

impl<F> Plan<F> {
    pub fn new(gens: Gens, make: F) -> Arc<Plan<F>> {
        Arc::new(Plan { gens, make })
    }
}

impl<C, F> Workload for Plan<F>
where
    C: Client + 'static,
    F: Fn(usize, &[NodeInfo]) -> C + Send + Sync + 'static,
{
    type Client = C;
    type Gen = AnyGen;

    fn client(&self, slot: usize, nodes: &[NodeInfo]) -> C {
        (self.make)(slot, nodes)
    }

    fn generator(&self, slot: usize) -> AnyGen {
        take(&self.gens.main[slot]).unwrap_or(AnyGen::Once(crate::gen::Once(Vec::new())))
    }

    fn has_final_phase(&self) -> bool {
        self.gens.has_final
    }

    fn final_generator(&self, slot: usize) -> Option<AnyGen> {
        take(&self.gens.finals[slot])
    }
}

fn take(m: &Mutex<Option<AnyGen>>) -> Option<AnyGen> {
    m.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// A workload the catalogue gives a system that its definition has no
/// client for: a bug in the catalogue, said as a usage error.
pub fn unsupported(system: &str, work: &Work) -> UsageError {
    UsageError::Invalid(format!(
        "--system {system} has no client for workload {work:?} (catalogue and definition disagree)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Options a system cannot run without, for tests.
    fn needed(sys: &SystemInfo) -> Vec<(String, String)> {
        let dir = env!("CARGO_MANIFEST_DIR").to_string() + "/../tests/maelstrom-nodes";
        if sys.name == "maelstrom" {
            opts(&[("binary", &dir), ("run", "echo")])
        } else if sys.options.iter().any(|o| o.key == "binary") {
            opts(&[("binary", "/bin/true")])
        } else {
            Vec::new()
        }
    }

    #[test]
    fn every_system_configures_every_workload_it_lists_and_nothing_else() {
        let mut names = std::collections::HashSet::new();
        for sys in systems() {
            assert!(names.insert(sys.name), "{} twice", sys.name);
            for w in work::WORKLOADS {
                let r = Selection::new(sys.name, w.name, &needed(sys));
                if sys.workloads.contains(&w.name) {
                    let s = r.unwrap_or_else(|e| panic!("{} {}: {e}", sys.name, w.name));
                    assert!(!s.checkers().is_empty());
                    assert_eq!(s.system().name(), sys.name);
                } else {
                    assert!(
                        matches!(r, Err(UsageError::UnknownWorkload { .. })),
                        "{} {}",
                        sys.name,
                        w.name
                    );
                }
            }
            for w in sys.workloads {
                assert!(
                    work::info(w).is_some(),
                    "{}: {w} not in the catalogue",
                    sys.name
                );
            }
        }
    }

    #[test]
    fn unknown_names_and_keys_are_usage_errors() {
        let e = Selection::new("consul", "register", &[]).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("--system \"consul\" is not known; choose one of etcd, redis"),
            "{e}"
        );
        let e = Selection::new("etcd", "bank", &[]).err().unwrap();
        assert!(e.to_string().contains("not a workload of etcd"), "{e}");
        let e = Selection::new("etcd", "register", &opts(&[("recipe", "x")]))
            .err()
            .unwrap();
        assert!(
            e.to_string().starts_with("--opt recipe: not an option"),
            "{e}"
        );
        let e = Selection::new("etcd", "register", &opts(&[("keys", "0")]))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "--opt keys=0: a positive whole number is needed"
        );
    }

    #[test]
    fn postgres_list_append_is_checked_as_list_append_at_a_valid_isolation() {
        let s = Selection::new("postgres", "list-append", &[]).unwrap();
        assert_eq!(s.opts()["isolation"], "serializable");
        let names: Vec<&str> = s.checkers().iter().map(|(c, _)| c.name()).collect();
        assert_eq!(names, ["list-append"]);
        let e = Selection::new(
            "postgres",
            "list-append",
            &opts(&[("isolation", "snapshot")]),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("--opt isolation=snapshot"), "{e}");
        for (sys, wl) in [
            ("etcd", "list-append"),
            ("etcd", "rw-register"),
            ("postgres", "rw-register"),
        ] {
            let s = Selection::new(sys, wl, &[]).unwrap();
            let names: Vec<&str> = s.checkers().iter().map(|(c, _)| c.name()).collect();
            assert_eq!(names, [wl]);
        }
        assert!(Selection::new("redis", "list-append", &[]).is_err());
        let e = Selection::new("postgres", "bank", &opts(&[("accounts", "1")]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("--opt accounts=1"), "{e}");
    }

    #[test]
    fn redlock_runs_independent_primaries_and_says_so() {
        let s = Selection::new("redis", "lock", &opts(&[("recipe", "redlock")])).unwrap();
        assert_eq!(s.opts()["failover"], "none");
        let e = Selection::new(
            "redis",
            "lock",
            &opts(&[("recipe", "redlock"), ("failover", "sentinel")]),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("--opt recipe=redlock") && e.contains("failover"),
            "{e}"
        );
        let e = Selection::new("redis", "lock", &opts(&[("persistence", "rdb")]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("--opt persistence=rdb"), "{e}");
        let s = Selection::new("redis", "lock", &[]).unwrap();
        assert_eq!(
            (
                s.opts()["failover"].as_str(),
                s.opts()["persistence"].as_str()
            ),
            ("sentinel", "aof")
        );
    }
}
