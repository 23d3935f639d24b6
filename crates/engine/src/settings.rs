//! What the engine enforces around decisions, as the config crate hands it over: the
//! starvation limits, the conflict check before an offer, and which variables history records.
//! Defined here, next to the rules that read them; the config crate parses and checks them.

use std::collections::BTreeMap;

use leased_core::Extractor;

/// The engine's settings, replaced as a whole on reload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineSettings {
    /// `[limits]`.
    pub limits: Limits,
    /// `[server] conflict_check*`.
    pub conflict_check: ConflictCheckSettings,
    /// With `[sql_assignment] history_sql`: the slice variables its events carry (the
    /// packet's variables are recorded only then); `None`: no history query.
    pub history_slices: Option<BTreeMap<String, Extractor>>,
}

/// One token bucket's shape: `rate` requests per second on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second (> 0).
    pub rate: f64,
    /// Bucket size: requests accepted back to back from a full bucket (≥ 1).
    pub burst: u32,
}

/// The validated `[limits]`; every limit is `None` (off) unless configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Per client hardware address (chaddr).
    pub per_mac: Option<RateLimit>,
    /// Per Option 82 circuit-id (with its remote-id: one switch port).
    pub per_circuit_id: Option<RateLimit>,
    /// Per Option 82 remote-id (one relay agent / switch / CPE).
    pub per_remote_id: Option<RateLimit>,
    /// Per relay (giaddr); clients on a served link count against their receiving interface.
    pub per_relay: Option<RateLimit>,
    /// At most this many addresses offered and not yet requested or lapsed, server-wide; a
    /// DISCOVER over the cap is dropped.
    pub max_offers_in_flight: Option<u32>,
    /// The same cap per relay (giaddr, or receiving interface), so one flooded access link
    /// cannot use up the server-wide cap of every other link.
    pub max_offers_in_flight_per_relay: Option<u32>,
}

impl Limits {
    /// True when nothing is limited (io skips the guard entirely).
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// How an address is checked before it is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictCheckMode {
    /// No check (default): the offer leaves at once.
    #[default]
    Off,
    /// On-link clients: an ARP probe (RFC 5227); relayed clients: an ICMP echo.
    Arp,
    /// An ICMP echo for every client.
    Ping,
}

/// Conflict-check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictCheckSettings {
    /// Which probe, if any (`off` keeps the OFFER path exactly as without the feature).
    pub mode: ConflictCheckMode,
    /// How long to wait for an answer, in milliseconds (10..=5000, default 500).
    pub timeout_ms: u32,
    /// Seconds an address that did not answer is not checked again (default 60; 0: always).
    pub cache_secs: u32,
}

impl Default for ConflictCheckSettings {
    fn default() -> Self {
        Self {
            mode: ConflictCheckMode::Off,
            timeout_ms: 500,
            cache_secs: 60,
        }
    }
}
