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
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// An operation to invoke.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub f: String,
    pub key: Option<Value>,
    pub value: Value,
    /// Time the worker waits before invoking (e.g. a lock held a while).
    pub wait: Duration,
}

impl Op {
    pub fn new(f: &str, key: Option<Value>, value: Value) -> Op {
        Op {
            f: f.into(),
            key,
            value,
            wait: Duration::ZERO,
        }
    }
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

    /// How long to wait before the next invocation: e.g. a while after a
    /// refused connection, so a worker on a dead node does not spin.
    fn backoff(&mut self) -> Duration {
        Duration::ZERO
    }
}

/// Makes operations; one per worker, seeded.
pub trait Generator: Send {
    /// The next operation for this worker, or `None` when it is done.
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Op>;

    /// Whether the next operation must run even past the time limit (a
    /// lock's release: a hold must not outlive the run). Stops still stop.
    fn must_finish(&self) -> bool {
        false
    }

    /// The recovery epoch changed to `epoch` (the fault schedule counts one
    /// more after each recovery from a power cut; see [`Workers::epoch`]).
    /// Called before the next [`Generator::next`], once per change the
    /// worker sees: a generator may then read back what it wrote, since a
    /// lost write is only seen by a read after the recovery. What it makes
    /// stays a function of its seed and the epochs it observed.
    fn observe(&mut self, _epoch: u64) {}
}

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub concurrency: usize,
    pub time_limit: Duration,
    /// A call longer than this completes as info.
    pub op_timeout: Duration,
    pub seed: u64,
    /// Operations per second over all workers; `None`: as fast as answers come.
    pub rate: Option<f64>,
}

/// Counts of what was recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

/// Live counts, readable while the run goes on (progress lines).
#[derive(Debug, Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> RunStats {
        RunStats {
            ok: self.ok.load(Ordering::Relaxed),
            fail: self.fail.load(Ordering::Relaxed),
            info: self.info.load(Ordering::Relaxed),
        }
    }
}

/// The workers' state across phases (main phase, final reads): each slot's
/// current process number, the counts, and the stop signal.
pub struct Workers {
    processes: Vec<u64>,
    phase: u64,
    pub counters: Arc<Counters>,
    /// The recovery epoch: the fault schedule adds one after each recovery
    /// from a power cut; every worker hands a change to its generator
    /// ([`Generator::observe`]) before its next operation.
    pub epoch: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
}

impl Workers {
    /// `concurrency` slots starting as processes 0..concurrency; sending
    /// `true` on `stop`'s sender ends every phase at once (in-flight calls
    /// complete as info).
    pub fn new(concurrency: usize, stop: watch::Receiver<bool>) -> Workers {
        Workers {
            processes: (0..concurrency as u64).collect(),
            phase: 0,
            counters: Arc::new(Counters::default()),
            epoch: Arc::default(),
            stop,
        }
    }

    pub fn concurrency(&self) -> usize {
        self.processes.len()
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
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

/// Runs every worker of `workers` until the time limit, until every
/// generator is done, or until stopped. `client(slot)` opens a client for a
/// worker (again after an info). Returns what this phase recorded.
pub async fn run_clients<C, G, W>(
    cfg: &RunConfig,
    workers: &mut Workers,
    client: impl Fn(usize) -> C + Send + Sync + 'static,
    generator: impl Fn(usize) -> G,
    recorder: Arc<Recorder<W>>,
) -> std::io::Result<RunStats>
where
    C: Client + 'static,
    G: Generator + 'static,
    W: Write + Send + 'static,
{
    let before = workers.counters.snapshot();
    if workers.stopped() {
        return Ok(RunStats::default());
    }
    let deadline = Instant::now() + cfg.time_limit;
    let client = Arc::new(client);
    let concurrency = workers.concurrency() as u64;
    // Each worker waits this long between invocations, on average.
    let gap = cfg
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(concurrency as f64 / r));
    workers.phase += 1;
    let mut tasks = Vec::new();
    for slot in 0..workers.concurrency() {
        let mut gen = generator(slot);
        let (client, recorder) = (client.clone(), recorder.clone());
        let counters = workers.counters.clone();
        let epoch = workers.epoch.clone();
        let mut stop = workers.stop.clone();
        let (op_timeout, seed, phase) = (cfg.op_timeout, cfg.seed, workers.phase);
        let mut process = workers.processes[slot];
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(
                seed ^ (slot as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ phase.wrapping_mul(0xD1B5_4A32_D192_ED03),
            );
            let mut c = client(slot);
            let mut next_at = Instant::now();
            let mut seen = 0;
            while (Instant::now() < deadline || gen.must_finish()) && !*stop.borrow() {
                if let Some(gap) = gap {
                    // Uniform in [0, 2 gap): the mean is the asked rate, and
                    // workers do not march in step.
                    next_at += gap.mul_f64(rng.gen_range(0.0..2.0));
                    tokio::select! {
                        _ = tokio::time::sleep_until(next_at.into()) => {}
                        _ = stop.changed() => break,
                    }
                    if Instant::now() >= deadline && !gen.must_finish() {
                        break;
                    }
                }
                let pause = c.backoff();
                if !pause.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.changed() => break,
                    }
                }
                let now = epoch.load(Ordering::Acquire);
                if now != seen {
                    seen = now;
                    gen.observe(now);
                }
                let Some(op) = gen.next(&mut rng) else { break };
                if !op.wait.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(op.wait) => {}
                        _ = stop.changed() => break,
                    }
                }
                let p = Process::Client(process);
                recorder.record(p, EventType::Invoke, &op, op.value.clone(), None, None)?;
                // In-flight calls may finish past the time limit, by at most op_timeout.
                let completion = tokio::select! {
                    done = tokio::time::timeout(op_timeout, c.invoke(&op)) => match done {
                        Ok(done) => done,
                        Err(_) => Completion::Info(format!(
                            "timed out after {} ms",
                            op_timeout.as_millis()
                        )),
                    },
                    _ = stop.changed() => Completion::Info("interrupted: the run was stopped".into()),
                };
                let node = c.node();
                match completion {
                    Completion::Ok(v) => {
                        recorder.record(p, EventType::Ok, &op, v, node, None)?;
                        counters.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Completion::Fail(v, why) => {
                        recorder.record(p, EventType::Fail, &op, v, node, Some(why))?;
                        counters.fail.fetch_add(1, Ordering::Relaxed);
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
                        counters.info.fetch_add(1, Ordering::Relaxed);
                        // This process may still have a call in flight: never reuse it.
                        process += concurrency;
                        c = client(slot);
                    }
                }
            }
            Ok::<u64, std::io::Error>(process)
        }));
    }
    let mut first_error = None;
    for (slot, t) in tasks.into_iter().enumerate() {
        match t.await.map_err(std::io::Error::other) {
            Ok(Ok(p)) => workers.processes[slot] = p,
            Ok(Err(e)) | Err(e) => {
                // A worker that failed may have left an operation open: retire it.
                workers.processes[slot] += concurrency;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let after = workers.counters.snapshot();
    Ok(RunStats {
        ok: after.ok - before.ok,
        fail: after.fail - before.fail,
        info: after.info - before.info,
    })
}
