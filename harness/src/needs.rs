//! Every command shakedown runs, with the Debian package that provides it.
//!
//! One list, in code, per feature: what every node needs, what partitions
//! and loss need, what clock faults need, what the local test hosts need
//! on the control host. Systems add theirs (`System::node_needs`,
//! `System::control_needs`). The preflight of every `shakedown test` looks
//! for each on each node, and a test (`tests/packages.rs`) checks that
//! each command here is provided (`dpkg -S`) by a package that
//! `scripts/packages` installs, so a new command cannot slip in uninstalled.

/// A command and the package that provides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// A name looked up on PATH, or an absolute path.
    pub command: &'static str,
    /// The Debian package that provides it.
    pub package: &'static str,
    /// What shakedown uses it for (shown when it is missing).
    pub purpose: &'static str,
}

pub const fn need(command: &'static str, package: &'static str, purpose: &'static str) -> Need {
    Need {
        command,
        package,
        purpose,
    }
}

/// What every node needs, whatever the run.
pub const NODE: &[Need] = &[
    need("bash", "bash", "probes over /dev/tcp and /dev/udp"),
    need(
        "setsid",
        "util-linux",
        "daemons start in a session of their own",
    ),
    need("nohup", "coreutils", "daemons outlive the SSH command"),
    need("timeout", "coreutils", "bounded probes"),
    need("seq", "coreutils", "polls with a deadline"),
    need("sort", "coreutils", "heal"),
    need("df", "coreutils", "the disk check"),
    need("sed", "sed", "process states from /proc"),
    need("grep", "grep", "rules read back"),
    need(
        "ss",
        "iproute2",
        "the check that the system's ports are free",
    ),
];

/// What partitions and packet loss need on every node.
pub const IPTABLES: &[Need] = &[
    need(
        "iptables",
        "iptables",
        "partitions and packet loss (shakedown's own chain)",
    ),
    need(
        "iptables-restore",
        "iptables",
        "partitions applied atomically",
    ),
    need(
        "iptables-save",
        "iptables",
        "rules read back with their packet counters",
    ),
];

/// What the delay fault needs on every node: iptables for its queue rules,
/// and the tools that read back the packet counter of a probe.
pub const DELAY: &[Need] = &[
    need("iptables", "iptables", "the delay fault's queue rules"),
    need(
        "iptables-restore",
        "iptables",
        "the delay fault's queue rules, applied at once",
    ),
    need(
        "iptables-save",
        "iptables",
        "the delay fault's probe counted by its queue rule",
    ),
    need("cut", "coreutils", "the delay fault's packet counter read"),
    need("tr", "coreutils", "the delay fault's packet counter read"),
];

/// What the lost-writes fault needs on every node (the FUSE layer itself
/// is uploaded; fusermount3 is its fallback where mount(2) is refused).
pub const FUSE: &[Need] = &[need(
    "fusermount3",
    "fuse3",
    "lost writes: the FUSE layer under the data directory",
)];

/// What clock faults need on every node.
pub const CLOCK: &[Need] = &[need("date", "coreutils", "clock faults")];

/// What clock faults need on local test hosts (they share this machine's
/// clock): libfaketime, preloaded into the system's daemons, after glibc's
/// malloc shim (without it, libfaketime's first allocation reaches a
/// jemalloc that asks for the time, and Redis dies of the recursion).
pub fn faketime() -> Vec<Need> {
    let (faketime, malloc) = faketime_libs();
    vec![
        need(faketime, "libfaketime", "clock faults on local test hosts"),
        need(
            malloc,
            "libc6",
            "clock faults: allocations of libfaketime before it is ready",
        ),
        need(
            "od",
            "coreutils",
            "clock skews: libfaketime's shared start time read",
        ),
        need(
            "truncate",
            "coreutils",
            "clock faults: libfaketime's shared memory sized",
        ),
        need(
            "chmod",
            "coreutils",
            "clock faults: libfaketime's shared memory open to every daemon's user",
        ),
    ]
}

/// Debian's libfaketime and glibc's malloc shim, for this architecture.
fn faketime_libs() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "aarch64" => (
            "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/aarch64-linux-gnu/libc_malloc_debug.so.0",
        ),
        _ => (
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            "/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0",
        ),
    }
}

/// The LD_PRELOAD list that puts a daemon under the faked clock.
pub fn faketime_lib() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "/usr/lib/aarch64-linux-gnu/libc_malloc_debug.so.0:/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        _ => "/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0:/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    }
}

/// What the local test hosts need on the control host.
pub const LOCAL_HOSTS: &[Need] = &[
    need("ip", "iproute2", "network namespaces, bridge and veths"),
    need(
        "unshare",
        "util-linux",
        "each host's own mount, UTS, IPC and PID namespaces",
    ),
    need("setpriv", "util-linux", "hosts without CAP_SYS_TIME"),
    need("mount", "mount", "each host's overlays and tmpfs"),
    need("/usr/sbin/sshd", "openssh-server", "each host's sshd"),
    need("ssh-keygen", "openssh-client", "host and control keys"),
];

/// The shell text that prints each of `needs`' commands that is missing on
/// a node, one per line.
pub fn missing_script(needs: &[Need]) -> String {
    let mut names: Vec<&str> = needs.iter().map(|n| n.command).collect();
    names.sort_unstable();
    names.dedup();
    format!(
        "for c in {}; do case \"$c\" in /*) [ -e \"$c\" ] ;; *) command -v \"$c\" >/dev/null 2>&1 ;; esac || echo \"$c\"; done",
        names.join(" ")
    )
}

/// "iptables (partitions ...): apt-get install iptables" for each missing command.
pub fn describe_missing(needs: &[Need], missing: &[&str]) -> Vec<String> {
    missing
        .iter()
        .filter_map(|m| needs.iter().find(|n| n.command == *m))
        .map(|n| {
            format!(
                "{} is missing ({}): apt-get install {}",
                n.command, n.purpose, n.package
            )
        })
        .collect()
}

/// The commands a fault runs on every node.
pub trait FaultNeeds {
    fn needs(self) -> &'static [Need];
}

impl FaultNeeds for checkers::rundata::Fault {
    fn needs(self) -> &'static [Need] {
        use checkers::rundata::Fault;
        match self {
            Fault::Partition | Fault::Loss => IPTABLES,
            Fault::Delay => DELAY,
            Fault::Clock => CLOCK,
            Fault::Kill | Fault::Pause => &[],
            Fault::LostWrites => FUSE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_commands_are_listed_once_and_explained() {
        let s = missing_script(&[IPTABLES, NODE, IPTABLES].concat());
        assert_eq!(s.matches(" iptables ").count(), 1, "{s}");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(missing_script(&[
                need("sh", "dash", "x"),
                need("no-such-command-here", "nothing", "a test"),
            ]))
            .output()
            .unwrap();
        let missing = String::from_utf8_lossy(&out.stdout);
        let missing: Vec<&str> = missing.lines().collect();
        assert_eq!(missing, ["no-such-command-here"]);
        assert_eq!(
            describe_missing(IPTABLES, &["iptables"]),
            ["iptables is missing (partitions and packet loss (shakedown's own chain)): apt-get install iptables"]
        );
    }
}
