//! Fake nodes for unit tests: no root, no SSH, no network.
//!
//! A [`FakeCluster`] is a temporary directory with one root per node. A
//! [`FakeNode`] runs each command the harness sends with `sh -c`, locally,
//! in that node's root, with three kinds of rewriting:
//!
//! - paths: `/opt/shakedown…` and `/run/shakedown…` (daemons, pidfiles,
//!   the pause, kill and clock notes) point into the node's root, in
//!   commands and in uploaded scripts, so pidfiles, kill, STOP and CONT act
//!   on real local processes (e.g. the noop system's `sleep`);
//! - the network: `/dev/udp/IP/PORT` (the partition probes) becomes a file
//!   per sender and receiver in the cluster's directory, so no packet is
//!   sent; fake nodes have loopback addresses (127.77.0.x), so anything
//!   else stays on this machine;
//! - commands: PATH starts with shims. `iptables`, `iptables-restore` and
//!   `iptables-save` keep the filter table in a file per node (chains,
//!   rules, and packet counters that count the probe files written while a
//!   rule drops their sender); `id -u` says 0; `date -s`, `mount`,
//!   `umount`, `ip` and `fusermount3` refuse. The system directories
//!   (`/sbin`, `/usr/sbin`) are not on PATH.
//!
//! Every command, upload and download is recorded in order, with the
//! node's name, and tests can add their own marks ([`FakeCluster::mark`]),
//! so the order of a run's phases can be asserted. Knobs make a node fail:
//! [`FakeCluster::leak`] (rules hold, probes are not dropped: a partition's
//! verification fails), [`FakeCluster::unreachable`] (connecting fails).
//!
//! Dropping the last handle kills every process the cluster's commands
//! started (found by a marker in their environment) and removes the
//! directory; a new cluster also removes what clusters of test processes
//! that died before their drops ran left behind.
//!
//! As init does on a node, the test process reaps the daemons its fake
//! nodes started (it becomes a child subreaper, and a thread reaps exited
//! children outside its own process group): a killed daemon is gone, not a
//! zombie that still looks alive. So use fakes in test binaries of their
//! own (harness/tests/fake_*.rs), not beside tests that wait on children
//! they put in other process groups.
//!
//! Systems under a fake must keep to `/opt/shakedown` and `/run/shakedown`
//! (the noop system does): other paths are this machine's.

use crate::control::{Connector, ControlError, Output, Remote};
use crate::nodes::NodeAddr;
use procs::{marked, start_reaper, sweep_stale, MARKER, WAITED};
use shims::write_shims;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

mod procs;
mod shims;

/// What happened on a fake node, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A command, as the harness sent it (before rewriting).
    Exec(String),
    Upload(String),
    Download(String),
    /// A test's own mark (e.g. "client invoked").
    Mark(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The node's name, or the label a mark was given.
    pub node: String,
    pub action: Action,
}

type Hook = Box<dyn Fn(&str, &str) + Send + Sync>;

struct Shared {
    root: PathBuf,
    names: Vec<String>,
    path_var: String,
    log: Mutex<Vec<Entry>>,
    hook: Mutex<Option<Hook>>,
    unreachable: Mutex<Vec<String>>,
}

/// Fake nodes `n1`..`nN` (see the module's documentation). Clones share the
/// nodes; the last one dropped removes them.
#[derive(Clone)]
pub struct FakeCluster {
    shared: Arc<Shared>,
}

/// A session to one fake node.
pub struct FakeNode {
    shared: Arc<Shared>,
    index: usize,
}

/// The control host's address as fake nodes see it.
pub const CONTROL_IP: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 1);

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 77, 0, 11 + i as u8)
}

impl FakeCluster {
    /// `n` fake nodes (1 to 200) in a new temporary directory.
    pub fn new(n: usize) -> std::io::Result<FakeCluster> {
        if !(1..=200).contains(&n) {
            return Err(std::io::Error::other(format!(
                "{n} fake nodes: from 1 to 200"
            )));
        }
        start_reaper();
        sweep_stale();
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let root = std::env::temp_dir().join(format!(
            "shakedown-fake-{}-{}-{stamp}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let text = root.display().to_string();
        if text.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
            return Err(std::io::Error::other(format!(
                "{text}: a fake cluster needs a temporary directory without spaces or quotes"
            )));
        }
        std::fs::create_dir_all(root.join("shims"))?;
        let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            for d in ["opt", "run", "iptables/base"] {
                std::fs::create_dir_all(root.join(name).join(d))?;
            }
            for j in 0..n {
                std::fs::create_dir_all(
                    root.join("udp")
                        .join(node_ip(i).to_string())
                        .join(node_ip(j).to_string()),
                )?;
            }
        }
        write_shims(&root.join("shims"))?;
        let path_var = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            root.join("shims").display()
        );
        Ok(FakeCluster {
            shared: Arc::new(Shared {
                root,
                names,
                path_var,
                log: Mutex::new(Vec::new()),
                hook: Mutex::new(None),
                unreachable: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The nodes as a nodes file would list them.
    pub fn addrs(&self) -> Vec<NodeAddr> {
        self.shared
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| NodeAddr {
                name: name.clone(),
                user: "root".into(),
                host: node_ip(i).to_string(),
                port: 22,
            })
            .collect()
    }

    /// A session to every node, in order.
    pub fn nodes(&self) -> Vec<FakeNode> {
        (0..self.shared.names.len())
            .map(|index| FakeNode {
                shared: self.shared.clone(),
                index,
            })
            .collect()
    }

    /// The cluster's directory (removed when the last handle is dropped).
    pub fn dir(&self) -> &Path {
        &self.shared.root
    }

    /// Where `path` (e.g. `/run/shakedown-paused`) of `node` is here.
    pub fn path(&self, node: &str, path: &str) -> PathBuf {
        let i = self.index(node);
        PathBuf::from(self.shared.rewrite(i, path))
    }

    /// Everything recorded so far, in order.
    pub fn log(&self) -> Vec<Entry> {
        lock(&self.shared.log).clone()
    }

    /// The commands `node` ran so far, in order.
    pub fn commands(&self, node: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|e| e.node == node)
            .filter_map(|e| match e.action {
                Action::Exec(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// Adds a test's own entry to the log (`label` in place of a node).
    pub fn mark(&self, label: &str, text: &str) {
        lock(&self.shared.log).push(Entry {
            node: label.into(),
            action: Action::Mark(text.into()),
        });
    }

    /// Calls `hook(node, command)` before each command runs (e.g. to see
    /// what a file held at that moment).
    pub fn on_exec(&self, hook: impl Fn(&str, &str) + Send + Sync + 'static) {
        *lock(&self.shared.hook) = Some(Box::new(hook));
    }

    /// `node`'s filter table as `iptables -S` would print it (rules only).
    pub fn rules(&self, node: &str) -> Vec<String> {
        let p = self.shared.root.join(node).join("iptables/rules");
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_string)
            .collect()
    }

    /// From now on `node`'s drop rules let packets through: they read
    /// back, but no probe is ever counted.
    pub fn leak(&self, node: &str) {
        let p = self.shared.root.join(node).join("iptables/leak");
        std::fs::write(p, "").expect("the fake cluster's directory");
    }

    /// From now on connecting to `node` fails.
    pub fn unreachable(&self, node: &str) {
        lock(&self.shared.unreachable).push(node.into());
    }

    fn index(&self, node: &str) -> usize {
        self.shared
            .names
            .iter()
            .position(|n| n == node)
            .unwrap_or_else(|| panic!("no fake node {node}"))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connector for FakeCluster {
    type Node = FakeNode;

    fn connect(&self, addr: &NodeAddr) -> Result<FakeNode, ControlError> {
        let fail = |what: &str| ControlError {
            node: addr.name.clone(),
            what: what.into(),
            command: None,
            code: None,
            stderr: String::new(),
        };
        let index = self
            .shared
            .names
            .iter()
            .position(|n| *n == addr.name)
            .ok_or_else(|| fail("no such fake node"))?;
        if lock(&self.shared.unreachable).contains(&addr.name) {
            return Err(fail("cannot connect (the fake node is unreachable)"));
        }
        Ok(FakeNode {
            shared: self.shared.clone(),
            index,
        })
    }

    fn addresses(&self, node: &FakeNode) -> (IpAddr, IpAddr) {
        (IpAddr::V4(node_ip(node.index)), IpAddr::V4(CONTROL_IP))
    }
}

impl Shared {
    fn node_root(&self, i: usize) -> PathBuf {
        self.root.join(&self.names[i])
    }

    /// The node's paths and probes, made local.
    fn rewrite(&self, i: usize, text: &str) -> String {
        let root = self.node_root(i).display().to_string();
        let udp = format!("{}/udp/{}/", self.root.display(), node_ip(i));
        text.replace("/opt/shakedown", &format!("{root}/opt/shakedown"))
            .replace("/run/shakedown", &format!("{root}/run/shakedown"))
            .replace(">/dev/udp/", &format!(">>{udp}"))
            .replace("/dev/udp/", &udp)
    }

    fn record(&self, i: usize, action: Action) {
        lock(&self.log).push(Entry {
            node: self.names[i].clone(),
            action,
        });
    }

    /// A local path for a node's absolute path; only the rewritten trees.
    fn local_path(&self, i: usize, path: &str) -> Result<PathBuf, String> {
        let local = self.rewrite(i, path);
        if local == path {
            Err(format!(
                "{path}: a fake node has only /opt/shakedown and /run/shakedown"
            ))
        } else {
            Ok(PathBuf::from(local))
        }
    }
}

impl FakeNode {
    fn fail(&self, what: String, command: Option<&str>, stderr: String) -> ControlError {
        ControlError {
            node: self.shared.names[self.index].clone(),
            what,
            command: command.map(str::to_string),
            code: None,
            stderr,
        }
    }
}

impl Remote for FakeNode {
    fn name(&self) -> &str {
        &self.shared.names[self.index]
    }

    fn exec(&mut self, command: &str, timeout: Duration) -> Result<Output, ControlError> {
        let s = &self.shared;
        s.record(self.index, Action::Exec(command.into()));
        if let Some(hook) = lock(&s.hook).as_ref() {
            hook(self.name(), command);
        }
        let root = s.node_root(self.index);
        // The reaper must not take this child's exit status from its wait.
        let mut waited = lock(&WAITED);
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(s.rewrite(self.index, command))
            .current_dir(&root)
            .env_clear()
            .env("PATH", &s.path_var)
            .env("HOME", &root)
            .env("LANG", "C")
            .env(MARKER, &s.root)
            .env("FAKE_ROOT", &root)
            .env("FAKE_IP", node_ip(self.index).to_string())
            .env("FAKE_UDP", s.root.join("udp"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| self.fail("cannot run sh".into(), Some(command), e.to_string()))?;
        let pgid = child.id() as i32;
        waited.push(pgid);
        drop(waited);
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let reader = std::thread::spawn(move || {
                let mut e = Vec::new();
                let _ = err.read_to_end(&mut e);
                e
            });
            let mut o = Vec::new();
            let _ = out.read_to_end(&mut o);
            let e = reader.join().unwrap_or_default();
            let status = child.wait();
            lock(&WAITED).retain(|p| *p != pgid);
            let _ = tx.send((status, o, e));
        });
        match rx.recv_timeout(timeout) {
            Ok((status, o, e)) => {
                let status = status.map_err(|e| {
                    self.fail("no exit status".into(), Some(command), e.to_string())
                })?;
                Ok(Output {
                    code: status.code().unwrap_or_else(|| {
                        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
                    }),
                    stdout: String::from_utf8_lossy(&o).into_owned(),
                    stderr: String::from_utf8_lossy(&e).into_owned(),
                })
            }
            Err(_) => {
                // SAFETY: kill(2) of the process group this call started.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                Err(self.fail(
                    format!("no answer within {} ms", timeout.as_millis()),
                    Some(command),
                    "timed out".into(),
                ))
            }
        }
    }

    fn upload(&mut self, data: &[u8], path: &str, mode: i32) -> Result<(), ControlError> {
        self.shared.record(self.index, Action::Upload(path.into()));
        let what = format!("upload to {path}");
        let local = self
            .shared
            .local_path(self.index, path)
            .map_err(|e| self.fail(what.clone(), None, e))?;
        // Scripts name the node's paths: make them local too.
        let data = match std::str::from_utf8(data) {
            Ok(text) => self.shared.rewrite(self.index, text).into_bytes(),
            Err(_) => data.to_vec(),
        };
        std::fs::write(&local, data).map_err(|e| self.fail(what.clone(), None, e.to_string()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(mode as u32))
            .map_err(|e| self.fail(what, None, e.to_string()))
    }

    fn download(&mut self, path: &str) -> Result<Vec<u8>, ControlError> {
        self.shared
            .record(self.index, Action::Download(path.into()));
        let what = format!("download {path}");
        let local = self
            .shared
            .local_path(self.index, path)
            .map_err(|e| self.fail(what.clone(), None, e))?;
        std::fs::read(local).map_err(|e| self.fail(what, None, e.to_string()))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Every process the nodes' commands started carries the marker.
        let marker = format!("{MARKER}={}", self.root.display());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = marked(&marker);
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in left {
                // SAFETY: kill(2) of a process this cluster started (its
                // environment holds this cluster's marker).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::kill(pid, libc::SIGCONT);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
