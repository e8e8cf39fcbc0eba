//! The transactional clients (`--workload list-append` and `rw-register`):
//! every transaction is one PostgreSQL transaction on node 1's server (one
//! server: the other nodes' servers stay idle), at the isolation level
//! `--opt isolation` chose. A list is a row of `lists(k bigint PRIMARY KEY,
//! v bigint[])`; an append is an upsert concatenating the element, a read
//! selects the row. A register is a row of `registers(k bigint PRIMARY KEY,
//! v bigint)`; a write is an upsert, a read selects it (null: never written).
//! Micro-ops run in the transaction's order. An error before COMMIT
//! (serialization failure 40001, deadlock 40P01, a broken connection) rolls
//! the transaction back: `fail`, never retried. COMMIT refused: `fail`;
//! COMMIT sent and no answer (connection lost, timeout): `info`.

use super::client::pg_text;
use super::PORT;
use crate::call::CallError as Error;
use checkers::txn::TxnKind;
use harness::runner::{Client, Completion, Op};
use harness::system::NodeInfo;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_postgres::{Client as PgClient, NoTls};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    pub fn parse(s: &str) -> Option<Isolation> {
        match s {
            "read-committed" => Some(Isolation::ReadCommitted),
            "repeatable-read" => Some(Isolation::RepeatableRead),
            "serializable" => Some(Isolation::Serializable),
            _ => None,
        }
    }

    fn begin(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Isolation::RepeatableRead => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        }
    }
}

pub struct PgTxnClient {
    node: NodeInfo,
    kind: TxnKind,
    isolation: Isolation,
    timeout: Duration,
    conn: Option<PgClient>,
    /// The last call could not connect (the server is down or cut off).
    refused: bool,
}

/// One micro-op, checked: an append (or a register write), or a read.
enum Mop {
    Write(i64, i64),
    Read(i64),
}

fn parse(v: &Value, write: &str) -> Result<Vec<Mop>, String> {
    let mops = v
        .as_array()
        .ok_or_else(|| format!("a txn is a list of micro-ops: {v}"))?;
    mops.iter()
        .map(|m| match (m[0].as_str(), m[1].as_i64(), &m[2]) {
            (Some(f), Some(k), x) if f == write && x.is_i64() => {
                Ok(Mop::Write(k, x.as_i64().unwrap_or(0)))
            }
            (Some("r"), Some(k), Value::Null) => Ok(Mop::Read(k)),
            _ => Err(format!(
                "micro-op {m}: expected [\"{write}\", k, v] or [\"r\", k, null] with integers"
            )),
        })
        .collect()
}

impl PgTxnClient {
    pub fn new(
        nodes: &[NodeInfo],
        kind: TxnKind,
        isolation: Isolation,
        timeout: Duration,
    ) -> PgTxnClient {
        PgTxnClient {
            node: nodes[0].clone(),
            kind,
            isolation,
            timeout,
            conn: None,
            refused: false,
        }
    }

    /// The connection, made if needed. A statement or a lock waits at most
    /// 60% of the operation's timeout, then errors (the transaction fails).
    async fn conn(&mut self) -> Result<&PgClient, Error> {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            let ms = (self.timeout.as_millis() as u64 * 6 / 10).max(100);
            let cfg = format!(
                "host={} port={PORT} user=postgres dbname=postgres connect_timeout=1 options='-c lock_timeout={ms} -c statement_timeout={ms}'",
                self.node.ip
            );
            let (client, connection) =
                tokio::time::timeout(Duration::from_secs(2), tokio_postgres::connect(&cfg, NoTls))
                    .await
                    .map_err(|_| {
                        Error::NotDone(format!("connecting to {} timed out", self.node.name))
                    })?
                    .map_err(|e| {
                        Error::NotDone(format!("connecting to {}: {e}", self.node.name))
                    })?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.conn = Some(client);
        }
        Ok(self.conn.as_ref().expect("just made"))
    }

    async fn txn(&mut self, op: &Op) -> Result<Completion, Error> {
        let write = match self.kind {
            TxnKind::ListAppend => "append",
            TxnKind::RwRegister => "w",
        };
        let lists = self.kind == TxnKind::ListAppend;
        let mops = match parse(&op.value, write) {
            Ok(m) => m,
            Err(e) => return Ok(Completion::Fail(Value::Null, e)),
        };
        let begin = self.isolation.begin();
        self.conn().await?;
        // Out of `self` while the transaction is open: if the runner's
        // timeout drops this call half-way, the connection goes with it
        // (the server rolls back) and the next transaction starts afresh.
        let c = self.conn.take().expect("connected");
        let body = async {
            c.batch_execute(begin).await?;
            let mut done = Vec::with_capacity(mops.len());
            for m in &mops {
                done.push(match *m {
                    Mop::Write(k, v) if !lists => {
                        c.execute(
                            "INSERT INTO registers (k, v) VALUES ($1, $2) \
                             ON CONFLICT (k) DO UPDATE SET v = $2",
                            &[&k, &v],
                        )
                        .await?;
                        json!(["w", k, v])
                    }
                    Mop::Read(k) if !lists => {
                        let rows = c
                            .query("SELECT v FROM registers WHERE k = $1", &[&k])
                            .await?;
                        let v: Option<i64> = rows.first().map(|r| r.get(0));
                        json!(["r", k, v])
                    }
                    Mop::Write(k, v) => {
                        c.execute(
                            "INSERT INTO lists (k, v) VALUES ($1, ARRAY[$2::bigint]) \
                             ON CONFLICT (k) DO UPDATE SET v = lists.v || $2::bigint",
                            &[&k, &v],
                        )
                        .await?;
                        json!(["append", k, v])
                    }
                    Mop::Read(k) => {
                        let rows = c.query("SELECT v FROM lists WHERE k = $1", &[&k]).await?;
                        let list: Vec<i64> = rows.first().map(|r| r.get(0)).unwrap_or_default();
                        json!(["r", k, list])
                    }
                });
            }
            Ok::<_, tokio_postgres::Error>(done)
        };
        let done = match body.await {
            Ok(d) => d,
            Err(e) => {
                // Rolled back (a broken connection aborts it too).
                if c.batch_execute("ROLLBACK").await.is_ok() {
                    self.conn = Some(c);
                }
                return Err(Error::NotDone(pg_text(&e)));
            }
        };
        match c.batch_execute("COMMIT").await {
            Ok(()) => {
                self.conn = Some(c);
                Ok(Completion::Ok(Value::Array(done)))
            }
            Err(e) if e.as_db_error().is_some() => {
                self.conn = Some(c);
                Err(Error::NotDone(pg_text(&e)))
            }
            Err(e) => Err(Error::Unknown(format!(
                "COMMIT sent, no answer: {}",
                pg_text(&e)
            ))),
        }
    }
}

impl Client for PgTxnClient {
    async fn invoke(&mut self, op: &Op) -> Completion {
        let r = match op.f.as_str() {
            "txn" => self.txn(op).await,
            f => crate::call::unknown_op(f),
        };
        let c = crate::call::complete(r);
        self.refused = matches!(&c, Completion::Fail(_, m) if m.starts_with("connecting to"));
        c
    }

    /// While the server is down, a worker waits 100 ms between attempts
    /// rather than fail thousands of transactions a second.
    fn backoff(&mut self) -> Duration {
        crate::call::backoff(self.refused)
    }

    fn node(&self) -> Option<String> {
        Some(self.node.name.clone())
    }
}
