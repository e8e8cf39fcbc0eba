//! A demo node that speaks shakedown's node protocol (docs/node-protocol.md).
//! An example for users, not a product: std only, one thread a connection.
//!
//! `shakedown-demo-node --id n2 --ip 10.77.0.12 --port 8080
//!     --peers n1=10.77.0.11:8080,n2=10.77.0.12:8080,... --data-dir DIR --mode MODE`
//!
//! The first peer is the primary and holds the only copy; the others:
//! - `correct`: forward every request to the primary and relay its answer
//!   (linearizable: one copy, every operation applied there).
//! - `stale-reads`: forward writes, but answer reads from a local copy that
//!   they refresh from the primary once a second.
//! - `lost-writes`: acknowledge writes at once and forward them 100 ms
//!   later, dropping them if the primary cannot be reached then.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    registers: HashMap<String, Value>,
    set: Vec<Value>,
    /// lock -> (client, token, lease end)
    locks: HashMap<String, (String, u64, Option<Instant>)>,
    tokens: u64,
}

struct Node {
    mode: String,
    primary: Option<SocketAddr>,
    state: Mutex<State>,
    /// The primary's log of changes (data_dir/log), replayed at start: a
    /// killed primary comes back with what it acknowledged.
    log: Option<Mutex<std::fs::File>>,
}

const CHANGES: [&str; 5] = ["/write", "/cas", "/add", "/acquire", "/release"];

type Reply = (u16, Value);

fn apply(st: &mut State, path: &str, body: &Value) -> Reply {
    let key = body["key"].to_string();
    match path {
        "/read" => (
            200,
            json!({"value": st.registers.get(&key).cloned().unwrap_or(Value::Null)}),
        ),
        "/write" => {
            st.registers.insert(key, body["value"].clone());
            (200, json!({}))
        }
        "/cas" => {
            let cur = st.registers.get(&key).cloned().unwrap_or(Value::Null);
            if cur == body["from"] {
                st.registers.insert(key, body["to"].clone());
                (200, json!({}))
            } else {
                (409, json!({"error": "compare failed"}))
            }
        }
        "/add" => {
            st.set.push(body["value"].clone());
            (200, json!({}))
        }
        "/read-set" => (200, json!({"values": st.set})),
        "/acquire" => {
            let lock = body["lock"].to_string();
            let client = body["client"].as_str().unwrap_or_default().to_string();
            let free = match st.locks.get(&lock) {
                None => true,
                Some((_, _, Some(end))) => *end <= Instant::now(),
                Some(_) => false,
            };
            if !free {
                return (409, json!({"error": "held by another client"}));
            }
            st.tokens += 1;
            let end = body["lease_ms"]
                .as_u64()
                .map(|ms| Instant::now() + Duration::from_millis(ms));
            st.locks.insert(lock, (client, st.tokens, end));
            (200, json!({"token": st.tokens}))
        }
        "/release" => {
            let lock = body["lock"].to_string();
            let client = body["client"].as_str().unwrap_or_default();
            match st.locks.get(&lock) {
                Some((holder, _, _)) if holder == client => {
                    st.locks.remove(&lock);
                    (200, json!({}))
                }
                _ => (409, json!({"error": "not held"})),
            }
        }
        "/dump" => (
            200,
            json!({"registers": st.registers.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>(), "set": st.set}),
        ),
        _ => (404, json!({"error": format!("no such operation {path}")})),
    }
}

/// One request to another node; `None` when it cannot be reached or answered.
fn forward(to: SocketAddr, path: &str, body: &Value) -> Option<Reply> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let b = body.to_string();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, serde_json::from_str(body).unwrap_or(Value::Null)))
}

impl Node {
    fn handle(&self, path: &str, body: &Value) -> Reply {
        if path == "/health" {
            return (200, json!({"ok": true}));
        }
        let Some(primary) = self.primary else {
            let mut st = self.state.lock().unwrap();
            let reply = apply(&mut st, path, body);
            if reply.0 == 200 && CHANGES.contains(&path) {
                if let Some(log) = &self.log {
                    // Written before the answer; the page cache outlives a SIGKILL.
                    let line = json!({"path": path, "body": body}).to_string() + "\n";
                    if log.lock().unwrap().write_all(line.as_bytes()).is_err() {
                        return (500, json!({"error": "cannot write the log"}));
                    }
                }
            }
            return reply;
        };
        let read = matches!(path, "/read" | "/read-set");
        let write = matches!(path, "/write" | "/cas" | "/add");
        match self.mode.as_str() {
            "stale-reads" if read => apply(&mut self.state.lock().unwrap(), path, body),
            "lost-writes" if write && path != "/cas" => {
                let (p, b) = (path.to_string(), body.clone());
                // Replicated lazily, a little later: acknowledged before it is anywhere.
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    forward(primary, &p, &b)
                });
                (200, json!({}))
            }
            _ => forward(primary, path, body)
                .unwrap_or((503, json!({"error": "the primary cannot be reached"}))),
        }
    }
}

fn serve(node: Arc<Node>, stream: TcpStream) {
    let mut out = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut len = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if lower == "connection: close" {
                close = true;
            }
        }
        let mut buf = vec![0u8; len.min(1 << 20)];
        if r.read_exact(&mut buf).is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&buf).unwrap_or(Value::Null);
        let (code, reply) = node.handle(&path, &body);
        let text = reply.to_string();
        let reason = if code == 200 { "OK" } else { "Error" };
        if write!(out, "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}", text.len()).is_err() || close {
            return;
        }
    }
}

fn main() {
    let mut args: HashMap<String, String> = HashMap::new();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        if let [k, v] = pair {
            args.insert(k.trim_start_matches("--").to_string(), v.clone());
        }
    }
    let get = |k: &str| args.get(k).cloned().unwrap_or_default();
    let (id, ip, port, mode) = (
        get("id"),
        get("ip"),
        get("port"),
        args.get("mode")
            .cloned()
            .unwrap_or_else(|| "correct".into()),
    );
    if !["correct", "stale-reads", "lost-writes"].contains(&mode.as_str()) {
        eprintln!("--mode {mode}: choose correct, stale-reads or lost-writes");
        std::process::exit(3);
    }
    // The first peer is the primary.
    let first = get("peers")
        .split(',')
        .next()
        .unwrap_or_default()
        .to_string();
    let (pname, paddr) = first.split_once('=').unwrap_or(("", ""));
    let primary: Option<SocketAddr> = if pname == id || pname.is_empty() {
        None
    } else {
        paddr.parse().ok()
    };
    let mut state = State::default();
    let mut log = None;
    if primary.is_none() {
        let path = std::path::Path::new(&get("data-dir")).join("log");
        let _ = std::fs::create_dir_all(get("data-dir"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    apply(
                        &mut state,
                        v["path"].as_str().unwrap_or_default(),
                        &v["body"],
                    );
                }
            }
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(f) => log = Some(Mutex::new(f)),
            Err(e) => {
                eprintln!("cannot open {}: {e}", path.display());
                std::process::exit(4);
            }
        }
    }
    let node = Arc::new(Node {
        mode: mode.clone(),
        primary,
        state: Mutex::new(state),
        log,
    });
    if let (Some(p), "stale-reads") = (primary, mode.as_str()) {
        let n = node.clone();
        std::thread::spawn(move || loop {
            if let Some((200, dump)) = forward(p, "/dump", &json!({})) {
                let mut st = n.state.lock().unwrap();
                st.registers = dump["registers"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                st.set = dump["set"].as_array().cloned().unwrap_or_default();
            }
            std::thread::sleep(Duration::from_secs(1));
        });
    }
    let listener = match TcpListener::bind(format!("{ip}:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {ip}:{port}: {e}");
            std::process::exit(4);
        }
    };
    eprintln!(
        "{id}: {mode} node on {ip}:{port}, primary {}",
        primary.map_or("self".to_string(), |p| p.to_string())
    );
    for s in listener.incoming().flatten() {
        let n = node.clone();
        std::thread::spawn(move || serve(n, s));
    }
}
