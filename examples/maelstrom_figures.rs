//! The Maelstrom shim's figures on 5 local hosts (run as root): the latency
//! the shim adds per message, and messages per second through the shims.
//!
//! Each host runs `shakedown-agent maelstrom` around `shakedown-agent
//! echo-node`, and `shakedown-agent tcp-echo` beside it. Measured from the
//! control host, side by side in one run:
//! - the round trip of a line to tcp-echo (the network alone);
//! - the round trip of an echo through a shim to its node and back;
//! - the same with a peer hop: sent to n1's shim for n2, answered back
//!   through n1 (two shims, one host-to-host link each way);
//! - messages per second with 40 clients, 32 requests in flight each, all
//!   through a peer hop.
//!
//! cargo build --release --bin shakedown-agent --example maelstrom_figures
//! target/release/examples/maelstrom_figures

use harness::control::tcp_probe;
use harness::daemon::Daemon;
use harness::testing::TestCluster;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHIM: u16 = 7071;
const ECHO: u16 = 7072;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() * 99 / 100]
}

fn us(d: Duration) -> String {
    format!("{:.0} us", d.as_secs_f64() * 1e6)
}

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Conn {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(line.as_bytes()).unwrap();
        self.w.write_all(b"\n").unwrap();
    }

    fn recv(&mut self) -> String {
        let mut s = String::new();
        self.r.read_line(&mut s).expect("a reply within 5 s");
        s
    }
}

fn echo(client: &str, dest: &str, id: u64) -> String {
    json!({"src": client, "dest": dest, "body": {"type": "echo", "echo": "x", "msg_id": id}})
        .to_string()
}

fn round_trips(addr: &str, n: usize, line: impl Fn(u64) -> String) -> Vec<Duration> {
    let mut c = Conn::open(addr);
    (0..n as u64)
        .map(|i| {
            let s = Instant::now();
            c.send(&line(i));
            c.recv();
            s.elapsed()
        })
        .collect()
}

fn main() {
    let agent = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(|d| d.join("shakedown-agent")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            eprintln!("maelstrom_figures: build shakedown-agent first (cargo build --release --bin shakedown-agent)");
            std::process::exit(3);
        });
    let tc = match TestCluster::up("sdq", 92, 5) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("maelstrom_figures: {e}");
            std::process::exit(4);
        }
    };
    let mut nodes = tc.connect_all().expect("connect");
    let ips: Vec<String> = tc.up.hosts.iter().map(|(_, ip)| ip.to_string()).collect();
    let peers: Vec<String> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| format!("n{}={ip}:{SHIM}", i + 1))
        .collect();
    let (shim, tcp) = (Daemon::new("mfig-shim"), Daemon::new("mfig-echo"));
    for (i, node) in nodes.iter_mut().enumerate() {
        shim.install(node, &agent, "agent", "cargo build --bin shakedown-agent")
            .expect("upload");
        let a = format!("{}/agent", shim.dir());
        let cmd = format!(
            "{a} maelstrom --id n{} --listen {}:{SHIM} --nodes {} -- {a} echo-node",
            i + 1,
            ips[i],
            peers.join(",")
        );
        shim.start(node, &cmd, &shim.dir()).expect("start shim");
        tcp.start(
            node,
            &format!("{a} tcp-echo --listen {}:{ECHO}", ips[i]),
            &tcp.dir(),
        )
        .expect("start tcp-echo");
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let probe = tcp_probe(&ips[i], SHIM, "status\\n", 3, "grep -q ready");
        shim.wait_until(node, &probe, Duration::from_secs(20))
            .expect("shim ready");
    }
    let (n1, n2) = (format!("{}:{SHIM}", ips[0]), format!("{}:{ECHO}", ips[0]));
    let rounds = 5000;
    // Warm up every path once.
    round_trips(&n1, 100, |i| echo("c1", "n2", i));
    let base = round_trips(&n2, rounds, |i| format!("{{\"x\":{i}}}"));
    let direct = round_trips(&n1, rounds, |i| echo("c1", "n1", i));
    let hop = round_trips(&n1, rounds, |i| echo("c1", "n2", i));
    let added = median(direct.clone()).saturating_sub(median(base.clone()));
    println!("round trip, median (p99) of {rounds}:");
    println!(
        "  network alone (tcp-echo)          {} ({})",
        us(median(base.clone())),
        us(p99(base.clone()))
    );
    println!(
        "  through the shim to its node      {} ({})",
        us(median(direct.clone())),
        us(p99(direct))
    );
    println!(
        "  through two shims (peer hop)      {} ({})",
        us(median(hop.clone())),
        us(p99(hop.clone()))
    );
    println!(
        "  added by the shim per message     {} (budget 1000 us; two shim passes: in and out)",
        us(added / 2)
    );
    println!(
        "  a peer hop, less the network alone, halved {}",
        us(median(hop).saturating_sub(median(base)) / 2)
    );

    // Throughput: 8 clients per host, each with 32 echoes in flight to the
    // next host's node through its own host's shim.
    let done = Arc::new(AtomicU64::new(0));
    let secs = 3;
    let until = Instant::now() + Duration::from_secs(secs);
    std::thread::scope(|s| {
        for h in 0..ips.len() {
            for k in 0..8u64 {
                let (done, addr) = (done.clone(), format!("{}:{SHIM}", ips[h]));
                let dest = format!("n{}", (h + 1) % ips.len() + 1);
                // Client ids live on host h: c(M) with (M-1) mod 5 == h.
                let client = format!("c{}", (k + 1) * ips.len() as u64 + h as u64 + 1);
                s.spawn(move || {
                    let mut c = Conn::open(&addr);
                    let mut id = 0;
                    for _ in 0..32 {
                        id += 1;
                        c.send(&echo(&client, &dest, id));
                    }
                    while Instant::now() < until {
                        let r: Value = serde_json::from_str(&c.recv()).unwrap_or(Value::Null);
                        if r["body"]["type"] == "echo_ok" {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        id += 1;
                        c.send(&echo(&client, &dest, id));
                    }
                });
            }
        }
    });
    let n = done.load(Ordering::Relaxed);
    println!(
        "throughput, 40 clients x 32 in flight, peer hop: {} requests/s ({} messages/s through shims: 4 passes each)",
        n / secs,
        4 * n / secs
    );
    for node in nodes.iter_mut() {
        let _ = shim.wipe(node);
        let _ = tcp.wipe(node);
    }
}
