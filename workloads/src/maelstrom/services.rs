//! Maelstrom's services on the control host: `lin-kv`, `seq-kv`, `lww-kv`
//! (read, write, cas with `create_if_not_exists`) and `lin-tso` (`ts`).
//!
//! Each node's shim keeps one TCP connection here; the control host is
//! never partitioned, as Maelstrom's services are not. `lin-kv`, `lww-kv`
//! and `lin-tso` are linearizable (one lock over all state; a correct
//! `lww-kv`, though one without the lost updates it allows). `seq-kv` is
//! sequentially consistent and shows it: each node reads from its own view,
//! a past state of the store up to [`STALE`] old, which moves to the newest
//! state whenever that node writes or compare-and-sets (so it always sees
//! its own writes, and views only move forward).

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How old a node's view of `seq-kv` may be when it reads.
pub const STALE: Duration = Duration::from_millis(500);

/// Longest request line read; a longer one closes the connection.
const MAX_LINE: u64 = 64 << 20;

/// One node's view of seq-kv: a copy of its keys, and when it was taken.
#[derive(Default)]
pub struct View {
    taken: Option<Instant>,
    kv: HashMap<String, Value>,
}

impl View {
    fn refresh(&mut self, s: &State) {
        self.kv =
            s.kv.iter()
                .filter(|((svc, _), _)| svc == "seq-kv")
                .map(|((_, k), v)| (k.clone(), v.clone()))
                .collect();
        self.taken = Some(Instant::now());
    }
}

#[derive(Default)]
pub struct State {
    kv: HashMap<(String, String), Value>,
    ts: u64,
}

/// Started services: where the shims reach them.
pub struct Services {
    pub addr: SocketAddr,
}

impl Services {
    /// Listens on `ip` (the control host's address on the nodes' network),
    /// on a port of the kernel's choosing, and serves until the process ends.
    pub fn start(ip: IpAddr) -> std::io::Result<Services> {
        let l = TcpListener::bind(SocketAddr::new(ip, 0))?;
        let addr = l.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || serve(conn, &state));
            }
        });
        Ok(Services { addr })
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    let _ = conn.set_nodelay(true);
    let Ok(mut w) = conn.try_clone() else { return };
    let mut r = BufReader::new(conn);
    let mut view = View::default();
    loop {
        let mut buf = Vec::new();
        match r.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
            continue;
        };
        let body = {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            answer(&mut s, &mut view, &msg)
        };
        let Some(mut body) = body else { continue };
        body["in_reply_to"] = msg["body"]["msg_id"].clone();
        let reply = json!({"src": msg["dest"], "dest": msg["src"], "body": body});
        if w.write_all(format!("{reply}\n").as_bytes()).is_err() {
            return;
        }
    }
}

fn error(code: u64, text: String) -> Value {
    json!({"type": "error", "code": code, "text": text})
}

/// The reply body to a request, or `None` for a message that wants none.
/// `view` is the asking node's view of seq-kv.
pub fn answer(s: &mut State, view: &mut View, msg: &Value) -> Option<Value> {
    let service = msg["dest"].as_str().unwrap_or_default();
    let b = &msg["body"];
    b.get("msg_id")?;
    let kind = b["type"].as_str().unwrap_or_default();
    if service == "seq-kv" && kind == "read" {
        if view.taken.is_none_or(|t| t.elapsed() > STALE) {
            view.refresh(s);
        }
        return Some(match view.kv.get(&b["key"].to_string()) {
            Some(v) => json!({"type": "read_ok", "value": v}),
            None => error(20, format!("key {} does not exist", b["key"])),
        });
    }
    let reply = linearizable(s, service, kind, b);
    if service == "seq-kv" {
        view.refresh(s);
    }
    Some(reply)
}

/// Every request on the one shared state, in the order they arrive.
fn linearizable(s: &mut State, service: &str, kind: &str, b: &Value) -> Value {
    let key = (service.to_string(), b["key"].to_string());
    match (service, kind) {
        ("lin-tso", "ts") => {
            s.ts += 1;
            json!({"type": "ts_ok", "ts": s.ts})
        }
        ("lin-kv" | "seq-kv" | "lww-kv", "read") => match s.kv.get(&key) {
            Some(v) => json!({"type": "read_ok", "value": v}),
            None => error(20, format!("key {} does not exist", b["key"])),
        },
        ("lin-kv" | "seq-kv" | "lww-kv", "write") => {
            s.kv.insert(key, b["value"].clone());
            json!({"type": "write_ok"})
        }
        ("lin-kv" | "seq-kv" | "lww-kv", "cas") => match s.kv.get(&key) {
            None if b["create_if_not_exists"] == json!(true) => {
                s.kv.insert(key, b["to"].clone());
                json!({"type": "cas_ok"})
            }
            None => error(20, format!("key {} does not exist", b["key"])),
            Some(v) if *v == b["from"] => {
                s.kv.insert(key, b["to"].clone());
                json!({"type": "cas_ok"})
            }
            Some(v) => error(22, format!("expected {}, but had {v}", b["from"])),
        },
        (svc, t) => error(10, format!("{svc} does not support {t:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_kv_reads_may_lag_for_other_nodes_never_for_the_writer() {
        let mut s = State::default();
        let (mut n1, mut n2) = (View::default(), View::default());
        let msg = |body: Value| json!({"src": "n1", "dest": "seq-kv", "body": body});
        let read = json!({"type": "read", "key": "k", "msg_id": 1});
        // n2 takes its view before the write.
        assert_eq!(
            answer(&mut s, &mut n2, &msg(read.clone())).unwrap()["code"],
            20
        );
        answer(
            &mut s,
            &mut n1,
            &msg(json!({"type": "write", "key": "k", "value": 1, "msg_id": 2})),
        );
        assert_eq!(
            answer(&mut s, &mut n1, &msg(read.clone())).unwrap()["value"],
            1
        );
        // Stale for n2 until its view is older than STALE.
        assert_eq!(
            answer(&mut s, &mut n2, &msg(read.clone())).unwrap()["code"],
            20
        );
        n2.taken = Some(Instant::now() - STALE - Duration::from_millis(1));
        assert_eq!(answer(&mut s, &mut n2, &msg(read)).unwrap()["value"], 1);
    }

    #[test]
    fn kv_services_answer_as_maelstrom_defines() {
        let mut s = State::default();
        let mut view = View::default();
        let mut ask = |dest: &str, body: Value| {
            answer(
                &mut s,
                &mut view,
                &json!({"src": "n1", "dest": dest, "body": body}),
            )
            .unwrap()
        };
        // (request, expected type, expected code)
        let rows = [
            (
                json!({"type": "read", "key": "a", "msg_id": 1}),
                "error",
                Some(20),
            ),
            (
                json!({"type": "cas", "key": "a", "from": 1, "to": 2, "msg_id": 2}),
                "error",
                Some(20),
            ),
            (
                json!({"type": "cas", "key": "a", "from": 1, "to": 2, "create_if_not_exists": true, "msg_id": 3}),
                "cas_ok",
                None,
            ),
            (
                json!({"type": "cas", "key": "a", "from": 1, "to": 3, "msg_id": 4}),
                "error",
                Some(22),
            ),
            (
                json!({"type": "write", "key": "a", "value": 7, "msg_id": 5}),
                "write_ok",
                None,
            ),
            (
                json!({"type": "read", "key": "a", "msg_id": 6}),
                "read_ok",
                None,
            ),
            (json!({"type": "frob", "msg_id": 7}), "error", Some(10)),
        ];
        for (req, t, code) in rows {
            let r = ask("lin-kv", req.clone());
            assert_eq!(
                (r["type"].as_str().unwrap(), r["code"].as_u64()),
                (t, code),
                "{req}"
            );
        }
        assert_eq!(
            ask("lin-kv", json!({"type": "read", "key": "a", "msg_id": 8}))["value"],
            7
        );
        // Services keep separate keys.
        assert_eq!(
            ask("seq-kv", json!({"type": "read", "key": "a", "msg_id": 9}))["code"],
            20
        );
        let t1 = ask("lin-tso", json!({"type": "ts", "msg_id": 10}))["ts"]
            .as_u64()
            .unwrap();
        let t2 = ask("lin-tso", json!({"type": "ts", "msg_id": 11}))["ts"]
            .as_u64()
            .unwrap();
        assert!(t2 > t1);
    }
}
