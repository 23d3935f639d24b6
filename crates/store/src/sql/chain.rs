//! The SQL assignment chain: pydhcpdb's `offer_1 … offer_n` queries, run safely.
//!
//! Each query's `:Name` placeholders were turned into the driver's markers at config load
//! ([`leased_core::sql::SqlTemplate`]); here the packet's variables are *bound* to them, a
//! variable the packet lacks as NULL (so a row with an empty `mac` or `port` never matches a
//! client that has none). The first query that returns a row decides (its first row;
//! pydhcpdb let the last row win).

use std::collections::BTreeMap;
use std::time::Duration;

use leased_config::SqlQuery;
use leased_core::Assignment;
use leased_core::sql::Placeholders;
use sqlx::{Column, Row};

use super::Db;

/// What the chain found for one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainOutcome {
    /// A query returned a usable row.
    Hit {
        /// Which query (0-based), for logs.
        query: usize,
        /// The row as an assignment.
        assignment: Assignment,
    },
    /// Every query ran and none returned a row: serve the client like any other.
    Miss,
    /// No query could give an answer (timeout, database error, unusable row): the configured
    /// fallback applies.
    Failed(String),
}

/// The chain, ready to run on the runtime that owns `db`.
#[derive(Debug, Clone)]
pub struct SqlChain {
    db: Db,
    queries: Vec<String>,
    names: Vec<Vec<String>>,
    timeout: Duration,
}

impl SqlChain {
    /// Renders `queries` for `db`'s dialect.
    pub fn new(db: Db, queries: &[SqlQuery], timeout: Duration) -> Self {
        let style = match db {
            Db::Pg(_) => Placeholders::Numbered,
            Db::My(_) => Placeholders::Question,
        };
        Self {
            queries: queries.iter().map(|q| q.template.render(style)).collect(),
            names: queries.iter().map(|q| q.template.names.clone()).collect(),
            db,
            timeout,
        }
    }

    /// Runs the queries in order with `vars` bound. A query that fails (error or timeout) is
    /// logged and the next one is tried; if some failed and none hit, the outcome is
    /// `Failed` (the database could not be asked), not `Miss`.
    pub async fn run(&self, vars: &BTreeMap<String, String>) -> ChainOutcome {
        let mut failure = None;
        for (i, (sql, names)) in self.queries.iter().zip(&self.names).enumerate() {
            // A variable the packet lacks binds as NULL, which no `=` matches.
            let values: Vec<Option<&str>> = names
                .iter()
                .map(|n| vars.get(n).map(String::as_str))
                .collect();
            let row = tokio::time::timeout(self.timeout, self.first_row(sql, &values)).await;
            match row {
                Ok(Ok(Some(cols))) => match Assignment::from_columns(&cols) {
                    Ok(assignment) => {
                        return ChainOutcome::Hit {
                            query: i,
                            assignment,
                        };
                    }
                    Err(e) => {
                        tracing::warn!(query = i + 1, error = %e, "SQL assignment row unusable");
                        failure = Some(format!("query {}: {e}", i + 1));
                    }
                },
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(query = i + 1, error = %e, "SQL assignment query failed");
                    failure = Some(format!("query {}: {e}", i + 1));
                }
                Err(_) => {
                    failure = Some(format!(
                        "query {} timed out after {:?}",
                        i + 1,
                        self.timeout
                    ))
                }
            }
        }
        failure.map_or(ChainOutcome::Miss, ChainOutcome::Failed)
    }

    async fn first_row(
        &self,
        sql: &str,
        values: &[Option<&str>],
    ) -> Result<Option<Vec<(String, Option<String>)>>, sqlx::Error> {
        macro_rules! go {
            ($pool:expr) => {{
                let mut q = sqlx::query(super::safe(sql));
                for v in values {
                    q = q.bind(*v);
                }
                let row = q.fetch_optional($pool).await?;
                Ok(row.map(|r| {
                    r.columns()
                        .iter()
                        .map(|c| {
                            let i = c.ordinal();
                            let v = r
                                .try_get::<Option<String>, _>(i)
                                .ok()
                                .flatten()
                                .or_else(|| {
                                    r.try_get::<Option<i64>, _>(i)
                                        .ok()
                                        .flatten()
                                        .map(|n| n.to_string())
                                })
                                .or_else(|| {
                                    r.try_get::<Option<i32>, _>(i)
                                        .ok()
                                        .flatten()
                                        .map(|n| n.to_string())
                                })
                                .or_else(|| {
                                    r.try_get::<Option<Vec<u8>>, _>(i)
                                        .ok()
                                        .flatten()
                                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                                });
                            (c.name().to_string(), v)
                        })
                        .collect()
                }))
            }};
        }
        match &self.db {
            Db::Pg(p) => go!(p),
            Db::My(p) => go!(p),
        }
    }
}
