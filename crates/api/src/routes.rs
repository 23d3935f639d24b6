//! The route handlers, each documented for `/openapi.json` (utoipa), so the document is built
//! from the same functions the router serves and cannot drift from it.

use std::net::Ipv4Addr;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ipnet::Ipv4Net;
use leased_config::{Reservation, Subnet};
use leased_core::{HwAddr, Lease, Plan, Timestamp};
use leased_io::{ConfigSource, ReloadOutcome};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::clock::unix_now;
use crate::error::{ApiError, ErrorBody};
use crate::reservations::{self, Edit};
use crate::source::Stats;
use crate::stats::{self, Counts, SubnetView};

/// `/`: the banner. `message` is DHCPStats' own, so its health checks keep passing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Banner {
    pub message: &'static str,
    pub server: &'static str,
    pub version: &'static str,
}

/// Banner: which API this is.
#[utoipa::path(get, path = "/", tag = "dhcpstats",
    responses((status = 200, body = Banner), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn banner() -> Json<Banner> {
    Json(Banner {
        message: "dhcpstats API",
        server: "leased",
        version: env!("CARGO_PKG_VERSION"),
    })
}

fn all_subnets(stats: &Stats, full: bool) -> Response {
    Json(stats.0.subnets(full)).into_response()
}

/// Every subnet keyed by CIDR, with `statics` and `leases` (DHCPStats' `/subnets/all`).
#[utoipa::path(get, path = "/subnets", tag = "dhcpstats",
    responses((status = 200, description = "object keyed by CIDR",
        body = std::collections::HashMap<String, SubnetView>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn subnets_full(State(stats): State<Stats>) -> Response {
    all_subnets(&stats, true)
}

/// Alias of `/subnets`, for existing DHCPStats clients and its combiner.
#[utoipa::path(get, path = "/subnets/all", tag = "dhcpstats",
    responses((status = 200, description = "object keyed by CIDR",
        body = std::collections::HashMap<String, SubnetView>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn subnets_all(State(stats): State<Stats>) -> Response {
    all_subnets(&stats, true)
}

/// Every subnet keyed by CIDR, without `statics` and `leases`.
#[utoipa::path(get, path = "/subnets/list", tag = "dhcpstats",
    responses((status = 200, description = "object keyed by CIDR",
        body = std::collections::HashMap<String, SubnetView>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn subnets_list(State(stats): State<Stats>) -> Response {
    all_subnets(&stats, false)
}

/// One subnet, full detail, not wrapped; `subnet` holds its CIDR. Unknown → 404.
#[utoipa::path(get, path = "/subnets/{network}", tag = "dhcpstats",
    params(("network" = String, Path,
        description = "network address (`198.18.0.0`) or URL-encoded CIDR (`198.18.0.0%2F24`)")),
    responses((status = 200, body = SubnetView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn subnet_one(
    State(stats): State<Stats>,
    Path(network): Path<String>,
) -> Result<Json<SubnetView>, ApiError> {
    stats.0.subnet(&network).map(Json)
}

/// One subnet by CIDR written with a plain slash (`/subnets/198.18.0.0/24`).
#[utoipa::path(get, path = "/subnets/{network}/{prefix}", tag = "dhcpstats",
    params(("network" = String, Path, description = "network address"),
        ("prefix" = u8, Path, description = "prefix length")),
    responses((status = 200, body = SubnetView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn subnet_cidr(
    State(stats): State<Stats>,
    Path((network, prefix)): Path<(String, String)>,
) -> Result<Json<SubnetView>, ApiError> {
    stats.0.subnet(&format!("{network}/{prefix}")).map(Json)
}

/// Every subnet's `ips` summed, and `estimated_devices` (static + active).
#[utoipa::path(get, path = "/counts", tag = "dhcpstats",
    responses((status = 200, body = Counts), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn counts(State(stats): State<Stats>) -> Json<Counts> {
    Json(stats.0.counts())
}

/// `POST /refresh`'s answer, DHCPStats' own: `{"result":"ok"}`, or the reason as `result`
/// (and `message`, like every other error answer) with a 500.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResult {
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Reads the data again now (DHCPStats' manual refresh). Over ISC files: both files are
/// re-read and the answer comes once the new reading is in use; a reading refused (e.g. a
/// syntax error in dhcpd.conf) keeps the previous one and answers 500 with the reason. A
/// running leased answers from its live state, so there it only says `ok`.
#[utoipa::path(post, path = "/refresh", tag = "dhcpstats",
    responses((status = 200, body = RefreshResult), (status = 500, body = RefreshResult),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn refresh(State(stats): State<Stats>) -> Response {
    let outcome = tokio::task::spawn_blocking(move || stats.0.refresh())
        .await
        .unwrap_or_else(|e| Err(format!("refresh task: {e}")));
    match outcome {
        Ok(()) => Json(RefreshResult {
            result: "ok".into(),
            message: None,
        })
        .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(RefreshResult {
                result: e.clone(),
                message: Some(e),
            }),
        )
            .into_response(),
    }
}

/// One lease record, leased's own shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeaseView {
    pub ip: String,
    /// chaddr, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The key the client is known by (option 61, else hardware type + chaddr), hex.
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `offered`, `bound`, `released`, `expired` or `declined` (a binding past its end reads
    /// `expired` even before the server's timer has processed it).
    pub state: &'static str,
    /// The ISC `binding-state` DHCPStats reports for it.
    pub binding_state: &'static str,
    /// Unix seconds.
    pub starts: u64,
    /// Unix seconds: end of validity (offer, binding) or of quarantine (declined).
    pub expires: u64,
    /// Unix seconds: when this client was first given this address.
    pub first_seen: u64,
    /// `starts` as RFC 3339 UTC.
    pub starts_at: String,
    /// `expires` as RFC 3339 UTC.
    pub expires_at: String,
    /// The subnet (CIDR) the address belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Option 82 circuit-id the binding was made through (text when printable, else `0x…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    /// Option 82 remote-id (same rendering).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// Option 82 subscriber-id (same rendering).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber_id: Option<String>,
    /// True when the address is reserved in the configuration.
    pub reserved: bool,
}

fn lease_view(plan: &Plan, l: &Lease, now: Timestamp) -> LeaseView {
    LeaseView {
        ip: l.ip.to_string(),
        mac: l.hwaddr.to_string(),
        client_id: stats::hex(&l.client_id.0),
        hostname: l.hostname.clone(),
        state: stats::state_name(l, now),
        binding_state: stats::binding_state(l, now),
        starts: l.starts.0,
        expires: l.expires.0,
        first_seen: l.first_seen.0,
        starts_at: stats::rfc3339(l.starts),
        expires_at: stats::rfc3339(l.expires),
        subnet: stats::subnet_of(plan, l.ip).map(|s| s.network.to_string()),
        circuit_id: l.circuit_id.as_deref().map(stats::relay_text),
        remote_id: l.remote_id.as_deref().map(stats::relay_text),
        subscriber_id: l.subscriber_id.as_deref().map(stats::relay_text),
        reserved: plan.reservation_at(l.ip).is_some(),
    }
}

/// Filters and pagination of `/leases`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeaseQuery {
    /// Exact MAC (any of `aa:bb:..`, `aa-bb-..`, `aabb..`).
    pub mac: Option<String>,
    /// An address, or a CIDR for every lease inside it.
    pub ip: Option<String>,
    /// Case-insensitive substring of the host name.
    pub hostname: Option<String>,
    /// `offered`, `bound`, `released`, `expired` or `declined`.
    pub state: Option<String>,
    /// Option 82 circuit-id: its text, or `0x` + hex.
    #[serde(alias = "circuit-id")]
    pub circuit_id: Option<String>,
    /// Option 82 remote-id: its text, or `0x` + hex.
    #[serde(alias = "remote-id")]
    pub remote_id: Option<String>,
    /// Page size, 1 to 10000; default 100.
    pub limit: Option<usize>,
    /// Records to skip; default 0.
    pub offset: Option<usize>,
}

/// A page of `/leases`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeasePage {
    /// How many leases match the filters (all pages).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    /// The matching leases of this page, in address order.
    pub leases: Vec<LeaseView>,
}

/// Default and largest page sizes of `/leases`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

const STATES: [&str; 5] = ["offered", "bound", "released", "expired", "declined"];

/// True when the relay value `v` matches the query `q` (its text, or `0x` + hex).
fn relay_matches(v: Option<&[u8]>, q: &str) -> bool {
    let Some(v) = v else { return false };
    let text = stats::relay_text(v);
    if text == q {
        return true;
    }
    let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
    let qh = q.strip_prefix("0x").unwrap_or(q).replace(':', "");
    hex.eq_ignore_ascii_case(&qh)
}

/// Leases, filtered and paginated, in address order.
#[utoipa::path(get, path = "/leases", tag = "leased", params(LeaseQuery),
    responses((status = 200, body = LeasePage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn leases(
    State(state): State<AppState>,
    query: Result<Query<LeaseQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LeasePage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mac = match q.mac.as_deref() {
        Some(m) => Some(
            HwAddr::parse_mac(m.trim())
                .ok_or_else(|| ApiError::bad_request(format!("mac: {m:?} is not a MAC address")))?,
        ),
        None => None,
    };
    let net = match q.ip.as_deref().map(str::trim) {
        Some(t) => Some(if let Ok(n) = t.parse::<Ipv4Net>() {
            n
        } else {
            let a: Ipv4Addr = t.parse().map_err(|_| {
                ApiError::bad_request(format!("ip: {t:?} is not an address or CIDR"))
            })?;
            Ipv4Net::from(a)
        }),
        None => None,
    };
    if let Some(s) = q.state.as_deref()
        && !STATES.contains(&s)
    {
        return Err(ApiError::bad_request(format!(
            "state: {s:?} is not one of {}",
            STATES.join(", ")
        )));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit: must be 1 to {MAX_LIMIT}"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    let hostname = q.hostname.as_deref().map(str::to_lowercase);
    let now = unix_now();
    let plan = state.shared.plan();
    let snap = state.shared.leases();
    let matching = snap.leases.iter().filter(|l| {
        mac.as_ref().is_none_or(|m| &l.hwaddr == m)
            && net.is_none_or(|n| n.contains(&l.ip))
            && hostname.as_ref().is_none_or(|h| {
                l.hostname
                    .as_ref()
                    .is_some_and(|x| x.to_lowercase().contains(h.as_str()))
            })
            && q.state
                .as_deref()
                .is_none_or(|s| stats::state_name(l, now) == s)
            && q.circuit_id
                .as_deref()
                .is_none_or(|c| relay_matches(l.circuit_id.as_deref(), c))
            && q.remote_id
                .as_deref()
                .is_none_or(|r| relay_matches(l.remote_id.as_deref(), r))
    });
    let mut total = 0;
    let mut page = Vec::new();
    for l in matching {
        if total >= offset && page.len() < limit {
            page.push(lease_view(&plan, l, now));
        }
        total += 1;
    }
    Ok(Json(LeasePage {
        total,
        offset,
        limit,
        leases: page,
    }))
}

fn parse_ip(text: &str) -> Result<Ipv4Addr, ApiError> {
    text.trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not an IPv4 address")))
}

/// The lease record of one address. None → 404.
#[utoipa::path(get, path = "/leases/{ip}", tag = "leased",
    params(("ip" = String, Path, description = "IPv4 address")),
    responses((status = 200, body = LeaseView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn lease_one(
    State(state): State<AppState>,
    Path(ip): Path<String>,
) -> Result<Json<LeaseView>, ApiError> {
    let ip = parse_ip(&ip)?;
    let plan = state.shared.plan();
    let snap = state.shared.leases();
    snap.by_ip(ip)
        .map(|l| Json(lease_view(&plan, l, unix_now())))
        .ok_or_else(|| ApiError::not_found(format!("no lease for {ip}")))
}

/// One reservation as the running server has it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReservationView {
    pub ip: String,
    /// The subnet (CIDR) it belongs to.
    pub subnet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Client identifier (option 61), hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// An Option 82 key, as `kind=value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equipment_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management_interface: Option<String>,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<u64>,
}

fn reservation_view(subnet: &Subnet, r: &Reservation) -> ReservationView {
    let (mac, client_id, relay_key) = stats::key_parts(r);
    let m = &r.metadata;
    ReservationView {
        ip: r.ip.to_string(),
        subnet: subnet.network.to_string(),
        mac,
        client_id,
        relay_key,
        hostname: r.hostname.clone(),
        note: m.note.clone(),
        equipment_type: m.equipment_type.clone(),
        manufacturer: m.manufacturer.clone(),
        management_type: m.management_type.clone(),
        management_interface: m.management_interface.clone(),
        first_seen: m.first_seen,
    }
}

fn find_reservation(plan: &Plan, ip: Ipv4Addr) -> Option<ReservationView> {
    plan.network.subnets.iter().find_map(|s| {
        s.reservations
            .iter()
            .find(|r| r.ip == ip)
            .map(|r| reservation_view(s, r))
    })
}

/// Every reservation of the running configuration, in config order.
#[utoipa::path(get, path = "/reservations", tag = "leased",
    responses((status = 200, body = Vec<ReservationView>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn reservations_list(State(state): State<AppState>) -> Json<Vec<ReservationView>> {
    let plan = state.shared.plan();
    Json(
        plan.network
            .subnets
            .iter()
            .flat_map(|s| s.reservations.iter().map(move |r| reservation_view(s, r)))
            .collect(),
    )
}

/// The reservation for one address. None → 404.
#[utoipa::path(get, path = "/reservations/{ip}", tag = "leased",
    params(("ip" = String, Path, description = "the reserved IPv4 address")),
    responses((status = 200, body = ReservationView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn reservation_get(
    State(state): State<AppState>,
    Path(ip): Path<String>,
) -> Result<Json<ReservationView>, ApiError> {
    let ip = parse_ip(&ip)?;
    find_reservation(&state.shared.plan(), ip)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no reservation for {ip}")))
}

/// Edits the config file, validates, replaces it, reloads, and returns what the server now has.
async fn write(state: &AppState, edit: Edit) -> Result<Option<ReservationView>, ApiError> {
    let ConfigSource::File(path) = state.shared.source() else {
        return Err(ApiError::conflict(
            "the server runs an inline configuration (quick start); there is no file to edit",
        ));
    };
    let ip = edit.ip()?;
    // One API write at a time in this process; across processes (`leased manage`, another
    // server on the same file) the file's edit lock, taken inside `apply`, orders them.
    let _guard = state.writes.lock().await;
    let path = path.clone();
    tokio::task::spawn_blocking(move || reservations::apply(&path, &edit))
        .await
        .map_err(|e| ApiError::internal(format!("writer task failed: {e}")))??;
    match state.shared.reload().await {
        Some(ReloadOutcome::Swapped) => {}
        Some(ReloadOutcome::Kept(errors)) => {
            return Err(ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body: ErrorBody {
                    message: "the file was written but the reload refused it".into(),
                    errors,
                },
            });
        }
        Some(ReloadOutcome::NotAFile) => {
            return Err(ApiError::conflict("the configuration is not from a file"));
        }
        None => return Err(ApiError::unavailable("the server is shutting down")),
    }
    Ok(find_reservation(&state.shared.plan(), ip))
}

fn json_body(body: Result<Json<Value>, JsonRejection>) -> Result<Map<String, Value>, ApiError> {
    let Json(v) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request("expected a JSON object")),
    }
}

/// A reservation as written in the config file's `[[reservations]]` (any key the loader knows).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Documentation only: the body goes to the config loader as it is.
pub struct ReservationBody {
    /// MAC (or give `client_id`, or an Option 82 key the config accepts).
    mac: Option<String>,
    client_id: Option<String>,
    /// The address; unique across the configuration.
    ip: String,
    hostname: Option<String>,
    note: Option<String>,
    equipment_type: Option<String>,
    manufacturer: Option<String>,
    management_type: Option<String>,
    management_interface: Option<String>,
    first_seen: Option<u64>,
    /// Per-device options, as `[reservations.options]` in the file.
    #[schema(value_type = Option<Object>)]
    options: Option<Value>,
}

/// Adds a reservation: validated by the config loader, written atomically, live on return.
#[utoipa::path(post, path = "/reservations", tag = "leased", request_body = ReservationBody,
    responses((status = 201, body = ReservationView), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn reservation_create(
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let view = write(&state, Edit::Create(body)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Replaces the reservation for `ip` with the body (the body's `ip`, if any, must be `ip`).
#[utoipa::path(put, path = "/reservations/{ip}", tag = "leased", request_body = ReservationBody,
    params(("ip" = String, Path, description = "the reserved IPv4 address")),
    responses((status = 200, body = ReservationView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn reservation_replace(
    State(state): State<AppState>,
    Path(ip): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Option<ReservationView>>, ApiError> {
    let ip = parse_ip(&ip)?;
    let mut body = json_body(body)?;
    match reservations::body_ip(&body)? {
        Some(b) if b != ip => {
            return Err(ApiError::bad_request(format!(
                "the body's ip {b} differs from the path's {ip}; DELETE and POST to move a reservation"
            )));
        }
        Some(_) => {}
        None => {
            body.insert("ip".into(), Value::String(ip.to_string()));
        }
    }
    Ok(Json(write(&state, Edit::Replace(ip, body)).await?))
}

/// Removes the reservation for `ip`; live on return.
#[utoipa::path(delete, path = "/reservations/{ip}", tag = "leased",
    params(("ip" = String, Path, description = "the reserved IPv4 address")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn reservation_delete(
    State(state): State<AppState>,
    Path(ip): Path<String>,
) -> Result<StatusCode, ApiError> {
    let ip = parse_ip(&ip)?;
    write(&state, Edit::Delete(ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_seconds: u64,
    pub subnets: usize,
    /// Lease records held (any state).
    pub leases: usize,
    /// Age of the lease snapshot the API answers from, in seconds.
    pub snapshot_age_seconds: u64,
}

/// Liveness: the server is up; public when `api.public_health` is set.
#[utoipa::path(get, path = "/health", tag = "leased",
    responses((status = 200, body = Health), (status = 401, body = ErrorBody)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let snap = state.shared.leases();
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.shared.uptime().as_secs(),
        subnets: state.shared.plan().network.subnets.len(),
        leases: snap.leases.len(),
        snapshot_age_seconds: unix_now().0.saturating_sub(snap.taken_at.0),
    })
}

/// Prometheus text format; public when `api.public_metrics` is set.
#[utoipa::path(get, path = "/metrics", tag = "leased",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4",
        content_type = "text/plain", body = String), (status = 401, body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = crate::prom::render(&state.shared, unix_now());
    ([(header::CONTENT_TYPE, crate::prom::CONTENT_TYPE)], text).into_response()
}
