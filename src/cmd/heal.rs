//! `shakedown heal [--nodes-file F]`: undo every partition and pause on every node.

use super::nodes::{connect_all, NodeFlags};
use crate::exit;
use clap::Args;
use harness::nemesis;

#[derive(Args)]
pub struct HealArgs {
    #[command(flatten)]
    nodes: NodeFlags,
}

pub fn run(args: HealArgs) -> u8 {
    let (addrs, opts) = match args.nodes.resolve("heal") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (mut nodes, failed) = connect_all(&addrs, &opts);
    for f in &failed {
        eprintln!("shakedown heal: {f}");
    }
    match nemesis::heal(&mut nodes) {
        Ok(took) => println!(
            "healed {} of {} nodes in {:.0} ms (partition rules flushed, paused processes resumed)",
            nodes.len(),
            addrs.len(),
            took.as_secs_f64() * 1000.0
        ),
        Err(e) => {
            eprintln!("shakedown heal: {e}");
            return exit::INFRA;
        }
    }
    if failed.is_empty() {
        exit::VALID
    } else {
        exit::INFRA
    }
}
