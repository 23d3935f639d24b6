//! The engine's HA seam, driven by hand: with the partner gate on, an ACK leaves only once its
//! lease is durable here *and* acknowledged by the partner; with it off (partner down) at once;
//! leases the partner sent, merged through `handle_external`, are seen by decisions.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use leased_config::{Format, load_str};
use leased_core::{ClientId, HwAddr, Lease, LeaseState, LeaseTable, Plan, Request, Timestamp};
use leased_engine::{CommitOutcome, Effect, Engine, Inbound, Now, Origin};
use leased_wire::{BOOTREQUEST, MessageType, Options, Packet, code};

const SERVER: [u8; 4] = [198, 18, 0, 1];

fn engine() -> Engine {
    let text = "[server]\nlease_time = 300\nserver_id = \"198.18.0.1\"\n\
                [[subnets]]\nnetwork = \"198.18.0.0/24\"\ninterface = \"eth0\"\n\
                pools = [\"198.18.0.10-198.18.0.20\"]\n";
    let config = load_str(text, "t.toml", Format::Toml).unwrap();
    Engine::new(
        Arc::new(Plan::new(config.network.clone())),
        Arc::new(config.engine_settings()),
        LeaseTable::default(),
    )
}

fn at(secs: u64) -> Now {
    Now {
        wall: Timestamp(1_000_000 + secs),
        mono: Duration::from_secs(secs),
    }
}

fn packet(mac: u8, t: MessageType, extra: &[(u8, Vec<u8>)]) -> Inbound {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, mac]);
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![t.code()]);
    for (k, v) in extra {
        options.set(*k, v.clone());
    }
    let p = Packet {
        op: BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid: u32::from(mac),
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
    };
    Inbound {
        req: Request::new(p, Some("eth0".into()), Some(Ipv4Addr::from(SERVER)), true),
        origin: Origin {
            link: 0,
            src: None,
            local: None,
        },
        received: Duration::ZERO,
    }
}

fn offer(e: &mut Engine, mac: u8, now: Now) -> Ipv4Addr {
    e.handle_packet(now, packet(mac, MessageType::Discover, &[]));
    let t = e.poll_transmit().expect("the OFFER leaves at once");
    assert_eq!(t.reply.packet.message_type(), Some(MessageType::Offer));
    t.reply.packet.yiaddr
}

fn request(e: &mut Engine, mac: u8, ip: Ipv4Addr, now: Now) -> leased_engine::Commit {
    e.handle_packet(
        now,
        packet(
            mac,
            MessageType::Request,
            &[
                (code::REQUESTED_IP, ip.octets().to_vec()),
                (code::SERVER_ID, SERVER.to_vec()),
            ],
        ),
    );
    e.poll_commit().expect("an ACK needs a commit")
}

fn effects(e: &mut Engine) -> Vec<Effect> {
    std::iter::from_fn(|| e.poll_effect()).collect()
}

#[test]
fn no_ack_leaves_before_the_partner_acknowledges() {
    let mut e = engine();
    e.set_partner_gate(true);
    let ip = offer(&mut e, 1, at(0));
    let c = request(&mut e, 1, ip, at(1));
    e.handle_commit(c.id, CommitOutcome::Durable);
    assert!(e.poll_transmit().is_none(), "ACK before the partner's copy");
    assert_eq!(e.awaiting_partner(), 1);
    e.handle_partner_ack(c.id);
    let t = e.poll_transmit().expect("the ACK once both copies exist");
    assert_eq!(t.reply.packet.message_type(), Some(MessageType::Ack));
    assert_eq!(e.awaiting_partner(), 0);
}

#[test]
fn a_partner_ack_before_the_local_commit_waits_for_the_local_commit() {
    let mut e = engine();
    e.set_partner_gate(true);
    let ip = offer(&mut e, 2, at(0));
    let c = request(&mut e, 2, ip, at(1));
    e.handle_partner_ack(c.id);
    assert!(e.poll_transmit().is_none(), "ACK before the local copy");
    e.handle_commit(c.id, CommitOutcome::Durable);
    assert!(e.poll_transmit().is_some());
}

#[test]
fn a_failed_local_commit_sends_nothing_whatever_the_partner_says() {
    let mut e = engine();
    e.set_partner_gate(true);
    let ip = offer(&mut e, 3, at(0));
    let c = request(&mut e, 3, ip, at(1));
    effects(&mut e);
    e.handle_partner_ack(c.id);
    e.handle_commit(
        c.id,
        CommitOutcome::Failed {
            error: "disk full".into(),
            retried: false,
        },
    );
    assert!(e.poll_transmit().is_none());
    assert!(
        effects(&mut e)
            .iter()
            .any(|x| matches!(x, Effect::CommitFailed { .. }))
    );
}

#[test]
fn in_partner_down_an_ack_leaves_at_once_and_waiting_ones_are_decided_again() {
    let mut e = engine();
    // Gate off from the start (no HA, or partner down): as without HA.
    let ip = offer(&mut e, 4, at(0));
    let c = request(&mut e, 4, ip, at(1));
    e.handle_commit(c.id, CommitOutcome::Durable);
    assert!(e.poll_transmit().is_some(), "partner-down: at once");

    // Gate on, two ACKs wait (one durable here, one not yet); the partner becomes unreachable.
    e.set_partner_gate(true);
    let ip5 = offer(&mut e, 5, at(2));
    let c5 = request(&mut e, 5, ip5, at(3));
    let ip6 = offer(&mut e, 6, at(2));
    let c6 = request(&mut e, 6, ip6, at(3));
    e.handle_commit(c5.id, CommitOutcome::Durable);
    assert!(e.poll_transmit().is_none());
    effects(&mut e);
    e.set_partner_gate(false);
    e.handle_commit(c6.id, CommitOutcome::Durable);
    e.handle_partner_ack(c6.id);
    assert!(
        e.poll_transmit().is_none(),
        "decided while the partner could bind the same address: never sent"
    );
    let failed = effects(&mut e)
        .iter()
        .filter(|x| matches!(x, Effect::CommitFailed { .. }))
        .count();
    assert_eq!(failed, 2);
    // Their clients retry: decided again, ACKed as soon as durable here.
    let c = request(&mut e, 5, ip5, at(4));
    e.handle_commit(c.id, CommitOutcome::Durable);
    assert_eq!(e.poll_transmit().unwrap().reply.packet.yiaddr, ip5);
}

#[test]
fn a_lost_partner_copy_means_the_ack_never_leaves() {
    let mut e = engine();
    e.set_partner_gate(true);
    let ip = offer(&mut e, 7, at(0));
    let c = request(&mut e, 7, ip, at(1));
    e.handle_commit(c.id, CommitOutcome::Durable);
    effects(&mut e);
    e.handle_partner_lost(c.id);
    e.handle_partner_ack(c.id);
    assert!(e.poll_transmit().is_none());
    e.set_partner_gate(false);
    assert!(
        effects(&mut e)
            .iter()
            .any(|x| matches!(x, Effect::CommitFailed { error, .. } if error.contains("partner")))
    );
    // Its client retries: the renewal is a new commit, and it leaves.
    let c = request(&mut e, 7, ip, at(2));
    e.handle_commit(c.id, CommitOutcome::Durable);
    assert!(e.poll_transmit().is_some());
}

#[test]
fn partner_updates_through_handle_external_are_seen_by_decisions() {
    let mut e = engine();
    let lease = |i: u8| Lease {
        ip: Ipv4Addr::new(198, 18, 0, 10 + i),
        client_id: ClientId(vec![1, 2, 0, 0, 0, 1, i]),
        hwaddr: HwAddr(vec![2, 0, 0, 0, 1, i]),
        hostname: None,
        state: LeaseState::Bound,
        starts: Timestamp(1_000_000),
        expires: Timestamp(1_000_300),
        first_seen: Timestamp(1_000_000),
        circuit_id: None,
        remote_id: None,
        subscriber_id: None,
    };
    // The partner bound .10 to .19: only .20 is left for our client.
    let taken = e.handle_external(at(0), (0..10).map(lease).collect(), false);
    assert_eq!(
        taken.len(),
        10,
        "every news lease is taken, for the local store"
    );
    assert_eq!(offer(&mut e, 9, at(1)), Ipv4Addr::new(198, 18, 0, 20));
    // The same update again is no news: nothing to store twice.
    assert!(e.handle_external(at(2), vec![lease(0)], false).is_empty());
    // A later client finds the pool exhausted rather than a partner's address.
    e.handle_packet(at(3), packet(10, MessageType::Discover, &[]));
    assert!(e.poll_transmit().is_none());
}
