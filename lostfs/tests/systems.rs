//! Real databases on a lostfs mount: skipped (with a message) when the
//! binary is missing.

mod common;

use common::{skip, wait_for, Mount};
use std::path::Path;
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A daemon killed (SIGKILL, as a power cut would) when dropped.
struct Daemon(Option<std::process::Child>);

impl Daemon {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis(dir: &Path, port: u16) -> Daemon {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let d = Daemon(Some(child));
    assert!(
        wait_for(20, || cli(port, &["ping"]) == "PONG"),
        "redis did not start on the mount"
    );
    d
}

fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn unsynced_bytes(report: &str) -> u64 {
    report
        .split_whitespace()
        .find_map(|w| w.strip_prefix("unsynced_bytes="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

// appendfsync everysec acknowledges a SET before its fsync: a power cut in
// that second loses acknowledged writes, while SIGKILL alone would not.
#[test]
fn redis_everysec_loses_acknowledged_writes_on_a_power_cut() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("redis-server is not installed");
        return;
    }
    let m = Mount::new();
    let port = free_port();
    let mut server = redis(&m.mnt, port);
    assert_eq!(cli(port, &["set", "durable", "yes"]), "OK");
    // Wait for the background fsync of the AOF.
    assert!(wait_for(10, || unsynced_bytes(&m.ctl("status")) == 0));
    // The background fsync may land between the writes and the kill: try
    // until a crash catches unsynced bytes.
    let mut lost = None;
    for round in 0..5 {
        for i in 0..50 {
            assert_eq!(cli(port, &["set", &format!("k{round}-{i}"), "v"]), "OK");
        }
        let acked: u64 = cli(port, &["dbsize"]).parse().unwrap();
        server.kill();
        let dropped = unsynced_bytes(&m.ctl("crash"));
        server = redis(&m.mnt, port);
        let after: u64 = cli(port, &["dbsize"]).parse().unwrap();
        assert_eq!(
            cli(port, &["get", "durable"]),
            "yes",
            "a synced write was lost"
        );
        if dropped > 0 {
            lost = Some((acked, after));
            break;
        }
        assert_eq!(after, acked, "nothing was unsynced, nothing may be lost");
    }
    let (acked, after) = lost.expect("five crashes in a row found nothing unsynced");
    assert!(after < acked, "acknowledged {acked} keys, {after} survived");
    eprintln!("redis everysec: {acked} keys acknowledged, {after} survived the power cut");
}

const PG: &str = "/usr/lib/postgresql/15/bin";

/// PostgreSQL run as the `postgres` user in its own session, so the whole
/// process tree dies at once, as in a power cut.
struct Postgres {
    data: String,
    sock: String,
    port: u16,
    uid: u32,
    gid: u32,
    session: Option<i32>,
}

fn id(flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

impl Postgres {
    fn start(&mut self, extra: &str) {
        use std::os::unix::process::CommandExt;
        let child = Command::new(format!("{PG}/postgres"))
            .args([
                "-D",
                &self.data,
                "-k",
                &self.sock,
                "-c",
                "listen_addresses=",
            ])
            .args(["-p", &self.port.to_string()])
            .args(extra.split_whitespace())
            .uid(self.uid)
            .gid(self.gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start postgres");
        self.session = Some(child.id() as i32);
        // The child is reaped by kill(); dropping the handle does not kill it.
        std::mem::forget(child);
        assert!(
            wait_for(30, || self.psql("select 1").as_deref() == Some("1")),
            "postgres did not start on the mount"
        );
    }

    fn psql(&self, sql: &str) -> Option<String> {
        let out = Command::new(format!("{PG}/psql"))
            .args([
                "-h",
                &self.sock,
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-Atc",
                sql,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn kill(&mut self) {
        if let Some(pg) = self.session.take() {
            // SAFETY: signals the process group this test started.
            unsafe { libc::kill(-pg, libc::SIGKILL) };
            let gone = wait_for(20, || {
                let mut status = 0;
                unsafe { libc::waitpid(-pg, &mut status, libc::WNOHANG) };
                (unsafe { libc::kill(-pg, 0) }) != 0
            });
            assert!(gone, "postgres group {pg} survived SIGKILL");
        }
    }

    fn count(&self) -> u64 {
        self.psql("select count(*) from t")
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(pg) = self.session.take() {
            unsafe { libc::kill(-pg, libc::SIGKILL) };
            wait_for(20, || (unsafe { libc::kill(-pg, 0) }) != 0);
        }
    }
}

// fsync on: every acknowledged commit survives the power cut and the
// database recovers; synchronous_commit=off acknowledges before the WAL
// flush, so the same power cut loses commits.
#[test]
fn postgres_keeps_synced_commits_and_loses_async_ones() {
    let (Some(uid), Some(gid)) = (id("-u"), id("-g")) else {
        skip("the postgres user is missing");
        return;
    };
    if !Path::new(PG).join("postgres").exists() {
        skip("PostgreSQL 15 or the postgres user is missing");
        return;
    }
    let m = Mount::new();
    let sock = m.dir.path().join("sock");
    std::fs::create_dir(&sock).unwrap();
    let chown = |p: &Path| {
        let st = Command::new("chown")
            .arg("postgres")
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    };
    chown(&sock);
    chown(&m.mnt);
    // The temp dir is 0700: postgres must reach its data directory.
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(m.dir.path(), mode).unwrap();
    let data = m.mnt.join("data");
    let init = {
        use std::os::unix::process::CommandExt;
        Command::new(format!("{PG}/initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres"])
            .uid(uid)
            .gid(gid)
            .output()
    }
    .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut pg = Postgres {
        data: data.display().to_string(),
        sock: sock.display().to_string(),
        port: free_port(),
        uid,
        gid,
        session: None,
    };
    pg.start("");
    pg.psql("create table t (k int primary key)").unwrap();
    for i in 0..30 {
        pg.psql(&format!("insert into t values ({i})")).unwrap();
    }
    pg.kill();
    let dropped = unsynced_bytes(&m.ctl("crash"));
    assert!(dropped > 0, "the crash found nothing unsynced to drop");
    pg.start("");
    assert_eq!(pg.count(), 30, "fsync on: an acknowledged commit was lost");

    // The WAL writer flushes every 10 s at most: the commits below stay unsynced.
    pg.kill();
    pg.start("-c synchronous_commit=off -c wal_writer_delay=10000");
    pg.psql("checkpoint").unwrap();
    for i in 30..60 {
        pg.psql(&format!("insert into t values ({i})")).unwrap();
    }
    assert_eq!(pg.count(), 60);
    pg.kill();
    m.ctl("crash");
    pg.start("");
    let after = pg.count();
    assert!(
        after < 60,
        "synchronous_commit=off: all 60 commits survived the crash"
    );
    assert!(
        after >= 30,
        "commits from before the checkpoint were lost: {after}"
    );
    eprintln!("postgres synchronous_commit=off: 60 commits acknowledged, {after} survived");
}

/// One HTTP/1.0 POST of a JSON body to etcd's gateway on loopback.
fn post(port: u16, path: &str, body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    let req = format!(
        "POST {path} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    c.read_to_string(&mut out).ok()?;
    out.contains(" 200 ").then_some(out)
}

fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// etcd fsyncs its WAL before answering (bbolt: mmap reads, pwrite and
// fdatasync): every acknowledged put survives, and it restarts cleanly.
#[test]
fn etcd_keeps_every_acknowledged_put() {
    if Command::new("etcd").arg("--version").output().is_err() {
        skip("etcd is not installed");
        return;
    }
    let m = Mount::new();
    let (client, peer) = (free_port(), free_port());
    let start = || {
        let c = format!("http://127.0.0.1:{client}");
        let p = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(m.mnt.join("etcd"))
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args([
                "--listen-peer-urls",
                &p,
                "--initial-advertise-peer-urls",
                &p,
            ])
            .args(["--initial-cluster", &format!("default={p}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        let d = Daemon(Some(child));
        let put = format!(r#"{{"key":"{}","value":"{}"}}"#, b64("probe"), b64("1"));
        assert!(
            wait_for(30, || post(client, "/v3/kv/put", &put).is_some()),
            "etcd did not serve on the mount"
        );
        d
    };
    let count = || {
        let body = format!(
            r#"{{"key":"{}","range_end":"{}","count_only":true}}"#,
            b64("k"),
            b64("l")
        );
        let out = post(client, "/v3/kv/range", &body).expect("range");
        // {"header":{...},"count":"N"}; no count field when it is 0.
        out.split(r#""count":""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let mut etcd = start();
    for i in 0..40 {
        let put = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            b64(&format!("k{i:02}")),
            b64("v")
        );
        assert!(post(client, "/v3/kv/put", &put).is_some(), "put k{i}");
    }
    assert_eq!(count(), 40);
    for _ in 0..2 {
        etcd.kill();
        m.ctl("crash");
        etcd = start();
        assert_eq!(count(), 40, "etcd lost an acknowledged put");
    }
}

const ZK_CP: &str =
    "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar";

fn zookeeper(cfg: &Path, log: &Path) -> Daemon {
    let child = Command::new("java")
        .args([
            "-Xmx96m",
            "-cp",
            ZK_CP,
            "org.apache.zookeeper.server.ZooKeeperServerMain",
        ])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap()) // slf4j-simple logs there
        .spawn()
        .expect("start zookeeper");
    Daemon(Some(child))
}

fn zk_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("java")
        .args([
            "-cp",
            ZK_CP,
            "org.apache.zookeeper.ZooKeeperMain",
            "-server",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

// ZooKeeper fsyncs its transaction log before answering, but not the
// snapshot it takes at startup. A power cut with nothing written back
// leaves an empty snapshot.0 beside a valid log, and ZooKeeper refuses to
// start ("No snapshot found, but there are log entries"). Once the
// kernel's writeback would have written the snapshot (--writeback-secs),
// every acknowledged znode survives.
#[test]
fn zookeeper_needs_its_startup_snapshot_written_back() {
    if !Path::new("/usr/share/java/zookeeper.jar").exists() {
        skip("ZooKeeper is not installed");
        return;
    }
    for writeback in [false, true] {
        let m = if writeback {
            Mount::with_args(&["--writeback-secs", "1"])
        } else {
            Mount::new()
        };
        let port = free_port();
        let cfg = m.dir.path().join("zoo.cfg");
        let log = m.dir.path().join("zk.log");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=1000\ndataDir={}/data\nclientPort={port}\nadmin.enableServer=false\n",
                m.mnt.display()
            ),
        )
        .unwrap();
        let mut zk = zookeeper(&cfg, &log);
        assert!(
            wait_for(60, || zk_cli(port, &["ls", "/"])
                .is_some_and(|o| o.contains("zookeeper]"))),
            "zookeeper did not serve on the mount"
        );
        if writeback {
            assert!(wait_for(20, || m
                .ctl("status")
                .starts_with("unsynced_files=0 ")));
        }
        for k in ["/a", "/b", "/c"] {
            assert!(zk_cli(port, &["create", k, "v"]).is_some(), "create {k}");
        }
        zk.kill();
        m.ctl("crash");
        let mut zk = zookeeper(&cfg, &log);
        if writeback {
            assert!(
                wait_for(60, || zk_cli(port, &["ls", "/"])
                    .is_some_and(|o| o.contains("[a, b, c, zookeeper]"))),
                "znodes lost after a crash with writeback"
            );
        } else {
            let exited = wait_for(60, || {
                matches!(zk.0.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))))
            });
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                exited && text.contains("No snapshot found, but there are log entries"),
                "expected ZooKeeper to refuse its unsynced snapshot; log:\n{text}"
            );
        }
    }
}
