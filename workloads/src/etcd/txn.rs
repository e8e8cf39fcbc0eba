//! Transactions on etcd (`--workload list-append` and `rw-register`): a
//! serializable read-modify-write in two requests on the client's node.
//!
//! 1. One etcd Txn of range requests reads every key the transaction
//!    touches at one revision, with each key's mod revision (0: absent).
//!    Linearizable (through Raft's read index), or served by the member
//!    alone with `--opt read-mode=serializable`. The micro-ops run against
//!    that snapshot here: reads see it and the transaction's own writes.
//! 2. A transaction with writes then sends one etcd Txn comparing the mod
//!    revision of every key it touched (read or written) with the one read,
//!    and putting the new values. A lost compare (another transaction
//!    changed a key in between) is a `fail`; so is anything that went wrong
//!    before this request was sent. A timeout or a broken connection after
//!    it was sent is `info`. A read-only transaction completes after step 1.
//!
//! A list is stored under `la/K` as JSON text (`[1,2,3]`), a register under
//! `rw/K` as a JSON number. Nothing is retried.

use super::client::{b64, unb64, Config, EtcdClient};
use crate::call::CallError as Error;
use checkers::txn::TxnKind;
use harness::runner::{Client, Completion, Op};
use harness::system::NodeInfo;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub struct EtcdTxnClient {
    etcd: EtcdClient,
    kind: TxnKind,
    serializable_reads: bool,
    /// The last call could not connect.
    refused: bool,
}

/// One micro-op, checked.
#[derive(Clone, Copy)]
enum Mop {
    Write(i64, i64),
    Read(i64),
}

impl Mop {
    fn key(self) -> i64 {
        match self {
            Mop::Write(k, _) | Mop::Read(k) => k,
        }
    }
}

fn parse(v: &Value, write: &str) -> Result<Vec<Mop>, String> {
    let mops = v
        .as_array()
        .ok_or_else(|| format!("a txn is a list of micro-ops: {v}"))?;
    mops.iter()
        .map(|m| match (m[0].as_str(), m[1].as_i64(), &m[2]) {
            (Some(f), Some(k), Value::Number(x)) if f == write && x.is_i64() => {
                Ok(Mop::Write(k, x.as_i64().unwrap_or(0)))
            }
            (Some("r"), Some(k), Value::Null) => Ok(Mop::Read(k)),
            _ => Err(format!(
                "micro-op {m}: expected [\"{write}\", k, v] or [\"r\", k, null] with integers"
            )),
        })
        .collect()
}

/// A key's state as read: its value and mod revision (0: absent).
struct Read {
    value: Value,
    mod_revision: String,
}

impl EtcdTxnClient {
    pub fn new(slot: usize, nodes: &[NodeInfo], cfg: Arc<Config>, kind: TxnKind) -> EtcdTxnClient {
        EtcdTxnClient {
            serializable_reads: cfg.serializable,
            etcd: EtcdClient::new(slot, nodes, cfg),
            kind,
            refused: false,
        }
    }

    fn write_name(&self) -> &'static str {
        match self.kind {
            TxnKind::ListAppend => "append",
            TxnKind::RwRegister => "w",
        }
    }

    fn key(&self, k: i64) -> String {
        match self.kind {
            TxnKind::ListAppend => b64(&format!("la/{k}")),
            TxnKind::RwRegister => b64(&format!("rw/{k}")),
        }
    }

    /// Step 1: every key at one revision.
    async fn snapshot(&self, keys: &[i64]) -> Result<BTreeMap<i64, Read>, String> {
        let ranges: Vec<Value> = keys
            .iter()
            .map(|&k| {
                let mut r = json!({"key": self.key(k)});
                if self.serializable_reads {
                    r["serializable"] = json!(true);
                }
                json!({"requestRange": r})
            })
            .collect();
        let v = match self
            .etcd
            .post("/v3/kv/txn", json!({"success": ranges}))
            .await
        {
            Ok(v) => v,
            Err(Error::NotDone(m) | Error::Unknown(m)) => return Err(m),
        };
        let responses = v["responses"].as_array().map_or(&[][..], Vec::as_slice);
        if responses.len() != keys.len() {
            return Err(format!(
                "{} range answers for {} keys: {v}",
                responses.len(),
                keys.len()
            ));
        }
        let empty = match self.kind {
            TxnKind::ListAppend => json!([]),
            TxnKind::RwRegister => Value::Null,
        };
        let mut out = BTreeMap::new();
        for (&k, r) in keys.iter().zip(responses) {
            let read = match r["response_range"]["kvs"].get(0) {
                None => Read {
                    value: empty.clone(),
                    mod_revision: "0".into(),
                },
                Some(kv) => {
                    let text = unb64(&kv["value"]).unwrap_or_default();
                    let value: Value = serde_json::from_str(&text)
                        .map_err(|e| format!("key {k} holds {text:?}: {e}"))?;
                    let ok = match self.kind {
                        TxnKind::ListAppend => value
                            .as_array()
                            .is_some_and(|a| a.iter().all(|x| x.is_i64())),
                        TxnKind::RwRegister => value.is_i64(),
                    };
                    let rev = kv["mod_revision"].as_str().unwrap_or_default();
                    if !ok || rev.parse::<u64>().is_err() {
                        return Err(format!("key {k}: unexpected entry {kv}"));
                    }
                    Read {
                        value,
                        mod_revision: rev.to_string(),
                    }
                }
            };
            out.insert(k, read);
        }
        Ok(out)
    }

    async fn txn(&self, op: &Op) -> Result<Completion, Error> {
        let mops = match parse(&op.value, self.write_name()) {
            Ok(m) => m,
            Err(e) => return Ok(Completion::Fail(Value::Null, e)),
        };
        let mut keys: Vec<i64> = mops.iter().map(|m| m.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        // Nothing is written before step 2: any failure here is a fail.
        let mut state = match self.snapshot(&keys).await {
            Ok(s) => s,
            Err(m) => return Err(Error::NotDone(m)),
        };
        let compares: Vec<Value> = keys
            .iter()
            .map(|k| {
                json!({"key": self.key(*k), "target": "MOD", "result": "EQUAL",
                       "mod_revision": state[k].mod_revision})
            })
            .collect();
        let mut written = Vec::new();
        let mut done = Vec::with_capacity(mops.len());
        for m in &mops {
            match *m {
                Mop::Read(k) => done.push(json!(["r", k, state[&k].value])),
                Mop::Write(k, v) => {
                    let s = state.get_mut(&k).expect("every key was read");
                    match &mut s.value {
                        Value::Array(list) => list.push(json!(v)),
                        other => *other = json!(v),
                    }
                    written.push(k);
                    done.push(json!([self.write_name(), k, v]));
                }
            }
        }
        if written.is_empty() {
            return Ok(Completion::Ok(Value::Array(done)));
        }
        written.sort_unstable();
        written.dedup();
        let puts: Vec<Value> = written
            .iter()
            .map(|k| {
                json!({"requestPut": {"key": self.key(*k), "value": b64(&state[k].value.to_string())}})
            })
            .collect();
        let v = self
            .etcd
            .post("/v3/kv/txn", json!({"compare": compares, "success": puts}))
            .await?;
        // A failed compare omits "succeeded".
        if v.get("succeeded").and_then(Value::as_bool) == Some(true) {
            Ok(Completion::Ok(Value::Array(done)))
        } else {
            Ok(Completion::Fail(
                Value::Null,
                "compare failed: a key changed since it was read".into(),
            ))
        }
    }
}

impl Client for EtcdTxnClient {
    async fn invoke(&mut self, op: &Op) -> Completion {
        let r = match op.f.as_str() {
            "txn" => self.txn(op).await,
            f => crate::call::unknown_op(f),
        };
        let c = crate::call::complete(r);
        self.refused = matches!(&c, Completion::Fail(_, m) if m.starts_with("cannot connect"));
        c
    }

    fn backoff(&mut self) -> Duration {
        crate::call::backoff(self.refused)
    }

    fn node(&self) -> Option<String> {
        self.etcd.node()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_ops_must_be_the_workloads_own() {
        let v = json!([["append", 1, 5], ["r", 2, null]]);
        assert_eq!(parse(&v, "append").unwrap().len(), 2);
        let e = parse(&v, "w").err().unwrap();
        assert!(e.contains("[\"w\", k, v]"), "{e}");
        assert!(parse(&json!([["r", 1, [1]]]), "append").is_err());
        assert!(parse(&json!("x"), "append").is_err());
    }
}
