//! Clients of Redis: the register (GET, SET, compare-and-set by a Lua
//! script), the lock recipes of the user's documents, and Redlock.
//!
//! Redlock (as redis.io describes it): SET key token NX PX ttl on every
//! independent primary at once, each bounded by a small timeout; granted
//! when a majority said OK and time is left of the ttl (less the elapsed
//! time and a drift of 1% + 2 ms): that remainder is the lease. Otherwise
//! the client deletes its token everywhere and tries again after a random
//! delay. Release is the compare-and-delete script on every node.
//!
//! Each client belongs to one node. With sentinels it asks that node's
//! sentinel where the primary is whenever it has no connection (at start,
//! after an error, after a READONLY refusal) and once a second (as a pool
//! of Redis client connections, each made by asking, would); without, the
//! primary is the first node. Replica reads
//! (`read-from=replica`) go to the client's own node.
//!
//! What an error means: no connection, or an error reply (READONLY,
//! LOADING, MASTERDOWN, ...), is certainly not done (fail); a timeout or a
//! broken connection after the command was sent may have taken effect
//! (info), except for reads, which change nothing (fail).

use super::resp::{Conn, Reply, RespError};
use super::{MASTER, PORT, SENTINEL_PORT};
use harness::runner::{Client, Completion, Op};
use harness::system::NodeInfo;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Compare-and-set of a register: 1 when it was set.
const CAS: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end";
/// Compare-and-delete of a lock: 1 when it was ours and is gone.
const UNLOCK: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// How often a client asks its sentinel again while connected.
const ASK_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// SETNX with no expiry; release by WATCH, GET, compare, MULTI, DEL, EXEC.
    SetNx,
    /// SET key token NX PX ttl; release by a compare-and-delete script.
    SetNxPx,
    /// SET NX PX on a majority of independent primaries.
    Redlock,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub sentinel: bool,
    pub read_from_replica: bool,
    pub recipe: Recipe,
    /// SET ... PX, ms.
    pub lease_ms: u64,
    pub timeout: Duration,
}

/// One client of one node.
pub struct RedisClient {
    own: NodeInfo,
    nodes: Vec<NodeInfo>,
    cfg: Arc<Config>,
    /// The connection to the primary, its node's name, and when the
    /// sentinel was last asked.
    primary: Option<(Conn, String, Instant)>,
    /// The connection to this client's own node (replica reads).
    local: Option<Conn>,
    /// Redlock: a connection to each node, made when needed.
    peers: Vec<Option<Conn>>,
    /// This client's name in lock values.
    id: u64,
    acquired: u64,
    /// The value of the lock this client holds.
    held: Option<(String, String)>,
    node: String,
    refused: bool,
}

use crate::call::CallError as Error;

impl From<RespError> for Error {
    fn from(e: RespError) -> Error {
        match e {
            RespError::Connect(m) => Error::NotDone(m),
            RespError::Unknown(m) => Error::Unknown(m),
        }
    }
}

fn key_of(op: &Op) -> String {
    match &op.key {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "register".into(),
    }
}

impl RedisClient {
    pub fn new(slot: usize, nodes: &[NodeInfo], cfg: Arc<Config>) -> RedisClient {
        static CLIENTS: AtomicU64 = AtomicU64::new(0);
        let own = nodes[slot % nodes.len()].clone();
        RedisClient {
            node: own.name.clone(),
            own,
            nodes: nodes.to_vec(),
            cfg,
            primary: None,
            local: None,
            peers: (0..nodes.len()).map(|_| None).collect(),
            id: CLIENTS.fetch_add(1, Ordering::Relaxed),
            acquired: 0,
            held: None,
            refused: false,
        }
    }

    fn name_of(&self, ip: IpAddr) -> String {
        self.nodes
            .iter()
            .find(|n| n.ip == ip)
            .map_or_else(|| ip.to_string(), |n| n.name.clone())
    }

    /// Where the primary is: the own node's sentinel's answer, or node 0.
    async fn find_primary(&self) -> Result<SocketAddr, Error> {
        if !self.cfg.sentinel {
            return Ok(SocketAddr::new(self.nodes[0].ip, PORT));
        }
        let at = SocketAddr::new(self.own.ip, SENTINEL_PORT);
        let mut s = Conn::connect(at, Duration::from_secs(1))
            .await
            .map_err(|e| Error::NotDone(format!("sentinel: {e}")))?;
        let r = s
            .cmd(&[b"SENTINEL", b"get-master-addr-by-name", MASTER.as_bytes()])
            .await
            .map_err(|e| Error::NotDone(format!("sentinel: {e}")))?;
        let parsed = match &r {
            Reply::Array(Some(a)) if a.len() == 2 => a[0]
                .text()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .zip(a[1].text().and_then(|p| p.parse::<u16>().ok())),
            _ => None,
        };
        parsed
            .map(|(ip, port)| SocketAddr::new(ip, port))
            .ok_or_else(|| {
                Error::NotDone(format!("sentinel {at} does not know the primary: {r:?}"))
            })
    }

    /// The connection to the primary, made if needed.
    async fn primary(&mut self) -> Result<&mut Conn, Error> {
        let stale = match &self.primary {
            Some((c, _, asked)) if self.cfg.sentinel && asked.elapsed() > ASK_EVERY => Some(c.addr),
            _ => None,
        };
        if let Some(was) = stale {
            match self.find_primary().await {
                Ok(addr) if addr == was => {
                    if let Some((_, _, asked)) = &mut self.primary {
                        *asked = Instant::now();
                    }
                }
                // Moved, or the sentinel cannot say: connect anew.
                _ => self.primary = None,
            }
        }
        if self.primary.is_none() {
            let addr = self.find_primary().await?;
            let c = Conn::connect(addr, self.cfg.timeout).await?;
            self.primary = Some((c, self.name_of(addr.ip()), Instant::now()));
        }
        let (c, name, _) = self.primary.as_mut().expect("just made");
        self.node.clone_from(name);
        Ok(c)
    }

    /// One command on the primary; an error drops the connection (the next
    /// command asks where the primary is again).
    async fn on_primary(&mut self, args: &[&[u8]]) -> Result<Reply, Error> {
        let r = self.primary().await?.cmd(args).await;
        match r {
            Ok(Reply::Error(e)) => {
                self.primary = None;
                Err(Error::NotDone(e))
            }
            Ok(r) => Ok(r),
            Err(e) => {
                self.primary = None;
                Err(e.into())
            }
        }
    }

    /// A read on the own node (a replica, or the primary).
    async fn on_local(&mut self, args: &[&[u8]]) -> Result<Reply, Error> {
        if self.local.is_none() {
            let addr = SocketAddr::new(self.own.ip, PORT);
            self.local = Some(Conn::connect(addr, self.cfg.timeout).await?);
        }
        self.node.clone_from(&self.own.name);
        let r = self.local.as_mut().expect("just made").cmd(args).await;
        match r {
            Ok(Reply::Error(e)) => Err(Error::NotDone(e)),
            Ok(r) => Ok(r),
            Err(e) => {
                self.local = None;
                Err(e.into())
            }
        }
    }

    async fn register(&mut self, op: &Op) -> Result<Completion, Error> {
        let key = format!("r:{}", key_of(op));
        match op.f.as_str() {
            "read" => {
                let args: [&[u8]; 2] = [b"GET", key.as_bytes()];
                let r = if self.cfg.read_from_replica {
                    self.on_local(&args).await
                } else {
                    self.on_primary(&args).await
                };
                match r {
                    Ok(Reply::Bulk(None)) => Ok(Completion::Ok(Value::Null)),
                    Ok(Reply::Bulk(Some(b))) => Ok(Completion::Ok(
                        serde_json::from_slice(&b).unwrap_or(Value::Null),
                    )),
                    Ok(other) => Err(Error::Unknown(format!("GET answered {other:?}"))),
                    // A read changes nothing: whatever happened, it failed.
                    Err(Error::NotDone(m) | Error::Unknown(m)) => Err(Error::NotDone(m)),
                }
            }
            "write" => {
                let v = op.value.to_string();
                match self
                    .on_primary(&[b"SET", key.as_bytes(), v.as_bytes()])
                    .await?
                {
                    Reply::Status(s) if s == "OK" => Ok(Completion::Ok(op.value.clone())),
                    other => Err(Error::Unknown(format!("SET answered {other:?}"))),
                }
            }
            "cas" => {
                let (Some(old), Some(new)) = (op.value.get(0), op.value.get(1)) else {
                    return Ok(Completion::Fail(Value::Null, "cas needs [old, new]".into()));
                };
                let (old, new) = (old.to_string(), new.to_string());
                match self
                    .on_primary(&[
                        b"EVAL",
                        CAS.as_bytes(),
                        b"1",
                        key.as_bytes(),
                        old.as_bytes(),
                        new.as_bytes(),
                    ])
                    .await?
                {
                    Reply::Int(1) => Ok(Completion::Ok(op.value.clone())),
                    Reply::Int(0) => Ok(Completion::Fail(
                        op.value.clone(),
                        "the value was not the expected one".into(),
                    )),
                    other => Err(Error::Unknown(format!("EVAL answered {other:?}"))),
                }
            }
            f => crate::call::unknown_op(f),
        }
    }

    /// Redlock: one command on every node at once, each within `within`
    /// (connecting included). Connections that fail are dropped.
    async fn on_every_node(
        &mut self,
        args: &[&[u8]],
        within: Duration,
    ) -> Vec<Result<Reply, Error>> {
        let args: Arc<Vec<Vec<u8>>> = Arc::new(args.iter().map(|a| a.to_vec()).collect());
        let mut tasks = Vec::with_capacity(self.nodes.len());
        for (n, conn) in self.nodes.iter().zip(self.peers.iter_mut()) {
            let (conn, addr, args) = (conn.take(), SocketAddr::new(n.ip, PORT), args.clone());
            tasks.push(tokio::spawn(async move {
                let work = async {
                    let mut c = match conn {
                        Some(c) => c,
                        None => Conn::connect(addr, within).await?,
                    };
                    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                    let r = c.cmd(&refs).await?;
                    Ok::<_, RespError>((c, r))
                };
                match tokio::time::timeout(within, work).await {
                    Ok(Ok((c, r))) => (Some(c), Ok(r)),
                    Ok(Err(e)) => (None, Err(Error::from(e))),
                    Err(_) => (
                        None,
                        Err(Error::Unknown(format!(
                            "{addr}: no answer within {} ms",
                            within.as_millis()
                        ))),
                    ),
                }
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for (i, t) in tasks.into_iter().enumerate() {
            let (conn, r) = t
                .await
                .unwrap_or_else(|e| (None, Err(Error::Unknown(format!("task: {e}")))));
            self.peers[i] = conn;
            out.push(r);
        }
        out
    }

    /// One Redlock attempt: the lease left (ms) when a majority granted it
    /// in time, None (and the token deleted everywhere) otherwise.
    async fn redlock_once(&mut self, key: &str, value: &str) -> Option<u64> {
        let ttl = self.cfg.lease_ms;
        let within = self.redlock_within();
        let start = Instant::now();
        let ttl_s = ttl.to_string();
        let replies = self
            .on_every_node(
                &[
                    b"SET",
                    key.as_bytes(),
                    value.as_bytes(),
                    b"NX",
                    b"PX",
                    ttl_s.as_bytes(),
                ],
                within,
            )
            .await;
        let granted = replies
            .iter()
            .filter(|r| matches!(r, Ok(Reply::Status(s)) if s == "OK"))
            .count();
        let drift = ttl / 100 + 2;
        let left = ttl as i128 - start.elapsed().as_millis() as i128 - drift as i128;
        if granted > self.nodes.len() / 2 && left > 0 {
            return Some(left as u64);
        }
        self.unlock_everywhere(key, value).await;
        None
    }

    /// Redlock: how long each node may take to answer, small beside the
    /// lease (redis.io: a few ms to tens of ms for a lease of seconds).
    fn redlock_within(&self) -> Duration {
        Duration::from_millis((self.cfg.lease_ms / 20).clamp(10, 200))
    }

    /// Redlock: the compare-and-delete script on every node.
    async fn unlock_everywhere(&mut self, key: &str, value: &str) -> Vec<Result<Reply, Error>> {
        let within = self.redlock_within();
        self.on_every_node(
            &[
                b"EVAL",
                UNLOCK.as_bytes(),
                b"1",
                key.as_bytes(),
                value.as_bytes(),
            ],
            within,
        )
        .await
    }

    /// Redlock's release: compare-and-delete on every node.
    async fn redlock_release(&mut self, key: &str, value: &str) -> Result<Completion, Error> {
        let replies = self.unlock_everywhere(key, value).await;
        let deleted = replies
            .iter()
            .filter(|r| matches!(r, Ok(Reply::Int(1))))
            .count();
        let silent = replies.iter().filter(|r| r.is_err()).count();
        if deleted > self.nodes.len() / 2 {
            Ok(Completion::Ok(Value::Null))
        } else if silent > 0 {
            Err(Error::Unknown(format!(
                "deleted on {deleted} of {} nodes; {silent} did not answer",
                self.nodes.len()
            )))
        } else {
            Ok(Completion::Fail(
                Value::Null,
                format!(
                    "the lock was ours on only {deleted} of {} nodes (expired)",
                    self.nodes.len()
                ),
            ))
        }
    }

    /// Tries to take the lock once: Some(true) granted, Some(false) held by
    /// another.
    async fn try_acquire(&mut self, key: &str, value: &str) -> Result<bool, Error> {
        let r = match self.cfg.recipe {
            Recipe::Redlock => unreachable!("Redlock has its own loop"),
            Recipe::SetNx => {
                self.on_primary(&[b"SETNX", key.as_bytes(), value.as_bytes()])
                    .await?
            }
            Recipe::SetNxPx => {
                let ttl = self.cfg.lease_ms.to_string();
                self.on_primary(&[
                    b"SET",
                    key.as_bytes(),
                    value.as_bytes(),
                    b"NX",
                    b"PX",
                    ttl.as_bytes(),
                ])
                .await?
            }
        };
        match r {
            Reply::Int(1) => Ok(true),
            Reply::Int(0) | Reply::Bulk(None) => Ok(false),
            Reply::Status(s) if s == "OK" => Ok(true),
            other => Err(Error::Unknown(format!(
                "the lock command answered {other:?}"
            ))),
        }
    }

    async fn lock(&mut self, op: &Op) -> Result<Completion, Error> {
        let key = format!("l:{}", key_of(op));
        match op.f.as_str() {
            "acquire" => {
                self.acquired += 1;
                let value = format!("c{}-{}", self.id, self.acquired);
                // Polls until granted; gives up (certainly not granted: the
                // last try said so) before the operation's timeout.
                let deadline = Instant::now() + self.cfg.timeout.mul_f64(0.8);
                if self.cfg.recipe == Recipe::Redlock {
                    return Ok(self.redlock_acquire(key, value, deadline).await);
                }
                loop {
                    match self.try_acquire(&key, &value).await {
                        Ok(true) => {
                            self.held = Some((key, value.clone()));
                            let mut out = json!({"value": value});
                            if self.cfg.recipe == Recipe::SetNxPx {
                                out["lease_ms"] = json!(self.cfg.lease_ms);
                            }
                            return Ok(Completion::Ok(out));
                        }
                        Ok(false) | Err(Error::NotDone(_)) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Ok(false) => {
                            return Ok(Completion::Fail(
                                Value::Null,
                                "held by another client until the timeout".into(),
                            ))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            "release" => {
                let Some((key, value)) = self.held.take() else {
                    return Ok(Completion::Fail(Value::Null, "not held".into()));
                };
                match self.cfg.recipe {
                    Recipe::Redlock => self.redlock_release(&key, &value).await,
                    Recipe::SetNxPx => match self
                        .on_primary(&[
                            b"EVAL",
                            UNLOCK.as_bytes(),
                            b"1",
                            key.as_bytes(),
                            value.as_bytes(),
                        ])
                        .await?
                    {
                        Reply::Int(1) => Ok(Completion::Ok(Value::Null)),
                        Reply::Int(0) => Ok(Completion::Fail(
                            Value::Null,
                            "the lock was no longer ours (expired or taken)".into(),
                        )),
                        other => Err(Error::Unknown(format!("EVAL answered {other:?}"))),
                    },
                    Recipe::SetNx => self.release_watched(&key, &value).await,
                }
            }
            f => crate::call::unknown_op(f),
        }
    }

    /// Redlock attempts, 10 to 50 ms apart (varied per client and attempt,
    /// so that contenders do not stay in step), until one is granted or
    /// `deadline`. A failed attempt deletes its token wherever it may have
    /// been set, and the client never acts on it: not granted.
    async fn redlock_acquire(
        &mut self,
        key: String,
        value: String,
        deadline: Instant,
    ) -> Completion {
        for attempt in 0u64.. {
            if let Some(lease) = self.redlock_once(&key, &value).await {
                self.held = Some((key, value.clone()));
                return Completion::Ok(json!({"value": value, "lease_ms": lease}));
            }
            let pause = Duration::from_millis(10 + (self.id * 7 + attempt * 13) % 41);
            if Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        Completion::Fail(
            Value::Null,
            "no majority of the nodes granted it before the timeout".into(),
        )
    }

    /// The documents' release: WATCH, GET, compare, MULTI, DEL, EXEC. Until
    /// EXEC nothing has changed, so an error before it is a fail.
    async fn release_watched(&mut self, key: &str, value: &str) -> Result<Completion, Error> {
        let not_done = |e: Error| match e {
            Error::NotDone(m) | Error::Unknown(m) => Error::NotDone(m),
        };
        self.on_primary(&[b"WATCH", key.as_bytes()])
            .await
            .map_err(not_done)?;
        let now = self
            .on_primary(&[b"GET", key.as_bytes()])
            .await
            .map_err(not_done)?;
        if now.text().as_deref() != Some(value) {
            let _ = self.on_primary(&[b"UNWATCH"]).await;
            return Ok(Completion::Fail(
                Value::Null,
                format!("the lock is not ours: it holds {:?}", now.text()),
            ));
        }
        self.on_primary(&[b"MULTI"]).await.map_err(not_done)?;
        self.on_primary(&[b"DEL", key.as_bytes()])
            .await
            .map_err(not_done)?;
        match self.on_primary(&[b"EXEC"]).await? {
            Reply::Array(Some(r)) if r == [Reply::Int(1)] => Ok(Completion::Ok(Value::Null)),
            Reply::Array(None) => Ok(Completion::Fail(
                Value::Null,
                "the lock changed between GET and EXEC".into(),
            )),
            other => Err(Error::Unknown(format!("EXEC answered {other:?}"))),
        }
    }
}

impl Client for RedisClient {
    async fn invoke(&mut self, op: &Op) -> Completion {
        let r = match op.f.as_str() {
            "acquire" | "release" => self.lock(op).await,
            _ => self.register(op).await,
        };
        let c = crate::call::complete(r);
        self.refused = matches!(&c, Completion::Fail(_, m) if m.starts_with("connecting"));
        c
    }

    fn backoff(&mut self) -> Duration {
        crate::call::backoff(self.refused)
    }

    fn node(&self) -> Option<String> {
        // Redlock speaks to every node at once.
        (self.cfg.recipe != Recipe::Redlock).then(|| self.node.clone())
    }
}
