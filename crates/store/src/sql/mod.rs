//! Shared SQL backends: PostgreSQL and MySQL/MariaDB behind [`LeaseStore`], so several leased
//! processes can serve the same pools from one database.
//!
//! **No duplicate address across servers.** The address is the table's primary key, and a lease
//! row carries the client that holds it. A commit is an upsert that only takes effect when the
//! row is free or already this client's:
//! - PostgreSQL: `INSERT … ON CONFLICT (ip) DO UPDATE … WHERE leased_leases.client_id =
//!   EXCLUDED.client_id OR state IN ('released','expired') OR expires <= now`; zero rows
//!   affected means another client holds it. Two servers inserting the same new address
//!   serialise on the key: the second waits for the first to commit, then evaluates the `WHERE`
//!   against the committed row. This is plain SQL that CockroachDB and YugabyteDB also accept.
//! - MySQL/MariaDB: no `ON CONFLICT … WHERE`, so a conditional `UPDATE … WHERE ip = ? AND (same
//!   condition)` (sqlx connects with CLIENT_FOUND_ROWS, so "affected" counts matched rows), and
//!   when it matched nothing an `INSERT`, whose duplicate-key error (1062) means "held by
//!   another client". A failed statement does not abort a MySQL transaction. Connections use
//!   READ COMMITTED: under InnoDB's default, the `UPDATE` of a missing address locks the gap
//!   where it would go, and two servers inserting into one gap deadlock. A transaction the
//!   database still aborts to break a deadlock is run again ([`COMMIT_ATTEMPTS`]).
//!
//! We chose a unique key + conditional upsert over `SELECT … FOR UPDATE SKIP LOCKED` on a
//! pre-populated address table: it needs no pre-population (pools can change on reload), keeps
//! one round trip per lease, and allocation stays in the in-memory core, which is what makes
//! leased fast; the database only arbitrates.
//!
//! **Conflicts commit the rest.** One `commit` is one transaction for the whole group. Leases
//! another client holds are skipped and reported as [`StoreError::Conflict`]; every other
//! lease of the group *is* committed when that error is returned. (Failing the whole group
//! would make one contested address delay every other client's ACK by a retry.) io sends the
//! replies whose leases are not in the conflict list and learns the real holder of the others.
//!
//! **Durable before ACK.** `commit` returns only after the transaction's `COMMIT` returned,
//! i.e. after the database made it durable (its own fsync/replication settings apply).
//!
//! Timestamps are Unix seconds in BIGINT columns (portable across all three dialects, no time
//! zone questions); `updated_ms` is the *database's* clock, so the periodic sync of what other
//! servers wrote does not depend on the servers' clocks agreeing.

mod chain;
mod history;

pub use chain::{ChainOutcome, SqlChain};
pub use history::{insert_history, query_history, run_user_statement};

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use leased_config::SqlBackend;
use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};
use sqlx::Row;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::{LeaseStore, StoreError};

/// How long one database operation may take before it counts as "database unreachable".
/// Short: a DHCP client retries in seconds, and a stuck commit holds every ACK behind it.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times one group is tried when the database aborts its transaction to break a
/// deadlock (MySQL/MariaDB can, on the locks of rows and of the gaps between them).
pub const COMMIT_ATTEMPTS: u32 = 3;

/// How long to wait for a pooled connection (also bounds how long a dead database blocks).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Overlap of the periodic sync window: transactions commit in a different order than they
/// took their `updated_ms`, so each sync re-reads this much history (re-applying a row is
/// harmless).
pub const SYNC_OVERLAP_MS: i64 = 10_000;

/// Expands `${NAME}` references from the environment, so secrets stay out of config files.
/// An unset variable is an error naming it (never an empty password silently).
pub fn expand_env(url: &str) -> Result<String, String> {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(i) = rest.find("${") {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 2..).unwrap_or_default();
        let Some(end) = after.find('}') else {
            return Err("unterminated ${ in the database URL".into());
        };
        let name = after.get(..end).unwrap_or_default();
        let value = std::env::var(name).map_err(|_| {
            format!("environment variable {name} (used in the database URL) is not set")
        })?;
        out.push_str(&value);
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// A connection pool to one of the two dialects. Cheap to clone. Each pool belongs to the tokio
/// runtime it was created on.
#[derive(Clone, Debug)]
pub enum Db {
    /// PostgreSQL (or a compatible distributed database).
    Pg(PgPool),
    /// MySQL or MariaDB.
    My(MySqlPool),
}

/// Marks SQL text as audited for sqlx. Every string passed here is either a constant of this
/// module or an operator's query from the config file, with `:Name` placeholders already turned
/// into bind markers; packet data only ever travels as bound parameters.
pub(crate) fn safe(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_string())
}

/// The database rolled the transaction back to break a deadlock or a serialisation conflict
/// (SQLSTATE 40001; PostgreSQL's deadlock 40P01): trying it again is the documented remedy.
fn aborted_by_the_database(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40001" | "40P01")))
}

fn sql_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Sql {
        message: e.to_string(),
    }
}

impl Db {
    /// Connects (lazily: the first query opens the first connection, so a server can start
    /// its sync loop while the database is still down). `url` is already expanded.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let backend = SqlBackend::from_url(url).ok_or_else(|| StoreError::Sql {
            message: "the database URL must start with postgres://, postgresql://, mysql:// or mariadb://".into(),
        })?;
        Ok(match backend {
            SqlBackend::Postgres => Db::Pg(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy(url)
                    .map_err(sql_err)?,
            ),
            SqlBackend::Mysql => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                Db::My(
                    MySqlPoolOptions::new()
                        .max_connections(max_connections)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        // InnoDB's default (REPEATABLE READ) locks the gap where a missing
                        // address would go: two servers inserting new addresses into one
                        // gap deadlock. The conflict rule needs only the key and row locks.
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                sqlx::raw_sql(
                                    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                                )
                                .execute(conn)
                                .await
                                .map(drop)
                            })
                        })
                        .connect_lazy(&url)
                        .map_err(sql_err)?,
                )
            }
        })
    }

    /// The dialect.
    pub fn backend(&self) -> SqlBackend {
        match self {
            Db::Pg(_) => SqlBackend::Postgres,
            Db::My(_) => SqlBackend::Mysql,
        }
    }

    /// Creates leased's tables when missing (idempotent: `leased db init` and every start),
    /// and widens what an older version created too narrow.
    pub async fn init_schema(&self) -> Result<(), StoreError> {
        match self {
            Db::Pg(p) => {
                for stmt in PG_SCHEMA {
                    sqlx::query(stmt).execute(p).await.map_err(sql_err)?;
                }
            }
            Db::My(p) => {
                for stmt in MY_SCHEMA {
                    sqlx::query(stmt).execute(p).await.map_err(sql_err)?;
                }
            }
        }
        self.widen_client_ids().await
    }

    /// Makes an older schema's VARCHAR(600) client identifiers (300 bytes in hex) TEXT:
    /// option 61 may be split over several instances (RFC 3396), a request carries
    /// kilobytes of it, and a row the column refuses fails the commit of its whole group.
    /// Checked first, so that later starts do not lock the table.
    async fn widen_client_ids(&self) -> Result<(), StoreError> {
        for table in ["leased_leases", "leased_history"] {
            let narrow: i64 = match self {
                Db::Pg(p) => sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.columns WHERE \
                     table_schema = current_schema() AND table_name = $1 AND \
                     column_name = 'client_id' AND data_type = 'character varying'",
                )
                .bind(table)
                .fetch_one(p)
                .await
                .map_err(sql_err)?,
                Db::My(p) => sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.columns WHERE \
                     table_schema = DATABASE() AND table_name = ? AND \
                     column_name = 'client_id' AND data_type = 'varchar'",
                )
                .bind(table)
                .fetch_one(p)
                .await
                .map_err(sql_err)?,
            };
            if narrow == 0 {
                continue;
            }
            tracing::info!(table, "widening the client_id column to TEXT");
            match self {
                Db::Pg(p) => sqlx::query(safe(&format!(
                    "ALTER TABLE {table} ALTER COLUMN client_id TYPE TEXT"
                )))
                .execute(p)
                .await
                .map(drop),
                Db::My(p) => sqlx::query(safe(&format!(
                    "ALTER TABLE {table} MODIFY client_id TEXT NOT NULL"
                )))
                .execute(p)
                .await
                .map(drop),
            }
            .map_err(sql_err)?;
        }
        Ok(())
    }

    /// Every lease row.
    pub async fn load_all(&self) -> Result<Vec<Lease>, StoreError> {
        Ok(self
            .changed_since(i64::MIN)
            .await?
            .0
            .into_iter()
            .map(|(l, _)| l)
            .collect())
    }

    /// Rows whose `updated_ms` is after `since` (database clock), with the server that wrote
    /// each, and the highest `updated_ms` seen (or `since`).
    pub async fn changed_since(
        &self,
        since: i64,
    ) -> Result<(Vec<(Lease, String)>, i64), StoreError> {
        let mut out = Vec::new();
        let mut max = since;
        let sql =
            format!("SELECT {COLUMNS}, server, updated_ms FROM leased_leases WHERE updated_ms > ");
        macro_rules! collect {
            ($rows:expr) => {
                for row in $rows {
                    let updated: i64 = row.try_get("updated_ms").map_err(sql_err)?;
                    max = max.max(updated);
                    let server: String = row.try_get("server").map_err(sql_err)?;
                    match lease_from_row(&row) {
                        Ok(l) => out.push((l, server)),
                        Err(e) => tracing::warn!(error = %e, "skipping an unreadable lease row"),
                    }
                }
            };
        }
        match self {
            Db::Pg(p) => {
                let rows = sqlx::query(safe(&format!("{sql}$1")))
                    .bind(since)
                    .fetch_all(p)
                    .await
                    .map_err(sql_err)?;
                collect!(rows);
            }
            Db::My(p) => {
                let rows = sqlx::query(safe(&format!("{sql}?")))
                    .bind(since)
                    .fetch_all(p)
                    .await
                    .map_err(sql_err)?;
                collect!(rows);
            }
        }
        Ok((out, max))
    }

    /// The current row for `ip`, if any (after a conflict: who really holds it).
    pub async fn lease_at(&self, ip: Ipv4Addr) -> Result<Option<Lease>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM leased_leases WHERE ip = ");
        let key = i64::from(u32::from(ip));
        match self {
            Db::Pg(p) => sqlx::query(safe(&format!("{sql}$1")))
                .bind(key)
                .fetch_optional(p)
                .await
                .map_err(sql_err)?
                .map(|r| lease_from_row(&r))
                .transpose(),
            Db::My(p) => sqlx::query(safe(&format!("{sql}?")))
                .bind(key)
                .fetch_optional(p)
                .await
                .map_err(sql_err)?
                .map(|r| lease_from_row(&r))
                .transpose(),
        }
    }

    /// The database answers (a cheap `SELECT 1`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Db::Pg(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            Db::My(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        }
        .map_err(sql_err)
    }

    /// Commits one group in one transaction; see the module doc for the conflict rule.
    /// `now` decides whether an existing row has lapsed. A transaction the database aborted
    /// to break a deadlock is run again (at most [`COMMIT_ATTEMPTS`] times in all): it left
    /// nothing behind, and the upserts are idempotent.
    pub async fn commit_group(
        &self,
        leases: &[Lease],
        server: &str,
        now: u64,
    ) -> Result<Vec<Ipv4Addr>, StoreError> {
        // Address order (stable: one address's changes keep their order): two servers
        // committing overlapping groups lock rows in the same order and cannot deadlock.
        let mut order: Vec<&Lease> = leases.iter().collect();
        order.sort_by_key(|l| u32::from(l.ip));
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let mut attempt = 1;
        loop {
            match self.commit_ordered(&order, server, now).await {
                Err(e) if attempt < COMMIT_ATTEMPTS && aborted_by_the_database(&e) => {
                    tracing::debug!(attempt, error = %e, "lease commit aborted by the database; retrying");
                    attempt += 1;
                }
                done => return done.map_err(sql_err),
            }
        }
    }

    /// One attempt of [`Db::commit_group`], `order` already sorted.
    async fn commit_ordered(
        &self,
        order: &[&Lease],
        server: &str,
        now: i64,
    ) -> Result<Vec<Ipv4Addr>, sqlx::Error> {
        let mut conflicts = Vec::new();
        match self {
            Db::Pg(p) => {
                let mut tx = p.begin().await?;
                let sql = format!(
                    "INSERT INTO leased_leases ({COLUMNS}, server, updated_ms) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, {PG_NOW_MS}) \
                     ON CONFLICT (ip) DO UPDATE SET client_id = EXCLUDED.client_id, \
                     hwaddr = EXCLUDED.hwaddr, hostname = EXCLUDED.hostname, \
                     state = EXCLUDED.state, starts = EXCLUDED.starts, \
                     expires = EXCLUDED.expires, first_seen = EXCLUDED.first_seen, \
                     circuit_id = EXCLUDED.circuit_id, remote_id = EXCLUDED.remote_id, \
                     subscriber_id = EXCLUDED.subscriber_id, server = EXCLUDED.server, \
                     updated_ms = EXCLUDED.updated_ms \
                     WHERE leased_leases.client_id = EXCLUDED.client_id \
                     OR leased_leases.state IN ('released', 'expired') \
                     OR leased_leases.expires <= $13"
                );
                for &l in order {
                    let r = LeaseRow::of(l);
                    let done = sqlx::query(safe(&sql))
                        .bind(r.ip)
                        .bind(&r.client_id)
                        .bind(&r.hwaddr)
                        .bind(&r.hostname)
                        .bind(r.state)
                        .bind(r.starts)
                        .bind(r.expires)
                        .bind(r.first_seen)
                        .bind(&r.circuit_id)
                        .bind(&r.remote_id)
                        .bind(&r.subscriber_id)
                        .bind(server)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        conflicts.push(l.ip);
                    }
                }
                tx.commit().await?;
            }
            Db::My(p) => {
                let mut tx = p.begin().await?;
                let update = format!(
                    "UPDATE leased_leases SET client_id = ?, hwaddr = ?, hostname = ?, \
                     state = ?, starts = ?, expires = ?, first_seen = ?, circuit_id = ?, \
                     remote_id = ?, subscriber_id = ?, server = ?, updated_ms = {MY_NOW_MS} \
                     WHERE ip = ? AND (client_id = ? OR state IN ('released', 'expired') \
                     OR expires <= ?)"
                );
                let insert = format!(
                    "INSERT INTO leased_leases ({COLUMNS}, server, updated_ms) VALUES \
                     (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {MY_NOW_MS})"
                );
                for &l in order {
                    let r = LeaseRow::of(l);
                    let done = sqlx::query(safe(&update))
                        .bind(&r.client_id)
                        .bind(&r.hwaddr)
                        .bind(&r.hostname)
                        .bind(r.state)
                        .bind(r.starts)
                        .bind(r.expires)
                        .bind(r.first_seen)
                        .bind(&r.circuit_id)
                        .bind(&r.remote_id)
                        .bind(&r.subscriber_id)
                        .bind(server)
                        .bind(r.ip)
                        .bind(&r.client_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() > 0 {
                        continue;
                    }
                    let inserted = sqlx::query(safe(&insert))
                        .bind(r.ip)
                        .bind(&r.client_id)
                        .bind(&r.hwaddr)
                        .bind(&r.hostname)
                        .bind(r.state)
                        .bind(r.starts)
                        .bind(r.expires)
                        .bind(r.first_seen)
                        .bind(&r.circuit_id)
                        .bind(&r.remote_id)
                        .bind(&r.subscriber_id)
                        .bind(server)
                        .execute(&mut *tx)
                        .await;
                    match inserted {
                        Ok(_) => {}
                        Err(sqlx::Error::Database(e))
                            if e.kind() == sqlx::error::ErrorKind::UniqueViolation =>
                        {
                            conflicts.push(l.ip);
                        }
                        Err(e) => return Err(e),
                    }
                }
                tx.commit().await?;
            }
        }
        Ok(conflicts)
    }
}

/// The lease columns, in bind order.
const COLUMNS: &str = "ip, client_id, hwaddr, hostname, state, starts, expires, first_seen, \
                       circuit_id, remote_id, subscriber_id";

/// The database clock in milliseconds.
const PG_NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";
const MY_NOW_MS: &str = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";

/// PostgreSQL schema (also CockroachDB/YugabyteDB SQL: no PL/pgSQL, no extensions).
const PG_SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS leased_leases (
        ip BIGINT NOT NULL PRIMARY KEY,
        client_id TEXT NOT NULL,
        hwaddr VARCHAR(64) NOT NULL,
        hostname VARCHAR(255) NULL,
        state VARCHAR(16) NOT NULL,
        starts BIGINT NOT NULL,
        expires BIGINT NOT NULL,
        first_seen BIGINT NOT NULL,
        circuit_id VARCHAR(600) NULL,
        remote_id VARCHAR(600) NULL,
        subscriber_id VARCHAR(600) NULL,
        server VARCHAR(255) NOT NULL,
        updated_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS leased_leases_updated ON leased_leases (updated_ms)",
    "CREATE TABLE IF NOT EXISTS leased_history (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        event VARCHAR(16) NOT NULL,
        mac VARCHAR(64) NOT NULL,
        client_id TEXT NOT NULL,
        ip VARCHAR(15) NOT NULL,
        hostname VARCHAR(255) NULL,
        giaddr VARCHAR(15) NULL,
        circuit_id VARCHAR(600) NULL,
        remote_id VARCHAR(600) NULL,
        server VARCHAR(255) NOT NULL)",
    "CREATE INDEX IF NOT EXISTS leased_history_at ON leased_history (at)",
];

/// MySQL/MariaDB schema (indexes inline: MySQL has no `CREATE INDEX IF NOT EXISTS`).
const MY_SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS leased_leases (
        ip BIGINT NOT NULL PRIMARY KEY,
        client_id TEXT NOT NULL,
        hwaddr VARCHAR(64) NOT NULL,
        hostname VARCHAR(255) NULL,
        state VARCHAR(16) NOT NULL,
        starts BIGINT NOT NULL,
        expires BIGINT NOT NULL,
        first_seen BIGINT NOT NULL,
        circuit_id VARCHAR(600) NULL,
        remote_id VARCHAR(600) NULL,
        subscriber_id VARCHAR(600) NULL,
        server VARCHAR(255) NOT NULL,
        updated_ms BIGINT NOT NULL,
        INDEX leased_leases_updated (updated_ms)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS leased_history (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        at BIGINT NOT NULL,
        event VARCHAR(16) NOT NULL,
        mac VARCHAR(64) NOT NULL,
        client_id TEXT NOT NULL,
        ip VARCHAR(15) NOT NULL,
        hostname VARCHAR(255) NULL,
        giaddr VARCHAR(15) NULL,
        circuit_id VARCHAR(600) NULL,
        remote_id VARCHAR(600) NULL,
        server VARCHAR(255) NOT NULL,
        INDEX leased_history_at (at)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
];

/// Bytes as lowercase hex (client ids, MACs and relay fields are binary; hex text keeps the
/// schema portable and readable in psql/mysql).
pub(crate) fn hex(b: &[u8]) -> String {
    leased_core::relay::to_hex(b)
}

fn unhex(col: &str, s: &str) -> Result<Vec<u8>, StoreError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    leased_wire::parse_hex(s).map_err(|_| StoreError::Sql {
        message: format!("column {col}: {s:?} is not hex"),
    })
}

/// Text for a database: PostgreSQL refuses NUL in text, and a host name is client input.
pub(crate) fn clean_text(s: &str) -> String {
    s.chars().filter(|c| *c != '\0').take(255).collect()
}

fn state_name(s: LeaseState) -> &'static str {
    match s {
        LeaseState::Offered => "offered",
        LeaseState::Bound => "bound",
        LeaseState::Released => "released",
        LeaseState::Expired => "expired",
        LeaseState::Declined => "declined",
    }
}

fn state_of(s: &str) -> Option<LeaseState> {
    Some(match s {
        "offered" => LeaseState::Offered,
        "bound" => LeaseState::Bound,
        "released" => LeaseState::Released,
        "expired" => LeaseState::Expired,
        "declined" => LeaseState::Declined,
        _ => return None,
    })
}

/// A lease as bind values.
struct LeaseRow {
    ip: i64,
    client_id: String,
    hwaddr: String,
    hostname: Option<String>,
    state: &'static str,
    starts: i64,
    expires: i64,
    first_seen: i64,
    circuit_id: Option<String>,
    remote_id: Option<String>,
    subscriber_id: Option<String>,
}

impl LeaseRow {
    fn of(l: &Lease) -> Self {
        let secs = |t: Timestamp| i64::try_from(t.0).unwrap_or(i64::MAX);
        Self {
            ip: i64::from(u32::from(l.ip)),
            client_id: hex(&l.client_id.0),
            hwaddr: hex(&l.hwaddr.0),
            hostname: l.hostname.as_deref().map(clean_text),
            state: state_name(l.state),
            starts: secs(l.starts),
            expires: secs(l.expires),
            first_seen: secs(l.first_seen),
            circuit_id: l.circuit_id.as_deref().map(hex),
            remote_id: l.remote_id.as_deref().map(hex),
            subscriber_id: l.subscriber_id.as_deref().map(hex),
        }
    }
}

fn lease_from_row<R: Row>(row: &R) -> Result<Lease, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let int = |c: &str| -> Result<i64, StoreError> { row.try_get::<i64, _>(c).map_err(sql_err) };
    let text = |c: &str| -> Result<Option<String>, StoreError> {
        row.try_get::<Option<String>, _>(c).map_err(sql_err)
    };
    let bytes = |c: &str| -> Result<Option<Vec<u8>>, StoreError> {
        text(c)?.map(|s| unhex(c, &s)).transpose()
    };
    let ts = |c: &str| -> Result<Timestamp, StoreError> {
        Ok(Timestamp(u64::try_from(int(c)?).unwrap_or(0)))
    };
    let ip = u32::try_from(int("ip")?).map_err(|_| StoreError::Sql {
        message: "column ip: not an IPv4 address".into(),
    })?;
    let state = text("state")?.unwrap_or_default();
    Ok(Lease {
        ip: Ipv4Addr::from(ip),
        client_id: ClientId(bytes("client_id")?.unwrap_or_default()),
        hwaddr: HwAddr(bytes("hwaddr")?.unwrap_or_default()),
        hostname: text("hostname")?,
        state: state_of(&state).ok_or_else(|| StoreError::Sql {
            message: format!("column state: unknown state {state:?}"),
        })?,
        starts: ts("starts")?,
        expires: ts("expires")?,
        first_seen: ts("first_seen")?,
        circuit_id: bytes("circuit_id")?,
        remote_id: bytes("remote_id")?,
        subscriber_id: bytes("subscriber_id")?,
    })
}

/// Unix seconds now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A default name for this server in the `server` column: host name and PID, so that two
/// processes on one host (tests, a migration) are told apart.
pub fn default_server_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "leased".into());
    format!("{host}:{}", std::process::id())
}

/// The SQL [`LeaseStore`]: owned by the commit thread, which has no async runtime of its own,
/// so the store carries a small current-thread tokio runtime and blocks on it. The thread is
/// dedicated to committing, so blocking it is exactly the point (as the embedded store blocks
/// in fsync).
pub struct SqlStore {
    rt: tokio::runtime::Runtime,
    db: Db,
    server: String,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.db.backend())
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Connects to `url` (already `${ENV}`-expanded), creates the schema when missing, and
    /// names this server `server` in the rows it writes.
    pub fn open(url: &str, server: &str) -> Result<Self, StoreError> {
        let store = Self::open_lazy(url, server)?;
        store.init()?;
        Ok(store)
    }

    /// Like [`SqlStore::open`] without touching the database: `serve` must start while the
    /// database is down, and creates the schema ([`SqlStore::init`]) once it is reachable.
    /// Fails only on a malformed URL.
    pub fn open_lazy(url: &str, server: &str) -> Result<Self, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io {
                path: "tokio runtime".into(),
                source: e,
            })?;
        let db = rt.block_on(async { Db::connect_lazy(url, 2) })?;
        Ok(Self {
            rt,
            db,
            server: server.to_string(),
        })
    }

    /// Creates leased's tables when missing (idempotent), within [`OP_TIMEOUT`].
    pub fn init(&self) -> Result<(), StoreError> {
        self.block(self.db.init_schema())
    }

    /// Runs one database operation with [`OP_TIMEOUT`].
    fn block<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.rt.block_on(async {
            tokio::time::timeout(OP_TIMEOUT, fut)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Sql {
                        message: format!("database did not answer within {OP_TIMEOUT:?}"),
                    })
                })
        })
    }
}

impl LeaseStore for SqlStore {
    fn load(&mut self) -> Result<Vec<Lease>, StoreError> {
        self.block(self.db.load_all())
    }

    fn commit(&mut self, leases: &[Lease]) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        let conflicts = self.block(self.db.commit_group(leases, &self.server, unix_now()))?;
        if conflicts.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Conflict { ips: conflicts })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
