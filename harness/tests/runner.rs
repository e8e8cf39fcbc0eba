//! The client loop with in-process clients: counts, process renumbering
//! after info, seed replay, the time limit, and histories the checker reads.

use checkers::history::jsonl::HistoryWriter;
use checkers::history::{read_history, EventType, Format, Process};
use checkers::linear::{check, Options};
use checkers::model::ModelKind;
use checkers::Validity;
use harness::runner::{
    run_clients, Client, Completion, Generator, Op, Recorder, RunConfig, Workers,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A correct register in memory; every `flaky`-th call is left unknown.
struct Register {
    state: Arc<Mutex<Value>>,
    calls: Arc<AtomicU64>,
    flaky: u64,
}

impl Client for Register {
    async fn invoke(&mut self, op: &Op) -> Completion {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::time::sleep(Duration::from_micros(50)).await;
        if self.flaky > 0 && n.is_multiple_of(self.flaky) {
            // Sometimes the write happened, sometimes not: the caller cannot know.
            if op.f == "write" && n.is_multiple_of(2) {
                *self.state.lock().unwrap() = op.value.clone();
            }
            return Completion::Info("connection reset".into());
        }
        let mut s = self.state.lock().unwrap();
        match op.f.as_str() {
            "write" => {
                *s = op.value.clone();
                Completion::Ok(op.value.clone())
            }
            _ => Completion::Ok(s.clone()),
        }
    }
}

/// Reads and writes of unique values; `limit` operations per worker.
struct Rw {
    slot: u64,
    n: u64,
    limit: u64,
}

impl Generator for Rw {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Op> {
        if self.n >= self.limit {
            return None;
        }
        self.n += 1;
        Some(if rng.gen_bool(0.5) {
            Op::new("read", None, Value::Null)
        } else {
            Op::new("write", None, json!(self.slot * 1_000_000 + self.n))
        })
    }
}

/// The history is linearizable as one register.
fn assert_valid(h: &checkers::history::History) {
    let r = check(ModelKind::Register, &Value::Null, h, &Options::default()).unwrap();
    assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);
}

async fn run(
    seed: u64,
    flaky: u64,
    limit: u64,
    time_limit: Duration,
) -> (String, harness::runner::RunStats) {
    let cfg = RunConfig {
        concurrency: 5,
        time_limit,
        op_timeout: Duration::from_secs(1),
        seed,
        rate: None,
    };
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let mut workers = Workers::new(cfg.concurrency, rx);
    let state = Arc::new(Mutex::new(Value::Null));
    let calls = Arc::new(AtomicU64::new(0));
    let recorder = Arc::new(Recorder::new(
        HistoryWriter::new(Vec::new()),
        Instant::now(),
    ));
    let stats = run_clients(
        &cfg,
        &mut workers,
        move |_| Register {
            state: state.clone(),
            calls: calls.clone(),
            flaky,
        },
        |slot| Rw {
            slot: slot as u64,
            n: 0,
            limit,
        },
        recorder.clone(),
    )
    .await
    .unwrap();
    let recorder = Arc::try_unwrap(recorder).ok().expect("no other owner");
    (
        String::from_utf8(recorder.into_inner().unwrap()).unwrap(),
        stats,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_register_gives_a_valid_history_and_counts_add_up() {
    let (text, stats) = run(1, 0, 200, Duration::from_secs(30)).await;
    let p = read_history("run", &text, Format::Jsonl).unwrap();
    assert_eq!(p.history.ops.len(), 1000);
    assert_eq!(stats.ok, 1000);
    assert_valid(&p.history);
    // Times never go backwards in the file.
    let times: Vec<u64> = p.history.events.iter().filter_map(|e| e.time).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_info_the_worker_continues_as_a_new_process() {
    let (text, stats) = run(2, 7, 100, Duration::from_secs(30)).await;
    assert!(stats.info > 0);
    let p = read_history("run", &text, Format::Jsonl).unwrap();
    assert_eq!(
        p.history.ops.len() as u64,
        stats.ok + stats.fail + stats.info
    );
    // No process invokes again after an info completion.
    let mut dead = std::collections::HashSet::new();
    for e in &p.history.events {
        if e.kind == EventType::Invoke {
            assert!(
                !dead.contains(&e.process),
                "{:?} invoked after its info",
                e.process
            );
        } else if e.kind == EventType::Info {
            dead.insert(e.process);
        }
    }
    assert!(p
        .history
        .events
        .iter()
        .any(|e| matches!(e.process, Process::Client(p) if p >= 5)));
    assert_valid(&p.history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_replays_the_same_operations() {
    let invocations = |text: &str| {
        let p = read_history("run", text, Format::Jsonl).unwrap();
        let mut v: Vec<(String, String, String)> = p
            .history
            .events
            .iter()
            .filter(|e| e.kind == EventType::Invoke)
            .map(|e| (e.process.to_string(), e.f.clone(), e.value.to_string()))
            .collect();
        v.sort();
        v
    };
    let (a, _) = run(42, 0, 50, Duration::from_secs(30)).await;
    let (b, _) = run(42, 0, 50, Duration::from_secs(30)).await;
    let (c, _) = run(43, 0, 50, Duration::from_secs(30)).await;
    assert_eq!(invocations(&a), invocations(&b));
    assert_ne!(invocations(&a), invocations(&c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_limit_ends_the_run() {
    let start = Instant::now();
    let (text, stats) = run(3, 0, u64::MAX, Duration::from_millis(300)).await;
    // Generous: calls take 50 µs; in-flight ones may finish after the limit.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(stats.ok > 100);
    assert!(read_history("run", &text, Format::Jsonl).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_stop_ends_calls_as_info() {
    // --rate: 200 ops/s over 5 workers for 1 s is about 200 operations.
    let cfg = RunConfig {
        concurrency: 5,
        time_limit: Duration::from_secs(1),
        op_timeout: Duration::from_secs(1),
        seed: 9,
        rate: Some(200.0),
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let mut workers = Workers::new(5, rx);
    let recorder = Arc::new(Recorder::new(
        HistoryWriter::new(Vec::new()),
        Instant::now(),
    ));
    let state = Arc::new(Mutex::new(Value::Null));
    let calls = Arc::new(AtomicU64::new(0));
    let s = run_clients(
        &cfg,
        &mut workers,
        move |_| Register {
            state: state.clone(),
            calls: calls.clone(),
            flaky: 0,
        },
        |slot| Rw {
            slot: slot as u64,
            n: 0,
            limit: u64::MAX,
        },
        recorder,
    )
    .await
    .unwrap();
    assert!((80..=320).contains(&s.ok), "{} ops at 200/s for 1 s", s.ok);

    // A client that never answers: stopping completes its call as info, and
    // the next phase starts every worker under a new process number.
    struct Hang;
    impl Client for Hang {
        async fn invoke(&mut self, _op: &Op) -> Completion {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
    let cfg = RunConfig {
        time_limit: Duration::from_secs(30),
        op_timeout: Duration::from_secs(30),
        rate: None,
        ..cfg
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut workers = Workers::new(3, rx);
    let recorder = Arc::new(Recorder::new(
        HistoryWriter::new(Vec::new()),
        Instant::now(),
    ));
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = tx.send(true);
    });
    let start = Instant::now();
    let s = run_clients(
        &cfg,
        &mut workers,
        |_| Hang,
        |slot| Rw {
            slot: slot as u64,
            n: 0,
            limit: 10,
        },
        recorder.clone(),
    )
    .await
    .unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(s.info, 3, "each worker's hanging call is info");
    let text = String::from_utf8(
        Arc::try_unwrap(recorder)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap(),
    )
    .unwrap();
    assert!(text.contains("interrupted"));
    let p = read_history("run", &text, Format::Jsonl).unwrap();
    assert_eq!(p.history.ops.len(), 3);
}

/// Names each operation after the last recovery epoch it observed.
struct Epochs {
    seen: u64,
    left: u64,
}

impl Generator for Epochs {
    fn next(&mut self, _: &mut ChaCha8Rng) -> Option<Op> {
        self.left = self.left.checked_sub(1)?;
        Some(Op::new(&format!("e{}", self.seen), None, Value::Null))
    }

    fn observe(&mut self, epoch: u64) {
        assert_ne!(epoch, self.seen, "told of an epoch it had seen");
        self.seen = epoch;
    }
}

/// Moves the recovery epoch on at its third call.
struct Bumps {
    epoch: Arc<AtomicU64>,
    calls: u64,
}

impl Client for Bumps {
    async fn invoke(&mut self, _: &Op) -> Completion {
        self.calls += 1;
        if self.calls == 3 {
            self.epoch.fetch_add(1, Ordering::Release);
        }
        Completion::Ok(Value::Null)
    }
}

/// A new recovery epoch reaches the generator before its next operation,
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_observe_each_new_epoch_before_their_next_operation() {
    let cfg = RunConfig {
        concurrency: 1,
        time_limit: Duration::from_secs(30),
        op_timeout: Duration::from_secs(1),
        seed: 1,
        rate: None,
    };
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let mut workers = Workers::new(1, rx);
    let epoch = workers.epoch.clone();
    let recorder = Arc::new(Recorder::new(
        HistoryWriter::new(Vec::new()),
        Instant::now(),
    ));
    run_clients(
        &cfg,
        &mut workers,
        move |_| Bumps {
            epoch: epoch.clone(),
            calls: 0,
        },
        |_| Epochs { seen: 0, left: 6 },
        recorder.clone(),
    )
    .await
    .unwrap();
    let recorder = Arc::try_unwrap(recorder).ok().expect("no other owner");
    let text = String::from_utf8(recorder.into_inner().unwrap()).unwrap();
    let fs: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "invoke")
        .map(|e| e["f"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fs, ["e0", "e0", "e0", "e1", "e1", "e1"]);
}
