//! `shakedown cluster up [--nodes N] | down | status`: local test hosts.

use crate::exit;
use clap::{Args, Subcommand};
use harness::local::LocalCluster;

#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Start N hosts n1..nN in network namespaces, each with its own sshd (idempotent)
    Up {
        /// How many hosts
        #[arg(long, default_value_t = 5)]
        nodes: usize,
    },
    /// Remove every host, link, process, directory and sysctl change the cluster made
    Down,
    /// One line per host
    Status,
}

/// The cluster as it stands: as many hosts as its nodes file lists (5 when none).
fn current() -> LocalCluster {
    let c = LocalCluster::new(5);
    let listed = std::fs::read_to_string(c.nodes_file())
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
                .count()
        })
        .unwrap_or(5);
    LocalCluster::new(listed.max(1))
}

pub fn run(args: ClusterArgs) -> u8 {
    match args.action {
        Action::Up { nodes } => match LocalCluster::new(nodes).up() {
            Ok(up) => {
                let how = if up.reused { "already up" } else { "up" };
                out!(
                    "cluster {how}: {} hosts in {:.2} s",
                    up.hosts.len(),
                    up.elapsed.as_secs_f64()
                );
                for (name, ip) in &up.hosts {
                    out!("  {name}  {ip}");
                }
                out!("nodes file:  {}", up.nodes_file.display());
                out!("ssh key:     {}", up.key.display());
                out!("known_hosts: {}", up.known_hosts.display());
                if let Some((_, ip)) = up.hosts.first() {
                    out!(
                        "try:         ssh -i {} -o UserKnownHostsFile={} root@{ip} hostname",
                        up.key.display(),
                        up.known_hosts.display()
                    );
                }
                exit::VALID
            }
            Err(e) => {
                err!("shakedown cluster up: {e}");
                exit::INFRA
            }
        },
        Action::Down => match current().down() {
            Ok(()) => {
                out!("cluster down");
                exit::VALID
            }
            Err(e) => {
                err!("shakedown cluster down: {e}");
                exit::INFRA
            }
        },
        Action::Status => {
            let hosts = current().status();
            let mut all_up = true;
            for h in &hosts {
                let state = match (h.namespace, h.ssh) {
                    (true, true) => format!("up ({} processes, sshd answering)", h.processes),
                    (true, false) => format!(
                        "broken ({} processes, sshd not answering): run `shakedown cluster up`",
                        h.processes
                    ),
                    (false, _) => "down".to_string(),
                };
                all_up &= h.ssh;
                out!("{}  {}  {state}", h.name, h.ip);
            }
            if all_up {
                exit::VALID
            } else {
                exit::INFRA
            }
        }
    }
}
