//! The client side of a run: concurrent workers invoking operations from a
//! seeded generator against a client, every event recorded as it happens.
//!
//! - One worker per process slot (`concurrency`); each has its own RNG
//!   seeded from the run's seed and its slot, so a seed replays the same
//!   operations per worker whatever the timing.
//! - A call that times out, or whose client reports it cannot tell, completes
//!   as `info`; the worker then continues under a new process number (slot +
//!   k * concurrency, as Jepsen does) with a fresh client. Nothing is retried.
//! - Each event goes to the history writer at once (flushed line by line).

use checkers::history::jsonl::HistoryWriter;
use checkers::history::{Event, EventType, Process};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An operation to invoke.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub f: String,
    pub key: Option<Value>,
    pub value: Value,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// Took effect, with its result.
    Ok(Value),
    /// Certainly did not take effect.
    Fail(Value, String),
    /// Unknown: may take effect later, or never.
    Info(String),
}

/// A connection to the system under test, owned by one worker.
pub trait Client: Send {
    /// Performs `op` once. Must not retry: a retried write can take effect twice.
    fn invoke(&mut self, op: &Op) -> impl Future<Output = Completion> + Send;

    /// The node this client talks to, recorded in completions.
    fn node(&self) -> Option<String> {
        None
    }
}

/// Makes operations; one per worker, seeded.
pub trait Generator: Send {
    /// The next operation for this worker, or `None` when it is done.
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Op>;
}

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub concurrency: usize,
    pub time_limit: Duration,
    /// A call longer than this completes as info.
    pub op_timeout: Duration,
    pub seed: u64,
}

/// Counts of what was recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// Shared sink for events: assigns index and time, writes at once.
pub struct Recorder<W: Write> {
    writer: Mutex<HistoryWriter<W>>,
    start: Instant,
}

impl<W: Write> Recorder<W> {
    pub fn new(writer: HistoryWriter<W>, start: Instant) -> Self {
        Recorder {
            writer: Mutex::new(writer),
            start,
        }
    }

    /// Records an event now. A failed write is returned: the run must stop
    /// rather than lose history silently.
    pub fn record(
        &self,
        process: Process,
        kind: EventType,
        op: &Op,
        value: Value,
        node: Option<String>,
        error: Option<String>,
    ) -> std::io::Result<()> {
        let mut w = self
            .writer
            .lock()
            .map_err(|_| std::io::Error::other("history writer poisoned"))?;
        // Time is taken under the lock, so times never go backwards in the file.
        let e = Event {
            index: 0,
            time: Some(self.start.elapsed().as_nanos() as u64),
            process,
            kind,
            f: op.f.clone(),
            key: op.key.clone(),
            value,
            node,
            error: error.map(Value::from),
        };
        w.append(&e).map(|_| ())
    }

    pub fn into_inner(self) -> Option<W> {
        self.writer.into_inner().ok().map(HistoryWriter::into_inner)
    }
}

/// Runs `concurrency` workers until the time limit or until every generator
/// is done. `client(slot)` opens a client for a worker (again after an info).
pub async fn run_clients<C, G, W>(
    cfg: &RunConfig,
    client: impl Fn(usize) -> C + Send + Sync + 'static,
    generator: impl Fn(usize) -> G,
    recorder: Arc<Recorder<W>>,
) -> std::io::Result<RunStats>
where
    C: Client + 'static,
    G: Generator + 'static,
    W: Write + Send + 'static,
{
    let deadline = Instant::now() + cfg.time_limit;
    let client = Arc::new(client);
    let (ok, fail, info) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut tasks = Vec::new();
    for slot in 0..cfg.concurrency {
        let mut gen = generator(slot);
        let (client, recorder) = (client.clone(), recorder.clone());
        let (ok, fail, info) = (ok.clone(), fail.clone(), info.clone());
        let (op_timeout, concurrency, seed) = (cfg.op_timeout, cfg.concurrency as u64, cfg.seed);
        tasks.push(tokio::spawn(async move {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ (slot as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut process = slot as u64;
            let mut c = client(slot);
            while Instant::now() < deadline {
                let Some(op) = gen.next(&mut rng) else { break };
                let p = Process::Client(process);
                recorder.record(p, EventType::Invoke, &op, op.value.clone(), None, None)?;
                // In-flight calls may finish past the time limit, by at most op_timeout.
                let completion = match tokio::time::timeout(op_timeout, c.invoke(&op)).await {
                    Ok(done) => done,
                    Err(_) => {
                        Completion::Info(format!("timed out after {} ms", op_timeout.as_millis()))
                    }
                };
                let node = c.node();
                match completion {
                    Completion::Ok(v) => {
                        recorder.record(p, EventType::Ok, &op, v, node, None)?;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Completion::Fail(v, why) => {
                        recorder.record(p, EventType::Fail, &op, v, node, Some(why))?;
                        fail.fetch_add(1, Ordering::Relaxed);
                    }
                    Completion::Info(why) => {
                        recorder.record(
                            p,
                            EventType::Info,
                            &op,
                            op.value.clone(),
                            node,
                            Some(why),
                        )?;
                        info.fetch_add(1, Ordering::Relaxed);
                        // This process may still have a call in flight: never reuse it.
                        process += concurrency;
                        c = client(slot);
                    }
                }
            }
            Ok::<(), std::io::Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(std::io::Error::other)??;
    }
    Ok(RunStats {
        ok: ok.load(Ordering::Relaxed),
        fail: fail.load(Ordering::Relaxed),
        info: info.load(Ordering::Relaxed),
    })
}
