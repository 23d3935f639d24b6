//! The model stage: checks what the values mean and builds the validated [`Config`].
//!
//! Every check runs even after an earlier one failed, so one load reports every problem; the
//! errors are sorted into file order at the end.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use leased_wire::code;

use leased_core::model::{
    AddrRange, ClassMatch, ClientClass, Metadata, Network, OptionSet, RelayKeyConfig, Reservation,
    ReservationKey, ServerSettings, Subnet,
};
use leased_core::relay::Extractor;
use leased_core::sql::AllocationSlot;
use leased_core::{ClientId, HwAddr};

use crate::ctx::{Ctx, check_interface};
use crate::error::ConfigErrors;
use crate::file::{
    RawClass, RawDuration, RawMetadata, RawOptions, RawRange, RawRelayKeys, RawReservation,
    RawSubnet,
};
use crate::model::{Config, LogFormat, LogSettings, ProcessSettings, StoreSettings};
use crate::options::{self, check_domain, parse_cidr, parse_duration, parse_ip};
use crate::schema::RawConfig;
use crate::span::{Positions, join_index, join_key};

/// Checks `raw` and builds the model, or returns every error in file order.
pub(crate) fn validate(
    raw: RawConfig,
    pos: &Positions<'_>,
    origin: &str,
) -> Result<Config, ConfigErrors> {
    // A relay-only file, or `subnets = []` written out: no subnet is wanted.
    let relay_only = raw.subnets.as_ref().is_some_and(Vec::is_empty)
        || (raw.relay.is_some() && raw.subnets.is_none());
    let mut ctx = Ctx::new(pos, origin, relay_only);
    let config = build(&mut ctx, raw);
    ctx.finish().map(|()| config)
}

fn build(ctx: &mut Ctx<'_>, raw: RawConfig) -> Config {
    let (server, process) = server(ctx, &raw);
    let store = StoreSettings {
        path: match &raw.store.path {
            Some(p) if p.is_empty() => {
                ctx.err("store.path", "must not be empty");
                PathBuf::new()
            }
            Some(p) => PathBuf::from(p),
            None => PathBuf::from("leased.leases"),
        },
        sql: crate::sql::store(ctx, &raw.store),
    };
    let logging = LogSettings {
        format: match raw.logging.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                ctx.err(
                    "logging.format",
                    format!("unknown log format {other:?}; expected \"text\" or \"json\""),
                );
                LogFormat::Text
            }
        },
        level: match &raw.logging.level {
            Some(l) if l.trim().is_empty() => {
                ctx.err("logging.level", "must not be empty");
                String::new()
            }
            Some(l) => l.clone(),
            None => "info".to_string(),
        },
        file: match raw.logging.file.as_deref() {
            Some(f) if f.trim().is_empty() => {
                ctx.err(
                    "logging.file",
                    "must not be empty (leave it out to log to stderr)",
                );
                None
            }
            Some(f) => Some(PathBuf::from(f)),
            None => None,
        },
    };
    let global = options::compile(ctx, "options", &raw.options, &[]);

    let mut complete = true;
    let raw_subnets = raw.subnets.as_deref().unwrap_or_default();
    let mut subnets = subnets(ctx, raw_subnets, &server, &global, &mut complete);
    reservations(ctx, &raw.reservations, &mut subnets, &server, complete);

    let banned_macs = mac_table(ctx, "banned_macs", &raw.banned_macs.0, |ctx, path, m| {
        metadata(ctx, path, m)
    });
    let device_overrides = mac_table(
        ctx,
        "device_overrides",
        &raw.device_overrides.0,
        |ctx, path, o| options::compile(ctx, path, o, &[]),
    );

    let relay_keys = relay_keys(ctx, &raw.relay_keys);
    let pool_names = pool_names(ctx, raw_subnets, &subnets);
    let classes = classes(ctx, &raw.classes, &subnets, &pool_names);
    let api = crate::api::api(ctx, raw.api.as_ref());
    let limits = crate::limits::limits(ctx, raw.limits.as_ref());
    let rogue_servers = crate::rogue::rogue(ctx, raw.rogue_servers.as_ref());
    let arp_watch = crate::arp::arp_watch(ctx, raw.arp_watch.as_ref());
    let conflict_check = crate::conflict::conflict_check(ctx, &raw.server);
    let mut relay_trust = crate::trust::relay_trust(ctx, &raw.server);
    relay_trust.authenticated = crate::relay_auth::relay_auth(ctx, raw.relay_auth.as_ref());
    let relay = crate::relay::relay(ctx, raw.relay.as_ref());
    let export = crate::export::export(ctx, raw.export.as_ref());
    let console = crate::console::console(ctx, raw.console.as_ref());
    let ha = crate::ha::ha(ctx, raw.ha.as_ref());
    let leasequery = crate::leasequery::leasequery(ctx, raw.leasequery.as_ref());
    if ha.is_some() && store.sql.is_some() {
        // Two ways to share clients at once: the SQL store already replicates every lease
        // to the other servers, and HA would replicate it again with its own conflict rule.
        ctx.err(
            "ha",
            "[ha] and a shared SQL store ([store] backend) cannot be combined: use [ha] for \
             two servers with their own embedded stores, or the SQL store for servers sharing \
             one database",
        );
    }
    let subnet_networks: Vec<_> = subnets.iter().map(|(s, _)| s.network).collect();
    let ddns = crate::ddns::ddns(ctx, raw.ddns.as_ref(), &subnet_networks, &store.path);
    let sql_assignment = crate::sql::assignment(
        ctx,
        raw.sql_assignment.as_ref(),
        store.sql.as_ref(),
        &relay_keys.named,
    );

    let allocation_slot = store
        .sql
        .as_ref()
        .and_then(|s| {
            s.allocation_slot
                .or_else(|| s.server_name.as_deref().map(AllocationSlot::from_name))
        })
        .or_else(|| ha.as_ref().and_then(crate::ha::allocation_slot));
    Config {
        network: Network {
            server,
            options: global,
            subnets: subnets.into_iter().map(|(s, _)| s).collect(),
            banned_macs,
            device_overrides,
            relay_keys,
            classes,
            relay_trust,
            sql_assignment_owner: sql_assignment.as_ref().map(|s| s.owner),
            allocation_slot,
            client_fqdn: ddns
                .as_ref()
                .map(|d| d.policies.clone())
                .unwrap_or_default(),
        },
        process,
        api,
        limits,
        rogue_servers,
        arp_watch,
        conflict_check,
        relay,
        export,
        console,
        sql_assignment,
        ha,
        ddns,
        leasequery,
        store,
        logging,
    }
}

fn duration(ctx: &mut Ctx<'_>, path: &str, raw: Option<&RawDuration>) -> Option<u32> {
    let raw = raw?;
    match parse_duration(raw) {
        Ok(v) => Some(v),
        Err(m) => {
            ctx.err(path, m);
            None
        }
    }
}

/// Server identifiers must be usable unicast source addresses.
fn check_server_id(ctx: &mut Ctx<'_>, path: &str, ip: Ipv4Addr) -> bool {
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        ctx.err(
            path,
            format!("server identifier {ip} must be a unicast address"),
        );
        return false;
    }
    true
}

fn server(ctx: &mut Ctx<'_>, raw: &RawConfig) -> (ServerSettings, ProcessSettings) {
    let s = &raw.server;
    let interfaces = s.interfaces.clone().unwrap_or_default();
    for (i, name) in interfaces.iter().enumerate() {
        let p = join_index("server.interfaces", i);
        check_interface(ctx, &p, name);
        if interfaces.iter().take(i).any(|n| n == name) {
            ctx.err(&p, format!("interface {name:?} is listed twice"));
        }
    }
    let lease_time = duration(ctx, "server.lease_time", s.lease_time.as_ref()).unwrap_or(86_400);
    if lease_time == 0 {
        ctx.err("server.lease_time", "must be greater than 0");
    }
    let renewal_time = duration(ctx, "server.renewal_time", s.renewal_time.as_ref());
    let rebinding_time = duration(ctx, "server.rebinding_time", s.rebinding_time.as_ref());
    if let Some(t1) = renewal_time {
        if t1 == 0 {
            ctx.err("server.renewal_time", "must be greater than 0");
        } else if t1 >= lease_time {
            ctx.err(
                "server.renewal_time",
                format!("renewal_time ({t1}s) must be less than lease_time ({lease_time}s)"),
            );
        }
    }
    if let Some(t2) = rebinding_time {
        if t2 >= lease_time {
            ctx.err(
                "server.rebinding_time",
                format!("rebinding_time ({t2}s) must be less than lease_time ({lease_time}s)"),
            );
        }
        if let Some(t1) = renewal_time.filter(|t1| *t1 >= t2) {
            ctx.err(
                "server.rebinding_time",
                format!("rebinding_time ({t2}s) must be greater than renewal_time ({t1}s)"),
            );
        }
    }
    // Alone, each is compared with the other's default (reply building clamps T1 <= T2).
    let default_t2 = u64::from(lease_time) * 7 / 8;
    let default_t1 = u64::from(lease_time) / 2;
    match (renewal_time, rebinding_time) {
        (Some(t1), None) if t1 > 0 && t1 < lease_time && u64::from(t1) >= default_t2 => ctx.err(
            "server.renewal_time",
            format!(
                "renewal_time ({t1}s) must be less than the default rebinding_time \
                 (7/8 of lease_time = {default_t2}s); set rebinding_time too"
            ),
        ),
        (None, Some(t2)) if t2 < lease_time && u64::from(t2) <= default_t1 => ctx.err(
            "server.rebinding_time",
            format!(
                "rebinding_time ({t2}s) must be greater than the default renewal_time \
                 (half of lease_time = {default_t1}s); set renewal_time too"
            ),
        ),
        _ => {}
    }
    let offer_hold = duration(ctx, "server.offer_hold", s.offer_hold.as_ref()).unwrap_or(60);
    if offer_hold == 0 {
        ctx.err("server.offer_hold", "must be greater than 0");
    }
    let decline_quarantine = duration(
        ctx,
        "server.decline_quarantine",
        s.decline_quarantine.as_ref(),
    )
    .unwrap_or(86_400);
    let sticky_window =
        duration(ctx, "server.sticky_window", s.sticky_window.as_ref()).unwrap_or(86_400);
    let server_id = s.server_id.as_deref().and_then(|v| match parse_ip(v) {
        Ok(ip) => check_server_id(ctx, "server.server_id", ip).then_some(ip),
        Err(m) => {
            ctx.err("server.server_id", m);
            None
        }
    });
    let pid_file = match &s.pid_file {
        Some(p) if p.is_empty() => {
            ctx.err("server.pid_file", "must not be empty");
            None
        }
        p => p.as_ref().map(PathBuf::from),
    };
    let (user, group) = crate::account::accounts(ctx, s);
    let process = ProcessSettings {
        interfaces,
        pid_file,
        auto_reload: s.auto_reload.unwrap_or(false),
        user,
        group,
    };
    let server = ServerSettings {
        max_leases_per_circuit_id: cap(
            ctx,
            "server.max_leases_per_circuit_id",
            s.max_leases_per_circuit_id,
        ),
        max_leases_per_remote_id: cap(
            ctx,
            "server.max_leases_per_remote_id",
            s.max_leases_per_remote_id,
        ),
        authoritative: s.authoritative.unwrap_or(true),
        lease_time,
        renewal_time,
        rebinding_time,
        offer_hold,
        decline_quarantine,
        sticky_window,
        server_id,
    };
    (server, process)
}

/// The network and broadcast addresses of `net`, which may not be handed out or used as
/// router/server addresses (none for /31 and /32, RFC 3021).
fn edge_addresses(net: &Ipv4Net) -> Option<(Ipv4Addr, Ipv4Addr)> {
    (net.prefix_len() < 31).then(|| (net.network(), net.broadcast()))
}

fn parse_range(ctx: &mut Ctx<'_>, path: &str, raw: &RawRange) -> Option<AddrRange> {
    let (start, end, end_path) = match raw {
        RawRange::Text(s) => {
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            let sa = parse_ip(a);
            let sb = parse_ip(b);
            match (sa, sb) {
                (Ok(a), Ok(b)) => (a, b, path.to_string()),
                _ => {
                    ctx.err(
                        path,
                        format!(
                            "invalid address range {s:?}: expected \"start-end\" or one address"
                        ),
                    );
                    return None;
                }
            }
        }
        RawRange::Bounds(b) => {
            let sp = join_key(path, "start");
            let ep = join_key(path, "end");
            let a = parse_ip(&b.start).map_err(|m| ctx.err(&sp, m)).ok();
            let e = parse_ip(&b.end).map_err(|m| ctx.err(&ep, m)).ok();
            (a?, e?, ep)
        }
    };
    if start > end {
        ctx.err(
            &end_path,
            format!("range end {end} is before its start {start}"),
        );
        return None;
    }
    Some(AddrRange { start, end })
}

/// Builds the subnets; the second element is the subnet's path for later messages.
fn subnets(
    ctx: &mut Ctx<'_>,
    raw: &[RawSubnet],
    server: &ServerSettings,
    global: &OptionSet,
    complete: &mut bool,
) -> Vec<(Subnet, String)> {
    // A relay-only file (`leased relay`) serves no subnet of its own, and `subnets = []` says
    // in so many words that this server serves nothing yet (the packaged config).
    if raw.is_empty() && !ctx.relay_only {
        ctx.err(
            "subnets",
            "at least one [[subnets]] entry is required (`subnets = []` for a server that \
             serves nothing yet)",
        );
    }
    let mut out: Vec<(Subnet, String)> = Vec::new();
    let mut seen: Vec<(Ipv4Net, String)> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let sp = join_index("subnets", i);
        let key = |k: &str| join_key(&sp, k);
        if let Some(ifname) = &s.interface {
            check_interface(ctx, &key("interface"), ifname);
        }
        let network = match parse_cidr(&s.network) {
            Ok(n) => n,
            Err(m) => {
                ctx.err(&key("network"), m);
                // Still check the options; the addresses need a network to be checked against.
                let empty = RawOptions::default();
                let o = s.options.as_ref().unwrap_or(&empty);
                let _ = options::compile(ctx, &key("options"), o, &[]);
                *complete = false;
                continue;
            }
        };
        if let Some((_, other)) = seen
            .iter()
            .find(|(n, _)| n.contains(&network.network()) || network.contains(&n.network()))
        {
            ctx.err(
                &key("network"),
                format!("{network} overlaps {other}.network"),
            );
        }
        seen.push((network, sp.clone()));
        let edges = edge_addresses(&network);
        let in_subnet = |ctx: &mut Ctx<'_>, path: &str, ip: Ipv4Addr, what: &str| -> bool {
            if !network.contains(&ip) {
                ctx.err(path, format!("{what} {ip} is outside subnet {network}"));
                false
            } else if edges.is_some_and(|(n, b)| ip == n || ip == b) {
                ctx.err(
                    path,
                    format!("{what} {ip} is the network or broadcast address of {network}"),
                );
                false
            } else {
                true
            }
        };

        let server_id = s.server_id.as_deref().and_then(|v| match parse_ip(v) {
            Ok(ip) => (check_server_id(ctx, &key("server_id"), ip)
                && in_subnet(ctx, &key("server_id"), ip, "server_id"))
            .then_some(ip),
            Err(m) => {
                ctx.err(&key("server_id"), m);
                None
            }
        });
        let mut routers = Vec::new();
        for (j, r) in s.routers.iter().flatten().enumerate() {
            let rp = join_index(&key("routers"), j);
            match parse_ip(r) {
                Ok(ip) => {
                    if in_subnet(ctx, &rp, ip, "router") {
                        routers.push(ip);
                    }
                }
                Err(m) => ctx.err(&rp, m),
            }
        }
        let lease_time = duration(ctx, &key("lease_time"), s.lease_time.as_ref());
        if let Some(lt) = lease_time {
            if lt == 0 {
                ctx.err(&key("lease_time"), "must be greater than 0");
            } else if let Some(t) = server
                .renewal_time
                .filter(|t| *t >= lt)
                .or(server.rebinding_time.filter(|t| *t >= lt))
            {
                ctx.err(
                    &key("lease_time"),
                    format!(
                        "lease_time ({lt}s) must be longer than server.renewal_time and server.rebinding_time ({t}s)"
                    ),
                );
            }
        }

        // Accepted pools with their index in the file, for overlap messages.
        let mut pools: Vec<(AddrRange, usize)> = Vec::new();
        for (j, r) in s.pools.iter().flatten().enumerate() {
            let pp = join_index(&key("pools"), j);
            let Some(range) = parse_range(ctx, &pp, r) else {
                continue;
            };
            if !network.contains(&range.start) || !network.contains(&range.end) {
                ctx.err(
                    &pp,
                    format!(
                        "pool {}-{} is not inside subnet {network}",
                        range.start, range.end
                    ),
                );
                continue;
            }
            if edges.is_some_and(|(n, b)| range.contains(n) || range.contains(b)) {
                ctx.err(
                    &pp,
                    format!(
                        "pool {}-{} contains the network or broadcast address of {network}",
                        range.start, range.end
                    ),
                );
                continue;
            }
            if let Some((_, k)) = pools
                .iter()
                .find(|(p, _)| p.start <= range.end && range.start <= p.end)
            {
                ctx.err(
                    &pp,
                    format!(
                        "pool {}-{} overlaps {}",
                        range.start,
                        range.end,
                        join_index(&key("pools"), *k)
                    ),
                );
                continue;
            }
            pools.push((range, j));
        }
        let pools: Vec<AddrRange> = pools.into_iter().map(|(p, _)| p).collect();
        let mut exclusions = Vec::new();
        for (j, r) in s.exclusions.iter().flatten().enumerate() {
            let ep = join_index(&key("exclusions"), j);
            let Some(range) = parse_range(ctx, &ep, r) else {
                continue;
            };
            if pools
                .iter()
                .any(|p| p.contains(range.start) && p.contains(range.end))
            {
                exclusions.push(range);
            } else {
                ctx.err(
                    &ep,
                    format!(
                        "exclusion {}-{} is not inside any pool of this subnet",
                        range.start, range.end
                    ),
                );
            }
        }

        let mut derived = OptionSet::default();
        derived
            .values
            .insert(code::SUBNET_MASK, network.netmask().octets().to_vec());
        if let Some((_, b)) = edges {
            derived.values.insert(code::BROADCAST, b.octets().to_vec());
        }
        if !routers.is_empty() {
            derived
                .values
                .insert(code::ROUTER, leased_wire::ip_list(&routers));
        }
        let siblings = if s.routers.as_ref().is_some_and(|r| !r.is_empty()) {
            vec![(code::ROUTER, key("routers"))]
        } else {
            Vec::new()
        };
        let empty = RawOptions::default();
        let own = options::compile(
            ctx,
            &key("options"),
            s.options.as_ref().unwrap_or(&empty),
            &siblings,
        );
        let options = global.merged(&derived).merged(&own);

        out.push((
            Subnet {
                shared_network: match &s.shared_network {
                    Some(n) if n.trim().is_empty() => {
                        ctx.err(&key("shared_network"), "must not be empty");
                        None
                    }
                    n => n.clone(),
                },
                max_leases_per_circuit_id: cap(
                    ctx,
                    &key("max_leases_per_circuit_id"),
                    s.max_leases_per_circuit_id,
                ),
                max_leases_per_remote_id: cap(
                    ctx,
                    &key("max_leases_per_remote_id"),
                    s.max_leases_per_remote_id,
                ),
                network,
                interface: s.interface.clone(),
                server_id,
                routers,
                pools,
                exclusions,
                reservations: Vec::new(),
                lease_time,
                options,
                rapid_commit: s.rapid_commit.unwrap_or(false),
                ipv6_only: crate::ipv6_only::ipv6_only(
                    ctx,
                    &sp,
                    s.ipv6_only_wait.as_ref(),
                    s.ipv6_only_address.as_deref(),
                ),
            },
            sp,
        ));
    }
    out
}

fn metadata(ctx: &mut Ctx<'_>, path: &str, m: &RawMetadata) -> Metadata {
    Metadata {
        note: m.note.clone(),
        equipment_type: m.equipment_type.clone(),
        manufacturer: m.manufacturer.clone(),
        management_type: m.management_type.clone(),
        management_interface: m.management_interface.clone(),
        first_seen: first_seen(ctx, &join_key(path, "first_seen"), m.first_seen),
    }
}

fn first_seen(ctx: &mut Ctx<'_>, path: &str, v: Option<i64>) -> Option<u64> {
    let v = v?;
    match u64::try_from(v) {
        Ok(t) => Some(t),
        Err(_) => {
            ctx.err(path, format!("{v} is not a Unix time in seconds (>= 0)"));
            None
        }
    }
}

fn reservation_key(ctx: &mut Ctx<'_>, path: &str, r: &RawReservation) -> Option<ReservationKey> {
    let kinds: Vec<&str> = [
        ("mac", r.mac.is_some()),
        ("client_id", r.client_id.is_some()),
        (
            "circuit_id",
            r.circuit_id.is_some() || r.remote_id.is_some(),
        ),
        ("subscriber_id", r.subscriber_id.is_some()),
        ("port_key", r.port_key.is_some()),
    ]
    .into_iter()
    .filter(|(_, given)| *given)
    .map(|(k, _)| k)
    .collect();
    match kinds.as_slice() {
        [] => {
            ctx.err(
                path,
                "a reservation needs mac or client_id (or circuit_id and/or remote_id, \
                 subscriber_id, port_key)",
            );
            return None;
        }
        [_] => {}
        [first, second, ..] => {
            ctx.err(
                &join_key(path, second),
                format!("give either {first} or {second}, not both"),
            );
            return None;
        }
    }
    let relay = |ctx: &mut Ctx<'_>, k: &str, v: &str| match relay_value(v) {
        Ok(b) => Some(b),
        Err(m) => {
            ctx.err(&join_key(path, k), m);
            None
        }
    };
    if let Some(pk) = &r.port_key {
        let sp = join_key(&join_key(path, "port_key"), "switch");
        let switch = match leased_wire::parse_hex(&pk.switch) {
            Ok(b) if !b.is_empty() => Some(b),
            Ok(_) => {
                ctx.err(&sp, "must not be empty");
                None
            }
            Err(e) => {
                ctx.err(&sp, e.to_string());
                None
            }
        };
        let port = match u64::try_from(pk.port) {
            Ok(p) => Some(p),
            Err(_) => {
                ctx.err(
                    &join_key(&join_key(path, "port_key"), "port"),
                    format!("{} is not a port number (>= 0)", pk.port),
                );
                None
            }
        };
        return Some(ReservationKey::PortKey {
            switch: switch?,
            port: port?,
        });
    }
    if let Some(v) = &r.subscriber_id {
        return relay(ctx, "subscriber_id", v).map(ReservationKey::SubscriberId);
    }
    if r.circuit_id.is_some() || r.remote_id.is_some() {
        let c = r.circuit_id.as_deref().map(|v| relay(ctx, "circuit_id", v));
        let rid = r.remote_id.as_deref().map(|v| relay(ctx, "remote_id", v));
        return match (c, rid) {
            (Some(c), Some(rid)) => Some(ReservationKey::RelayPair {
                remote_id: rid?,
                circuit_id: c?,
            }),
            (Some(c), None) => c.map(ReservationKey::CircuitId),
            (None, Some(rid)) => rid.map(ReservationKey::RemoteId),
            (None, None) => None,
        };
    }
    match (&r.mac, &r.client_id) {
        (Some(m), _) => match HwAddr::parse_mac(m) {
            Some(hw) => Some(ReservationKey::Mac(hw)),
            None => {
                ctx.err(&join_key(path, "mac"), bad_mac(m));
                None
            }
        },
        (None, Some(c)) => match leased_wire::parse_hex(c) {
            Ok(b) if b.len() >= 2 => Some(ReservationKey::ClientId(ClientId(b))),
            Ok(_) => {
                ctx.err(
                    &join_key(path, "client_id"),
                    "a client identifier is at least 2 bytes (RFC 2132 §9.14)",
                );
                None
            }
            Err(e) => {
                ctx.err(&join_key(path, "client_id"), e.to_string());
                None
            }
        },
        (None, None) => None,
    }
}

/// An Option 82 value as written: hex (`00:04:00:01:00:04`, `000400010004`, …) or text in
/// double quotes inside the string (`'"Gi0/1/4"'` in TOML). Never empty.
pub(crate) fn relay_value(v: &str) -> Result<Vec<u8>, String> {
    let bytes = match v.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(text) => text.as_bytes().to_vec(),
        None => leased_wire::parse_hex(v).map_err(|e| {
            format!("{e}; write text in double quotes inside the string, e.g. '\"Gi0/1\"'")
        })?,
    };
    if bytes.is_empty() {
        return Err("must not be empty".into());
    }
    if bytes.len() > 255 {
        return Err("longer than an Option 82 sub-option can be (255 bytes)".into());
    }
    Ok(bytes)
}

/// A lease cap: 1 or more.
fn cap(ctx: &mut Ctx<'_>, path: &str, v: Option<i64>) -> Option<u32> {
    let v = v?;
    match u32::try_from(v) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            ctx.err(path, format!("{v} is not a lease count (1 or more)"));
            None
        }
    }
}

fn relay_keys(ctx: &mut Ctx<'_>, raw: &RawRelayKeys) -> RelayKeyConfig {
    let mut out = RelayKeyConfig::default();
    for (i, spec) in raw.extractors.iter().flatten().enumerate() {
        let p = join_index("relay_keys.extractors", i);
        match Extractor::parse_slice(spec) {
            Ok((Some(name), e)) => {
                if Extractor::builtin(&name).is_some() || out.named.contains_key(&name) {
                    ctx.err(&p, format!("extractor name {name:?} is already taken"));
                } else {
                    out.named.insert(name, e);
                }
            }
            Ok((None, _)) => ctx.err(
                &p,
                format!("{spec:?}: name the extractor: \"source:name:start:end\""),
            ),
            Err(m) => ctx.err(&p, m),
        }
    }
    let resolve = |ctx: &mut Ctx<'_>, k: &str, v: &Option<String>, dflt: Extractor| {
        let Some(name) = v else {
            return dflt;
        };
        match Extractor::builtin(name).or_else(|| out.named.get(name).cloned()) {
            Some(e) => e,
            None => {
                ctx.err(
                    &join_key("relay_keys", k),
                    format!(
                        "unknown extractor {name:?}; built-ins: {}; or one named in \
                         relay_keys.extractors",
                        Extractor::BUILTINS.join(", ")
                    ),
                );
                dflt
            }
        }
    };
    let switch = resolve(ctx, "switch", &raw.switch, Extractor::RemoteIdMac);
    let port = resolve(ctx, "port", &raw.port, Extractor::CircuitIdLastBytePort);
    out.switch = switch;
    out.port = port;
    out
}

/// Named pools (`{ start, end, name }`), for class `pool = "name"`; names are unique in the
/// file, and only pools have them.
fn pool_names(
    ctx: &mut Ctx<'_>,
    raw: &[RawSubnet],
    subnets: &[(Subnet, String)],
) -> BTreeMap<String, AddrRange> {
    let mut out: BTreeMap<String, AddrRange> = BTreeMap::new();
    for (i, s) in raw.iter().enumerate() {
        let sp = join_index("subnets", i);
        for (j, e) in s.exclusions.iter().flatten().enumerate() {
            if let RawRange::Bounds(b) = e
                && b.name.is_some()
            {
                ctx.err(
                    &join_key(&join_index(&join_key(&sp, "exclusions"), j), "name"),
                    "only pools have names",
                );
            }
        }
        for (j, p) in s.pools.iter().flatten().enumerate() {
            let RawRange::Bounds(b) = p else { continue };
            let Some(name) = &b.name else { continue };
            let np = join_key(&join_index(&join_key(&sp, "pools"), j), "name");
            if name.trim().is_empty() {
                ctx.err(&np, "must not be empty");
                continue;
            }
            if out.contains_key(name) {
                ctx.err(&np, format!("pool name {name:?} is used twice"));
                continue;
            }
            let (Ok(start), Ok(end)) = (parse_ip(&b.start), parse_ip(&b.end)) else {
                continue;
            };
            // Only pools the subnet accepted (errors were reported there).
            if subnets
                .iter()
                .any(|(sub, _)| sub.pools.iter().any(|r| r.start == start && r.end == end))
            {
                out.insert(name.clone(), AddrRange { start, end });
            }
        }
    }
    out
}

fn classes(
    ctx: &mut Ctx<'_>,
    raw: &[RawClass],
    subnets: &[(Subnet, String)],
    pool_names: &BTreeMap<String, AddrRange>,
) -> Vec<ClientClass> {
    let mut out: Vec<ClientClass> = Vec::new();
    let mut pools: Vec<(AddrRange, String)> = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let cp = join_index("classes", i);
        if c.name.trim().is_empty() {
            ctx.err(&join_key(&cp, "name"), "must not be empty");
        } else if out.iter().any(|o| o.name == c.name) {
            ctx.err(
                &join_key(&cp, "name"),
                format!("class {:?} is defined twice", c.name),
            );
        }
        let mp = join_key(&cp, "match");
        let m = c.matcher.as_ref();
        let text = |v: Option<&String>| v.cloned();
        let bytes = |ctx: &mut Ctx<'_>, k: &str, v: Option<&String>| {
            v.and_then(|v| match relay_value(v) {
                Ok(b) => Some(b),
                Err(e) => {
                    ctx.err(&join_key(&mp, k), e);
                    None
                }
            })
        };
        let circuit_id = bytes(ctx, "circuit_id", m.and_then(|m| m.circuit_id.as_ref()));
        let remote_id = bytes(ctx, "remote_id", m.and_then(|m| m.remote_id.as_ref()));
        let mac_prefix =
            m.and_then(|m| m.mac_prefix.as_ref())
                .and_then(|v| match leased_wire::parse_hex(v) {
                    Ok(b) if !b.is_empty() && b.len() <= 16 => Some(b),
                    Ok(_) => {
                        ctx.err(&join_key(&mp, "mac_prefix"), "must be 1 to 16 bytes");
                        None
                    }
                    Err(e) => {
                        ctx.err(&join_key(&mp, "mac_prefix"), e.to_string());
                        None
                    }
                });
        let matcher = ClassMatch {
            vendor_class: text(m.and_then(|m| m.vendor_class.as_ref())),
            user_class: text(m.and_then(|m| m.user_class.as_ref())),
            mac_prefix,
            hostname: text(m.and_then(|m| m.hostname.as_ref())),
            circuit_id,
            remote_id,
        };
        let pp = join_key(&cp, "pool");
        let named = match &c.pool {
            Some(RawRange::Text(t)) => pool_names.get(t.trim()).copied(),
            _ => None,
        };
        if let Some(RawRange::Bounds(b)) = &c.pool
            && b.name.is_some()
        {
            ctx.err(
                &join_key(&pp, "name"),
                "name pools in [[subnets]], not in a class",
            );
        }
        let pool = c
            .pool
            .as_ref()
            .and_then(|r| named.or_else(|| parse_range(ctx, &pp, r)))
            .and_then(|r| {
                let home = subnets
                    .iter()
                    .position(|(s, _)| s.network.contains(&r.start) && s.network.contains(&r.end));
                let Some((si, (s, _))) = home.and_then(|k| Some((k, subnets.get(k)?))) else {
                    ctx.err(
                        &pp,
                        format!("pool {}-{} is not inside one subnet", r.start, r.end),
                    );
                    return None;
                };
                if edge_addresses(&s.network).is_some_and(|(n, b)| r.contains(n) || r.contains(b)) {
                    ctx.err(
                        &pp,
                        format!(
                            "pool {}-{} contains the network or broadcast address of {}",
                            r.start, r.end, s.network
                        ),
                    );
                    return None;
                }
                if let Some((_, other)) = pools
                    .iter()
                    .find(|(p, _)| p.start <= r.end && r.start <= p.end)
                {
                    ctx.err(&pp, format!("pool {}-{} overlaps {other}", r.start, r.end));
                    return None;
                }
                pools.push((r, pp.clone()));
                Some((si, r))
            });
        let empty = RawOptions::default();
        let options = options::compile(
            ctx,
            &join_key(&cp, "options"),
            c.options.as_ref().unwrap_or(&empty),
            &[],
        );
        out.push(ClientClass {
            name: c.name.clone(),
            matcher,
            pool,
            options,
            ipv6_only: crate::ipv6_only::ipv6_only(
                ctx,
                &cp,
                c.ipv6_only_wait.as_ref(),
                c.ipv6_only_address.as_deref(),
            ),
        });
    }
    out
}

pub(crate) fn bad_mac(m: &str) -> String {
    format!(
        "invalid MAC address {m:?}: expected aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff or aabbccddeeff"
    )
}

/// The client identifier a MAC-keyed client sends by default (`01` ++ MAC), for clash checks;
/// `None` for relay keys (compared as they are).
fn as_client_id(key: &ReservationKey) -> Option<Vec<u8>> {
    match key {
        ReservationKey::Mac(hw) => Some(std::iter::once(1).chain(hw.0.iter().copied()).collect()),
        ReservationKey::ClientId(c) => Some(c.0.clone()),
        _ => None,
    }
}

fn reservations(
    ctx: &mut Ctx<'_>,
    raw: &[RawReservation],
    subnets: &mut [(Subnet, String)],
    server: &ServerSettings,
    all_subnets_known: bool,
) {
    let mut seen_ips: Vec<(Ipv4Addr, String)> = Vec::new();
    let mut seen_keys: Vec<(ReservationKey, String)> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let rp = join_index("reservations", i);
        let key = reservation_key(ctx, &rp, r);
        let kp = join_key(
            &rp,
            if r.mac.is_some() {
                "mac"
            } else if r.client_id.is_some() {
                "client_id"
            } else if r.circuit_id.is_some() {
                "circuit_id"
            } else if r.remote_id.is_some() {
                "remote_id"
            } else if r.subscriber_id.is_some() {
                "subscriber_id"
            } else {
                "port_key"
            },
        );
        if let Some(k) = &key {
            if let Some((_, other)) = seen_keys.iter().find(|(o, _)| {
                o == k || as_client_id(o).is_some_and(|c| Some(c) == as_client_id(k))
            }) {
                ctx.err(
                    &kp,
                    format!("the same client is already reserved by {other}"),
                );
            } else {
                seen_keys.push((k.clone(), rp.clone()));
            }
        }

        let ipp = join_key(&rp, "ip");
        let ip = match parse_ip(&r.ip) {
            Ok(ip) => Some(ip),
            Err(m) => {
                ctx.err(&ipp, m);
                None
            }
        };
        let mut home = None;
        if let Some(ip) = ip {
            if let Some((_, other)) = seen_ips.iter().find(|(o, _)| *o == ip) {
                ctx.err(&ipp, format!("{ip} is already reserved by {other}"));
            } else {
                seen_ips.push((ip, rp.clone()));
            }
            if server.server_id == Some(ip) {
                ctx.err(&ipp, format!("{ip} is server.server_id"));
            }
            let homes: Vec<usize> = subnets
                .iter()
                .enumerate()
                .filter(|(_, (s, _))| s.network.contains(&ip))
                .map(|(k, _)| k)
                .collect();
            match homes.as_slice() {
                // With a subnet whose network did not parse, the ip may belong to it.
                [] if !all_subnets_known => {}
                [] => ctx.err(&ipp, format!("{ip} is not inside any subnet")),
                [k] => home = Some(*k),
                _ => ctx.err(&ipp, format!("{ip} is inside more than one subnet")),
            }
            if let Some((s, sp)) = home.and_then(|k| subnets.get(k)) {
                if edge_addresses(&s.network).is_some_and(|(n, b)| ip == n || ip == b) {
                    ctx.err(
                        &ipp,
                        format!("{ip} is the network or broadcast address of {}", s.network),
                    );
                } else if s.routers.contains(&ip) {
                    ctx.err(&ipp, format!("{ip} is a router of {sp}"));
                } else if s.server_id == Some(ip) {
                    ctx.err(&ipp, format!("{ip} is the server_id of {sp}"));
                }
            }
        }

        let hostname = r.hostname.as_ref().and_then(|h| match check_domain(h) {
            Ok(()) => Some(h.strip_suffix('.').unwrap_or(h).to_string()),
            Err(m) => {
                ctx.err(&join_key(&rp, "hostname"), m);
                None
            }
        });
        let meta = RawMetadata {
            note: r.note.clone(),
            equipment_type: r.equipment_type.clone(),
            manufacturer: r.manufacturer.clone(),
            management_type: r.management_type.clone(),
            management_interface: r.management_interface.clone(),
            first_seen: r.first_seen,
        };
        let metadata = metadata(ctx, &rp, &meta);
        let siblings = if r.hostname.is_some() {
            vec![(code::HOSTNAME, join_key(&rp, "hostname"))]
        } else {
            Vec::new()
        };
        let mut options = match &r.options {
            Some(o) => options::compile(ctx, &join_key(&rp, "options"), o, &siblings),
            None => OptionSet::default(),
        };
        if let Some(h) = &hostname {
            options.values.insert(code::HOSTNAME, h.as_bytes().to_vec());
        }

        if let (Some(key), Some(ip), Some((subnet, _))) =
            (key, ip, home.and_then(|k| subnets.get_mut(k)))
        {
            subnet.reservations.push(Reservation {
                key,
                ip,
                hostname,
                metadata,
                options,
            });
        }
    }
}

/// A table keyed by MAC: parses keys, rejects duplicates after normalisation (the later one,
/// in file order, is the error), and builds each value with `value`.
fn mac_table<R, T>(
    ctx: &mut Ctx<'_>,
    table: &str,
    entries: &[(String, R)],
    mut value: impl FnMut(&mut Ctx<'_>, &str, &R) -> T,
) -> BTreeMap<HwAddr, T> {
    let mut ordered: Vec<(usize, String, &String, &R)> = entries
        .iter()
        .map(|(k, v)| {
            let p = join_key(table, k);
            (ctx.value_offset(&p), p, k, v)
        })
        .collect();
    ordered.sort_by_key(|(off, ..)| *off);
    let mut out = BTreeMap::new();
    let mut spelled: BTreeMap<HwAddr, String> = BTreeMap::new();
    for (_, path, k, v) in ordered {
        let built = value(ctx, &path, v);
        let Some(mac) = HwAddr::parse_mac(k) else {
            ctx.err_key(&path, bad_mac(k));
            continue;
        };
        if let Some(first) = spelled.get(&mac) {
            ctx.err_key(&path, format!("{mac} is listed twice (also as {first:?})"));
            continue;
        }
        spelled.insert(mac.clone(), k.clone());
        out.insert(mac, built);
    }
    out
}
