//! Lease history in the SQL database (`leased_history`), and the operator's own history
//! INSERT (pydhcpdb's `history_sql`) with bound variables.

use std::collections::BTreeMap;

use leased_core::sql::{Placeholders, SqlTemplate};
use sqlx::Row;

use super::{Db, clean_text, safe, sql_err};
use crate::StoreError;
use crate::history::{HistoryFilter, HistoryRecord};

/// Appends `records` to `leased_history` in one transaction.
pub async fn insert_history(
    db: &Db,
    records: &[HistoryRecord],
    server: &str,
) -> Result<(), StoreError> {
    const COLS: &str =
        "at, event, mac, client_id, ip, hostname, giaddr, circuit_id, remote_id, server";
    macro_rules! go {
        ($pool:expr, $sql:expr) => {{
            let mut tx = $pool.begin().await.map_err(sql_err)?;
            for r in records {
                sqlx::query(safe($sql))
                    .bind(i64::try_from(r.at).unwrap_or(i64::MAX))
                    .bind(&r.event)
                    .bind(&r.mac)
                    .bind(&r.client_id)
                    .bind(&r.ip)
                    .bind(r.hostname.as_deref().map(clean_text))
                    .bind(&r.giaddr)
                    .bind(&r.circuit_id)
                    .bind(&r.remote_id)
                    .bind(server)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_err)?;
            }
            tx.commit().await.map_err(sql_err)?;
        }};
    }
    match db {
        Db::Pg(p) => go!(
            p,
            &format!("INSERT INTO leased_history ({COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)")
        ),
        Db::My(p) => go!(
            p,
            &format!("INSERT INTO leased_history ({COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)")
        ),
    }
    Ok(())
}

/// Runs an operator's history statement with `vars` bound (never spliced).
pub async fn run_user_statement(
    db: &Db,
    template: &SqlTemplate,
    vars: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let values = template.values(vars);
    macro_rules! go {
        ($pool:expr, $style:expr) => {{
            let sql = template.render($style);
            let mut q = sqlx::query(safe(&sql));
            for v in &values {
                q = q.bind(*v);
            }
            q.execute($pool).await.map_err(sql_err)?;
        }};
    }
    match db {
        Db::Pg(p) => go!(p, Placeholders::Numbered),
        Db::My(p) => go!(p, Placeholders::Question),
    }
    Ok(())
}

/// History rows matching `filter`, oldest first (at most `filter.limit`). A MAC matches in
/// any case, as [`HistoryFilter::matches`] does for the history file.
pub async fn query_history(
    db: &Db,
    filter: &HistoryFilter,
) -> Result<Vec<HistoryRecord>, StoreError> {
    let mac = filter.mac.clone().unwrap_or_default();
    let ip = filter.ip.map(|i| i.to_string()).unwrap_or_default();
    let since = i64::try_from(filter.since.unwrap_or(0)).unwrap_or(i64::MAX);
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    macro_rules! go {
        ($pool:expr, $sql:expr) => {{
            let rows = sqlx::query(safe($sql))
                .bind(&mac)
                .bind(&mac)
                .bind(&ip)
                .bind(&ip)
                .bind(since)
                .bind(limit)
                .fetch_all($pool)
                .await
                .map_err(sql_err)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(HistoryRecord {
                    at: u64::try_from(r.try_get::<i64, _>("at").map_err(sql_err)?).unwrap_or(0),
                    event: r.try_get("event").map_err(sql_err)?,
                    mac: r.try_get("mac").map_err(sql_err)?,
                    client_id: r.try_get("client_id").map_err(sql_err)?,
                    ip: r.try_get("ip").map_err(sql_err)?,
                    hostname: r.try_get("hostname").map_err(sql_err)?,
                    giaddr: r.try_get("giaddr").map_err(sql_err)?,
                    circuit_id: r.try_get("circuit_id").map_err(sql_err)?,
                    remote_id: r.try_get("remote_id").map_err(sql_err)?,
                });
            }
            out
        }};
    }
    let cols = "at, event, mac, client_id, ip, hostname, giaddr, circuit_id, remote_id";
    Ok(match db {
        Db::Pg(p) => go!(
            p,
            &format!(
                "SELECT {cols} FROM leased_history WHERE ($1 = '' OR LOWER(mac) = LOWER($2)) AND \
                 ($3 = '' OR ip = $4) AND at >= $5 ORDER BY at, id LIMIT $6"
            )
        ),
        Db::My(p) => go!(
            p,
            &format!(
                "SELECT {cols} FROM leased_history WHERE (? = '' OR LOWER(mac) = LOWER(?)) AND \
                 (? = '' OR ip = ?) AND at >= ? ORDER BY at, id LIMIT ?"
            )
        ),
    })
}
