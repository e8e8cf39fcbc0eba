//! Every command the code runs comes from a Debian package that the
//! project's own scripts install (scripts/packages), and the Vagrantfile
//! installs every node package: a fresh machine has all it needs, and a
//! new command cannot slip in uninstalled (a missing iptables once turned
//! three partitions into a quiet "valid").

use harness::needs::{self, Need};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The arrays of scripts/packages: `name=(a b c)`.
fn lists() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(root().join("scripts/packages")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once("=(") else {
            continue;
        };
        if name.contains(' ') || name.starts_with('#') {
            continue;
        }
        let body = rest.trim_end().trim_end_matches(')');
        out.insert(
            name.to_string(),
            body.split_whitespace().map(String::from).collect(),
        );
    }
    out
}

/// Where `command` is on this machine.
fn locate(command: &str) -> Option<PathBuf> {
    if command.starts_with('/') {
        return Path::new(command).exists().then(|| command.into());
    }
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(command))
    .find(|p| p.exists())
}

/// The packages dpkg says own `path` (through symlinks and the merged /usr).
fn owners(path: &Path) -> Vec<String> {
    let mut candidates = vec![path.to_path_buf()];
    if let Ok(real) = std::fs::canonicalize(path) {
        candidates.push(real);
    }
    for c in candidates.clone() {
        let s = c.display().to_string();
        for (a, b) in [
            ("/usr/bin/", "/bin/"),
            ("/usr/sbin/", "/sbin/"),
            ("/usr/lib/", "/lib/"),
        ] {
            if let Some(rest) = s.strip_prefix(a) {
                candidates.push(format!("{b}{rest}").into());
            }
        }
    }
    for c in candidates {
        let out = Command::new("dpkg").arg("-S").arg(&c).output().unwrap();
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().next().unwrap_or_default();
            let pkgs = line.rsplit_once(": ").map_or("", |(p, _)| p);
            return pkgs
                .split(", ")
                .map(|p| p.split(':').next().unwrap_or(p).trim().to_string())
                .collect();
        }
    }
    Vec::new()
}

/// Every need in the code, with the lists that may provide it.
fn every_need() -> Vec<(Need, &'static [&'static str])> {
    const NODE: &[&str] = &["node", "systems"];
    const CONTROL: &[&str] = &["control", "systems"];
    let mut all: Vec<(Need, &'static [&'static str])> = Vec::new();
    for n in [
        needs::NODE,
        needs::IPTABLES,
        needs::CLOCK,
        &needs::faketime(),
    ]
    .concat()
    {
        all.push((n, NODE));
    }
    for n in needs::LOCAL_HOSTS {
        all.push((*n, CONTROL));
    }
    let mut faults = Vec::new();
    for f in harness::schedule::Fault::ALL {
        faults.extend_from_slice(needs::FaultNeeds::needs(f));
    }
    for n in faults {
        all.push((n, NODE));
    }
    for sys in workloads::systems() {
        // Systems that run the user's binary need one named.
        let opts: Vec<(String, String)> = if sys.options.iter().any(|o| o.key == "binary") {
            vec![("binary".into(), "/bin/true".into())]
        } else {
            Vec::new()
        };
        let sel = workloads::Selection::new(sys.name, sys.workloads[0], &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", sys.name));
        let s = sel.system();
        for n in s.node_needs() {
            all.push((n, NODE));
        }
        for n in s.control_needs() {
            all.push((n, CONTROL));
        }
    }
    all
}

#[test]
fn every_command_comes_from_a_package_the_scripts_install() {
    let lists = lists();
    for name in ["control", "build", "node", "systems", "tests"] {
        assert!(
            lists.contains_key(name),
            "scripts/packages has no {name}=(...)"
        );
    }
    let mut problems = Vec::new();
    for (need, from) in every_need() {
        let listed = from
            .iter()
            .any(|l| lists[*l].iter().any(|p| p == need.package));
        if !listed {
            problems.push(format!(
                "{} needs package {}, which scripts/packages does not list in {}",
                need.command,
                need.package,
                from.join(" or ")
            ));
        }
        let Some(path) = locate(need.command) else {
            problems.push(format!(
                "{} is not installed here: scripts/test should have installed {}",
                need.command, need.package
            ));
            continue;
        };
        let owners = owners(&path);
        if !owners.iter().any(|o| o == need.package) {
            problems.push(format!(
                "{} ({}) comes from {:?}, not from {} as the code says",
                need.command,
                path.display(),
                owners,
                need.package
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn vagrant_installs_every_node_package() {
    let lists = lists();
    let vagrant = std::fs::read_to_string(root().join("vagrant/Vagrantfile")).unwrap();
    let installed: Vec<&str> = vagrant
        .lines()
        .filter(|l| l.trim_start().starts_with("apt-get install"))
        .flat_map(|l| l.split_whitespace())
        .collect();
    for p in lists["node"].iter().chain(&lists["systems"]) {
        assert!(
            installed.contains(&p.as_str()),
            "vagrant/Vagrantfile does not install {p}"
        );
    }
}
