//! The whole file's shape: every section as written, the rooms' own sections included. The
//! file stage's entry point; [`crate::validate`] turns it into the model.

use serde::Deserialize;

use crate::file::{
    Entries, RawClass, RawLogging, RawMetadata, RawOptions, RawRelayKeys, RawReservation,
    RawServer, RawStore, RawSubnet,
};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub logging: RawLogging,
    #[serde(default)]
    pub options: RawOptions,
    /// `None`: no `[[subnets]]` at all; `Some([])`: `subnets = []`, serving nothing on purpose.
    #[serde(default)]
    pub subnets: Option<Vec<RawSubnet>>,
    #[serde(default)]
    pub reservations: Vec<RawReservation>,
    #[serde(default)]
    pub banned_macs: Entries<RawMetadata>,
    #[serde(default)]
    pub device_overrides: Entries<RawOptions>,
    #[serde(default)]
    pub relay_keys: RawRelayKeys,
    #[serde(default)]
    pub classes: Vec<RawClass>,
    /// `[api]`: absent means no HTTP API.
    pub api: Option<crate::api::RawApi>,
    /// `[relay]`: absent means no relay mode.
    pub relay: Option<crate::relay::RawRelay>,
    pub relay_auth: Option<Vec<crate::relay_auth::RawRelayAuth>>,
    /// `[export]`: absent means no billing export.
    pub export: Option<crate::export::RawExport>,
    /// `[limits]`: absent means no rate limits or offer caps.
    pub limits: Option<crate::limits::RawLimits>,
    /// `[rogue_servers]`: absent means no rogue DHCP server detection.
    pub rogue_servers: Option<crate::rogue::RawRogue>,
    /// `[arp_watch]`: absent means no ARP anomaly detection.
    pub arp_watch: Option<crate::arp::RawArpWatch>,
    /// `[console]`: absent means no live log console.
    pub console: Option<crate::console::RawConsole>,
    /// `[ha]`: absent means a standalone server.
    pub ha: Option<crate::ha::RawHa>,
    /// `[leasequery]`: absent means no leasequery is answered.
    pub leasequery: Option<crate::leasequery::RawLeasequery>,
    /// `[sql_assignment]`: absent means no SQL assignment chain.
    pub sql_assignment: Option<crate::sql::RawSqlAssignment>,
    /// `[ddns]`: absent means no DNS updates.
    pub ddns: Option<crate::ddns::RawDdns>,
}
