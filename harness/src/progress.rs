//! Progress of a run: a bar on a terminal, plain periodic lines otherwise (CI).

use crate::runner::Counters;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Reports every second on a terminal, every 10 s otherwise.
    pub fn start(
        limit: Duration,
        counters: Arc<Counters>,
        active: Arc<Mutex<Option<String>>>,
    ) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let tty = std::io::stderr().is_terminal();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let bar = tty.then(|| {
                let b = ProgressBar::new(limit.as_secs().max(1));
                b.set_style(
                    ProgressStyle::with_template("{bar:30} {pos}/{len} s  {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            });
            let every = if tty { 1 } else { 10 };
            let (mut last_ops, mut last_t) = (0u64, Instant::now());
            let mut tick = 0u64;
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                tick += 1;
                if !tick.is_multiple_of(every * 10) {
                    continue;
                }
                let s = counters.snapshot();
                let ops = s.ok + s.fail + s.info;
                let rate = (ops - last_ops) as f64 / last_t.elapsed().as_secs_f64();
                (last_ops, last_t) = (ops, Instant::now());
                let fault = active
                    .lock()
                    .map(|a| a.clone())
                    .unwrap_or_default()
                    .unwrap_or_else(|| "none".into());
                let msg = format!(
                    "{rate:.0} ops/s  ok {} fail {} info {}  fault: {fault}",
                    s.ok, s.fail, s.info
                );
                let el = start.elapsed().as_secs();
                match &bar {
                    Some(b) => {
                        b.set_position(el.min(limit.as_secs()));
                        b.set_message(msg);
                    }
                    None => say_err!("[{el:>4}/{} s] {msg}", limit.as_secs()),
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        });
        Progress {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
