//! The HA pair as an operator sees it: `GET /ha` (this server's state, the partner's, the
//! link, unsent updates, counters) and `POST /ha/maintenance|resume|sync`, which go to the
//! engine task's HA side exactly as `leased ha …` does (it calls these).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use leased_io::{HaCommand, HaStatus};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// `GET /ha`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HaView {
    /// `hot-standby` or `load-balancing`.
    pub mode: &'static str,
    /// This server's peer name.
    pub this_server: String,
    /// `primary`, `standby` or `secondary`.
    pub role: &'static str,
    /// This server's state: `waiting`, `syncing`, `ready`, `hot-standby`, `load-balancing`,
    /// `partner-down`, `in-maintenance`, `partner-in-maintenance`, `terminated`.
    pub state: &'static str,
    /// Seconds in that state.
    pub state_seconds: u64,
    /// The partner's peer name.
    pub partner: String,
    /// Where its partner link listens.
    pub partner_url: String,
    /// The partner's state as it last said (null: never heard).
    pub partner_state: Option<&'static str>,
    /// A link is connected and authenticated.
    pub link_up: bool,
    /// The partner answers in time: ACKs wait for its durable copy.
    pub partner_reachable: bool,
    /// Seconds since the partner was last heard from (null: never).
    pub last_contact_seconds: Option<f64>,
    /// Lease changes queued or unacknowledged for the partner.
    pub unsent_updates: usize,
    /// Lease changes sent to the partner since start.
    pub updates_sent: u64,
    /// Commits the partner acknowledged as durable since start.
    pub updates_acked: u64,
    /// Commits whose partner copy was refused or dropped (their replies never left).
    pub updates_failed: u64,
    /// Lease changes received from the partner since start.
    pub updates_received: u64,
    /// State changes since start.
    pub state_changes: u64,
    /// Bulk syncs completed since start.
    pub syncs: u64,
    /// Seconds the last completed sync took (null: none yet).
    pub last_sync_seconds: Option<f64>,
    /// Leases the last completed sync brought.
    pub last_sync_leases: Option<u64>,
    /// Why the partner was last refused (another pair config, name or key), if it was.
    pub last_refusal: Option<String>,
}

impl From<HaStatus> for HaView {
    fn from(s: HaStatus) -> Self {
        Self {
            mode: s.mode,
            this_server: s.this_server,
            role: s.role,
            state: s.state,
            state_seconds: s.state_since.elapsed().as_secs(),
            partner: s.partner,
            partner_url: s.partner_url.to_string(),
            partner_state: s.partner_state,
            link_up: s.link_up,
            partner_reachable: s.partner_reachable,
            last_contact_seconds: s.last_contact.map(|t| t.elapsed().as_secs_f64()),
            unsent_updates: s.unsent_updates,
            updates_sent: s.updates_sent,
            updates_acked: s.updates_acked,
            updates_failed: s.updates_failed,
            updates_received: s.updates_received,
            state_changes: s.state_changes,
            syncs: s.syncs,
            last_sync_seconds: s.last_sync.map(|(d, _)| d.as_secs_f64()),
            last_sync_leases: s.last_sync.map(|(_, n)| n),
            last_refusal: s.last_refusal,
        }
    }
}

/// The answer to an HA command.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HaCommandResult {
    /// What the server did.
    pub result: String,
    /// The state afterwards.
    pub ha: HaView,
}

/// This server's HA state; 404 when it runs without `[ha]`.
#[utoipa::path(get, path = "/ha", tag = "leased",
    responses((status = 200, body = HaView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn ha_status(State(state): State<AppState>) -> Result<Json<HaView>, ApiError> {
    state
        .shared
        .ha_status()
        .map(|s| Json(s.into()))
        .ok_or_else(|| ApiError::not_found("this server runs without [ha]"))
}

async fn command(state: &AppState, cmd: HaCommand) -> Result<Response, ApiError> {
    match state.shared.ha_command(cmd).await {
        None if state.shared.ha_status().is_none() => {
            Err(ApiError::not_found("this server runs without [ha]"))
        }
        None => Err(ApiError::unavailable("the server is shutting down")),
        Some(Err(why)) => Err(ApiError::conflict(why)),
        Some(Ok(result)) => {
            let ha = state
                .shared
                .ha_status()
                .map(HaView::from)
                .ok_or_else(|| ApiError::not_found("this server runs without [ha]"))?;
            Ok((StatusCode::OK, Json(HaCommandResult { result, ha })).into_response())
        }
    }
}

/// Takes this server out of service on purpose: the partner serves every client at once.
/// 409 unless both servers are in their normal state and can talk.
#[utoipa::path(post, path = "/ha/maintenance", tag = "leased",
    responses((status = 200, body = HaCommandResult), (status = 409, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn ha_maintenance(State(state): State<AppState>) -> Result<Response, ApiError> {
    command(&state, HaCommand::Maintenance).await
}

/// Ends a maintenance: the server syncs if it must, then takes up its role.
#[utoipa::path(post, path = "/ha/resume", tag = "leased",
    responses((status = 200, body = HaCommandResult), (status = 409, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn ha_resume(State(state): State<AppState>) -> Result<Response, ApiError> {
    command(&state, HaCommand::Resume).await
}

/// Fetches the partner's whole table again (this server stops serving until it is done).
#[utoipa::path(post, path = "/ha/sync", tag = "leased",
    responses((status = 200, body = HaCommandResult), (status = 409, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn ha_sync(State(state): State<AppState>) -> Result<Response, ApiError> {
    command(&state, HaCommand::Sync).await
}
