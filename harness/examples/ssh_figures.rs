//! Connection and command figures on a local cluster (run as root):
//! cluster up and down, a new SSH session, a command on a reused session,
//! and five nodes in parallel. Used by scripts/bench.
//!
//! cargo run --release -p harness --example ssh_figures

use harness::control::{Remote, SshNode};
use harness::nemesis::{self, Partition};
use harness::testing::TestCluster;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let tc = match TestCluster::up("sdb", 80, 5) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ssh_figures: {e}");
            std::process::exit(4);
        }
    };
    let up = tc.up.clone();
    let c = tc.cluster.clone();
    let result = std::panic::catch_unwind(|| {
        let opts = tc.ssh_options();
        let addrs = tc.addrs();
        let t = Duration::from_secs(10);
        let connects: Vec<Duration> = (0..10)
            .map(|_| {
                let s = Instant::now();
                SshNode::connect(&addrs[0], &opts).expect("connect");
                s.elapsed()
            })
            .collect();
        let mut node = SshNode::connect(&addrs[0], &opts).expect("connect");
        let commands: Vec<Duration> = (0..50)
            .map(|_| {
                let s = Instant::now();
                node.run("true", t).expect("true");
                s.elapsed()
            })
            .collect();
        let mut all: Vec<SshNode> = addrs
            .iter()
            .map(|a| SshNode::connect(a, &opts).expect("connect"))
            .collect();
        let parallel: Vec<Duration> = (0..20)
            .map(|_| {
                let s = Instant::now();
                std::thread::scope(|sc| {
                    for n in all.iter_mut() {
                        sc.spawn(move || n.run("true", t).expect("true"));
                    }
                });
                s.elapsed()
            })
            .collect();
        let fresh5 = {
            let s = Instant::now();
            std::thread::scope(|sc| {
                for a in &addrs {
                    let o = &opts;
                    sc.spawn(move || SshNode::connect(a, o).expect("connect"));
                }
            });
            s.elapsed()
        };
        let names: Vec<String> = addrs.iter().map(|a| a.name.clone()).collect();
        let ip_of = |name: &str| {
            addrs
                .iter()
                .find(|a| a.name == name)
                .and_then(|a| a.host.parse().ok())
        };
        let mut parts = Vec::new();
        let mut heals = Vec::new();
        // Each with its verification: rules read back, cut links probed;
        // the heal's chain read back empty.
        for seed in 0..21 {
            let g = Partition::ALL[seed as usize % 5].grudge(&names, seed);
            let s = Instant::now();
            harness::control::all_ok(nemesis::partition(&mut all, &ip_of, &g, c.control_ip()))
                .expect("partition verified");
            parts.push(s.elapsed());
            let s = Instant::now();
            harness::control::all_ok(nemesis::heal(&mut all)).expect("heal verified");
            heals.push(s.elapsed());
        }
        println!(
            "cluster up, 5 hosts:                     {}",
            ms(up.elapsed)
        );
        println!(
            "new SSH session (connect, auth), median: {}",
            ms(median(connects))
        );
        println!(
            "command on a reused session, median:     {}",
            ms(median(commands))
        );
        println!(
            "command on 5 nodes in parallel, median:  {}",
            ms(median(parallel))
        );
        println!("5 new sessions in parallel:              {}", ms(fresh5));
        println!(
            "partition + verification on 5, median:   {}",
            ms(median(parts))
        );
        println!(
            "heal + verification on 5, median:        {}",
            ms(median(heals))
        );
    });
    let s = Instant::now();
    let down = c.down();
    println!(
        "cluster down:                            {}",
        ms(s.elapsed())
    );
    if result.is_err() || down.is_err() {
        std::process::exit(4);
    }
}
