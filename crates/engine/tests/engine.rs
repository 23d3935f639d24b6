//! The engine's contract, driven by hand on a virtual clock: which reply leaves after which
//! commit, which lease events are emitted when, what a conflict check does, what a limit drops.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use leased_config::{Format, load_str};
use leased_core::{LeaseState, LeaseTable, Plan, Request, Timestamp};
use leased_engine::{
    CommitOutcome, DropReason, Effect, Engine, Inbound, LeaseEventKind, Now, Origin, ProbeAnswer,
    ProbeVia,
};
use leased_wire::{BOOTREQUEST, MessageType, Options, Packet, code};

const SERVER: [u8; 4] = [198, 18, 0, 1];

fn engine(extra: &str) -> Engine {
    let text = format!(
        "[server]\nlease_time = 300\nserver_id = \"198.18.0.1\"\n{extra}\n\
         [[subnets]]\nnetwork = \"198.18.0.0/24\"\ninterface = \"eth0\"\n\
         pools = [\"198.18.0.10-198.18.0.20\"]\n"
    );
    let config = load_str(&text, "t.toml", Format::Toml).unwrap();
    let plan = Plan::new(config.network.clone());
    Engine::new(
        Arc::new(plan),
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

fn request(mac: u8, ip: Ipv4Addr) -> Inbound {
    packet(
        mac,
        MessageType::Request,
        &[
            (code::REQUESTED_IP, ip.octets().to_vec()),
            (code::SERVER_ID, SERVER.to_vec()),
        ],
    )
}

fn effects(e: &mut Engine) -> Vec<Effect> {
    std::iter::from_fn(|| e.poll_effect()).collect()
}

fn lease_events(e: &[Effect]) -> Vec<LeaseEventKind> {
    e.iter()
        .filter_map(|x| match x {
            Effect::Lease(ev) => Some(ev.kind),
            _ => None,
        })
        .collect()
}

/// DISCOVER → OFFER (at once, nothing to wait for); returns the offered address.
fn offer(e: &mut Engine, mac: u8, now: Now) -> Ipv4Addr {
    e.handle_packet(now, packet(mac, MessageType::Discover, &[]));
    assert!(e.poll_commit().is_none(), "an OFFER waits for no commit");
    let t = e.poll_transmit().expect("the OFFER leaves at once");
    assert_eq!(t.reply.packet.message_type(), Some(MessageType::Offer));
    t.reply.packet.yiaddr
}

#[test]
fn an_ack_leaves_only_once_its_commit_is_durable() {
    let mut e = engine("");
    let ip = offer(&mut e, 1, at(0));
    effects(&mut e);
    e.handle_packet(at(1), request(1, ip));
    assert!(e.poll_transmit().is_none(), "no ACK before the commit");
    let c = e.poll_commit().unwrap();
    assert_eq!(c.leases[0].ip, ip);
    assert_eq!(c.leases[0].state, LeaseState::Bound);
    assert!(
        lease_events(&effects(&mut e)).is_empty(),
        "nothing recorded yet"
    );
    e.handle_commit(c.id, CommitOutcome::Durable);
    let t = e.poll_transmit().expect("the ACK after its commit");
    assert_eq!(t.reply.packet.message_type(), Some(MessageType::Ack));
    assert_eq!(lease_events(&effects(&mut e)), [LeaseEventKind::AckNew]);

    // The renewal is a renewal.
    e.handle_packet(at(2), request(1, ip));
    let c = e.poll_commit().unwrap();
    e.handle_commit(c.id, CommitOutcome::Durable);
    assert!(e.poll_transmit().is_some());
    assert_eq!(lease_events(&effects(&mut e)), [LeaseEventKind::Renew]);
}

#[test]
fn a_failed_or_contested_commit_sends_nothing_and_records_nothing() {
    let mut e = engine("");
    let ip = offer(&mut e, 2, at(0));
    e.handle_packet(at(1), request(2, ip));
    let c = e.poll_commit().unwrap();
    effects(&mut e);
    e.handle_commit(
        c.id,
        CommitOutcome::Failed {
            error: "disk full".into(),
            retried: false,
        },
    );
    assert!(e.poll_transmit().is_none());
    let fx = effects(&mut e);
    assert!(lease_events(&fx).is_empty());
    assert!(matches!(&fx[..], [Effect::CommitFailed { error, .. }] if error == "disk full"));

    // Another server's client holds the address: partial success that excludes ours.
    e.handle_packet(at(2), request(2, ip));
    let c = e.poll_commit().unwrap();
    effects(&mut e);
    e.handle_commit(c.id, CommitOutcome::Conflicts(vec![ip]));
    assert!(e.poll_transmit().is_none());
    assert!(matches!(
        &effects(&mut e)[..],
        [Effect::CommitFailed { .. }]
    ));
}

#[test]
fn an_ack_whose_lease_lapsed_while_the_store_stalled_is_not_sent() {
    let mut e = engine("");
    let ip = offer(&mut e, 3, at(0));
    e.handle_packet(at(1), request(3, ip));
    let c = e.poll_commit().unwrap();
    // The store takes longer than the lease: by then the table has expired it.
    e.handle_timeout(at(400));
    let expired = e.poll_commit().unwrap();
    e.handle_commit(c.id, CommitOutcome::Durable);
    e.handle_commit(expired.id, CommitOutcome::Durable);
    assert!(e.poll_transmit().is_none(), "a lapsed lease was ACKed");
    let fx = effects(&mut e);
    assert!(
        fx.iter().any(|x| matches!(x, Effect::Stale { .. })),
        "{fx:?}"
    );
    assert_eq!(DropReason::StaleReply.label(), "stale_reply");
}

#[test]
fn a_release_is_recorded_once_durable_and_a_nak_at_once() {
    let mut e = engine("");
    let ip = offer(&mut e, 4, at(0));
    e.handle_packet(at(1), request(4, ip));
    let c = e.poll_commit().unwrap();
    e.handle_commit(c.id, CommitOutcome::Durable);
    let _ = e.poll_transmit();
    effects(&mut e);
    let mut rel = packet(
        4,
        MessageType::Release,
        &[(code::SERVER_ID, SERVER.to_vec())],
    );
    rel.req.packet.ciaddr = ip;
    e.handle_packet(at(2), rel);
    let c = e.poll_commit().unwrap();
    assert!(lease_events(&effects(&mut e)).is_empty());
    // A failure the store retries: parked, not recorded.
    e.handle_commit(
        c.id,
        CommitOutcome::Failed {
            error: "db down".into(),
            retried: true,
        },
    );
    let fx = effects(&mut e);
    assert!(
        matches!(&fx[..], [Effect::Parked(ev), Effect::LazyCommitFailed { .. }] if ev.kind == LeaseEventKind::Release),
        "{fx:?}"
    );

    // A REQUEST for an address of another network: NAKed, recorded at once.
    e.handle_packet(at(3), request(5, Ipv4Addr::new(198, 19, 0, 9)));
    assert!(e.poll_commit().is_none());
    let t = e.poll_transmit().unwrap();
    assert_eq!(t.reply.packet.message_type(), Some(MessageType::Nak));
    assert_eq!(lease_events(&effects(&mut e)), [LeaseEventKind::Nak]);
}

#[test]
fn a_conflict_check_holds_the_offer_and_an_answer_quarantines_the_address() {
    let mut e = engine("conflict_check = \"ping\"\ndecline_quarantine = 600");
    e.handle_packet(at(0), packet(6, MessageType::Discover, &[]));
    assert!(e.poll_transmit().is_none(), "held while checked");
    let p = e.poll_probe().unwrap();
    let first = p.ip;
    effects(&mut e);
    // Someone answers: quarantined, another address chosen and checked.
    e.handle_probe(
        p.id,
        Some(ProbeAnswer {
            via: ProbeVia::Ping,
            mac: None,
        }),
        at(1),
    );
    let fx = effects(&mut e);
    assert!(
        fx.iter()
            .any(|x| matches!(x, Effect::Conflict { ip, attempt: 1, .. } if *ip == first)),
        "{fx:?}"
    );
    let q = e.table().by_ip(first).unwrap();
    assert_eq!(
        (q.state, q.expires),
        (LeaseState::Declined, Timestamp(1_000_601))
    );
    assert!(e.poll_commit().is_some(), "the quarantine is stored");
    let p2 = e.poll_probe().expect("the next address is checked");
    assert_ne!(p2.ip, first);
    // Nobody answers: the OFFER leaves, and the address is not checked again for a while.
    e.handle_probe(p2.id, None, at(2));
    let t = e.poll_transmit().unwrap();
    assert_eq!(t.reply.packet.yiaddr, p2.ip);
    e.handle_packet(at(3), packet(6, MessageType::Discover, &[]));
    assert_eq!(
        e.poll_transmit().unwrap().reply.packet.yiaddr,
        p2.ip,
        "cached as free"
    );
}

#[test]
fn a_limit_drops_with_its_reason_and_a_rate_limited_report() {
    let mut e = engine("[limits]\nper_mac = { rate = 0.001, burst = 1 }");
    e.handle_packet(at(0), packet(7, MessageType::Discover, &[]));
    assert!(e.poll_transmit().is_some());
    effects(&mut e);
    for i in 0..3 {
        e.handle_packet(at(1), packet(7, MessageType::Discover, &[]));
        let fx = effects(&mut e);
        match &fx[..] {
            [Effect::Dropped { reason, report, .. }] => {
                assert_eq!(reason.label(), "rate_mac");
                assert_eq!(report.is_some(), i == 0, "one line a second");
            }
            other => panic!("{other:?}"),
        }
    }
}
