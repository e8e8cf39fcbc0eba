//! A client of one node through its shim: Maelstrom messages as JSON lines
//! over TCP, as client `cM` (M-1 mod N is the node's index, so the shims can
//! bring back replies sent from any node).
//!
//! Errors as Maelstrom defines them: definite codes (the operation did not
//! happen) fail; every other code, a timeout or a lost connection is info,
//! except for reads, which change nothing and so fail.

use super::Kind;
use harness::runner::{Client, Completion, Op};
use harness::system::NodeInfo;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Maelstrom's definite error codes: the operation certainly did not happen.
pub const DEFINITE: [u64; 9] = [1, 10, 11, 12, 14, 20, 21, 22, 30];

static CLIENTS: AtomicU64 = AtomicU64::new(0);

pub struct MaelstromClient {
    kind: Kind,
    addr: String,
    node: String,
    /// The node's Maelstrom id (`n1`...), the messages' `dest`.
    dest: String,
    id: String,
    conn: Option<(BufReader<OwnedReadHalf>, OwnedWriteHalf)>,
    msg_id: u64,
    timeout: Duration,
    refused: bool,
    /// Kafka: the next offset to poll per key.
    positions: std::collections::BTreeMap<String, i64>,
}

impl MaelstromClient {
    pub fn new(
        kind: Kind,
        slot: usize,
        nodes: &[NodeInfo],
        port: u16,
        timeout: Duration,
    ) -> MaelstromClient {
        let i = slot % nodes.len();
        let k = CLIENTS.fetch_add(1, Ordering::Relaxed);
        MaelstromClient {
            kind,
            addr: format!("{}:{port}", nodes[i].ip),
            node: nodes[i].name.clone(),
            dest: super::node_id(i),
            id: format!("c{}", k * nodes.len() as u64 + i as u64 + 1),
            conn: None,
            msg_id: 0,
            timeout,
            refused: false,
            positions: Default::default(),
        }
    }

    /// Whether `op` changes nothing (so an unknown outcome is a failure).
    fn read_only(&self, op: &Op) -> bool {
        match op.f.as_str() {
            "read" | "echo" | "generate" | "poll" | "list_committed_offsets" => true,
            "txn" => op
                .value
                .as_array()
                .is_some_and(|m| m.iter().all(|m| m[0] == "r")),
            _ => false,
        }
    }

    async fn call(&mut self, body: Value) -> Result<Value, Completion> {
        let not_done = |m: String| Completion::Fail(Value::Null, m);
        if self.conn.is_none() {
            let c =
                tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&self.addr)).await;
            match c {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    let (r, w) = s.into_split();
                    self.conn = Some((BufReader::new(r), w));
                }
                Ok(Err(e)) => {
                    self.refused = true;
                    return Err(not_done(format!("cannot connect to {}: {e}", self.node)));
                }
                Err(_) => {
                    return Err(not_done(format!(
                        "cannot connect to {} within 1 s",
                        self.node
                    )))
                }
            }
        }
        self.msg_id += 1;
        let id = self.msg_id;
        let mut body = body;
        body["msg_id"] = json!(id);
        let line = json!({"src": self.id, "dest": self.dest, "body": body}).to_string() + "\n";
        let Some((r, w)) = self.conn.as_mut() else {
            return Err(not_done("no connection".into()));
        };
        let wait = async {
            w.write_all(line.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = String::new();
            loop {
                buf.clear();
                if r.read_line(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                    return Err(format!("{} closed the connection", self.node));
                }
                let Ok(m) = serde_json::from_str::<Value>(&buf) else {
                    continue;
                };
                if m["body"]["in_reply_to"].as_u64() == Some(id) {
                    return Ok(m["body"].clone());
                }
            }
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(e)) => {
                self.conn = None;
                Err(Completion::Info(e))
            }
            Err(_) => Err(Completion::Info("timed out".into())),
        }
    }
}

/// The request body of an operation.
pub fn request(kind: Kind, op: &Op) -> Option<Value> {
    Some(match (kind, op.f.as_str()) {
        (Kind::Echo, "echo") => json!({"type": "echo", "echo": op.value}),
        (Kind::UniqueIds, "generate") => json!({"type": "generate"}),
        (Kind::Broadcast, "add") => json!({"type": "broadcast", "message": op.value}),
        (Kind::GSet, "add") => json!({"type": "add", "element": op.value}),
        (Kind::GCounter | Kind::PnCounter, "add") => json!({"type": "add", "delta": op.value}),
        (Kind::LinKv, "read") => json!({"type": "read", "key": op.key}),
        (Kind::LinKv, "write") => json!({"type": "write", "key": op.key, "value": op.value}),
        (Kind::LinKv, "cas") => {
            json!({"type": "cas", "key": op.key, "from": op.value[0], "to": op.value[1]})
        }
        (_, "read") => json!({"type": "read"}),
        (Kind::Kafka, "send") => {
            json!({"type": "send", "key": op.value["key"], "msg": op.value["msg"]})
        }
        (Kind::Kafka, "list_committed_offsets") => {
            json!({"type": "list_committed_offsets", "keys": op.value})
        }
        // Filled in from the client's positions.
        (Kind::Kafka, "poll") => json!({"type": "poll"}),
        (Kind::Kafka, "commit_offsets") => json!({"type": "commit_offsets"}),
        (Kind::TxnListAppend | Kind::TxnRwRegister, "txn") => {
            json!({"type": "txn", "txn": op.value})
        }
        _ => return None,
    })
}

/// The completion of an operation from its reply body.
pub fn complete(kind: Kind, op: &Op, reply: &Value, read_only: bool) -> Completion {
    if reply["type"] == "error" {
        let code = reply["code"].as_u64();
        let text = format!(
            "error {}: {}",
            code.map_or("?".into(), |c| c.to_string()),
            reply["text"].as_str().unwrap_or_default()
        );
        // lin-kv: a key that does not exist reads as null (the kv model's initial value).
        if kind == Kind::LinKv && op.f == "read" && code == Some(20) {
            return Completion::Ok(Value::Null);
        }
        return match code {
            Some(c) if DEFINITE.contains(&c) => Completion::Fail(fail_value(op), text),
            _ if read_only => Completion::Fail(fail_value(op), text),
            _ => Completion::Info(text),
        };
    }
    let want = match op.f.as_str() {
        "echo" => "echo_ok",
        "generate" => "generate_ok",
        "add" if kind == Kind::Broadcast => "broadcast_ok",
        "add" => "add_ok",
        "read" => "read_ok",
        "write" => "write_ok",
        "send" => "send_ok",
        "poll" => "poll_ok",
        "commit_offsets" => "commit_offsets_ok",
        "list_committed_offsets" => "list_committed_offsets_ok",
        "txn" => "txn_ok",
        _ => "cas_ok",
    };
    if reply["type"] != want {
        let m = format!("expected {want}, got {}", reply["type"]);
        return if read_only {
            Completion::Fail(fail_value(op), m)
        } else {
            Completion::Info(m)
        };
    }
    Completion::Ok(match (kind, op.f.as_str()) {
        (_, "echo") => reply["echo"].clone(),
        (_, "generate") => reply["id"].clone(),
        (Kind::Broadcast, "read") => reply["messages"].clone(),
        (_, "read") => reply["value"].clone(),
        (_, "send") => {
            json!({"key": op.value["key"], "msg": op.value["msg"], "offset": reply["offset"]})
        }
        (_, "poll") => json!({"msgs": reply["msgs"]}),
        (_, "list_committed_offsets") => reply["offsets"].clone(),
        (_, "txn") => return txn_result(op, &reply["txn"]),
        _ => op.value.clone(),
    })
}

/// What a failed operation records: cas and txn keep what was asked (the
/// checkers read their micro-ops), the others nothing.
fn fail_value(op: &Op) -> Value {
    if op.f == "cas" || op.f == "txn" {
        op.value.clone()
    } else {
        Value::Null
    }
}

/// A `txn_ok`'s micro-ops, checked against the request: the same length,
/// functions, keys and written values; reads filled in. Anything else is
/// info (the node did something, but not clearly what was asked).
fn txn_result(op: &Op, got: &Value) -> Completion {
    let asked = op.value.as_array().map(Vec::as_slice).unwrap_or_default();
    let Some(got) = got.as_array() else {
        return Completion::Info(format!("txn_ok without a txn list: {got}"));
    };
    let same = got.len() == asked.len()
        && asked
            .iter()
            .zip(got)
            .all(|(a, g)| a[0] == g[0] && a[1] == g[1] && (a[0] == "r" || a[2] == g[2]));
    if !same {
        return Completion::Info(format!(
            "txn_ok does not match the request: asked {}, got {}",
            op.value,
            Value::Array(got.clone())
        ));
    }
    Completion::Ok(Value::Array(got.clone()))
}

impl MaelstromClient {
    /// Kafka: where a poll starts (every key asked, from the client's
    /// position) or what a commit commits (the last offset polled per key).
    fn kafka_offsets(&self, op: &Op) -> Option<Value> {
        match op.f.as_str() {
            "poll" => Some(
                op.value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|k| {
                        (
                            k.to_string(),
                            json!(self.positions.get(k).copied().unwrap_or(0)),
                        )
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            ),
            "commit_offsets" => Some(
                self.positions
                    .iter()
                    .map(|(k, p)| (k.clone(), json!(p - 1)))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            ),
            _ => None,
        }
    }

    /// Moves past every polled message.
    fn advance(&mut self, msgs: &Value) {
        for (k, list) in msgs.as_object().into_iter().flatten() {
            if let Some(last) = list
                .as_array()
                .and_then(|l| l.last())
                .and_then(|p| p[0].as_i64())
            {
                let p = self.positions.entry(k.clone()).or_insert(0);
                *p = (*p).max(last + 1);
            }
        }
    }
}

impl Client for MaelstromClient {
    async fn invoke(&mut self, op: &Op) -> Completion {
        self.refused = false;
        let Some(body) = request(self.kind, op) else {
            return Completion::Fail(Value::Null, format!("unknown operation {}", op.f));
        };
        let ro = self.read_only(op);
        let mut body = body;
        let asked = self.kafka_offsets(op);
        if let Some(offsets) = &asked {
            body["offsets"] = offsets.clone();
        }
        match self.call(body).await {
            Ok(reply) => match complete(self.kind, op, &reply, ro) {
                Completion::Ok(v) if op.f == "poll" => {
                    self.advance(&v["msgs"]);
                    Completion::Ok(json!({"from": asked, "msgs": v["msgs"]}))
                }
                Completion::Ok(_) if op.f == "commit_offsets" => {
                    Completion::Ok(asked.unwrap_or_default())
                }
                c => c,
            },
            Err(Completion::Info(m)) if ro => Completion::Fail(fail_value(op), m),
            Err(c) => c,
        }
    }

    fn node(&self) -> Option<String> {
        Some(self.node.clone())
    }

    fn backoff(&mut self) -> Duration {
        crate::call::backoff(self.refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maelstrom_errors_split_into_definite_and_indefinite() {
        let write = Op::new("write", Some(json!(1)), json!(5));
        let read = Op::new("read", Some(json!(1)), Value::Null);
        let cas = Op::new("cas", Some(json!(1)), json!([1, 2]));
        let err = |c: u64| json!({"type": "error", "code": c, "text": "t"});
        // (op, reply, expected completion kind)
        let rows: [(&Op, Value, &str); 8] = [
            (&write, err(11), "fail"),
            (&write, err(0), "info"),
            (&write, err(13), "info"),
            (&write, err(1000), "info"),
            (&cas, err(22), "fail"),
            (&read, err(20), "ok"),
            (&read, err(13), "fail"),
            (&write, json!({"type": "write_ok"}), "ok"),
        ];
        for (op, reply, want) in rows {
            let got = match complete(Kind::LinKv, op, &reply, op.f == "read") {
                Completion::Ok(_) => "ok",
                Completion::Fail(..) => "fail",
                Completion::Info(_) => "info",
            };
            assert_eq!(got, want, "{} {reply}", op.f);
        }
        assert_eq!(
            complete(Kind::LinKv, &cas, &err(22), false),
            Completion::Fail(json!([1, 2]), "error 22: t".into())
        );
    }

    #[test]
    fn txns_fill_reads_and_fail_only_when_maelstrom_says_definite() {
        let op = Op::new("txn", None, json!([["append", 1, 5], ["r", 1, null]]));
        assert_eq!(
            request(Kind::TxnListAppend, &op),
            Some(json!({"type": "txn", "txn": [["append", 1, 5], ["r", 1, null]]}))
        );
        let ok = json!({"type": "txn_ok", "txn": [["append", 1, 5], ["r", 1, [3, 5]]]});
        assert_eq!(
            complete(Kind::TxnListAppend, &op, &ok, false),
            Completion::Ok(json!([["append", 1, 5], ["r", 1, [3, 5]]]))
        );
        // A reply that is not the txn asked for is no proof of anything.
        let other = json!({"type": "txn_ok", "txn": [["append", 1, 6], ["r", 1, [6]]]});
        assert!(matches!(
            complete(Kind::TxnListAppend, &op, &other, false),
            Completion::Info(m) if m.contains("does not match")
        ));
        // 30 txn-conflict is definite; the failure keeps the micro-ops.
        let conflict = json!({"type": "error", "code": 30, "text": "conflict"});
        assert_eq!(
            complete(Kind::TxnListAppend, &op, &conflict, false),
            Completion::Fail(op.value.clone(), "error 30: conflict".into())
        );
        let crash = json!({"type": "error", "code": 13, "text": "crash"});
        assert!(matches!(
            complete(Kind::TxnRwRegister, &op, &crash, false),
            Completion::Info(_)
        ));
    }
}
