//! What the network monitors found: foreign DHCP servers (`GET /rogue_servers`) and
//! current ARP anomalies (`GET /arp_findings`), read from io's shared monitor tables, so the
//! API lists exactly what the `FOREIGN-DHCP-SERVER` / `ARP-ANOMALY` log lines are about.

use axum::Json;
use axum::extract::State;
use leased_io::{ArpFinding, ForeignServer};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ErrorBody;

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One foreign DHCP server seen on a served link.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RogueServerView {
    /// Its server identifier (option 54), else the reply's source address.
    pub server_ip: String,
    /// The Ethernet source of its replies.
    pub mac: String,
    /// The interface it was first seen on.
    pub iface: String,
    /// Unix seconds of its first reply seen.
    pub first_seen: u64,
    /// Unix seconds of its latest reply seen.
    pub last_seen: u64,
    /// OFFER/ACK replies seen from it.
    pub replies: u64,
}

impl From<ForeignServer> for RogueServerView {
    fn from(s: ForeignServer) -> Self {
        Self {
            server_ip: s.server_ip.to_string(),
            mac: mac_text(&s.mac),
            iface: s.iface,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            replies: s.replies,
        }
    }
}

/// Foreign DHCP servers seen on the served links (`[rogue_servers]`; empty when it is off).
/// Whitelisted servers and leased itself are never listed.
#[utoipa::path(get, path = "/rogue_servers", tag = "leased",
    responses((status = 200, body = Vec<RogueServerView>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn rogue_servers(State(state): State<AppState>) -> Json<Vec<RogueServerView>> {
    Json(
        state
            .shared
            .foreign_servers()
            .into_iter()
            .map(RogueServerView::from)
            .collect(),
    )
}

/// One current ARP anomaly.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArpFindingView {
    /// `unknown`, `mac-mismatch` or `banned-mac`.
    pub kind: &'static str,
    /// The address in use.
    pub ip: String,
    /// The MAC using it.
    pub mac: String,
    /// The interface it was seen on.
    pub iface: String,
    /// For `mac-mismatch`: the MAC the lease or reservation names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_mac: Option<String>,
    /// For `mac-mismatch`: `lease` or `reservation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<&'static str>,
    /// Unix seconds: when the finding appeared.
    pub first_seen: u64,
    /// Unix seconds: the latest scan that still saw it.
    pub last_seen: u64,
}

impl From<ArpFinding> for ArpFindingView {
    fn from(f: ArpFinding) -> Self {
        Self {
            kind: f.kind.as_str(),
            ip: f.ip.to_string(),
            mac: mac_text(&f.mac),
            iface: f.iface,
            expected_mac: f.expected_mac,
            against: f.against,
            first_seen: f.first_seen,
            last_seen: f.last_seen,
        }
    }
}

/// ARP anomalies present at the latest scan (`[arp_watch]`; empty when it is off). A finding
/// leaves the list when the host stops using the address.
#[utoipa::path(get, path = "/arp_findings", tag = "leased",
    responses((status = 200, body = Vec<ArpFindingView>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn arp_findings(State(state): State<AppState>) -> Json<Vec<ArpFindingView>> {
    Json(
        state
            .shared
            .arp_findings()
            .into_iter()
            .map(ArpFindingView::from)
            .collect(),
    )
}
