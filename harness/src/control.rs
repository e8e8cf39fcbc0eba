//! Control of one node over SSH.
//!
//! [`Remote`] is the small trait the rest of the harness depends on (exec,
//! upload, download); [`SshNode`] implements it with ssh2, one session per
//! node. Process control (daemons, kill, pause, resume) is built on `exec`
//! in [`Remote`]'s provided methods, so any transport gets it for free.
//!
//! Errors name the node, the command, its exit code and the tail of its
//! stderr; they are infrastructure errors (exit 4). Keys and passwords never
//! appear in them.

use crate::nodes::NodeAddr;
use ssh2::{CheckResult, KnownHostFileKind, Session};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
#[error("{node}: {what}{}{}", command.as_ref().map(|c| format!(" (`{c}`)")).unwrap_or_default(), if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
pub struct ControlError {
    pub node: String,
    pub what: String,
    pub command: Option<String>,
    pub code: Option<i32>,
    /// The last lines of the command's stderr, or of the transport's message.
    pub stderr: String,
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.trim().lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

/// A finished command.
#[derive(Clone, Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// What the harness needs of a node. Implementations must never log key
/// material, and must give up on a call after its timeout.
pub trait Remote {
    fn name(&self) -> &str;

    /// Runs `command` with `sh -c` semantics; `Ok` whatever its exit code.
    fn exec(&mut self, command: &str, timeout: Duration) -> Result<Output, ControlError>;

    /// Writes `data` to `path` with `mode` (e.g. 0o755 for a binary).
    fn upload(&mut self, data: &[u8], path: &str, mode: i32) -> Result<(), ControlError>;

    /// Reads `path`.
    fn download(&mut self, path: &str) -> Result<Vec<u8>, ControlError>;

    /// Runs `command` and fails unless it exits 0.
    fn run(&mut self, command: &str, timeout: Duration) -> Result<String, ControlError> {
        let out = self.exec(command, timeout)?;
        if out.code != 0 {
            return Err(ControlError {
                node: self.name().into(),
                what: format!("exited with {}", out.code),
                command: Some(command.into()),
                code: Some(out.code),
                stderr: tail(&out.stderr),
            });
        }
        Ok(out.stdout)
    }

    /// Starts `command` as a daemon: detached, output to `log`, its pid and
    /// start time in `pidfile` (see [`crate::pidfile`]).
    fn start_daemon(
        &mut self,
        command: &str,
        pidfile: &str,
        log: &str,
    ) -> Result<u32, ControlError> {
        let script = format!(
            "nohup setsid sh -c {} >>{} 2>&1 </dev/null & {}; echo $!",
            shell_quote(&format!("exec {command}")),
            shell_quote(log),
            crate::pidfile::record(pidfile),
        );
        let out = self.run(&script, Duration::from_secs(10))?;
        out.trim().parse().map_err(|_| ControlError {
            node: self.name().into(),
            what: "did not report the daemon's pid".into(),
            command: Some(command.into()),
            code: None,
            stderr: tail(&out),
        })
    }

    /// Sends `signal` (e.g. "KILL", "STOP", "CONT", "TERM") to the process
    /// `pidfile` names; an error when it no longer runs.
    fn signal(&mut self, pidfile: &str, signal: &str) -> Result<(), ControlError> {
        self.run(
            &format!(
                "{}; kill -s {signal} $p",
                crate::pidfile::live_or_exit(pidfile)
            ),
            Duration::from_secs(10),
        )
        .map(|_| ())
    }

    /// Waits until something on the node accepts connections on `port`.
    fn wait_for_port(&mut self, port: u16, timeout: Duration) -> Result<(), ControlError> {
        let deadline = Instant::now() + timeout;
        let probe = format!("(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null");
        loop {
            if self
                .exec(
                    &format!("bash -c {}", shell_quote(&probe)),
                    Duration::from_secs(5),
                )?
                .code
                == 0
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ControlError {
                    node: self.name().into(),
                    what: format!(
                        "nothing listened on port {port} within {} s",
                        timeout.as_secs()
                    ),
                    command: None,
                    code: None,
                    stderr: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `f` on every item at once, one thread each; the answers in order
/// (`None` where `f` panicked). The one parallel loop of the harness.
pub fn in_parallel<I: Send, T: Send>(
    items: &mut [I],
    f: impl Fn(usize, &mut I) -> T + Sync,
) -> Vec<Option<T>> {
    std::thread::scope(|s| {
        let f = &f;
        let hs: Vec<_> = items
            .iter_mut()
            .enumerate()
            .map(|(i, item)| s.spawn(move || f(i, item)))
            .collect();
        hs.into_iter().map(|h| h.join().ok()).collect()
    })
}

/// One node's answer.
#[derive(Debug)]
pub struct NodeResult<T> {
    pub node: String,
    pub result: Result<T, ControlError>,
}

/// What failed on some nodes: one error per node, each naming its node.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct NodeErrors(pub Vec<ControlError>);

impl NodeErrors {
    /// The names of the nodes that failed.
    pub fn nodes(&self) -> Vec<String> {
        self.0.iter().map(|e| e.node.clone()).collect()
    }
}

impl From<ControlError> for NodeErrors {
    fn from(e: ControlError) -> Self {
        NodeErrors(vec![e])
    }
}

/// Runs `f` on every node at once: a result per node, in node order. A
/// panicking node thread is an error naming that node.
pub fn on_nodes<R: Remote + Send, T: Send>(
    nodes: &mut [R],
    f: impl Fn(usize, &mut R) -> Result<T, ControlError> + Sync,
) -> Vec<NodeResult<T>> {
    let names: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
    in_parallel(nodes, f)
        .into_iter()
        .zip(names)
        .map(|(r, node)| NodeResult {
            result: r.unwrap_or_else(|| {
                Err(ControlError {
                    node: node.clone(),
                    what: "the node's thread panicked".into(),
                    command: None,
                    code: None,
                    stderr: String::new(),
                })
            }),
            node,
        })
        .collect()
}

/// Every node's answer, or every node's error (never only the first).
pub fn all_ok<T>(results: Vec<NodeResult<T>>) -> Result<Vec<T>, NodeErrors> {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r.result {
            Ok(v) => ok.push(v),
            Err(e) => failed.push(e),
        }
    }
    if failed.is_empty() {
        Ok(ok)
    } else {
        Err(NodeErrors(failed))
    }
}

/// How the harness reaches nodes: over SSH ([`SshOptions`]) in a run, or a
/// [`FakeCluster`](crate::fake::FakeCluster) in unit tests. The lifecycle,
/// the fault schedule and heal are generic over it.
pub trait Connector: Clone + Send + Sync + 'static {
    type Node: Remote + Send + 'static;

    /// A session to the node at `addr`.
    fn connect(&self, addr: &NodeAddr) -> Result<Self::Node, ControlError>;

    /// The node's address as connected to, and the control host's address
    /// as the node sees it (never dropped by a fault).
    fn addresses(&self, node: &Self::Node) -> (std::net::IpAddr, std::net::IpAddr);
}

impl Connector for SshOptions {
    type Node = SshNode;

    fn connect(&self, addr: &NodeAddr) -> Result<SshNode, ControlError> {
        SshNode::connect(addr, self)
    }

    fn addresses(&self, node: &SshNode) -> (std::net::IpAddr, std::net::IpAddr) {
        (node.ip(), node.control_ip())
    }
}

/// Connects to every node in parallel; the sessions, and an error for each
/// node that could not be reached.
pub fn connect_all<C: Connector>(
    addrs: &[NodeAddr],
    connector: &C,
) -> (Vec<C::Node>, Vec<ControlError>) {
    let mut refs: Vec<&NodeAddr> = addrs.iter().collect();
    let results = in_parallel(&mut refs, |_, a| connector.connect(a));
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (r, a) in results.into_iter().zip(addrs) {
        match r {
            Some(Ok(n)) => ok.push(n),
            Some(Err(e)) => failed.push(e),
            None => failed.push(ControlError {
                node: a.name.clone(),
                what: "connecting panicked".into(),
                command: None,
                code: None,
                stderr: String::new(),
            }),
        }
    }
    (ok, failed)
}

/// A shell command for a node that sends `request` (a printf format, e.g.
/// `PING\r\n`) to `host:port` over bash's /dev/tcp, reads the reply for
/// up to `secs` seconds, and exits as `check` does (a pipeline on the reply,
/// e.g. `grep -q PONG`). No client tool is needed on the node.
pub fn tcp_probe(host: &str, port: u16, request: &str, secs: u32, check: &str) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} && printf {} >&3 && timeout {secs} cat <&3 | {check}",
        shell_quote(request)
    );
    format!("bash -c {}", shell_quote(&script))
}

/// Quotes for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// How to reach nodes: the private key, and which host keys to trust.
#[derive(Clone, Debug)]
pub struct SshOptions {
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    /// Add unknown host keys to `known_hosts` instead of refusing them.
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
}

/// A node reached over one ssh2 session.
pub struct SshNode {
    addr: NodeAddr,
    session: Session,
    peer: std::net::SocketAddr,
    local: std::net::SocketAddr,
}

impl SshNode {
    pub fn connect(addr: &NodeAddr, opts: &SshOptions) -> Result<SshNode, ControlError> {
        let err = |what: String, e: &dyn std::fmt::Display| ControlError {
            node: addr.name.clone(),
            what,
            command: None,
            code: None,
            stderr: e.to_string(),
        };
        let target = (addr.host.as_str(), addr.port)
            .to_socket_addrs()
            .map_err(|e| err(format!("cannot resolve {}", addr.host), &e))?
            .next()
            .ok_or_else(|| err(format!("cannot resolve {}", addr.host), &"no address"))?;
        let tcp = TcpStream::connect_timeout(&target, opts.connect_timeout)
            .map_err(|e| err(format!("cannot connect to {target}"), &e))?;
        // Small request/answer exchanges: Nagle's algorithm would hold each
        // one back for a delayed ACK (40 ms a command).
        let _ = tcp.set_nodelay(true);
        let local = tcp
            .local_addr()
            .map_err(|e| err("cannot read the local address".into(), &e))?;
        let mut session = Session::new().map_err(|e| err("cannot start SSH".into(), &e))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(opts.connect_timeout.as_millis() as u32);
        session
            .handshake()
            .map_err(|e| err(format!("SSH handshake with {target} failed"), &e))?;
        Self::check_host_key(&session, addr, opts).map_err(|m| err(m, &""))?;
        session
            .userauth_pubkey_file(&addr.user, None, &opts.key, None)
            .map_err(|e| {
                err(
                    format!("{} was refused with key {}", addr.user, opts.key.display()),
                    &e,
                )
            })?;
        Ok(SshNode {
            addr: addr.clone(),
            session,
            peer: target,
            local,
        })
    }

    /// The node's address, as connected to.
    pub fn ip(&self) -> std::net::IpAddr {
        self.peer.ip()
    }

    /// The control host's address as this node sees it: never dropped by a fault.
    pub fn control_ip(&self) -> std::net::IpAddr {
        self.local.ip()
    }

    pub fn addr(&self) -> &NodeAddr {
        &self.addr
    }

    fn check_host_key(session: &Session, addr: &NodeAddr, opts: &SshOptions) -> Result<(), String> {
        let (key, kind) = session.host_key().ok_or("the server sent no host key")?;
        let mut known = session.known_hosts().map_err(|e| e.to_string())?;
        if opts.known_hosts.exists() {
            known
                .read_file(&opts.known_hosts, KnownHostFileKind::OpenSSH)
                .map_err(|e| format!("cannot read {}: {e}", opts.known_hosts.display()))?;
        }
        match known.check_port(&addr.host, addr.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::Mismatch => Err(format!(
                "host key of {} does not match {}: refusing to connect (remove the old key if the host was rebuilt)",
                addr.host,
                opts.known_hosts.display()
            )),
            CheckResult::NotFound | CheckResult::Failure if opts.accept_new_host_keys => {
                let host = if addr.port == 22 { addr.host.clone() } else { format!("[{}]:{}", addr.host, addr.port) };
                known
                    .add(&host, key, &addr.name, kind.into())
                    .and_then(|_| known.write_file(&opts.known_hosts, KnownHostFileKind::OpenSSH))
                    .map_err(|e| format!("cannot record the host key in {}: {e}", opts.known_hosts.display()))
            }
            _ => Err(format!(
                "unknown host key for {}: not in {} (pass --accept-new-host-keys to trust it)",
                addr.host,
                opts.known_hosts.display()
            )),
        }
    }

    fn fail(&self, what: &str, command: &str, e: impl std::fmt::Display) -> ControlError {
        ControlError {
            node: self.addr.name.clone(),
            what: what.into(),
            command: Some(command.into()),
            code: None,
            stderr: e.to_string(),
        }
    }
}

impl Remote for SshNode {
    fn name(&self) -> &str {
        &self.addr.name
    }

    fn exec(&mut self, command: &str, timeout: Duration) -> Result<Output, ControlError> {
        self.session.set_timeout(timeout.as_millis().max(1) as u32);
        let mut ch = self
            .session
            .channel_session()
            .map_err(|e| self.fail("cannot open a channel", command, e))?;
        ch.exec(command)
            .map_err(|e| self.fail("cannot run", command, e))?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        // Both streams share one window: read them in turns until both end.
        let mut buf = [0u8; 16384];
        let deadline = Instant::now() + timeout;
        loop {
            let n = match ch.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    return Err(self.fail(
                        &format!("no answer within {} ms", timeout.as_millis()),
                        command,
                        e,
                    ))
                }
            };
            stdout.extend_from_slice(&buf[..n]);
            let m = ch.stderr().read(&mut buf).unwrap_or(0);
            stderr.extend_from_slice(&buf[..m]);
            if n == 0 && m == 0 && ch.eof() {
                break;
            }
            if Instant::now() > deadline {
                return Err(self.fail(
                    &format!("no answer within {} ms", timeout.as_millis()),
                    command,
                    "timed out",
                ));
            }
        }
        let _ = ch.wait_close();
        let code = ch
            .exit_status()
            .map_err(|e| self.fail("no exit status", command, e))?;
        Ok(Output {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    fn upload(&mut self, data: &[u8], path: &str, mode: i32) -> Result<(), ControlError> {
        self.session.set_timeout(60_000);
        let what = format!("upload to {path}");
        let mut remote = self
            .session
            .scp_send(Path::new(path), mode, data.len() as u64, None)
            .map_err(|e| self.fail(&what, "scp", e))?;
        remote
            .write_all(data)
            .map_err(|e| self.fail(&what, "scp", e))?;
        remote
            .send_eof()
            .and_then(|_| remote.wait_eof())
            .map_err(|e| self.fail(&what, "scp", e))?;
        remote
            .close()
            .and_then(|_| remote.wait_close())
            .map_err(|e| self.fail(&what, "scp", e))?;
        Ok(())
    }

    fn download(&mut self, path: &str) -> Result<Vec<u8>, ControlError> {
        self.session.set_timeout(60_000);
        let what = format!("download {path}");
        let (mut remote, _) = self
            .session
            .scp_recv(Path::new(path))
            .map_err(|e| self.fail(&what, "scp", e))?;
        let mut data = Vec::new();
        remote
            .read_to_end(&mut data)
            .map_err(|e| self.fail(&what, "scp", e))?;
        let _ = remote
            .send_eof()
            .and_then(|_| remote.wait_eof())
            .and_then(|_| remote.close())
            .and_then(|_| remote.wait_close());
        Ok(data)
    }
}
