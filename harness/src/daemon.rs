//! Daemons on nodes that any later process can restart.
//!
//! A daemon lives in `/opt/shakedown/<name>/`: `start.sh` (which starts it
//! unless it already runs), `pid` (pid and start time, see [`pidfile`]) and
//! `log`. Because the start command sits
//! on the node, a kill fault only has to note the script in
//! [`KILLED`](crate::nemesis::KILLED) for any heal, from this run or from
//! `shakedown heal` after a crash, to bring the daemon back.

use crate::control::{shell_quote, ControlError, Remote};
use crate::pidfile;
use std::time::{Duration, Instant};

pub const ROOT: &str = "/opt/shakedown";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// One word: the directory's name, e.g. "etcd".
    pub name: String,
}

impl Daemon {
    pub fn new(name: &str) -> Daemon {
        Daemon { name: name.into() }
    }

    pub fn dir(&self) -> String {
        format!("{ROOT}/{}", self.name)
    }

    pub fn pidfile(&self) -> String {
        format!("{}/pid", self.dir())
    }

    pub fn log(&self) -> String {
        format!("{}/log", self.dir())
    }

    pub fn start_script(&self) -> String {
        format!("{}/start.sh", self.dir())
    }

    /// The script that starts `command` detached (in `cwd`), unless the
    /// process its pidfile names still runs; it prints the pid.
    pub fn script(&self, command: &str, cwd: &str) -> String {
        let (pid, log) = (self.pidfile(), self.log());
        format!(
            "#!/bin/sh\n\
             # Written by shakedown: starts {name} unless it runs; heal runs it after a kill.\n\
             {live}\n\
             if [ -n \"$p\" ]; then echo \"$p\"; exit 0; fi\n\
             cd {cwd} || exit 1\n\
             # On local hosts with clock faults: the faked clock (libfaketime).\n\
             if [ -f {clock_env} ]; then . {clock_env}; fi\n\
             nohup setsid sh -c {cmd} >>{log} 2>&1 </dev/null &\n\
             {record}\n\
             echo $!\n",
            name = self.name,
            live = pidfile::live(&pid),
            record = pidfile::record(&pid),
            cwd = shell_quote(cwd),
            cmd = shell_quote(&format!("exec {command}")),
            clock_env = crate::nemesis::CLOCK_ENV,
        )
    }

    /// Shell: exits 0 while the daemon's process runs (a paused one counts).
    pub fn running_check(&self) -> String {
        format!("{}; [ -n \"$p\" ]", pidfile::live(&self.pidfile()))
    }

    /// Uploads the control host's file `local` as `<dir>/<name>` (mode 755);
    /// `hint` says how to get the file when it cannot be read.
    pub fn install(
        &self,
        node: &mut dyn Remote,
        local: &std::path::Path,
        name: &str,
        hint: &str,
    ) -> Result<(), ControlError> {
        let bin = std::fs::read(local).map_err(|e| ControlError {
            node: "control".into(),
            what: format!("cannot read {} ({hint})", local.display()),
            command: None,
            code: None,
            stderr: e.to_string(),
        })?;
        node.run(
            &format!("mkdir -p {}/data", self.dir()),
            Duration::from_secs(10),
        )?;
        node.upload(&bin, &format!("{}/{name}", self.dir()), 0o755)
    }

    /// Writes the start script and runs it; returns the pid.
    pub fn start(
        &self,
        node: &mut dyn Remote,
        command: &str,
        cwd: &str,
    ) -> Result<u32, ControlError> {
        node.run(
            &format!("mkdir -p {} {}", self.dir(), shell_quote(cwd)),
            Duration::from_secs(10),
        )?;
        node.upload(
            self.script(command, cwd).as_bytes(),
            &self.start_script(),
            0o755,
        )?;
        self.restart(node)
    }

    /// Runs the start script again (a no-op while the daemon runs).
    pub fn restart(&self, node: &mut dyn Remote) -> Result<u32, ControlError> {
        let out = node.run(&self.start_script(), Duration::from_secs(10))?;
        out.trim().parse().map_err(|_| ControlError {
            node: node.name().into(),
            what: format!("{} did not report its pid", self.name),
            command: Some(self.start_script()),
            code: None,
            stderr: out.trim().into(),
        })
    }

    /// Whether the daemon's process exists (a paused one counts).
    pub fn running(&self, node: &mut dyn Remote) -> Result<bool, ControlError> {
        Ok(node
            .exec(&self.running_check(), Duration::from_secs(10))?
            .code
            == 0)
    }

    /// Stops the daemon: SIGCONT (it may be paused), SIGTERM, then SIGKILL
    /// to its process group after `grace`. Nothing to do if it is not
    /// running (its pid is never signalled once its process is gone).
    pub fn stop(&self, node: &mut dyn Remote, grace: Duration) -> Result<(), ControlError> {
        let pid = self.pidfile();
        let ms = grace.as_millis().max(10) / 10;
        node.run(
            &format!(
                "{live}; if [ -z \"$p\" ]; then rm -f {pid}; exit 0; fi; \
                 kill -s CONT -- -$p 2>/dev/null; kill -s CONT $p 2>/dev/null; kill -s TERM $p 2>/dev/null; \
                 for i in $(seq {ms}); do {same} || break; sleep 0.01; done; \
                 kill -s KILL -- -$p 2>/dev/null; {same} && kill -s KILL $p 2>/dev/null; \
                 for i in $(seq 200); do kill -0 -- -$p 2>/dev/null || {same} || break; sleep 0.01; done; \
                 rm -f {pid}",
                live = pidfile::live(&pid),
                same = pidfile::still_same(),
            ),
            grace + Duration::from_secs(10),
        )
        .map(|_| ())
    }

    /// Waits until `check` (a shell command on the node) exits 0.
    pub fn wait_until(
        &self,
        node: &mut dyn Remote,
        check: &str,
        timeout: Duration,
    ) -> Result<(), ControlError> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = node.exec(check, Duration::from_secs(10))?;
            if out.code == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ControlError {
                    node: node.name().into(),
                    what: format!(
                        "{} was not ready within {} s (see {})",
                        self.name,
                        timeout.as_secs(),
                        self.log()
                    ),
                    command: Some(check.into()),
                    code: Some(out.code),
                    stderr: out.stderr.trim().chars().take(300).collect(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the daemon and removes its directory (data, logs, scripts).
    pub fn wipe(&self, node: &mut dyn Remote) -> Result<(), ControlError> {
        self.stop(node, Duration::from_secs(2))?;
        node.run(&format!("rm -rf {}", self.dir()), Duration::from_secs(30))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_and_checks_before_starting() {
        let d = Daemon::new("etcd");
        let s = d.script(
            "/opt/shakedown/etcd/etcd --name 'n1'",
            "/opt/shakedown/etcd",
        );
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(&pidfile::live("/opt/shakedown/etcd/pid")));
        assert!(s.contains(&pidfile::record("/opt/shakedown/etcd/pid")));
        assert!(s.contains("'exec /opt/shakedown/etcd/etcd --name '\\''n1'\\'''"));
        assert!(s.contains(">>/opt/shakedown/etcd/log"));
    }
}
