//! `shakedown doctor [--nodes-file F]`: one line per node, exit 4 if any fails.

use super::nodes::NodeFlags;
use crate::exit;
use clap::Args;
use harness::doctor;

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    nodes: NodeFlags,
    /// Ports the system under test needs free (default: etcd's 2379,2380)
    #[arg(long, value_delimiter = ',', default_value = "2379,2380")]
    ports: Vec<u16>,
}

pub fn run(args: DoctorArgs) -> u8 {
    let (addrs, opts) = match args.nodes.resolve("doctor") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut commands = harness::needs::NODE.to_vec();
    commands.extend_from_slice(harness::needs::IPTABLES);
    let needs = doctor::Needs {
        commands,
        iptables: true,
        ports: args.ports,
        clock_offset: true,
    };
    let reports = doctor::check_all(&addrs, &opts, &needs);
    for r in &reports {
        out!("{}", r.line());
    }
    if reports.iter().all(|r| r.ok()) {
        exit::VALID
    } else {
        exit::INFRA
    }
}
