//! The file stage: serde types mirroring the TOML/JSON schema, strict about keys and types.
//!
//! These types check only *shape* (which keys exist, string vs integer vs table); every value
//! stays as written so that the model stage ([`super::validate`]) can check all of them and
//! report every bad one, each with its position, instead of stopping at the first.

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use super::span::Positions;
use super::{Config, ConfigError, ConfigErrors, Format, validate};

pub(super) fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            origin: origin.clone(),
            line: 0,
            col: 0,
            key: String::new(),
            message: format!("cannot read config file: {e}"),
        }])
    })?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{');
    let format = if is_json { Format::Json } else { Format::Toml };
    load_str(&text, &origin, format)
}

pub(super) fn load_str(text: &str, origin: &str, format: Format) -> Result<Config, ConfigErrors> {
    match format {
        Format::Toml => load_toml(text, origin),
        Format::Json => load_json(text, origin),
    }
}

fn error_at(pos: &Positions<'_>, origin: &str, offset: usize, message: &str) -> ConfigError {
    let (line, col) = pos.line_col(offset);
    ConfigError {
        origin: origin.to_string(),
        line,
        col,
        key: pos.path_at(offset),
        message: message.to_string(),
    }
}

fn load_toml(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let (doc, syntax) = toml::de::DeTable::parse_recoverable(text);
    let pos = Positions::from_toml(text, &doc);
    if !syntax.is_empty() {
        let mut errors: Vec<ConfigError> = syntax
            .iter()
            .map(|e| {
                let offset = e.span().map_or(0, |s| s.start);
                error_at(&pos, origin, offset, e.message())
            })
            .collect();
        errors.sort_by_key(|e| (e.line, e.col));
        return Err(ConfigErrors(errors));
    }
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        ConfigErrors(vec![error_at(&pos, origin, offset, e.message())])
    })?;
    validate::validate(raw, &pos, origin)
}

fn load_json(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let pos = Positions::from_json(text);
    let raw: RawConfig = serde_json::from_str(text).map_err(|e| {
        let (line, col) = (e.line(), e.column());
        let full = e.to_string();
        let suffix = format!(" at line {line} column {col}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        ConfigErrors(vec![ConfigError {
            origin: origin.to_string(),
            line,
            col,
            key: pos.path_at(pos.offset_of(line, col)),
            message,
        }])
    })?;
    validate::validate(raw, &pos, origin)
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
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
    pub api: Option<super::api::RawApi>,
    /// `[relay]`: absent means no relay mode.
    pub relay: Option<super::relay::RawRelay>,
    pub relay_auth: Option<Vec<super::relay_auth::RawRelayAuth>>,
    /// `[export]`: absent means no billing export.
    pub export: Option<super::export::RawExport>,
    /// `[limits]`: absent means no rate limits or offer caps.
    pub limits: Option<super::limits::RawLimits>,
    /// `[rogue_servers]`: absent means no rogue DHCP server detection.
    pub rogue_servers: Option<super::rogue::RawRogue>,
    /// `[arp_watch]`: absent means no ARP anomaly detection.
    pub arp_watch: Option<super::arp::RawArpWatch>,
    /// `[console]`: absent means no live log console.
    pub console: Option<super::console::RawConsole>,
    /// `[sql_assignment]`: absent means no SQL assignment chain.
    pub sql_assignment: Option<super::sql::RawSqlAssignment>,
}

/// `[relay_keys]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelayKeys {
    pub switch: Option<String>,
    pub port: Option<String>,
    pub extractors: Option<Vec<String>>,
}

/// `[[classes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClass {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: Option<RawMatch>,
    pub pool: Option<RawRange>,
    pub options: Option<RawOptions>,
}

/// `[classes.match]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    pub vendor_class: Option<String>,
    pub user_class: Option<String>,
    pub mac_prefix: Option<String>,
    pub hostname: Option<String>,
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
}

/// A reservation's `port_key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPortKey {
    pub switch: String,
    pub port: i64,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub authoritative: Option<bool>,
    pub interfaces: Option<Vec<String>>,
    pub lease_time: Option<RawDuration>,
    pub renewal_time: Option<RawDuration>,
    pub rebinding_time: Option<RawDuration>,
    pub offer_hold: Option<RawDuration>,
    pub decline_quarantine: Option<RawDuration>,
    pub sticky_window: Option<RawDuration>,
    pub server_id: Option<String>,
    pub pid_file: Option<String>,
    pub max_leases_per_circuit_id: Option<i64>,
    pub max_leases_per_remote_id: Option<i64>,
    pub auto_reload: Option<bool>,
    /// `off`, `arp` or `ping`: see `config/conflict.rs`.
    pub conflict_check: Option<String>,
    pub conflict_check_timeout_ms: Option<i64>,
    pub conflict_check_cache: Option<RawDuration>,
    /// Addresses/CIDRs: see `config/trust.rs`.
    pub trusted_relays: Option<Vec<String>>,
    pub trusted_option82_interfaces: Option<Vec<String>>,
    /// See `config/account.rs`.
    pub user: Option<String>,
    pub group: Option<String>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub path: Option<String>,
    /// `embedded` (default), `postgres` or `mysql`: see `config/sql.rs`.
    pub backend: Option<String>,
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub sync_interval: Option<RawDuration>,
    pub offer_when_down: Option<bool>,
    pub server_name: Option<String>,
    /// `"k/N"`: see `config/sql.rs` `AllocationSlot`.
    pub allocation_slot: Option<String>,
}

/// `[logging]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogging {
    pub format: Option<String>,
    pub level: Option<String>,
    pub file: Option<String>,
}

/// `[options]`, `[subnets.options]`, `[reservations.options]`, `[device_overrides.MAC]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOptions {
    pub dns: Option<Vec<String>>,
    pub domain_name: Option<String>,
    pub domain_search: Option<Vec<String>>,
    pub ntp: Option<Vec<String>>,
    pub mtu: Option<i64>,
    pub wins: Option<Vec<String>>,
    pub tftp_server: Option<String>,
    pub bootfile: Option<String>,
    pub next_server: Option<String>,
    pub wpad_url: Option<String>,
    pub static_routes: Option<Vec<RawRoute>>,
    pub mirror_routes_to_249: Option<bool>,
    pub vendor_specific: Option<String>,
    pub extra: Option<Vec<RawExtra>>,
}

/// One `static_routes` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub destination: String,
    pub gateway: String,
}

/// One `extra` option.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExtra {
    pub code: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: serde_json::Value,
}

/// `[[subnets]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubnet {
    pub network: String,
    pub interface: Option<String>,
    pub server_id: Option<String>,
    pub routers: Option<Vec<String>>,
    pub lease_time: Option<RawDuration>,
    pub pools: Option<Vec<RawRange>>,
    pub exclusions: Option<Vec<RawRange>>,
    pub options: Option<RawOptions>,
    pub shared_network: Option<String>,
    pub max_leases_per_circuit_id: Option<i64>,
    pub max_leases_per_remote_id: Option<i64>,
}

/// `[[reservations]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReservation {
    pub mac: Option<String>,
    pub client_id: Option<String>,
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
    pub subscriber_id: Option<String>,
    pub port_key: Option<RawPortKey>,
    pub ip: String,
    pub hostname: Option<String>,
    pub note: Option<String>,
    pub equipment_type: Option<String>,
    pub manufacturer: Option<String>,
    pub management_type: Option<String>,
    pub management_interface: Option<String>,
    pub first_seen: Option<i64>,
    pub options: Option<RawOptions>,
}

/// A `banned_macs` value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetadata {
    pub note: Option<String>,
    pub equipment_type: Option<String>,
    pub manufacturer: Option<String>,
    pub management_type: Option<String>,
    pub management_interface: Option<String>,
    pub first_seen: Option<i64>,
}

/// A table keyed by free-form strings (MACs), in the order the deserializer yields them.
#[derive(Debug)]
pub(super) struct Entries<T>(pub Vec<(String, T)>);

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Entries<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table keyed by MAC address")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, T>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// A duration as written: integer seconds or a string such as `"1h30m"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawDuration {
    Secs(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("integer seconds or a duration string such as \"12h\" or \"1h30m\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Secs(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Secs(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// An address range as written: `"a-b"`, a single `"a"`, or `{ start = "a", end = "b" }`.
#[derive(Debug)]
pub(super) enum RawRange {
    Text(String),
    Bounds(RawBounds),
}

/// The table spelling of a range.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBounds {
    pub start: String,
    pub end: String,
    /// Pools only: a name that `[[classes]]` `pool` can refer to.
    pub name: Option<String>,
}

impl<'de> Deserialize<'de> for RawRange {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address range \"start-end\", an address, or { start, end }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRange, E> {
                Ok(RawRange::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRange, A::Error> {
                RawBounds::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawRange::Bounds)
            }
        }
        d.deserialize_any(V)
    }
}
