//! Helpers shared by the tests that run `shakedown test` on a test cluster.

use harness::testing::TestCluster;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[allow(dead_code)]
/// `shakedown test ARGS` on `t`'s nodes with runs in `store`: the exit code,
/// stdout and stderr together, and the latest run's results.json (or null).
pub fn run_test(t: &TestCluster, store: &Path, args: &[&str]) -> (Option<i32>, String, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .arg("test")
        .args(["--store", &store.display().to_string()])
        .args(["--nodes-file", &t.up.nodes_file.display().to_string()])
        .args(["--ssh-key", &t.up.key.display().to_string()])
        .args(["--known-hosts", &t.up.known_hosts.display().to_string()])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let results = std::fs::read_to_string(store.join("latest/results.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), text, results)
}

/// Whether the latest run's history has a granted acquire whose line
/// contains `with` (e.g. a token or a lease).
#[allow(dead_code)]
pub fn granted_with(store: &Path, with: &str) -> bool {
    std::fs::read_to_string(store.join("latest/history.jsonl"))
        .unwrap()
        .lines()
        .any(|l| l.contains(r#""type":"ok","f":"acquire""#) && l.contains(with))
}

/// Fails, naming them, when processes matching `pattern` still run after a
/// test's runs (a system's teardown must stop its daemons).
#[allow(dead_code)]
pub fn assert_none_running(pattern: &str) {
    let left = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "still running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

/// What a headless Chromium saw of a page opened from file://.
#[allow(dead_code)]
pub struct Browser {
    /// The DOM after load.
    pub dom: String,
    /// Console errors and CSP refusals.
    pub console_errors: Vec<String>,
    /// URLs the page asked for (the browser's own background services excluded).
    pub page_requests: Vec<String>,
    pub screenshot: Vec<u8>,
}

/// Whether Debian's chromium is installed (scripts/test installs it).
#[allow(dead_code)]
pub fn have_browser() -> bool {
    Path::new("/usr/bin/chromium").exists()
}

/// Opens `page` in headless Chromium inside an empty network namespace
/// (only a loopback that is down: nothing can leave this machine), with the
/// browser's background services off.
#[allow(dead_code)]
pub fn open_in_browser(page: &Path) -> Browser {
    open_in_browser_at(page, "")
}

/// [`open_in_browser`] with an address fragment (`#p=3&f=read`).
#[allow(dead_code)]
pub fn open_in_browser_at(page: &Path, fragment: &str) -> Browser {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "file://{}{fragment}",
        std::fs::canonicalize(page).unwrap().display()
    );
    let shot = dir.path().join("shot.png");
    let net = dir.path().join("net.json");
    let flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--no-pings",
        "--disable-breakpad",
        "--metrics-recording-only",
        "--window-size=1200,900",
    ];
    let chromium = |extra: &[String]| {
        Command::new("unshare")
            .args(["--net", "--", "timeout", "60", "chromium"])
            .args(flags)
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let out = chromium(&[
        "--enable-logging=stderr".into(),
        "--v=0".into(),
        format!("--log-net-log={}", net.display()),
        format!("--screenshot={}", shot.display()),
    ]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let console_errors = log
        .lines()
        // The page's own console lines (Chromium's UI pages log some too).
        .filter(|l| {
            (l.contains("CONSOLE") && l.contains("file://"))
                || l.contains("Refused")
                || l.contains("Uncaught")
        })
        .map(String::from)
        .collect();
    let netlog: Value = serde_json::from_str(&std::fs::read_to_string(&net).unwrap_or_default())
        .unwrap_or(Value::Null);
    let own = ["google.com/", "googleapis.com/", "gvt1.com/"];
    let mut page_requests: Vec<String> = netlog["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["params"]["url"].as_str())
        .filter(|u| {
            !u.starts_with("file:") && !u.starts_with("data:") && !own.iter().any(|o| u.contains(o))
        })
        .map(String::from)
        .collect();
    page_requests.dedup();
    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom".into()]).stdout).into_owned();
    Browser {
        dom,
        console_errors,
        page_requests,
        screenshot: std::fs::read(&shot).unwrap_or_default(),
    }
}

/// Runs `run(seed)` for each seed until one exits 1 (invalid); every other
/// run must exit 0. That run's output and results. For anomalies whose
/// timing decides whether a short run sees them.
#[allow(dead_code)]
pub fn first_invalid(
    seeds: &[&str],
    mut run: impl FnMut(&str) -> (Option<i32>, String, Value),
) -> Option<(String, Value)> {
    for seed in seeds {
        let (code, out, results) = run(seed);
        if code == Some(1) {
            return Some((out, results));
        }
        assert_eq!(code, Some(0), "{out}");
    }
    None
}
