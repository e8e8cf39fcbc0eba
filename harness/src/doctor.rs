//! Preflight of each node: can shakedown run a test there?
//!
//! One line per node: SSH as root, every command the run needs (see
//! [`crate::needs`]), iptables usable when faults need it, the system's
//! ports free, disk space, and (for `shakedown doctor`) the clock's offset
//! from the control host. A failed check says what to do about it. Every
//! `shakedown test` runs [`inspect`] on every node before anything starts.

use crate::control::{in_parallel, Remote, SshNode, SshOptions};
use crate::needs::{self, Need};
use crate::nodes::NodeAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const T: Duration = Duration::from_secs(10);
/// Less free disk than this fails.
const MIN_FREE_KB: u64 = 1 << 20;
/// A clock further off than this fails: checkers order by the control host's
/// clock, but node logs do not.
const MAX_OFFSET_MS: f64 = 1000.0;

#[derive(Clone, Debug)]
pub struct Finding {
    pub check: &'static str,
    pub ok: bool,
    /// What was found, or what is wrong and what to do.
    pub detail: String,
}

#[derive(Clone, Debug)]
pub struct NodeReport {
    pub node: String,
    pub findings: Vec<Finding>,
}

impl NodeReport {
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }

    /// "n1  ok  root, iptables, ..." or "n1  FAIL  <the first problems>".
    pub fn line(&self) -> String {
        let (verdict, shown): (&str, Vec<&Finding>) = if self.ok() {
            ("ok", self.findings.iter().collect())
        } else {
            ("FAIL", self.findings.iter().filter(|f| !f.ok).collect())
        };
        let details: Vec<String> = shown.iter().map(|f| f.detail.clone()).collect();
        format!("{}  {verdict}  {}", self.node, details.join("; "))
    }
}

fn found(check: &'static str, ok: bool, detail: impl Into<String>) -> Finding {
    Finding {
        check,
        ok,
        detail: detail.into(),
    }
}

/// What a run needs of each node.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    /// Commands that must be on PATH (or at their absolute path).
    pub commands: Vec<Need>,
    /// iptables must work (partitions, loss, primary isolation).
    pub iptables: bool,
    /// Ports that must be free.
    pub ports: Vec<u16>,
    /// Report the clock's offset from the control host's.
    pub clock_offset: bool,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Connects to one node and checks it.
pub fn check(addr: &NodeAddr, opts: &SshOptions, needs: &Needs) -> NodeReport {
    match SshNode::connect(addr, opts) {
        Ok(mut node) => inspect(&mut node, needs),
        Err(e) => NodeReport {
            node: addr.name.clone(),
            findings: vec![found(
                "ssh",
                false,
                format!(
                    "cannot reach {}@{}:{} over SSH ({e}); check that sshd runs there, the key {} is authorized, and the host key is known",
                    addr.user,
                    addr.host,
                    addr.port,
                    opts.key.display()
                ),
            )],
        },
    }
}

/// Checks a connected node against what a run needs.
pub fn inspect<R: Remote + ?Sized>(node: &mut R, needs: &Needs) -> NodeReport {
    let mut findings = Vec::new();
    let name = node.name().to_string();
    // Faults signal processes, change iptables and clocks, and the harness
    // runs its commands without sudo: root it must be.
    match node.run("id -u", T).map(|s| s.trim() == "0") {
        Ok(true) => findings.push(found("root", true, "root")),
        Ok(false) => findings.push(found(
            "root",
            false,
            "not root: shakedown runs its commands without sudo; log in as root (root@host in the nodes file)",
        )),
        Err(e) => {
            findings.push(found("root", false, format!("cannot run commands: {e}")));
            return NodeReport { node: name, findings };
        }
    }
    if !needs.commands.is_empty() {
        match node.run(&needs::missing_script(&needs.commands), T) {
            Ok(out) => {
                let missing: Vec<&str> = out
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                if missing.is_empty() {
                    findings.push(found(
                        "commands",
                        true,
                        format!("{} commands", needs.commands.len()),
                    ));
                } else {
                    for m in needs::describe_missing(&needs.commands, &missing) {
                        findings.push(found("commands", false, m));
                    }
                }
            }
            Err(e) => findings.push(found("commands", false, e.to_string())),
        }
    }
    if needs.iptables {
        check_iptables(node, &mut findings);
    }
    if !needs.ports.is_empty() {
        findings.push(ports_free(node, &needs.ports));
    }
    disk(node, &mut findings);
    if needs.clock_offset {
        clock(node, &mut findings);
    }
    NodeReport {
        node: name,
        findings,
    }
}

fn check_iptables<R: Remote + ?Sized>(node: &mut R, findings: &mut Vec<Finding>) {
    match node.exec("iptables -w -S INPUT && iptables-restore --version", T) {
        Ok(o) if o.code == 0 => findings.push(found("iptables", true, "iptables")),
        Ok(o) if o.code == 127 => findings.push(found(
            "iptables",
            false,
            "iptables is missing: install it on the node (apt-get install iptables)",
        )),
        Ok(o) => findings.push(found(
            "iptables",
            false,
            format!(
                "iptables does not work (exit {}{}{}): partitions and loss need it; reinstall it (apt-get install --reinstall iptables)",
                o.code,
                if o.stderr.trim().is_empty() { "" } else { ": " },
                o.stderr.trim().chars().take(200).collect::<String>()
            ),
        )),
        Err(e) => findings.push(found("iptables", false, e.to_string())),
    }
}

/// Whether `ports` are free on the node.
pub fn ports_free<R: Remote + ?Sized>(node: &mut R, ports: &[u16]) -> Finding {
    let listening = match node.run("ss -ltnH", T) {
        Ok(l) => l,
        Err(e) => return found("ports", false, format!("cannot list listening ports: {e}")),
    };
    let busy: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| {
            listening.lines().any(|l| {
                l.split_whitespace()
                    .nth(3)
                    .is_some_and(|a| a.ends_with(&format!(":{p}")))
            })
        })
        .collect();
    let list = |ps: &[u16]| {
        ps.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if busy.is_empty() {
        found("ports", true, format!("ports {} free", list(ports)))
    } else {
        found(
            "ports",
            false,
            format!(
                "port {} in use: stop what listens there (`ss -ltnp` on the node)",
                list(&busy)
            ),
        )
    }
}

fn disk<R: Remote + ?Sized>(node: &mut R, findings: &mut Vec<Finding>) {
    match node.run("df -Pk / | tail -1", T) {
        Ok(df) => match df
            .split_whitespace()
            .nth(3)
            .and_then(|k| k.parse::<u64>().ok())
        {
            Some(kb) if kb >= MIN_FREE_KB => {
                findings.push(found("disk", true, format!("{} GiB free", kb >> 20)))
            }
            Some(kb) => findings.push(found(
                "disk",
                false,
                format!("only {} MiB free on /: free at least 1 GiB", kb >> 10),
            )),
            None => findings.push(found(
                "disk",
                false,
                format!("cannot read free space from {df:?}"),
            )),
        },
        Err(e) => findings.push(found("disk", false, e.to_string())),
    }
}

fn clock<R: Remote + ?Sized>(node: &mut R, findings: &mut Vec<Finding>) {
    let before = now_secs();
    match node.run("date +%s.%N", T) {
        Ok(t) => {
            let after = now_secs();
            match t.trim().parse::<f64>() {
                Ok(remote) => {
                    // Opening the channel comes before `date` runs; its answer
                    // comes straight back. So compare with the arrival, and
                    // give the round trip as the uncertainty.
                    let offset = (remote - after) * 1000.0;
                    let within = (after - before) * 1000.0;
                    let ok = offset.abs() <= MAX_OFFSET_MS + within;
                    let detail = if ok {
                        format!("clock {offset:+.1} ms (±{within:.0} ms)")
                    } else {
                        format!("clock {offset:+.0} ms off: synchronise it (chrony or ntpsec) so node logs line up")
                    };
                    findings.push(found("clock", ok, detail));
                }
                Err(_) => findings.push(found(
                    "clock",
                    false,
                    format!("cannot read the clock from {t:?}"),
                )),
            }
        }
        Err(e) => findings.push(found("clock", false, e.to_string())),
    }
}

/// Checks every node in parallel; reports in the nodes file's order.
pub fn check_all(addrs: &[NodeAddr], opts: &SshOptions, needs: &Needs) -> Vec<NodeReport> {
    let mut refs: Vec<&NodeAddr> = addrs.iter().collect();
    in_parallel(&mut refs, |_, a| check(a, opts, needs))
        .into_iter()
        .zip(addrs)
        .map(|(r, a)| {
            r.unwrap_or_else(|| NodeReport {
                node: a.name.clone(),
                findings: vec![found("doctor", false, "the check itself failed")],
            })
        })
        .collect()
}
