//! The harness's own overhead: a client that answers at once, at
//! concurrency 100, for 10 s, every event recorded and flushed to a history
//! file as in a real run. Prints recorded ops/s and the process's peak RSS.
//!
//! cargo run --release -p harness --example overhead [-- SECONDS [CONCURRENCY]]

use checkers::history::jsonl::HistoryWriter;
use harness::runner::{
    run_clients, Client, Completion, Generator, Op, Recorder, RunConfig, Workers,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Noop;

impl Client for Noop {
    async fn invoke(&mut self, op: &Op) -> Completion {
        Completion::Ok(op.value.clone())
    }
}

struct Ops(u64);

impl Generator for Ops {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Op> {
        self.0 += 1;
        Some(if rng.gen_bool(0.5) {
            Op::new("read", Some(json!(self.0 % 8)), Value::Null)
        } else {
            Op::new("write", Some(json!(self.0 % 8)), json!(self.0))
        })
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let concurrency: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = std::fs::File::create(dir.path().join("history.jsonl")).expect("history file");
    let recorder = Arc::new(Recorder::new(HistoryWriter::new(file), Instant::now()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut workers = Workers::new(concurrency, rx);
    let cfg = RunConfig {
        concurrency,
        time_limit: Duration::from_secs_f64(secs),
        op_timeout: Duration::from_secs(5),
        seed: 1,
        rate: None,
    };
    let start = Instant::now();
    let stats = rt
        .block_on(run_clients(
            &cfg,
            &mut workers,
            |_| Noop,
            |_| Ops(0),
            recorder,
        ))
        .expect("run");
    let el = start.elapsed().as_secs_f64();
    let size = std::fs::metadata(dir.path().join("history.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "concurrency {concurrency}, {secs} s: {} ops recorded, {:.0} ops/s, history {:.0} MiB, peak RSS {:.1} MiB",
        stats.ok,
        stats.ok as f64 / el,
        size as f64 / 1048576.0,
        peak_rss_mib()
    );
}
