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

use crate::control::{on_nodes, shell_quote, ControlError, NodeResult, Remote};
use crate::daemon::Daemon;
use crate::pidfile;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

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

/// The shell script that makes `node` drop packets from `from`: our chain
/// made (and jumped to first) if it is not there yet, then its rules
/// replaced in one atomic `iptables-restore` (declaring the chain flushes
/// it; `--noflush` leaves every other chain alone). It ends by reading the
/// rules back (see [`readback`]).
fn partition_script(from: &[Ipv4Addr]) -> String {
    let mut rules = format!("*filter\\n:{CHAIN} - [0:0]\\n");
    for ip in from {
        rules.push_str(&format!("-A {CHAIN} -s {ip} -j DROP\\n"));
    }
    rules.push_str("COMMIT\\n");
    format!("set -e; {JUMP}; printf '{rules}' | iptables-restore -w --noflush; {READBACK}")
}

/// Shell: our chain exists and INPUT jumps to it first.
const JUMP: &str = "command -v iptables >/dev/null || { echo 'iptables: command not found (apt-get install iptables)' >&2; exit 127; }; \
    iptables -w -C INPUT -j SHAKEDOWN 2>/dev/null || { iptables -w -N SHAKEDOWN 2>/dev/null; iptables -w -I INPUT 1 -j SHAKEDOWN; } || \
    { echo \"iptables does not work (exit $?)\" >&2; exit 1; }";

/// Shell: the filter table with its packet counters, in one call.
const READBACK: &str = "iptables-save -t filter -c";

/// What a node's firewall holds, read back by [`READBACK`].
#[derive(Debug, Default, PartialEq)]
struct Rules {
    /// INPUT's first rule jumps to our chain.
    jump_first: bool,
    /// Sources dropped outright, with the packets each rule has dropped.
    drops: BTreeMap<Ipv4Addr, u64>,
    /// Random-loss rules (their probability as iptables prints it).
    loss: Vec<String>,
    /// Anything else in our chain (never written by shakedown).
    other: Vec<String>,
}

fn readback(out: &str) -> Rules {
    let mut r = Rules::default();
    let mut first_input = true;
    for line in out.lines().map(str::trim) {
        // "[pkts:bytes] -A CHAIN rule..."
        let (count, rule) = match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
            Some((c, rule)) => (
                c.split(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0),
                rule,
            ),
            None => (0, line),
        };
        if rule.starts_with("-A INPUT ") {
            if first_input {
                r.jump_first = rule == format!("-A INPUT -j {CHAIN}");
                first_input = false;
            }
            continue;
        }
        if !rule.starts_with(&format!("-A {CHAIN} ")) {
            continue;
        }
        let words: Vec<&str> = rule.split_whitespace().collect();
        let after = |w: &str| {
            words
                .iter()
                .position(|x| *x == w)
                .and_then(|i| words.get(i + 1))
        };
        if rule.contains("-m statistic") {
            r.loss
                .push(after("--probability").unwrap_or(&"?").to_string());
        } else if let (Some(src), false, true) = (
            after("-s"),
            rule.contains("! -s"),
            rule.ends_with("-j DROP"),
        ) {
            match src.trim_end_matches("/32").parse() {
                Ok(ip) => {
                    r.drops.insert(ip, count);
                }
                Err(_) => r.other.push(rule.into()),
            }
        } else {
            r.other.push(rule.into());
        }
    }
    r
}

fn unverified(node: &str, what: String) -> ControlError {
    ControlError {
        node: node.into(),
        what,
        command: None,
        code: None,
        stderr: String::new(),
    }
}

/// Checks rules read back against what a partition should have set.
fn check_drops(
    node: &str,
    rules: &Rules,
    expected: &BTreeSet<Ipv4Addr>,
) -> Result<(), ControlError> {
    if !rules.jump_first {
        return Err(unverified(
            node,
            format!(
                "INPUT does not jump to {CHAIN} first: an earlier rule could let packets through"
            ),
        ));
    }
    let got: BTreeSet<Ipv4Addr> = rules.drops.keys().copied().collect();
    if &got != expected || !rules.other.is_empty() || !rules.loss.is_empty() {
        let list = |s: &BTreeSet<Ipv4Addr>| {
            s.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        return Err(unverified(
            node,
            format!(
                "{CHAIN} read back drops [{}], expected [{}]{}",
                list(&got),
                list(expected),
                if rules.other.is_empty() {
                    String::new()
                } else {
                    format!(" (and {} other rules)", rules.other.len())
                }
            ),
        ));
    }
    Ok(())
}

/// Applies `grudge` on every node at once and verifies it: each node's
/// chain is read back and must hold exactly the grudge's rules; then each
/// cut link is probed (the node cut off sends a datagram to the node that
/// drops it) and the dropping rule's packet counter must have counted it.
/// `ip` maps a node name to its address; `control` is never dropped.
/// A result per node: what was verified, or why it was not.
pub fn partition<R: Remote + Send>(
    nodes: &mut [R],
    ip: &dyn Fn(&str) -> Option<Ipv4Addr>,
    grudge: &Grudge,
    control: Ipv4Addr,
) -> Vec<NodeResult<String>> {
    let expected: Vec<BTreeSet<Ipv4Addr>> = nodes
        .iter()
        .map(|node| {
            grudge
                .get(node.name())
                .into_iter()
                .flatten()
                .filter_map(|peer| ip(peer))
                .filter(|&a| a != control)
                .collect()
        })
        .collect();
    let scripts: Vec<String> = expected
        .iter()
        .map(|from| partition_script(&from.iter().copied().collect::<Vec<_>>()))
        .collect();
    let applied = on_nodes(nodes, |i, n| {
        let out = n.run(&scripts[i], T)?;
        check_drops(n.name(), &readback(&out), &expected[i])
    });
    // Probes: every node sends one datagram to each node that drops it.
    let my_ip: Vec<Option<Ipv4Addr>> = nodes.iter().map(|n| ip(n.name())).collect();
    let probes: Vec<String> = my_ip
        .iter()
        .map(|me| {
            let to: Vec<String> = expected
                .iter()
                .zip(nodes.iter())
                .filter(|(from, _)| me.is_some_and(|m| from.contains(&m)))
                .filter_map(|(_, n)| ip(n.name()))
                .map(|a| format!("printf x >/dev/udp/{a}/9"))
                .collect();
            if to.is_empty() {
                String::new()
            } else {
                format!("bash -c {} 2>/dev/null; true", shell_quote(&to.join("; ")))
            }
        })
        .collect();
    let sent = on_nodes(nodes, |i, n| match probes[i].as_str() {
        "" => Ok(()),
        p => n.run(p, T).map(|_| ()),
    });
    let sent_ok: Vec<bool> = sent.iter().map(|r| r.result.is_ok()).collect();
    let names: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
    let ok: Vec<bool> = applied.iter().map(|r| r.result.is_ok()).collect();
    let counted = on_nodes(nodes, |i, n| {
        if !ok[i] || expected[i].is_empty() {
            return Ok(String::new());
        }
        let rules = readback(&n.run(READBACK, T)?);
        let silent: Vec<String> = expected[i]
            .iter()
            .filter(|a| rules.drops.get(a).copied().unwrap_or(0) == 0)
            .filter_map(|a| {
                let who = my_ip.iter().position(|m| *m == Some(*a))?;
                sent_ok[who].then(|| format!("{} ({a})", names[who]))
            })
            .collect();
        if silent.is_empty() {
            Ok(String::new())
        } else {
            Err(unverified(
                n.name(),
                format!(
                    "a probe from {} was not dropped: the cut does not hold",
                    silent.join(", ")
                ),
            ))
        }
    });
    applied
        .into_iter()
        .zip(counted)
        .zip(sent)
        .zip(&expected)
        .map(|(((a, c), s), from)| {
            let result = a.result.and(c.result).and(s.result).map(|_| {
                if from.is_empty() {
                    "drops nothing (chain read back empty)".to_string()
                } else {
                    format!("drops {} (rules read back; probes dropped)", from.len())
                }
            });
            NodeResult {
                node: a.node,
                result,
            }
        })
        .collect()
}

/// A shell timeout for one fault command on one node.
const T: Duration = Duration::from_secs(10);

/// Where a pause fault records, on the node, the processes it stopped (pid
/// and start time, one per line), so that a heal from another process can
/// resume them, and only them.
pub const PAUSED: &str = "/run/shakedown-paused";

/// Where a kill fault records, on the node, the start script of each daemon
/// it killed, so that any later heal restarts it.
pub const KILLED: &str = "/run/shakedown-killed";

/// Where a clock fault records, on the node, the seconds it moved the clock.
pub const CLOCK: &str = "/run/shakedown-clock";

/// Shell: the state letter of process `$p` (R, S, T, ...), empty when gone.
const STATE: &str = "sed 's/^.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f1";

/// Shell: waits up to 2 s until process `$p`'s state `cond`s `T` (`=` or
/// `!=`); exits 5 naming `what` if it never does.
fn await_state(cond: &str, what: &str) -> String {
    format!(
        "for i in $(seq 200); do [ \"$({STATE})\" {cond} T ] && break; sleep 0.01; done; \
         [ \"$({STATE})\" {cond} T ] || {{ echo \"process $p {what} 2 s after the signal (state $({STATE}))\" >&2; exit 5; }}"
    )
}

/// The script that heals one node and checks it: flush shakedown's chain
/// (nothing else) and read it back empty, resume what was paused and see
/// it run, restart what was killed and see it run, put the clock back. It
/// prints what it did; it exits non-zero naming what it could not undo.
pub fn heal_script() -> String {
    format!(
        "fail=; did=; \
         if command -v iptables >/dev/null 2>&1; then \
           iptables -w -F {CHAIN} 2>/dev/null; \
           if ! iptables -w -S INPUT >/dev/null 2>&1; then fail=\"$fail; iptables does not work here: cannot check that no rule is left\"; \
           elif [ \"$(iptables -w -S {CHAIN} 2>/dev/null | grep -c '^-A')\" != 0 ]; then fail=\"$fail; {CHAIN} still holds rules after a flush\"; \
           else did=\"$did rules-flushed\"; fi; \
         fi; \
         if command -v iptables >/dev/null 2>&1 && iptables -w -S {OUT_CHAIN} >/dev/null 2>&1; then \
           iptables -w -F {OUT_CHAIN}; [ \"$(iptables -w -S {OUT_CHAIN} | grep -c '^-A')\" = 0 ] || fail=\"$fail; {OUT_CHAIN} still holds rules after a flush\"; fi; \
         if [ -f {NETEM_PID} ]; then ( {netem}; [ -n \"$p\" ] || exit 0; kill -s TERM $p; for i in $(seq 200); do {same} || exit 0; sleep 0.01; done; kill -s KILL $p; exit 1 ) || fail=\"$fail; the delay daemon did not stop on SIGTERM\"; rm -f {NETEM_PID}; did=\"$did delay-stopped\"; fi; \
         if [ -f {PAUSED} ]; then while read -r p s; do {same} || continue; kill -s CONT -- -$p 2>/dev/null; kill -s CONT $p 2>/dev/null; \
           for i in $(seq 200); do [ \"$({STATE})\" != T ] && break; sleep 0.01; done; \
           if [ \"$({STATE})\" = T ]; then fail=\"$fail; process $p still stopped after SIGCONT\"; else did=\"$did resumed:$p\"; fi; \
           done < {PAUSED}; rm -f {PAUSED}; fi; \
         if [ -f {KILLED} ]; then for s in $(sort -u {KILLED}); do d=$(dirname \"$s\"); n=$(basename \"$d\"); \
           if [ -x \"$s\" ] && \"$s\" >/dev/null 2>&1; then ( {live}; [ -n \"$p\" ] ) && did=\"$did restarted:$n\" && continue; fi; \
           fail=\"$fail; $n did not start again (see $d/log)\"; done; rm -f {KILLED}; fi; \
         if [ -f {STROBE} ]; then ( {strobe}; [ -n \"$p\" ] && kill -s KILL -- -$p 2>/dev/null; kill -s KILL $p 2>/dev/null ); rm -f {STROBE}; fi; \
         if [ -f {FAKETIME} ] && [ \"$(cat {FAKETIME})\" != '{FAKETIME_ZERO}' ]; then echo '{FAKETIME_ZERO}' > {FAKETIME} && did=\"$did faketime-reset\" || fail=\"$fail; the faked clock could not be reset\"; fi; \
         if [ -f {CLOCK} ]; then off=$(cat {CLOCK}); date -s \"@$(( $(date +%s) - off ))\" >/dev/null && did=\"$did clock-reset:$off\" || fail=\"$fail; the clock could not be put back by $off s\"; rm -f {CLOCK}; fi; \
         echo \"$did\"; \
         if [ -n \"$fail\" ]; then echo \"${{fail#; }}\" >&2; exit 6; fi",
        same = pidfile::still_same(),
        live = pidfile::live("\"$d/pid\""),
        strobe = pidfile::live(STROBE),
        netem = pidfile::live(NETEM_PID),
    )
}

/// What a heal did on one node (verified).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Healed {
    /// Daemons restarted (by name).
    pub restarted: Vec<String>,
    /// Processes resumed.
    pub resumed: usize,
    /// iptables is there, and our chain was read back empty.
    pub rules_checked: bool,
    /// A clock (real or faked) was put back.
    pub clock_reset: bool,
    /// The delay daemon was stopped (held packets released).
    pub delay_stopped: bool,
}

impl Healed {
    fn parse(out: &str) -> Healed {
        let mut h = Healed::default();
        for w in out.split_whitespace() {
            if let Some(n) = w.strip_prefix("restarted:") {
                h.restarted.push(n.to_string());
            } else if w.starts_with("resumed:") {
                h.resumed += 1;
            } else if w == "rules-flushed" {
                h.rules_checked = true;
            } else if w == "faketime-reset" || w.starts_with("clock-reset:") {
                h.clock_reset = true;
            } else if w == "delay-stopped" {
                h.delay_stopped = true;
            }
        }
        h
    }
}

/// Undoes every fault on every node and checks each: partitions and loss
/// (shakedown's chain flushed, nothing else, and read back empty), pauses
/// (SIGCONT to the pids in [`PAUSED`], then seen running), kills (the start
/// scripts in [`KILLED`] run, then the daemon seen running) and clock
/// offsets. Idempotent: safe when there is nothing to heal. A result per
/// node.
pub fn heal<R: Remote + Send>(nodes: &mut [R]) -> Vec<NodeResult<Healed>> {
    let script = heal_script();
    on_nodes(nodes, |_, n| {
        n.run(&script, T).map(|out| Healed::parse(&out))
    })
}

/// Kills `daemon` with SIGKILL, after noting its start script on the node
/// so that any heal restarts it. Returns the pid.
pub fn kill_daemon<R: Remote>(node: &mut R, daemon: &Daemon) -> Result<u32, ControlError> {
    node.run(&format!("echo {} >> {KILLED}", daemon.start_script()), T)?;
    kill(node, &daemon.pidfile())
}

/// Moves the node's clock by `seconds` (noted first, so heal moves it back)
/// and checks that it moved. Only for real machines: on local test hosts
/// the clock is the whole machine's, and the runner refuses before it starts.
pub fn shift_clock<R: Remote>(node: &mut R, seconds: i64) -> Result<(), ControlError> {
    node.run(
        &format!(
            "old=$(cat {CLOCK} 2>/dev/null || echo 0); echo $(( old + ({seconds}) )) > {CLOCK}; \
             before=$(date +%s); date -s \"@$(( before + ({seconds}) ))\" >/dev/null; \
             moved=$(( $(date +%s) - before )); \
             [ $(( moved - ({seconds}) )) -ge -2 ] && [ $(( moved - ({seconds}) )) -le 2 ] || \
             {{ echo \"the clock moved by $moved s, not {seconds} s\" >&2; exit 5; }}"
        ),
        T,
    )
    .map(|_| ())
}

/// The chain of shakedown's own for outgoing packets (the delay fault),
/// jumped to first from OUTPUT; heal flushes it too.
pub const OUT_CHAIN: &str = "SHAKEDOWN_OUT";

/// The NFQUEUE queue the delay fault uses.
pub const NETEM_QUEUE: u16 = 4242;

/// The delay daemon on a node: its binary, pidfile and log.
pub const NETEM_DIR: &str = "/opt/shakedown/netem";
pub const NETEM_PID: &str = "/run/shakedown-netem";
const NETEM_LOG: &str = "/opt/shakedown/netem/log";

pub use checkers::rundata::DelaySpec;

/// Shell: the delay daemon started (recorded in [`NETEM_PID`]) and bound
/// to its queue, then every packet to `peers` queued to it, read back;
/// then one datagram sent to `peers[0]`, and the packet counter of that
/// peer's queue rule polled until it counts (printed last).
fn delay_script(spec: &DelaySpec, peers: &[Ipv4Addr], seed: u64) -> String {
    let mut rules = format!("*filter\\n:{OUT_CHAIN} - [0:0]\\n");
    for ip in peers {
        rules.push_str(&format!(
            "-A {OUT_CHAIN} -d {ip} -m mark ! --mark 0x5d -j NFQUEUE --queue-num {NETEM_QUEUE} --queue-bypass\\n"
        ));
    }
    rules.push_str("COMMIT\\n");
    let cmd = format!(
        "exec {NETEM_DIR}/shakedown-netem --queue {NETEM_QUEUE} --delay-ms {} --jitter-ms {} --reorder {} --duplicate {} --seed {seed}",
        spec.delay_ms, spec.jitter_ms, spec.reorder, spec.duplicate
    );
    format!(
        "{live}; if [ -z \"$p\" ]; then : > {NETEM_LOG}; nohup setsid sh -c {cmd} >>{NETEM_LOG} 2>&1 </dev/null & {record}; fi; \
         for i in $(seq 200); do grep -q 'shakedown-netem: queue' {NETEM_LOG} && break; sleep 0.01; done; \
         {{ {live}; [ -n \"$p\" ]; }} || {{ echo \"the delay daemon did not start: $(tail -2 {NETEM_LOG})\" >&2; exit 5; }}; \
         {JUMP}; iptables -w -N {OUT_CHAIN} 2>/dev/null || true; \
         iptables -w -C OUTPUT -j {OUT_CHAIN} 2>/dev/null || iptables -w -I OUTPUT 1 -j {OUT_CHAIN}; \
         printf '{rules}' | iptables-restore -w --noflush || exit 1; \
         iptables -w -S OUTPUT | grep -m1 '^-A'; iptables -w -S {OUT_CHAIN} | grep -c NFQUEUE; \
         bash -c 'echo shakedown-probe > /dev/udp/{probe}/9' 2>/dev/null; \
         for i in $(seq 200); do c=$(iptables-save -c -t filter | grep -m1 -- '-A {OUT_CHAIN} -d {probe}/32' | cut -d: -f1 | tr -d '['); \
           [ \"${{c:-0}}\" -gt 0 ] && break; sleep 0.005; done; echo \"${{c:-0}}\"",
        probe = peers.first().copied().unwrap_or(Ipv4Addr::LOCALHOST),
        live = pidfile::live(NETEM_PID),
        record = pidfile::record(NETEM_PID),
        cmd = shell_quote(&cmd),
    )
}

/// Delays every node's packets to the other nodes (not to the control
/// host), through NFQUEUE and shakedown-netem (uploaded to
/// [`NETEM_DIR`] beforehand), and verifies it on every node in the same
/// command: the daemon runs and has bound its queue (it says so once
/// bound), the rules read back (a queue rule per peer, OUTPUT jumping to
/// the chain first), and a datagram sent to the next node was counted by
/// that peer's queue rule: it went to the daemon, which holds every packet
/// it is given (but those `reorder` lets through). Nothing waits for the
/// delay itself, so applying takes a few commands' time, not 3 round
/// trips (the earlier check: three connections had to take half the delay
/// each, 0.9 s on 5 loaded hosts).
pub fn delay<R: Remote + Send>(
    nodes: &mut [R],
    ips: &[Ipv4Addr],
    spec: &DelaySpec,
    seed: u64,
) -> Vec<NodeResult<String>> {
    let scripts: Vec<String> = (0..nodes.len())
        .map(|i| {
            // The next node first: it gets the probe datagram.
            let peers: Vec<Ipv4Addr> = (1..ips.len()).map(|k| ips[(i + k) % ips.len()]).collect();
            delay_script(spec, &peers, seed.wrapping_add(i as u64))
        })
        .collect();
    on_nodes(nodes, |i, n| {
        let out = n.run(&scripts[i], T)?;
        let mut lines = out.lines().map(str::trim);
        if lines.next() != Some(&format!("-A OUTPUT -j {OUT_CHAIN}") as &str) {
            return Err(unverified(
                n.name(),
                format!("OUTPUT does not jump to {OUT_CHAIN} first"),
            ));
        }
        let queued: usize = lines.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        if queued != ips.len() - 1 {
            return Err(unverified(
                n.name(),
                format!(
                    "{OUT_CHAIN} read back {queued} queue rules, expected {}",
                    ips.len() - 1
                ),
            ));
        }
        let peer = ips[(i + 1) % ips.len()];
        let counted: u64 = lines.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        if counted == 0 {
            return Err(unverified(
                n.name(),
                format!("a datagram to {peer} was not counted by its queue rule within 1 s"),
            ));
        }
        Ok(format!(
            "delays {queued} peers by {} ms +- {} ms, reorder {}, duplicate {} (daemon bound; rules read back; the queue rule to {peer} counted {counted} packets)",
            spec.delay_ms, spec.jitter_ms, spec.reorder, spec.duplicate
        ))
    })
}

/// The lost-writes layer on a node: its binary (uploaded), the mounts it
/// holds (one "MOUNTPOINT SOCKET" line each, so any heal can unmount them),
/// and where each mount keeps what reached the disk.
pub const LOSTFS_DIR: &str = "/opt/shakedown/lostfs";
pub const LOSTFS_MOUNTS: &str = "/run/shakedown-lostfs";
const LOSTFS_BACKING: &str = "/opt/shakedown-lostfs";

/// Shell: mounts shakedown-lostfs over `mountpoint` (empty), its backing
/// directory beside the daemons', writes older than 30 s durable on their
/// own (as the kernel's writeback would); waits until it is mounted.
pub fn lostfs_mount_script(name: &str, mountpoint: &str) -> String {
    let backing = format!("{LOSTFS_BACKING}/{name}");
    let sock = format!("/run/shakedown-lostfs-{name}.sock");
    let cmd = format!(
        "exec {LOSTFS_DIR}/shakedown-lostfs mount {backing} {mountpoint} --control {sock} --writeback-secs 30"
    );
    format!(
        "mkdir -p {backing} {mountpoint} || exit 5; \
         nohup setsid sh -c {cmd} >>{LOSTFS_DIR}/log 2>&1 </dev/null & \
         for i in $(seq 500); do grep -q ' {mountpoint} ' /proc/self/mountinfo && break; sleep 0.01; done; \
         grep -q ' {mountpoint} ' /proc/self/mountinfo || {{ echo \"lostfs did not mount {mountpoint}: $(tail -2 {LOSTFS_DIR}/log)\" >&2; exit 5; }}; \
         echo '{mountpoint} {sock}' >> {LOSTFS_MOUNTS}",
        cmd = shell_quote(&cmd),
    )
}

/// Shell: unmounts every lostfs mount recorded on the node and removes its
/// backing directory (a lazy unmount: never hangs).
pub const LOSTFS_UNMOUNT: &str = "if [ -f /run/shakedown-lostfs ]; then \
    while read -r m s; do /opt/shakedown/lostfs/shakedown-lostfs unmount \"$m\" >/dev/null 2>&1 || umount -l \"$m\" 2>/dev/null; done < /run/shakedown-lostfs; \
    rm -f /run/shakedown-lostfs; fi; rm -rf /opt/shakedown-lostfs; true";

/// The lost-writes fault on one node: SIGKILL the system's daemon (noted
/// for the heal to restart), then drop every write it had not synced, as a
/// power cut would. Returns what was dropped.
pub fn lose_writes<R: Remote>(node: &mut R, daemon: &Daemon) -> Result<String, ControlError> {
    let pid = kill_daemon(node, daemon)?;
    let sock = format!("/run/shakedown-lostfs-{}.sock", daemon.name);
    let out = node.run(
        &format!("{LOSTFS_DIR}/shakedown-lostfs ctl {sock} crash"),
        T,
    )?;
    Ok(format!(
        "{} (pid {pid}) killed, unsynced writes dropped ({})",
        daemon.name,
        out.trim()
    ))
}

/// Where, on a local test host, libfaketime reads the clock offset and rate
/// of the daemons started there (`FAKETIME_TIMESTAMP_FILE`): "+0 x1",
/// "+12 x1", "-3.2 x1.5". The rate is always written: libfaketime 0.9.10
/// keeps the last rate it parsed when a later string has none.
pub const FAKETIME: &str = "/run/shakedown-faketime";

/// The faked clock at rest: no offset, real rate.
pub const FAKETIME_ZERO: &str = "+0 x1";

/// The names ("SEM SHM") of the POSIX semaphore and shared memory through
/// which every process under the node's faked clock shares one start time
/// (`FAKETIME_SHARED`). libfaketime computes a faked time as start +
/// offset + (now - start) x rate; with one start time, known on the node, a
/// rate change can be made continuous for every daemon at once.
pub const FAKETIME_SHARED: &str = "/run/shakedown-faketime-shared";

/// A clock strobe's loop on the node (pid and start time).
pub const STROBE: &str = "/run/shakedown-strobe";

/// The file a daemon's start script sources (see [`crate::daemon`]): on
/// local test hosts with clock faults, libfaketime preloaded, reading its
/// offset from [`FAKETIME`] on every call, the wall clock only (monotonic
/// clocks untouched, as with a real `date -s`).
pub const CLOCK_ENV: &str = "/opt/shakedown/clock.env";

/// The environment that puts a process under the nodes' faked clock.
fn faketime_env(lib: &str) -> String {
    format!(
        "LD_PRELOAD={lib} FAKETIME_TIMESTAMP_FILE={FAKETIME} FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1"
    )
}

/// Shell: sets the offset to zero, makes the node's shared start time
/// (a process under libfaketime creates the semaphore and shared memory
/// and stores its start time there; it is killed with SIGKILL so that its
/// exit handler does not remove them), readable by every user (PostgreSQL
/// runs as `postgres`), and writes [`CLOCK_ENV`] (daemons started from now
/// on run under libfaketime `lib`, sharing that start time).
pub fn faketime_setup_script(lib: &str) -> String {
    let mut exports: String = faketime_env(lib)
        .split(' ')
        .map(|kv| format!("export {kv}\n"))
        .collect();
    exports.push_str(&format!(
        "export FAKETIME_SHARED=\"$(cat {FAKETIME_SHARED})\"\n"
    ));
    format!(
        "mkdir -p /opt/shakedown && echo '{FAKETIME_ZERO}' > {FAKETIME} || exit 5; \
         if [ -f {FAKETIME_SHARED} ]; then read -r a b < {FAKETIME_SHARED}; rm -f \"/dev/shm/sem.${{a#/}}\" \"/dev/shm/${{b#/}}\" {FAKETIME_SHARED}; fi; \
         names=$(env -u FAKETIME_SHARED {env} sh -c 'echo \"$FAKETIME_SHARED\"; kill -s KILL $$'); set -- $names; \
         {{ [ -n \"$2\" ] && truncate -s 80 \"/dev/shm/${{2#/}}\" && chmod 666 \"/dev/shm/sem.${{1#/}}\" \"/dev/shm/${{2#/}}\"; }} || \
           {{ echo \"libfaketime made no shared start time (FAKETIME_SHARED: $names)\" >&2; exit 5; }}; \
         echo \"$names\" > {FAKETIME_SHARED}; {start}; [ \"$S\" -gt 0 ] || {{ echo \"libfaketime's shared start time reads $S\" >&2; exit 5; }}; \
         printf %s {} > {CLOCK_ENV}",
        shell_quote(&exports),
        env = faketime_env(lib),
        start = SHARED_START,
    )
}

/// Shell: sets `S` to the node's shared libfaketime start time (ns since
/// the epoch; 0 when it cannot be read). The shared memory holds two u64
/// counters, then the start time's `timespec` (libfaketime 0.9.10's
/// `struct ft_shared_s`).
const SHARED_START: &str = "S=0; if [ -f /run/shakedown-faketime-shared ]; then read -r a b < /run/shakedown-faketime-shared; \
    set -- $(od -A n -t d8 -j 16 -N 16 \"/dev/shm/${b#/}\" 2>/dev/null); [ -n \"$2\" ] && S=$(( $1 * 1000000000 + $2 )); fi";

/// Shell: no faked clock for daemons started from now on.
pub const FAKETIME_OFF: &str = "rm -f /opt/shakedown/clock.env; \
    if [ -f /run/shakedown-faketime-shared ]; then read -r a b < /run/shakedown-faketime-shared; \
    rm -f \"/dev/shm/sem.${a#/}\" \"/dev/shm/${b#/}\" /run/shakedown-faketime-shared; fi; true";

/// Shell: prints how far (ns) a process under the faked clock sees the
/// wall clock from the real one.
fn faketime_probe(lib: &str) -> String {
    format!(
        "a=$(date +%s%N); b=$(env FAKETIME_SHARED=\"$(cat {FAKETIME_SHARED})\" {} date +%s%N); c=$(date +%s%N); echo $(( b - (a + c) / 2 )) $(( (a + c) / 2 ))",
        faketime_env(lib)
    )
}

/// What a probe under the faked clock saw: its offset from the real clock
/// (s) and when (real time, ns since the epoch).
fn probe_seen<R: Remote + ?Sized>(node: &mut R, lib: &str) -> Result<(f64, i64), ControlError> {
    let out = node.run(&faketime_probe(lib), T)?;
    let mut w = out.split_whitespace().map(str::parse::<i64>);
    match (w.next(), w.next()) {
        (Some(Ok(ns)), Some(Ok(at))) => Ok((ns as f64 / 1e9, at)),
        _ => Err(unverified(
            node.name(),
            format!("the clock probe said {:?}", out.trim()),
        )),
    }
}

fn offset_seen<R: Remote + ?Sized>(node: &mut R, lib: &str) -> Result<f64, ControlError> {
    probe_seen(node, lib).map(|(s, _)| s)
}

/// Moves the faked clock of the node's daemons by `seconds` (local test
/// hosts, libfaketime) and verifies it with a probe under the same
/// settings. Returns what was seen.
pub fn faketime_bump<R: Remote + ?Sized>(
    node: &mut R,
    lib: &str,
    seconds: f64,
) -> Result<String, ControlError> {
    node.run(&format!("echo '{seconds:+} x1' > {FAKETIME}"), T)?;
    let seen = offset_seen(node, lib)?;
    if (seen - seconds).abs() > 0.5 {
        return Err(unverified(
            node.name(),
            format!("the clock was to move by {seconds:+} s, a probe under libfaketime sees {seen:+.3} s"),
        ));
    }
    Ok(format!(
        "clock {seconds:+} s (libfaketime; a probe sees {seen:+.3} s)"
    ))
}

/// Strobes the faked clock between +0 and `delta` seconds every
/// `period_ms` (a loop on the node, recorded in [`STROBE`] so a heal stops
/// it) and verifies the loop runs and a probe sees one of the two.
pub fn faketime_strobe<R: Remote + ?Sized>(
    node: &mut R,
    lib: &str,
    delta: f64,
    period_ms: u32,
) -> Result<String, ControlError> {
    let period = f64::from(period_ms) / 1000.0;
    let lp = format!(
        "while :; do echo '{delta:+} x1' > {FAKETIME}; sleep {period}; echo '{FAKETIME_ZERO}' > {FAKETIME}; sleep {period}; done"
    );
    node.run(
        &format!(
            "nohup setsid sh -c {} >/dev/null 2>&1 </dev/null & {}",
            shell_quote(&lp),
            pidfile::record(STROBE)
        ),
        T,
    )?;
    node.run(&pidfile::live_or_exit(STROBE), T)?;
    let seen = offset_seen(node, lib)?;
    if seen.abs() > 0.5 && (seen - delta).abs() > 0.5 {
        return Err(unverified(
            node.name(),
            format!("a strobe between +0 and {delta:+} s, but a probe sees {seen:+.3} s"),
        ));
    }
    Ok(format!(
        "clock strobing between +0 and {delta:+} s every {period_ms} ms (libfaketime; a probe sees {seen:+.3} s)"
    ))
}

/// Makes the faked clock of the node's daemons run at `rate_milli`/1000 of
/// real time from now on, continuously (from the offset zero a heal left):
/// libfaketime's faked time is start + offset + (now - start) x rate, so
/// the offset written is (now - start) x (1 - rate), computed on the node
/// in integer nanoseconds from the shared start time. libfaketime scales
/// the daemons' sleeps and timeouts by the same rate, as a fast or slow
/// oscillator would. Verified by two probes 300 ms apart under the same
/// settings: their clocks must drift apart from the real one at the rate.
pub fn faketime_skew<R: Remote + ?Sized>(
    node: &mut R,
    lib: &str,
    rate_milli: u32,
) -> Result<String, ControlError> {
    let rate = f64::from(rate_milli) / 1000.0;
    node.run(
        &format!(
            "{SHARED_START}; [ \"$S\" -gt 0 ] || {{ echo \"no shared libfaketime start time on this node ({FAKETIME_SHARED})\" >&2; exit 5; }}; \
             t=$(date +%s%N); d=$(( (t - S) * (1000 - {rate_milli}) / 1000 )); sign=+; \
             if [ $d -lt 0 ]; then sign=-; d=$(( -d )); fi; \
             printf '%s%d.%09d x{rate}\\n' $sign $(( d / 1000000000 )) $(( d % 1000000000 )) > {FAKETIME}"
        ),
        T,
    )?;
    let (first, t1) = probe_seen(node, lib)?;
    node.run("sleep 0.3", T)?;
    let (second, t2) = probe_seen(node, lib)?;
    let elapsed = (t2 - t1) as f64 / 1e9;
    let seen = if elapsed > 0.0 {
        1.0 + (second - first) / elapsed
    } else {
        f64::NAN
    };
    // NaN (no time between the probes) fails too.
    let rate_holds = (seen - rate).abs() <= 0.1;
    if !rate_holds || first.abs() > 0.5 {
        return Err(unverified(
            node.name(),
            format!(
                "the clock was to run at {rate}x, probes under libfaketime see {seen:.3}x (offsets {first:+.3} s, then {second:+.3} s {elapsed:.3} s later)"
            ),
        ));
    }
    Ok(format!(
        "clock running at {rate}x (libfaketime; probes see {seen:.3}x, {first:+.3} s then {second:+.3} s)"
    ))
}

/// Stops the process `pidfile` names (SIGSTOP), with its process group (a
/// daemon's workers, e.g. PostgreSQL's backends), records it on the node,
/// so that any later heal resumes it, and waits until the kernel shows it
/// stopped (state T). Returns the pid.
pub fn pause<R: Remote>(node: &mut R, pidfile: &str) -> Result<u32, ControlError> {
    let out = node.run(
        &format!(
            "{}; {{ kill -s STOP -- -$p 2>/dev/null || kill -s STOP $p; }} && \
             echo \"$p $s\" >> {PAUSED} && {} && echo $p",
            pidfile::live_or_exit(pidfile),
            await_state("=", "was not stopped"),
        ),
        T,
    )?;
    pid(node, &out)
}

/// Resumes a paused process (SIGCONT), forgets it, and waits until the
/// kernel no longer shows it stopped.
pub fn resume<R: Remote>(node: &mut R, pidfile: &str) -> Result<(), ControlError> {
    node.run(
        &format!(
            "{}; {{ kill -s CONT -- -$p 2>/dev/null; kill -s CONT $p; }} && \
             if [ -f {PAUSED} ]; then grep -vx \"$p $s\" {PAUSED} > {PAUSED}.new; mv {PAUSED}.new {PAUSED}; fi; {}",
            pidfile::live_or_exit(pidfile),
            await_state("!=", "was still stopped"),
        ),
        T,
    )
    .map(|_| ())
}

/// Kills the process `pidfile` names (SIGKILL), with its process group (a
/// daemon is started as a session leader: its workers die with it, as on
/// a crash of the machine), and waits until they are gone. Restarting it
/// is the system's business (it knows the command). An error, and nothing
/// signalled, when the process no longer runs, or when it is still there
/// 2 s after the signal.
pub fn kill<R: Remote>(node: &mut R, pidfile: &str) -> Result<u32, ControlError> {
    let out = node.run(
        &format!(
            "{}; {{ kill -s KILL -- -$p 2>/dev/null || kill -s KILL $p; }}; \
             for i in $(seq 200); do kill -0 -- -$p 2>/dev/null || {same} || break; sleep 0.01; done; \
             if {same}; then echo \"process $p still runs 2 s after SIGKILL\" >&2; exit 5; fi; echo $p",
            pidfile::live_or_exit(pidfile),
            same = pidfile::still_same(),
        ),
        T,
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
/// the control host), in shakedown's chain: heal removes it. Each node's
/// chain is read back: it must hold that rule, jumped to first.
pub fn loss<R: Remote + Send>(
    nodes: &mut [R],
    probability: f64,
    control: Ipv4Addr,
) -> Vec<NodeResult<String>> {
    let p = probability.clamp(0.0, 1.0);
    let script = format!(
        "set -e; {JUMP}; \
         iptables -w -A {CHAIN} ! -s {control} -m statistic --mode random --probability {p:.4} -j DROP; {READBACK}"
    );
    on_nodes(nodes, |_, n| {
        let rules = readback(&n.run(&script, T)?);
        if !rules.jump_first {
            return Err(unverified(
                n.name(),
                format!("INPUT does not jump to {CHAIN} first"),
            ));
        }
        match rules.loss.first() {
            Some(prob) => Ok(format!(
                "drops {:.0}% (rule read back, p={prob})",
                p * 100.0
            )),
            None => Err(unverified(
                n.name(),
                format!("{CHAIN} read back holds no loss rule"),
            )),
        }
    })
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
    }

    #[test]
    fn rules_read_back_from_iptables_save() {
        let out = "*filter\n:INPUT ACCEPT [0:0]\n:SHAKEDOWN - [0:0]\n\
                   [12:720] -A INPUT -j SHAKEDOWN\n[0:0] -A INPUT -j ACCEPT\n\
                   [3:180] -A SHAKEDOWN -s 10.77.0.12/32 -j DROP\n\
                   [0:0] -A SHAKEDOWN -s 10.77.0.13/32 -j DROP\nCOMMIT\n";
        let r = readback(out);
        assert!(r.jump_first);
        let ip = |d| Ipv4Addr::new(10, 77, 0, d);
        assert_eq!(r.drops, [(ip(12), 3), (ip(13), 0)].into());
        let expected: BTreeSet<Ipv4Addr> = [ip(12), ip(13)].into();
        assert!(check_drops("n1", &r, &expected).is_ok());
        let e = check_drops("n1", &r, &[ip(12)].into()).unwrap_err();
        assert!(e.to_string().contains("expected [10.77.0.12]"), "{e}");
        // An earlier rule in INPUT: the jump is not first.
        let r = readback("[0:0] -A INPUT -j ACCEPT\n[0:0] -A INPUT -j SHAKEDOWN\n");
        assert!(!r.jump_first);
        let loss = readback("[1:1] -A INPUT -j SHAKEDOWN\n[5:300] -A SHAKEDOWN ! -s 10.77.0.1/32 -m statistic --mode random --probability 0.20000000019 -j DROP\n");
        assert_eq!(loss.loss, ["0.20000000019"]);
        assert!(loss.drops.is_empty() && loss.other.is_empty());
    }
}
