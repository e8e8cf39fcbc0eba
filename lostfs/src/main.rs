//! shakedown-lostfs: mount a directory through lostfs, crash it, unmount it.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  shakedown-lostfs mount BACKING MOUNTPOINT --control SOCKET [--max-undo-bytes N] [--writeback-secs S]
      serve in the foreground until unmounted; SOCKET answers crash, flush, status.
      --max-undo-bytes: cap on overwritten synced bytes kept (default 1 GiB; past it
      writes fail with ENOSPC). --writeback-secs: changes older than S seconds become
      durable by themselves, as kernel writeback would (default: never)
  shakedown-lostfs ctl SOCKET crash|flush|status
  shakedown-lostfs unmount MOUNTPOINT
      lazy unmount; succeeds also when nothing is mounted there";

fn usage(msg: &str) -> ExitCode {
    eprintln!("shakedown-lostfs: {msg}\n{USAGE}");
    ExitCode::from(3)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["mount", backing, mountpoint, rest @ ..] => {
            let mut control = None;
            let mut options = lostfs::Options::default();
            let mut it = rest.iter();
            while let Some(flag) = it.next() {
                match (*flag, it.next()) {
                    ("--control", Some(v)) => control = Some(PathBuf::from(v)),
                    ("--max-undo-bytes", Some(v)) => match v.parse() {
                        Ok(n) => options.max_undo_bytes = n,
                        Err(_) => {
                            return usage(&format!("--max-undo-bytes {v:?}: not a byte count"))
                        }
                    },
                    ("--writeback-secs", Some(v)) => match v.parse::<f64>() {
                        Ok(n) if n > 0.0 && n < 1e9 => {
                            options.writeback = Some(std::time::Duration::from_secs_f64(n))
                        }
                        _ => {
                            return usage(&format!(
                                "--writeback-secs {v:?}: not a positive number of seconds"
                            ))
                        }
                    },
                    (f, None) if f.starts_with("--") => {
                        return usage(&format!("{f} needs a value"))
                    }
                    (f, _) => return usage(&format!("unknown argument {f:?}")),
                }
            }
            let Some(control) = control else {
                return usage("mount needs --control SOCKET");
            };
            match lostfs::mount(backing.as_ref(), mountpoint.as_ref(), &control, options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e @ lostfs::Error::Backing { .. }) => usage(&e.to_string()),
                Err(e) => {
                    eprintln!("shakedown-lostfs: {e}");
                    ExitCode::from(4)
                }
            }
        }
        ["ctl", socket, command @ ("crash" | "flush" | "status")] => {
            match lostfs::control(socket.as_ref(), command) {
                Ok(answer) => {
                    println!("{answer}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("shakedown-lostfs: {e}");
                    ExitCode::from(4)
                }
            }
        }
        ["unmount", mountpoint] => match lostfs::unmount(mountpoint.as_ref()) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!("shakedown-lostfs: nothing mounted at {mountpoint}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("shakedown-lostfs: {e}");
                ExitCode::from(4)
            }
        },
        [] => usage("no command"),
        [cmd, ..] => usage(&format!("unknown or incomplete command {cmd:?}")),
    }
}
