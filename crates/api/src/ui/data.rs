//! The dashboard's JSON routes (`/ui/api/…`), behind its session gate. Leases and
//! reservations are answered by the API's own handlers ([`crate::routes`]), called with the
//! same state, so the dashboard cannot disagree with `/leases` or write a reservation any
//! other way than `POST/PUT/DELETE /reservations` does.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use leased_core::HwAddr;
use leased_store::history::{HistoryFilter, HistoryRecord, history_path, read_history};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::guard::SessionCtx;
use super::{Ctx, grid as cells, live};
use crate::clock::unix_now;
use crate::error::ApiError;
use crate::monitor::{ArpFindingView, RogueServerView};
use crate::routes::{self, LeaseQuery};
use crate::source::pick_network;
use crate::stats::{self, Counts, Ips};

/// `GET /ui/api/session`: what the page needs to write (its CSRF token).
#[derive(Debug, Serialize)]
pub(crate) struct SessionView {
    csrf: String,
    /// Seconds until the session ends at the latest.
    expires_in: u64,
    server: &'static str,
    version: &'static str,
}

pub(crate) async fn session(Extension(s): Extension<SessionCtx>) -> Json<SessionView> {
    Json(SessionView {
        csrf: s.active.csrf,
        expires_in: s.active.remaining.as_secs(),
        server: "leased",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// One pool's accounting now.
#[derive(Debug, Serialize)]
struct PoolView {
    start: String,
    end: String,
    total: u64,
    /// Held by a client (bound or offered).
    assigned: u64,
    /// In DECLINE quarantine.
    declined: u64,
    /// Allocatable now.
    free: u64,
}

/// One subnet's summary.
#[derive(Debug, Serialize)]
struct SubnetSummary {
    subnet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
    /// Addresses in the subnet (the grid's cells).
    size: u64,
    ips: Ips,
    pools: Vec<PoolView>,
}

/// `GET /ui/api/overview`.
#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    version: &'static str,
    uptime_seconds: u64,
    now: u64,
    snapshot_age_seconds: u64,
    /// Lease records held (any state).
    leases: usize,
    counts: Counts,
    subnets: Vec<SubnetSummary>,
}

pub(crate) async fn overview(State(ctx): State<Ctx>) -> Json<Overview> {
    let shared = &ctx.app.shared;
    let plan = shared.plan();
    let snap = shared.leases();
    let now = unix_now();
    let subnets = plan
        .network
        .subnets
        .iter()
        .map(|s| SubnetSummary {
            subnet: s.network.to_string(),
            shared_network: s.shared_network.clone(),
            interface: s.interface.clone(),
            size: u64::from(u32::from(s.network.broadcast()) - u32::from(s.network.network())) + 1,
            ips: stats::subnet_ips(s, &snap.leases, now),
            pools: s
                .pools
                .iter()
                .map(|p| {
                    let g = stats::pool_gauges(s, p, &snap.leases, now);
                    PoolView {
                        start: p.start.to_string(),
                        end: p.end.to_string(),
                        total: g.total,
                        assigned: g.assigned,
                        declined: g.declined,
                        free: g.free,
                    }
                })
                .collect(),
        })
        .collect();
    Json(Overview {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: shared.uptime().as_secs(),
        now: now.0,
        snapshot_age_seconds: now.0.saturating_sub(snap.taken_at.0),
        leases: snap.leases.len(),
        counts: stats::counts(&plan, &snap.leases, now),
        subnets,
    })
}

/// `GET /ui/api/grid?subnet=CIDR&from=IP`.
#[derive(Debug, Deserialize)]
pub(crate) struct GridQuery {
    subnet: Option<String>,
    from: Option<String>,
}

pub(crate) async fn grid(
    State(ctx): State<Ctx>,
    query: Result<Query<GridQuery>, QueryRejection>,
) -> Result<Json<cells::Grid>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let plan = ctx.app.shared.plan();
    let subnet = match q.subnet.as_deref() {
        Some(text) => pick_network(&plan.network.subnets, |s| s.network, text)?,
        None => plan
            .network
            .subnets
            .first()
            .ok_or_else(|| ApiError::not_found("no subnet is configured"))?,
    };
    let from =
        match q.from.as_deref() {
            Some(t) => Some(t.trim().parse::<Ipv4Addr>().map_err(|_| {
                ApiError::bad_request(format!("from: {t:?} is not an IPv4 address"))
            })?),
            None => None,
        };
    let snap = ctx.app.shared.leases();
    Ok(Json(cells::grid(
        &plan.network,
        subnet,
        &snap.leases,
        unix_now(),
        from,
    )))
}

/// `GET /ui/api/leases`: `GET /leases` itself (same filters, same page shape).
pub(crate) async fn leases(
    State(ctx): State<Ctx>,
    query: Result<Query<LeaseQuery>, QueryRejection>,
) -> Result<Json<routes::LeasePage>, ApiError> {
    routes::leases(State(ctx.app.clone()), query).await
}

/// `GET /ui/api/history?mac=…&ip=…&limit=…`.
#[derive(Debug, Deserialize)]
pub(crate) struct HistoryQuery {
    mac: Option<String>,
    ip: Option<String>,
    limit: Option<usize>,
}

/// The newest records of a lease's history.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryPage {
    /// Oldest first; at most `limit`, the newest ones.
    records: Vec<HistoryRecord>,
    /// More matching records were older than these.
    truncated: bool,
    /// `file` (the embedded store's history) or `sql` (`leased_history`).
    source: &'static str,
}

/// Records shown at most, and by default.
const HISTORY_MAX: usize = 1000;
const HISTORY_DEFAULT: usize = 200;
/// Matching records read at most (oldest first) before the newest are kept.
const HISTORY_SCAN: usize = 50_000;

pub(crate) async fn history(
    State(ctx): State<Ctx>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<HistoryPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mac = match q.mac.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => Some(
            HwAddr::parse_mac(m)
                .ok_or_else(|| ApiError::bad_request(format!("mac: {m:?} is not a MAC address")))?
                .to_string(),
        ),
        None => None,
    };
    let ip = match q.ip.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
        Some(t) => Some(
            t.parse::<Ipv4Addr>()
                .map_err(|_| ApiError::bad_request(format!("ip: {t:?} is not an IPv4 address")))?,
        ),
        None => None,
    };
    if mac.is_none() && ip.is_none() {
        return Err(ApiError::bad_request("give a mac or an ip"));
    }
    let limit = q.limit.unwrap_or(HISTORY_DEFAULT);
    if limit == 0 || limit > HISTORY_MAX {
        return Err(ApiError::bad_request(format!(
            "limit: must be 1 to {HISTORY_MAX}"
        )));
    }
    let filter = HistoryFilter {
        mac,
        ip,
        since: None,
        limit: HISTORY_SCAN,
    };
    let _turn = ctx
        .ui
        .history_reads
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
    let store = ctx.app.shared.loaded().config.store.clone();
    let (mut records, source) = match &store.sql {
        Some(sql) => {
            let url = leased_store::sql::expand_env(&sql.url).map_err(ApiError::internal)?;
            let db = leased_store::sql::Db::connect_lazy(&url, 1)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let r = leased_store::sql::query_history(&db, &filter)
                .await
                .map_err(|e| ApiError::internal(format!("reading leased_history: {e}")))?;
            (r, "sql")
        }
        None => {
            let path = history_path(&store.path);
            let r = tokio::task::spawn_blocking(move || read_history(&path, &filter))
                .await
                .map_err(|e| ApiError::internal(format!("history reader failed: {e}")))?
                .map_err(|e| ApiError::internal(format!("reading the history file: {e}")))?;
            (r, "file")
        }
    };
    let truncated = records.len() > limit;
    if truncated {
        records.drain(..records.len() - limit);
    }
    Ok(Json(HistoryPage {
        records,
        truncated,
        source,
    }))
}

/// `GET /ui/api/reservations`: `GET /reservations`.
pub(crate) async fn reservations(State(ctx): State<Ctx>) -> Response {
    routes::reservations_list(State(ctx.app.clone()))
        .await
        .into_response()
}

/// `POST /ui/api/reservations`: `POST /reservations`.
pub(crate) async fn reservation_create(
    State(ctx): State<Ctx>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    routes::reservation_create(State(ctx.app.clone()), body).await
}

/// `PUT /ui/api/reservations/{ip}`: `PUT /reservations/{ip}`.
pub(crate) async fn reservation_replace(
    State(ctx): State<Ctx>,
    ip: Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    routes::reservation_replace(State(ctx.app.clone()), ip, body)
        .await
        .map(IntoResponse::into_response)
}

/// `DELETE /ui/api/reservations/{ip}`: `DELETE /reservations/{ip}`.
pub(crate) async fn reservation_delete(
    State(ctx): State<Ctx>,
    ip: Path<String>,
) -> Result<Response, ApiError> {
    routes::reservation_delete(State(ctx.app.clone()), ip)
        .await
        .map(IntoResponse::into_response)
}

/// One export destination's state.
#[derive(Debug, Serialize)]
struct ExportView {
    destination: String,
    outbox_depth: u64,
    uploads_ok: u64,
    uploads_failed: u64,
    entries_sent: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_success: Option<u64>,
}

/// High availability: leased has no failover peer yet, so this says so. When HA exists, its
/// state (role, peer, last contact, lag) goes here and the page shows it in the same panel.
#[derive(Debug, Serialize)]
struct HaView {
    configured: bool,
    note: &'static str,
}

/// `GET /ui/api/network`.
#[derive(Debug, Serialize)]
pub(crate) struct NetworkView {
    rogue_enabled: bool,
    rogue_servers: Vec<RogueServerView>,
    arp_enabled: bool,
    arp_findings: Vec<ArpFindingView>,
    export: Vec<ExportView>,
    ha: HaView,
}

pub(crate) async fn network(State(ctx): State<Ctx>) -> Json<NetworkView> {
    let shared = &ctx.app.shared;
    let loaded = shared.loaded();
    Json(NetworkView {
        rogue_enabled: loaded.config.rogue_servers.enabled,
        rogue_servers: shared
            .foreign_servers()
            .into_iter()
            .map(RogueServerView::from)
            .collect(),
        arp_enabled: loaded.config.arp_watch.enabled,
        arp_findings: shared
            .arp_findings()
            .into_iter()
            .map(ArpFindingView::from)
            .collect(),
        export: shared
            .export_metrics()
            .into_iter()
            .map(|m| ExportView {
                destination: m.destination,
                outbox_depth: m.outbox_depth,
                uploads_ok: m.uploads_ok,
                uploads_failed: m.uploads_failed,
                entries_sent: m.entries_sent,
                last_success: m.last_success,
            })
            .collect(),
        ha: HaView {
            configured: false,
            note: "leased has no high-availability peer yet",
        },
    })
}

/// What an event stream carries between polls.
struct Stream {
    first: Option<Vec<Arc<live::Sample>>>,
    rx: Option<tokio::sync::broadcast::Receiver<Arc<live::Sample>>>,
    ctx: Ctx,
    token: String,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// `GET /ui/api/live`: server-sent events. First `history` (the samples of the past hour,
/// oldest first), then one `tick` per second. The stream ends when the session does (logout,
/// expiry) or the server stops.
pub(crate) async fn live(
    State(ctx): State<Ctx>,
    Extension(s): Extension<SessionCtx>,
) -> Result<Response, ApiError> {
    let permit = Arc::clone(&ctx.ui.streams)
        .try_acquire_owned()
        .map_err(|_| ApiError::unavailable("too many live views open; close one"))?;
    let state = Stream {
        first: Some(ctx.ui.live.history()),
        rx: ctx.ui.live.subscribe(),
        ctx,
        token: s.token,
        _permit: permit,
    };
    let events = futures_util::stream::unfold(state, |mut st| async move {
        if let Some(h) = st.first.take() {
            let past: Vec<&live::Sample> = h.iter().map(AsRef::as_ref).collect();
            let e = Event::default().event("history").json_data(&past);
            return Some((e, st));
        }
        loop {
            let sample = match st.rx.as_mut()?.recv().await {
                Ok(s) => s,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            st.ctx.ui.sessions.check(&st.token, Instant::now())?;
            let e = Event::default().event("tick").json_data(&*sample);
            return Some((e, st));
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
