//! The Maelstrom shim on loopback, without test hosts: two shims, each
//! around `shakedown-agent echo-node`, and a client speaking to one of them.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shims, killed when dropped (also when a test fails).
struct Shims(Vec<Child>);

impl Drop for Shims {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> (Shims, Vec<String>) {
    let agent = env!("CARGO_BIN_EXE_shakedown-agent");
    let addrs: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let nodes = format!("n1={},n2={}", addrs[0], addrs[1]);
    let shims = Shims(
        (0..2)
            .map(|i| {
                Command::new(agent)
                    .args(["maelstrom", "--id", &format!("n{}", i + 1)])
                    .args([
                        "--listen",
                        &addrs[i],
                        "--nodes",
                        &nodes,
                        "--",
                        agent,
                        "echo-node",
                    ])
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    // Poll each until it says it is ready.
    let deadline = Instant::now() + Duration::from_secs(20);
    for a in &addrs {
        loop {
            let ready = TcpStream::connect(a).ok().and_then(|mut s| {
                s.write_all(b"status\n").ok()?;
                let mut line = String::new();
                BufReader::new(s).read_line(&mut line).ok()?;
                Some(line == "ready\n")
            });
            if ready == Some(true) {
                break;
            }
            assert!(Instant::now() < deadline, "shim at {a} never became ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    (shims, addrs)
}

struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn new(addr: &str) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn echo(&mut self, client: &str, dest: &str, payload: &str) -> Value {
        let m = json!({"src": client, "dest": dest, "body": {"type": "echo", "echo": payload, "msg_id": 7}});
        writeln!(self.w, "{m}").unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).expect("a reply");
        serde_json::from_str(&line).unwrap()
    }
}

#[test]
fn replies_come_back_from_the_node_asked_and_across_a_peer_hop() {
    let (_shims, addrs) = start();
    let mut c = Client::new(&addrs[0]);
    // c1 lives on n1 (index (1-1) mod 2 = 0).
    let r = c.echo("c1", "n1", "a");
    assert_eq!(
        (r["src"].as_str(), r["body"]["echo"].as_str()),
        (Some("n1"), Some("a"))
    );
    // Sent to n2 through n1's shim; n2's reply travels back through n1.
    let r = c.echo("c1", "n2", "b");
    assert_eq!(
        (r["src"].as_str(), r["body"]["echo"].as_str()),
        (Some("n2"), Some("b"))
    );
    // Long lines pass whole.
    let long = "x".repeat(200_000);
    assert_eq!(
        c.echo("c1", "n2", &long)["body"]["echo"].as_str(),
        Some(long.as_str())
    );
}

#[test]
fn a_client_that_reconnects_gets_its_replies_on_the_new_connection() {
    // Regression: the shim kept writing c1's replies to its first, closed, connection.
    let (_shims, addrs) = start();
    Client::new(&addrs[0]).echo("c1", "n1", "first");
    let r = Client::new(&addrs[0]).echo("c1", "n1", "second");
    assert_eq!(r["body"]["echo"], "second");
}
