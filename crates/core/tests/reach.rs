//! `decide` for rapid commit (RFC 4039) and IPv6-only preferred (RFC 8925): which DISCOVER
//! gets an ACK, which reply carries option 108 and with what, and what is (not) bound.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use leased_core::model::{ClassMatch, ClientClass, Ipv6Only, Ipv6OnlyAddress, OptionSet};
use leased_core::{DropReason, Durability, LeaseState, Route};
use leased_wire::{MessageType, code};

/// The lab config with rapid commit on in the direct subnet.
fn rapid() -> Harness {
    let mut cfg = config();
    cfg.subnets[0].rapid_commit = true;
    Harness::new(cfg)
}

fn with_rc(p: Pkt) -> Pkt {
    p.opt(code::RAPID_COMMIT, &[])
}

/// Subnet 0 with IPv6-only preferred, V6ONLY_WAIT `wait`, offering `address`.
fn v6only(wait: u32, address: Ipv6OnlyAddress) -> Harness {
    let mut cfg = config();
    cfg.subnets[0].ipv6_only = Some(Ipv6Only { wait, address });
    Harness::new(cfg)
}

/// A DISCOVER asking for DNS and option 108.
fn asks_108(client: u8) -> Pkt {
    Pkt::discover(client).prl(&[code::DNS, code::IPV6_ONLY_PREFERRED, code::ROUTER])
}

// ----- RFC 4039 ---------------------------------------------------------------------------

#[test]
fn rapid_commit_discover_gets_an_ack_whose_lease_must_be_durable_first() {
    let mut h = rapid();
    let d = h.send(&with_rc(Pkt::discover(1)));
    assert_eq!(sent(&d), Some(MessageType::Ack), "{d:?}");
    let r = d.reply().unwrap();
    let ip = r.packet.yiaddr;
    assert!((a(10)..=a(20)).contains(&ip), "{ip}");
    assert_eq!(option(&d, code::RAPID_COMMIT), Some(&[][..]));
    assert_eq!(
        option(&d, code::LEASE_TIME),
        Some(&3600u32.to_be_bytes()[..])
    );
    assert!(option(&d, code::SERVER_ID).is_some());
    assert_eq!(r.packet.ciaddr, std::net::Ipv4Addr::UNSPECIFIED);
    // Delivered like an OFFER would be (no ciaddr yet).
    assert!(matches!(r.route, Route::Hardware { .. }), "{:?}", r.route);
    // The binding, committed before the ACK leaves, exactly as for a REQUEST.
    assert!(d.needs_durability());
    let bound: Vec<_> = d
        .changes
        .iter()
        .filter(|c| c.lease.state == LeaseState::Bound)
        .collect();
    assert_eq!(bound.len(), 1, "{:?}", d.changes);
    assert_eq!(bound[0].durability, Durability::BeforeReply);
    assert_eq!(bound[0].lease.ip, ip);
    assert_eq!(h.table.by_ip(ip).unwrap().state, LeaseState::Bound);
    // The client renews as usual; that ACK is a plain ACK.
    h.advance(100);
    let d = h.send(&Pkt::renew(1, ip));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    assert!(option(&d, code::RAPID_COMMIT).is_none());
}

#[test]
fn without_the_setting_or_without_option_80_a_discover_is_offered() {
    // Option 80 to a subnet without rapid commit.
    let h = Harness::default_config();
    let d = h.peek(&with_rc(Pkt::discover(1)));
    assert_eq!(sent(&d), Some(MessageType::Offer));
    assert!(option(&d, code::RAPID_COMMIT).is_none());
    assert!(!d.needs_durability());
    // Rapid commit on, the client does not ask.
    let h = rapid();
    let d = h.peek(&Pkt::discover(1));
    assert_eq!(sent(&d), Some(MessageType::Offer));
    assert!(option(&d, code::RAPID_COMMIT).is_none());
    assert!(
        d.changes
            .iter()
            .all(|c| c.lease.state == LeaseState::Offered)
    );
    // The relayed subnet has no rapid commit, though the direct one does.
    let d = h.peek(&with_rc(Pkt::discover(2).giaddr(ip("198.18.1.1"))));
    assert_eq!(sent(&d), Some(MessageType::Offer));
}

#[test]
fn rapid_commit_keeps_every_refusal_of_an_offer() {
    // Banned: nothing.
    let mut cfg = config();
    cfg.subnets[0].rapid_commit = true;
    cfg.banned_macs.insert(hw(9), Default::default());
    let h = Harness::new(cfg);
    let d = h.peek(&with_rc(Pkt::discover(9)));
    assert_eq!(d.drop_reason(), Some(DropReason::BannedClient));
    assert!(d.changes.is_empty());
    // Pool exhausted: nothing, never a NAK.
    let mut h = rapid();
    for c in 1..=11 {
        let d = h.send(&with_rc(Pkt::discover(c)));
        assert_eq!(sent(&d), Some(MessageType::Ack), "client {c}");
    }
    let d = h.send(&with_rc(Pkt::discover(12)));
    assert_eq!(d.drop_reason(), Some(DropReason::PoolExhausted));
    assert!(d.changes.is_empty());
    // A REQUEST for someone else's address is still NAKed.
    let taken = h
        .table
        .by_client(&leased_core::ClientId(vec![1, 2, 0, 0, 0, 0, 1]));
    let taken = taken.unwrap().ip;
    let d = h.peek(&Pkt::reboot(12, taken));
    assert_eq!(sent(&d), Some(MessageType::Nak));
}

#[test]
fn rapid_commit_counts_against_the_per_circuit_cap() {
    let mut cfg = config();
    cfg.subnets[1].rapid_commit = true;
    cfg.subnets[1].max_leases_per_circuit_id = Some(1);
    let mut h = Harness::new(cfg);
    // circuit-id "port1", remote-id "sw1"
    let o82 = [1, 5, b'p', b'o', b'r', b't', b'1', 2, 3, b's', b'w', b'1'];
    let from_port = |c: u8| {
        with_rc(Pkt::discover(c))
            .giaddr(ip("198.18.1.1"))
            .opt(code::RELAY_AGENT_INFO, &o82)
    };
    let d = h.send(&from_port(1));
    assert_eq!(sent(&d), Some(MessageType::Ack), "{d:?}");
    assert!(matches!(d.reply().unwrap().route, Route::Relay { .. }));
    // A second MAC on the same port: the binding of the first counts.
    let d = h.send(&from_port(2));
    assert_eq!(d.drop_reason(), Some(DropReason::CircuitLimit), "{d:?}");
    assert!(d.changes.is_empty());
    // The first client again: its own binding, renewed.
    let d = h.send(&from_port(1));
    assert_eq!(sent(&d), Some(MessageType::Ack));
}

#[test]
fn rapid_commit_lets_go_of_the_clients_earlier_offer() {
    let mut cfg = config();
    cfg.subnets[0].rapid_commit = true;
    let mut h = Harness::new(cfg);
    let first = offered_ip(&h.send(&Pkt::discover(1)));
    let d = h.send(&with_rc(Pkt::discover(1)));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    assert_eq!(d.reply().unwrap().packet.yiaddr, first, "its own offer");
    assert_eq!(h.table.by_ip(first).unwrap().state, LeaseState::Bound);
}

#[test]
fn option_80_and_108_are_never_sent_from_configured_values() {
    let mut cfg = config();
    cfg.subnets[0]
        .options
        .values
        .insert(code::RAPID_COMMIT, Vec::new());
    cfg.subnets[0]
        .options
        .values
        .insert(code::IPV6_ONLY_PREFERRED, vec![0, 0, 7, 8]);
    let h = Harness::new(cfg);
    // No parameter request list: every configured option is sent, but not these.
    let d = h.peek(&Pkt::discover(1));
    assert!(option(&d, code::RAPID_COMMIT).is_none());
    assert!(option(&d, code::IPV6_ONLY_PREFERRED).is_none());
    let d = h.peek(&asks_108(1));
    assert!(option(&d, code::IPV6_ONLY_PREFERRED).is_none());
}

// ----- RFC 8925 ---------------------------------------------------------------------------

#[test]
fn a_client_that_asks_for_108_is_offered_no_address_and_nothing_is_taken() {
    let h = v6only(1800, Ipv6OnlyAddress::None);
    let d = h.peek(&asks_108(1));
    assert_eq!(sent(&d), Some(MessageType::Offer), "{d:?}");
    let r = d.reply().unwrap();
    assert_eq!(r.packet.yiaddr, std::net::Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        option(&d, code::IPV6_ONLY_PREFERRED),
        Some(&1800u32.to_be_bytes()[..])
    );
    // In the client's order.
    let c = codes(&d);
    let at = |x| c.iter().position(|y| *y == x).unwrap();
    assert!(at(code::DNS) < at(code::IPV6_ONLY_PREFERRED));
    assert!(at(code::IPV6_ONLY_PREFERRED) < at(code::ROUTER));
    // No address, so no lease times either, and nothing changes.
    assert!(option(&d, code::LEASE_TIME).is_none());
    assert!(d.changes.is_empty(), "{:?}", d.changes);
    assert_eq!(d.event.ip, None);
    assert_eq!(r.route, Route::Broadcast);
}

#[test]
fn a_client_that_sent_auto_configure_is_told_not_to_with_no_address() {
    let h = v6only(1800, Ipv6OnlyAddress::None);
    let d = h.peek(&asks_108(1).opt(code::AUTO_CONFIGURE, &[1]));
    assert!(d.reply().unwrap().packet.yiaddr.is_unspecified());
    assert_eq!(option(&d, code::AUTO_CONFIGURE), Some(&[0u8][..]));
    // Not without the client's option, and never beside an address.
    let d = h.peek(&asks_108(1));
    assert!(option(&d, code::AUTO_CONFIGURE).is_none());
    let d = h.peek(&Pkt::discover(1).opt(code::AUTO_CONFIGURE, &[1]));
    assert!(!d.reply().unwrap().packet.yiaddr.is_unspecified());
    assert!(option(&d, code::AUTO_CONFIGURE).is_none());
}

#[test]
fn option_108_only_to_clients_that_list_it() {
    let h = v6only(1800, Ipv6OnlyAddress::None);
    // No option 55 at all.
    let d = h.peek(&Pkt::discover(1));
    assert_eq!(sent(&d), Some(MessageType::Offer));
    assert!((a(10)..=a(20)).contains(&d.reply().unwrap().packet.yiaddr));
    assert!(option(&d, code::IPV6_ONLY_PREFERRED).is_none());
    // An option 55 without 108.
    let d = h.peek(&Pkt::discover(1).prl(&[code::DNS, code::ROUTER]));
    assert!((a(10)..=a(20)).contains(&d.reply().unwrap().packet.yiaddr));
    assert!(option(&d, code::IPV6_ONLY_PREFERRED).is_none());
    // A subnet without the setting: a client asking for 108 gets an address and no 108.
    let d = h.peek(&asks_108(2).giaddr(ip("198.18.1.1")));
    assert!(!d.reply().unwrap().packet.yiaddr.is_unspecified());
    assert!(option(&d, code::IPV6_ONLY_PREFERRED).is_none());
}

#[test]
fn with_the_lease_policy_the_address_comes_with_108_in_offer_and_ack() {
    let mut h = v6only(600, Ipv6OnlyAddress::Lease);
    let d = h.send(&asks_108(1));
    let ip = offered_ip(&d);
    assert!((a(10)..=a(20)).contains(&ip));
    assert_eq!(
        option(&d, code::IPV6_ONLY_PREFERRED),
        Some(&600u32.to_be_bytes()[..])
    );
    let d = h.send(&Pkt::select(1, a(1), ip).prl(&[code::IPV6_ONLY_PREFERRED]));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    assert_eq!(
        option(&d, code::IPV6_ONLY_PREFERRED),
        Some(&600u32.to_be_bytes()[..])
    );
}

#[test]
fn an_init_reboot_request_is_acked_with_108_so_the_client_can_stop() {
    // RFC 8925 §3.2: a client in INIT-REBOOT that gets 108 in the ACK stops using DHCPv4.
    let mut h = v6only(1800, Ipv6OnlyAddress::None);
    let ip = h.bind(1);
    let d = h.send(&Pkt::reboot(1, ip).prl(&[code::IPV6_ONLY_PREFERRED]));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    assert_eq!(
        option(&d, code::IPV6_ONLY_PREFERRED),
        Some(&1800u32.to_be_bytes()[..])
    );
    // A NAK never carries it.
    let d = h.peek(&Pkt::reboot(2, ip).prl(&[code::IPV6_ONLY_PREFERRED]));
    assert_eq!(sent(&d), Some(MessageType::Nak));
    assert!(option(&d, code::IPV6_ONLY_PREFERRED).is_none());
}

#[test]
fn a_class_setting_wins_over_the_subnets() {
    let mut cfg = config();
    cfg.subnets[0].ipv6_only = Some(Ipv6Only {
        wait: 1800,
        address: Ipv6OnlyAddress::None,
    });
    cfg.classes.push(ClientClass {
        name: "phones".into(),
        matcher: ClassMatch {
            mac_prefix: Some(vec![0x02, 0, 0, 0, 0, 7]),
            ..ClassMatch::default()
        },
        pool: None,
        options: OptionSet::default(),
        ipv6_only: Some(Ipv6Only {
            wait: 300,
            address: Ipv6OnlyAddress::Lease,
        }),
    });
    cfg.classes.push(ClientClass {
        name: "v6 tvs".into(),
        matcher: ClassMatch {
            mac_prefix: Some(vec![0x02, 0, 0, 0, 0, 8]),
            ..ClassMatch::default()
        },
        pool: None,
        options: OptionSet::default(),
        ipv6_only: None,
    });
    let h = Harness::new(cfg);
    let d = h.peek(&asks_108(7));
    assert!(!d.reply().unwrap().packet.yiaddr.is_unspecified());
    assert_eq!(
        option(&d, code::IPV6_ONLY_PREFERRED),
        Some(&300u32.to_be_bytes()[..])
    );
    // A class without its own setting: the subnet's.
    let d = h.peek(&asks_108(8));
    assert!(d.reply().unwrap().packet.yiaddr.is_unspecified());
    assert_eq!(
        option(&d, code::IPV6_ONLY_PREFERRED),
        Some(&1800u32.to_be_bytes()[..])
    );
}

#[test]
fn rapid_commit_and_108_without_an_address_is_a_plain_offer_of_nothing() {
    let mut cfg = config();
    cfg.subnets[0].rapid_commit = true;
    cfg.subnets[0].ipv6_only = Some(Ipv6Only {
        wait: 900,
        address: Ipv6OnlyAddress::None,
    });
    let h = Harness::new(cfg.clone());
    let d = h.peek(&with_rc(asks_108(1)));
    assert_eq!(sent(&d), Some(MessageType::Offer));
    assert!(d.reply().unwrap().packet.yiaddr.is_unspecified());
    assert!(option(&d, code::RAPID_COMMIT).is_none());
    assert!(d.changes.is_empty());
    // With the lease policy: the rapid ACK carries both.
    cfg.subnets[0].ipv6_only = Some(Ipv6Only {
        wait: 900,
        address: Ipv6OnlyAddress::Lease,
    });
    let h = Harness::new(cfg);
    let d = h.peek(&with_rc(asks_108(1)));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    assert!(option(&d, code::RAPID_COMMIT).is_some());
    assert_eq!(
        option(&d, code::IPV6_ONLY_PREFERRED),
        Some(&900u32.to_be_bytes()[..])
    );
}

#[test]
fn a_banned_client_asking_for_108_still_gets_nothing() {
    let mut cfg = config();
    cfg.subnets[0].ipv6_only = Some(Ipv6Only {
        wait: 1800,
        address: Ipv6OnlyAddress::None,
    });
    cfg.banned_macs.insert(hw(3), Default::default());
    let h = Harness::new(cfg);
    let d = h.peek(&asks_108(3));
    assert_eq!(d.drop_reason(), Some(DropReason::BannedClient));
}
