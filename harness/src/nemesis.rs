//! Network partitions, done safely.
//!
//! A partition is a **grudge** (Jepsen's word): for each node, the nodes it
//! drops packets from. The strategies are pure functions of the node names
//! and a seeded RNG, so a seed replays the same partitions.
//!
//! Rules live in a chain of shakedown's own (`SHAKEDOWN`), jumped to first
//! from INPUT, so an earlier ACCEPT cannot beat them (jepsen#102); heal flushes
//! only that chain, never anything else (jepsen#600); the control host's
//! address is never dropped.

use crate::control::{ControlError, Remote};
use crate::daemon::Daemon;
use crate::pidfile;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The chain shakedown owns on every node.
pub const CHAIN: &str = "SHAKEDOWN";

/// For each node, the nodes whose packets it drops.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    /// Two random halves (the smaller half first) that cannot talk.
    RandomHalves,
    /// One random node cut off from all others.
    IsolateOne,
    /// The smallest majority against the rest.
    MajorityMinority,
    /// Nodes on a ring each see the majority around them, no two the same one.
    MajoritiesRing,
    /// Two halves that cannot talk, and one node that talks to both.
    Bridge,
    /// The system's primary (found by its `primary_probe`) cut off from
    /// all others; a random node when the system names no primary.
    IsolatePrimary,
}

impl Partition {
    pub const ALL: [Partition; 6] = [
        Partition::RandomHalves,
        Partition::IsolateOne,
        Partition::MajorityMinority,
        Partition::MajoritiesRing,
        Partition::Bridge,
        Partition::IsolatePrimary,
    ];

    /// Parses `--partition a,b` (empty: every strategy).
    pub fn parse_list(s: &str) -> Result<Vec<Partition>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let p = Partition::ALL
                .into_iter()
                .find(|p| p.name() == part)
                .ok_or_else(|| {
                    format!(
                        "{part:?} is not a partition strategy; choose from {}",
                        Partition::ALL.map(|p| p.name()).join(", ")
                    )
                })?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// `who` cut off from every other node.
    pub fn isolate(nodes: &[String], who: &str) -> Grudge {
        let mut g: Grudge = nodes.iter().map(|x| (x.clone(), BTreeSet::new())).collect();
        for x in nodes.iter().filter(|x| *x != who) {
            g.entry(x.clone()).or_default().insert(who.to_string());
            g.entry(who.to_string()).or_default().insert(x.clone());
        }
        g
    }

    pub fn name(self) -> &'static str {
        match self {
            Partition::RandomHalves => "halves",
            Partition::IsolateOne => "isolate",
            Partition::MajorityMinority => "majority",
            Partition::MajoritiesRing => "ring",
            Partition::Bridge => "bridge",
            Partition::IsolatePrimary => "primary",
        }
    }

    /// The grudge for `nodes`, drawn with `seed`.
    pub fn grudge(self, nodes: &[String], seed: u64) -> Grudge {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<String> = nodes.to_vec();
        order.shuffle(&mut rng);
        let n = order.len();
        let mut g: Grudge = nodes.iter().map(|x| (x.clone(), BTreeSet::new())).collect();
        let cut = |a: &[String], b: &[String], g: &mut Grudge| {
            for x in a {
                for y in b {
                    g.entry(x.clone()).or_default().insert(y.clone());
                    g.entry(y.clone()).or_default().insert(x.clone());
                }
            }
        };
        match self {
            Partition::RandomHalves => {
                let (a, b) = order.split_at(n / 2);
                cut(a, b, &mut g);
            }
            Partition::IsolateOne | Partition::IsolatePrimary => {
                let (a, b) = order.split_at(n.min(1));
                cut(a, b, &mut g);
            }
            Partition::MajorityMinority => {
                let (a, b) = order.split_at(n.saturating_sub(n / 2 + 1));
                cut(a, b, &mut g);
            }
            Partition::MajoritiesRing => {
                // Each node keeps the nodes within `reach` of it on the ring.
                let reach = n / 2 / 2 + (n / 2) % 2;
                let keep = |i: usize, j: usize| {
                    let d = i.abs_diff(j);
                    d.min(n - d) <= reach
                };
                for i in 0..n {
                    for j in 0..n {
                        if i != j && !keep(i, j) {
                            g.entry(order[i].clone())
                                .or_default()
                                .insert(order[j].clone());
                        }
                    }
                }
            }
            Partition::Bridge => {
                if n >= 3 {
                    let bridge = n / 2;
                    cut(&order[..bridge], &order[bridge + 1..], &mut g);
                }
            }
        }
        g
    }
}

/// Who cannot talk to whom, in words: "n1 n2 | n3 n4 n5" style is ambiguous
/// for rings, so list each node's grudge.
pub fn describe(g: &Grudge) -> String {
    let parts: Vec<String> = g
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            format!(
                "{k} drops {}",
                v.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    if parts.is_empty() {
        "no partition".into()
    } else {
        parts.join("; ")
    }
}

/// The shell script that makes `node` drop packets from `from`: our chain
/// made (and jumped to first) if it is not there yet, then its rules
/// replaced in one atomic `iptables-restore` (declaring the chain flushes
/// it; `--noflush` leaves every other chain alone).
fn partition_script(from: &[Ipv4Addr]) -> String {
    let mut rules = format!("*filter\\n:{CHAIN} - [0:0]\\n");
    for ip in from {
        rules.push_str(&format!("-A {CHAIN} -s {ip} -j DROP\\n"));
    }
    rules.push_str("COMMIT\\n");
    format!(
        "set -e; iptables -w -C INPUT -j {CHAIN} 2>/dev/null || \
         {{ iptables -w -N {CHAIN} 2>/dev/null || true; iptables -w -I INPUT 1 -j {CHAIN}; }}; \
         printf '{rules}' | iptables-restore -w --noflush"
    )
}

/// Applies `grudge` on every node at once (one command each). `ip` maps a
/// node name to its address; `control` is never dropped. Returns how long
/// it took.
pub fn partition<R: Remote + Send>(
    nodes: &mut [R],
    ip: &dyn Fn(&str) -> Option<Ipv4Addr>,
    grudge: &Grudge,
    control: Ipv4Addr,
) -> Result<Duration, ControlError> {
    let start = Instant::now();
    let mut scripts = Vec::new();
    for node in nodes.iter() {
        let from: Vec<Ipv4Addr> = grudge
            .get(node.name())
            .into_iter()
            .flatten()
            .filter_map(|peer| ip(peer))
            .filter(|&a| a != control)
            .collect();
        scripts.push(partition_script(&from));
    }
    on_all(nodes, &scripts)?;
    Ok(start.elapsed())
}

/// Where a pause fault records, on the node, the processes it stopped (pid
/// and start time, one per line), so that a heal from another process can
/// resume them, and only them.
pub const PAUSED: &str = "/run/shakedown-paused";

/// Where a kill fault records, on the node, the start script of each daemon
/// it killed, so that any later heal restarts it.
pub const KILLED: &str = "/run/shakedown-killed";

/// Where a clock fault records, on the node, the seconds it moved the clock.
pub const CLOCK: &str = "/run/shakedown-clock";

/// The script that heals one node: flush shakedown's chain (nothing else),
/// resume what was paused, restart what was killed, put the clock back.
pub fn heal_script() -> String {
    format!(
        "iptables -w -F {CHAIN} 2>/dev/null || true; \
         if [ -f {PAUSED} ]; then while read -r p s; do {same} && {{ kill -s CONT -- -$p 2>/dev/null; kill -s CONT $p 2>/dev/null; }}; done < {PAUSED}; rm -f {PAUSED}; fi; \
         if [ -f {KILLED} ]; then sort -u {KILLED} | while read -r s; do [ -x \"$s\" ] && \"$s\" >/dev/null 2>&1; done; rm -f {KILLED}; fi; \
         if [ -f {CLOCK} ]; then off=$(cat {CLOCK}); date -s \"@$(( $(date +%s) - off ))\" >/dev/null; rm -f {CLOCK}; fi; \
         true",
        same = pidfile::still_same(),
    )
}

/// Undoes every fault on every node: partitions and loss (flushes
/// shakedown's chain, nothing else), pauses (SIGCONT to the pids in
/// [`PAUSED`]), kills (runs the start scripts in [`KILLED`]) and clock
/// offsets. Idempotent: safe when there is nothing to heal.
pub fn heal<R: Remote + Send>(nodes: &mut [R]) -> Result<Duration, ControlError> {
    let start = Instant::now();
    let scripts = vec![heal_script(); nodes.len()];
    on_all(nodes, &scripts)?;
    Ok(start.elapsed())
}

/// Kills `daemon` with SIGKILL, after noting its start script on the node
/// so that any heal restarts it. Returns the pid.
pub fn kill_daemon<R: Remote>(node: &mut R, daemon: &Daemon) -> Result<u32, ControlError> {
    node.run(
        &format!("echo {} >> {KILLED}", daemon.start_script()),
        Duration::from_secs(10),
    )?;
    kill(node, &daemon.pidfile())
}

/// Moves the node's clock by `seconds` (noted first, so heal moves it back).
/// Only for real machines: on local test hosts the clock is the whole
/// machine's, and the runner refuses before it starts.
pub fn shift_clock<R: Remote>(node: &mut R, seconds: i64) -> Result<(), ControlError> {
    node.run(
        &format!(
            "old=$(cat {CLOCK} 2>/dev/null || echo 0); echo $(( old + ({seconds}) )) > {CLOCK}; \
             date -s \"@$(( $(date +%s) + ({seconds}) ))\" >/dev/null"
        ),
        Duration::from_secs(10),
    )
    .map(|_| ())
}

/// Stops the process `pidfile` names (SIGSTOP), with its process group (a
/// daemon's workers, e.g. PostgreSQL's backends), and records it on the
/// node, so that any later heal resumes it. Returns the pid.
pub fn pause<R: Remote>(node: &mut R, pidfile: &str) -> Result<u32, ControlError> {
    let out = node.run(
        &format!(
            "{}; {{ kill -s STOP -- -$p 2>/dev/null || kill -s STOP $p; }} && \
             echo \"$p $s\" >> {PAUSED} && echo $p",
            pidfile::live_or_exit(pidfile)
        ),
        Duration::from_secs(10),
    )?;
    pid(node, &out)
}

/// Resumes a paused process (SIGCONT) and forgets it.
pub fn resume<R: Remote>(node: &mut R, pidfile: &str) -> Result<(), ControlError> {
    node.run(
        &format!(
            "{}; {{ kill -s CONT -- -$p 2>/dev/null; kill -s CONT $p; }} && \
             if [ -f {PAUSED} ]; then grep -vx \"$p $s\" {PAUSED} > {PAUSED}.new; mv {PAUSED}.new {PAUSED}; fi",
            pidfile::live_or_exit(pidfile)
        ),
        Duration::from_secs(10),
    )
    .map(|_| ())
}

/// Kills the process `pidfile` names (SIGKILL), with its process group (a
/// daemon is started as a session leader: its workers die with it, as on
/// a crash of the machine), and waits until they are gone. Restarting it
/// is the system's business (it knows the command). An error, and nothing
/// signalled, when the process no longer runs.
pub fn kill<R: Remote>(node: &mut R, pidfile: &str) -> Result<u32, ControlError> {
    let out = node.run(
        &format!(
            "{}; {{ kill -s KILL -- -$p 2>/dev/null || kill -s KILL $p; }}; \
             for i in $(seq 200); do kill -0 -- -$p 2>/dev/null || {same} || break; sleep 0.01; done; \
             {same} || echo $p",
            pidfile::live_or_exit(pidfile),
            same = pidfile::still_same(),
        ),
        Duration::from_secs(10),
    )?;
    pid(node, &out)
}

fn pid<R: Remote>(node: &R, out: &str) -> Result<u32, ControlError> {
    out.trim().parse().map_err(|_| ControlError {
        node: node.name().into(),
        what: "the process did not report its pid".into(),
        command: None,
        code: None,
        stderr: out.trim().into(),
    })
}

/// Drops each incoming packet with `probability` on every node (except from
/// the control host), in shakedown's chain: heal removes it.
pub fn loss<R: Remote + Send>(
    nodes: &mut [R],
    probability: f64,
    control: Ipv4Addr,
) -> Result<Duration, ControlError> {
    let start = Instant::now();
    let p = probability.clamp(0.0, 1.0);
    let script = format!(
        "set -e; iptables -w -N {CHAIN} 2>/dev/null || true; \
         iptables -w -C INPUT -j {CHAIN} 2>/dev/null || iptables -w -I INPUT 1 -j {CHAIN}; \
         iptables -w -A {CHAIN} ! -s {control} -m statistic --mode random --probability {p:.4} -j DROP"
    );
    let scripts = vec![script; nodes.len()];
    on_all(nodes, &scripts)?;
    Ok(start.elapsed())
}

fn on_all<R: Remote + Send>(nodes: &mut [R], scripts: &[String]) -> Result<(), ControlError> {
    let results: Vec<Result<String, ControlError>> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter_mut()
            .zip(scripts)
            .map(|(n, script)| s.spawn(move || n.run(script, Duration::from_secs(10))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ControlError {
                        node: "?".into(),
                        what: "a fault thread panicked".into(),
                        command: None,
                        code: None,
                        stderr: String::new(),
                    })
                })
            })
            .collect()
    });
    results.into_iter().try_for_each(|r| r.map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn symmetric(g: &Grudge) -> bool {
        g.iter().all(|(a, bs)| bs.iter().all(|b| g[b].contains(a)))
    }

    fn sees(g: &Grudge, n: usize, x: &str) -> usize {
        n - g[x].len()
    }

    #[test]
    fn strategies() {
        for n in 3..=9 {
            let nodes = names(n);
            for seed in 0..20 {
                for p in Partition::ALL {
                    let g = p.grudge(&nodes, seed);
                    assert!(symmetric(&g), "{p:?} {n}");
                    assert!(
                        g.iter().all(|(a, bs)| !bs.contains(a)),
                        "{p:?}: a node drops itself"
                    );
                    assert_eq!(g, p.grudge(&nodes, seed), "{p:?}: the seed replays");
                }
                // Every node drops exactly the other half: a complete cut.
                let halves = Partition::RandomHalves.grudge(&nodes, seed);
                assert!(
                    halves
                        .values()
                        .all(|v| v.len() == n / 2 || v.len() == n - n / 2),
                    "halves {n}"
                );
                let total: usize = halves.values().map(|v| v.len()).sum();
                assert_eq!(total, 2 * (n / 2) * (n - n / 2), "halves {n}");
                let iso = Partition::IsolateOne.grudge(&nodes, seed);
                assert_eq!(iso.values().filter(|v| v.len() == n - 1).count(), 1);
                // The minority's nodes drop the whole majority, and the
                // majority's nodes drop the minority.
                let maj = Partition::MajorityMinority.grudge(&nodes, seed);
                let (big, small) = (n / 2 + 1, n - (n / 2 + 1));
                assert_eq!(
                    maj.values().filter(|v| v.len() == big).count(),
                    small,
                    "majority {n}"
                );
                assert_eq!(
                    maj.values().filter(|v| v.len() == small).count(),
                    big,
                    "majority {n}"
                );
                let ring = Partition::MajoritiesRing.grudge(&nodes, seed);
                for x in &nodes {
                    assert!(sees(&ring, n, x) > n / 2, "ring {n}: {x} sees a minority");
                }
                let bridge = Partition::Bridge.grudge(&nodes, seed);
                assert_eq!(
                    bridge.values().filter(|v| v.is_empty()).count(),
                    1,
                    "bridge {n}"
                );
            }
        }
    }

    #[test]
    fn scripts_use_our_chain_only() {
        let s = partition_script(&[Ipv4Addr::new(10, 77, 0, 13)]);
        assert!(s.contains("iptables -w -I INPUT 1 -j SHAKEDOWN"));
        assert!(s.contains("-A SHAKEDOWN -s 10.77.0.13 -j DROP"));
        assert!(s.contains("iptables-restore -w --noflush"));
        assert!(!s.contains("-X"), "never delete chains");
        assert_eq!(describe(&Grudge::new()), "no partition");
    }
}
