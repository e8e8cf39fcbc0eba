//! The `--help` texts that list systems, workloads, faults and models. They
//! are rendered from the same catalogues as the tables in docs/ (the
//! registry's `SystemInfo`, `WORKLOADS`, `Fault::ALL`, `Checker::ALL`), and
//! tests/docs.rs checks both, so neither can drift from the code.

use checkers::rundata::Fault;
use checkers::txn::MODEL_NAMES;
use checkers::Checker;
use harness::nemesis::Partition;
use workloads::{systems, OptInfo, WORKLOADS};

/// `--nemesis`: every fault's name.
pub fn nemesis_flag() -> String {
    let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
    format!("Faults, comma separated ({}) or none", names.join(", "))
}

/// `--partition`: every strategy's name.
pub fn partition_flag() -> String {
    let names: Vec<&str> = Partition::ALL.iter().map(|p| p.name()).collect();
    format!(
        "Partition strategies to draw from, comma separated: {} (the system's primary cut off); default all",
        names.join(", ")
    )
}

fn option_lines(s: &mut String, opts: &[OptInfo]) {
    for o in opts {
        *s += &format!("            {}=[{}]  {}\n", o.key, o.default, o.summary);
    }
}

/// What `shakedown test --help` prints after the flags.
pub fn test_after() -> String {
    let mut s = String::from(
        "Systems (--system) and their options (--opt KEY=VALUE, default in brackets):\n",
    );
    for sys in systems() {
        s += &format!(
            "  {:<9} {}\n            workloads: {}\n",
            sys.name,
            sys.summary,
            sys.workloads.join(", ")
        );
        option_lines(&mut s, sys.options);
    }
    s += "Workloads (--workload):\n";
    for w in WORKLOADS {
        s += &format!("  {:<9} {}\n", w.name, w.summary);
        option_lines(&mut s, w.options);
    }
    s += "Faults (--nemesis, comma separated, or none) and their options (--opt KEY=VALUE):\n";
    for f in Fault::ALL {
        s += &format!("  {:<9} {}\n", f.name(), f.summary());
        for o in f.options() {
            s += &format!("            {}=[{}]  {}\n", o.key, o.default, o.summary);
        }
    }
    s += "\nExit codes: 0 valid, 1 invalid, 2 unknown, 3 usage error, 4 infrastructure error, \
          130 interrupted (faults healed, partial history kept).\n\
          Ctrl-C once: stop, heal, fetch logs, check what was recorded. Twice: also skip the logs (never the heal).";
    s
}

/// `check --model`: every name it takes.
pub fn model_flag() -> String {
    let names: Vec<&str> = Checker::ALL.iter().map(|c| c.name()).collect();
    format!("The model or checker: {}", names.join(", "))
}

/// `check --consistency-models`: every model's name.
pub fn consistency_flag() -> String {
    format!(
        "list-append and rw-register: the models the history must satisfy, M[,M...] ({})",
        MODEL_NAMES.join(", ")
    )
}

/// What `shakedown check --help` prints after the flags.
pub fn check_after() -> String {
    let line = |c: &Checker| format!("  {:<17} {}\n", c.name(), c.summary());
    let (linear, others): (Vec<Checker>, Vec<Checker>) = Checker::ALL
        .into_iter()
        .partition(|c| matches!(c, Checker::Linear(_)));
    let mut s = String::from("Models (linearizability):\n");
    s.extend(linear.iter().map(line));
    s += "Checkers:\n";
    s.extend(others.iter().map(line));
    s += "
Formats (--format auto sniffs): jsonl (shakedown's history.jsonl), edn (Jepsen history.edn,
Knossos data files, Porcupine kv files), jepsen-log (Jepsen text logs).

Semantics: ok took effect; fail did not; info, or an invocation that never completed, may take
effect at any time after its invocation, or never. A read with no result constrains nothing.";
    s
}
