//! PostgreSQL (`--system postgres`): one independent server per node from
//! Debian's postgresql-15 (its binaries and libraries must be on the node:
//! they are not uploaded), run as the `postgres` user with
//! max_prepared_transactions > 0; the bank's accounts spread over the first
//! `shards` servers. The client in [`client`] is the coordinator of the
//! documents' two-phase commit.

pub mod client;
pub mod def;
pub mod txn;

use harness::control::{shell_quote, ControlError, Remote};
use harness::daemon::Daemon;
use harness::needs::{need, Need};
use harness::system::{NodeInfo, System};
use std::time::Duration;

pub const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const PORT: u16 = 5432;
/// Every account starts with this balance.
pub const BALANCE: i64 = 100;

#[derive(Clone, Debug)]
pub struct PgOpts {
    pub accounts: usize,
    pub shards: usize,
    /// PostgreSQL's synchronous_commit: "off" acknowledges a commit before
    /// its WAL is flushed (a power cut may lose it).
    pub synchronous_commit: bool,
}

impl PgOpts {
    /// Account names, a0, a1, ...
    pub fn names(&self) -> Vec<String> {
        account_names(self.accounts)
    }

    /// The shard (node index) of account `i`.
    pub fn shard_of(&self, i: usize) -> usize {
        i % self.shards
    }
}

/// The names of `n` bank accounts: a0, a1, ...
pub fn account_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("a{i}")).collect()
}

pub struct Postgres {
    pub opts: PgOpts,
}

impl Postgres {
    fn psql(&self, sql: &str) -> String {
        let d = self.daemon().dir();
        format!(
            "runuser -u postgres -- {BIN}/psql -h {d} -p {PORT} -U postgres -d postgres -v ON_ERROR_STOP=1 -q -c {}",
            shell_quote(sql)
        )
    }
}

impl Postgres {
    /// The SQL that readies node `i` (index): the tables, and this shard's
    /// accounts with the initial balance unless they exist. Run again after
    /// every restart, so it must never wait for a row lock: a server
    /// restarted after a crash recovers its prepared (in-doubt)
    /// transactions with their row locks, and they hold them until the
    /// operator resolves them in the final phase. `INSERT ... ON CONFLICT DO
    /// NOTHING` on such a row waits for that transaction (it hung the heal
    /// of a lost-writes run); a plain read does not, so accounts that exist
    /// are skipped by `NOT EXISTS` and nothing is inserted. `lock_timeout`
    /// turns any wait left into an error naming the lock.
    fn ready_sql(&self, i: usize) -> String {
        let mine: Vec<String> = self
            .opts
            .names()
            .iter()
            .enumerate()
            .filter(|(k, _)| self.opts.shard_of(*k) == i)
            .map(|(_, n)| format!("('{n}', {BALANCE})"))
            .collect();
        // And the list-append and rw-register workloads' tables (used on
        // node 1 only).
        let mut sql = "SET lock_timeout = '10s'; \
             CREATE TABLE IF NOT EXISTS accounts (id text PRIMARY KEY, balance bigint NOT NULL); \
             CREATE TABLE IF NOT EXISTS lists (k bigint PRIMARY KEY, v bigint[] NOT NULL); \
             CREATE TABLE IF NOT EXISTS registers (k bigint PRIMARY KEY, v bigint NOT NULL);"
            .to_string();
        if !mine.is_empty() {
            sql += &format!(
                "INSERT INTO accounts SELECT v.id, v.balance FROM (VALUES {}) AS v(id, balance) \
                 WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = v.id);",
                mine.join(",")
            );
        }
        sql
    }
}

impl System for Postgres {
    fn name(&self) -> &str {
        "postgres"
    }

    fn version(&self) -> Option<String> {
        let out = std::process::Command::new(format!("{BIN}/postgres"))
            .arg("--version")
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()
            .map(String::from)
    }

    fn daemon(&self) -> Daemon {
        Daemon::new("postgres")
    }

    fn node_needs(&self) -> Vec<Need> {
        vec![
            need(
                "/usr/lib/postgresql/15/bin/postgres",
                "postgresql-15",
                "the server",
            ),
            need(
                "/usr/lib/postgresql/15/bin/initdb",
                "postgresql-15",
                "a fresh cluster per node",
            ),
            need(
                "/usr/lib/postgresql/15/bin/psql",
                "postgresql-client-15",
                "accounts and readiness",
            ),
            need("runuser", "util-linux", "commands as the postgres user"),
            need("setpriv", "util-linux", "the server as the postgres user"),
        ]
    }

    fn ports(&self) -> Vec<u16> {
        vec![PORT]
    }

    fn setup(
        &self,
        node: &mut dyn Remote,
        _i: usize,
        _nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let d = self.daemon();
        let dir = d.dir();
        let check = format!("test -x {BIN}/postgres && id postgres >/dev/null");
        if node.exec(&check, Duration::from_secs(10))?.code != 0 {
            return Err(ControlError {
                node: node.name().into(),
                what: format!("no PostgreSQL 15 here ({BIN}/postgres and a postgres user): install Debian's postgresql-15 on the node"),
                command: Some(check),
                code: None,
                stderr: String::new(),
            });
        }
        // A fresh cluster, trusting the test network; prepared transactions on.
        node.run(
            &format!(
                "mkdir -p {dir}/data && find {dir}/data -mindepth 1 -delete && chown postgres:postgres {dir} {dir}/data && chmod 700 {dir}/data && \
                 runuser -u postgres -- {BIN}/initdb -D {dir}/data -U postgres -A trust --no-sync -E UTF8 >/dev/null && \
                 echo 'host all all 0.0.0.0/0 trust' >> {dir}/data/pg_hba.conf"
            ),
            Duration::from_secs(60),
        )?;
        // setpriv execs (no child in between): the pid is the postmaster's.
        let command = format!(
            "setpriv --reuid=postgres --regid=postgres --init-groups {BIN}/postgres -D {dir}/data -p {PORT} -c listen_addresses='*' \
             -c unix_socket_directories={dir} -c max_prepared_transactions=100 -c max_connections=200 \
             -c shared_buffers=16MB -c log_line_prefix='%m [%p] ' -c log_min_messages=notice \
             -c synchronous_commit={}",
            if self.opts.synchronous_commit { "on" } else { "off" }
        );
        d.start(node, &command, &dir)?;
        Ok(())
    }

    fn await_ready(
        &self,
        node: &mut dyn Remote,
        i: usize,
        _nodes: &[NodeInfo],
    ) -> Result<(), ControlError> {
        let d = self.daemon();
        d.wait_until(
            node,
            &format!("{BIN}/pg_isready -q -h {} -p {PORT}", d.dir()),
            Duration::from_secs(30),
        )?;
        node.run(&self.psql(&self.ready_sql(i)), Duration::from_secs(30))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readiness runs after every restart, when recovered in-doubt
    /// transactions may hold account rows: nothing in it may wait for them.
    #[test]
    fn readiness_never_waits_for_a_row_lock() {
        let pg = Postgres {
            opts: PgOpts {
                accounts: 4,
                shards: 2,
                synchronous_commit: true,
            },
        };
        let sql = pg.ready_sql(1);
        assert!(sql.starts_with("SET lock_timeout"), "{sql}");
        assert!(!sql.contains("ON CONFLICT"), "{sql}");
        assert!(sql.contains("('a1', 100),('a3', 100)"), "{sql}");
        assert!(sql.contains("WHERE NOT EXISTS"), "{sql}");
        assert!(
            !pg.ready_sql(2).contains("INSERT"),
            "no accounts on a third node"
        );
    }
}
