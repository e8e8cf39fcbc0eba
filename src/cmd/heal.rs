//! `shakedown heal [--nodes-file F]`: undo every fault on every node.

use super::nodes::NodeFlags;
use crate::exit;
use clap::Args;
use harness::lifecycle::heal_all;

#[derive(Args)]
pub struct HealArgs {
    #[command(flatten)]
    nodes: NodeFlags,
    /// The store whose latest run's fault journal is reported (the heal itself needs only the nodes)
    #[arg(long, default_value = "store")]
    store: std::path::PathBuf,
}

/// What the latest run's journal says was left in force, if anything.
fn left_behind(store: &std::path::Path) -> Option<String> {
    let run = harness::store::Store::new(store).latest()?;
    let journal = harness::store::Journal {
        path: run.join("faults.jsonl"),
    };
    let faults = journal.read().ok()?;
    let last = faults.last()?;
    if last.is_healed() {
        return None;
    }
    Some(format!(
        "{}: the last fault was not healed: {}",
        run.display(),
        last.to_json()
    ))
}

pub fn run(args: HealArgs) -> u8 {
    let (addrs, opts) = match args.nodes.resolve("heal") {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Some(m) = left_behind(&args.store) {
        out!("{m}");
    }
    let start = std::time::Instant::now();
    match heal_all(&addrs, &opts) {
        Ok(n) => {
            out!(
                "healed {n} of {} nodes in {:.0} ms (partition and loss rules flushed and read back empty, paused processes resumed, killed ones restarted, clocks put back)",
                addrs.len(),
                start.elapsed().as_secs_f64() * 1000.0
            );
            exit::VALID
        }
        Err(e) => {
            err!(
                "shakedown heal: {} of {} nodes could not be reached or healed ({}); they may still drop packets or hold stopped processes:",
                e.0.len(),
                addrs.len(),
                e.nodes().join(", ")
            );
            err!("{e}");
            exit::INFRA
        }
    }
}
