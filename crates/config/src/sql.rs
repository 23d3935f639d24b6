//! `[store]`'s SQL keys and `[sql_assignment]`: shapes and checks in one room, so the rest of
//! the loader only gains a field and a call (like `[api]`).
//!
//! This room only validates. Expanding `${ENV}` in URLs, connecting and running queries is io's
//! and store's business. What `check` can prove is
//! proven here: the backend name, the URL's scheme when it is literal, and every `:Name` in
//! every query naming a variable that exists — a typo in a variable is a config error with
//! file:line:col, never a query that silently binds ''.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::ctx::Ctx;
use crate::file::RawStore;
use crate::options::parse_duration;
use crate::span::join_index;
use leased_core::relay::Extractor;
use leased_core::sql::{AllocationSlot, BUILTIN_VARS, HISTORY_VARS, SqlOwner, SqlTemplate};

/// `[sql_assignment]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSqlAssignment {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub fallback: Option<String>,
    pub owner: Option<String>,
    pub timeout_ms: Option<i64>,
    pub max_concurrency: Option<i64>,
    pub slices: Option<Vec<String>>,
    pub queries: Option<Vec<RawSqlQuery>>,
    pub history_sql: Option<String>,
}

/// `[[sql_assignment.queries]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSqlQuery {
    pub sql: String,
}

/// Which SQL database holds the shared lease table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlBackend {
    /// PostgreSQL (the SQL is kept to what CockroachDB and YugabyteDB also accept).
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl SqlBackend {
    /// The backend a URL's scheme names, if any.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once("://")?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::Mysql),
            _ => None,
        }
    }
}

/// A shared SQL lease store (`[store] backend = "postgres" | "mysql"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlStoreSettings {
    /// The database kind.
    pub backend: SqlBackend,
    /// Connection URL, possibly with `${ENV}` references (expanded by io at start, so secrets
    /// stay out of the file). `url_env = "X"` is stored as `${X}`.
    pub url: String,
    /// How often each server reads the leases other servers wrote (seconds). Default 2.
    pub sync_interval: u32,
    /// While the database is unreachable, still answer DISCOVERs with OFFERs (nothing an
    /// OFFER promises needs the database). Default false: the safest is silence, so clients
    /// go to a server that can finish the exchange.
    pub offer_when_down: bool,
    /// This server's name in the lease table's `server` column; default the host name + PID.
    pub server_name: Option<String>,
    /// `allocation_slot = "k/N"`: where this server's search for a never-used address
    /// starts (segment `k` of `N` in each pool), so servers sharing one database do not all
    /// race for the same next address. `None`: derived from `server_name` when set.
    pub allocation_slot: Option<AllocationSlot>,
}

/// What to do when every query of the chain failed or the database is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlFallback {
    /// Serve the client from the configured pools as if there were no chain.
    Pools,
    /// Answer nothing (the client retries later).
    Silent,
}

/// One query of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlQuery {
    /// As written, for logs.
    pub text: String,
    /// Split at its placeholders.
    pub template: SqlTemplate,
}

/// The SQL assignment chain (`[sql_assignment]`, pydhcpdb's queries with bound parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlAssignment {
    /// Database URL (may hold `${ENV}`); `None`: the `[store]` SQL URL.
    pub url: Option<String>,
    /// Tried in order; the first that returns a row decides.
    pub queries: Vec<SqlQuery>,
    /// When no query could run (timeout, error, database down). A query that runs and finds
    /// no row is not a failure: the next one is tried, and if none finds a row the client is
    /// served from the pools.
    pub fallback: SqlFallback,
    /// Who keeps a row's address held by another client's lease (`owner`).
    pub owner: SqlOwner,
    /// Per-query timeout in milliseconds. Default 1000.
    pub timeout_ms: u32,
    /// Chains running at once; further packets wait (bounded by the receive queue). Default 32.
    pub max_concurrency: u32,
    /// User-defined slice variables (pydhcpdb `src:dst:start:end`), plus those of
    /// `[relay_keys] extractors`.
    pub slices: BTreeMap<String, Extractor>,
    /// Run for every lease event, with the packet's variables and [`HISTORY_VARS`].
    pub history_sql: Option<SqlQuery>,
}

fn url_of(
    ctx: &mut Ctx<'_>,
    section: &str,
    url: Option<&String>,
    env: Option<&String>,
) -> Option<String> {
    match (url, env) {
        (Some(_), Some(_)) => {
            ctx.err(
                &format!("{section}.url_env"),
                "give either url or url_env, not both",
            );
            None
        }
        (Some(u), None) if u.trim().is_empty() => {
            ctx.err(&format!("{section}.url"), "must not be empty");
            None
        }
        (Some(u), None) => {
            if !u.contains("${") && SqlBackend::from_url(u).is_none() {
                ctx.err(
                    &format!("{section}.url"),
                    "expected a postgres://, postgresql://, mysql:// or mariadb:// URL",
                );
            }
            Some(u.clone())
        }
        (None, Some(e)) => {
            if e.is_empty() || !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                ctx.err(
                    &format!("{section}.url_env"),
                    "must be an environment variable name (letters, digits, _)",
                );
                None
            } else {
                Some(format!("${{{e}}}"))
            }
        }
        (None, None) => None,
    }
}

/// Checks `[store]`'s SQL keys; `None` for the embedded store.
pub(crate) fn store(ctx: &mut Ctx<'_>, raw: &RawStore) -> Option<SqlStoreSettings> {
    let backend = match raw.backend.as_deref() {
        None | Some("embedded") => None,
        Some("postgres" | "postgresql") => Some(SqlBackend::Postgres),
        Some("mysql" | "mariadb") => Some(SqlBackend::Mysql),
        Some(other) => {
            ctx.err(
                "store.backend",
                format!(
                    "unknown backend {other:?}; expected \"embedded\", \"postgres\" or \"mysql\""
                ),
            );
            None
        }
    };
    let url = url_of(ctx, "store", raw.url.as_ref(), raw.url_env.as_ref());
    let Some(backend) = backend else {
        if url.is_some() && raw.backend.as_deref() == Some("embedded") {
            ctx.err("store.url", "the embedded store takes no url");
        } else if url.is_some() && raw.backend.is_none() {
            ctx.err("store", "url needs backend = \"postgres\" or \"mysql\"");
        }
        return None;
    };
    let Some(url) = url else {
        ctx.err(
            "store.backend",
            "an SQL backend needs url (or url_env naming an environment variable)",
        );
        return None;
    };
    if let Some(b) = SqlBackend::from_url(&url)
        && b != backend
    {
        ctx.err("store.url", "the URL's scheme does not match store.backend");
    }
    let sync_interval = match raw.sync_interval.as_ref().map(parse_duration) {
        None => 2,
        Some(Ok(0)) => {
            ctx.err("store.sync_interval", "must be at least 1 second");
            2
        }
        Some(Ok(v)) => v,
        Some(Err(m)) => {
            ctx.err("store.sync_interval", m);
            2
        }
    };
    Some(SqlStoreSettings {
        backend,
        url,
        sync_interval,
        offer_when_down: raw.offer_when_down.unwrap_or(false),
        server_name: raw.server_name.clone().filter(|s| !s.is_empty()),
        allocation_slot: raw.allocation_slot.as_deref().and_then(|v| {
            match AllocationSlot::parse(v) {
                Ok(slot) => Some(slot),
                Err(m) => {
                    ctx.err("store.allocation_slot", m);
                    None
                }
            }
        }),
    })
}

fn query(ctx: &mut Ctx<'_>, path: &str, sql: &str, known: &[&str]) -> Option<SqlQuery> {
    let template = match SqlTemplate::parse(sql) {
        Ok(t) => t,
        Err(m) => {
            ctx.err(path, m);
            return None;
        }
    };
    let mut ok = true;
    for name in &template.names {
        if !known.contains(&name.as_str()) {
            ctx.err(
                path,
                format!(
                    "unknown variable :{name}; known: {} and the slices you define",
                    BUILTIN_VARS.join(", ")
                ),
            );
            ok = false;
        }
    }
    ok.then(|| SqlQuery {
        text: sql.to_string(),
        template,
    })
}

fn positive(ctx: &mut Ctx<'_>, path: &str, v: Option<i64>, dflt: u32, max: u32) -> u32 {
    match v {
        None => dflt,
        Some(n) if n >= 1 && n <= i64::from(max) => u32::try_from(n).unwrap_or(dflt),
        Some(_) => {
            ctx.err(path, format!("must be between 1 and {max}"));
            dflt
        }
    }
}

/// Checks `[sql_assignment]`; `None` when absent.
pub(crate) fn assignment(
    ctx: &mut Ctx<'_>,
    raw: Option<&RawSqlAssignment>,
    store: Option<&SqlStoreSettings>,
    relay_named: &BTreeMap<String, Extractor>,
) -> Option<SqlAssignment> {
    let raw = raw?;
    let url = url_of(
        ctx,
        "sql_assignment",
        raw.url.as_ref(),
        raw.url_env.as_ref(),
    );
    if url.is_none() && store.is_none() {
        ctx.err(
            "sql_assignment",
            "needs url (or url_env), or an SQL [store] backend to share",
        );
    }
    let fallback = match raw.fallback.as_deref() {
        None | Some("pools") => SqlFallback::Pools,
        Some("silent") => SqlFallback::Silent,
        Some(other) => {
            ctx.err(
                "sql_assignment.fallback",
                format!("unknown fallback {other:?}; expected \"pools\" or \"silent\""),
            );
            SqlFallback::Pools
        }
    };
    let owner = match raw.owner.as_deref() {
        None | Some("lease") => SqlOwner::Lease,
        Some("port") => SqlOwner::Port,
        Some(other) => {
            ctx.err(
                "sql_assignment.owner",
                format!("unknown owner {other:?}; expected \"lease\" or \"port\""),
            );
            SqlOwner::Lease
        }
    };
    let mut slices = relay_named.clone();
    for (i, spec) in raw.slices.iter().flatten().enumerate() {
        let p = join_index("sql_assignment.slices", i);
        match Extractor::parse_slice(spec) {
            Ok((Some(name), e)) => {
                if BUILTIN_VARS.contains(&name.as_str())
                    || HISTORY_VARS.contains(&name.as_str())
                    || slices.contains_key(&name)
                {
                    ctx.err(&p, format!("variable name {name:?} is already taken"));
                } else {
                    slices.insert(name, e);
                }
            }
            Ok((None, _)) => ctx.err(&p, format!("{spec:?}: name it: \"source:name:start:end\"")),
            Err(m) => ctx.err(&p, m),
        }
    }
    let mut known: Vec<&str> = BUILTIN_VARS.to_vec();
    known.extend(slices.keys().map(String::as_str));
    let mut queries = Vec::new();
    let raw_queries = raw.queries.as_deref().unwrap_or_default();
    if raw_queries.is_empty() {
        ctx.err(
            "sql_assignment",
            "needs at least one [[sql_assignment.queries]] with sql = \"SELECT ip, … WHERE … = :ClientMacAddress\"",
        );
    }
    for (i, q) in raw_queries.iter().enumerate() {
        let p = format!("{}.sql", join_index("sql_assignment.queries", i));
        if let Some(q) = query(ctx, &p, &q.sql, &known) {
            queries.push(q);
        }
    }
    let mut hknown = known.clone();
    hknown.extend(HISTORY_VARS);
    let history_sql = raw
        .history_sql
        .as_deref()
        .and_then(|h| query(ctx, "sql_assignment.history_sql", h, &hknown));
    Some(SqlAssignment {
        url,
        queries,
        fallback,
        owner,
        timeout_ms: positive(
            ctx,
            "sql_assignment.timeout_ms",
            raw.timeout_ms,
            1000,
            600_000,
        ),
        max_concurrency: positive(
            ctx,
            "sql_assignment.max_concurrency",
            raw.max_concurrency,
            32,
            4096,
        ),
        slices,
        history_sql,
    })
}

#[cfg(test)]
mod slot_tests {
    use super::*;

    #[test]
    fn allocation_slot_parses_k_of_n() {
        assert_eq!(
            AllocationSlot::parse(" 1 / 3"),
            Ok(AllocationSlot { index: 1, count: 3 })
        );
        for bad in ["3/3", "0/0", "1", "a/3", "-1/3", ""] {
            assert!(AllocationSlot::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn derived_slot_is_stable_and_spreads_names() {
        let a = AllocationSlot::from_name("srv0");
        assert_eq!(a, AllocationSlot::from_name("srv0"));
        assert_eq!(a.count, leased_core::sql::DERIVED_SLOTS);
        let idx: std::collections::BTreeSet<u32> = ["srv0", "srv1", "srv2"]
            .iter()
            .map(|n| AllocationSlot::from_name(n).index)
            .collect();
        assert_eq!(idx.len(), 3, "three names, three slots: {idx:?}");
    }
}
