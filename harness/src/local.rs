//! A local cluster: N test hosts in network namespaces on this machine.
//!
//! Each host nK has its own network namespace on a bridge the cluster owns,
//! its own IP, hostname, PID namespace (its sshd is PID 1), private
//! copy-on-write filesystem (overlays on /etc /opt /var /home /srv /usr, a
//! fresh /root, tmpfs /tmp /run /dev/shm), its own sshd and host key, and
//! no right to set the clock (CAP_SYS_TIME is dropped: the clock is not per
//! namespace). Nothing routes out of the bridge: no default route, no NAT.
//!
//! `up` is idempotent (a healthy cluster is kept; anything else is rebuilt)
//! and `down` removes every namespace, link, process, directory and sysctl
//! change the cluster made, and nothing else.
//!
//! ```no_run
//! use harness::local::LocalCluster;
//! let c = LocalCluster::new(3);
//! let up = c.up().unwrap();
//! println!("nodes file: {}", up.nodes_file.display());
//! c.down().unwrap();
//! ```

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod bridge_filter;

/// Directories each host sees through its own copy-on-write overlay.
const OVERLAID: [&str; 6] = ["etc", "opt", "var", "home", "srv", "usr"];
/// How long `up` waits for every sshd to answer.
const UP_TIMEOUT: Duration = Duration::from_secs(10);

/// A step of setting up or tearing down that failed, with the command and
/// the tail of its output.
#[derive(Debug, thiserror::Error)]
#[error("{step}: `{command}` {status}{}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
pub struct ClusterError {
    pub step: String,
    pub command: String,
    pub status: String,
    pub stderr: String,
}

impl ClusterError {
    fn new(step: &str, command: &str, status: impl Into<String>, stderr: &str) -> Self {
        let tail: Vec<&str> = stderr.trim().lines().rev().take(3).collect();
        ClusterError {
            step: step.into(),
            command: command.into(),
            status: status.into(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
        }
    }
}

/// Where a cluster lives. [`LocalCluster::new`] gives the default one; tests
/// use another prefix and subnet so that they never touch a user's cluster.
#[derive(Clone, Debug)]
pub struct LocalCluster {
    pub nodes: usize,
    /// Prefix of namespace and link names: "" gives n1, n2, ... and sdbr0.
    pub prefix: String,
    /// The first three octets of the /24 the hosts live on.
    pub subnet: [u8; 3],
    /// Keys, configs, known_hosts and the nodes file.
    pub state_dir: PathBuf,
    /// The hosts' overlay upper and work directories (outside every overlaid path).
    pub overlay_dir: PathBuf,
}

/// What `up` made, for the user and the harness.
#[derive(Clone, Debug)]
pub struct Up {
    pub nodes_file: PathBuf,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// Whether a healthy cluster was already there.
    pub reused: bool,
    pub elapsed: Duration,
}

/// One host's state, for `status`.
#[derive(Clone, Debug)]
pub struct HostStatus {
    pub name: String,
    pub ip: Ipv4Addr,
    pub namespace: bool,
    pub processes: usize,
    pub ssh: bool,
}

fn run(step: &str, cmd: &[&str]) -> Result<String, ClusterError> {
    let line = cmd.join(" ");
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ClusterError::new(step, &line, format!("could not start: {e}"), ""))?;
    if !out.status.success() {
        let status = match out.status.code() {
            Some(c) => format!("exited with {c}"),
            None => "was killed".into(),
        };
        return Err(ClusterError::new(
            step,
            &line,
            status,
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes an ed25519 key pair at `path` (and `path`.pub) without a passphrase.
fn keygen(step: &str, path: &Path, comment: &str) -> Result<(), ClusterError> {
    let path = path.display().to_string();
    run(
        step,
        &[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            comment,
            "-f",
            &path,
        ],
    )
    .map(|_| ())
}

fn io_err(step: &str, path: &Path, e: std::io::Error) -> ClusterError {
    ClusterError::new(
        step,
        &format!("write {}", path.display()),
        e.to_string(),
        "",
    )
}

fn write(step: &str, path: &Path, body: &str) -> Result<(), ClusterError> {
    std::fs::write(path, body).map_err(|e| io_err(step, path, e))
}

impl LocalCluster {
    /// The default cluster: n1..nN on 10.77.0.0/24, state in /var/lib/shakedown/cluster.
    pub fn new(nodes: usize) -> Self {
        LocalCluster {
            nodes,
            prefix: String::new(),
            subnet: [10, 77, 0],
            state_dir: PathBuf::from("/var/lib/shakedown/cluster"),
            overlay_dir: PathBuf::from("/mnt/shakedown/cluster"),
        }
    }

    pub fn name(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    pub fn ip(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 10 + i as u8)
    }

    /// The control host's address on the bridge.
    pub fn control_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    pub fn bridge(&self) -> String {
        format!("{}sdbr0", self.prefix)
    }

    fn veth(&self, i: usize) -> String {
        format!("{}sd-n{i}", self.prefix)
    }

    pub fn nodes_file(&self) -> PathBuf {
        self.state_dir.join("nodes")
    }

    pub fn key(&self) -> PathBuf {
        self.state_dir.join("id_ed25519")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.state_dir.join("known_hosts")
    }

    /// Namespaces of this cluster that exist now (including leftovers beyond `nodes`).
    fn namespaces(&self) -> Vec<String> {
        let list = run("list namespaces", &["ip", "netns", "list"]).unwrap_or_default();
        let ours = |n: &str| {
            n.strip_prefix(&self.prefix)
                .and_then(|r| r.strip_prefix('n'))
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        };
        list.lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| ours(n))
            .map(str::to_string)
            .collect()
    }

    fn pids(ns: &str) -> Vec<i32> {
        run("list processes", &["ip", "netns", "pids", ns])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn ssh_answers(ip: Ipv4Addr, timeout: Duration) -> bool {
        TcpStream::connect_timeout(&SocketAddr::from((ip, 22)), timeout).is_ok()
    }

    /// One line per host.
    pub fn status(&self) -> Vec<HostStatus> {
        let existing = self.namespaces();
        (1..=self.nodes)
            .map(|i| {
                let name = self.name(i);
                let namespace = existing.contains(&name);
                let processes = if namespace {
                    Self::pids(&name).len()
                } else {
                    0
                };
                HostStatus {
                    ip: self.ip(i),
                    ssh: namespace && Self::ssh_answers(self.ip(i), Duration::from_millis(300)),
                    name,
                    namespace,
                    processes,
                }
            })
            .collect()
    }

    fn healthy(&self) -> bool {
        self.nodes_file().exists()
            && self.namespaces().len() == self.nodes
            && self.status().iter().all(|h| h.ssh)
    }

    /// Brings the cluster up, or keeps it if it is already up and healthy.
    pub fn up(&self) -> Result<Up, ClusterError> {
        let start = Instant::now();
        if unsafe { libc::geteuid() } != 0 {
            return Err(ClusterError::new(
                "check privileges",
                "cluster up",
                "needs root",
                "network namespaces, bridges and mounts need root: run as root (or with sudo)",
            ));
        }
        if self.nodes == 0 || self.nodes > 200 {
            return Err(ClusterError::new(
                "check --nodes",
                "cluster up",
                format!("{} nodes", self.nodes),
                "choose 1 to 200 nodes",
            ));
        }
        if self.healthy() {
            return Ok(self.report(true, start));
        }
        // Anything half there (a crashed run, another size): rebuild from nothing.
        self.down()?;
        for tool in [
            "/usr/sbin/sshd",
            "/usr/bin/ssh-keygen",
            "/usr/bin/unshare",
            "/usr/bin/setpriv",
        ] {
            if !Path::new(tool).exists() {
                return Err(ClusterError::new(
                    "check tools",
                    tool,
                    "is missing",
                    "install openssh-server, openssh-client and util-linux (scripts/test does)",
                ));
            }
        }
        let step = "create state directory";
        std::fs::create_dir_all(&self.state_dir).map_err(|e| io_err(step, &self.state_dir, e))?;
        std::fs::create_dir_all(&self.overlay_dir)
            .map_err(|e| io_err(step, &self.overlay_dir, e))?;
        let key = self.key();
        keygen("make the control key", &key, "shakedown")?;
        let control_pub = std::fs::read_to_string(key.with_extension("pub"))
            .map_err(|e| io_err("read the control key", &key, e))?;

        let bridge = self.bridge();
        let cidr = format!("{}/24", self.control_ip());
        run(
            "create the bridge",
            &["ip", "link", "add", &bridge, "type", "bridge"],
        )?;
        run(
            "address the bridge",
            &["ip", "addr", "add", &cidr, "dev", &bridge],
        )?;
        run("start the bridge", &["ip", "link", "set", &bridge, "up"])?;
        // Frames between hosts must not cross the host's own iptables.
        bridge_filter::hold(&self.prefix)?;

        let mut known = String::new();
        for i in 1..=self.nodes {
            let host_key = self.host(i, &control_pub)?;
            // One line per name: every known_hosts reader matches those.
            for host in [self.ip(i).to_string(), self.name(i)] {
                let _ = writeln!(known, "{host} {}", host_key.trim());
            }
        }
        write("write known_hosts", &self.known_hosts(), &known)?;

        // Wait for every sshd.
        let deadline = Instant::now() + UP_TIMEOUT;
        for i in 1..=self.nodes {
            while !Self::ssh_answers(self.ip(i), Duration::from_millis(100)) {
                if Instant::now() > deadline {
                    let log =
                        std::fs::read_to_string(self.state_dir.join(self.name(i)).join("sshd.log"))
                            .unwrap_or_default();
                    return Err(ClusterError::new(
                        &format!("wait for {}", self.name(i)),
                        &format!("ssh {}:22", self.ip(i)),
                        format!("did not answer within {} s", UP_TIMEOUT.as_secs()),
                        &log,
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let mut nodes = String::from("# shakedown local cluster: one host per line\n");
        for i in 1..=self.nodes {
            let _ = writeln!(nodes, "root@{}:22  # {}", self.ip(i), self.name(i));
        }
        write("write the nodes file", &self.nodes_file(), &nodes)?;
        Ok(self.report(false, start))
    }

    fn report(&self, reused: bool, start: Instant) -> Up {
        Up {
            nodes_file: self.nodes_file(),
            key: self.key(),
            known_hosts: self.known_hosts(),
            hosts: (1..=self.nodes)
                .map(|i| (self.name(i), self.ip(i)))
                .collect(),
            reused,
            elapsed: start.elapsed(),
        }
    }

    /// Creates host `i` and starts its sshd; returns its public host key.
    fn host(&self, i: usize, control_pub: &str) -> Result<String, ClusterError> {
        let (name, ip, veth) = (self.name(i), self.ip(i), self.veth(i));
        let dir = self.state_dir.join(&name);
        let ov = self.overlay_dir.join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| io_err("create host directory", &dir, e))?;
        let step = format!("create {name}");
        run(&step, &["ip", "netns", "add", &name])?;
        run(
            &step,
            &[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ],
        )?;
        run(
            &step,
            &["ip", "link", "set", &veth, "master", &self.bridge(), "up"],
        )?;
        run(
            &step,
            &[
                "ip",
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ],
        )?;
        run(&step, &["ip", "-n", &name, "link", "set", "eth0", "up"])?;
        run(&step, &["ip", "-n", &name, "link", "set", "lo", "up"])?;
        // Nothing may bypass IPv4 partition rules.
        run(
            &step,
            &[
                "ip",
                "netns",
                "exec",
                &name,
                "sh",
                "-c",
                "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
            ],
        )?;

        let host_key = dir.join("ssh_host_ed25519_key");
        keygen(&step, &host_key, &name)?;
        write(&step, &dir.join("authorized_keys"), control_pub)?;
        let d = dir.display();
        let config = format!(
            "ListenAddress {ip}\nPort 22\nHostKey {d}/ssh_host_ed25519_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nPidFile none\nMaxStartups 100\nMaxSessions 100\nSubsystem sftp internal-sftp\n"
        );
        write(&step, &dir.join("sshd_config"), &config)?;
        let mut boot = format!("set -e\nhostname {name}\n");
        for o in OVERLAID {
            let (up, work) = (ov.join(o).join("upper"), ov.join(o).join("work"));
            for p in [&up, &work] {
                std::fs::create_dir_all(p).map_err(|e| io_err(&step, p, e))?;
            }
            let _ = writeln!(
                boot,
                "mount -t overlay overlay -o lowerdir=/{o},upperdir={},workdir={} /{o}",
                up.display(),
                work.display()
            );
        }
        boot.push_str(
            "for m in /tmp /run /dev/shm /root; do mount -t tmpfs tmpfs $m; done\nmkdir -p /run/sshd\n\
             exec setpriv --bounding-set -sys_time /usr/sbin/sshd -D -e -f ",
        );
        let _ = writeln!(boot, "{d}/sshd_config");
        write(&step, &dir.join("boot.sh"), &boot)?;

        let log =
            std::fs::File::create(dir.join("sshd.log")).map_err(|e| io_err(&step, &dir, e))?;
        let log2 = log.try_clone().map_err(|e| io_err(&step, &dir, e))?;
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns", "exec", &name, "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork",
        ])
        .args([
            "--kill-child=SIGKILL",
            "--mount-proc",
            "--propagation",
            "private",
            "sh",
        ])
        .arg(dir.join("boot.sh"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
        // SAFETY: setsid is async-signal-safe; it detaches the host from our
        // terminal and process group so it outlives this command.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        cmd.spawn().map_err(|e| {
            ClusterError::new(
                &step,
                "ip netns exec ... sshd",
                format!("could not start: {e}"),
                "",
            )
        })?;
        std::fs::read_to_string(host_key.with_extension("pub"))
            .map_err(|e| io_err(&step, &host_key, e))
    }

    /// Removes everything the cluster made. Safe to call when nothing is up.
    pub fn down(&self) -> Result<(), ClusterError> {
        let namespaces = self.namespaces();
        for ns in &namespaces {
            for pid in Self::pids(ns) {
                // SAFETY: kill takes plain integers.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        // The hosts' mounts live in their own mount namespaces: they go with
        // their last process. Wait for that before removing directories.
        let deadline = Instant::now() + Duration::from_secs(5);
        for ns in &namespaces {
            while !Self::pids(ns).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            run("remove a namespace", &["ip", "netns", "del", ns])?;
        }
        // A namespace outlives its deletion while orphaned TCP sockets of
        // its killed processes still retransmit (to a peer cut off by a
        // partition, for minutes): its veth would stay behind with it.
        // Deleting the host's end removes the pair now.
        for i in 1..=self.nodes {
            let veth = self.veth(i);
            if Path::new("/sys/class/net").join(&veth).exists() {
                // It may go with its namespace meanwhile: only what is left counts.
                let _ = run("remove a veth", &["ip", "link", "del", &veth]);
            }
        }
        let bridge = self.bridge();
        if Path::new("/sys/class/net").join(&bridge).exists() {
            run("remove the bridge", &["ip", "link", "del", &bridge])?;
        }
        bridge_filter::release(&self.prefix)?;
        // Only the cluster's own directories: their parents are shared by
        // every cluster (tests run several at once), and another's `up` may
        // be creating its directory there right now.
        for dir in [&self.overlay_dir, &self.state_dir] {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| io_err("remove a directory", dir, e))?;
            }
        }
        Ok(())
    }
}
