//! Writes a generated history as JSON lines (for benchmarks and debugging).
//!
//! cargo run --release -p checkers --example gen_history -- \
//!     --ops 1000000 --keys 8 --processes 20 --crash 0.01 [--no-cas] [--quiet-every N] \
//!     [--values N] [--stale | --impossible] [--seed N] > h.jsonl
//!
//! --values N draws written values from 0..N (Jepsen's register workloads use 0..5)
//! instead of unique ones; then only writes and cas crash.
//! With --stale, one stale read is injected and its event index printed on stderr;
//! with --impossible, one read of a value nothing writes. --at start|middle|end|F
//! places it near that fraction of the history (for --stale with --values, writes
//! of 0 before it never crash, so that a read of 0 there can be certainly stale).
//! --model counter|set|bank|lock generates a valid history for that checker
//! instead (bank: --accounts N, 100 each, and the --init JSON is printed on stderr;
//! set: --reads N whole-set reads during the run, default 10, then a final read).
//! --model list-append|rw-register: --ops transactions of 1-4 micro-ops on a
//! rotating set of --keys active keys (32 writes each), then final reads;
//! --min-mops/--max-mops set the length range (default 1-4, as Jepsen's).

use checkers::gen::{generate, inject_impossible_read, inject_stale_read, GenConfig};

fn main() {
    let mut cfg = GenConfig::default();
    let mut stale = false;
    let mut impossible = false;
    let mut at: Option<f64> = None;
    let mut model = String::from("register");
    let mut accounts = 5usize;
    let mut reads = 10usize;
    let (mut min_mops, mut max_mops) = (1usize, 4usize);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = || args.get(i + 1).cloned().unwrap_or_default();
        let num = |flag: &str| -> f64 {
            val().parse().unwrap_or_else(|_| {
                eprintln!("gen_history: {flag} needs a number");
                std::process::exit(3)
            })
        };
        match args[i].as_str() {
            "--ops" => cfg.ops = num("--ops") as usize,
            "--keys" => cfg.keys = num("--keys") as usize,
            "--processes" => cfg.processes = num("--processes") as usize,
            "--crash" => cfg.crash_rate = num("--crash"),
            "--quiet-every" => cfg.quiet_every = num("--quiet-every") as usize,
            "--values" => cfg.values = num("--values") as u64,
            "--accounts" => accounts = num("--accounts") as usize,
            "--reads" => reads = num("--reads") as usize,
            "--min-mops" => min_mops = num("--min-mops") as usize,
            "--max-mops" => max_mops = num("--max-mops") as usize,
            "--model" => model = val(),
            "--at" => {
                at = Some(match val().as_str() {
                    "start" => 0.0,
                    "middle" => 0.5,
                    "end" => 1.0,
                    _ => num("--at"),
                })
            }
            "--seed" => {
                cfg.seed = val().parse().unwrap_or_else(|_| {
                    eprintln!("gen_history: --seed needs an integer");
                    std::process::exit(3)
                })
            }
            "--cas" => {
                cfg.cas = true;
                i += 1;
                continue;
            }
            "--no-cas" => {
                cfg.cas = false;
                i += 1;
                continue;
            }
            "--stale" => {
                stale = true;
                i += 1;
                continue;
            }
            "--impossible" => {
                impossible = true;
                i += 1;
                continue;
            }
            other => {
                eprintln!("gen_history: unknown flag {other}");
                std::process::exit(3)
            }
        }
        i += 2;
    }
    let mut events = match model.as_str() {
        "counter" => checkers::gen::counter(cfg.ops, cfg.processes, cfg.crash_rate, cfg.seed),
        "set" => checkers::gen::set(cfg.ops, cfg.processes, cfg.crash_rate, reads, cfg.seed),
        "lock" => checkers::gen::lock(cfg.ops / 2, cfg.processes, cfg.seed),
        "list-append" | "rw-register" => {
            use checkers::txn::{gen::TxnGen, TxnKind};
            checkers::txn::gen::generate(&TxnGen {
                kind: if model == "list-append" {
                    TxnKind::ListAppend
                } else {
                    TxnKind::RwRegister
                },
                txns: cfg.ops,
                processes: cfg.processes,
                active_keys: cfg.keys,
                crash_rate: cfg.crash_rate,
                seed: cfg.seed,
                min_mops,
                max_mops,
                ..TxnGen::default()
            })
        }
        "bank" => {
            let (events, init) =
                checkers::gen::bank(cfg.ops, cfg.processes, accounts, cfg.crash_rate, cfg.seed);
            eprintln!("{init}");
            events
        }
        _ => {
            if stale && cfg.values > 0 {
                cfg.spare = at;
            }
            generate(&cfg)
        }
    };
    if stale || impossible {
        let injected = if stale {
            inject_stale_read(&mut events, cfg.seed, at)
        } else {
            inject_impossible_read(&mut events, cfg.seed, at)
        };
        match injected {
            Some(at) => eprintln!("read injected at event {at}"),
            None => {
                eprintln!("gen_history: no such read could be injected");
                std::process::exit(1)
            }
        }
    }
    let out = std::io::stdout();
    let mut w = checkers::history::jsonl::HistoryWriter::new(std::io::BufWriter::new(out.lock()));
    for e in &events {
        if w.append(e).is_err() {
            std::process::exit(1);
        }
    }
}
