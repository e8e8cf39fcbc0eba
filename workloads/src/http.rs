//! Any binary that speaks shakedown's node protocol (`--system http`,
//! docs/node-protocol.md): uploaded to every node, started from a command
//! template, stopped, killed and paused by its pid; clients on its HTTP/JSON
//! API.
//!
//! Status codes: 200 ok; 409 (and any other 4xx) certainly not done (fail);
//! anything else, a timeout or a reset is unknown (info), except for reads,
//! which change nothing and so fail. A refused connection is a fail.

use crate::opts::{OptInfo, Opts, UsageError};
use crate::registry::{self, Configured, Definition, Gens, Plan, SystemInfo};
use crate::work::Work;
use harness::control::{ControlError, Remote};
use harness::daemon::Daemon;
use harness::lifecycle::{Outcome, Prepared, TestError, TestSpec};
use harness::runner::{Client, Completion, Op};
use harness::store::RunDir;
use harness::system::{NodeInfo, System};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_START: &str =
    "{binary} --id {id} --ip {ip} --port {port} --peers {peers} --data-dir {data_dir}";

pub struct HttpSystem {
    pub binary: PathBuf,
    pub start: String,
    pub port: u16,
}

impl HttpSystem {
    /// The start command of node `i`, from the template.
    pub fn command(&self, i: usize, nodes: &[NodeInfo]) -> String {
        let d = self.daemon().dir();
        let peers: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}={}:{}", n.name, n.ip, self.port))
            .collect();
        self.start
            .replace("{binary}", &format!("{d}/node"))
            .replace("{id}", &nodes[i].name)
            .replace("{ip}", &nodes[i].ip.to_string())
            .replace("{port}", &self.port.to_string())
            .replace("{peers}", &peers.join(","))
            .replace("{data_dir}", &format!("{d}/data"))
    }
}

impl System for HttpSystem {
    fn name(&self) -> &str {
        "http"
    }

    fn version(&self) -> Option<String> {
        let meta = std::fs::metadata(&self.binary).ok()?;
        Some(format!("{} ({} bytes)", self.binary.display(), meta.len()))
    }

    fn daemon(&self) -> Daemon {
        Daemon::new("node")
    }

    fn ports(&self) -> Vec<u16> {
        vec![self.port]
    }

    fn setup(
        &self,
        node: &mut dyn Remote,
        i: usize,
        nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let d = self.daemon();
        d.install(node, &self.binary, "node", "the file of --opt binary=")?;
        d.start(node, &self.command(i, nodes), &d.dir())?;
        Ok(())
    }

    fn await_ready(
        &self,
        node: &mut dyn Remote,
        i: usize,
        nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let probe = harness::control::tcp_probe(
            &nodes[i].ip.to_string(),
            self.port,
            "GET /health HTTP/1.0\\r\\n\\r\\n",
            3,
            "head -1 | grep -q ' 200 '",
        );
        self.daemon()
            .wait_until(node, &probe, Duration::from_secs(30))
    }
}

/// A client of one node.
pub struct HttpClient {
    http: reqwest::Client,
    base: String,
    node: String,
    id: String,
    lease_ms: Option<u64>,
    refused: bool,
}

impl HttpClient {
    pub fn new(
        slot: usize,
        nodes: &[NodeInfo],
        port: u16,
        timeout: Duration,
        lease_ms: Option<u64>,
    ) -> HttpClient {
        let n = &nodes[slot % nodes.len()];
        let http = reqwest::Client::builder()
            .retry(reqwest::retry::never())
            .no_proxy()
            .connect_timeout(Duration::from_secs(1))
            .timeout(timeout)
            .build()
            .expect("a reqwest client with no TLS and no proxy always builds");
        static CLIENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        HttpClient {
            http,
            base: format!("http://{}:{port}", n.ip),
            node: n.name.clone(),
            id: format!(
                "c{slot}-{}",
                CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            lease_ms,
            refused: false,
        }
    }

    /// The request for an operation: path and body.
    pub fn request(&self, op: &Op) -> Option<(&'static str, Value)> {
        let key = op.key.clone().unwrap_or(Value::Null);
        Some(match op.f.as_str() {
            "read" if op.key.is_none() => ("/read-set", json!({})),
            "read" => ("/read", json!({"key": key})),
            "write" => ("/write", json!({"key": key, "value": op.value})),
            "cas" => (
                "/cas",
                json!({"key": key, "from": op.value[0], "to": op.value[1]}),
            ),
            "add" => ("/add", json!({"value": op.value})),
            "acquire" => {
                let mut b = json!({"lock": key, "client": self.id});
                if let Some(ms) = self.lease_ms {
                    b["lease_ms"] = json!(ms);
                }
                ("/acquire", b)
            }
            "release" => ("/release", json!({"lock": key, "client": self.id})),
            _ => return None,
        })
    }
}

impl Client for HttpClient {
    async fn invoke(&mut self, op: &Op) -> Completion {
        self.refused = false;
        let Some((path, body)) = self.request(op) else {
            return Completion::Fail(Value::Null, format!("unknown operation {}", op.f));
        };
        let read = op.f == "read";
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await;
        let r = match r {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                self.refused = true;
                return Completion::Fail(Value::Null, format!("cannot connect: {e}"));
            }
            Err(e) if read => return Completion::Fail(Value::Null, e.to_string()),
            Err(e) if e.is_timeout() => return Completion::Info("timed out".into()),
            Err(e) => return Completion::Info(e.to_string()),
        };
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let err = v["error"].as_str().unwrap_or("").to_string();
        if status.is_success() {
            Completion::Ok(match op.f.as_str() {
                "read" if op.key.is_none() => v["values"].clone(),
                "read" => v["value"].clone(),
                "acquire" => {
                    let mut out = json!({"token": v["token"]});
                    if let Some(ms) = self.lease_ms {
                        out["lease_ms"] = json!(ms);
                    }
                    out
                }
                "release" => Value::Null,
                _ => op.value.clone(),
            })
        } else if status.is_client_error() || read {
            Completion::Fail(
                if op.f == "cas" {
                    op.value.clone()
                } else {
                    Value::Null
                },
                format!("{status}: {err}"),
            )
        } else {
            Completion::Info(format!("{status}: {err}"))
        }
    }

    fn node(&self) -> Option<String> {
        Some(self.node.clone())
    }

    fn backoff(&mut self) -> Duration {
        crate::call::backoff(self.refused)
    }
}

/// Options of `--system http`, read.
#[derive(Clone)]
pub struct HttpOpts {
    pub binary: PathBuf,
    pub start: String,
    pub port: u16,
    pub lease_ms: Option<u64>,
}

pub fn system(o: &HttpOpts) -> Arc<HttpSystem> {
    Arc::new(HttpSystem {
        binary: o.binary.clone(),
        start: o.start.clone(),
        port: o.port,
    })
}

/// The catalogue entry of `--system http`.
pub struct Def;

static INFO: SystemInfo = SystemInfo {
    name: "http",
    summary: "your own binary speaking shakedown's node protocol (docs/node-protocol.md), uploaded to every node",
    workloads: &["register", "lock", "set"],
    options: &[
        OptInfo { key: "binary", default: "", summary: "the node binary on this machine (required)" },
        OptInfo { key: "start", default: DEFAULT_START, summary: "start command; {binary} {id} {ip} {port} {peers} {data_dir} are filled in" },
        OptInfo { key: "port", default: "8080", summary: "the port the protocol is served on" },
        OptInfo { key: "lease-ms", default: "0", summary: "lock workload: lease asked for on acquire, ms (0: none)" },
    ],
};

impl Definition for Def {
    fn info(&self) -> &'static SystemInfo {
        &INFO
    }

    fn configure(&self, work: &Work, opts: &mut Opts) -> Result<Box<dyn Configured>, UsageError> {
        match work {
            Work::Register { .. } | Work::Lock { .. } | Work::Set => {}
            other => return Err(registry::unsupported(INFO.name, other)),
        }
        let binary = opts.str("binary");
        if binary.is_empty() {
            return Err(UsageError::Missing {
                system: INFO.name.into(),
                key: "binary",
                what: "the node binary to upload",
            });
        }
        if !std::path::Path::new(binary).is_file() {
            return Err(opts.invalid("binary", "no such file"));
        }
        Ok(Box::new(HttpOpts {
            binary: binary.into(),
            start: opts.str("start").into(),
            port: opts.port("port")?,
            lease_ms: Some(opts.whole("lease-ms", "ms")?).filter(|ms| *ms > 0),
        }))
    }
}

impl Configured for HttpOpts {
    fn system(&self) -> Arc<dyn System> {
        system(self)
    }

    fn run(
        &self,
        prepared: Prepared,
        spec: &TestSpec,
        run_dir: &RunDir,
        gens: Gens,
    ) -> Result<Outcome, TestError> {
        let (port, lease, timeout) = (self.port, self.lease_ms, spec.run.op_timeout);
        let plan = Plan::new(gens, move |slot: usize, nodes: &[NodeInfo]| {
            HttpClient::new(slot, nodes, port, timeout, lease)
        });
        prepared.run(self.system(), plan, spec, run_dir)
    }
}
