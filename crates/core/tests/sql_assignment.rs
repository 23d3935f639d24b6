//! `decide` with an SQL assignment (issue 5): io runs the chain before the engine and puts the
//! row in `Request::assignment`; core must place it like a reservation and layer its options.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::*;
use leased_core::{Assignment, Decision, LeaseState, Request, decide};
use leased_wire::{MessageType, code};

fn row(cols: &[(&str, &str)]) -> Assignment {
    let cols: Vec<(String, Option<String>)> = cols
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
    Assignment::from_columns(&cols).unwrap()
}

/// A pydhcpdb `users` row: ip .50 (outside the pool .10–.20), its own mask, router, DNS.
fn users_row() -> Assignment {
    row(&[
        ("ip", "198.18.0.50"),
        ("mask", "255.255.255.128"),
        ("router", "198.18.0.2"),
        ("dns", "9.9.9.9, 198.18.0.53"),
        ("lease_time", "900"),
        ("hostname", "cpe-50"),
    ])
}

fn with(h: &Harness, p: &Pkt, a: &Assignment) -> Request {
    let mut r = h.request(p);
    r.assignment = Some(a.clone());
    r
}

fn go(h: &mut Harness, p: &Pkt, a: &Assignment) -> Decision {
    let d = decide(&with(h, p, a), &h.plan, &h.table, h.now);
    h.table.apply(&d.changes);
    d
}

#[test]
fn assignment_is_offered_and_acked_with_its_options() {
    let mut h = Harness::default_config();
    let asg = users_row();
    let d = go(&mut h, &Pkt::discover(1), &asg);
    assert_eq!(offered_ip(&d), asg.ip);
    assert_eq!(
        option(&d, code::SUBNET_MASK),
        Some(&[255, 255, 255, 128][..])
    );
    assert_eq!(option(&d, code::ROUTER), Some(&[198, 18, 0, 2][..]));
    assert_eq!(
        option(&d, code::DNS),
        Some(&[9, 9, 9, 9, 198, 18, 0, 53][..])
    );
    let d = go(&mut h, &Pkt::select(1, a(1), asg.ip), &asg);
    assert_eq!(sent(&d), Some(MessageType::Ack), "{d:?}");
    assert_eq!(d.reply().unwrap().packet.yiaddr, asg.ip);
    assert_eq!(
        option(&d, code::LEASE_TIME),
        Some(&900u32.to_be_bytes()[..])
    );
    let l = h.table.by_ip(asg.ip).unwrap();
    assert_eq!(l.state, LeaseState::Bound);
    assert_eq!(l.expires.0, h.now.0 + 900);
}

#[test]
fn without_assignment_the_pool_serves() {
    let mut h = Harness::default_config();
    let ip = offered_ip(&h.send(&Pkt::discover(1)));
    assert!((10..=20).contains(&ip.octets()[3]), "{ip}");
}

#[test]
fn assignment_outside_every_subnet_of_the_link_falls_back_to_the_pool() {
    let mut h = Harness::default_config();
    let asg = row(&[("ip", "203.0.113.7")]);
    let d = go(&mut h, &Pkt::discover(1), &asg);
    let ip = offered_ip(&d);
    assert!((10..=20).contains(&ip.octets()[3]), "{ip}");
}

#[test]
fn request_for_another_address_than_assigned_is_naked() {
    let mut h = Harness::default_config();
    let asg = users_row();
    // The client remembers a pool address; the database now says .50.
    let d = go(&mut h, &Pkt::reboot(1, a(12)), &asg);
    assert_eq!(sent(&d), Some(MessageType::Nak), "{d:?}");
}

#[test]
fn assigned_address_held_by_another_client_is_not_given_twice() {
    let mut h = Harness::default_config();
    let asg = users_row();
    // Client 2 holds .50 (e.g. the row changed owners while its lease runs).
    let d = go(&mut h, &Pkt::discover(2), &asg);
    let d2 = go(&mut h, &Pkt::select(2, a(1), offered_ip(&d)), &asg);
    assert_eq!(sent(&d2), Some(MessageType::Ack));
    let d = go(&mut h, &Pkt::discover(1), &asg);
    if let Some(r) = d.reply() {
        assert_ne!(r.packet.yiaddr, asg.ip, "{d:?}");
    }
}

#[test]
fn assignment_never_hands_out_network_broadcast_or_router() {
    for bad in ["198.18.0.0", "198.18.0.255", "198.18.0.1"] {
        let mut h = Harness::default_config();
        let asg = row(&[("ip", bad)]);
        let d = go(&mut h, &Pkt::discover(1), &asg);
        if let Some(r) = d.reply() {
            assert_ne!(r.packet.yiaddr, asg.ip, "{bad}: {d:?}");
        }
    }
}

#[test]
fn renewal_keeps_the_assignment() {
    let mut h = Harness::default_config();
    let asg = users_row();
    let d = go(&mut h, &Pkt::discover(1), &asg);
    let d = go(&mut h, &Pkt::select(1, a(1), offered_ip(&d)), &asg);
    assert_eq!(sent(&d), Some(MessageType::Ack));
    h.advance(500);
    let d = go(&mut h, &Pkt::renew(1, asg.ip), &asg);
    assert_eq!(sent(&d), Some(MessageType::Ack), "{d:?}");
    assert_eq!(
        d.reply().unwrap().packet.yiaddr,
        Ipv4Addr::new(198, 18, 0, 50)
    );
}

/// `[sql_assignment] owner` of a config otherwise the default one.
fn with_owner(owner: &str) -> Harness {
    let text = format!(
        "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.20\"]\n\
         [sql_assignment]\nurl = \"postgres://db/x\"\nowner = \"{owner}\"\n\
         [[sql_assignment.queries]]\nsql = \"SELECT ip FROM users WHERE mac = :ClientMacAddress\"\n"
    );
    let loaded = leased_config::load_str(&text, "t.toml", leased_config::Format::Toml)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut c = config();
    c.sql_assignment_owner = loaded.network.sql_assignment_owner;
    Harness::new(c)
}

#[test]
fn owner_port_moves_the_rows_address_to_the_device_now_on_the_port() {
    let asg = users_row();
    // The old device on the port (client 2) holds the row's address.
    let mut h = with_owner("port");
    let d = go(&mut h, &Pkt::discover(2), &asg);
    assert_eq!(offered_ip(&d), asg.ip);
    let d = go(&mut h, &Pkt::select(2, a(1), asg.ip), &asg);
    assert_eq!(sent(&d), Some(MessageType::Ack));
    // The new device (client 1) gets the same row: the address is its now.
    let d = go(&mut h, &Pkt::discover(1), &asg);
    assert_eq!(offered_ip(&d), asg.ip, "{d:?}");
    let d = go(&mut h, &Pkt::select(1, a(1), asg.ip), &asg);
    assert_eq!(sent(&d), Some(MessageType::Ack), "{d:?}");
    let l = h.table.by_ip(asg.ip).unwrap();
    assert_eq!(l.hwaddr, hw(1), "the binding moved to the new device");

    // With owner = "lease" (the default) the old device keeps it.
    let mut h = with_owner("lease");
    let _ = go(&mut h, &Pkt::discover(2), &asg);
    let _ = go(&mut h, &Pkt::select(2, a(1), asg.ip), &asg);
    let d = go(&mut h, &Pkt::discover(1), &asg);
    assert_ne!(offered_ip(&d), asg.ip, "{d:?}");
    let e = leased_config::load_str(
        "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.20\"]\n\
         [sql_assignment]\nurl = \"postgres://db/x\"\nowner = \"switch\"\n\
         [[sql_assignment.queries]]\nsql = \"SELECT ip FROM users\"\n",
        "t.toml",
        leased_config::Format::Toml,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("t.toml:6:") && e.contains("sql_assignment.owner"),
        "{e}"
    );
}
