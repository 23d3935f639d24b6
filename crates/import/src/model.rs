//! The part of leased's config schema the importers write, as plain serializable values.
//!
//! The importers fill these from another server's files; [`crate::finish`] renders them as TOML
//! and checks the text with leased's own loader, so nothing here needs to be valid by
//! construction: whatever the loader refuses is dropped and listed, never written.

use std::collections::BTreeMap;

use serde::Serialize;

/// A leased config as the importers build it (see `docs/config.md` for every key).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LeasedConfig {
    /// `[server]`.
    #[serde(skip_serializing_if = "ServerPart::is_empty")]
    pub server: ServerPart,
    /// `[store]`: set by [`crate::finish`].
    pub store: StorePart,
    /// `[options]`: sent to every subnet.
    #[serde(skip_serializing_if = "Opts::is_empty")]
    pub options: Opts,
    /// `[[subnets]]`.
    pub subnets: Vec<SubnetPart>,
    /// `[[reservations]]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<ReservationPart>,
    /// `[banned_macs]`, by MAC as written.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub banned_macs: BTreeMap<String, MetaPart>,
    /// `[device_overrides]`, by MAC as written.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub device_overrides: BTreeMap<String, Opts>,
    /// `[[classes]]`, first match wins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassPart>,
    /// `[rogue_servers]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rogue_servers: Option<RoguePart>,
    /// `[arp_watch]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp_watch: Option<ArpWatchPart>,
}

/// `[server]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerPart {
    /// NAK wrong requests (the sources' defaults differ: Kea and dnsmasq are not
    /// authoritative unless told, dhcplane is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authoritative: Option<bool>,
    /// Interfaces to serve.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Default lease time, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_time: Option<u64>,
    /// T1, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<u64>,
    /// T2, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebinding_time: Option<u64>,
    /// Quarantine of a declined address, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_quarantine: Option<u64>,
    /// How long an expired client keeps a claim on its address, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky_window: Option<u64>,
    /// Server identifier (option 54).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// Write the process id here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<String>,
    /// Reload when the file changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_reload: Option<bool>,
}

impl ServerPart {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `[store]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StorePart {
    /// The lease journal.
    pub path: String,
}

/// An option table: `[options]`, `[subnets.options]`, `[reservations.options]`,
/// `[device_overrides."MAC"]`, `[classes.options]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Opts {
    /// Option 6.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// Option 15.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    /// Option 119.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domain_search: Vec<String>,
    /// Option 42.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ntp: Vec<String>,
    /// Option 26.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// Option 44.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wins: Vec<String>,
    /// Option 66.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tftp_server: Option<String>,
    /// Option 67 and the BOOTP `file` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootfile: Option<String>,
    /// `siaddr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_server: Option<String>,
    /// Option 252.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wpad_url: Option<String>,
    /// Option 121.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<Route>,
    /// Option 249 as a copy of 121.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_routes_to_249: Option<bool>,
    /// Option 43, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_specific: Option<String>,
    /// Any other option.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<Extra>,
}

impl Opts {
    /// True when no option is set (the table is then left out).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// True when this table already sets option `code` (named key or `extra`).
    pub fn has_code(&self, code: u8) -> bool {
        let named = match code {
            6 => !self.dns.is_empty(),
            15 => self.domain_name.is_some(),
            119 => !self.domain_search.is_empty(),
            42 => !self.ntp.is_empty(),
            26 => self.mtu.is_some(),
            44 => !self.wins.is_empty(),
            66 => self.tftp_server.is_some(),
            67 => self.bootfile.is_some(),
            252 => self.wpad_url.is_some(),
            121 => !self.static_routes.is_empty(),
            43 => self.vendor_specific.is_some(),
            _ => false,
        };
        named || self.extra.iter().any(|e| e.code == code)
    }

    /// `self` with every option of `under` that `self` does not set itself (an inherited
    /// layer, e.g. a Kea shared network's options under its subnets').
    pub fn over(mut self, under: &Opts) -> Opts {
        macro_rules! vec_field {
            ($f:ident) => {
                if self.$f.is_empty() {
                    self.$f = under.$f.clone();
                }
            };
        }
        macro_rules! opt_field {
            ($f:ident) => {
                if self.$f.is_none() {
                    self.$f = under.$f.clone();
                }
            };
        }
        vec_field!(dns);
        opt_field!(domain_name);
        vec_field!(domain_search);
        vec_field!(ntp);
        opt_field!(mtu);
        vec_field!(wins);
        opt_field!(tftp_server);
        opt_field!(bootfile);
        opt_field!(next_server);
        opt_field!(wpad_url);
        vec_field!(static_routes);
        opt_field!(mirror_routes_to_249);
        opt_field!(vendor_specific);
        for e in &under.extra {
            if !self.has_code(e.code) {
                self.extra.push(e.clone());
            }
        }
        self
    }
}

/// One classless static route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// CIDR.
    pub destination: String,
    /// Next hop.
    pub gateway: String,
}

/// An `extra` option.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extra {
    /// Option code.
    pub code: u8,
    /// `ip`, `ip_list`, `u8`, `u16`, `u32`, `bool`, `string` or `hex`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The value in that type's spelling.
    pub value: toml::Value,
}

/// `[[subnets]]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SubnetPart {
    /// Where it came from in the source, for the not-mapped list (not written).
    #[serde(skip)]
    pub origin: String,
    /// CIDR.
    pub network: String,
    /// Serve direct clients on this interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Server identifier here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// Option 3.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routers: Vec<String>,
    /// Lease time here, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_time: Option<u64>,
    /// Dynamic ranges, `a-b`.
    pub pools: Vec<String>,
    /// Never handed out dynamically, `a-b` or `a`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclusions: Vec<String>,
    /// Options of this subnet.
    #[serde(skip_serializing_if = "Opts::is_empty")]
    pub options: Opts,
    /// The link's name when several subnets share it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_network: Option<String>,
}

/// `[[reservations]]`. Exactly one client key is set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReservationPart {
    /// Where it came from in the source, for the not-mapped list (not written).
    #[serde(skip)]
    pub origin: String,
    /// By MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// By client identifier (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// By Option 82 circuit-id (relay value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    /// By Option 82 remote-id (relay value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// By Option 82 subscriber-id (relay value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber_id: Option<String>,
    /// The address.
    pub ip: String,
    /// Option 12.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Free-form notes (dhcplane's reservation metadata).
    #[serde(flatten)]
    pub meta: MetaPart,
    /// Options for this client.
    #[serde(skip_serializing_if = "Opts::is_empty")]
    pub options: Opts,
}

/// Device metadata (a reservation's or a banned MAC's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetaPart {
    /// Note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Equipment type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equipment_type: Option<String>,
    /// Manufacturer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// How the device is managed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management_type: Option<String>,
    /// Where it is managed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management_interface: Option<String>,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<i64>,
}

/// `[[classes]]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassPart {
    /// Where it came from in the source, for the not-mapped list (not written).
    #[serde(skip)]
    pub origin: String,
    /// Unique name.
    pub name: String,
    /// Every field given must match.
    #[serde(rename = "match", skip_serializing_if = "MatchPart::is_empty")]
    pub matcher: MatchPart,
    /// Members allocate only from this range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Options for members.
    #[serde(skip_serializing_if = "Opts::is_empty")]
    pub options: Opts,
}

/// `[classes.match]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MatchPart {
    /// Option 60 glob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_class: Option<String>,
    /// Option 77 glob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_class: Option<String>,
    /// Leading chaddr bytes, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_prefix: Option<String>,
    /// Option 12 glob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Exact circuit-id (relay value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    /// Exact remote-id (relay value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
}

impl MatchPart {
    /// True when nothing is matched on (the class then matches everybody).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `[rogue_servers]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoguePart {
    /// Watching on or off.
    pub enabled: bool,
    /// Sanctioned servers (IPv4 or MAC).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub whitelist: Vec<String>,
    /// Log lines a minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_per_minute: Option<i64>,
    /// Active probing period, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_interval: Option<u64>,
}

/// `[arp_watch]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArpWatchPart {
    /// Scanning on or off.
    pub enabled: bool,
    /// Seconds between scans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// ARP-probe pool and reserved addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<bool>,
}
