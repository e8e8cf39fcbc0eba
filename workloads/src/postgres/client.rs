//! The coordinator of the documents' transfer between two PostgreSQL
//! servers (tokio-postgres): BEGIN on both, UPDATE each, PREPARE
//! TRANSACTION on both, COMMIT PREPARED on both; ROLLBACK (PREPARED) when a
//! prepare fails. Before its first COMMIT PREPARED the coordinator writes
//! its decision to its log (shared by every client of the run, as one
//! coordinator's durable log would be); a failure after that leaves the
//! transfer in doubt (info).
//!
//! Reads: `per-shard` reads each shard in its own transaction, one after
//! the other, as a naive client does; `locking` takes FOR SHARE locks on
//! every shard's rows, in shard order, and holds them until every shard is
//! read (two-phase locking across the servers: a transfer prepared on one
//! shard blocks the read there until it commits).
//!
//! `resolve` (the final phase's first operation of worker 0) is what an
//! operator does with transactions left prepared: commit those the
//! coordinator's log decided to commit, roll back the others.

use super::{PgOpts, PORT};
use harness::runner::{Client, Completion, Op};
use harness::system::NodeInfo;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::{Client as PgClient, NoTls};

#[derive(Clone, Debug)]
pub struct Config {
    pub opts: PgOpts,
    pub locking_reads: bool,
    pub timeout: Duration,
    /// How often the coordinator stops between its decision and phase 2
    /// (a coordinator crash: both sides stay prepared, in doubt).
    pub crash_after_prepare: f64,
    pub seed: u64,
}

/// What the run's coordinators share: the gids decided to commit.
#[derive(Default)]
pub struct CoordinatorLog {
    pub commit: Mutex<HashSet<String>>,
}

pub struct PgCoordinator {
    shards: Vec<NodeInfo>,
    cfg: Arc<Config>,
    log: Arc<CoordinatorLog>,
    conns: Vec<Option<PgClient>>,
    id: u64,
    n: u64,
    node: String,
    rng: rand_chacha::ChaCha8Rng,
}

use crate::call::CallError as Error;

impl PgCoordinator {
    pub fn new(nodes: &[NodeInfo], cfg: Arc<Config>, log: Arc<CoordinatorLog>) -> PgCoordinator {
        static IDS: AtomicU64 = AtomicU64::new(0);
        let shards: Vec<NodeInfo> = nodes.iter().take(cfg.opts.shards).cloned().collect();
        PgCoordinator {
            conns: shards.iter().map(|_| None).collect(),
            shards,
            log,
            rng: {
                use rand::SeedableRng;
                rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ IDS.load(Ordering::Relaxed))
            },
            id: IDS.fetch_add(1, Ordering::Relaxed),
            n: 0,
            node: String::new(),
            cfg,
        }
    }

    /// The connection to shard `s`, made if needed. A blocked row waits at
    /// most 60% of the operation's timeout, then errors (certainly not done).
    async fn conn(&mut self, s: usize) -> Result<&PgClient, Error> {
        if self.conns[s].as_ref().is_none_or(|c| c.is_closed()) {
            let n = &self.shards[s];
            let lock_ms = (self.cfg.timeout.as_millis() as u64 * 6 / 10).max(100);
            let cfg = format!(
                "host={} port={PORT} user=postgres dbname=postgres connect_timeout=1 options='-c lock_timeout={lock_ms}'",
                n.ip
            );
            let (client, connection) =
                tokio::time::timeout(Duration::from_secs(2), tokio_postgres::connect(&cfg, NoTls))
                    .await
                    .map_err(|_| Error::NotDone(format!("connecting to {} timed out", n.name)))?
                    .map_err(|e| Error::NotDone(format!("connecting to {}: {e}", n.name)))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.conns[s] = Some(client);
        }
        Ok(self.conns[s].as_ref().expect("just made"))
    }

    /// Runs `sql`, a statement of its own (BEGIN, COMMIT PREPARED, ...),
    /// on shard `s`, connecting if needed; an error before a commit point
    /// means not done.
    async fn exec(&mut self, s: usize, sql: &str) -> Result<u64, Error> {
        self.conn(s).await?;
        self.exec_tx(s, sql).await.map_err(Error::from)
    }

    /// Runs `sql` inside the transaction open on shard `s`: on the
    /// connection that began it, never a new one (there it would run on its
    /// own, committed at once, outside the transaction).
    async fn exec_tx(&mut self, s: usize, sql: &str) -> Result<u64, TxError> {
        let name = &self.shards[s].name;
        let Some(c) = self.conns[s].as_ref().filter(|c| !c.is_closed()) else {
            return Err(TxError::Gone(format!(
                "{name}: the transaction's connection is gone"
            )));
        };
        match c.execute(sql, &[]).await {
            Ok(n) => Ok(n),
            Err(e) => {
                let text = format!("{name}: {}", pg_text(&e));
                if e.as_db_error().is_some() {
                    Err(TxError::Refused(text))
                } else {
                    self.conns[s] = None;
                    Err(TxError::Lost(text))
                }
            }
        }
    }

    fn account(&self, v: &Value) -> Option<(String, usize)> {
        let name = v.as_str()?.to_string();
        let i: usize = name.strip_prefix('a')?.parse().ok()?;
        (i < self.cfg.opts.accounts).then(|| (name, self.cfg.opts.shard_of(i)))
    }

    async fn transfer(&mut self, op: &Op) -> Result<Completion, Error> {
        let v = &op.value;
        let (Some((from, sf)), Some((to, st)), Some(amount)) = (
            self.account(&v["from"]),
            self.account(&v["to"]),
            v["amount"].as_i64(),
        ) else {
            return Ok(Completion::Fail(
                Value::Null,
                format!("a transfer needs from, to and amount: {v}"),
            ));
        };
        let debit = format!(
            "UPDATE accounts SET balance = balance - {amount} WHERE id = '{from}' AND balance >= {amount}"
        );
        let credit = format!("UPDATE accounts SET balance = balance + {amount} WHERE id = '{to}'");
        if sf == st {
            // One server: a plain transaction.
            self.node = self.shards[sf].name.clone();
            self.exec(sf, "BEGIN").await?;
            let ok = match self.exec_tx(sf, &debit).await {
                Ok(1) => self.exec_tx(sf, &credit).await.map(|n| n == 1),
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            return match ok {
                Ok(true) => match self.exec_tx(sf, "COMMIT").await {
                    Ok(_) => Ok(Completion::Ok(v.clone())),
                    // Refused or never sent: rolled back.
                    Err(TxError::Gone(m) | TxError::Refused(m)) => Err(Error::NotDone(m)),
                    Err(TxError::Lost(m)) => Err(Error::Unknown(m)),
                },
                Ok(false) => {
                    let _ = self.exec_tx(sf, "ROLLBACK").await;
                    Ok(Completion::Fail(v.clone(), "insufficient funds".into()))
                }
                Err(e) => {
                    let _ = self.exec_tx(sf, "ROLLBACK").await;
                    Err(e.into())
                }
            };
        }
        self.n += 1;
        let gid = format!("sd-{}-{}", self.id, self.n);
        self.node = format!("{},{}", self.shards[sf].name, self.shards[st].name);
        // Phase 0: work on both; any failure rolls both back.
        let work = async {
            self.exec(sf, "BEGIN").await?;
            self.exec(st, "BEGIN").await?;
            if self.exec_tx(sf, &debit).await? != 1 {
                return Ok(false);
            }
            Ok(self.exec_tx(st, &credit).await? == 1)
        };
        match work.await {
            Ok(true) => {}
            other => {
                let _ = self.exec_tx(sf, "ROLLBACK").await;
                let _ = self.exec_tx(st, "ROLLBACK").await;
                return match other {
                    Ok(_) => Ok(Completion::Fail(v.clone(), "insufficient funds".into())),
                    Err(e) => Err(e),
                };
            }
        }
        // Phase 1: prepare both. A failed prepare rolls back whatever got
        // prepared; only a prepare whose answer was lost may have prepared
        // (one never sent, or refused by its server, prepared nothing).
        let prepare = format!("PREPARE TRANSACTION '{gid}'");
        let first = self.exec_tx(sf, &prepare).await;
        let second = match &first {
            Ok(_) => self.exec_tx(st, &prepare).await,
            Err(_) => {
                let _ = self.exec_tx(st, "ROLLBACK").await;
                Err(TxError::Gone(NOT_SENT.into()))
            }
        };
        let maybe = [
            (sf, matches!(first, Err(TxError::Lost(_)))),
            (st, matches!(second, Err(TxError::Lost(_)))),
        ];
        if let Some(m) = [first, second]
            .into_iter()
            .find_map(|r| r.err().map(TxError::text))
        {
            let mut doubt = Vec::new();
            for (s, _) in maybe.into_iter().filter(|c| c.1) {
                if let Err(e) = self.rollback_prepared(s, &gid).await {
                    doubt.push(format!("{}: {e}", self.shards[s].name));
                }
            }
            return if doubt.is_empty() {
                Ok(Completion::Fail(v.clone(), m))
            } else {
                Err(Error::Unknown(format!(
                    "in doubt: a prepare failed ({m}) and {gid} could not be rolled back everywhere: {}",
                    doubt.join("; ")
                )))
            };
        }
        // Decision: commit, logged before phase 2.
        self.log
            .commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(gid.clone());
        if rand::Rng::gen_bool(&mut self.rng, self.cfg.crash_after_prepare.clamp(0.0, 1.0)) {
            return Err(Error::Unknown(format!(
                "in doubt: the coordinator stopped after deciding to commit {gid} (a simulated crash between prepare and commit)"
            )));
        }
        let commit = format!("COMMIT PREPARED '{gid}'");
        let a = self.exec(sf, &commit).await;
        let b = self.exec(st, &commit).await;
        match (a, b) {
            (Ok(_), Ok(_)) => Ok(Completion::Ok(v.clone())),
            (a, b) => {
                let why = |r: Result<u64, Error>| match r {
                    Ok(_) => "committed".to_string(),
                    Err(Error::NotDone(m) | Error::Unknown(m)) => m,
                };
                Err(Error::Unknown(format!(
                    "in doubt: {gid} decided to commit; {}: {}; {}: {}",
                    self.shards[sf].name,
                    why(a),
                    self.shards[st].name,
                    why(b)
                )))
            }
        }
    }

    /// Rolls `gid` back on shard `s` if it is prepared there: Ok when it is
    /// certainly not prepared any more.
    async fn rollback_prepared(&mut self, s: usize, gid: &str) -> Result<(), String> {
        let c = self.conn(s).await.map_err(|e| match e {
            Error::NotDone(m) | Error::Unknown(m) => m,
        })?;
        match c.execute(&format!("ROLLBACK PREPARED '{gid}'"), &[]).await {
            Ok(_) => Ok(()),
            // 42704: no such prepared transaction.
            Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "42704") => Ok(()),
            Err(e) => Err(pg_text(&e)),
        }
    }

    async fn read(&mut self) -> Result<Completion, Error> {
        let mut all = Map::new();
        let shards = self.shards.len();
        self.node = "all".into();
        let locking = self.cfg.locking_reads;
        let mut opened = Vec::new();
        let result = async {
            for s in 0..shards {
                let c = self.conn(s).await?;
                let sql = if locking {
                    opened.push(s);
                    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                        .await
                        .map_err(|e| Error::NotDone(pg_text(&e)))?;
                    "SELECT id, balance FROM accounts ORDER BY id FOR SHARE"
                } else {
                    "SELECT id, balance FROM accounts"
                };
                let rows = c
                    .query(sql, &[])
                    .await
                    .map_err(|e| Error::NotDone(pg_text(&e)))?;
                for r in rows {
                    let id: String = r.get(0);
                    let b: i64 = r.get(1);
                    all.insert(id, json!(b));
                }
            }
            Ok::<_, Error>(())
        }
        .await;
        for s in opened {
            if let Ok(c) = self.conn(s).await {
                let _ = c.batch_execute("COMMIT").await;
            }
        }
        // A read changes nothing: any failure is a fail.
        match result {
            Ok(()) => Ok(Completion::Ok(Value::Object(all))),
            Err(Error::NotDone(m) | Error::Unknown(m)) => Err(Error::NotDone(m)),
        }
    }

    /// The operator's resolution of every prepared transaction.
    async fn resolve(&mut self) -> Result<Completion, Error> {
        let decided = self
            .log
            .commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (mut committed, mut rolled_back, mut oldest) = (0, 0, 0.0f64);
        for s in 0..self.shards.len() {
            let rows = self
                .conn(s)
                .await?
                .query(
                    "SELECT gid, extract(epoch FROM now() - prepared)::float8 FROM pg_prepared_xacts",
                    &[],
                )
                .await
                .map_err(|e| Error::NotDone(pg_text(&e)))?;
            for r in rows {
                let gid: String = r.get(0);
                let age: f64 = r.get(1);
                oldest = oldest.max(age);
                if decided.contains(&gid) {
                    self.exec(s, &format!("COMMIT PREPARED '{gid}'")).await?;
                    committed += 1;
                } else {
                    self.exec(s, &format!("ROLLBACK PREPARED '{gid}'")).await?;
                    rolled_back += 1;
                }
            }
        }
        Ok(Completion::Ok(json!({
            "committed": committed,
            "rolled_back": rolled_back,
            "oldest_prepared_s": (oldest * 1000.0).round() / 1000.0,
        })))
    }
}

/// Why a prepare was not even sent.
const NOT_SENT: &str = "not prepared: the first prepare failed";

/// Why a statement inside a transaction has no result.
#[derive(Debug)]
enum TxError {
    /// Never sent: the connection that began the transaction is gone
    /// (and the transaction with it).
    Gone(String),
    /// The server answered with an error: it did not do it.
    Refused(String),
    /// Sent, and the connection broke before an answer came.
    Lost(String),
}

impl TxError {
    fn text(self) -> String {
        match self {
            TxError::Gone(m) | TxError::Refused(m) | TxError::Lost(m) => m,
        }
    }
}

/// Before a commit point every failure is certain: the transaction is
/// rolled back (a broken connection aborts it).
impl From<TxError> for Error {
    fn from(e: TxError) -> Error {
        Error::NotDone(e.text())
    }
}

/// A PostgreSQL error with its SQLSTATE when the server sent one.
pub(crate) fn pg_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.code().code(), d.message()),
        None => e.to_string(),
    }
}

impl Client for PgCoordinator {
    async fn invoke(&mut self, op: &Op) -> Completion {
        let r = match op.f.as_str() {
            "transfer" => self.transfer(op).await,
            "read" => self.read().await,
            "resolve" => self.resolve().await,
            f => crate::call::unknown_op(f),
        };
        crate::call::complete(r)
    }

    fn node(&self) -> Option<String> {
        Some(self.node.clone())
    }
}
