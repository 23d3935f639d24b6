//! The engine around rapid commit (RFC 4039) and IPv6-only preferred (RFC 8925), from the
//! config file on: a rapid-commit ACK waits for its commit like any ACK, a failed commit sends
//! nothing, the conflict check is not skipped, the per-MAC limit still holds, and a 0.0.0.0
//! offer takes nothing.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use leased_config::{Format, load_str};
use leased_core::{LeaseState, LeaseTable, Plan, Request, Timestamp};
use leased_engine::{
    CommitOutcome, DropReason, Effect, Engine, Inbound, LeaseEventKind, Limited, Now, Origin,
};
use leased_wire::{BOOTREQUEST, MessageType, Options, Packet, code};

/// An engine over one subnet with `subnet` keys added, `server` keys in `[server]` and
/// `extra` sections at the end.
fn engine(server: &str, subnet: &str, extra: &str) -> Engine {
    let text = format!(
        "[server]\nlease_time = 300\nserver_id = \"198.18.0.1\"\n{server}\n\
         [[subnets]]\nnetwork = \"198.18.0.0/24\"\ninterface = \"eth0\"\n\
         pools = [\"198.18.0.10-198.18.0.20\"]\n{subnet}\n{extra}\n"
    );
    let config = load_str(&text, "t.toml", Format::Toml).unwrap();
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

fn discover(mac: u8, extra: &[(u8, Vec<u8>)]) -> Inbound {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, mac]);
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![MessageType::Discover.code()]);
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
        req: Request::new(
            p,
            Some("eth0".into()),
            Some(Ipv4Addr::new(198, 18, 0, 1)),
            true,
        ),
        origin: Origin {
            link: 0,
            src: None,
            local: None,
        },
        received: Duration::ZERO,
    }
}

fn rapid(mac: u8) -> Inbound {
    discover(mac, &[(code::RAPID_COMMIT, Vec::new())])
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

#[test]
fn a_rapid_commit_ack_leaves_only_once_its_binding_is_durable() {
    let mut e = engine("", "rapid_commit = true", "");
    e.handle_packet(at(0), rapid(1));
    assert!(e.poll_transmit().is_none(), "no ACK before the commit");
    let c = e.poll_commit().expect("the binding is committed");
    assert_eq!(c.leases.len(), 1);
    assert_eq!(c.leases[0].state, LeaseState::Bound);
    let ip = c.leases[0].ip;
    assert!(lease_events(&effects(&mut e)).is_empty(), "nothing yet");
    e.handle_commit(c.id, CommitOutcome::Durable);
    let t = e.poll_transmit().expect("the ACK after its commit");
    assert_eq!(t.reply.packet.message_type(), Some(MessageType::Ack));
    assert_eq!(t.reply.packet.yiaddr, ip);
    assert!(t.reply.packet.options.get(code::RAPID_COMMIT).is_some());
    assert_eq!(lease_events(&effects(&mut e)), [LeaseEventKind::AckNew]);
    assert!(e.poll_transmit().is_none(), "one reply");
}

#[test]
fn a_rapid_commit_whose_commit_fails_sends_nothing() {
    let mut e = engine("", "rapid_commit = true", "");
    e.handle_packet(at(0), rapid(2));
    let c = e.poll_commit().unwrap();
    effects(&mut e);
    e.handle_commit(
        c.id,
        CommitOutcome::Failed {
            error: "disk full".into(),
            retried: false,
        },
    );
    assert!(e.poll_transmit().is_none(), "no ACK for a lease not kept");
    let fx = effects(&mut e);
    assert!(
        fx.iter().any(|x| matches!(x, Effect::CommitFailed { .. })),
        "{fx:?}"
    );
    assert!(lease_events(&fx).is_empty());
}

#[test]
fn without_the_setting_option_80_gets_an_offer_at_once() {
    let mut e = engine("", "", "");
    e.handle_packet(at(0), rapid(3));
    assert!(e.poll_commit().is_none());
    let t = e.poll_transmit().unwrap();
    assert_eq!(t.reply.packet.message_type(), Some(MessageType::Offer));
    assert!(t.reply.packet.options.get(code::RAPID_COMMIT).is_none());
}

#[test]
fn with_a_conflict_check_rapid_commit_waits_for_the_check_as_an_offer() {
    let mut e = engine("conflict_check = \"ping\"", "rapid_commit = true", "");
    e.handle_packet(at(0), rapid(4));
    assert!(e.poll_commit().is_none(), "nothing bound before the check");
    assert!(e.poll_transmit().is_none(), "held while checked");
    let p = e.poll_probe().expect("the address is checked first");
    e.handle_probe(p.id, None, at(1));
    let t = e.poll_transmit().unwrap();
    assert_eq!(t.reply.packet.message_type(), Some(MessageType::Offer));
    assert_eq!(t.reply.packet.yiaddr, p.ip);
    assert!(t.reply.packet.options.get(code::RAPID_COMMIT).is_none());
    // Checked free a moment ago: the next rapid DISCOVER for it is committed at once.
    e.handle_packet(at(2), rapid(4));
    assert!(e.poll_probe().is_none());
    let c = e
        .poll_commit()
        .expect("rapid commit once the address is known free");
    assert_eq!(c.leases[0].ip, p.ip);
    e.handle_commit(c.id, CommitOutcome::Durable);
    let t = e.poll_transmit().unwrap();
    assert_eq!(t.reply.packet.message_type(), Some(MessageType::Ack));
}

#[test]
fn the_per_mac_limit_holds_for_rapid_commit() {
    let mut e = engine(
        "",
        "rapid_commit = true",
        "[limits]\nper_mac = { rate = 0.001, burst = 1 }",
    );
    e.handle_packet(at(0), rapid(5));
    let c = e.poll_commit().unwrap();
    e.handle_commit(c.id, CommitOutcome::Durable);
    assert!(e.poll_transmit().is_some());
    effects(&mut e);
    e.handle_packet(at(1), rapid(5));
    assert!(
        e.poll_commit().is_none(),
        "a limited DISCOVER binds nothing"
    );
    assert!(e.poll_transmit().is_none());
    let fx = effects(&mut e);
    assert!(
        fx.iter().any(|x| matches!(
            x,
            Effect::Dropped {
                reason: DropReason::Limit(Limited::Mac),
                ..
            }
        )),
        "{fx:?}"
    );
}

#[test]
fn an_ipv6_only_offer_of_nothing_binds_nothing_and_holds_no_offer() {
    let mut e = engine(
        "conflict_check = \"ping\"",
        "ipv6_only_wait = \"30m\"",
        "[limits]\nmax_offers_in_flight = 1",
    );
    for mac in 10..13 {
        e.handle_packet(
            at(0),
            discover(
                mac,
                &[(code::PARAM_REQUEST_LIST, vec![code::IPV6_ONLY_PREFERRED])],
            ),
        );
        assert!(e.poll_probe().is_none(), "no address to check");
        assert!(e.poll_commit().is_none());
        let t = e.poll_transmit().expect("the OFFER leaves at once");
        assert_eq!(t.reply.packet.message_type(), Some(MessageType::Offer));
        assert!(t.reply.packet.yiaddr.is_unspecified());
        assert_eq!(
            t.reply.packet.options.get(code::IPV6_ONLY_PREFERRED),
            Some(&1800u32.to_be_bytes()[..])
        );
    }
    assert!(e.table().is_empty(), "no lease, offered or bound");
}
