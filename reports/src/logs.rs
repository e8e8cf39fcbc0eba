//! Node logs in the report: for each fetched log, the lines written near a
//! moment (the failing operation's time), found by the timestamps the
//! systems print; the last lines when there is no such moment or the log's
//! lines carry no timestamp this module reads.

use serde::Serialize;
use std::path::Path;

/// Lines shown per log.
const LINES: usize = 40;
/// Bytes of a node log read (its beginning, if it is longer).
const MAX_LOG_BYTES: u64 = 256 << 20;

#[derive(Clone, Debug, Serialize)]
pub struct LogExcerpt {
    pub node: String,
    /// The log's path relative to the run directory.
    pub file: String,
    /// What the lines are: "near 12.345 s" or "the last lines".
    pub what: String,
    pub lines: Vec<String>,
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Milliseconds of "HH:MM:SS[.,fff...]" at the start of `s`.
fn clock_ms(s: &str) -> Option<i64> {
    let (h, m, sec) = (num(s.get(0..2)?)?, num(s.get(3..5)?)?, num(s.get(6..8)?)?);
    if s.get(2..3)? != ":" || s.get(5..6)? != ":" {
        return None;
    }
    let frac: String = match s.get(8..9) {
        Some("." | ",") => s[9..].chars().take_while(char::is_ascii_digit).collect(),
        _ => String::new(),
    };
    let ms = num(&format!("{frac:0<3}")[..3]).unwrap_or(0);
    Some(((h * 60 + m) * 60 + sec) * 1000 + ms)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Unix milliseconds of the first timestamp in a log line, read as UTC:
/// "2026-11-23 18:05:16.610850" (etcd, PostgreSQL), "2026-11-23T18:05:16.610Z"
/// (JSON loggers), "2026-11-23 18:05:16,610" (ZooKeeper), "23 Nov 2026
/// 18:05:16.610" (Redis). Only the first 80 bytes are searched.
pub fn line_time(line: &str) -> Option<i64> {
    let head = &line[..line.floor_char_boundary(80)];
    for (i, _) in head.char_indices() {
        let s = &head[i..];
        // ISO: YYYY-MM-DD[T ]HH:MM:SS
        if let (Some(y), Some(m), Some(d)) = (
            s.get(0..4).and_then(num),
            s.get(5..7).and_then(num),
            s.get(8..10).and_then(num),
        ) {
            if s.get(4..5) == Some("-")
                && s.get(7..8) == Some("-")
                && matches!(s.get(10..11), Some("T" | " "))
            {
                if let Some(ms) = s.get(11..).and_then(clock_ms) {
                    return Some(days_from_civil(y, m, d) * 86_400_000 + ms);
                }
            }
        }
        // Redis: DD Mon YYYY HH:MM:SS
        if let (Some(d), Some(mon), Some(y)) = (
            s.get(0..2).and_then(num),
            s.get(3..6)
                .and_then(|m| MONTHS.iter().position(|x| *x == m)),
            s.get(7..11).and_then(num),
        ) {
            if s.get(2..3) == Some(" ") && s.get(6..7) == Some(" ") && s.get(11..12) == Some(" ") {
                if let Some(ms) = s.get(12..).and_then(clock_ms) {
                    return Some(days_from_civil(y, mon as i64 + 1, d) * 86_400_000 + ms);
                }
            }
        }
    }
    None
}

/// Up to LINES lines of `text` around unix ms `at` (a quarter before, the
/// rest after), or the last LINES lines; and which it is.
pub fn excerpt(text: &str, at: Option<(i64, f64)>) -> (Vec<String>, String) {
    let lines: Vec<&str> = text.lines().collect();
    let cut = |l: &&str| l.chars().take(400).collect::<String>();
    if let Some((ms, secs)) = at {
        // The first line stamped at or after the moment.
        let mut seen_stamp = false;
        let hit = lines.iter().position(|l| match line_time(l) {
            Some(t) => {
                seen_stamp = true;
                t >= ms
            }
            None => false,
        });
        if let Some(i) = hit {
            let from = i.saturating_sub(LINES / 4);
            let to = (from + LINES).min(lines.len());
            return (
                lines[from..to].iter().map(cut).collect(),
                format!("lines {}–{} (written near {secs:.3} s)", from + 1, to),
            );
        }
        if seen_stamp {
            // Everything was written before the moment: the node's last words.
            let from = lines.len().saturating_sub(LINES);
            return (
                lines[from..].iter().map(cut).collect(),
                format!("the last lines (nothing written after {secs:.3} s)"),
            );
        }
    }
    let from = lines.len().saturating_sub(LINES);
    (
        lines[from..].iter().map(cut).collect(),
        "the last lines".into(),
    )
}

/// Each fetched log of the run (`nodes/<node>/<file>`), near `at`: the
/// history's time in seconds with the history's origin in unix ms.
pub fn node_logs(run_dir: &Path, at: Option<(i64, f64)>) -> Vec<LogExcerpt> {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let nodes = run_dir.join("nodes");
    if !crate::files::is_real_dir(&nodes) {
        return out;
    }
    let Ok(rd) = std::fs::read_dir(nodes) else {
        return out;
    };
    let mut dirs: Vec<_> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| crate::files::is_real_dir(p))
        .collect();
    dirs.sort();
    for d in dirs {
        let mut files: Vec<_> = std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            // Only regular files inside the run: a symlink or a FIFO is skipped.
            let Ok(bytes) = crate::files::read_regular(&f, MAX_LOG_BYTES) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let (lines, what) = excerpt(&text, at);
            out.push(LogExcerpt {
                node: name(&d),
                file: format!("nodes/{}/{}", name(&d), name(&f)),
                what,
                lines,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_of_each_system() {
        let t = days_from_civil(2026, 11, 23) * 86_400_000 + ((18 * 60 + 5) * 60 + 16) * 1000;
        for line in [
            "2026-11-23 18:05:16.610850 I | etcdmain: etcd Version: 3.4.23",
            "{\"level\":\"info\",\"ts\":\"2026-11-23T18:05:16.610Z\",\"msg\":\"x\"}",
            "2026-11-23 18:05:16,610 [myid:1] - INFO  [main:QuorumPeer@1]",
            "2026-11-23 18:05:16.610 UTC [123] LOG:  database system is ready",
            "4242:M 23 Nov 2026 18:05:16.610 * Ready to accept connections",
        ] {
            assert_eq!(line_time(line), Some(t + 610), "{line}");
        }
        assert_eq!(line_time("no time here 12:00"), None);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn the_lines_near_a_moment() {
        let text: String = (0..100)
            .map(|i| format!("2026-01-01 00:00:{:02}.000 line {i}\n", i % 60))
            .collect();
        let base = days_from_civil(2026, 1, 1) * 86_400_000;
        let (lines, what) = excerpt(&text, Some((base + 30_000, 12.0)));
        assert_eq!(lines[LINES / 4], "2026-01-01 00:00:30.000 line 30");
        assert_eq!(lines.len(), LINES);
        assert!(what.contains("near 12.000 s"), "{what}");
        let (lines, what) = excerpt("a\nb\n", Some((base, 1.0)));
        assert_eq!((lines.len(), what.as_str()), (2, "the last lines"));
    }
}
