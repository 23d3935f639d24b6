//! The file stage: serde types mirroring the TOML/JSON schema, strict about keys and types.
//!
//! These types check only *shape* (which keys exist, string vs integer vs table); every value
//! stays as written so that the model stage ([`crate::validate`]) can check all of them and
//! report every bad one, each with its position, instead of stopping at the first.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// `[relay_keys]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelayKeys {
    pub switch: Option<String>,
    pub port: Option<String>,
    pub extractors: Option<Vec<String>>,
}

/// `[[classes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClass {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: Option<RawMatch>,
    pub pool: Option<RawRange>,
    pub options: Option<RawOptions>,
    /// See `config/ipv6_only.rs`.
    pub ipv6_only_wait: Option<RawDuration>,
    pub ipv6_only_address: Option<String>,
}

/// `[classes.match]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
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
pub(crate) struct RawPortKey {
    pub switch: String,
    pub port: i64,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
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
pub(crate) struct RawStore {
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
pub(crate) struct RawLogging {
    pub format: Option<String>,
    pub level: Option<String>,
    pub file: Option<String>,
}

/// `[options]`, `[subnets.options]`, `[reservations.options]`, `[device_overrides.MAC]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOptions {
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
pub(crate) struct RawRoute {
    pub destination: String,
    pub gateway: String,
}

/// One `extra` option.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExtra {
    pub code: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: serde_json::Value,
}

/// `[[subnets]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubnet {
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
    /// RFC 4039, off by default.
    pub rapid_commit: Option<bool>,
    /// See `config/ipv6_only.rs`.
    pub ipv6_only_wait: Option<RawDuration>,
    pub ipv6_only_address: Option<String>,
}

/// `[[reservations]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReservation {
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
pub(crate) struct RawMetadata {
    pub note: Option<String>,
    pub equipment_type: Option<String>,
    pub manufacturer: Option<String>,
    pub management_type: Option<String>,
    pub management_interface: Option<String>,
    pub first_seen: Option<i64>,
}

/// A table keyed by free-form strings (MACs), in the order the deserializer yields them.
#[derive(Debug)]
pub(crate) struct Entries<T>(pub Vec<(String, T)>);

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
pub(crate) enum RawDuration {
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
pub(crate) enum RawRange {
    Text(String),
    Bounds(RawBounds),
}

/// The table spelling of a range.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBounds {
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
