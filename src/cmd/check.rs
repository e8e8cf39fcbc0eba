//! `shakedown check`: one verdict line per file, exit code of the worst.

use crate::exit;
use checkers::history::{clip, read_history_from, Format, Parsed, ECHO_CHARS};
use checkers::linear::{CheckError, Options};
use checkers::{Checker, Validity};
use clap::Args;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args)]
#[command(after_help = super::help::check_after())]
pub struct CheckArgs {
    #[arg(long, default_value = "cas-register", help = super::help::model_flag())]
    model: String,
    #[arg(
        long,
        default_value = "strict-serializable",
        help = super::help::consistency_flag()
    )]
    consistency_models: String,
    /// History format: auto, jsonl, edn or jepsen-log
    #[arg(long, default_value = "auto")]
    format: String,
    /// Initial state as JSON, e.g. 0 or "\"\"" (default null)
    #[arg(long, default_value = "null")]
    init: String,
    /// Seconds the search may take per file before answering unknown
    #[arg(long, default_value_t = 60.0, allow_negative_numbers = true)]
    time_limit: f64,
    /// MiB the search may use before answering unknown (default: half the machine's memory)
    #[arg(long)]
    memory_limit: Option<u64>,
    /// Worker threads for independent keys (default: one per core; at most 1024)
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON result per file instead of a verdict line
    #[arg(long)]
    json: bool,
    /// Write results.json for each file under this directory
    #[arg(long)]
    out: Option<PathBuf>,
    /// History files, directories of them, or - for standard input
    #[arg(required = true)]
    files: Vec<String>,
}

/// The longest --time-limit: about eleven days, far inside what a deadline
/// (`Instant` plus the limit) can hold.
const MAX_TIME_LIMIT: f64 = 1e6;
/// The largest --memory-limit, 16 TiB in MiB: its bytes fit in a usize.
const MAX_MEMORY_MIB: u64 = 1 << 24;
/// The most --threads: more would only be spawn failures.
const MAX_THREADS: usize = 1024;

fn usage(msg: impl std::fmt::Display) -> u8 {
    err!("shakedown check: {msg}");
    exit::USAGE
}

pub fn run(args: CheckArgs) -> u8 {
    let Some(model) = Checker::parse(&args.model) else {
        let names: Vec<&str> = Checker::ALL.iter().map(|m| m.name()).collect();
        return usage(format!(
            "--model {:?} is not a model; choose one of {}",
            args.model,
            names.join(", ")
        ));
    };
    let model = match checkers::txn::Models::parse(&args.consistency_models) {
        Ok(m) => model.with_consistency_models(m),
        Err(e) => return usage(format!("--consistency-models: {e}")),
    };
    let Some(format) = Format::parse(&args.format) else {
        return usage(format!(
            "--format {:?}: choose auto, jsonl, edn or jepsen-log",
            args.format
        ));
    };
    let init: Value = match serde_json::from_str(&args.init) {
        Ok(v) => v,
        Err(e) => return usage(format!("--init {:?} is not JSON: {e}", clip(&args.init))),
    };
    if !(args.time_limit.is_finite() && args.time_limit > 0.0 && args.time_limit <= MAX_TIME_LIMIT)
    {
        return usage(format!(
            "--time-limit {}: a positive number of seconds, at most {MAX_TIME_LIMIT}, is needed",
            args.time_limit
        ));
    }
    let memory_limit = match args.memory_limit {
        None => default_memory_limit(),
        Some(m) if (1..=MAX_MEMORY_MIB).contains(&m) => (m as usize) << 20,
        Some(m) => {
            return usage(format!(
                "--memory-limit {m}: a number of MiB from 1 to {MAX_MEMORY_MIB} is needed"
            ))
        }
    };
    if args.threads > MAX_THREADS {
        return usage(format!(
            "--threads {}: at most {MAX_THREADS} (0 means one per core)",
            args.threads
        ));
    }
    let opts = Options {
        time_limit: Duration::from_secs_f64(args.time_limit),
        memory_limit,
        threads: args.threads,
    };
    let files = match expand(&args.files) {
        Ok(f) => f,
        Err(m) => return usage(m),
    };

    // Files are independent: check several at once, print in file order.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores.min(files.len()).max(1);
    let per_file = Options {
        threads: if args.threads > 0 {
            args.threads
        } else {
            (cores / workers).max(1)
        },
        memory_limit: opts.memory_limit / workers,
        ..opts
    };
    let ctx = Ctx {
        model,
        format,
        init: &init,
        opts: &per_file,
        json: args.json,
        out: args.out.as_deref(),
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, FileOutcome)>();
    let mut worst = Validity::Valid;
    let mut input_error = false;
    std::thread::scope(|s| {
        let mut spawned = 0;
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, files, ctx) = (&next, &files, &ctx);
            let work = move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                if tx.send((i, check_file(file, ctx))).is_err() {
                    break;
                }
            };
            // A thread that cannot be spawned leaves its files to the others.
            if std::thread::Builder::new().spawn_scoped(s, work).is_ok() {
                spawned += 1;
            }
        }
        if spawned == 0 {
            for (i, file) in files.iter().enumerate() {
                let _ = tx.send((i, check_file(file, &ctx)));
            }
        }
        drop(tx);
        let mut ready = std::collections::BTreeMap::new();
        let mut printed = 0;
        let stdout = std::io::stdout();
        for (i, outcome) in rx {
            ready.insert(i, outcome);
            while let Some(o) = ready.remove(&printed) {
                for line in &o.stderr {
                    err!("{line}");
                }
                if let Some(line) = &o.stdout {
                    let _ = writeln!(stdout.lock(), "{line}");
                }
                if let Some(v) = o.verdict {
                    worst = worst.worst(v);
                }
                input_error |= o.input_error;
                printed += 1;
            }
        }
    });
    if input_error {
        return exit::USAGE;
    }
    worst.exit_code() as u8
}

struct Ctx<'a> {
    model: Checker,
    format: Format,
    init: &'a Value,
    opts: &'a Options,
    json: bool,
    out: Option<&'a Path>,
}

#[derive(Default)]
struct FileOutcome {
    stdout: Option<String>,
    stderr: Vec<String>,
    verdict: Option<Validity>,
    input_error: bool,
}

fn check_file(file: &Path, ctx: &Ctx<'_>) -> FileOutcome {
    let name = file.display().to_string();
    let mut o = FileOutcome::default();
    let fail = |mut o: FileOutcome, msg: String| {
        o.stderr.push(msg);
        o.input_error = true;
        o
    };
    let input = match open(file, ctx.opts.time_limit) {
        Ok(t) => t,
        Err(m) => return fail(o, format!("{name}: error: {m}")),
    };
    if let Checker::Txn(kind, models) = ctx.model {
        if ctx.out.is_none() {
            // The file's size sizes the transactions' vectors up front.
            let size = std::fs::metadata(file)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            return check_txns(&name, input, size, kind, models, ctx, o);
        }
    }
    // The report needs every event (nemesis windows, the timeline).
    let parsed = match read_history_from(&name, input, ctx.format, ctx.out.is_some()) {
        Ok(p) => p,
        Err(e) => return fail(o, e.to_string()),
    };
    for w in &parsed.warnings {
        o.stderr.push(format!("{name}: warning: {w}"));
    }
    let result = match ctx.model.check(ctx.init, &parsed.history, ctx.opts) {
        Ok(r) => r,
        Err(e) => return fail(o, describe_check_error(&name, &parsed, &e)),
    };
    o.verdict = Some(result.valid);
    o.stdout = Some(if ctx.json {
        let mut v = serde_json::to_value(&result).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("file".into(), Value::from(name.clone()));
        }
        v.to_string()
    } else {
        let mut text = format!("{name}: {}", result.summary());
        // Every further failing key with its first witness, one line each.
        if result.failing_keys().len() > 1 {
            let mut seen = std::collections::HashSet::new();
            for a in &result.anomalies {
                let key = a.key.as_ref().map(Value::to_string).unwrap_or_default();
                if seen.insert(key) && seen.len() > 1 {
                    text += &format!("\n{name}: also: {}", a.message);
                }
            }
        }
        text
    });
    if let Some(dir) = ctx.out {
        if let Err(m) = write_out(dir, file, &result, &parsed.history, ctx.model) {
            return fail(o, format!("{name}: error: {m}"));
        }
    }
    // Freeing a million operations takes a while: do it off the answer's
    // path (or here, if no thread can be had).
    let _ = std::thread::Builder::new().spawn(move || drop(parsed));
    o
}

/// Transactional histories in JSON lines go straight to compact
/// transactions (no `Value` per event): a million transactions fit in a
/// fraction of the memory. Other formats take the ordinary path.
fn check_txns(
    name: &str,
    mut input: Box<dyn BufRead>,
    size: Option<u64>,
    kind: checkers::txn::TxnKind,
    models: checkers::txn::Models,
    ctx: &Ctx<'_>,
    mut o: FileOutcome,
) -> FileOutcome {
    let start = std::time::Instant::now();
    let jsonl = match ctx.format {
        Format::Jsonl => true,
        // JSON lines begin `{"`; anything else takes the ordinary reader.
        Format::Auto => match input.fill_buf() {
            Ok(head) => {
                let mut b = head.iter().filter(|b| !b.is_ascii_whitespace());
                b.next() == Some(&b'{') && b.next() == Some(&b'"')
            }
            Err(e) => {
                o.stderr.push(format!("{name}: error: cannot read: {e}"));
                o.input_error = true;
                return o;
            }
        },
        _ => false,
    };
    let txns = if jsonl {
        checkers::txn::read::read_jsonl_sized(name, kind, input, size).map(|r| (r.txns, r.warnings))
    } else {
        read_history_from(name, input, ctx.format, false).and_then(|p| {
            let t = checkers::txn::Txns::from_history(kind, &p.history).map_err(|e| {
                let (line, message) = match e {
                    CheckError::Op { event, message } => {
                        (p.lines.get(event as usize).copied(), message)
                    }
                    CheckError::Init(m) => (None, m),
                };
                checkers::history::ReadError {
                    file: name.to_string(),
                    line,
                    message,
                }
            })?;
            Ok((t, p.warnings))
        })
    };
    let (txns, warnings) = match txns {
        Ok(t) => t,
        Err(e) => {
            o.stderr.push(e.to_string());
            o.input_error = true;
            return o;
        }
    };
    for w in &warnings {
        o.stderr.push(format!("{name}: warning: {w}"));
    }
    let result = checkers::txn::check_txns(kind, models, &txns, start, Some(ctx.opts.time_limit));
    o.verdict = Some(result.valid);
    o.stdout = Some(if ctx.json {
        let mut v = serde_json::to_value(&result).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("file".into(), Value::from(name));
        }
        v.to_string()
    } else {
        format!("{name}: {}", result.summary())
    });
    std::thread::spawn(move || drop(txns));
    o
}

fn describe_check_error(name: &str, parsed: &Parsed, e: &CheckError) -> String {
    // A model's message may quote a value from the history: keep it short.
    let short = |m: &str| {
        if m.len() > 4 * ECHO_CHARS {
            clip(m)
        } else {
            m.to_string()
        }
    };
    match e {
        CheckError::Op { event, message } => match parsed.lines.get(*event as usize) {
            Some(line) => format!("{name}:{line}: {}", short(message)),
            None => format!("{name}: {}", short(message)),
        },
        CheckError::Init(m) => format!("shakedown check: {}", short(m)),
    }
}

/// Files as given; a directory stands for its regular files, sorted.
fn expand(args: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for a in args {
        let p = PathBuf::from(a);
        if a != "-" && p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| format!("{a}: cannot list directory: {e}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && !p
                            .file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with('.'))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!("{a}: directory has no files"));
            }
            out.extend(files);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// Opens a history. Regular files read as they are; a pipe (standard input,
/// a FIFO, `<(...)`) reads only until `limit` has passed, so a writer that
/// never finishes cannot hang the check; devices and sockets are refused.
fn open(file: &Path, limit: Duration) -> Result<Box<dyn BufRead>, String> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let deadline = Instant::now() + limit;
    if file.as_os_str() == "-" {
        // A duplicate of fd 0, read unbuffered by std so that poll sees all.
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        let f = std::fs::File::from(fd);
        return Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            Bounded { f, deadline },
        )));
    }
    // Opening a FIFO blocks until a writer comes: open without waiting, then look.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(|e| format!("cannot read: {e}"))?;
    let kind = f
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .file_type();
    // Reads block again (poll bounds them for pipes).
    // SAFETY: fcntl on a descriptor this function owns, with plain integer flags.
    unsafe {
        use std::os::fd::AsRawFd;
        let fd = f.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    if kind.is_file() {
        return Ok(Box::new(BufReader::with_capacity(1 << 16, f)));
    }
    if kind.is_fifo() {
        return Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            Bounded { f, deadline },
        )));
    }
    let what = if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(format!(
        "{what}: only regular files, pipes and - (standard input) are read"
    ))
}

/// A pipe read with a deadline: each read first waits (poll) for data at
/// most until the deadline, then fails as timed out.
struct Bounded {
    f: std::fs::File,
    deadline: Instant,
}

impl std::io::Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.f.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, owned by this frame.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the input did not end within the time limit",
                ));
            }
            return self.f.read(buf);
        }
    }
}

fn write_out(
    dir: &Path,
    file: &Path,
    result: &checkers::CheckResult,
    history: &checkers::history::History,
    model: Checker,
) -> Result<(), String> {
    let stem = file
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n != "-")
        .unwrap_or("stdin");
    let d = dir.join(stem);
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    let body = serde_json::to_string_pretty(result).map_err(|e| e.to_string())?;
    let p = d.join("results.json");
    std::fs::write(&p, body + "\n").map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    let test = checkers::rundata::TestFile {
        system: Some("history file".into()),
        workload: Some(stem.into()),
        command: Some(format!(
            "shakedown check --model {} {}",
            model.name(),
            crate::cmd::quote::shell_quote(&file.to_string_lossy())
        )),
        ..Default::default()
    };
    reports::render_history(&d, &test, result, history)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Half of the machine's memory, as the issue asks; 2 GiB if unknown.
fn default_memory_limit() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<usize>().ok())
    });
    total_kib.map_or(2 << 30, |k| k * 1024 / 2)
}
