//! Clients of ZooKeeper (the zookeeper-client crate), each with a session
//! on its own node only (so a client cut off with its server stays cut off,
//! as etcd's clients do; a client given every server would move).
//!
//! - register: a znode `/r-<key>` holding JSON; read (`read-mode=plain`:
//!   from the connected server, which may lag; `sync`: `sync` first), write
//!   (set, or create), compare-and-set (get, then set at that version).
//! - lock: the standard recipe: an ephemeral sequential child of `/locks`,
//!   granted when it is the lowest, else watch the one before it. The token
//!   is the sequence number. The session is the lease: when it expires the
//!   child goes, whether or not its owner noticed.
//!
//! What an error means: no session, a refused or failed version check, a
//! missing node: not done (fail); a lost connection after the request was
//! sent: unknown (info), except for reads (fail).

use super::PORT;
use harness::runner::{Client, Completion, Op};
use harness::system::NodeInfo;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zookeeper_client as zk;

#[derive(Clone, Debug)]
pub struct Config {
    pub sync_reads: bool,
    pub session_timeout: Duration,
    pub timeout: Duration,
}

pub struct ZkClient {
    server: String,
    node: String,
    cfg: Arc<Config>,
    session: Option<zk::Client>,
    /// The lock child this client holds.
    held: Option<String>,
    refused: bool,
}

use crate::call::CallError as Error;

/// What a ZooKeeper error means for an operation that may change state:
/// only the server's refusals are certain; a lost connection, a timeout or
/// a session that expired after the request was sent may hide a commit.
fn classify(e: zk::Error) -> Error {
    match e {
        zk::Error::NoNode
        | zk::Error::NodeExists
        | zk::Error::BadVersion
        | zk::Error::NotEmpty
        | zk::Error::NoAuth
        | zk::Error::BadArguments(_)
        | zk::Error::InvalidAcl
        | zk::Error::NoChildrenForEphemerals
        | zk::Error::NotReadOnly => Error::NotDone(e.to_string()),
        e => Error::Unknown(e.to_string()),
    }
}

fn key_of(op: &Op) -> String {
    match &op.key {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "register".into(),
    }
}

const LOCKS: &str = "/locks";

impl ZkClient {
    pub fn new(slot: usize, nodes: &[NodeInfo], cfg: Arc<Config>) -> ZkClient {
        let n = &nodes[slot % nodes.len()];
        ZkClient {
            server: format!("{}:{PORT}", n.ip),
            node: n.name.clone(),
            cfg,
            session: None,
            held: None,
            refused: false,
        }
    }

    /// The session, made if there is none (or it expired).
    async fn session(&mut self) -> Result<&zk::Client, Error> {
        let dead = self.session.as_ref().is_some_and(|s| {
            matches!(
                s.state(),
                zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
            )
        });
        if dead {
            self.session = None;
            self.held = None;
        }
        if self.session.is_none() {
            let connect = zk::Client::connector()
                .with_session_timeout(self.cfg.session_timeout)
                .with_connection_timeout(Duration::from_secs(1))
                .with_fail_eagerly()
                .connect(&self.server);
            let s = tokio::time::timeout(self.cfg.timeout.mul_f64(0.5), connect)
                .await
                .map_err(|_| Error::NotDone(format!("no session with {} in time", self.server)))?
                .map_err(|e| Error::NotDone(format!("no session with {}: {e}", self.server)))?;
            self.session = Some(s);
        }
        Ok(self.session.as_ref().expect("just made"))
    }

    async fn register(&mut self, op: &Op) -> Result<Completion, Error> {
        let path = format!("/r-{}", key_of(op));
        let sync = self.cfg.sync_reads;
        let s = self.session().await?;
        match op.f.as_str() {
            "read" => {
                let read = async {
                    if sync {
                        s.sync(&path).await?;
                    }
                    s.get_data(&path).await
                };
                match read.await {
                    Ok((data, _)) => Ok(Completion::Ok(
                        serde_json::from_slice(&data).unwrap_or(Value::Null),
                    )),
                    Err(zk::Error::NoNode) => Ok(Completion::Ok(Value::Null)),
                    // A read changes nothing.
                    Err(e) => Err(Error::NotDone(e.to_string())),
                }
            }
            "write" => {
                let data = op.value.to_string();
                match s.set_data(&path, data.as_bytes(), None).await {
                    Ok(_) => Ok(Completion::Ok(op.value.clone())),
                    Err(zk::Error::NoNode) => {
                        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                        match s.create(&path, data.as_bytes(), &opts).await {
                            Ok(_) => Ok(Completion::Ok(op.value.clone())),
                            Err(zk::Error::NodeExists) => {
                                match s.set_data(&path, data.as_bytes(), None).await {
                                    Ok(_) => Ok(Completion::Ok(op.value.clone())),
                                    Err(e) => Err(classify(e)),
                                }
                            }
                            Err(e) => Err(classify(e)),
                        }
                    }
                    Err(e) => Err(classify(e)),
                }
            }
            "cas" => {
                let (Some(old), Some(new)) = (op.value.get(0), op.value.get(1)) else {
                    return Ok(Completion::Fail(Value::Null, "cas needs [old, new]".into()));
                };
                let (data, stat) = match s.get_data(&path).await {
                    Ok(x) => x,
                    Err(zk::Error::NoNode) => {
                        return Ok(Completion::Fail(op.value.clone(), "no value yet".into()))
                    }
                    Err(e) => return Err(Error::NotDone(e.to_string())),
                };
                if serde_json::from_slice::<Value>(&data).ok().as_ref() != Some(old) {
                    return Ok(Completion::Fail(
                        op.value.clone(),
                        "the value was not the expected one".into(),
                    ));
                }
                let new = new.to_string();
                match s.set_data(&path, new.as_bytes(), Some(stat.version)).await {
                    Ok(_) => Ok(Completion::Ok(op.value.clone())),
                    Err(zk::Error::BadVersion) => Ok(Completion::Fail(
                        op.value.clone(),
                        "changed since it was read".into(),
                    )),
                    Err(e) => Err(classify(e)),
                }
            }
            f => crate::call::unknown_op(f),
        }
    }

    async fn acquire(&mut self) -> Result<Completion, Error> {
        let deadline = Instant::now() + self.cfg.timeout.mul_f64(0.8);
        let session_ms = self.cfg.session_timeout.as_millis() as u64;
        let s = self.session().await?.clone();
        let dir = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match s.create(LOCKS, b"", &dir).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(Error::NotDone(e.to_string())),
        }
        let child = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let (_, seq) = s
            .create(&format!("{LOCKS}/lock-"), b"", &child)
            .await
            .map_err(classify)?;
        let mine = format!("lock-{seq}");
        let token = seq.into_i64();
        // Until granted, a lost connection leaves our child in the queue:
        // unknown whether we will hold the lock.
        loop {
            let mut children = s
                .list_children(LOCKS)
                .await
                .map_err(|e| Error::Unknown(e.to_string()))?;
            children.sort_by_key(|c| c.rsplit('-').next().and_then(|n| n.parse::<i64>().ok()));
            let Some(at) = children.iter().position(|c| *c == mine) else {
                return Err(Error::Unknown(format!("{mine} is gone (session lost?)")));
            };
            if at == 0 {
                self.held = Some(format!("{LOCKS}/{mine}"));
                return Ok(Completion::Ok(
                    json!({"token": token, "session_timeout_ms": session_ms}),
                ));
            }
            let before = format!("{LOCKS}/{}", children[at - 1]);
            let (stat, watcher) = s
                .check_and_watch_stat(&before)
                .await
                .map_err(|e| Error::Unknown(e.to_string()))?;
            if stat.is_some() {
                let left = deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, watcher.changed()).await.is_err() {
                    // Give up our place: then certainly not granted.
                    return match s.delete(&format!("{LOCKS}/{mine}"), None).await {
                        Ok(()) => Ok(Completion::Fail(
                            Value::Null,
                            "not granted before the timeout".into(),
                        )),
                        Err(e) => Err(Error::Unknown(format!(
                            "not granted in time, and leaving the queue failed: {e}"
                        ))),
                    };
                }
            }
        }
    }

    async fn release(&mut self) -> Result<Completion, Error> {
        let Some(path) = self.held.take() else {
            return Ok(Completion::Fail(Value::Null, "not held".into()));
        };
        let s = self.session().await?;
        match s.delete(&path, None).await {
            Ok(()) => Ok(Completion::Ok(Value::Null)),
            Err(zk::Error::NoNode | zk::Error::SessionExpired) => Ok(Completion::Fail(
                Value::Null,
                "the lock's node was gone: the session had expired".into(),
            )),
            Err(e) => Err(classify(e)),
        }
    }
}

impl Client for ZkClient {
    async fn invoke(&mut self, op: &Op) -> Completion {
        let r = match op.f.as_str() {
            "acquire" => self.acquire().await,
            "release" => self.release().await,
            _ => self.register(op).await,
        };
        let c = crate::call::complete(r);
        self.refused = matches!(&c, Completion::Fail(_, m) if m.starts_with("no session"));
        c
    }

    fn backoff(&mut self) -> Duration {
        if self.refused {
            Duration::from_millis(200)
        } else {
            Duration::ZERO
        }
    }

    fn node(&self) -> Option<String> {
        Some(self.node.clone())
    }
}
