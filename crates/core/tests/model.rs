//! Property tests: random client populations against `decide` + `LeaseTable`, checked by an
//! independent model of who holds which address; and arbitrary packets never panic.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use common::*;
use leased_core::model::Network;
use leased_core::{
    ClientId, Decision, DropReason, Lease, LeaseChange, LeaseState, LeaseTable, Plan, Request,
    Timestamp, decide,
};
use leased_wire::{BOOTREPLY, BOOTREQUEST, MessageType, Options, Packet, code};
use proptest::prelude::*;

const CLIENTS: u8 = 12;

/// A crowded subnet: the pool spans the network address and the router, has an exclusion,
/// a reservation inside it (client 4) and one outside it (client 3).
fn crowded() -> Network {
    let mut cfg = config();
    let s = &mut cfg.subnets[0];
    s.pools = vec![range(a(0), a(9)), range(a(250), a(255))];
    s.routers = vec![a(1), a(254)];
    s.exclusions = vec![range(a(5), a(5))];
    s.reservations = vec![res_mac(3, a(40)), res_mac(4, a(6))];
    cfg.subnets[1].pools = vec![range(ip("198.18.1.100"), ip("198.18.1.102"))];
    cfg.server.offer_hold = 30;
    cfg.server.lease_time = 300;
    cfg.subnets[1].lease_time = Some(300);
    cfg.server.decline_quarantine = 200;
    cfg.server.sticky_window = 400;
    cfg
}

#[derive(Debug, Clone)]
enum Op {
    Discover {
        want: Option<u8>,
    },
    /// REQUEST in SELECTING for the last address offered to this client (or `addr`).
    Select {
        addr: Option<u8>,
        other_server: bool,
    },
    InitReboot {
        addr: u8,
    },
    Renew {
        addr: Option<u8>,
    },
    Release {
        addr: Option<u8>,
    },
    Decline {
        addr: Option<u8>,
    },
    Inform,
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    let addr = || {
        prop_oneof![
            Just(None),
            (0u8..=255).prop_map(Some),
            (0u8..12).prop_map(Some)
        ]
    };
    prop_oneof![
        4 => proptest::option::of(0u8..=255).prop_map(|want| Op::Discover { want }),
        4 => (addr(), proptest::bool::weighted(0.15))
            .prop_map(|(addr, other_server)| Op::Select { addr, other_server }),
        1 => (0u8..=255).prop_map(|addr| Op::InitReboot { addr }),
        2 => addr().prop_map(|addr| Op::Renew { addr }),
        1 => addr().prop_map(|addr| Op::Release { addr }),
        1 => addr().prop_map(|addr| Op::Decline { addr }),
        1 => Just(Op::Inform),
        1 => Just(Op::Expire),
    ]
}

/// One step: which client, what it does, how long before, and whether via the relay.
fn step() -> impl Strategy<Value = (u8, Op, u64, bool)> {
    (
        1..=CLIENTS,
        op(),
        prop_oneof![Just(0u64), 0u64..40, 0u64..400],
        proptest::bool::weighted(0.2),
    )
}

/// What the model believes about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Offered(u8, u64),
    Bound(u8, u64),
    Quarantined(u64),
}

impl Hold {
    fn holder(&self, now: u64) -> Option<Option<u8>> {
        match *self {
            Hold::Offered(c, t) | Hold::Bound(c, t) if t > now => Some(Some(c)),
            Hold::Quarantined(t) if t > now => Some(None),
            _ => None,
        }
    }
}

struct World {
    plan: Plan,
    table: LeaseTable,
    now: u64,
    model: BTreeMap<Ipv4Addr, Hold>,
    last_offer: BTreeMap<u8, Ipv4Addr>,
    last_ack: BTreeMap<u8, Ipv4Addr>,
}

fn client_of(id: &ClientId) -> u8 {
    id.0.last().copied().unwrap()
}

impl World {
    fn new(cfg: Network) -> Self {
        Self {
            plan: Plan::new(cfg),
            table: LeaseTable::default(),
            now: T0,
            model: BTreeMap::new(),
            last_offer: BTreeMap::new(),
            last_ack: BTreeMap::new(),
        }
    }

    fn sid(&self, relayed: bool) -> Ipv4Addr {
        if relayed { ip("198.18.1.1") } else { a(1) }
    }

    fn addr(&self, relayed: bool, last: u8) -> Ipv4Addr {
        if relayed {
            Ipv4Addr::new(198, 18, 1, last)
        } else {
            a(last)
        }
    }

    fn packet(&self, c: u8, op: &Op, relayed: bool) -> Option<Pkt> {
        let pick = |addr: &Option<u8>, fallback: Option<&Ipv4Addr>| match addr {
            Some(l) => Some(self.addr(relayed, *l)),
            None => fallback.copied(),
        };
        let p = match op {
            Op::Discover { want } => {
                let p = Pkt::discover(c);
                match want {
                    Some(w) => p.want(self.addr(relayed, *w)),
                    None => p,
                }
            }
            Op::Select { addr, other_server } => {
                let target = pick(addr, self.last_offer.get(&c))?;
                let sid = if *other_server {
                    a(99)
                } else {
                    self.sid(relayed)
                };
                Pkt::select(c, sid, target)
            }
            Op::InitReboot { addr } => Pkt::reboot(c, self.addr(relayed, *addr)),
            Op::Renew { addr } => Pkt::renew(c, pick(addr, self.last_ack.get(&c))?),
            Op::Release { addr } => Pkt::release(c, pick(addr, self.last_ack.get(&c))?),
            Op::Decline { addr } => Pkt::decline(c, pick(addr, self.last_ack.get(&c))?),
            Op::Inform => Pkt::new(MessageType::Inform, c).ciaddr(self.addr(relayed, 77)),
            Op::Expire => return None,
        };
        Some(if relayed {
            p.giaddr(ip("198.18.1.1"))
        } else {
            p
        })
    }

    fn run(&mut self, c: u8, op: &Op, relayed: bool) -> Result<(), TestCaseError> {
        if let Op::Expire = op {
            let changes = self.table.expire(Timestamp(self.now));
            for ch in &changes {
                prop_assert!(ch.lease.expires <= Timestamp(self.now));
                prop_assert_eq!(ch.lease.state, LeaseState::Expired);
            }
            prop_assert!(
                self.table
                    .next_deadline()
                    .is_none_or(|t| t > Timestamp(self.now))
            );
            return Ok(());
        }
        let Some(p) = self.packet(c, op, relayed) else {
            return Ok(());
        };
        let req = Request::new(p.0.clone(), Some("eth0".into()), Some(a(1)), true);
        let now = Timestamp(self.now);
        let d = decide(&req, &self.plan, &self.table, now);
        // Pure: the same inputs give the same decision.
        let again = decide(&req, &self.plan, &self.table, now);
        prop_assert_eq!(format!("{d:?}"), format!("{again:?}"));
        self.check(c, &p, &d)?;
        self.table.apply(&d.changes);
        self.check_table()?;
        Ok(())
    }

    /// The model's view of who may be given `ip`.
    fn check(&mut self, c: u8, p: &Pkt, d: &Decision) -> Result<(), TestCaseError> {
        let now = self.now;
        let received = p.0.message_type().unwrap();
        prop_assert!(d.event.received == Some(received));
        let sent = d.reply().and_then(|r| r.packet.message_type());
        prop_assert!(d.event.sent == sent);
        prop_assert_eq!(d.event.drop, d.drop_reason());
        if received == MessageType::Discover {
            prop_assert!(sent != Some(MessageType::Nak), "DISCOVER answered with NAK");
        }
        if let Some(r) = d.reply() {
            prop_assert_eq!(r.packet.op, BOOTREPLY);
            prop_assert_eq!(r.packet.xid, p.0.xid);
            prop_assert!(r.max_len >= 576);
        }
        for ch in &d.changes {
            // Every change is this client's own lease.
            prop_assert_eq!(client_of(&ch.lease.client_id), c);
        }
        let granted = match sent {
            Some(MessageType::Offer) => Some(d.reply().unwrap().packet.yiaddr),
            Some(MessageType::Ack) if received != MessageType::Inform => {
                Some(d.reply().unwrap().packet.yiaddr)
            }
            _ => None,
        };
        if let Some(x) = granted {
            self.check_grant(c, x)?;
            // Nobody else holds it, by the model and by the table.
            if let Some(h) = self.model.get(&x) {
                let holder = h.holder(now);
                prop_assert!(
                    holder.is_none() || holder == Some(Some(c)),
                    "{x} given to {c} while {h:?} at {now}"
                );
            }
            if let Some(l) = self.table.by_ip(x) {
                prop_assert!(!l.is_active(Timestamp(now)) || client_of(&l.client_id) == c);
            }
            let relayed = !p.0.giaddr.is_unspecified();
            let lt = 300;
            if sent == Some(MessageType::Offer) {
                self.last_offer.insert(c, x);
                let keep =
                    matches!(self.model.get(&x), Some(Hold::Bound(h, t)) if *h == c && *t > now);
                if !keep {
                    self.model.insert(x, Hold::Offered(c, now + 30));
                }
                // Other offers of this client in that subnet lapse.
                self.free_others(c, x, relayed, false);
            } else {
                self.last_ack.insert(c, x);
                self.model.insert(x, Hold::Bound(c, now + lt));
                self.free_others(c, x, relayed, true);
            }
        }
        match (received, d.drop_reason()) {
            (MessageType::Release, Some(DropReason::NoReplyNeeded)) => {
                let x = p.0.ciaddr;
                prop_assert!(self.owned(c, x), "release of {x} by non-owner {c}");
                self.model.remove(&x);
            }
            (MessageType::Decline, Some(DropReason::NoReplyNeeded)) => {
                let x = Ipv4Addr::from(
                    <[u8; 4]>::try_from(p.0.options.get(code::REQUESTED_IP).unwrap()).unwrap(),
                );
                prop_assert!(self.owned(c, x), "decline of {x} by non-owner {c}");
                self.model.insert(x, Hold::Quarantined(now + 200));
            }
            (MessageType::Request, Some(DropReason::NotForUs)) => {
                for h in self.model.values_mut() {
                    if matches!(h, Hold::Offered(o, t) if *o == c && *t > now) {
                        *h = Hold::Offered(c, now);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// True when the model says `c` was last given `x` (offer or binding, even lapsed).
    fn owned(&self, c: u8, x: Ipv4Addr) -> bool {
        matches!(self.model.get(&x), Some(Hold::Offered(o, _) | Hold::Bound(o, _)) if *o == c)
    }

    fn free_others(&mut self, c: u8, keep: Ipv4Addr, relayed: bool, bindings: bool) {
        let now = self.now;
        let net = if relayed { 1 } else { 0 };
        for (x, h) in self.model.iter_mut() {
            if *x == keep || x.octets()[2] != net {
                continue;
            }
            match *h {
                Hold::Offered(o, t) if o == c && t > now => *h = Hold::Offered(c, now),
                Hold::Bound(o, t) if bindings && o == c && t > now => *h = Hold::Bound(c, now),
                _ => {}
            }
        }
    }

    /// Every granted address is in a pool of its subnet or is this client's reservation, and
    /// never a forbidden one.
    fn check_grant(&self, c: u8, x: Ipv4Addr) -> Result<(), TestCaseError> {
        let o = x.octets();
        if o[2] == 0 {
            let own_res = (c == 3 && x == a(40)) || (c == 4 && x == a(6));
            prop_assert!(![a(0), a(1), a(254), a(255)].contains(&x), "forbidden {x}");
            if !own_res {
                prop_assert!(x != a(5), "excluded {x}");
                prop_assert!(
                    x != a(6) && x != a(40),
                    "{x} reserved for another, given to {c}"
                );
                prop_assert!(o[3] <= 9 || o[3] >= 250, "{x} outside pools");
            }
        } else {
            prop_assert!(
                o[2] == 1 && (100..=102).contains(&o[3]),
                "{x} outside relay pool"
            );
        }
        Ok(())
    }

    /// Index consistency: by_client, next_deadline and len agree with a plain scan.
    fn check_table(&self) -> Result<(), TestCaseError> {
        let all: Vec<&Lease> = self.table.iter().collect();
        prop_assert_eq!(all.len(), self.table.len());
        let naive_deadline = all
            .iter()
            .filter(|l| {
                matches!(
                    l.state,
                    LeaseState::Offered | LeaseState::Bound | LeaseState::Declined
                )
            })
            .map(|l| l.expires)
            .min();
        prop_assert_eq!(self.table.next_deadline(), naive_deadline);
        for c in 1..=CLIENTS {
            let id = {
                let mut v = vec![1];
                v.extend_from_slice(&mac(c));
                ClientId(v)
            };
            let naive = all
                .iter()
                .filter(|l| l.client_id == id)
                .max_by_key(|l| (l.starts, l.ip))
                .map(|l| l.ip);
            prop_assert_eq!(self.table.by_client(&id).map(|l| l.ip), naive);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_clients_keep_invariants(steps in proptest::collection::vec(step(), 1..120)) {
        let mut w = World::new(crowded());
        for (c, op, dt, relayed) in steps {
            w.now += dt;
            w.run(c, &op, relayed)?;
        }
    }

    #[test]
    fn tiny_pool_contention(steps in proptest::collection::vec(step(), 1..150)) {
        let mut cfg = crowded();
        cfg.subnets[0].pools = vec![range(a(7), a(8))];
        cfg.subnets[0].reservations.clear();
        let mut w = World::new(cfg);
        for (c, op, dt, relayed) in steps {
            w.now += dt;
            w.run(c, &op, relayed)?;
        }
    }
}

// ----- arbitrary packets --------------------------------------------------------------------

fn any_addr() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        Just(Ipv4Addr::UNSPECIFIED),
        (0u8..=255).prop_map(a),
        (0u8..=255).prop_map(|l| Ipv4Addr::new(198, 18, 1, l)),
        any::<u32>().prop_map(Ipv4Addr::from),
    ]
}

fn any_options() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    let interesting = prop_oneof![
        Just(code::MESSAGE_TYPE),
        Just(code::REQUESTED_IP),
        Just(code::SERVER_ID),
        Just(code::CLIENT_ID),
        Just(code::PARAM_REQUEST_LIST),
        Just(code::MAX_MESSAGE_SIZE),
        Just(code::RELAY_AGENT_INFO),
        Just(code::SUBNET_SELECTION),
        Just(code::HOSTNAME),
        any::<u8>(),
    ];
    proptest::collection::vec(
        (interesting, proptest::collection::vec(any::<u8>(), 0..12)),
        0..10,
    )
}

fn any_packet() -> impl Strategy<Value = Packet> {
    (
        prop_oneof![Just(BOOTREQUEST), any::<u8>()],
        any::<u8>(),
        prop_oneof![Just(6u8), 0u8..=20],
        any::<u32>(),
        any::<u16>(),
        (any_addr(), any_addr(), any_addr()),
        proptest::array::uniform16(prop_oneof![3 => Just(0u8), 1 => any::<u8>()]),
        (1u8..=8, any_options()),
    )
        .prop_map(
            |(op, htype, hlen, xid, flags, (ciaddr, giaddr, siaddr), chaddr, (t, opts))| {
                let mut options = Options::new();
                options.set(code::MESSAGE_TYPE, vec![t]);
                for (c, v) in opts {
                    options.set(c, v);
                }
                Packet {
                    op,
                    htype,
                    hlen,
                    hops: 0,
                    xid,
                    secs: 0,
                    flags,
                    ciaddr,
                    yiaddr: Ipv4Addr::UNSPECIFIED,
                    siaddr,
                    giaddr,
                    chaddr,
                    sname: vec![],
                    file: vec![],
                    options,
                    option82_in_overload: false,
                }
            },
        )
}

fn seeded_table() -> LeaseTable {
    let l = |n: u8, last: u8, state, e: u64| Lease {
        ip: a(last),
        client_id: ClientId(vec![1, 2, 0, 0, 0, 0, n]),
        hwaddr: hw(n),
        hostname: None,
        state,
        starts: Timestamp(T0 - 100),
        expires: Timestamp(e),
        first_seen: Timestamp(T0 - 100),
        circuit_id: None,
        remote_id: None,
        subscriber_id: None,
    };
    LeaseTable::from_leases([
        l(1, 2, LeaseState::Bound, T0 + 100),
        l(2, 3, LeaseState::Offered, T0 - 1),
        l(3, 4, LeaseState::Declined, T0 + 50),
        l(4, 7, LeaseState::Released, T0 - 10),
        l(5, 8, LeaseState::Expired, T0 - 1000),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_packets_never_panic(
        pkt in any_packet(),
        iface in prop_oneof![Just(None), Just(Some("eth0".to_string())), Just(Some("x".to_string()))],
        local in proptest::option::of(any_addr()),
        authoritative in any::<bool>(),
    ) {
        let mut cfg = crowded();
        cfg.server.authoritative = authoritative;
        cfg.banned_macs.insert(hw(9), Default::default());
        let plan = Plan::new(cfg);
        let mut table = seeded_table();
        let req = Request::new(pkt.clone(), iface, local, true);
        let d = decide(&req, &plan, &table, Timestamp(T0));
        if pkt.message_type() == Some(MessageType::Discover) {
            prop_assert!(d.reply().and_then(|r| r.packet.message_type()) != Some(MessageType::Nak));
        }
        if let Some(r) = d.reply() {
            prop_assert_eq!(r.packet.op, BOOTREPLY);
            let mut out = Vec::new();
            r.packet.encode(r.max_len, &mut out);
            prop_assert!(out.len() <= r.max_len.max(576));
        }
        let before = table.len();
        table.apply(&d.changes);
        prop_assert!(table.len() <= before + d.changes.len());
        let _ = table.expire(Timestamp(T0 + 10_000));
    }
}

// ----- scale ----------------------------------------------------------------------------------

/// 60k-address pool with 50k leases: allocation must not scan the pool.
#[test]
#[allow(clippy::disallowed_methods)] // the test measures wall time; decide itself does not
fn large_pool_allocation_is_fast() {
    let mut cfg = config();
    let start = u32::from(ip("198.18.0.10"));
    cfg.subnets[0].network = "198.18.0.0/16".parse().unwrap();
    cfg.subnets[0].pools = vec![range(Ipv4Addr::from(start), Ipv4Addr::from(start + 59_999))];
    let plan = Plan::new(cfg);
    let lease = |i: u32, state, expires: u64| Lease {
        ip: Ipv4Addr::from(start + i),
        client_id: ClientId(i.to_be_bytes().to_vec()),
        hwaddr: leased_core::HwAddr(i.to_be_bytes().to_vec()),
        hostname: None,
        state,
        starts: Timestamp(T0 - 100_000),
        expires: Timestamp(expires),
        first_seen: Timestamp(T0 - 100_000),
        circuit_id: None,
        remote_id: None,
        subscriber_id: None,
    };
    // Every 10th address below 50k is free (a gap); the rest bound.
    let mut table = LeaseTable::from_leases(
        (0..50_000u32)
            .filter(|i| i % 10 != 0)
            .map(|i| lease(i, LeaseState::Bound, T0 + 3600)),
    );
    let started = std::time::Instant::now();
    let mut given = std::collections::BTreeSet::new();
    for n in 0..3000u32 {
        let mut p = Pkt::discover(1);
        p.0.chaddr[..4].copy_from_slice(&(1_000_000 + n).to_be_bytes());
        let req = Request::new(p.0, Some("eth0".into()), Some(a(1)), true);
        let d = decide(&req, &plan, &table, Timestamp(T0));
        let x = offered_ip(&d);
        assert!(given.insert(x), "{x} offered twice");
        table.apply(&d.changes);
    }
    // The top of the pool first (above the highest known), then the gaps.
    assert!(given.contains(&Ipv4Addr::from(start + 50_000)));
    // Fill the rest, then the gaps must be found by bisection.
    let mut filled: Vec<LeaseChange> = Vec::new();
    for i in 50_000..60_000u32 {
        filled.push(LeaseChange {
            lease: lease(i, LeaseState::Bound, T0 + 3600),
            durability: leased_core::Durability::Lazy,
        });
    }
    table.apply(&filled);
    for n in 0..2000u32 {
        let mut p = Pkt::discover(2);
        p.0.chaddr[..4].copy_from_slice(&(2_000_000 + n).to_be_bytes());
        let req = Request::new(p.0, Some("eth0".into()), Some(a(1)), true);
        let d = decide(&req, &plan, &table, Timestamp(T0));
        let x = offered_ip(&d);
        assert!(
            u32::from(x) - start < 50_000 && (u32::from(x) - start) % 10 == 0,
            "{x}"
        );
        assert!(given.insert(x), "{x} offered twice");
        table.apply(&d.changes);
    }
    // Generous bound for an unoptimised build on a shared 2-core machine.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
