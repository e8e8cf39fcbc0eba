//! Preflight of each node: can shakedown run a test there?
//!
//! One line per node: SSH as root (or passwordless sudo), iptables usable,
//! the system's ports free, disk space, and the clock's offset from the
//! control host. A failed check says what to do about it.

use crate::control::{Remote, SshNode, SshOptions};
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

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Checks one node.
pub fn check(addr: &NodeAddr, opts: &SshOptions, ports: &[u16]) -> NodeReport {
    let mut findings = Vec::new();
    let mut node = match SshNode::connect(addr, opts) {
        Ok(n) => n,
        Err(e) => {
            findings.push(found(
                "ssh",
                false,
                format!(
                    "cannot reach {}@{}:{} over SSH ({e}); check that sshd runs there, the key {} is authorized, and the host key is known",
                    addr.user,
                    addr.host,
                    addr.port,
                    opts.key.display()
                ),
            ));
            return NodeReport {
                node: addr.name.clone(),
                findings,
            };
        }
    };
    // Root, or sudo without a password: faults need both iptables and signals.
    let sudo = match node.run("id -u", T).map(|s| s.trim() == "0") {
        Ok(true) => {
            findings.push(found("root", true, "root"));
            ""
        }
        Ok(false)
            if node
                .exec("sudo -n true", T)
                .map(|o| o.code == 0)
                .unwrap_or(false) =>
        {
            findings.push(found("root", true, "sudo"));
            "sudo -n "
        }
        Ok(false) => {
            findings.push(found("root", false, format!("{} is not root and has no passwordless sudo: log in as root or allow `sudo -n`", addr.user)));
            ""
        }
        Err(e) => {
            findings.push(found("root", false, format!("cannot run commands: {e}")));
            return NodeReport {
                node: addr.name.clone(),
                findings,
            };
        }
    };
    match node.exec(&format!("{sudo}iptables -w -S INPUT"), T) {
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
                "iptables does not work ({}): partitions need it",
                o.stderr.trim()
            ),
        )),
        Err(e) => findings.push(found("iptables", false, e.to_string())),
    }
    if !ports.is_empty() {
        match node.run("ss -ltnH", T) {
            Ok(listening) => {
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
                    findings.push(found("ports", true, format!("ports {} free", list(ports))));
                } else {
                    findings.push(found(
                        "ports",
                        false,
                        format!(
                            "port {} in use: stop what listens there (`ss -ltnp` on the node)",
                            list(&busy)
                        ),
                    ));
                }
            }
            Err(e) => findings.push(found(
                "ports",
                false,
                format!("cannot list listening ports: {e}"),
            )),
        }
    }
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
    NodeReport {
        node: addr.name.clone(),
        findings,
    }
}

/// Checks every node in parallel; reports in the nodes file's order.
pub fn check_all(addrs: &[NodeAddr], opts: &SshOptions, ports: &[u16]) -> Vec<NodeReport> {
    std::thread::scope(|s| {
        let handles: Vec<_> = addrs
            .iter()
            .map(|a| s.spawn(move || check(a, opts, ports)))
            .collect();
        handles
            .into_iter()
            .zip(addrs)
            .map(|(h, a)| {
                h.join().unwrap_or_else(|_| NodeReport {
                    node: a.name.clone(),
                    findings: vec![found("doctor", false, "the check itself failed")],
                })
            })
            .collect()
    })
}
