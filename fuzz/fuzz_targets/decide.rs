//! `decide` over arbitrary request sequences against a fixed config (the example config, which
//! sets every key: pools, exclusions, class pools, shared networks, MAC / client-id / Option 82
//! reservations, circuit caps, banned MACs), with time moving forward and the lease table kept
//! as io keeps it (changes applied, expiry run at its deadline).
//!
//! Invariants checked for every reply that hands out an address (yiaddr set):
//! - the address is a pool address (subnet pool minus exclusions, or a class pool) or a
//!   reservation's address — never the network, broadcast, router or an arbitrary address;
//! - it is not active (offered, bound or declined-quarantined) for another client, unless it is
//!   an Option 82 reservation (the port's address moves to the device now on the port);
//! and every Offered/Bound lease a decision writes obeys the first rule. Never panics.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use leased_config::{Format, ReservationKey, load_str};
use leased_core::{ClientId, LeaseState, LeaseTable, Outcome, Plan, Request, Timestamp, decide};
use leased_wire::{BOOTREQUEST, Packet, code};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = include_str!("../../leased.example.toml");

/// Addresses a step may name (requested, ciaddr, server id, giaddr): the interesting ones of the
/// example config and a few outside it.
const ADDRS: [[u8; 4]; 24] = [
    [198, 18, 0, 0],
    [198, 18, 0, 1],
    [198, 18, 0, 10],
    [198, 18, 0, 99],
    [198, 18, 0, 100],
    [198, 18, 0, 150],
    [198, 18, 0, 162],
    [198, 18, 0, 200],
    [198, 18, 0, 215],
    [198, 18, 0, 230],
    [198, 18, 0, 255],
    [198, 18, 1, 1],
    [198, 18, 1, 20],
    [198, 18, 1, 30],
    [198, 18, 1, 31],
    [198, 18, 1, 32],
    [198, 18, 1, 50],
    [198, 18, 1, 250],
    [198, 18, 2, 1],
    [198, 18, 2, 10],
    [198, 18, 2, 250],
    [10, 0, 0, 1],
    [0, 0, 0, 0],
    [255, 255, 255, 255],
];

/// Option 82 values: the example's port reservations, a text circuit-id, a subscriber-id.
const RELAY: [&[u8]; 5] = [
    &[
        1, 6, 0, 4, 0, 1, 0, 4, 2, 8, 0, 6, 0xc8, 0xbe, 0x19, 0x93, 0x11, 0x48,
    ],
    &[
        1, 6, 0, 4, 0, 1, 0, 5, 2, 8, 0, 6, 0xc8, 0xbe, 0x19, 0x93, 0x11, 0x48,
    ],
    &[1, 7, b'G', b'i', b'0', b'/', b'1', b'/', b'7'],
    &[
        1, 7, b'G', b'i', b'0', b'/', b'1', b'/', b'9', 2, 8, 0, 6, 0xc8, 0xbe, 0x19, 0x93, 0x11,
        0x48,
    ],
    &[
        6, 13, b'c', b'u', b's', b't', b'o', b'm', b'e', b'r', b'-', b'1', b'0', b'4', b'2',
    ],
];

/// MACs: the example's reserved, banned and overridden ones, a camera prefix, and plain ones.
const MACS: [[u8; 6]; 8] = [
    [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff],
    [0xdc, 0xed, 0x83, 0xf3, 0x68, 0x5b],
    [0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
    [0x00, 0x40, 0x8c, 0x01, 0x02, 0x03],
    [0x02, 0, 0, 0, 0, 1],
    [0x02, 0, 0, 0, 0, 2],
    [0x02, 0, 0, 0, 0, 3],
    [0x02, 0, 0, 0, 0, 4],
];

#[derive(Arbitrary, Debug)]
enum Relay82 {
    Known(u8),
    /// A known one with its last byte (the port) replaced.
    Port(u8, u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Step {
    msg: u8,
    mac: u8,
    /// Option 61: none, the 01+MAC form, or the example's reserved client-id.
    client_id: Option<bool>,
    requested: Option<u8>,
    ciaddr: Option<u8>,
    server_id: Option<u8>,
    /// 0: direct on eth0; 1: relayed via 198.18.1.1; 2: relayed via any address; 3: unknown link.
    via: u8,
    giaddr: u8,
    relay82: Option<Relay82>,
    hostname: Option<Vec<u8>>,
    vendor_class: Option<Vec<u8>>,
    extra: Vec<(u8, Vec<u8>)>,
    broadcast: bool,
    advance: u16,
}

struct Fixture {
    plan: Plan,
    /// Addresses a reply may carry.
    allowed: Box<dyn Fn(Ipv4Addr) -> bool + Send + Sync>,
    /// Addresses owned by an Option 82 key (they move with the port).
    relay_reserved: Vec<Ipv4Addr>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let config = load_str(CONFIG, "leased.example.toml", Format::Toml)
            .expect("the example config is valid");
        let subnets = config.network.subnets.clone();
        let class_pools: Vec<_> = config.network.classes.iter().filter_map(|c| c.pool).collect();
        let mut reserved = Vec::new();
        let mut relay_reserved = Vec::new();
        for s in &config.network.subnets {
            for r in &s.reservations {
                reserved.push(r.ip);
                if !matches!(r.key, ReservationKey::Mac(_) | ReservationKey::ClientId(_)) {
                    relay_reserved.push(r.ip);
                }
            }
        }
        let allowed = move |ip: Ipv4Addr| {
            reserved.contains(&ip)
                || class_pools.iter().any(|(_, r)| r.contains(ip))
                || subnets.iter().any(|s| {
                    s.pools.iter().any(|r| r.contains(ip))
                        && !s.exclusions.iter().any(|r| r.contains(ip))
                })
        };
        Fixture {
            plan: Plan::new(config.network),
            allowed: Box::new(allowed),
            relay_reserved,
        }
    })
}

fn addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::from(ADDRS[usize::from(i) % ADDRS.len()])
}

fn packet(s: &Step) -> Packet {
    let mac = MACS[usize::from(s.mac) % MACS.len()];
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let mut p = Packet {
        op: BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid: u32::from(s.mac) << 8 | u32::from(s.msg),
        secs: 0,
        flags: if s.broadcast { 0x8000 } else { 0 },
        ciaddr: s.ciaddr.map_or(Ipv4Addr::UNSPECIFIED, addr),
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: match s.via % 4 {
            1 => Ipv4Addr::new(198, 18, 1, 1),
            2 => addr(s.giaddr),
            _ => Ipv4Addr::UNSPECIFIED,
        },
        chaddr,
        sname: Vec::new(),
        file: Vec::new(),
        options: Default::default(),
        option82_in_overload: false,
    };
    // Mostly the eight real types; now and then anything.
    let msg = if s.msg < 240 { s.msg % 8 + 1 } else { s.msg };
    p.options.set(code::MESSAGE_TYPE, vec![msg]);
    for (c, v) in &s.extra {
        p.options.set(*c, v.clone());
    }
    match s.client_id {
        Some(true) => {
            let mut id = vec![1];
            id.extend_from_slice(&mac);
            p.options.set(code::CLIENT_ID, id);
        }
        Some(false) => p.options.set(code::CLIENT_ID, vec![1, 2, 3, 4, 5, 6, 7]),
        None => {}
    }
    if let Some(i) = s.requested {
        p.options.set(code::REQUESTED_IP, addr(i).octets().to_vec());
    }
    if let Some(i) = s.server_id {
        p.options.set(code::SERVER_ID, addr(i).octets().to_vec());
    }
    if let Some(h) = &s.hostname {
        p.options.set(code::HOSTNAME, h.clone());
    }
    if let Some(v) = &s.vendor_class {
        p.options.set(code::VENDOR_CLASS, v.clone());
    }
    match &s.relay82 {
        Some(Relay82::Known(i)) => {
            p.options.set(
                code::RELAY_AGENT_INFO,
                RELAY[usize::from(*i) % RELAY.len()].to_vec(),
            );
        }
        Some(Relay82::Port(i, port)) => {
            let mut v = RELAY[usize::from(*i) % RELAY.len()].to_vec();
            if let Some(last) = v.last_mut() {
                *last = *port;
            }
            p.options.set(code::RELAY_AGENT_INFO, v);
        }
        Some(Relay82::Raw(v)) => p.options.set(code::RELAY_AGENT_INFO, v.clone()),
        None => {}
    }
    p
}

/// The identity core keys leases by: option 61 when non-empty, else htype + chaddr.
fn client_of(p: &Packet) -> ClientId {
    match p.options.get(code::CLIENT_ID).filter(|v| !v.is_empty()) {
        Some(v) => ClientId(v.to_vec()),
        None => {
            let mut id = vec![p.htype];
            id.extend_from_slice(p.chaddr());
            ClientId(id)
        }
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let f = fixture();
    let mut leases = LeaseTable::new();
    let mut now = Timestamp(1_700_000_000);
    for s in steps.iter().take(64) {
        now = Timestamp(now.0 + u64::from(s.advance));
        if leases.next_deadline().is_some_and(|d| d <= now) {
            let _ = leases.expire(now);
        }
        // Through the wire, as io sees it.
        let mut bytes = Vec::new();
        packet(s).encode(usize::MAX, &mut bytes);
        let Ok(pkt) = Packet::decode(&bytes) else {
            continue;
        };
        let client = client_of(&pkt);
        let (iface, local) = match s.via % 4 {
            0 => (Some("eth0".to_string()), Some(Ipv4Addr::new(198, 18, 0, 1))),
            1 | 2 => (Some("eth1".to_string()), Some(Ipv4Addr::new(198, 18, 9, 1))),
            _ => (None, None),
        };
        let mut req = Request::new(pkt, iface, local, s.broadcast);
        req.src_port = Some(if s.via % 4 == 0 { 68 } else { 67 });
        let d = decide(&req, &f.plan, &leases, now);
        if let Outcome::Reply(r) = &d.outcome {
            let y = r.packet.yiaddr;
            if !y.is_unspecified() {
                assert!(
                    (f.allowed)(y),
                    "handed out {y}, not a pool or reserved address"
                );
                if let Some(l) = leases.by_ip(y) {
                    let other = l.client_id != client && l.is_active(now);
                    assert!(
                        !other || f.relay_reserved.contains(&y),
                        "handed out {y}, active for another client: {l:?}"
                    );
                }
            }
        }
        for c in &d.changes {
            if matches!(c.lease.state, LeaseState::Offered | LeaseState::Bound) {
                assert!((f.allowed)(c.lease.ip), "lease written for {}", c.lease.ip);
            }
        }
        leases.apply(&d.changes);
    }
});
