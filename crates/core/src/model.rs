//! The protocol model decisions read. Built only by the config crate's loader, so every value
//! here has passed its checks: pools lie inside their subnet, reservation addresses are unique,
//! options are already encoded to wire bytes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::lease::{ClientId, HwAddr};

/// The network this server serves, as decisions see it: subnets, pools, reservations,
/// classes, options and the protocol's timers. The config crate builds it from the file; it
/// holds nothing a decision must not read (no API keys, export credentials or database URLs).
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub server: ServerSettings,
    /// Options for every subnet; a subnet's own options override these by code.
    pub options: OptionSet,
    pub subnets: Vec<Subnet>,
    /// Banned clients: never offered, NAKed on REQUEST when authoritative. The loader merges
    /// the `LEASED_BANNED_MACS` environment variable in.
    pub banned_macs: BTreeMap<HwAddr, Metadata>,
    /// Per-device option overrides (DNS, TFTP server, bootfile) for clients without a
    /// reservation; a reservation's own overrides take precedence.
    pub device_overrides: BTreeMap<HwAddr, OptionSet>,
    /// How `port_key` reservations read the switch and the port out of Option 82.
    pub relay_keys: RelayKeyConfig,
    /// Client classes in config order; the first that matches a client is its class.
    pub classes: Vec<ClientClass>,
    /// Whose Option 82 is believed (`[server] trusted_relays`, `trusted_option82_interfaces`,
    /// `[[relay_auth]]`).
    pub relay_trust: crate::trust::RelayTrust,
    /// Who owns an address the SQL assignment chain names while a relay-keyed reservation
    /// also matches (`[sql_assignment] owner`); `None`: no SQL assignment.
    pub sql_assignment_owner: Option<crate::sql::SqlOwner>,
    /// Where this server's never-used search starts in each pool (servers sharing an SQL
    /// store); `None`: at the pool's start.
    pub allocation_slot: Option<crate::sql::AllocationSlot>,
    /// Which subnets answer the client FQDN option (81) and how (`[ddns]`); empty: none.
    pub client_fqdn: crate::fqdn::FqdnPolicies,
}

/// Which extractors give the "switch" and the "port" of a `port_key` reservation, plus the
/// user-defined slices (pydhcpdb `src:dst:start:end`) by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayKeyConfig {
    /// Default `remote_id_mac`.
    pub switch: crate::relay::Extractor,
    /// Default `circuit_id_last_byte_port`.
    pub port: crate::relay::Extractor,
    /// User-defined extractors by name.
    pub named: BTreeMap<String, crate::relay::Extractor>,
}

impl Default for RelayKeyConfig {
    fn default() -> Self {
        Self {
            switch: crate::relay::Extractor::RemoteIdMac,
            port: crate::relay::Extractor::CircuitIdLastBytePort,
            named: BTreeMap::new(),
        }
    }
}

/// A client class: who belongs (every given field must match) and what they get.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientClass {
    /// Unique name, for logs and docs.
    pub name: String,
    /// The match; an empty one matches everybody.
    pub matcher: ClassMatch,
    /// Members allocate only from this range of subnet `pool.0` (index into `subnets`), and
    /// non-members never get an address from it.
    pub pool: Option<(usize, AddrRange)>,
    /// Options layered over the subnet's (under device overrides and reservations).
    pub options: OptionSet,
    /// RFC 8925 for members, over the subnet's own setting; `None`: the subnet's.
    pub ipv6_only: Option<Ipv6Only>,
}

/// Class match criteria. Globs use `*` (any run) and `?` (one character), ASCII
/// case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassMatch {
    /// Option 60 glob.
    pub vendor_class: Option<String>,
    /// Option 77 glob, matched against each RFC 3004 item (or the whole value as text).
    pub user_class: Option<String>,
    /// Leading bytes of chaddr.
    pub mac_prefix: Option<Vec<u8>>,
    /// Option 12 glob.
    pub hostname: Option<String>,
    /// Exact circuit-id.
    pub circuit_id: Option<Vec<u8>>,
    /// Exact remote-id.
    pub remote_id: Option<Vec<u8>>,
}

/// Server-wide behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// NAK requests for wrong addresses and banned clients (RFC 2131 §4.3.2). Default true.
    pub authoritative: bool,
    /// Default lease time in seconds (option 51). Default 86400.
    pub lease_time: u32,
    /// T1 (58) in seconds; default lease_time / 2.
    pub renewal_time: Option<u32>,
    /// T2 (59) in seconds; default lease_time * 7 / 8.
    pub rebinding_time: Option<u32>,
    /// How long an offered address is held for its client. Default 60.
    pub offer_hold: u32,
    /// How long a DECLINEd address is quarantined. Default 86400.
    pub decline_quarantine: u32,
    /// How long after expiry/release a client keeps a claim on its old address. Default 86400.
    pub sticky_window: u32,
    /// Server identifier (54) when it should not be the address of the receiving interface.
    pub server_id: Option<Ipv4Addr>,
    /// At most this many active leases per circuit (same circuit-id from the same remote-id);
    /// a further client is not offered. `None`: no cap.
    pub max_leases_per_circuit_id: Option<u32>,
    /// At most this many active leases per remote-id (per relay agent / CPE). `None`: no cap.
    pub max_leases_per_remote_id: Option<u32>,
}

/// One IPv4 subnet and how to serve it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    pub network: Ipv4Net,
    /// Serve this subnet to direct clients on this interface (else by the interface address).
    pub interface: Option<String>,
    /// Server identifier for this subnet; default the receiving interface's address.
    pub server_id: Option<Ipv4Addr>,
    /// Gateways (option 3); never handed out.
    pub routers: Vec<Ipv4Addr>,
    /// Dynamic ranges, inclusive, inside `network`, not overlapping.
    pub pools: Vec<AddrRange>,
    /// Addresses inside pools that are never handed out.
    pub exclusions: Vec<AddrRange>,
    pub reservations: Vec<Reservation>,
    /// Lease time for this subnet, overriding the server default.
    pub lease_time: Option<u32>,
    /// Subnets with the same name share one link: when one is exhausted, the next is used.
    /// Without a name, subnets on the same `interface` share their link.
    pub shared_network: Option<String>,
    /// Overrides `server.max_leases_per_circuit_id` for this subnet.
    pub max_leases_per_circuit_id: Option<u32>,
    /// Overrides `server.max_leases_per_remote_id` for this subnet.
    pub max_leases_per_remote_id: Option<u32>,
    /// This subnet's options, already merged over the global ones (subnet wins by code).
    /// Includes option 1 (mask) and 3 (routers) and 28 (broadcast) derived from the network.
    pub options: OptionSet,
    /// RFC 4039: a DISCOVER carrying option 80 is answered with an ACK for a lease committed
    /// at once (two messages instead of four). Off by default: every DISCOVER then becomes a
    /// durable binding, so it belongs on links whose ports are capped.
    pub rapid_commit: bool,
    /// RFC 8925 IPv6-only preferred for this subnet's clients that ask for it; `None`: off.
    pub ipv6_only: Option<Ipv6Only>,
}

/// RFC 8925: how clients that list option 108 are told the link is IPv6-mostly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Only {
    /// V6ONLY_WAIT in seconds, the value of option 108 (at least 300, RFC 8925 §3.4): how long
    /// the client leaves DHCPv4 alone.
    pub wait: u32,
    /// What such a client's DISCOVER is offered.
    pub address: Ipv6OnlyAddress,
}

/// What a client that asked for option 108 is offered (RFC 8925 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ipv6OnlyAddress {
    /// yiaddr 0.0.0.0: no address is taken and nothing is bound, so the pool is kept for the
    /// clients that need IPv4 (the RFC's preference).
    #[default]
    None,
    /// An address from the pool as usual, with option 108 beside it (for networks where a
    /// 0.0.0.0 offer is not feasible).
    Lease,
}

/// An inclusive address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AddrRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl AddrRange {
    /// True when `ip` lies in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }

    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.end)).saturating_sub(u64::from(u32::from(self.start))) + 1
    }

    /// Never true for a validated range; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

/// How a reservation recognises its client.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReservationKey {
    Mac(HwAddr),
    ClientId(ClientId),
    /// Option 82 circuit-id, whatever the client's MAC.
    CircuitId(Vec<u8>),
    /// Option 82 remote-id.
    RemoteId(Vec<u8>),
    /// Both remote-id and circuit-id (a port of one switch).
    RelayPair {
        remote_id: Vec<u8>,
        circuit_id: Vec<u8>,
    },
    /// Option 82 subscriber-id (RFC 3993).
    SubscriberId(Vec<u8>),
    /// Switch + port as read by the `[relay_keys]` extractors.
    PortKey {
        switch: Vec<u8>,
        port: u64,
    },
}

impl ReservationKey {
    /// True for keys taken from Option 82: such a reservation belongs to the port, so a new
    /// device there takes the address over from the old one.
    pub fn is_relay(&self) -> bool {
        !matches!(self, Self::Mac(_) | Self::ClientId(_))
    }
}

/// A fixed address for one client, with the operator's notes about the device.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub key: ReservationKey,
    /// Inside the subnet; may be inside or outside the pools; unique across the config.
    pub ip: Ipv4Addr,
    /// Option 12 to send.
    pub hostname: Option<String>,
    pub metadata: Metadata,
    /// Per-device option overrides (DNS, TFTP, bootfile, or any option).
    pub options: OptionSet,
}

/// Free-form facts an operator keeps about a device (dhcplane's reservation metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub note: Option<String>,
    pub equipment_type: Option<String>,
    pub manufacturer: Option<String>,
    pub management_type: Option<String>,
    pub management_interface: Option<String>,
    /// Unix seconds.
    pub first_seen: Option<u64>,
}

/// Options ready for the wire: code → encoded value, plus the BOOTP header fields used by PXE.
///
/// Layers merge by code: global < subnet < device override < reservation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionSet {
    /// Encoded option values by code (never 0, 255, 53, 54, 51, 58, 59, 82: core owns those).
    pub values: BTreeMap<u8, Vec<u8>>,
    /// `siaddr` in replies (next server, PXE).
    pub next_server: Option<Ipv4Addr>,
    /// `file` in replies (PXE boot file).
    pub boot_file: Option<String>,
    /// Send option 121's value as 249 as well when the client asks for 249.
    pub mirror_routes_to_249: Option<bool>,
}

impl OptionSet {
    /// Returns `self` overlaid with `over` (values in `over` win, by code and per field).
    pub fn merged(&self, over: &OptionSet) -> OptionSet {
        let mut values = self.values.clone();
        values.extend(over.values.iter().map(|(k, v)| (*k, v.clone())));
        OptionSet {
            values,
            next_server: over.next_server.or(self.next_server),
            boot_file: over.boot_file.clone().or_else(|| self.boot_file.clone()),
            mirror_routes_to_249: over.mirror_routes_to_249.or(self.mirror_routes_to_249),
        }
    }
}
