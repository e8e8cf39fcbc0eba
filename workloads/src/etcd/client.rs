//! A client of etcd's v3 JSON gateway (POST, base64 keys and values, 64-bit
//! numbers as strings). reqwest with retries off and explicit timeouts: a
//! hidden retry would turn one operation into two.
//!
//! What an error means: a refused connection never reached etcd (fail); a
//! read has no effect, so any failed read is a fail; anything else (timeout,
//! reset, an error from etcd after the request was sent) may have taken
//! effect (info).

use super::CLIENT_PORT;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use harness::runner::{Client, Completion, Op};
use harness::system::NodeInfo;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// Serializable reads may be served by a lagging member.
    pub serializable: bool,
    pub lease_ttl: u64,
    pub timeout: Duration,
}

/// One client, stuck to one node.
pub struct EtcdClient {
    http: reqwest::Client,
    base: String,
    node: String,
    cfg: Arc<Config>,
    /// The lock held: (lock key, lease id, keep-alive task).
    held: Option<(String, String, AbortOnDrop)>,
    /// The last call could not connect.
    refused: bool,
}

/// A background task that ends with its owner (also when a timed-out call's
/// future is dropped mid-way).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

pub(super) fn unb64(v: &Value) -> Option<String> {
    B64.decode(v.as_str()?)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// A value as stored: JSON text.
fn decode_value(v: &Value) -> Value {
    unb64(v)
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

use crate::call::CallError as Error;

impl EtcdClient {
    pub fn new(slot: usize, nodes: &[NodeInfo], cfg: Arc<Config>) -> EtcdClient {
        let n = &nodes[slot % nodes.len()];
        let http = reqwest::Client::builder()
            .retry(reqwest::retry::never())
            .no_proxy()
            .connect_timeout(Duration::from_secs(1))
            .timeout(cfg.timeout)
            .pool_max_idle_per_host(1)
            .build()
            .expect("a reqwest client with no TLS and no proxy always builds");
        EtcdClient {
            http,
            base: format!("http://{}:{CLIENT_PORT}", n.ip),
            node: n.name.clone(),
            cfg,
            held: None,
            refused: false,
        }
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> Result<Value, Error> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    Error::NotDone(format!("cannot connect: {e}"))
                } else if e.is_timeout() {
                    Error::Unknown("timed out".into())
                } else {
                    Error::Unknown(e.to_string())
                }
            })?;
        let status = r.status();
        let v: Value = r
            .json()
            .await
            .map_err(|e| Error::Unknown(format!("unreadable answer: {e}")))?;
        if !status.is_success() || v.get("error").is_some() {
            let msg = v
                .get("error")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_string();
            return Err(Error::Unknown(format!("{status}: {msg}")));
        }
        Ok(v)
    }

    fn key(op: &Op, prefix: &str) -> String {
        match &op.key {
            Some(Value::String(s)) => format!("{prefix}{s}"),
            Some(k) => format!("{prefix}{k}"),
            None => prefix.trim_end_matches('/').to_string(),
        }
    }

    async fn read(&self, op: &Op) -> Result<Value, Error> {
        let mut body = json!({"key": b64(&Self::key(op, "r/"))});
        if self.cfg.serializable {
            body["serializable"] = json!(true);
        }
        let v = self.post("/v3/kv/range", body).await?;
        Ok(v["kvs"]
            .get(0)
            .map_or(Value::Null, |kv| decode_value(&kv["value"])))
    }

    async fn register(&self, op: &Op) -> Result<Completion, Error> {
        let key = b64(&Self::key(op, "r/"));
        match op.f.as_str() {
            "read" => match self.read(op).await {
                Ok(v) => Ok(Completion::Ok(v)),
                // A read changes nothing: whatever went wrong, it did not happen.
                Err(Error::NotDone(m) | Error::Unknown(m)) => Ok(Completion::Fail(Value::Null, m)),
            },
            "write" => {
                self.post(
                    "/v3/kv/put",
                    json!({"key": key, "value": b64(&op.value.to_string())}),
                )
                .await?;
                Ok(Completion::Ok(op.value.clone()))
            }
            "cas" => {
                let (old, new) = (&op.value[0], &op.value[1]);
                let compare = if old.is_null() {
                    json!({"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
                } else {
                    json!({"key": key, "target": "VALUE", "result": "EQUAL", "value": b64(&old.to_string())})
                };
                let v = self
                    .post(
                        "/v3/kv/txn",
                        json!({"compare": [compare],
                               "success": [{"requestPut": {"key": key, "value": b64(&new.to_string())}}]}),
                    )
                    .await?;
                // A failed compare omits "succeeded".
                if v.get("succeeded").and_then(Value::as_bool) == Some(true) {
                    Ok(Completion::Ok(op.value.clone()))
                } else {
                    Ok(Completion::Fail(op.value.clone(), "compare failed".into()))
                }
            }
            f => crate::call::unknown_op(f),
        }
    }

    async fn set(&self, op: &Op) -> Result<Completion, Error> {
        match op.f.as_str() {
            "add" => {
                let k = format!("s/{}", op.value);
                self.post(
                    "/v3/kv/put",
                    json!({"key": b64(&k), "value": b64(&op.value.to_string())}),
                )
                .await?;
                Ok(Completion::Ok(op.value.clone()))
            }
            "read" => {
                // Every key from "s/" up to "s0" ('/' + 1).
                let mut body = json!({"key": b64("s/"), "range_end": b64("s0")});
                if self.cfg.serializable {
                    body["serializable"] = json!(true);
                }
                match self.post("/v3/kv/range", body).await {
                    Ok(v) => {
                        let mut items: Vec<Value> = v["kvs"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|kv| decode_value(&kv["value"]))
                            .collect();
                        items.sort_by_key(|x| x.as_u64());
                        Ok(Completion::Ok(Value::Array(items)))
                    }
                    Err(Error::NotDone(m) | Error::Unknown(m)) => {
                        Ok(Completion::Fail(Value::Null, m))
                    }
                }
            }
            f => crate::call::unknown_op(f),
        }
    }

    async fn lock(&mut self, op: &Op) -> Result<Completion, Error> {
        let name = Self::key(op, "l/");
        match op.f.as_str() {
            "acquire" => {
                if self.held.is_some() {
                    return Ok(Completion::Fail(Value::Null, "already held".into()));
                }
                let ttl = self.cfg.lease_ttl;
                let lease = self.post("/v3/lease/grant", json!({"TTL": ttl})).await?;
                let id = lease["ID"].as_str().unwrap_or_default().to_string();
                if id.is_empty() {
                    return Err(Error::Unknown("lease grant gave no ID".into()));
                }
                // Keep the lease alive from now on, while waiting too: a lease
                // that ran out while its owner waited would let etcd 3.4 grant
                // the lock on a deleted key.
                let (http, url, lid) = (
                    self.http.clone(),
                    format!("{}/v3/lease/keepalive", self.base),
                    id.clone(),
                );
                let every = Duration::from_millis((ttl * 1000 / 3).max(100));
                let task = AbortOnDrop(tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        let _ = http.post(&url).json(&json!({"ID": lid})).send().await;
                    }
                }));
                let v = match self
                    .post("/v3/lock/lock", json!({"name": b64(&name), "lease": id}))
                    .await
                {
                    Ok(v) => v,
                    Err(e) => {
                        drop(task);
                        // The lease ends the wait server-side; best effort, now.
                        let _ = self.post("/v3/lease/revoke", json!({"ID": id})).await;
                        return Err(e);
                    }
                };
                let key = v["key"].as_str().unwrap_or_default().to_string();
                // The token: the lock key's create revision (etcd grants in
                // that order, so it is a fencing token). If it cannot be read,
                // the revision of the grant stands in.
                let header: u64 = v["header"]["revision"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                // A granted lock whose key is already gone (its lease ran out
                // while it waited) is etcd 3.4's lock granting on a deleted
                // key: say so in the result.
                let (token, gone) = match self.post("/v3/kv/range", json!({"key": key})).await {
                    Ok(r) => match r["kvs"][0]["create_revision"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                    {
                        Some(t) => (t, false),
                        None => (header, true),
                    },
                    Err(_) => (header, false),
                };
                self.held = Some((key, id, task));
                let mut out = json!({"token": token, "lease_ms": ttl * 1000});
                if gone {
                    out["key_gone"] = json!(true);
                }
                Ok(Completion::Ok(out))
            }
            "release" => {
                let Some((key, id, task)) = self.held.take() else {
                    return Ok(Completion::Fail(Value::Null, "not held".into()));
                };
                drop(task);
                let r = self.post("/v3/lock/unlock", json!({"key": key})).await;
                let _ = self.post("/v3/lease/revoke", json!({"ID": id})).await;
                // Whatever went wrong, the lease still ends the hold: unknown
                // when, so never a plain fail.
                match r {
                    Ok(_) => Ok(Completion::Ok(Value::Null)),
                    Err(Error::NotDone(m) | Error::Unknown(m)) => Ok(Completion::Info(m)),
                }
            }
            f => crate::call::unknown_op(f),
        }
    }
}

impl Client for EtcdClient {
    async fn invoke(&mut self, op: &Op) -> Completion {
        let r = match op.f.as_str() {
            "acquire" | "release" => self.lock(op).await,
            "add" => self.set(op).await,
            "read" if op.key.is_none() => self.set(op).await,
            _ => self.register(op).await,
        };
        let c = crate::call::complete(r);
        self.refused = matches!(&c, Completion::Fail(_, m) if m.starts_with("cannot connect"));
        c
    }

    fn backoff(&mut self) -> Duration {
        crate::call::backoff(self.refused)
    }

    fn node(&self) -> Option<String> {
        Some(self.node.clone())
    }
}
