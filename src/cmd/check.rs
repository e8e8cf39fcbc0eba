//! `shakedown check`: one verdict line per file, exit code of the worst.

use crate::exit;
use checkers::history::{read_history, Format, Parsed};
use checkers::linear::{self, CheckError, Options};
use checkers::model::ModelKind;
use checkers::Validity;
use clap::Args;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MODELS_HELP: &str = "Models:
  register      read and write on a register (per key)
  cas-register  read, write and cas [old,new] on a register (per key)
  kv            per key: read/write/cas, and get/put/append on strings (a missing key gets \"\")
  mutex         acquire and release of a linearizable lock (per key)

Formats (--format auto sniffs): jsonl (shakedown's history.jsonl), edn (Jepsen history.edn,
Knossos data files, Porcupine kv files), jepsen-log (Jepsen text logs).

Semantics: ok took effect; fail did not; info, or an invocation that never completed, may take
effect at any time after its invocation, or never. A read with no result constrains nothing.";

#[derive(Args)]
#[command(after_help = MODELS_HELP)]
pub struct CheckArgs {
    /// The model: register, cas-register, kv or mutex
    #[arg(long, default_value = "cas-register")]
    model: String,
    /// History format: auto, jsonl, edn or jepsen-log
    #[arg(long, default_value = "auto")]
    format: String,
    /// Initial state as JSON, e.g. 0 or "\"\"" (default null)
    #[arg(long, default_value = "null")]
    init: String,
    /// Seconds the search may take per file before answering unknown
    #[arg(long, default_value_t = 60.0)]
    time_limit: f64,
    /// MiB the search may use before answering unknown (default: half the machine's memory)
    #[arg(long)]
    memory_limit: Option<u64>,
    /// Worker threads for independent keys (default: one per core)
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

fn usage(msg: impl std::fmt::Display) -> u8 {
    eprintln!("shakedown check: {msg}");
    exit::USAGE
}

pub fn run(args: CheckArgs) -> u8 {
    let Some(model) = ModelKind::parse(&args.model) else {
        let names: Vec<&str> = ModelKind::ALL.iter().map(|m| m.name()).collect();
        return usage(format!(
            "--model {:?} is not a linearizability model; choose one of {}",
            args.model,
            names.join(", ")
        ));
    };
    let Some(format) = Format::parse(&args.format) else {
        return usage(format!(
            "--format {:?}: choose auto, jsonl, edn or jepsen-log",
            args.format
        ));
    };
    let init: Value = match serde_json::from_str(&args.init) {
        Ok(v) => v,
        Err(e) => return usage(format!("--init {:?} is not JSON: {e}", args.init)),
    };
    if !(args.time_limit.is_finite() && args.time_limit > 0.0) {
        return usage(format!("--time-limit {} must be a positive number of seconds", args.time_limit));
    }
    let opts = Options {
        time_limit: Duration::from_secs_f64(args.time_limit),
        memory_limit: args
            .memory_limit
            .map(|m| (m as usize) << 20)
            .unwrap_or_else(default_memory_limit),
        threads: args.threads,
    };
    let files = match expand(&args.files) {
        Ok(f) => f,
        Err(m) => return usage(m),
    };

    let mut worst = Validity::Valid;
    let mut input_error = false;
    let stdout = std::io::stdout();
    for file in files {
        let name = file.display().to_string();
        let text = match load(&file) {
            Ok(t) => t,
            Err(m) => {
                eprintln!("{name}: error: {m}");
                input_error = true;
                continue;
            }
        };
        let parsed = match read_history(&name, &text, format) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                input_error = true;
                continue;
            }
        };
        drop(text);
        for w in &parsed.warnings {
            eprintln!("{name}: warning: {w}");
        }
        let result = match linear::check(model, &init, &parsed.history, &opts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}", describe_check_error(&name, &parsed, &e));
                input_error = true;
                continue;
            }
        };
        worst = worst.worst(result.valid);
        let mut out = stdout.lock();
        let line = if args.json {
            let mut v = serde_json::to_value(&result).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("file".into(), Value::from(name.clone()));
            }
            v.to_string()
        } else {
            format!("{name}: {}", result.summary())
        };
        let _ = writeln!(out, "{line}");
        if let Some(dir) = &args.out {
            if let Err(m) = write_out(dir, &file, &result) {
                eprintln!("{name}: error: {m}");
                input_error = true;
            }
        }
    }
    if input_error {
        return exit::USAGE;
    }
    worst.exit_code() as u8
}

fn describe_check_error(name: &str, parsed: &Parsed, e: &CheckError) -> String {
    match e {
        CheckError::Op { event, message } => match parsed.lines.get(*event as usize) {
            Some(line) => format!("{name}:{line}: {message}"),
            None => format!("{name}: {message}"),
        },
        CheckError::Init(m) => format!("shakedown check: {m}"),
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

fn load(file: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
    } else {
        bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    }
    String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        format!("line {line}: not valid UTF-8")
    })
}

fn write_out(dir: &Path, file: &Path, result: &checkers::CheckResult) -> Result<(), String> {
    let stem = file
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n != "-")
        .unwrap_or("stdin");
    let d = dir.join(stem);
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    let body = serde_json::to_string_pretty(result).map_err(|e| e.to_string())?;
    let p = d.join("results.json");
    std::fs::write(&p, body + "\n").map_err(|e| format!("cannot write {}: {e}", p.display()))
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
