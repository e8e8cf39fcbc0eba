//! The docs and `--help` come from the same catalogues (the registry's
//! systems, the workloads, `Fault::ALL`, `Checker::ALL`, the consistency
//! models), so neither can drift from the code:
//!
//! - the tables between `<!-- generated: shakedown help NAME -->` and
//!   `<!-- end -->` in docs/ are rendered here from the catalogues and must
//!   match; after changing a catalogue, update them with
//!   `SHAKEDOWN_BLESS=1 cargo test --test docs` (and read the diff; a test
//!   that read a page before it was rewritten may fail once: run it again);
//! - `shakedown test --help` and `check --help` name every entry;
//! - docs/faults.md has a section per fault;
//! - README.md and ARCHITECTURE.md stay short, and no page cites a file
//!   outside the repository or links to one that does not exist.

use checkers::rundata::Fault;
use checkers::txn::{forbidden_by, ANOMALY_TYPES, MODEL_NAMES};
use checkers::Checker;
use harness::nemesis::Partition;
use std::path::{Path, PathBuf};
use std::process::Command;
use workloads::{systems, OptInfo, WORKLOADS};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn help(verb: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args([verb, "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{verb} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// Text for a table cell: pipes escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn options_cell(opts: &[OptInfo]) -> String {
    let v: Vec<String> = opts
        .iter()
        .map(|o| format!("`{}={}`: {}", o.key, o.default, cell(o.summary)))
        .collect();
    v.join("<br>")
}

fn systems_table() -> String {
    let mut s = String::from("| `--system` | what runs | workloads |\n|---|---|---|\n");
    for sys in systems() {
        let w: Vec<String> = sys.workloads.iter().map(|w| format!("`{w}`")).collect();
        s += &format!(
            "| `{}` | {} | {} |\n",
            sys.name,
            cell(sys.summary),
            w.join(", ")
        );
    }
    s += "\n| `--system` | `--opt KEY` | default | meaning |\n|---|---|---|---|\n";
    for sys in systems() {
        for o in sys.options {
            let default = match o.default {
                "" => "(none)".to_string(),
                d => format!("`{d}`"),
            };
            s += &format!(
                "| `{}` | `{}` | {default} | {} |\n",
                sys.name,
                o.key,
                cell(o.summary)
            );
        }
    }
    s
}

fn workloads_table() -> String {
    let mut s = String::from(
        "| `--workload` | what it does, and its checkers | options (`--opt KEY=DEFAULT`) |\n|---|---|---|\n",
    );
    for w in WORKLOADS {
        s += &format!(
            "| `{}` | {} | {} |\n",
            w.name,
            cell(w.summary),
            options_cell(w.options)
        );
    }
    s
}

fn faults_table() -> String {
    let mut s = String::from(
        "| `--nemesis` | what it does | history events | options (`--opt KEY=DEFAULT`) |\n|---|---|---|---|\n",
    );
    for f in Fault::ALL {
        let (start, stop) = f.events();
        let opts: Vec<String> = f
            .options()
            .iter()
            .map(|o| format!("`{}={}`: {}", o.key, o.default, cell(o.summary)))
            .collect();
        s += &format!(
            "| `{}` | {} | `{start}` / `{stop}` | {} |\n",
            f.name(),
            cell(f.summary()),
            opts.join("<br>")
        );
    }
    s
}

fn models_table() -> String {
    let mut s = String::from("| `--model` | kind | what it checks |\n|---|---|---|\n");
    for c in Checker::ALL {
        let kind = match c {
            Checker::Linear(_) => "linearizability",
            Checker::Txn(..) => "transactions",
            _ => "safety",
        };
        s += &format!("| `{}` | {kind} | {} |\n", c.name(), cell(c.summary()));
    }
    s
}

fn consistency_table() -> String {
    let mut s = String::from("| anomaly |");
    for m in MODEL_NAMES {
        s += &format!(" {m} |");
    }
    s += "\n|---|";
    s += &"---|".repeat(MODEL_NAMES.len());
    s += "\n";
    for a in ANOMALY_TYPES {
        s += &format!("| `{a}` |");
        for m in MODEL_NAMES {
            s += if forbidden_by(m, a) { " x |" } else { "  |" };
        }
        s += "\n";
    }
    s
}

/// A generated section: the page, its name in the marker, its renderer.
type Section = (&'static str, &'static str, fn() -> String);

/// Every generated section.
fn sections() -> Vec<Section> {
    vec![
        (
            "docs/systems.md",
            "systems",
            systems_table as fn() -> String,
        ),
        ("docs/systems.md", "workloads", workloads_table),
        ("docs/faults.md", "faults", faults_table),
        ("docs/checkers.md", "models", models_table),
        ("docs/checkers.md", "consistency-models", consistency_table),
    ]
}

const END: &str = "<!-- end -->";

fn start_marker(name: &str) -> String {
    format!("<!-- generated: shakedown help {name} -->")
}

/// The byte range of a generated section's body (between the markers).
fn body_range(text: &str, file: &str, name: &str) -> std::ops::Range<usize> {
    let m = start_marker(name);
    let start = text
        .find(&m)
        .unwrap_or_else(|| panic!("{file}: no `{m}` marker"))
        + m.len();
    let start = start + usize::from(text[start..].starts_with('\n'));
    let end = start
        + text[start..]
            .find(END)
            .unwrap_or_else(|| panic!("{file}: `{m}` has no `{END}` after it"));
    start..end
}

/// The lines that differ, as `-` (in the file) and `+` (generated), with
/// the common lines around them: a longest-common-subsequence diff (the
/// tables are small).
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("- {}\n", a[i]);
            i += 1;
        } else {
            out += &format!("+ {}\n", b[j]);
            j += 1;
        }
    }
    out
}

#[test]
fn generated_tables_match_the_catalogues() {
    let bless = std::env::var_os("SHAKEDOWN_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (file, name, render) in sections() {
        let path = root().join(file);
        let text = read(file);
        let range = body_range(&text, file, name);
        let want = render();
        if text[range.clone()] == want {
            continue;
        }
        if bless {
            let mut new = text.clone();
            new.replace_range(range, &want);
            std::fs::write(&path, new).unwrap();
        } else {
            stale.push(format!(
                "{file}: the `{name}` table is not the catalogue's:\n{}",
                diff(&text[range], &want)
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nUpdate them with: SHAKEDOWN_BLESS=1 cargo test --test docs",
        stale.join("\n")
    );
}

/// The help of one flag in `--help`: its line, and the lines under it up to
/// the next flag (clap puts a long help on the lines below the flag).
fn flag_line(help: &str, flag: &str) -> String {
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(flag));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no {flag} in --help"));
    let rest: Vec<&str> = lines
        .take_while(|l| !l.trim_start().starts_with('-') && !l.trim().is_empty())
        .collect();
    format!("{first} {}", rest.join(" "))
}

#[test]
fn test_help_names_every_fault_system_workload_and_option() {
    let h = help("test");
    let nemesis = flag_line(&h, "--nemesis");
    for f in Fault::ALL {
        assert!(nemesis.contains(f.name()), "--nemesis misses {}", f.name());
        assert!(
            h.contains(&format!("  {:<9} {}", f.name(), f.summary())),
            "test --help misses the fault {}",
            f.name()
        );
        for o in f.options() {
            assert!(
                h.contains(&format!("{}=[{}]", o.key, o.default)),
                "{}",
                o.key
            );
        }
    }
    let partition = flag_line(&h, "--partition");
    for p in Partition::ALL {
        assert!(
            partition.contains(p.name()),
            "--partition misses {}",
            p.name()
        );
    }
    for sys in systems() {
        assert!(h.contains(&format!("  {:<9} {}", sys.name, sys.summary)));
        assert!(h.contains(&format!("workloads: {}", sys.workloads.join(", "))));
        for o in sys.options {
            assert!(
                h.contains(&format!("{}=[{}]  {}", o.key, o.default, o.summary)),
                "{}: {}",
                sys.name,
                o.key
            );
        }
    }
    for w in WORKLOADS {
        assert!(
            h.contains(&format!("  {:<9} {}", w.name, w.summary)),
            "{}",
            w.name
        );
        for o in w.options {
            assert!(h.contains(&format!("{}=[{}]  {}", o.key, o.default, o.summary)));
        }
    }
}

#[test]
fn check_help_names_every_model_and_consistency_model() {
    let h = help("check");
    let model = flag_line(&h, "--model");
    for c in Checker::ALL {
        assert!(model.contains(c.name()), "--model misses {}", c.name());
        assert!(
            h.contains(&format!("{:<17} {}", c.name(), c.summary())),
            "check --help misses {}",
            c.name()
        );
    }
    let cm = flag_line(&h, "--consistency-models");
    for m in MODEL_NAMES {
        assert!(cm.contains(m), "--consistency-models misses {m}");
    }
}

#[test]
fn faults_doc_has_a_section_per_fault_and_strategy() {
    let doc = read("docs/faults.md");
    for f in Fault::ALL {
        let heading = format!("\n## `{}`", f.name());
        assert!(doc.contains(&heading), "docs/faults.md has no `{heading}`");
        let (start, stop) = f.events();
        assert!(doc.contains(&format!("`{start}`")) && doc.contains(&format!("`{stop}`")));
    }
    for p in Partition::ALL {
        assert!(
            doc.contains(&format!("`{}`", p.name())),
            "docs/faults.md does not name the partition strategy {}",
            p.name()
        );
    }
}

#[test]
fn docs_sections_name_every_system_verb_and_checker() {
    let systems_doc = read("docs/systems.md");
    for sys in systems() {
        assert!(
            systems_doc.contains(&format!("\n## `{}`", sys.name)),
            "docs/systems.md has no section for {}",
            sys.name
        );
    }
    let guide = read("docs/guide.md");
    for verb in ["test", "check", "cluster", "heal", "doctor", "report"] {
        assert!(
            guide.contains(&format!("\n## `shakedown {verb}")),
            "docs/guide.md has no section for {verb}"
        );
    }
    let checkers_doc = read("docs/checkers.md");
    for c in Checker::ALL {
        assert!(checkers_doc.contains(&format!("`{}`", c.name())));
    }
    for a in ANOMALY_TYPES {
        assert!(checkers_doc.contains(&format!("`{a}`")), "{a}");
    }
}

#[test]
fn front_pages_stay_short() {
    let lines = |f: &str| read(f).lines().count();
    assert!(
        lines("README.md") <= 250,
        "README.md: {} lines",
        lines("README.md")
    );
    assert!(
        lines("ARCHITECTURE.md") <= 200,
        "ARCHITECTURE.md: {} lines",
        lines("ARCHITECTURE.md")
    );
}

/// Every file of the repository a reader or a compiler sees (not build
/// output, not git's own).
fn repo_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name == "target" || name == ".git" || name.starts_with("store") {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => repo_files(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

#[test]
fn nothing_cites_a_file_outside_the_repository() {
    // Spelled in pieces so that this file does not cite them itself.
    let banned = [concat!("../", "shared"), concat!("CONTRACT", ".md")];
    let mut files = Vec::new();
    repo_files(&root(), &mut files);
    let mut found = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue; // binary data
        };
        for b in banned {
            if text.contains(b) {
                found.push(format!(
                    "{}: {b}",
                    f.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn relative_links_in_the_docs_resolve() {
    let mut pages = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "md") {
            pages.push(e.path());
        }
    }
    let mut broken = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let base = page.parent().unwrap();
            if !base.join(target).exists() {
                broken.push(format!(
                    "{}: {target}",
                    page.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
}
