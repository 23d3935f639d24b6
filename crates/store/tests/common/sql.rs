//! Throwaway databases on the real PostgreSQL and MariaDB/MySQL on this machine: each test
//! creates its own uniquely named database and drops it when done (also when it panics).
//! Unreachable database: skipped with the reason printed, except under `CI=true`, where it
//! fails.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use leased_config::SqlBackend;
use leased_store::sql::Db;

/// Admin URLs (trust auth on loopback); `LEASED_TEST_PG` / `LEASED_TEST_MYSQL` override them
/// for other machines.
pub fn admin_url(backend: SqlBackend) -> String {
    match backend {
        SqlBackend::Postgres => std::env::var("LEASED_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        SqlBackend::Mysql => std::env::var("LEASED_TEST_MYSQL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
    }
}

/// SQL text for sqlx. Tests only pass constants and names they made up themselves.
pub fn safe(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_string())
}

/// A throwaway database; dropped on `Drop`.
pub struct TempDb {
    /// Drives the admin pool and every pool from [`TempDb::db`].
    pub rt: tokio::runtime::Runtime,
    /// Connected to the server's admin database (not the throwaway one).
    pub admin: Db,
    /// The throwaway database's name.
    pub name: String,
    /// Its URL, for stores and pools.
    pub url: String,
}

impl TempDb {
    /// Creates a fresh database, or `None` (with `SKIP:` printed) when the server cannot be
    /// reached outside CI.
    pub fn create(backend: SqlBackend) -> Option<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let admin_url = admin_url(backend);
        let admin = rt
            .block_on(async { Db::connect_lazy(&admin_url, 1) })
            .unwrap();
        if let Err(e) = rt.block_on(admin.ping()) {
            let why = format!("{backend:?} at {admin_url} unreachable: {e}");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("SKIP: {why}");
            return None;
        }
        // Unique across the tests of one process (the sequence), across processes running at
        // once (the PID) and across runs (the time).
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000_000;
        let name = format!(
            "leased_t_{}_{}_{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let t = Self {
            rt,
            admin,
            url: format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0),
            name,
        };
        t.exec(&t.admin, &format!("CREATE DATABASE {}", t.name));
        Some(t)
    }

    /// A pool on the throwaway database.
    pub fn db(&self) -> Db {
        self.rt
            .block_on(async { Db::connect_lazy(&self.url, 2) })
            .unwrap()
    }

    /// Runs one statement.
    pub fn exec(&self, db: &Db, sql: &str) {
        self.rt
            .block_on(async {
                match db {
                    Db::Pg(p) => sqlx::query(safe(sql)).execute(p).await.map(|_| ()),
                    Db::My(p) => sqlx::query(safe(sql)).execute(p).await.map(|_| ()),
                }
            })
            .unwrap();
    }

    /// Runs a query returning one integer.
    pub fn count(&self, db: &Db, sql: &str) -> i64 {
        self.rt
            .block_on(async {
                match db {
                    Db::Pg(p) => sqlx::query_scalar::<_, i64>(safe(sql)).fetch_one(p).await,
                    Db::My(p) => sqlx::query_scalar::<_, i64>(safe(sql)).fetch_one(p).await,
                }
            })
            .unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let drop_sql = match self.admin {
            Db::Pg(_) => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Db::My(_) => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let dropped = self.rt.block_on(async {
            match &self.admin {
                Db::Pg(p) => sqlx::query(safe(&drop_sql)).execute(p).await.map(|_| ()),
                Db::My(p) => sqlx::query(safe(&drop_sql)).execute(p).await.map(|_| ()),
            }
        });
        if let Err(e) = dropped {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}
