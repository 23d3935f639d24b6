//! API-level tests of `decide`: every transition, allocation branch, NAK and drop reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::*;
use leased_config::ReservationKey;
use leased_core::{
    ClientId, DropReason, Durability, Lease, LeaseState, LeaseTable, NakReason, Route, Timestamp,
};
use leased_wire::{BOOTREPLY, MessageType, code};

fn nak_reason(d: &leased_core::Decision) -> Option<NakReason> {
    assert_eq!(sent(d), Some(MessageType::Nak), "{d:?}");
    d.event.nak
}

fn cid(n: u8) -> ClientId {
    let mut v = vec![1];
    v.extend_from_slice(&mac(n));
    ClientId(v)
}

fn lease(n: u8, addr: Ipv4Addr, state: LeaseState, starts: u64, expires: u64) -> Lease {
    Lease {
        ip: addr,
        client_id: cid(n),
        hwaddr: hw(n),
        hostname: None,
        state,
        starts: Timestamp(starts),
        expires: Timestamp(expires),
        first_seen: Timestamp(starts),
        circuit_id: None,
        remote_id: None,
        subscriber_id: None,
    }
}

// ----- classification -------------------------------------------------------------------

#[test]
fn bootreply_is_dropped() {
    let h = Harness::default_config();
    let mut p = Pkt::discover(1);
    p.0.op = BOOTREPLY;
    let d = h.peek(&p);
    assert_eq!(d.drop_reason(), Some(DropReason::NotRequest));
    assert_eq!(d.event.drop, Some(DropReason::NotRequest));
    assert!(d.changes.is_empty());
}

#[test]
fn missing_or_malformed_message_type() {
    let h = Harness::default_config();
    let mut p = Pkt::discover(1);
    p.0.options.remove(code::MESSAGE_TYPE);
    assert_eq!(
        h.peek(&p).drop_reason(),
        Some(DropReason::MissingMessageType)
    );
    let p = Pkt::discover(1).opt(code::MESSAGE_TYPE, &[1, 1]);
    assert_eq!(
        h.peek(&p).drop_reason(),
        Some(DropReason::MissingMessageType)
    );
}

#[test]
fn unknown_and_server_message_types_unsupported() {
    let h = Harness::default_config();
    for t in [2u8, 5, 6, 13, 200] {
        let p = Pkt::discover(1).opt(code::MESSAGE_TYPE, &[t]);
        assert_eq!(
            h.peek(&p).drop_reason(),
            Some(DropReason::UnsupportedMessage),
            "type {t}"
        );
    }
}

#[test]
fn zero_chaddr_without_client_id_dropped_with_it_served() {
    let h = Harness::default_config();
    let mut p = Pkt::discover(1);
    p.0.chaddr = [0; 16];
    assert_eq!(h.peek(&p).drop_reason(), Some(DropReason::ZeroChaddr));
    let p = p.opt(code::CLIENT_ID, &[0xff, 1, 2, 3]);
    assert_eq!(sent(&h.peek(&p)), Some(MessageType::Offer));
}

#[test]
fn bad_hlen_dropped() {
    let h = Harness::default_config();
    let mut p = Pkt::discover(1);
    p.0.hlen = 17;
    assert_eq!(h.peek(&p).drop_reason(), Some(DropReason::BadHlen));
}

#[test]
fn client_id_is_option_61_else_htype_and_chaddr() {
    let mut h = Harness::default_config();
    let d = h.send(&Pkt::discover(1));
    assert_eq!(d.changes[0].lease.client_id, cid(1));
    let d = h.send(&Pkt::discover(2).opt(code::CLIENT_ID, &[0, 9, 9]));
    assert_eq!(d.changes[0].lease.client_id, ClientId(vec![0, 9, 9]));
    // An empty option 61 falls back to chaddr.
    let d = h.send(&Pkt::discover(3).opt(code::CLIENT_ID, &[]));
    assert_eq!(d.changes[0].lease.client_id, cid(3));
}

// ----- subnet selection -----------------------------------------------------------------

#[test]
fn direct_client_gets_interface_subnet() {
    let h = Harness::default_config();
    let d = h.peek(&Pkt::discover(1));
    let r = d.reply().unwrap();
    assert_eq!(r.packet.yiaddr, a(10));
    assert_eq!(
        r.packet.options.get(code::SERVER_ID),
        Some(&a(1).octets()[..])
    );
}

#[test]
fn local_addr_selects_when_interface_unknown() {
    let mut h = Harness::default_config();
    h.interface = Some("eth9".into());
    h.local_addr = Some(ip("198.18.1.1"));
    let d = h.peek(&Pkt::discover(1));
    assert_eq!(offered_ip(&d), ip("198.18.1.100"));
    // Subnet has no server id and the server has none: the local address is used.
    assert_eq!(option(&d, code::SERVER_ID), Some(&[198, 18, 1, 1][..]));
}

#[test]
fn no_subnet_dropped() {
    let mut h = Harness::default_config();
    h.interface = None;
    h.local_addr = Some(ip("192.0.2.1"));
    assert_eq!(
        h.peek(&Pkt::discover(1)).drop_reason(),
        Some(DropReason::NoSubnet)
    );
    h.local_addr = None;
    assert_eq!(
        h.peek(&Pkt::discover(1)).drop_reason(),
        Some(DropReason::NoSubnet)
    );
    // A relay on a link we do not serve.
    let h = Harness::default_config();
    let p = Pkt::discover(1).giaddr(ip("192.0.2.1"));
    assert_eq!(h.peek(&p).drop_reason(), Some(DropReason::NoSubnet));
}

#[test]
fn giaddr_selects_relay_subnet_and_routes_to_relay() {
    let h = Harness::default_config();
    let d = h.peek(&Pkt::discover(1).giaddr(ip("198.18.1.1")));
    assert_eq!(offered_ip(&d), ip("198.18.1.100"));
    let r = d.reply().unwrap();
    assert_eq!(
        r.route,
        Route::Relay {
            giaddr: ip("198.18.1.1"),
            port: 67
        }
    );
    assert_eq!(r.packet.giaddr, ip("198.18.1.1"));
    // Subnet lease time overrides the server's.
    assert_eq!(
        option(&d, code::LEASE_TIME),
        Some(&7200u32.to_be_bytes()[..])
    );
}

#[test]
fn link_selection_beats_118_beats_giaddr() {
    let h = Harness::default_config();
    let rai = [1, 2, 7, 7, 5, 4, 198, 18, 1, 0];
    let p = Pkt::discover(1)
        .giaddr(a(2))
        .opt(code::SUBNET_SELECTION, &[198, 18, 0, 0])
        .opt(code::RELAY_AGENT_INFO, &rai);
    assert_eq!(offered_ip(&h.peek(&p)), ip("198.18.1.100"));
    let p = Pkt::discover(1)
        .giaddr(a(2))
        .opt(code::SUBNET_SELECTION, &[198, 18, 1, 0]);
    assert_eq!(offered_ip(&h.peek(&p)), ip("198.18.1.100"));
    // Malformed 118 is ignored: giaddr decides.
    let p = Pkt::discover(1)
        .giaddr(ip("198.18.1.1"))
        .opt(code::SUBNET_SELECTION, &[198, 18]);
    assert_eq!(offered_ip(&h.peek(&p)), ip("198.18.1.100"));
}

#[test]
fn ciaddr_selects_subnet_for_direct_clients() {
    let mut h = Harness::default_config();
    h.interface = Some("eth0".into());
    let p = Pkt::new(MessageType::Inform, 1).ciaddr(ip("198.18.1.50"));
    let d = h.peek(&p);
    assert_eq!(option(&d, code::ROUTER), Some(&[198, 18, 1, 1][..]));
}

#[test]
fn server_wide_server_id_used_when_subnet_has_none() {
    let mut cfg = config();
    cfg.server.server_id = Some(ip("198.18.9.9"));
    let h = Harness::new(cfg);
    let d = h.peek(&Pkt::discover(1).giaddr(ip("198.18.1.1")));
    assert_eq!(option(&d, code::SERVER_ID), Some(&[198, 18, 9, 9][..]));
}

// ----- DISCOVER allocation ----------------------------------------------------------------

#[test]
fn offer_is_volatile_and_held() {
    let mut h = Harness::default_config();
    let d = h.send(&Pkt::discover(1));
    assert_eq!(offered_ip(&d), a(10));
    assert_eq!(d.changes.len(), 1);
    let c = &d.changes[0];
    assert_eq!(c.durability, Durability::Volatile);
    assert_eq!(c.lease.state, LeaseState::Offered);
    assert_eq!(c.lease.expires, Timestamp(T0 + 60));
    assert!(!d.needs_durability());
    // Another client does not get the held address.
    assert_eq!(offered_ip(&h.send(&Pkt::discover(2))), a(11));
    // The same client gets the same offer again.
    assert_eq!(offered_ip(&h.send(&Pkt::discover(1))), a(10));
}

#[test]
fn offer_expiry_frees_address() {
    let mut h = Harness::default_config();
    let mut cfg = config();
    cfg.subnets[0].pools = vec![range(a(10), a(10))];
    h.plan = leased_core::Plan::new(cfg);
    assert_eq!(offered_ip(&h.send(&Pkt::discover(1))), a(10));
    assert_eq!(
        h.send(&Pkt::discover(2)).drop_reason(),
        Some(DropReason::PoolExhausted)
    );
    h.advance(60);
    // Lapsed before expire() ran: already reusable.
    assert_eq!(offered_ip(&h.peek(&Pkt::discover(2))), a(10));
    let changes = h.table.expire(h.now);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].durability, Durability::Volatile);
    assert_eq!(changes[0].lease.state, LeaseState::Expired);
    assert_eq!(offered_ip(&h.send(&Pkt::discover(2))), a(10));
}

#[test]
fn requested_address_honoured_when_free() {
    let mut h = Harness::default_config();
    let d = h.send(&Pkt::discover(1).want(a(15)));
    assert_eq!(offered_ip(&d), a(15));
    // Taken → something else (never-used: above the highest known address first).
    assert_eq!(offered_ip(&h.send(&Pkt::discover(2).want(a(15)))), a(16));
    // Outside the pool, router, out of subnet → ignored.
    for want in [a(30), a(1), ip("198.18.1.100"), a(0), a(255)] {
        assert_eq!(
            offered_ip(&h.peek(&Pkt::discover(3).want(want))),
            a(17),
            "{want}"
        );
    }
    // Below the highest known address, a free one asked for is still given.
    assert_eq!(offered_ip(&h.peek(&Pkt::discover(3).want(a(12)))), a(12));
}

#[test]
fn never_used_before_oldest_expired_and_oldest_first() {
    let mut cfg = config();
    cfg.subnets[0].pools = vec![range(a(10), a(14))];
    let mut h = Harness::new(cfg);
    h.table = LeaseTable::from_leases([
        lease(50, a(11), LeaseState::Expired, T0 - 9000, T0 - 5000),
        lease(51, a(12), LeaseState::Released, T0 - 9000, T0 - 7000),
        lease(52, a(10), LeaseState::Expired, T0 - 9000, T0 - 6000),
    ]);
    // Never used first: .13, .14 (above highest known).
    assert_eq!(offered_ip(&h.send(&Pkt::discover(1))), a(13));
    assert_eq!(offered_ip(&h.send(&Pkt::discover(2))), a(14));
    // Then oldest end first: .12 (T0-7000), .10 (T0-6000), .11.
    assert_eq!(offered_ip(&h.send(&Pkt::discover(3))), a(12));
    assert_eq!(offered_ip(&h.send(&Pkt::discover(4))), a(10));
    assert_eq!(offered_ip(&h.send(&Pkt::discover(5))), a(11));
    assert_eq!(
        h.send(&Pkt::discover(6)).drop_reason(),
        Some(DropReason::PoolExhausted)
    );
}

#[test]
fn gaps_below_highest_known_are_found() {
    let mut h = Harness::default_config();
    h.table = LeaseTable::from_leases([
        lease(50, a(10), LeaseState::Bound, T0, T0 + 100),
        lease(51, a(13), LeaseState::Bound, T0, T0 + 100),
        lease(52, a(20), LeaseState::Bound, T0, T0 + 100),
    ]);
    let got: Vec<_> = (1..=8)
        .map(|c| offered_ip(&h.send(&Pkt::discover(c))))
        .collect();
    assert_eq!(
        got,
        vec![a(11), a(12), a(14), a(15), a(16), a(17), a(18), a(19)]
    );
    assert_eq!(
        h.send(&Pkt::discover(9)).drop_reason(),
        Some(DropReason::PoolExhausted)
    );
}

#[test]
fn exhaustion_drops_never_naks() {
    let mut cfg = config();
    cfg.subnets[0].pools = vec![range(a(10), a(11))];
    let mut h = Harness::new(cfg);
    h.bind(1);
    h.bind(2);
    let d = h.send(&Pkt::discover(3));
    assert_eq!(d.drop_reason(), Some(DropReason::PoolExhausted));
    assert!(d.reply().is_none());
    assert!(d.changes.is_empty());
    assert_eq!(d.event.drop, Some(DropReason::PoolExhausted));
}

#[test]
fn forbidden_addresses_never_offered() {
    let mut cfg = config();
    // Pool covering the whole subnet: network, broadcast, router/server .1, exclusion, reserved.
    cfg.subnets[0].pools = vec![range(a(0), a(255))];
    cfg.subnets[0].routers = vec![a(1), a(254)];
    cfg.subnets[0].server_id = Some(a(2));
    cfg.server.server_id = Some(a(3));
    cfg.subnets[0].exclusions = vec![range(a(5), a(7))];
    cfg.subnets[0].reservations = vec![res_mac(200, a(4))];
    let mut h = Harness::new(cfg);
    let mut got = Vec::new();
    for c in 1..=20 {
        got.push(offered_ip(&h.send(&Pkt::discover(c))));
    }
    assert_eq!(got[..3], [a(8), a(9), a(10)]);
    for bad in [
        a(0),
        a(1),
        a(2),
        a(3),
        a(4),
        a(5),
        a(6),
        a(7),
        a(254),
        a(255),
    ] {
        assert!(!got.contains(&bad), "{bad}");
        // Also refused when asked for.
        assert_ne!(offered_ip(&h.peek(&Pkt::discover(99).want(bad))), bad);
    }
}

#[test]
fn never_hand_out_even_at_top_of_pool() {
    let mut cfg = config();
    cfg.subnets[0].pools = vec![range(a(250), a(255))];
    cfg.subnets[0].routers = vec![a(254)];
    let mut h = Harness::new(cfg);
    let got: Vec<_> = (1..=4)
        .map(|c| offered_ip(&h.send(&Pkt::discover(c))))
        .collect();
    assert_eq!(got, vec![a(250), a(251), a(252), a(253)]);
    assert_eq!(
        h.send(&Pkt::discover(5)).drop_reason(),
        Some(DropReason::PoolExhausted)
    );
}

#[test]
fn reservation_offered_even_outside_pool() {
    let mut cfg = config();
    cfg.subnets[0].reservations = vec![res_mac(7, a(100))];
    let mut h = Harness::new(cfg);
    assert_eq!(offered_ip(&h.send(&Pkt::discover(7))), a(100));
    let d = h.send(&Pkt::select(7, a(1), a(100)));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    // And renewed.
    assert_eq!(
        sent(&h.send(&Pkt::renew(7, a(100)))),
        Some(MessageType::Ack)
    );
    // Nobody else gets it, even asking.
    assert_eq!(
        nak_reason(&h.peek(&Pkt::reboot(8, a(100)))),
        Some(NakReason::AddressNotAvailable)
    );
}

#[test]
fn reservation_by_client_id_and_in_exclusion() {
    let mut cfg = config();
    cfg.subnets[0].exclusions = vec![range(a(12), a(12))];
    let mut r = res_mac(0, a(12));
    r.key = ReservationKey::ClientId(ClientId(vec![0, 42]));
    cfg.subnets[0].reservations = vec![r];
    let h = Harness::new(cfg);
    let d = h.peek(&Pkt::discover(3).opt(code::CLIENT_ID, &[0, 42]));
    assert_eq!(offered_ip(&d), a(12));
}

#[test]
fn reservation_in_pool_not_given_to_others() {
    let mut cfg = config();
    cfg.subnets[0].reservations = vec![res_mac(7, a(10))];
    let mut h = Harness::new(cfg);
    assert_eq!(offered_ip(&h.send(&Pkt::discover(1))), a(11));
    assert_eq!(offered_ip(&h.send(&Pkt::discover(2).want(a(10)))), a(12));
    assert_eq!(
        nak_reason(&h.peek(&Pkt::reboot(3, a(10)))),
        Some(NakReason::Reserved)
    );
    assert_eq!(
        nak_reason(&h.peek(&Pkt::select(3, a(1), a(10)))),
        Some(NakReason::Reserved)
    );
    assert_eq!(offered_ip(&h.send(&Pkt::discover(7))), a(10));
}

#[test]
fn reservation_held_by_other_falls_back_to_pool() {
    let mut cfg = config();
    cfg.subnets[0].reservations = vec![res_mac(7, a(15))];
    let mut h = Harness::new(cfg);
    // Client 1 was bound to .15 before the reservation existed.
    h.table = LeaseTable::from_leases([lease(1, a(15), LeaseState::Bound, T0, T0 + 3600)]);
    let ip7 = offered_ip(&h.send(&Pkt::discover(7)));
    assert_eq!(ip7, a(16));
    assert_eq!(
        sent(&h.send(&Pkt::select(7, a(1), ip7))),
        Some(MessageType::Ack)
    );
    // Renewing the pool address is fine while the reservation is taken (no NAK loop).
    assert_eq!(sent(&h.send(&Pkt::renew(7, ip7))), Some(MessageType::Ack));
    // Client 1 cannot renew: the address is reserved for 7 now.
    assert_eq!(
        nak_reason(&h.peek(&Pkt::renew(1, a(15)))),
        Some(NakReason::Reserved)
    );
    // Once client 1's lease ends, 7 is sent back to DISCOVER, which gives it .15.
    h.advance(3600);
    assert_eq!(
        nak_reason(&h.peek(&Pkt::renew(7, ip7))),
        Some(NakReason::ReservedElsewhere)
    );
    assert_eq!(offered_ip(&h.send(&Pkt::discover(7))), a(15));
}

#[test]
fn own_binding_reoffered_without_downgrade() {
    let mut h = Harness::default_config();
    let addr = h.bind(1);
    let d = h.send(&Pkt::discover(1));
    assert_eq!(offered_ip(&d), addr);
    assert!(d.changes.is_empty(), "{:?}", d.changes);
    assert_eq!(h.table.by_ip(addr).unwrap().state, LeaseState::Bound);
}

#[test]
fn sticky_within_window_not_after() {
    let mut h = Harness::default_config();
    let first = h.bind(1);
    let other = h.bind(2);
    assert_ne!(first, other);
    h.advance(3600); // lease ends
    h.table.expire(h.now);
    // Within the window: its old address, even though a never-used one exists.
    h.advance(999);
    assert_eq!(offered_ip(&h.peek(&Pkt::discover(1))), first);
    // After the window, plain allocation (never-used first).
    h.advance(2);
    assert_eq!(offered_ip(&h.peek(&Pkt::discover(1))), a(12));
}

#[test]
fn sticky_after_release() {
    let mut h = Harness::default_config();
    let addr = h.bind(1);
    h.bind(2);
    assert_eq!(
        h.send(&Pkt::release(1, addr)).drop_reason(),
        Some(DropReason::NoReplyNeeded)
    );
    h.advance(10);
    assert_eq!(offered_ip(&h.peek(&Pkt::discover(1))), addr);
}

#[test]
fn banned_client_dropped_on_discover_and_inform_naked_on_request() {
    let mut cfg = config();
    cfg.banned_macs.insert(hw(1), Default::default());
    let h = Harness::new(cfg.clone());
    assert_eq!(
        h.peek(&Pkt::discover(1)).drop_reason(),
        Some(DropReason::BannedClient)
    );
    let inform = Pkt::new(MessageType::Inform, 1).ciaddr(a(50));
    assert_eq!(
        h.peek(&inform).drop_reason(),
        Some(DropReason::BannedClient)
    );
    assert_eq!(
        nak_reason(&h.peek(&Pkt::reboot(1, a(10)))),
        Some(NakReason::BannedClient)
    );
    assert_eq!(
        nak_reason(&h.peek(&Pkt::select(1, a(1), a(10)))),
        Some(NakReason::BannedClient)
    );
    cfg.server.authoritative = false;
    let h = Harness::new(cfg);
    assert_eq!(
        h.peek(&Pkt::renew(1, a(10))).drop_reason(),
        Some(DropReason::BannedClient)
    );
}

// ----- REQUEST ------------------------------------------------------------------------------

#[test]
fn selecting_ack_is_durable_bound() {
    let mut h = Harness::default_config();
    let addr = offered_ip(&h.send(&Pkt::discover(1)));
    h.advance(5);
    let d = h.send(&Pkt::select(1, a(1), addr).opt(code::HOSTNAME, b" laptop\0"));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    assert!(d.needs_durability());
    let c = &d.changes[0];
    assert_eq!(c.durability, Durability::BeforeReply);
    assert_eq!(c.lease.state, LeaseState::Bound);
    assert_eq!(c.lease.starts, Timestamp(T0 + 5));
    assert_eq!(c.lease.expires, Timestamp(T0 + 5 + 3600));
    assert_eq!(c.lease.first_seen, Timestamp(T0));
    assert_eq!(c.lease.hostname.as_deref(), Some("laptop"));
    assert_eq!(d.event.hostname.as_deref(), Some("laptop"));
    assert_eq!(d.event.ip, Some(addr));
    assert_eq!(d.event.sent, Some(MessageType::Ack));
    assert_eq!(d.event.received, Some(MessageType::Request));
    // Renewal keeps first_seen.
    h.advance(1000);
    let d = h.send(&Pkt::renew(1, addr));
    assert_eq!(d.changes[0].lease.first_seen, Timestamp(T0));
    assert_eq!(d.changes[0].lease.expires, Timestamp(T0 + 1005 + 3600));
    assert_eq!(d.changes[0].lease.hostname.as_deref(), Some("laptop"));
    assert_eq!(d.reply().unwrap().route, Route::Unicast(addr));
    assert_eq!(d.reply().unwrap().packet.ciaddr, addr);
}

#[test]
fn selecting_other_server_releases_our_offer() {
    let mut h = Harness::default_config();
    let addr = offered_ip(&h.send(&Pkt::discover(1)));
    let d = h.send(&Pkt::select(1, ip("198.18.0.99"), addr));
    assert_eq!(d.drop_reason(), Some(DropReason::NotForUs));
    assert_eq!(d.changes.len(), 1);
    assert_eq!(d.changes[0].durability, Durability::Volatile);
    assert!(!h.table.is_active(addr, h.now));
    // Free again: asked for, it is given.
    assert_eq!(offered_ip(&h.send(&Pkt::discover(2).want(addr))), addr);
    // Without an offer: just dropped.
    let d = h.peek(&Pkt::select(3, ip("198.18.0.99"), a(12)));
    assert_eq!(d.drop_reason(), Some(DropReason::NotForUs));
    assert!(d.changes.is_empty());
}

#[test]
fn selecting_free_pool_address_acked_taken_naked() {
    let mut h = Harness::default_config();
    // No offer but free and allocatable: ACK.
    assert_eq!(
        sent(&h.send(&Pkt::select(1, a(1), a(14)))),
        Some(MessageType::Ack)
    );
    // Held by another.
    assert_eq!(
        nak_reason(&h.peek(&Pkt::select(2, a(1), a(14)))),
        Some(NakReason::AddressNotAvailable)
    );
    // Outside pools, in the wrong subnet, the router.
    assert_eq!(
        nak_reason(&h.peek(&Pkt::select(2, a(1), a(40)))),
        Some(NakReason::AddressNotAvailable)
    );
    assert_eq!(
        nak_reason(&h.peek(&Pkt::select(2, a(1), ip("198.18.1.100")))),
        Some(NakReason::WrongSubnet)
    );
    assert_eq!(
        nak_reason(&h.peek(&Pkt::select(2, a(1), a(1)))),
        Some(NakReason::AddressNotAvailable)
    );
    // 50 absent: ciaddr used.
    let p = leased_core::Request::new(
        Pkt::new(MessageType::Request, 2).sid(a(1)).ciaddr(a(15)).0,
        Some("eth0".into()),
        Some(a(1)),
        false,
    );
    let d = leased_core::decide(&p, &h.plan, &h.table, h.now);
    assert_eq!(sent(&d), Some(MessageType::Ack));
    // Neither: NoLease.
    let d = h.peek(&Pkt::new(MessageType::Request, 2).sid(a(1)));
    assert_eq!(nak_reason(&d), Some(NakReason::NoLease));
}

#[test]
fn init_reboot_branches() {
    let mut h = Harness::default_config();
    let addr = h.bind(1);
    // Own lease: ACK.
    assert_eq!(sent(&h.send(&Pkt::reboot(1, addr))), Some(MessageType::Ack));
    // Moved to another network.
    assert_eq!(
        nak_reason(&h.peek(&Pkt::reboot(1, ip("10.0.0.5")))),
        Some(NakReason::WrongSubnet)
    );
    // Someone else's.
    assert_eq!(
        nak_reason(&h.peek(&Pkt::reboot(2, addr))),
        Some(NakReason::AddressNotAvailable)
    );
    // Not allocatable (outside pools).
    assert_eq!(
        nak_reason(&h.peek(&Pkt::reboot(2, a(99)))),
        Some(NakReason::AddressNotAvailable)
    );
    // No record but free in the pool (lost store): ACK.
    let d = h.send(&Pkt::reboot(3, a(18)));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    assert_eq!(d.changes[0].lease.state, LeaseState::Bound);
    // Client with a reservation elsewhere is sent back to DISCOVER.
    let mut cfg = config();
    cfg.subnets[0].reservations = vec![res_mac(4, a(19))];
    let h = Harness::new(cfg);
    assert_eq!(
        nak_reason(&h.peek(&Pkt::reboot(4, a(12)))),
        Some(NakReason::ReservedElsewhere)
    );
    assert_eq!(
        sent(&h.peek(&Pkt::reboot(4, a(19)))),
        Some(MessageType::Ack)
    );
}

#[test]
fn renewing_branches() {
    let mut h = Harness::default_config();
    let addr = h.bind(1);
    h.advance(1800);
    let d = h.send(&Pkt::renew(1, addr));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    assert_eq!(d.changes[0].lease.expires, Timestamp(T0 + 1800 + 3600));
    // Stranger renewing someone's address.
    assert_eq!(
        nak_reason(&h.peek(&Pkt::renew(2, addr))),
        Some(NakReason::AddressNotAvailable)
    );
    // Expired lease, still free: renewal (rebinding) succeeds.
    h.advance(10_000);
    assert_eq!(sent(&h.peek(&Pkt::renew(1, addr))), Some(MessageType::Ack));
    // REQUEST with no 54, no 50, no ciaddr.
    assert_eq!(
        nak_reason(&h.peek(&Pkt::new(MessageType::Request, 1))),
        Some(NakReason::NoLease)
    );
}

#[test]
fn nak_shape_and_routes() {
    let h = Harness::default_config();
    let p = Pkt::reboot(1, ip("10.0.0.5")).opt(code::CLIENT_ID, &[0, 7]);
    let d = h.peek(&p);
    assert!(d.changes.is_empty());
    let r = d.reply().unwrap();
    assert_eq!(r.route, Route::Broadcast);
    assert_eq!(r.packet.op, BOOTREPLY);
    assert_eq!(r.packet.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.packet.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(codes(&d), vec![53, 54, 56, 61]);
    assert_eq!(
        option(&d, code::MESSAGE),
        Some(NakReason::WrongSubnet.text().as_bytes())
    );
    assert_eq!(option(&d, code::CLIENT_ID), Some(&[0, 7][..]));
    assert_eq!(d.event.nak, Some(NakReason::WrongSubnet));
    assert_eq!(d.event.sent, Some(MessageType::Nak));
    // Relayed NAK: to the relay, broadcast bit set, 82 echoed.
    let rai = [1, 3, b'a', b'b', b'c', 2, 1, 9];
    let p = Pkt::reboot(1, ip("10.0.0.5"))
        .giaddr(ip("198.18.1.1"))
        .opt(code::RELAY_AGENT_INFO, &rai);
    let d = h.peek(&p);
    let r = d.reply().unwrap();
    assert_eq!(
        r.route,
        Route::Relay {
            giaddr: ip("198.18.1.1"),
            port: 67
        }
    );
    assert!(r.packet.broadcast());
    assert_eq!(r.packet.options.get(code::RELAY_AGENT_INFO), Some(&rai[..]));
    // Renewing NAK goes broadcast, not unicast.
    let d = h.peek(&Pkt::renew(1, a(99)));
    assert_eq!(d.reply().unwrap().route, Route::Broadcast);
}

#[test]
fn non_authoritative_stays_silent() {
    let mut cfg = config();
    cfg.server.authoritative = false;
    let mut h = Harness::new(cfg);
    let d = h.peek(&Pkt::reboot(1, ip("10.0.0.5")));
    assert_eq!(d.drop_reason(), Some(DropReason::NotAuthoritative));
    assert!(d.changes.is_empty());
    // ACKs still happen.
    let addr = h.bind(1);
    assert_eq!(sent(&h.send(&Pkt::renew(1, addr))), Some(MessageType::Ack));
}

#[test]
fn ack_for_new_address_releases_old_binding_in_subnet() {
    let mut h = Harness::default_config();
    let old = h.bind(1);
    let d = h.send(&Pkt::reboot(1, a(17)));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    assert_eq!(d.changes.len(), 2);
    assert_eq!(d.changes[1].lease.ip, old);
    assert_eq!(d.changes[1].lease.state, LeaseState::Released);
    assert!(!h.table.is_active(old, h.now));
}

// ----- DECLINE / RELEASE ------------------------------------------------------------------

#[test]
fn decline_quarantines_then_frees() {
    let mut cfg = config();
    cfg.subnets[0].pools = vec![range(a(10), a(10))];
    let mut h = Harness::new(cfg);
    let addr = h.bind(1);
    let d = h.send(&Pkt::decline(1, addr).sid(a(1)));
    assert_eq!(d.drop_reason(), Some(DropReason::NoReplyNeeded));
    assert_eq!(d.changes.len(), 1);
    assert_eq!(d.changes[0].lease.state, LeaseState::Declined);
    assert_eq!(d.changes[0].lease.expires, Timestamp(T0 + 600));
    assert_eq!(d.changes[0].durability, Durability::Lazy);
    assert_eq!(d.event.ip, Some(addr));
    // Quarantined: nobody gets it, not even the decliner.
    assert_eq!(
        h.send(&Pkt::discover(2)).drop_reason(),
        Some(DropReason::PoolExhausted)
    );
    assert_eq!(
        h.send(&Pkt::discover(1)).drop_reason(),
        Some(DropReason::PoolExhausted)
    );
    assert_eq!(h.table.next_deadline(), Some(Timestamp(T0 + 600)));
    h.advance(600);
    let changes = h.table.expire(h.now);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].lease.state, LeaseState::Expired);
    assert_eq!(changes[0].durability, Durability::Lazy);
    assert_eq!(offered_ip(&h.send(&Pkt::discover(2))), addr);
}

#[test]
fn decliner_cannot_take_quarantined_address_back() {
    let mut h = Harness::default_config();
    let addr = h.bind(1);
    let _ = h.send(&Pkt::decline(1, addr));
    for p in [
        Pkt::select(1, a(1), addr),
        Pkt::reboot(1, addr),
        Pkt::renew(1, addr),
    ] {
        assert_eq!(
            nak_reason(&h.peek(&p)),
            Some(NakReason::AddressNotAvailable)
        );
    }
    assert_ne!(offered_ip(&h.peek(&Pkt::discover(1).want(addr))), addr);
}

#[test]
fn table_indexes_follow_upserts() {
    let mut t = LeaseTable::from_leases([
        lease(1, a(10), LeaseState::Bound, T0, T0 + 50),
        lease(1, a(11), LeaseState::Expired, T0 - 100, T0 - 10),
        // A later record for the same address wins.
        lease(2, a(12), LeaseState::Offered, T0, T0 + 5),
        lease(3, a(12), LeaseState::Bound, T0, T0 + 500),
    ]);
    assert_eq!(t.len(), 3);
    assert_eq!(t.by_client(&cid(1)).unwrap().ip, a(10));
    assert!(t.by_client(&cid(2)).is_none());
    assert_eq!(t.by_ip(a(12)).unwrap().client_id, cid(3));
    assert_eq!(t.next_deadline(), Some(Timestamp(T0 + 50)));
    // Client 4 takes over .11: it leaves client 1's index.
    let ch = leased_core::LeaseChange {
        lease: lease(4, a(11), LeaseState::Bound, T0, T0 + 20),
        durability: Durability::BeforeReply,
    };
    t.apply(std::slice::from_ref(&ch));
    t.apply(std::slice::from_ref(&ch));
    assert_eq!(t.len(), 3);
    assert_eq!(t.leases_of(&cid(1)).count(), 1);
    assert_eq!(t.by_client(&cid(4)).unwrap().ip, a(11));
    assert_eq!(t.next_deadline(), Some(Timestamp(T0 + 20)));
    // Nothing due yet; then two due.
    assert!(t.expire(Timestamp(T0 + 19)).is_empty());
    let due = t.expire(Timestamp(T0 + 50));
    assert_eq!(
        due.iter().map(|c| c.lease.ip).collect::<Vec<_>>(),
        vec![a(11), a(10)]
    );
    assert!(due.iter().all(|c| c.durability == Durability::Lazy));
    assert_eq!(t.next_deadline(), Some(Timestamp(T0 + 500)));
    assert!(
        t.iter()
            .all(|l| l.ip != a(10) || l.state == LeaseState::Expired)
    );
}

#[test]
fn decline_by_stranger_or_for_other_server_ignored() {
    let mut h = Harness::default_config();
    let addr = h.bind(1);
    let d = h.send(&Pkt::decline(2, addr));
    assert_eq!(d.drop_reason(), Some(DropReason::NotOwner));
    assert!(d.changes.is_empty());
    let d = h.send(&Pkt::decline(1, addr).sid(ip("198.18.0.99")));
    assert_eq!(d.drop_reason(), Some(DropReason::NotForUs));
    assert!(d.changes.is_empty());
    let d = h.send(&Pkt::new(MessageType::Decline, 1));
    assert_eq!(d.drop_reason(), Some(DropReason::NotOwner));
    assert!(h.table.is_active(addr, h.now));
}

#[test]
fn release_by_owner_only() {
    let mut h = Harness::default_config();
    let addr = h.bind(1);
    let d = h.send(&Pkt::release(2, addr).sid(a(1)));
    assert_eq!(d.drop_reason(), Some(DropReason::NotOwner));
    assert!(d.changes.is_empty());
    assert!(h.table.is_active(addr, h.now));
    h.advance(7);
    let d = h.send(&Pkt::release(1, addr).sid(a(1)));
    assert_eq!(d.drop_reason(), Some(DropReason::NoReplyNeeded));
    let c = &d.changes[0];
    assert_eq!(
        (c.lease.state, c.lease.expires, c.durability),
        (LeaseState::Released, Timestamp(T0 + 7), Durability::Lazy)
    );
    assert!(!h.table.is_active(addr, h.now));
    // Releasing twice does nothing.
    assert_eq!(
        h.send(&Pkt::release(1, addr)).drop_reason(),
        Some(DropReason::NotOwner)
    );
    // Release naming another server.
    let b = h.bind(2);
    assert_eq!(
        h.send(&Pkt::release(2, b).sid(a(77))).drop_reason(),
        Some(DropReason::NotForUs)
    );
}

// ----- INFORM -------------------------------------------------------------------------------

#[test]
fn inform_gets_config_without_lease() {
    let h = Harness::default_config();
    let p = Pkt::new(MessageType::Inform, 1).ciaddr(a(50));
    let d = h.peek(&p);
    assert!(d.changes.is_empty());
    let r = d.reply().unwrap();
    assert_eq!(r.packet.message_type(), Some(MessageType::Ack));
    assert_eq!(r.packet.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.packet.ciaddr, a(50));
    assert_eq!(r.route, Route::Unicast(a(50)));
    for c in [code::LEASE_TIME, code::RENEWAL_TIME, code::REBINDING_TIME] {
        assert!(option(&d, c).is_none());
    }
    assert!(option(&d, code::DNS).is_some());
    // Relayed, and with ciaddr 0.
    let d = h.peek(
        &Pkt::new(MessageType::Inform, 1)
            .ciaddr(ip("198.18.1.9"))
            .giaddr(ip("198.18.1.1")),
    );
    assert!(matches!(d.reply().unwrap().route, Route::Relay { .. }));
    let d = h.peek(&Pkt::new(MessageType::Inform, 1));
    assert_eq!(d.reply().unwrap().route, Route::Broadcast);
}

// ----- reply building -------------------------------------------------------------------

#[test]
fn reply_header_and_lease_times() {
    let mut cfg = config();
    cfg.subnets[0].options.next_server = Some(a(69));
    cfg.subnets[0].options.boot_file = Some("pxelinux.0".into());
    let h = Harness::new(cfg);
    let mut p = Pkt::discover(1);
    p.0.hops = 3;
    p.0.secs = 9;
    p.0.flags = 0;
    let d = h.peek(&p);
    let r = d.reply().unwrap();
    let q = &r.packet;
    assert_eq!(
        (q.op, q.htype, q.hlen, q.hops, q.secs, q.xid),
        (BOOTREPLY, 1, 6, 0, 0, p.0.xid)
    );
    assert_eq!(q.chaddr, p.0.chaddr);
    assert_eq!(q.siaddr, a(69));
    assert_eq!(q.file, b"pxelinux.0");
    assert_eq!(r.max_len, 576);
    assert_eq!(
        r.route,
        Route::Hardware {
            yiaddr: a(10),
            chaddr: hw(1),
            htype: 1
        }
    );
    assert_eq!(
        option(&d, code::LEASE_TIME),
        Some(&3600u32.to_be_bytes()[..])
    );
    assert_eq!(
        option(&d, code::RENEWAL_TIME),
        Some(&1800u32.to_be_bytes()[..])
    );
    assert_eq!(
        option(&d, code::REBINDING_TIME),
        Some(&3150u32.to_be_bytes()[..])
    );
    // No PRL: everything configured, code order, after 53/54/51/58/59.
    assert_eq!(codes(&d), vec![53, 54, 51, 58, 59, 1, 3, 6, 15, 28, 42]);
    // Broadcast bit → broadcast.
    let d = h.peek(&Pkt::discover(1).broadcast());
    assert_eq!(d.reply().unwrap().route, Route::Broadcast);
    assert!(d.reply().unwrap().packet.broadcast());
}

#[test]
fn configured_t1_t2() {
    let mut cfg = config();
    cfg.server.renewal_time = Some(100);
    cfg.server.rebinding_time = Some(200);
    let h = Harness::new(cfg);
    let d = h.peek(&Pkt::discover(1));
    assert_eq!(
        option(&d, code::RENEWAL_TIME),
        Some(&100u32.to_be_bytes()[..])
    );
    assert_eq!(
        option(&d, code::REBINDING_TIME),
        Some(&200u32.to_be_bytes()[..])
    );
}

#[test]
fn prl_order_then_always_sent() {
    let h = Harness::default_config();
    let d = h.peek(&Pkt::discover(1).prl(&[42, 6, 99, 3, 51, 53]));
    // 42, 6, 3 in PRL order (99 unconfigured; 51/53 are ours), then 1, 15, 28.
    assert_eq!(codes(&d), vec![53, 54, 51, 58, 59, 42, 6, 3, 1, 15, 28]);
    // Duplicates in the PRL are sent once.
    let d = h.peek(&Pkt::discover(1).prl(&[6, 6]));
    assert_eq!(codes(&d), vec![53, 54, 51, 58, 59, 6, 1, 3, 15, 28]);
}

#[test]
fn max_message_size_option_57() {
    let h = Harness::default_config();
    let d = h.peek(&Pkt::discover(1).opt(code::MAX_MESSAGE_SIZE, &1500u16.to_be_bytes()));
    assert_eq!(d.reply().unwrap().max_len, 1500);
    let d = h.peek(&Pkt::discover(1).opt(code::MAX_MESSAGE_SIZE, &300u16.to_be_bytes()));
    assert_eq!(d.reply().unwrap().max_len, 576);
    let d = h.peek(&Pkt::discover(1).opt(code::MAX_MESSAGE_SIZE, &[5]));
    assert_eq!(d.reply().unwrap().max_len, 576);
}

#[test]
fn echoes_61_and_82() {
    let h = Harness::default_config();
    let rai = [
        1, 4, 0, 1, 2, 3, 2, 6, 1, 2, 3, 4, 5, 6, 5, 4, 198, 18, 1, 0, 9, 0,
    ];
    let d = h.peek(
        &Pkt::discover(1)
            .opt(code::CLIENT_ID, &[1, 2, 3])
            .opt(code::RELAY_AGENT_INFO, &rai)
            .giaddr(ip("198.18.1.1")),
    );
    assert_eq!(option(&d, code::CLIENT_ID), Some(&[1, 2, 3][..]));
    assert_eq!(option(&d, code::RELAY_AGENT_INFO), Some(&rai[..]));
    // Not sent → not echoed.
    let d = h.peek(&Pkt::discover(1));
    assert!(option(&d, code::CLIENT_ID).is_none());
    assert!(option(&d, code::RELAY_AGENT_INFO).is_none());
}

#[test]
fn option_249_mirrors_121() {
    let routes: &[u8] = &[24, 10, 0, 0, 198, 18, 0, 1];
    let mut cfg = config();
    cfg.subnets[0].options.values.insert(121, routes.to_vec());
    let h = Harness::new(cfg.clone());
    // Not enabled: 249 absent.
    assert!(option(&h.peek(&Pkt::discover(1).prl(&[121, 249])), 249).is_none());
    cfg.subnets[0].options.mirror_routes_to_249 = Some(true);
    let h = Harness::new(cfg);
    let d = h.peek(&Pkt::discover(1).prl(&[249, 121]));
    assert_eq!(option(&d, 249), Some(routes));
    assert_eq!(option(&d, 121), Some(routes));
    assert_eq!(codes(&d)[5..7], [249, 121]);
    // Not requested: not sent.
    assert!(option(&h.peek(&Pkt::discover(1).prl(&[121])), 249).is_none());
}

#[test]
fn device_override_and_reservation_precedence() {
    let mut cfg = config();
    cfg.device_overrides
        .insert(hw(1), opts(&[(code::DNS, &[1, 1, 1, 1]), (66, b"tftp-o")]));
    cfg.device_overrides
        .insert(hw(2), opts(&[(code::DNS, &[1, 1, 1, 1]), (66, b"tftp-o")]));
    let mut r = res_mac(2, a(30));
    r.options = opts(&[(code::DNS, &[9, 9, 9, 9])]);
    r.options.boot_file = Some("res.efi".into());
    r.hostname = Some("printer".into());
    cfg.subnets[0].reservations = vec![r];
    let h = Harness::new(cfg);
    // Override beats subnet.
    let d = h.peek(&Pkt::discover(1));
    assert_eq!(option(&d, code::DNS), Some(&[1, 1, 1, 1][..]));
    assert_eq!(option(&d, 66), Some(&b"tftp-o"[..]));
    assert_eq!(option(&d, code::HOSTNAME), None);
    // Reservation beats override; override still fills what the reservation lacks.
    let d = h.peek(&Pkt::discover(2));
    assert_eq!(offered_ip(&d), a(30));
    assert_eq!(option(&d, code::DNS), Some(&[9, 9, 9, 9][..]));
    assert_eq!(option(&d, 66), Some(&b"tftp-o"[..]));
    assert_eq!(option(&d, code::HOSTNAME), Some(&b"printer"[..]));
    assert_eq!(d.reply().unwrap().packet.file, b"res.efi");
    assert_eq!(d.changes[0].lease.hostname.as_deref(), Some("printer"));
    // Hostname is always sent when configured, even if not requested.
    let d = h.peek(&Pkt::discover(2).prl(&[3]));
    assert!(codes(&d).contains(&code::HOSTNAME));
}

#[test]
fn event_filled_for_drops_too() {
    let h = Harness::default_config();
    let mut p = Pkt::discover(1);
    p.0.op = BOOTREPLY;
    let d = h.peek(&p);
    assert_eq!(d.event.xid, p.0.xid);
    assert_eq!(d.event.hwaddr, hw(1));
    assert_eq!(d.event.received, Some(MessageType::Discover));
    assert_eq!(d.event.sent, None);
    let d = h.peek(&Pkt::discover(1).opt(code::HOSTNAME, b"h1"));
    assert_eq!(d.event.ip, Some(a(10)));
    assert_eq!(d.event.sent, Some(MessageType::Offer));
    assert_eq!(d.event.hostname.as_deref(), Some("h1"));
    assert_eq!(d.event.drop, None);
}

#[test]
fn decide_is_deterministic() {
    let mut h = Harness::default_config();
    h.bind(1);
    let p = Pkt::discover(2).prl(&[1, 3, 6]);
    let (x, y) = (h.peek(&p), h.peek(&p));
    assert_eq!(format!("{x:?}"), format!("{y:?}"));
}
