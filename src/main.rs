//! The `shakedown` binary: parses flags, calls the libraries, maps results to
//! the exit codes of docs/formats.md. No checking logic lives here.

/// Prints a line to stdout. A closed pipe (`shakedown check ... | head`)
/// is not an error: the line is dropped and the command goes on to its exit
/// code. SIGPIPE stays ignored (Rust's default): restoring its default
/// action would let any write to a socket the peer has reset (a killed
/// node's connection, written with `writev`, which cannot ask for
/// MSG_NOSIGNAL) kill the whole run without a word.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// Prints a line to stderr; a closed stderr is not an error either.
macro_rules! err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

mod cmd;

// Reading a history allocates millions of small JSON values; mimalloc makes
// that markedly cheaper than glibc's allocator (scripts/bench shows it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit codes (docs/formats.md).
pub mod exit {
    pub const VALID: u8 = 0;
    pub const INVALID: u8 = 1;
    pub const UNKNOWN: u8 = 2;
    pub const USAGE: u8 = 3;
    pub const INFRA: u8 = 4;
}

#[derive(Parser)]
#[command(
    name = "shakedown",
    version,
    about = "Fault injection for distributed systems, and a fast linearizability checker",
    after_help = "Exit codes: 0 valid, 1 invalid, 2 unknown (a budget ran out), 3 usage or input error, \
                  4 infrastructure error, 130 interrupted."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check histories for linearizability against a model
    Check(cmd::check::CheckArgs),
    /// Local test hosts: up [--nodes N], down, status
    Cluster(cmd::cluster::ClusterArgs),
    /// Undo every partition and pause a run left behind, on every node
    Heal(cmd::heal::HealArgs),
    /// Preflight of each node, one line each
    Doctor(cmd::doctor::DoctorArgs),
    /// Run a system under faults, record the history, check it, write the report
    Test(cmd::test::TestArgs),
    /// Re-check a stored run and render its report again
    Report(cmd::report::ReportArgs),
}

/// Transparent huge pages make every fresh 2 MiB of a growing history cost
/// a 2 MiB zeroing fault; on this machine kind that doubled the time to read
/// a million-operation history. Plain 4 KiB pages are faster for this
/// workload. Failure is harmless (old kernels), so it is ignored.
fn no_huge_pages() {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and only
    // changes this process's memory policy.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    no_huge_pages();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors; every real usage error is exit 3, never clap's 2.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::VALID
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = match cli.command {
        Command::Check(args) => cmd::check::run(args),
        Command::Cluster(args) => cmd::cluster::run(args),
        Command::Heal(args) => cmd::heal::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Test(args) => cmd::test::run(args),
        Command::Report(args) => cmd::report::run(args),
    };
    ExitCode::from(code)
}
