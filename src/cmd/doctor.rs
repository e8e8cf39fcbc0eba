//! `shakedown doctor [--nodes-file F]`: one line per node, exit 4 if any fails.

use crate::exit;
use clap::Args;
use harness::control::SshOptions;
use harness::doctor;
use harness::local::LocalCluster;
use harness::nodes;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct DoctorArgs {
    /// Hosts to check, one per line (default: the local cluster's)
    #[arg(long)]
    nodes_file: Option<PathBuf>,
    /// Private key for SSH (default: the local cluster's, else ~/.ssh/id_ed25519 or id_rsa)
    #[arg(long)]
    ssh_key: Option<PathBuf>,
    /// Trusted host keys (default: the local cluster's, else ~/.ssh/known_hosts)
    #[arg(long)]
    known_hosts: Option<PathBuf>,
    /// Trust and record host keys not yet in known_hosts
    #[arg(long)]
    accept_new_host_keys: bool,
    /// Ports the system under test needs free (default: etcd's 2379,2380)
    #[arg(long, value_delimiter = ',', default_value = "2379,2380")]
    ports: Vec<u16>,
}

fn home_ssh(file: &str) -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
        .join(".ssh")
        .join(file)
}

pub fn run(args: DoctorArgs) -> u8 {
    let local = LocalCluster::new(1);
    let is_local = args.nodes_file.is_none();
    let nodes_file = args.nodes_file.unwrap_or_else(|| local.nodes_file());
    if is_local && !nodes_file.exists() {
        eprintln!("shakedown doctor: no --nodes-file given and no local cluster is up: run `shakedown cluster up` or pass --nodes-file");
        return exit::USAGE;
    }
    let addrs = match nodes::read(&nodes_file) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shakedown doctor: {e}");
            return exit::USAGE;
        }
    };
    let key = args.ssh_key.unwrap_or_else(|| {
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
        eprintln!(
            "shakedown doctor: --ssh-key {} does not exist",
            key.display()
        );
        return exit::USAGE;
    }
    let opts = SshOptions {
        key,
        known_hosts: args.known_hosts.unwrap_or_else(|| {
            if is_local {
                local.known_hosts()
            } else {
                home_ssh("known_hosts")
            }
        }),
        accept_new_host_keys: args.accept_new_host_keys,
        connect_timeout: Duration::from_secs(10),
    };
    let reports = doctor::check_all(&addrs, &opts, &args.ports);
    for r in &reports {
        println!("{}", r.line());
    }
    if reports.iter().all(|r| r.ok()) {
        exit::VALID
    } else {
        exit::INFRA
    }
}
