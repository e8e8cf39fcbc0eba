//! The ssh2 control layer against a real three-host local cluster: exec on
//! every node, upload a binary and run it, download, a real daemon killed,
//! paused and resumed, errors that name node and command, and host keys
//! that are checked. Own names and subnet; torn down even on failure.

use harness::control::{Remote, SshNode, SshOptions};
use harness::doctor;
use harness::nemesis::{self, Grudge};
use harness::nodes;
use harness::testing::TestCluster;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

#[test]
fn ssh2_drives_real_hosts() {
    if !TestCluster::possible() {
        harness::testing::skip("the local cluster needs root");
        return;
    }
    let t = TestCluster::up("sdc", 79, 3).expect("cluster up");
    let opts = t.ssh_options();
    let addrs = t.addrs();
    assert_eq!(
        addrs.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["sdcn1", "sdcn2", "sdcn3"]
    );
    let mut hosts = t.connect_all().expect("connect");

    // Commands on every node, exit codes and stderr.
    for (i, h) in hosts.iter_mut().enumerate() {
        assert_eq!(
            h.run("hostname", T).unwrap().trim(),
            format!("sdcn{}", i + 1)
        );
        let out = h.exec("echo oops >&2; exit 3", T).unwrap();
        assert_eq!((out.code, out.stderr.trim()), (3, "oops"));
    }
    let e = hosts[0]
        .run("echo 'no such thing' >&2; false", T)
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("sdcn1: exited with 1"), "{msg}");
    assert!(msg.contains("no such thing"), "{msg}");

    // Upload a real binary with its mode and run it; download what it wrote.
    let printf = std::fs::read("/usr/bin/printf").unwrap();
    hosts[1].run("mkdir -p /opt/shakedown", T).unwrap();
    hosts[1]
        .upload(&printf, "/opt/shakedown/say", 0o755)
        .unwrap();
    hosts[1]
        .run("/opt/shakedown/say 'hello %s' n2 > /tmp/said", T)
        .unwrap();
    assert_eq!(hosts[1].download("/tmp/said").unwrap(), b"hello n2");
    assert_ne!(
        hosts[0].exec("test -e /opt/shakedown/say", T).unwrap().code,
        0,
        "n1 sees n2's upload"
    );

    // A real daemon: started, listening, paused, resumed, killed.
    let h = &mut hosts[2];
    let pid = h
        .start_daemon(
            "/usr/bin/python3 -m http.server 8123 --bind 0.0.0.0",
            "/tmp/web.pid",
            "/tmp/web.log",
        )
        .unwrap();
    assert!(pid > 1);
    h.wait_for_port(8123, T).unwrap();
    let state = |h: &mut SshNode| {
        h.run(&format!("cut -d' ' -f3 /proc/{pid}/stat"), T)
            .unwrap()
            .trim()
            .to_string()
    };
    // A signal is delivered asynchronously: poll the state with a deadline.
    let until = |h: &mut SshNode, want_stopped: bool| {
        let deadline = Instant::now() + T;
        while (state(h) == "T") != want_stopped {
            assert!(
                Instant::now() < deadline,
                "state never became {want_stopped}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    h.signal("/tmp/web.pid", "STOP").unwrap();
    until(h, true);
    h.signal("/tmp/web.pid", "CONT").unwrap();
    until(h, false);
    h.signal("/tmp/web.pid", "KILL").unwrap();
    let deadline = Instant::now() + T;
    while h.exec(&format!("test -e /proc/{pid}"), T).unwrap().code == 0 {
        assert!(Instant::now() < deadline, "daemon survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A command that outlives its timeout is an error, not a hang.
    let started = Instant::now();
    let e = hosts[0]
        .exec("sleep 5", Duration::from_millis(500))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4), "{e}");

    // Host keys are checked: an empty known_hosts refuses, unless told to accept.
    let empty = t.cluster.state_dir.join("empty_known_hosts");
    let strict = SshOptions {
        known_hosts: empty.clone(),
        ..opts.clone()
    };
    let e = SshNode::connect(&addrs[0], &strict)
        .err()
        .expect("unknown host key refused");
    assert!(e.to_string().contains("unknown host key"), "{e}");
    let lenient = SshOptions {
        accept_new_host_keys: true,
        ..strict
    };
    SshNode::connect(&addrs[0], &lenient).expect("accepted");
    assert!(std::fs::read_to_string(&empty)
        .unwrap()
        .contains("ssh-ed25519"));
    SshNode::connect(
        &addrs[0],
        &SshOptions {
            accept_new_host_keys: false,
            ..lenient
        },
    )
    .expect("now known");

    // Doctor: every node ready; then a port taken on one of them.
    let needs = doctor::Needs {
        commands: [harness::needs::NODE, harness::needs::IPTABLES].concat(),
        iptables: true,
        ports: vec![2379, 2380],
        clock_offset: true,
    };
    let reports = doctor::check_all(&addrs, &opts, &needs);
    for r in &reports {
        assert!(r.ok(), "{}", r.line());
        assert!(
            r.line()
                .contains("root; 13 commands; iptables; ports 2379 2380 free"),
            "{}",
            r.line()
        );
    }
    hosts[1]
        .start_daemon(
            "/usr/bin/python3 -m http.server 2379 --bind 0.0.0.0",
            "/tmp/busy.pid",
            "/tmp/busy.log",
        )
        .unwrap();
    hosts[1].wait_for_port(2379, T).unwrap();
    let reports = doctor::check_all(&addrs, &opts, &needs);
    assert!(reports[0].ok() && reports[2].ok());
    assert!(!reports[1].ok());
    assert!(
        reports[1]
            .line()
            .starts_with("sdcn2  FAIL  port 2379 in use"),
        "{}",
        reports[1].line()
    );
    // An unreachable node says so, with what to check.
    let gone = nodes::parse("test", "root@10.79.0.99:22  # ghost\n").unwrap();
    let quick = SshOptions {
        connect_timeout: Duration::from_millis(300),
        ..opts.clone()
    };
    let r = doctor::check(&gone[0], &quick, &doctor::Needs::default());
    assert!(
        r.line()
            .starts_with("ghost  FAIL  cannot reach root@10.79.0.99:22 over SSH"),
        "{}",
        r.line()
    );

    // A partition: n1 cut off. A real TCP connection from n3 to n1 fails,
    // n2 still reaches n3, the control host still reaches n1; heal undoes it.
    let ip_of = |name: &str| {
        addrs
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.host.parse().ok())
    };
    let mut grudge = Grudge::new();
    grudge.insert(
        "sdcn1".into(),
        ["sdcn2".to_string(), "sdcn3".to_string()].into(),
    );
    grudge.insert("sdcn2".into(), ["sdcn1".to_string()].into());
    grudge.insert("sdcn3".into(), ["sdcn1".to_string()].into());
    let connect = |h: &mut SshNode, to: &str| {
        h.exec(&format!("timeout 1 bash -c 'exec 3<>/dev/tcp/{to}/22'"), T)
            .unwrap()
            .code
            == 0
    };
    assert!(connect(&mut hosts[2], "10.79.0.11"), "before the partition");
    harness::control::all_ok(nemesis::partition(
        &mut hosts,
        &ip_of,
        &grudge,
        t.cluster.control_ip(),
    ))
    .unwrap();
    assert!(
        !connect(&mut hosts[2], "10.79.0.11"),
        "n3 reached n1 through the partition"
    );
    assert!(connect(&mut hosts[1], "10.79.0.13"), "n2 lost n3");
    SshNode::connect(&addrs[0], &opts).expect("the control host must still reach n1");
    let rules = hosts[0].run("iptables -S SHAKEDOWN", T).unwrap();
    assert!(
        rules.contains("-A SHAKEDOWN -s 10.79.0.12/32 -j DROP"),
        "{rules}"
    );
    harness::control::all_ok(nemesis::heal(&mut hosts)).unwrap();
    harness::control::all_ok(nemesis::heal(&mut hosts)).unwrap();
    assert!(connect(&mut hosts[2], "10.79.0.11"), "after heal");
    assert_eq!(
        hosts[0].run("iptables -S SHAKEDOWN", T).unwrap().trim(),
        "-N SHAKEDOWN"
    );
    let host_rules = std::process::Command::new("iptables")
        .arg("-S")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&host_rules).contains("SHAKEDOWN"),
        "rules on the control host"
    );
}
