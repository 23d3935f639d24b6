//! The DHCPStats view (`/subnets`, `/counts`) and the per-pool gauges of `/metrics`, computed
//! from the live plan and the engine's lease snapshot. Pure functions of (plan, leases, now).
//!
//! How leased's lease states map to ISC `binding-state`s (what DHCPStats clients know):
//!
//! | leased                                  | `binding-state` | counted in `ips.` |
//! |-----------------------------------------|-----------------|-------------------|
//! | bound, not yet expired                  | `active`        | `active`          |
//! | released                                | `released`      | `released`        |
//! | expired (or bound/offered/declined past its end) | `free` | `free`            |
//! | offered, held for a client              | `offered`       | (none)            |
//! | declined, in quarantine                 | `abandoned`     | (none)            |
//!
//! `ips.total` is the number of addresses in the subnet's pools (DHCPStats: the ranges);
//! `ips.backup` is always 0 (no failover); `ips.static` is the number of reservations;
//! `ips.unused` is the number of pool addresses that hold no lease record at all, never
//! handed out, so it can never be negative (DHCPStats subtracted counts that included leases
//! outside the ranges and could go below zero).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use leased_config::{AddrRange, Reservation, ReservationKey, Subnet};
use leased_core::{Lease, LeaseState, Plan, Timestamp};
use serde::Serialize;
use serde::ser::SerializeMap;
use utoipa::ToSchema;

/// DHCP option codes read back out of a subnet's encoded options.
const OPT_DNS: u8 = 6;
const OPT_DOMAIN_NAME: u8 = 15;
const OPT_NTP: u8 = 42;

/// A JSON object whose keys keep the order they were pushed in (config order for subnets,
/// address order for leases), unlike a sorted map.
#[derive(Debug, Clone)]
pub struct Keyed<T>(pub Vec<(String, T)>);

impl<T: Serialize> Serialize for Keyed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The `ips` block of a subnet (and `ip_counts` of `/counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Ips {
    /// Addresses in the pools.
    pub total: u64,
    /// Bound leases not yet expired.
    pub active: u64,
    /// Released leases.
    pub released: u64,
    /// Expired leases (free for reuse, remembered for stickiness).
    pub free: u64,
    /// Always 0: leased has no failover peer.
    pub backup: u64,
    /// Pool addresses never handed out (no lease record); never negative.
    pub unused: u64,
    /// Reservations in the subnet.
    #[serde(rename = "static")]
    pub statics: u64,
}

impl Ips {
    fn add(&mut self, o: &Ips) {
        self.total += o.total;
        self.active += o.active;
        self.released += o.released;
        self.free += o.free;
        self.backup += o.backup;
        self.unused += o.unused;
        self.statics += o.statics;
    }
}

/// One reservation in DHCPStats' `statics` shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Static {
    /// The reserved client's MAC, when the reservation is by MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// The reserved client's client identifier (hex), when the reservation is by option 61.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// What else identifies the client (Option 82 keys), as `kind=value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_key: Option<String>,
    pub ip_address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
}

/// One lease in DHCPStats' (ISC dhcpd.leases) shape; times as `W YYYY/MM/DD HH:MM:SS` UTC.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IscLease {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts: Option<String>,
    /// `never` for an infinite ISC lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends: Option<String>,
    /// Failover: the end time sent to the peer (ISC files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tstp: Option<String>,
    /// Failover: the end time the peer acknowledged (ISC files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tsfp: Option<String>,
    /// Failover: the actual time the peer acknowledged (ISC files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub atsfp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cltt: Option<String>,
    /// leased's states mapped as in the module docs; over ISC files, the file's own word (for
    /// an entry without one, the state dhcpd gives it: `active` until its end, then `free`).
    #[serde(rename = "binding-state", skip_serializing_if = "Option::is_none")]
    pub binding_state: Option<String>,
    #[serde(rename = "hardware-ethernet", skip_serializing_if = "Option::is_none")]
    pub hardware_ethernet: Option<String>,
    /// The client identifier (option 61) when the client sent one: ISC-escaped from a live
    /// lease, exactly as written (colon-hex or the quoted text) from an ISC file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// ISC files only: each `set NAME = VALUE;` of the entry under its own name
    /// (`ddns-fwd-name`, `ddns-rev-name`, `vendor-class-identifier`, …), value as written, and
    /// `hardware-TYPE` for a hardware type other than ethernet, as DHCPStats reports them.
    #[serde(flatten)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub vars: Keyed<String>,
    #[serde(rename = "client-hostname", skip_serializing_if = "Option::is_none")]
    pub client_hostname: Option<String>,
}

/// The keys [`IscLease`] writes itself; a `set` variable of the same name is not repeated.
pub const ISC_LEASE_KEYS: [&str; 10] = [
    "starts",
    "ends",
    "tstp",
    "tsfp",
    "atsfp",
    "cltt",
    "binding-state",
    "hardware-ethernet",
    "uid",
    "client-hostname",
];

/// One subnet in DHCPStats' shape. Absent values are omitted, never null.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubnetView {
    /// The subnet's CIDR, in every answer (DHCPStats stores it in each subnet's file, so its
    /// `/subnets/all`, `/subnets/list` and `/subnets/{ip}` all carry it).
    pub subnet: String,
    /// The shared network (several subnets on one link) this subnet belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_network: Option<String>,
    /// The pools, as `[start, end]` pairs.
    pub ranges: Vec<[String; 2]>,
    /// Whether monitoring should count this copy of the subnet (the DHCPStats combiner reads
    /// it): always true for `leased serve`; over ISC files false after a `#!` line in the
    /// subnet, as DHCPStats does.
    pub monitor: bool,
    pub ips: Ips,
    /// The subnet's CIDR (DHCPStats' default description); over ISC files the text of a
    /// `#$ …` / `#! …` line in the subnet when there is one, as DHCPStats reads it.
    pub description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ntp_servers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    /// `ddns-domainname`: from ISC files, or under `leased serve` the qualifying suffix of the
    /// subnet's `[ddns]` zones (absent when the subnet does no DDNS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddns_domain_name: Option<String>,
    /// Reservations, keyed by host name (else MAC, else client id; `@ip` added on a clash).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Static>>)]
    pub statics: Option<Keyed<Static>>,
    /// Lease records by address (offers and quarantines included, see the module docs).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, IscLease>>)]
    pub leases: Option<Keyed<IscLease>>,
}

/// `/counts`: every subnet's `ips` summed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Counts {
    pub ip_counts: Ips,
    /// `static + active`, as DHCPStats computes it.
    pub estimated_devices: u64,
}

/// The ISC binding state of `lease` at `now` (see the module docs).
pub fn binding_state(lease: &Lease, now: Timestamp) -> &'static str {
    let live = lease.expires > now;
    match lease.state {
        LeaseState::Bound if live => "active",
        LeaseState::Offered if live => "offered",
        LeaseState::Declined if live => "abandoned",
        LeaseState::Released => "released",
        _ => "free",
    }
}

/// leased's own state name at `now`: a binding or offer past its end reads `expired` even if
/// the engine's timer has not processed it yet.
pub fn state_name(lease: &Lease, now: Timestamp) -> &'static str {
    match lease.state {
        LeaseState::Released => "released",
        LeaseState::Expired => "expired",
        _ if lease.expires <= now => "expired",
        LeaseState::Offered => "offered",
        LeaseState::Bound => "bound",
        LeaseState::Declined => "declined",
    }
}

/// The leases (sorted by address) whose address lies in `lo..=hi`.
pub fn leases_in(leases: &[Lease], lo: Ipv4Addr, hi: Ipv4Addr) -> &[Lease] {
    let a = leases.partition_point(|l| l.ip < lo);
    let b = leases.partition_point(|l| l.ip <= hi);
    leases.get(a..b).unwrap_or_default()
}

fn range_of(subnet: &Subnet) -> (Ipv4Addr, Ipv4Addr) {
    (subnet.network.network(), subnet.network.broadcast())
}

/// The first subnet of the plan containing `ip` (DHCPStats' rule for overlapping subnets).
pub fn subnet_of(plan: &Plan, ip: Ipv4Addr) -> Option<&Subnet> {
    plan.network
        .subnets
        .iter()
        .find(|s| s.network.contains(&ip))
}

fn ips_of(option: Option<&Vec<u8>>) -> Vec<String> {
    option
        .map(|v| {
            v.chunks_exact(4)
                .filter_map(|c| <[u8; 4]>::try_from(c).ok())
                .map(|b| Ipv4Addr::from(b).to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes as lowercase hex pairs joined by `:`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// An Option 82 value for people: the text when it is printable ASCII (most circuit-ids are,
/// e.g. `eth0/1/2:100`), else `0x` and hex.
pub fn relay_text(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        let mut s = String::from("0x");
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// A client identifier escaped the way dhcpd.leases writes `uid`: printable characters as
/// they are, others as three-digit octal escapes.
fn isc_escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes {
        if b.is_ascii_graphic() && *b != b'"' && *b != b'\\' {
            s.push(char::from(*b));
        } else {
            s.push_str(&format!("\\{b:03o}"));
        }
    }
    s
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Unix seconds in dhcpd.leases' format: `W YYYY/MM/DD HH:MM:SS` (UTC, W = weekday, 0 = Sunday).
pub fn isc_time(t: Timestamp) -> String {
    let secs = i64::try_from(t.0).unwrap_or(i64::MAX / 2);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let weekday = (days + 4).rem_euclid(7);
    format!(
        "{weekday} {y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unix seconds as RFC 3339 UTC (`2026-11-23T00:25:55Z`).
pub fn rfc3339(t: Timestamp) -> String {
    let secs = i64::try_from(t.0).unwrap_or(i64::MAX / 2);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// How a reservation identifies its client, as `(mac, client_id, other)`.
pub fn key_parts(r: &Reservation) -> (Option<String>, Option<String>, Option<String>) {
    match &r.key {
        ReservationKey::Mac(m) => (Some(m.to_string()), None, None),
        ReservationKey::ClientId(c) => (None, Some(hex(&c.0)), None),
        other => (None, None, Some(relay_key_text(other))),
    }
}

/// An Option 82 reservation key as `kind=value` (e.g. `circuit_id=eth0/1`).
fn relay_key_text(key: &ReservationKey) -> String {
    match key {
        ReservationKey::CircuitId(c) => format!("circuit_id={}", relay_text(c)),
        ReservationKey::RemoteId(r) => format!("remote_id={}", relay_text(r)),
        ReservationKey::RelayPair {
            remote_id,
            circuit_id,
        } => format!(
            "remote_id={},circuit_id={}",
            relay_text(remote_id),
            relay_text(circuit_id)
        ),
        ReservationKey::SubscriberId(s) => format!("subscriber_id={}", relay_text(s)),
        ReservationKey::PortKey { switch, port } => {
            format!("switch={},port={port}", relay_text(switch))
        }
        other => format!("{other:?}"),
    }
}

/// The ISC `uid` of a lease: only when the client sent option 61 (its key is not simply
/// hardware type + chaddr).
fn uid_of(lease: &Lease) -> Option<String> {
    let id = &lease.client_id.0;
    let derived = id.len() == lease.hwaddr.0.len() + 1 && id.get(1..) == Some(&lease.hwaddr.0[..]);
    (!derived && !id.is_empty()).then(|| isc_escape(id))
}

fn isc_lease(lease: &Lease, now: Timestamp) -> IscLease {
    IscLease {
        starts: Some(isc_time(lease.starts)),
        ends: Some(isc_time(lease.expires)),
        tstp: None,
        tsfp: None,
        atsfp: None,
        cltt: Some(isc_time(lease.starts)),
        binding_state: Some(binding_state(lease, now).to_string()),
        hardware_ethernet: Some(lease.hwaddr.to_string()),
        uid: uid_of(lease),
        vars: Keyed(Vec::new()),
        client_hostname: lease.hostname.clone(),
    }
}

/// The counts of one subnet (see the module docs for the definitions).
pub fn subnet_ips(subnet: &Subnet, leases: &[Lease], now: Timestamp) -> Ips {
    let (lo, hi) = range_of(subnet);
    let mut ips = Ips {
        total: subnet.pools.iter().map(AddrRange::len).sum(),
        statics: u64::try_from(subnet.reservations.len()).unwrap_or(u64::MAX),
        ..Ips::default()
    };
    let mut recorded_in_pools = 0u64;
    for lease in leases_in(leases, lo, hi) {
        match binding_state(lease, now) {
            "active" => ips.active += 1,
            "released" => ips.released += 1,
            "free" => ips.free += 1,
            _ => {}
        }
        if subnet.pools.iter().any(|p| p.contains(lease.ip)) {
            recorded_in_pools += 1;
        }
    }
    // One record per address, so this cannot go below zero; saturate all the same.
    ips.unused = ips.total.saturating_sub(recorded_in_pools);
    ips
}

/// One subnet in DHCPStats' shape; `full` adds `statics` and `leases`.
pub fn subnet_view(subnet: &Subnet, leases: &[Lease], now: Timestamp, full: bool) -> SubnetView {
    let (lo, hi) = range_of(subnet);
    let statics = full.then(|| {
        let mut out: Keyed<Static> = Keyed(Vec::new());
        let mut seen = BTreeSet::new();
        for r in &subnet.reservations {
            let (mac, client_id, relay_key) = key_parts(r);
            let base = r
                .hostname
                .clone()
                .or_else(|| mac.clone())
                .or_else(|| client_id.clone())
                .or_else(|| relay_key.clone())
                .unwrap_or_else(|| r.ip.to_string());
            let key = if seen.contains(&base) {
                format!("{base}@{}", r.ip)
            } else {
                base
            };
            seen.insert(key.clone());
            out.0.push((
                key,
                Static {
                    mac_address: mac,
                    client_id,
                    relay_key,
                    ip_address: r.ip.to_string(),
                    host_name: r.hostname.clone(),
                },
            ));
        }
        out
    });
    let leases_out = full.then(|| {
        Keyed(
            leases_in(leases, lo, hi)
                .iter()
                .map(|l| (l.ip.to_string(), isc_lease(l, now)))
                .collect(),
        )
    });
    let domain_name = subnet
        .options
        .values
        .get(&OPT_DOMAIN_NAME)
        .map(|v| {
            String::from_utf8_lossy(v)
                .trim_end_matches('\0')
                .to_string()
        })
        .filter(|s| !s.is_empty());
    SubnetView {
        subnet: subnet.network.to_string(),
        shared_network: subnet.shared_network.clone(),
        ranges: subnet
            .pools
            .iter()
            .map(|p| [p.start.to_string(), p.end.to_string()])
            .collect(),
        monitor: true,
        ips: subnet_ips(subnet, leases, now),
        description: subnet.network.to_string(),
        routers: subnet.routers.iter().map(ToString::to_string).collect(),
        dns_servers: ips_of(subnet.options.values.get(&OPT_DNS)),
        ntp_servers: ips_of(subnet.options.values.get(&OPT_NTP)),
        domain_name,
        ddns_domain_name: None,
        statics,
        leases: leases_out,
    }
}

/// Every subnet, keyed by CIDR in config order.
pub fn subnets(plan: &Plan, leases: &[Lease], now: Timestamp, full: bool) -> Keyed<SubnetView> {
    Keyed(
        plan.network
            .subnets
            .iter()
            .map(|s| {
                let mut v = subnet_view(s, leases, now, full);
                v.ddns_domain_name = ddns_domain_name(plan, s);
                (s.network.to_string(), v)
            })
            .collect(),
    )
}

/// The name a DDNS client of `subnet` is qualified with, as DHCPStats reports ISC's
/// `ddns-domainname`; `None` when the subnet does no DDNS.
pub fn ddns_domain_name(plan: &Plan, subnet: &Subnet) -> Option<String> {
    plan.network
        .client_fqdn
        .for_subnet(subnet.network)
        .map(|p| p.suffix.clone())
        .filter(|s| !s.is_empty())
}

/// `/counts`.
pub fn counts(plan: &Plan, leases: &[Lease], now: Timestamp) -> Counts {
    let mut ips = Ips::default();
    for s in &plan.network.subnets {
        ips.add(&subnet_ips(s, leases, now));
    }
    Counts {
        ip_counts: ips,
        estimated_devices: ips.statics + ips.active,
    }
}

/// A pool's address accounting at one instant, for the `/metrics` gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolGauges {
    /// Addresses in the pool.
    pub total: u64,
    /// Held by a client: bound or offered, not past its end.
    pub assigned: u64,
    /// In DECLINE quarantine.
    pub declined: u64,
    /// Allocatable now: not assigned, not declined, not excluded, not reserved, not the
    /// network/broadcast/router/server address.
    pub free: u64,
}

/// The gauges of one pool of `subnet` (see [`PoolGauges`]).
pub fn pool_gauges(
    subnet: &Subnet,
    pool: &AddrRange,
    leases: &[Lease],
    now: Timestamp,
) -> PoolGauges {
    let lo = u32::from(pool.start);
    let hi = u32::from(pool.end);
    // Addresses never dynamically allocatable, as single addresses and ranges.
    let mut singles: BTreeSet<u32> = subnet
        .routers
        .iter()
        .chain(subnet.server_id.iter())
        .chain(subnet.reservations.iter().map(|r| &r.ip))
        .map(|a| u32::from(*a))
        .collect();
    if subnet.network.prefix_len() < 31 {
        singles.insert(u32::from(subnet.network.network()));
        singles.insert(u32::from(subnet.network.broadcast()));
    }
    let excluded: Vec<(u32, u32)> = subnet
        .exclusions
        .iter()
        .map(|r| (u32::from(r.start), u32::from(r.end)))
        .collect();
    let is_excluded = |ip: u32| excluded.iter().any(|(a, b)| *a <= ip && ip <= *b);
    let blocked_ranges = merge(
        excluded
            .iter()
            .map(|(a, b)| ((*a).max(lo), (*b).min(hi)))
            .filter(|(a, b)| a <= b)
            .collect(),
    );
    let mut blocked: u64 = blocked_ranges
        .iter()
        .map(|(a, b)| u64::from(b - a) + 1)
        .sum();
    blocked += singles
        .range(lo..=hi)
        .filter(|ip| !is_excluded(**ip))
        .count() as u64;
    let mut g = PoolGauges {
        total: pool.len(),
        ..PoolGauges::default()
    };
    let mut taken_unblocked = 0u64;
    for lease in leases_in(leases, pool.start, pool.end) {
        if !lease.is_active(now) {
            continue;
        }
        match lease.state {
            LeaseState::Declined => g.declined += 1,
            _ => g.assigned += 1,
        }
        let ip = u32::from(lease.ip);
        if !singles.contains(&ip) && !is_excluded(ip) {
            taken_unblocked += 1;
        }
    }
    g.free = g
        .total
        .saturating_sub(blocked)
        .saturating_sub(taken_unblocked);
    g
}

/// Merges overlapping or adjacent inclusive ranges.
fn merge(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isc_times() {
        assert_eq!(isc_time(Timestamp(0)), "4 1970/01/01 00:00:00");
        // 2020-08-06 02:28:52 UTC was a Thursday (the DHCPStats README example).
        assert_eq!(isc_time(Timestamp(1_596_680_932)), "4 2020/08/06 02:28:52");
        assert_eq!(rfc3339(Timestamp(1_596_680_932)), "2020-08-06T02:28:52Z");
        // A leap day, a Sunday.
        assert_eq!(isc_time(Timestamp(1_709_164_800)), "4 2024/02/29 00:00:00");
        assert_eq!(isc_time(Timestamp(1_709_424_000)), "0 2024/03/03 00:00:00");
    }

    #[test]
    fn relay_and_uid_text() {
        assert_eq!(relay_text(b"eth0/1:100"), "eth0/1:100");
        assert_eq!(relay_text(&[0, 1, 0xab]), "0x0001ab");
        assert_eq!(isc_escape(&[0xff, b'a', 0]), "\\377a\\000");
        assert_eq!(hex(&[1, 0xab]), "01:ab");
    }

    #[test]
    fn merge_ranges() {
        assert_eq!(
            merge(vec![(5, 7), (1, 2), (3, 4), (10, 10)]),
            vec![(1, 7), (10, 10)]
        );
    }
}
