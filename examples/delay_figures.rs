//! The delay fault's cost on 5 local hosts (run as root): how long from the
//! nemesis deciding to the delay being in force and verified on every node
//! (`nemesis::delay`), and from the heal's start to every node verified
//! clean (`nemesis::heal`), each measured 20 times; medians and p95 against
//! the 150 ms budget. Also what a round trip between two nodes takes while
//! the delay is in force (it must be about twice the delay).
//!
//! cargo build --release --bin shakedown-netem --example delay_figures
//! target/release/examples/delay_figures [ROUNDS]

use harness::control::Remote;
use harness::daemon::Daemon;
use harness::nemesis::{self, DelaySpec};
use harness::testing::TestCluster;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let p = |q: usize| ms(v[(v.len() * q / 100).min(v.len() - 1)]);
    println!(
        "{name}: median {:.1} ms, p95 {:.1} ms, min {:.1} ms, max {:.1} ms ({} runs; budget 150 ms)",
        p(50),
        p(95),
        ms(v[0]),
        ms(v[v.len() - 1]),
        v.len()
    );
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let netem = std::env::current_exe()
        .expect("own path")
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("shakedown-netem"))
        .expect("target dir");
    let t = TestCluster::up("sdo", 78, 5).expect("cluster up (root?)");
    let mut nodes = t.connect_all().expect("connect");
    let ips: Vec<Ipv4Addr> = t.up.hosts.iter().map(|(_, ip)| *ip).collect();
    let d = Daemon::new("netem");
    for n in nodes.iter_mut() {
        d.install(
            n,
            &netem,
            "shakedown-netem",
            "cargo build --bin shakedown-netem",
        )
        .expect("upload shakedown-netem");
    }
    let spec = DelaySpec::default();
    let (mut apply, mut heal) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let t0 = Instant::now();
        let applied = nemesis::delay(&mut nodes, &ips, &spec, round as u64);
        apply.push(t0.elapsed());
        for r in &applied {
            if let Err(e) = &r.result {
                panic!("delay not verified on {}: {e}", r.node);
            }
        }
        if round == 0 {
            println!("verified: {}", applied[0].result.as_ref().unwrap());
            // The delay itself, observed: a TCP handshake n1 -> n2 (both hold).
            let out = nodes[0]
                .run(
                    &format!(
                        "s=$(date +%s%N); timeout 5 bash -c 'exec 3<>/dev/tcp/{}/22'; echo $(( ($(date +%s%N) - s) / 1000000 ))",
                        ips[1]
                    ),
                    Duration::from_secs(10),
                )
                .expect("handshake");
            println!(
                "a handshake n1 -> n2 while delayed: {} ms (delay {} ms each way)",
                out.trim(),
                spec.delay_ms
            );
        }
        let t1 = Instant::now();
        let healed = nemesis::heal(&mut nodes);
        heal.push(t1.elapsed());
        for r in &healed {
            if let Err(e) = &r.result {
                panic!("heal not verified on {}: {e}", r.node);
            }
        }
    }
    summary("delay applied and verified on 5 hosts", apply);
    summary("heal (delay stopped, chains empty) on 5 hosts", heal);
}
