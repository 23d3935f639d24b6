//! Test support: a small config, packet builders, and a harness that applies changes like io.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use leased_core::model::{
    AddrRange, Metadata, Network, OptionSet, Reservation, ReservationKey, ServerSettings, Subnet,
};
use leased_core::{Decision, HwAddr, LeaseTable, Plan, Request, Timestamp, decide};
use leased_wire::{BOOTREQUEST, MessageType, Options, Packet, code};

pub const T0: u64 = 1_700_000_000;

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// 198.18.0.<last>.
pub fn a(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, last)
}

pub fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

pub fn hw(n: u8) -> HwAddr {
    HwAddr(mac(n).to_vec())
}

pub fn range(s: Ipv4Addr, e: Ipv4Addr) -> AddrRange {
    AddrRange { start: s, end: e }
}

pub fn opts(pairs: &[(u8, &[u8])]) -> OptionSet {
    OptionSet {
        values: pairs.iter().map(|(c, v)| (*c, v.to_vec())).collect(),
        ..OptionSet::default()
    }
}

pub fn res_mac(n: u8, addr: Ipv4Addr) -> Reservation {
    Reservation {
        key: ReservationKey::Mac(hw(n)),
        ip: addr,
        hostname: None,
        metadata: Metadata::default(),
        options: OptionSet::default(),
    }
}

/// Subnet 198.18.0.0/24 on eth0, server id and router .1, pool .10–.20, and
/// 198.18.1.0/24 for relayed clients, router .1, pool 198.18.1.100–.110.
pub fn config() -> Network {
    let base = opts(&[
        (code::SUBNET_MASK, &[255, 255, 255, 0]),
        (code::ROUTER, &[198, 18, 0, 1]),
        (code::DNS, &[198, 18, 0, 53]),
        (code::DOMAIN_NAME, b"example.test"),
        (code::BROADCAST, &[198, 18, 0, 255]),
        (code::NTP, &[198, 18, 0, 123]),
    ]);
    let relayed = opts(&[
        (code::SUBNET_MASK, &[255, 255, 255, 0]),
        (code::ROUTER, &[198, 18, 1, 1]),
    ]);
    Network {
        server: ServerSettings {
            authoritative: true,
            lease_time: 3600,
            renewal_time: None,
            rebinding_time: None,
            offer_hold: 60,
            decline_quarantine: 600,
            sticky_window: 1000,
            server_id: None,
            max_leases_per_circuit_id: None,
            max_leases_per_remote_id: None,
        },
        options: OptionSet::default(),
        relay_trust: Default::default(),
        subnets: vec![
            Subnet {
                network: "198.18.0.0/24".parse().unwrap(),
                interface: Some("eth0".into()),
                server_id: Some(a(1)),
                routers: vec![a(1)],
                pools: vec![range(a(10), a(20))],
                exclusions: vec![],
                reservations: vec![],
                lease_time: None,
                shared_network: None,
                max_leases_per_circuit_id: None,
                max_leases_per_remote_id: None,
                options: base,
                rapid_commit: false,
                ipv6_only: None,
            },
            Subnet {
                network: "198.18.1.0/24".parse().unwrap(),
                interface: None,
                server_id: None,
                routers: vec![ip("198.18.1.1")],
                pools: vec![range(ip("198.18.1.100"), ip("198.18.1.110"))],
                exclusions: vec![],
                reservations: vec![],
                lease_time: Some(7200),
                shared_network: None,
                max_leases_per_circuit_id: None,
                max_leases_per_remote_id: None,
                options: relayed,
                rapid_commit: false,
                ipv6_only: None,
            },
        ],
        banned_macs: BTreeMap::new(),
        device_overrides: BTreeMap::new(),
        relay_keys: Default::default(),
        classes: Vec::new(),
        sql_assignment_owner: None,
        allocation_slot: None,
        client_fqdn: Default::default(),
    }
}

/// A client packet under construction.
#[derive(Clone)]
pub struct Pkt(pub Packet);

impl Pkt {
    pub fn new(kind: MessageType, client: u8) -> Self {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&mac(client));
        let mut options = Options::new();
        options.set(code::MESSAGE_TYPE, vec![kind.code()]);
        Self(Packet {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0x1000 + u32::from(client),
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            sname: vec![],
            file: vec![],
            options,
            option82_in_overload: false,
        })
    }
    pub fn discover(client: u8) -> Self {
        Self::new(MessageType::Discover, client)
    }
    /// SELECTING: 54 = `sid`, 50 = `addr`.
    pub fn select(client: u8, sid: Ipv4Addr, addr: Ipv4Addr) -> Self {
        Self::new(MessageType::Request, client).sid(sid).want(addr)
    }
    /// INIT-REBOOT: 50 = `addr`, no 54, ciaddr 0.
    pub fn reboot(client: u8, addr: Ipv4Addr) -> Self {
        Self::new(MessageType::Request, client).want(addr)
    }
    /// RENEWING: ciaddr = `addr`.
    pub fn renew(client: u8, addr: Ipv4Addr) -> Self {
        Self::new(MessageType::Request, client).ciaddr(addr)
    }
    pub fn decline(client: u8, addr: Ipv4Addr) -> Self {
        Self::new(MessageType::Decline, client).want(addr)
    }
    pub fn release(client: u8, addr: Ipv4Addr) -> Self {
        Self::new(MessageType::Release, client).ciaddr(addr)
    }
    pub fn opt(mut self, c: u8, v: &[u8]) -> Self {
        self.0.options.set(c, v.to_vec());
        self
    }
    pub fn want(self, addr: Ipv4Addr) -> Self {
        self.opt(code::REQUESTED_IP, &addr.octets())
    }
    pub fn sid(self, addr: Ipv4Addr) -> Self {
        self.opt(code::SERVER_ID, &addr.octets())
    }
    pub fn ciaddr(mut self, addr: Ipv4Addr) -> Self {
        self.0.ciaddr = addr;
        self
    }
    pub fn giaddr(mut self, addr: Ipv4Addr) -> Self {
        self.0.giaddr = addr;
        self
    }
    pub fn broadcast(mut self) -> Self {
        self.0.flags |= 0x8000;
        self
    }
    pub fn prl(self, codes: &[u8]) -> Self {
        self.opt(code::PARAM_REQUEST_LIST, codes)
    }
}

/// What io does: owns the table, decides, applies, advances time.
pub struct Harness {
    pub plan: Plan,
    pub table: LeaseTable,
    pub now: Timestamp,
    pub interface: Option<String>,
    pub local_addr: Option<Ipv4Addr>,
}

impl Harness {
    pub fn new(network: Network) -> Self {
        Self {
            plan: Plan::new(network),
            table: LeaseTable::default(),
            now: Timestamp(T0),
            interface: Some("eth0".into()),
            local_addr: Some(a(1)),
        }
    }
    pub fn default_config() -> Self {
        Self::new(config())
    }
    pub fn request(&self, p: &Pkt) -> Request {
        Request::new(p.0.clone(), self.interface.clone(), self.local_addr, true)
    }
    /// Decides without applying.
    pub fn peek(&self, p: &Pkt) -> Decision {
        decide(&self.request(p), &self.plan, &self.table, self.now)
    }
    /// Decides and applies the changes, as io does.
    pub fn send(&mut self, p: &Pkt) -> Decision {
        let d = self.peek(p);
        self.table.apply(&d.changes);
        d
    }
    pub fn advance(&mut self, secs: u64) {
        self.now = Timestamp(self.now.0 + secs);
    }
    /// DISCOVER → OFFER → REQUEST → ACK; returns the address.
    pub fn bind(&mut self, client: u8) -> Ipv4Addr {
        let offered = offered_ip(&self.send(&Pkt::discover(client)));
        let d = self.send(&Pkt::select(client, a(1), offered));
        assert_eq!(sent(&d), Some(MessageType::Ack), "{d:?}");
        offered
    }
}

pub fn sent(d: &Decision) -> Option<MessageType> {
    d.reply().and_then(|r| r.packet.message_type())
}

pub fn offered_ip(d: &Decision) -> Ipv4Addr {
    let r = d.reply().unwrap_or_else(|| panic!("no reply: {d:?}"));
    assert_eq!(r.packet.message_type(), Some(MessageType::Offer), "{d:?}");
    r.packet.yiaddr
}

pub fn option(d: &Decision, c: u8) -> Option<&[u8]> {
    d.reply().and_then(|r| r.packet.options.get(c))
}

pub fn codes(d: &Decision) -> Vec<u8> {
    d.reply()
        .map(|r| r.packet.options.iter().map(|(c, _)| c).collect())
        .unwrap_or_default()
}
