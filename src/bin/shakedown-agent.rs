//! shakedown's own helper on the nodes, uploaded like a system's binary.
//!
//! `shakedown-agent maelstrom` is the Maelstrom shim: it runs one Maelstrom
//! node (any executable speaking JSON lines on stdin/stdout) and carries its
//! messages over the real network, so partitions, kills and pauses act on
//! them:
//!
//! ```text
//! shakedown-agent maelstrom --id n1 --listen 10.77.0.11:7070 \
//!     --nodes n1=10.77.0.11:7070,n2=10.77.0.12:7070 [--services 10.77.0.1:40000] \
//!     [--topology total] -- /opt/shakedown/maelstrom/bin/run
//! ```
//!
//! - It sends `init` (and `topology` when asked) as client `c0`, and holds
//!   every other message until the node has answered them: a restarted node
//!   (kill, then heal) is initialised again.
//! - Lines are routed by `dest`: its own node (stdin), another node (one TCP
//!   connection per peer, which gives up after 1 s without acknowledgements, so
//!   a partition loses messages as Maelstrom's network does), a client (the
//!   connection it wrote from; client `cM` lives on node index (M-1) mod N, so
//!   a reply sent from another node travels there first), or a service
//!   (`seq-kv`, `lin-kv`, `lww-kv`, `lin-tso`: the control host's, unpartitioned).
//! - The node's stderr goes to the agent's own (the daemon's log): drained.
//! - A line `status` answers `ready` once the node is initialised, else `starting`.
//! - When the node exits, so does the agent: the daemon is down until a heal.
//!
//! Two helpers for the shim's figures (examples/maelstrom_figures.rs):
//! `echo-node` (a Maelstrom echo node with nothing else in its way) and
//! `tcp-echo --listen IP:PORT` (echoes lines: the network's own round trip).

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest line accepted from anyone: nodes print kilobytes, never this.
const MAX_LINE: u64 = 64 << 20;
/// Messages queued per peer before new ones are dropped (as a full link).
const QUEUE: usize = 100_000;
const SERVICES: [&str; 4] = ["seq-kv", "lin-kv", "lww-kv", "lin-tso"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("maelstrom") => match Config::parse(&args[1..]) {
            Ok(c) => shim(c),
            Err(e) => {
                eprintln!("shakedown-agent maelstrom: {e}");
                std::process::exit(3);
            }
        },
        Some("echo-node") => echo_node(),
        Some("tcp-echo") if args.len() == 3 && args[1] == "--listen" => tcp_echo(&args[2]),
        _ => {
            eprintln!("usage: shakedown-agent maelstrom --id ID --listen IP:PORT --nodes ID=IP:PORT,... [--services IP:PORT] [--topology total|none] -- COMMAND [ARGS]");
            std::process::exit(3);
        }
    }
}

struct Config {
    id: String,
    listen: String,
    nodes: Vec<(String, String)>,
    services: Option<String>,
    topology: bool,
    command: Vec<String>,
}

impl Config {
    fn parse(args: &[String]) -> Result<Config, String> {
        let mut c = Config {
            id: String::new(),
            listen: String::new(),
            nodes: Vec::new(),
            services: None,
            topology: false,
            command: Vec::new(),
        };
        let mut i = 0;
        while i < args.len() {
            let flag = args[i].as_str();
            if flag == "--" {
                c.command = args[i + 1..].to_vec();
                break;
            }
            let v = args
                .get(i + 1)
                .ok_or_else(|| format!("{flag} needs a value"))?
                .clone();
            match flag {
                "--id" => c.id = v,
                "--listen" => c.listen = v,
                "--services" => c.services = Some(v),
                "--topology" => c.topology = v == "total",
                "--nodes" => {
                    for part in v.split(',') {
                        let (n, a) = part
                            .split_once('=')
                            .ok_or_else(|| format!("--nodes: {part:?} is not ID=IP:PORT"))?;
                        c.nodes.push((n.into(), a.into()));
                    }
                }
                _ => return Err(format!("unknown flag {flag}")),
            }
            i += 2;
        }
        if c.id.is_empty() || c.listen.is_empty() || c.command.is_empty() {
            return Err("--id, --listen and a command after -- are needed".into());
        }
        if !c.nodes.iter().any(|(n, _)| *n == c.id) {
            return Err(format!("--nodes does not name {}", c.id));
        }
        Ok(c)
    }
}

/// Where a message goes.
#[derive(Debug, PartialEq)]
enum Dest {
    Node,
    Peer(usize),
    Client(String),
    Service,
    Shim,
    Nowhere,
}

struct Shim {
    id: String,
    me: usize,
    ids: Vec<String>,
    to_node: SyncSender<String>,
    /// Lines for the node until it is initialised (`None` once it is).
    held: Mutex<Option<Vec<String>>>,
    clients: Mutex<HashMap<String, Arc<Mutex<TcpStream>>>>,
    peers: Vec<Option<SyncSender<String>>>,
    services: Option<SyncSender<String>>,
}

/// The node index a client id `cM` lives on.
fn client_home(id: &str, n: usize) -> Option<usize> {
    let m: usize = id.strip_prefix('c')?.parse().ok()?;
    (m >= 1 && n > 0).then(|| (m - 1) % n)
}

impl Shim {
    fn route(&self, dest: &str) -> Dest {
        if dest == self.id {
            return Dest::Node;
        }
        if dest == "c0" {
            return Dest::Shim;
        }
        if let Some(i) = self.ids.iter().position(|n| n == dest) {
            return Dest::Peer(i);
        }
        if SERVICES.contains(&dest) {
            return Dest::Service;
        }
        match client_home(dest, self.ids.len()) {
            Some(h) if h == self.me => Dest::Client(dest.into()),
            Some(h) => Dest::Peer(h),
            None => Dest::Nowhere,
        }
    }

    /// Sends `line` toward `dest`; drops it (with a note) when it cannot.
    fn send(&self, dest: &str, line: String) {
        match self.route(dest) {
            Dest::Node => {
                let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
                match held.as_mut() {
                    Some(h) => h.push(line),
                    None => {
                        let _ = self.to_node.send(line);
                    }
                }
            }
            Dest::Peer(i) => {
                if let Some(Some(q)) = self.peers.get(i) {
                    if let Err(TrySendError::Full(_)) = q.try_send(line) {
                        eprintln!("shim: queue to {} full: message dropped", self.ids[i]);
                    }
                }
            }
            Dest::Client(c) => {
                let conn = self
                    .clients
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&c)
                    .cloned();
                if let Some(conn) = conn {
                    let mut s = conn.lock().unwrap_or_else(|p| p.into_inner());
                    if write_line(&mut *s, &line).is_err() {
                        drop(s);
                        self.clients
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&c);
                    }
                }
            }
            Dest::Service => match &self.services {
                Some(q) => {
                    let _ = q.try_send(line);
                }
                None => eprintln!("shim: no services address: message to {dest} dropped"),
            },
            Dest::Shim | Dest::Nowhere => {
                eprintln!(
                    "shim: message to unknown destination {dest:?} dropped: {}",
                    cut(&line)
                )
            }
        }
    }

    /// The node is initialised: everything held goes to it, in order.
    fn release(&self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for line in held.take().unwrap_or_default() {
            let _ = self.to_node.send(line);
        }
    }

    fn ready(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }
}

/// Writes one message line.
fn write_line(w: &mut impl Write, line: &str) -> std::io::Result<()> {
    w.write_all(line.as_bytes())?;
    w.write_all(b"\n")
}

fn cut(s: &str) -> String {
    s.chars().take(200).collect()
}

fn dest_of(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    Some(v.get("dest")?.as_str()?.to_string())
}

/// Reads one line of at most MAX_LINE bytes; `None` at the end.
fn read_line(r: &mut impl BufRead) -> Option<String> {
    let mut buf = Vec::new();
    match r.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            Some(String::from_utf8_lossy(&buf).into_owned())
        }
    }
}

fn shim(c: Config) {
    let mut child = match Command::new(&c.command[0])
        .args(&c.command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(ch) => ch,
        Err(e) => {
            eprintln!("shim: cannot start {}: {e}", c.command[0]);
            std::process::exit(1);
        }
    };
    let listener = match TcpListener::bind(&c.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shim: cannot listen on {}: {e}", c.listen);
            let _ = child.kill();
            std::process::exit(1);
        }
    };
    let ids: Vec<String> = c.nodes.iter().map(|(n, _)| n.clone()).collect();
    let me = ids.iter().position(|n| *n == c.id).unwrap_or(0);

    // The node's stdin: one writer thread, so lines never interleave.
    let (to_node, node_rx) = mpsc::sync_channel::<String>(QUEUE);
    let mut stdin = child.stdin.take().expect("stdin is piped");
    std::thread::spawn(move || {
        for line in node_rx {
            if stdin
                .write_all(line.as_bytes())
                .and_then(|_| stdin.write_all(b"\n"))
                .and_then(|_| stdin.flush())
                .is_err()
            {
                break;
            }
        }
    });

    let peers = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, (name, addr))| {
            (i != me).then(|| {
                let (tx, rx) = mpsc::sync_channel(QUEUE);
                let (name, addr) = (name.clone(), addr.clone());
                std::thread::spawn(move || peer_link(&name, &addr, rx));
                tx
            })
        })
        .collect();
    let (services_tx, services_rx) = mpsc::sync_channel::<String>(QUEUE);
    let shim = Arc::new(Shim {
        id: c.id.clone(),
        me,
        ids: ids.clone(),
        to_node: to_node.clone(),
        held: Mutex::new(Some(Vec::new())),
        clients: Mutex::new(HashMap::new()),
        peers,
        services: c.services.as_ref().map(|_| services_tx),
    });
    if let Some(addr) = c.services.clone() {
        let s = shim.clone();
        std::thread::spawn(move || service_link(&addr, services_rx, &s));
    }
    {
        let s = shim.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || inbound(conn, &s));
            }
        });
    }

    let init = json!({"src": "c0", "dest": c.id, "body": {
        "type": "init", "msg_id": 1, "node_id": c.id, "node_ids": ids}});
    let _ = to_node.send(init.to_string());
    eprintln!("shim: started {} as {}, sent init", c.command[0], c.id);

    let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
    while let Some(line) = read_line(&mut out) {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!(
                    "shim: the node printed a line that is not JSON ({e}): {}",
                    cut(&line)
                );
                continue;
            }
        };
        let Some(dest) = v.get("dest").and_then(Value::as_str) else {
            eprintln!("shim: a message without dest: {}", cut(&line));
            continue;
        };
        if dest == "c0" {
            let body = &v["body"];
            match (body["type"].as_str(), body["in_reply_to"].as_u64()) {
                (Some("init_ok"), Some(1)) if c.topology => {
                    let topo: serde_json::Map<String, Value> = ids
                        .iter()
                        .map(|n| {
                            let others: Vec<&String> = ids.iter().filter(|o| *o != n).collect();
                            (n.clone(), json!(others))
                        })
                        .collect();
                    let m = json!({"src": "c0", "dest": c.id, "body": {
                        "type": "topology", "msg_id": 2, "topology": topo}});
                    let _ = to_node.send(m.to_string());
                }
                (Some("init_ok"), Some(1)) | (Some("topology_ok"), Some(2)) => {
                    eprintln!("shim: {} is initialised", c.id);
                    shim.release();
                }
                _ => eprintln!("shim: unexpected reply to the shim: {}", cut(&line)),
            }
            continue;
        }
        shim.send(dest, line);
    }
    let status = child.wait();
    eprintln!("shim: the node exited ({status:?}); the shim exits too");
    std::process::exit(1);
}

/// One connection from a client, a peer's shim or a status probe.
fn inbound(conn: TcpStream, shim: &Shim) {
    let _ = conn.set_nodelay(true);
    let writer = match conn.try_clone() {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    let mut registered: Option<String> = None;
    while let Some(line) = read_line(&mut r) {
        if line == "status" {
            let answer: &[u8] = if shim.ready() {
                b"ready\n"
            } else {
                b"starting\n"
            };
            let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
            let _ = w.write_all(answer);
            let _ = w.shutdown(std::net::Shutdown::Both);
            return;
        }
        let v: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                eprintln!("shim: a line that is not JSON arrived: {}", cut(&line));
                continue;
            }
        };
        let (Some(src), Some(dest)) = (v["src"].as_str(), v["dest"].as_str()) else {
            continue;
        };
        // A client's replies go to the connection it last wrote from.
        if registered.as_deref() != Some(src) && shim.route(src) == Dest::Client(src.into()) {
            shim.clients
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(src.into(), writer.clone());
            registered = Some(src.to_string());
        }
        shim.send(dest, line);
    }
}

/// Connects with a timeout, and makes unacknowledged data abort the
/// connection after 1 s (so a partition loses what is in flight).
fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let sa: SocketAddr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let s = TcpStream::connect_timeout(&sa, Duration::from_millis(500))?;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(Duration::from_secs(1)))?;
    user_timeout(&s, 1000);
    Ok(s)
}

fn user_timeout(s: &TcpStream, ms: u32) {
    use std::os::fd::AsRawFd;
    let v: libc::c_uint = ms;
    // SAFETY: a valid socket and an option of the size the kernel expects.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            &v as *const libc::c_uint as *const libc::c_void,
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        );
    }
}

/// Writes a peer's messages in order; what cannot be delivered is dropped,
/// and after a failed connect new messages are dropped for 100 ms.
fn peer_link(name: &str, addr: &str, rx: Receiver<String>) {
    let mut conn: Option<TcpStream> = None;
    let mut failed_at: Option<Instant> = None;
    let mut dropped = 0u64;
    for line in rx {
        if conn.is_none() {
            if failed_at.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
                dropped += 1;
                continue;
            }
            match connect(addr) {
                Ok(s) => {
                    if dropped > 0 {
                        eprintln!("shim: reached {name} again; {dropped} messages were dropped");
                    }
                    dropped = 0;
                    failed_at = None;
                    conn = Some(s);
                }
                Err(_) => {
                    failed_at = Some(Instant::now());
                    dropped += 1;
                    continue;
                }
            }
        }
        if let Some(s) = conn.as_mut() {
            if write_line(s, &line).is_err() {
                conn = None;
                dropped += 1;
            }
        }
    }
}

/// The control host's services: requests out, replies to the node.
fn service_link(addr: &str, rx: Receiver<String>, shim: &Arc<Shim>) {
    let mut conn: Option<TcpStream> = None;
    for line in rx {
        if conn.is_none() {
            match TcpStream::connect(addr) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    if let Ok(r) = s.try_clone() {
                        let shim = shim.clone();
                        std::thread::spawn(move || {
                            let mut r = BufReader::new(r);
                            while let Some(reply) = read_line(&mut r) {
                                if let Some(d) = dest_of(&reply) {
                                    shim.send(&d, reply);
                                }
                            }
                        });
                    }
                    conn = Some(s);
                }
                Err(e) => {
                    eprintln!("shim: cannot reach the services at {addr}: {e}");
                    continue;
                }
            }
        }
        if let Some(s) = conn.as_mut() {
            if write_line(s, &line).is_err() {
                conn = None;
            }
        }
    }
}

/// A Maelstrom node answering `init` and `echo` only, as fast as it can.
fn echo_node() {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut r = stdin.lock();
    let mut id = Value::Null;
    while let Some(line) = read_line(&mut r) {
        let Ok(m) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let body = &m["body"];
        let reply = match body["type"].as_str() {
            Some("init") => {
                id = body["node_id"].clone();
                json!({"type": "init_ok", "in_reply_to": body["msg_id"]})
            }
            Some("echo") => {
                json!({"type": "echo_ok", "echo": body["echo"], "in_reply_to": body["msg_id"]})
            }
            _ => continue,
        };
        let msg = json!({"src": id, "dest": m["src"], "body": reply});
        if writeln!(out, "{msg}").and_then(|_| out.flush()).is_err() {
            return;
        }
    }
}

/// Echoes every line on every connection.
fn tcp_echo(listen: &str) {
    let l = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tcp-echo: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    for conn in l.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = conn.set_nodelay(true);
            let Ok(mut w) = conn.try_clone() else { return };
            let mut r = BufReader::new(conn);
            while let Some(line) = read_line(&mut r) {
                if write_line(&mut w, &line).is_err() {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_live_on_the_node_their_number_names() {
        assert_eq!(client_home("c1", 3), Some(0));
        assert_eq!(client_home("c3", 3), Some(2));
        assert_eq!(client_home("c4", 3), Some(0));
        assert_eq!(client_home("c0", 3), None);
        assert_eq!(client_home("n1", 3), None);
    }
}
