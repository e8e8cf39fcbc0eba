//! Pause, resume, kill and packet loss on a real local cluster, and heal
//! undoing them. Own names and subnet; torn down even on failure.

use harness::control::{Remote, SshNode};
use harness::nemesis;
use harness::testing::TestCluster;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn faults_on_real_processes_and_links() {
    if !TestCluster::possible() {
        harness::testing::skip("the local cluster needs root");
        return;
    }
    let t = TestCluster::up("sdf", 82, 2).expect("cluster up");
    let (addrs, opts) = (t.addrs(), t.ssh_options());
    let mut hosts = t.connect_all().expect("connect");
    let web = "/usr/bin/python3 -m http.server 8200 --bind 0.0.0.0";
    let (pidfile, log) = ("/tmp/web.pid", "/tmp/web.log");
    hosts[0].start_daemon(web, pidfile, log).unwrap();
    hosts[0].wait_for_port(8200, T).unwrap();
    let state = |h: &mut SshNode, pid: u32| {
        h.run(&format!("cut -d' ' -f3 /proc/{pid}/stat"), T)
            .unwrap()
            .trim()
            .to_string()
    };
    let reach = |h: &mut SshNode| {
        h.exec("timeout 1 bash -c 'exec 3<>/dev/tcp/10.82.0.11/8200'", T)
            .unwrap()
            .code
            == 0
    };

    // Pause and resume; pause and heal.
    let pid = nemesis::pause(&mut hosts[0], pidfile).unwrap();
    assert_eq!(state(&mut hosts[0], pid), "T");
    nemesis::resume(&mut hosts[0], pidfile).unwrap();
    assert_ne!(state(&mut hosts[0], pid), "T");
    nemesis::pause(&mut hosts[0], pidfile).unwrap();
    harness::control::all_ok(nemesis::heal(&mut hosts)).unwrap();
    assert_ne!(
        state(&mut hosts[0], pid),
        "T",
        "heal must resume a paused process"
    );

    // Kill: gone; the system restarts it.
    let killed = nemesis::kill(&mut hosts[0], pidfile).unwrap();
    assert_eq!(killed, pid);
    assert_ne!(
        hosts[0]
            .exec(&format!("test -e /proc/{pid}"), T)
            .unwrap()
            .code,
        0
    );
    hosts[0].start_daemon(web, pidfile, log).unwrap();
    hosts[0].wait_for_port(8200, T).unwrap();

    // Total loss from n2 to n1, then heal. The control host is spared.
    assert!(reach(&mut hosts[1]));
    harness::control::all_ok(nemesis::loss(&mut hosts, 1.0, t.cluster.control_ip())).unwrap();
    assert!(!reach(&mut hosts[1]), "packets got through 100% loss");
    SshNode::connect(&addrs[0], &opts).expect("the control host must still reach n1");
    harness::control::all_ok(nemesis::heal(&mut hosts)).unwrap();
    assert!(reach(&mut hosts[1]), "after heal");
}
