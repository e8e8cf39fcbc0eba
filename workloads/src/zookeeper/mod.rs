//! ZooKeeper (`--system zookeeper`): Debian's zookeeperd (a Java runtime
//! and jars, too big to upload) must be installed on every node; shakedown
//! writes one zoo.cfg per node and runs its own server process from those
//! jars. Clients (the zookeeper-client crate) in [`client`].

pub mod client;
pub mod def;

use harness::control::{shell_quote, ControlError, Remote};
use harness::daemon::Daemon;
use harness::needs::{need, Need};
use harness::system::{NodeInfo, System};
use std::time::Duration;

/// The jar looked for on the control host (for the version) and on nodes.
pub const JAR: &str = "/usr/share/java/zookeeper.jar";
pub const JAVA: &str = "/usr/bin/java";
pub const PORT: u16 = 2181;
/// Debian's class path, with a logger that prints timestamps to stderr.
const CLASSPATH: &str =
    "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar";

#[derive(Default)]
pub struct ZooKeeper;

impl ZooKeeper {
    /// zoo.cfg of every node (they differ only in the myid file). Ticks of
    /// one second: sessions of 2 to 20 s, a follower cut off is dropped
    /// after 3 s.
    pub fn config(&self, nodes: &[NodeInfo]) -> String {
        let d = self.daemon().dir();
        let mut c = format!(
            "tickTime=1000\ninitLimit=10\nsyncLimit=3\ndataDir={d}/data\nclientPort={PORT}\n\
             4lw.commands.whitelist=ruok,srvr\nadmin.enableServer=false\n"
        );
        for (i, n) in nodes.iter().enumerate() {
            c.push_str(&format!("server.{}={}:2888:3888\n", i + 1, n.ip));
        }
        c
    }

    pub fn command(&self) -> String {
        let d = self.daemon().dir();
        format!(
            "{JAVA} -Xms32m -Xmx96m -XX:+UseSerialGC -cp {CLASSPATH} \
             -Dorg.slf4j.simpleLogger.showDateTime=true \
             -Dorg.slf4j.simpleLogger.dateTimeFormat={fmt} \
             -Dzookeeper.log.dir={d} \
             org.apache.zookeeper.server.quorum.QuorumPeerMain {d}/zoo.cfg",
            fmt = shell_quote("yyyy-MM-dd HH:mm:ss,SSS"),
        )
    }
}

/// A bash probe: a four-letter word to the local server, its answer grepped.
fn probe(word: &str, pattern: &str) -> String {
    harness::control::tcp_probe(
        "127.0.0.1",
        PORT,
        word,
        2,
        &format!("grep -q {}", shell_quote(pattern)),
    )
}

impl System for ZooKeeper {
    fn name(&self) -> &str {
        "zookeeper"
    }

    fn version(&self) -> Option<String> {
        // The jar's name in Debian: /usr/share/java/zookeeper-3.8.0.jar.
        std::fs::read_dir("/usr/share/java")
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let v = n.strip_prefix("zookeeper-")?.strip_suffix(".jar")?;
                v.starts_with(|c: char| c.is_ascii_digit())
                    .then(|| v.to_string())
            })
            .next()
    }

    fn daemon(&self) -> Daemon {
        Daemon::new("zookeeper")
    }

    fn node_needs(&self) -> Vec<Need> {
        vec![need(
            JAVA,
            "openjdk-17-jre-headless",
            "ZooKeeper's server (zookeeperd's Java)",
        )]
    }

    fn ports(&self) -> Vec<u16> {
        vec![PORT, 2888, 3888]
    }

    fn setup(
        &self,
        node: &mut dyn Remote,
        i: usize,
        nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let d = self.daemon();
        let check =
            format!("test -x {JAVA} && test -r {JAR} && test -r /usr/share/java/slf4j-simple.jar");
        if node.exec(&check, Duration::from_secs(10))?.code != 0 {
            return Err(ControlError {
                node: node.name().into(),
                what: format!(
                    "no ZooKeeper here ({JAVA} and {JAR}): install Debian's zookeeperd and libslf4j-java on the node"
                ),
                command: Some(check),
                code: None,
                stderr: String::new(),
            });
        }
        node.run(
            &format!("mkdir -p {}/data", d.dir()),
            Duration::from_secs(10),
        )?;
        node.upload(
            self.config(nodes).as_bytes(),
            &format!("{}/zoo.cfg", d.dir()),
            0o644,
        )?;
        node.upload(
            format!("{}\n", i + 1).as_bytes(),
            &format!("{}/data/myid", d.dir()),
            0o644,
        )?;
        d.start(node, &self.command(), &d.dir())?;
        Ok(())
    }

    fn await_ready(
        &self,
        node: &mut dyn Remote,
        _i: usize,
        _nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        // Serving: in a quorum, as its leader or a follower.
        self.daemon().wait_until(
            node,
            &probe("srvr", "^Mode: \\(leader\\|follower\\)"),
            Duration::from_secs(60),
        )
    }

    fn primary_probe(&self) -> Option<String> {
        Some(probe("srvr", "^Mode: leader"))
    }
}
