//! Pidfiles that name one process, not one number.
//!
//! A pidfile holds `PID START`: the pid and the process's start time (field
//! 22 of `/proc/PID/stat`, clock ticks since boot). Pids are reused, and
//! soon: Debian's default `pid_max` is 32768, and a long test run on a
//! busy machine wraps it in minutes. A pid read back from a file is only
//! signalled when the process with that pid started at the recorded time;
//! otherwise the daemon is gone and the number may now belong to anything:
//! another node's daemon (local test hosts share one pid namespace), a
//! thread of the control process itself.
//!
//! Everything here is shell text run on a node (POSIX sh, Linux `/proc`).

/// Shell: prints the start time of the process `pid` (a shell word, e.g.
/// `$p`), nothing when there is no such process. Everything up to the last
/// `") "` is the pid and the command's name, which may hold spaces.
pub fn start_time(pid: &str) -> String {
    format!("sed 's/^.*) //' /proc/{pid}/stat 2>/dev/null | cut -d' ' -f20")
}

/// Shell: writes the last background job's pid (`$!`) and start time to
/// `pidfile`.
pub fn record(pidfile: &str) -> String {
    format!("echo \"$! $({})\" > {pidfile}", start_time("$!"))
}

/// Shell: true while process `$p` is the one that started at `$s`.
pub fn still_same() -> String {
    format!(
        "{{ [ -n \"$s\" ] && [ \"$({})\" = \"$s\" ]; }}",
        start_time("$p")
    )
}

/// Shell: sets `p` and `s` to the pid and start time in `pidfile` when that
/// process still runs; `p` is empty otherwise (no file, an old or torn
/// file, a dead process, or its pid now used by another).
pub fn live(pidfile: &str) -> String {
    format!(
        "p=; s=; if [ -f {pidfile} ]; then read -r p s < {pidfile}; fi; \
         case \"$p\" in ''|*[!0-9]*) p= ;; *) {} || p= ;; esac",
        still_same()
    )
}

/// Shell: like [`live`], but exits 3 with a message when the process no
/// longer runs (nothing after it must signal a pid that may be another's).
pub fn live_or_exit(pidfile: &str) -> String {
    format!(
        "{}; [ -n \"$p\" ] || {{ echo 'not running: {pidfile} names no live process' >&2; exit 3; }}",
        live(pidfile)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(script: &str) -> String {
        let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn a_live_process_is_found_and_a_reused_or_dead_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pid").display().to_string();
        let started = sh(&format!(
            "sleep 30 >/dev/null 2>&1 & {}; echo $!",
            record(&f)
        ));
        let pid: u32 = started.parse().unwrap();
        let line = std::fs::read_to_string(&f).unwrap();
        let (p, s) = line.trim().split_once(' ').unwrap();
        assert_eq!(p, started);
        assert!(s.parse::<u64>().unwrap() > 0, "{line}");
        assert_eq!(
            sh(&format!("{}; echo \"[$p]\"", live(&f))),
            format!("[{pid}]")
        );

        // The same number with another start time: someone else's process.
        std::fs::write(&f, format!("{pid} 1\n")).unwrap();
        assert_eq!(sh(&format!("{}; echo \"[$p]\"", live(&f))), "[]");
        // Old files with a bare pid, garbage, nothing.
        for text in [
            format!("{pid}\n"),
            "x y\n".into(),
            "../1 5\n".into(),
            String::new(),
        ] {
            std::fs::write(&f, text).unwrap();
            assert_eq!(sh(&format!("{}; echo \"[$p]\"", live(&f))), "[]");
        }
        std::fs::write(&f, &line).unwrap();
        // SAFETY: plain kill(2) of the sleep started above.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let gone = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            sh(&format!("{}; echo \"[$p]\"", live(&f))) == "[]"
        });
        assert!(gone, "a dead process still counts as running");
        std::fs::remove_file(&f).unwrap();
        assert_eq!(sh(&format!("{}; echo \"[$p]\"", live(&f))), "[]");
        // Nothing after live_or_exit runs for a process that is gone.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{}; echo reached", live_or_exit(&f)))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains("names no live process"));
    }

    #[test]
    fn names_with_spaces_and_parentheses_do_not_shift_the_fields() {
        // A process whose name is "a) b c": field 22 is still the start time.
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("a) b c");
        std::os::unix::fs::symlink("/bin/sleep", &exe).unwrap();
        let f = dir.path().join("pid").display().to_string();
        let pid = sh(&format!(
            "{} 30 >/dev/null 2>&1 & {}; echo $!",
            crate::control::shell_quote(&exe.display().to_string()),
            record(&f)
        ));
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        assert!(stat.contains("(a) b c)"), "{stat}");
        let after = &stat[stat.rfind(") ").unwrap() + 2..];
        let expected = after.split(' ').nth(19).unwrap();
        let line = std::fs::read_to_string(&f).unwrap();
        assert_eq!(line.trim(), format!("{pid} {expected}"));
        assert_eq!(
            sh(&format!("{}; echo \"[$p]\"", live(&f))),
            format!("[{pid}]")
        );
        // SAFETY: plain kill(2) of the sleep started above.
        unsafe { libc::kill(pid.parse::<i32>().unwrap(), libc::SIGKILL) };
    }
}
