//! Flags shared by the verbs that reach nodes, and how they default.

use crate::exit;
use clap::Args;
use harness::control::SshOptions;
use harness::local::LocalCluster;
use harness::nodes::{self, NodeAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct NodeFlags {
    /// Hosts, one per line (default: the local cluster's)
    #[arg(long)]
    pub nodes_file: Option<PathBuf>,
    /// Private key for SSH (default: the local cluster's, else ~/.ssh/id_ed25519 or id_rsa)
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// Trusted host keys (default: the local cluster's, else ~/.ssh/known_hosts)
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Trust and record host keys not yet in known_hosts
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

fn home_ssh(file: &str) -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
        .join(".ssh")
        .join(file)
}

impl NodeFlags {
    /// The nodes and how to reach them; `Err` is an exit code after a message.
    pub fn resolve(self, verb: &str) -> Result<(Vec<NodeAddr>, SshOptions), u8> {
        let local = LocalCluster::new(1);
        let is_local = self.nodes_file.is_none();
        let nodes_file = self.nodes_file.unwrap_or_else(|| local.nodes_file());
        if is_local && !nodes_file.exists() {
            err!("shakedown {verb}: no --nodes-file given and no local cluster is up: run `shakedown cluster up` or pass --nodes-file");
            return Err(exit::USAGE);
        }
        let addrs = nodes::read(&nodes_file).map_err(|e| {
            err!("shakedown {verb}: {e}");
            exit::USAGE
        })?;
        let key = self.ssh_key.unwrap_or_else(|| {
            if is_local {
                local.key()
            } else {
                let ed = home_ssh("id_ed25519");
                if ed.exists() {
                    ed
                } else {
                    home_ssh("id_rsa")
                }
            }
        });
        if !key.exists() {
            err!(
                "shakedown {verb}: --ssh-key {} does not exist",
                key.display()
            );
            return Err(exit::USAGE);
        }
        let known_hosts = self.known_hosts.unwrap_or_else(|| {
            if is_local {
                local.known_hosts()
            } else {
                home_ssh("known_hosts")
            }
        });
        let opts = SshOptions {
            key,
            known_hosts,
            accept_new_host_keys: self.accept_new_host_keys,
            connect_timeout: Duration::from_secs(10),
        };
        Ok((addrs, opts))
    }
}
