//! Maelstrom's services on the control host: `lin-kv`, `seq-kv`, `lww-kv`
//! (read, write, cas with `create_if_not_exists`) and `lin-tso` (`ts`).
//!
//! Each node's shim keeps one TCP connection here; the control host is
//! never partitioned, as Maelstrom's services are not. Every service is
//! linearizable (one lock over all state): that is a correct `seq-kv` and
//! `lww-kv` too, though one that never shows the stale reads they allow.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Longest request line read; a longer one closes the connection.
const MAX_LINE: u64 = 64 << 20;

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
            answer(&mut s, &msg)
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
pub fn answer(s: &mut State, msg: &Value) -> Option<Value> {
    let service = msg["dest"].as_str().unwrap_or_default().to_string();
    let b = &msg["body"];
    b.get("msg_id")?;
    let key = (service.clone(), b["key"].to_string());
    Some(
        match (service.as_str(), b["type"].as_str().unwrap_or_default()) {
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
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_services_answer_as_maelstrom_defines() {
        let mut s = State::default();
        let mut ask = |dest: &str, body: Value| {
            answer(&mut s, &json!({"src": "n1", "dest": dest, "body": body})).unwrap()
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
