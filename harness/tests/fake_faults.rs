//! The fault schedule, its journal and heal on fake nodes (harness::fake):
//! no root, no network, milliseconds. The real-host tests (faults.rs,
//! heal.rs, fault_truth.rs) stay; these pin the schedule's own logic.

use checkers::history::jsonl::parse_line;
use checkers::history::{Event, Process};
use harness::control::{Connector, Remote};
use harness::fake::{FakeCluster, FakeNode, CONTROL_IP};
use harness::lifecycle::heal_all;
use harness::nemesis::{self, Partition};
use harness::runner::Recorder;
use harness::schedule::{ClockMode, Fault, Nemesis, Targets};
use harness::store::RunDir;
use harness::system::{NodeInfo, Noop, System};
use serde_json::Value;
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Instant;

struct Bench {
    cluster: FakeCluster,
    _dir: tempfile::TempDir,
    run: RunDir,
    nem: Nemesis<FakeNode, File>,
}

/// `n` fake nodes running the noop system, and a fault schedule on them.
fn bench(n: usize, partitions: Vec<Partition>) -> Bench {
    let cluster = FakeCluster::new(n).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir {
        path: dir.path().to_path_buf(),
    };
    let mut sessions = cluster.nodes();
    let infos: Vec<NodeInfo> = sessions
        .iter()
        .map(|s| NodeInfo {
            name: s.name().into(),
            ip: cluster.addresses(s).0,
        })
        .collect();
    for (i, s) in sessions.iter_mut().enumerate() {
        Noop.setup(s, i, &infos).unwrap();
    }
    let targets = Targets {
        nodes: Arc::new(infos),
        control: CONTROL_IP,
        system: Arc::new(Noop),
        partitions,
        clock: ClockMode::Date,
        delay: Default::default(),
    };
    let recorder = Arc::new(Recorder::new(run.history().unwrap(), Instant::now()));
    let nem = Nemesis::new(cluster.nodes(), targets, run.journal(), recorder, 7);
    Bench {
        cluster,
        _dir: dir,
        run,
        nem,
    }
}

impl Bench {
    /// The nemesis' events so far.
    fn events(&self) -> Vec<Event> {
        let text = std::fs::read_to_string(self.run.path.join("history.jsonl")).unwrap();
        text.lines()
            .enumerate()
            .map(|(i, l)| parse_line(l, i as u64).unwrap())
            .filter(|e| e.process == Process::Nemesis)
            .collect()
    }

    /// The completion of the last `f` event.
    fn completion(&self, f: &str) -> Event {
        self.events()
            .into_iter()
            .rev()
            .find(|e| e.f == f && e.kind == checkers::history::EventType::Info)
            .unwrap_or_else(|| panic!("no {f} completion in {:?}", self.events()))
    }

    fn journal(&self) -> Vec<Value> {
        as_json(self.run.journal().read().unwrap())
    }

    fn pid(&self, node: &str) -> u32 {
        pid(&self.cluster, node)
    }
}

/// The noop daemon's pid on `node`.
fn pid(cluster: &FakeCluster, node: &str) -> u32 {
    let p = cluster.path(node, "/opt/shakedown/noop/pid");
    let text = std::fs::read_to_string(p).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// The state letter of a local process (R, S, T, Z), None when gone.
fn state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ")?.1;
    after.split(' ').next().map(str::to_string)
}

fn drops(cluster: &FakeCluster, node: &str) -> usize {
    cluster
        .rules(node)
        .iter()
        .filter(|r| r.starts_with("-A SHAKEDOWN -s "))
        .count()
}

/// The nodes a kill or pause hit, from its completion.
fn hit(e: &Event) -> Vec<String> {
    serde_json::from_value(e.value["plan"].clone()).unwrap()
}

#[test]
fn a_partition_is_journaled_first_applied_verified_and_healed() {
    let mut b = bench(3, vec![Partition::IsolateOne]);
    // What the journal held when each iptables-restore ran.
    let seen: Arc<Mutex<Vec<Vec<Value>>>> = Arc::default();
    {
        let (seen, journal) = (seen.clone(), b.run.journal());
        b.cluster.on_exec(move |_, cmd| {
            if cmd.contains("iptables-restore") {
                seen.lock().unwrap().push(as_json(journal.read().unwrap()));
            }
        });
    }
    b.nem.apply(Fault::Partition);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "one iptables-restore per node");
    for journal in seen.iter() {
        assert_eq!(
            journal.last().map(|j| j["fault"].clone()),
            Some(Value::from("partition")),
            "the fault must be journaled before it is applied: {journal:?}"
        );
    }
    let done = b.completion("start-partition");
    assert_eq!(done.error, None, "{done:?}");
    let verified = done.value["verified"].as_object().unwrap();
    assert_eq!(verified.len(), 3, "{done:?}");
    assert!(
        verified
            .values()
            .any(|v| v.as_str().unwrap().contains("probes dropped")),
        "{done:?}"
    );
    // One node cut off from both others; each other node drops it.
    let mut counts: Vec<usize> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| drops(&b.cluster, n))
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 1, 2]);
    for n in ["n1", "n2", "n3"] {
        assert_eq!(
            b.cluster.rules(n).first().map(String::as_str),
            Some("-A INPUT -j SHAKEDOWN"),
            "{n}: INPUT jumps to our chain first"
        );
    }

    b.nem.heal().unwrap();
    for n in ["n1", "n2", "n3"] {
        assert_eq!(drops(&b.cluster, n), 0, "{n}: {:?}", b.cluster.rules(n));
    }
    let healed = b.completion("stop-partition");
    assert_eq!(healed.error, None, "{healed:?}");
    assert!(healed.value["verified"]["n1"]
        .as_str()
        .unwrap()
        .contains("no rule left"));
    assert_eq!(b.journal().last().unwrap()["heal"], Value::Bool(true));
}

#[test]
fn a_kill_is_restarted_by_the_heal() {
    let mut b = bench(3, vec![]);
    let before: Vec<u32> = ["n1", "n2", "n3"].iter().map(|n| b.pid(n)).collect();
    b.nem.apply(Fault::Kill);
    let done = b.completion("kill");
    assert_eq!(done.error, None, "{done:?}");
    let killed = hit(&done);
    assert_eq!(killed.len(), 1, "a minority of 3: {killed:?}");
    let k = killed[0].as_str();
    let i = ["n1", "n2", "n3"].iter().position(|n| *n == k).unwrap();
    assert_eq!(state(before[i]), None, "{k}: the daemon is gone");
    assert!(
        b.cluster.path(k, nemesis::KILLED).exists(),
        "the kill is noted on the node"
    );

    b.nem.heal().unwrap();
    let healed = b.completion("restart");
    assert_eq!(healed.error, None, "{healed:?}");
    assert!(
        healed.value["verified"][k]
            .as_str()
            .unwrap()
            .contains("noop restarted and serving"),
        "{healed:?}"
    );
    let after = b.pid(k);
    assert_ne!(after, before[i]);
    assert!(
        matches!(state(after).as_deref(), Some("S" | "R")),
        "{k} runs again"
    );
    for (j, n) in ["n1", "n2", "n3"].iter().enumerate() {
        if j != i {
            assert_eq!(b.pid(n), before[j], "{n} was not touched");
        }
    }
    assert!(!b.cluster.path(k, nemesis::KILLED).exists());
}

#[test]
fn a_pause_is_resumed_by_the_heal() {
    let mut b = bench(3, vec![]);
    b.nem.apply(Fault::Pause);
    let done = b.completion("pause");
    assert_eq!(done.error, None, "{done:?}");
    let paused = hit(&done);
    let p = paused[0].as_str();
    let pid = b.pid(p);
    assert_eq!(state(pid).as_deref(), Some("T"), "{p} is stopped");
    assert!(b.cluster.path(p, nemesis::PAUSED).exists());

    b.nem.heal().unwrap();
    let healed = b.completion("resume");
    assert_eq!(healed.error, None, "{healed:?}");
    assert!(healed.value["verified"][p]
        .as_str()
        .unwrap()
        .contains("1 resumed"));
    assert!(
        matches!(state(pid).as_deref(), Some("S" | "R")),
        "{p} runs again"
    );
    assert_eq!(b.pid(p), pid, "resumed, not restarted");
}

#[test]
fn after_a_crash_the_journal_says_so_and_heal_undoes_everything() {
    let mut b = bench(3, vec![Partition::MajorityMinority]);
    b.nem.apply(Fault::Partition);
    b.nem.apply(Fault::Pause);
    b.nem.apply(Fault::Kill);
    let paused = hit(&b.completion("pause"));
    let killed = hit(&b.completion("kill"));
    // The control process dies here: no heal was recorded.
    let Bench {
        cluster, run, nem, ..
    } = b;
    drop(nem);
    let b = (cluster, run);
    let journal = as_json(b.1.journal().read().unwrap());
    let faults: Vec<&str> = journal.iter().filter_map(|j| j["fault"].as_str()).collect();
    assert_eq!(faults, ["partition", "pause", "kill"]);
    assert_ne!(journal.last().unwrap()["heal"], Value::Bool(true));
    let cluster = b.0;
    assert!((1..=3).any(|i| drops(&cluster, &format!("n{i}")) > 0));

    // `shakedown heal`: fresh sessions, nothing but the nodes.
    assert_eq!(heal_all(&cluster.addrs(), &cluster).unwrap(), 3);
    for n in ["n1", "n2", "n3"] {
        assert_eq!(drops(&cluster, n), 0, "{n}: {:?}", cluster.rules(n));
        assert!(!cluster.path(n, nemesis::PAUSED).exists());
        assert!(!cluster.path(n, nemesis::KILLED).exists());
        let pid = pid(&cluster, n);
        assert!(
            matches!(state(pid).as_deref(), Some("S" | "R")),
            "{n}: the daemon runs (state {:?}; paused {paused:?}, killed {killed:?})",
            state(pid)
        );
    }
}

#[test]
fn a_fault_whose_verification_fails_is_recorded_as_failed() {
    let mut b = bench(3, vec![Partition::IsolateOne]);
    // n1's rules read back, but let every packet through.
    b.cluster.leak("n1");
    b.nem.apply(Fault::Partition);
    let done = b.completion("start-partition");
    let error = done.error.as_ref().and_then(Value::as_str).unwrap_or("");
    assert!(
        error.contains("n1: ") && error.contains("was not dropped"),
        "{done:?}"
    );
    assert!(done.value["verified"].get("n1").is_none(), "{done:?}");
    assert_eq!(done.value["failed"][0]["node"], "n1");
    let summary = checkers::faults::summarize(&b.events());
    assert!(summary.incomplete(), "{summary:?}");
    assert_eq!((summary.scheduled, summary.applied), (1, 0));
    assert!(
        summary.headline().unwrap().contains("0 of 1"),
        "{summary:?}"
    );
    let journal = b.journal();
    assert_eq!(journal.last().unwrap()["failed"], "start-partition");
    // The heal still undoes what did hold.
    b.nem.heal().unwrap();
    for n in ["n1", "n2", "n3"] {
        assert_eq!(drops(&b.cluster, n), 0);
    }
}

#[test]
fn the_fake_refuses_what_would_touch_this_machine() {
    let cluster = FakeCluster::new(1).unwrap();
    let mut n = cluster.nodes().remove(0);
    let t = std::time::Duration::from_secs(10);
    let out = n.exec("date -s @0", t).unwrap();
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("refused"), "{out:?}");
    assert_eq!(n.run("id -u", t).unwrap().trim(), "0");
    assert!(n.upload(b"x", "/etc/shakedown-fake-test", 0o644).is_err());
    // Paths of the node are under the cluster's directory.
    n.run("echo hi > /run/shakedown-x", t).unwrap();
    assert_eq!(
        std::fs::read_to_string(cluster.path("n1", "/run/shakedown-x")).unwrap(),
        "hi\n"
    );
    assert!(!std::path::Path::new("/run/shakedown-x").exists());
    let dir = cluster.dir().to_path_buf();
    assert!(dir.exists());
    drop(n);
    drop(cluster);
    assert!(!dir.exists(), "removed on drop");
}

/// The journal's entries as the JSON lines on disk.
fn as_json(entries: Vec<checkers::rundata::JournalEntry>) -> Vec<Value> {
    entries.iter().map(|e| e.to_json()).collect()
}
