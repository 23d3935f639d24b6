//! One [`Ha`] machine driven by hand on a virtual clock: the failure-detection rule, the gate,
//! the hello's refusals, clock skew, maintenance, and the update queue's cap.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use leased_core::{ClientId, HwAddr, Lease, LeaseState, LeaseTable, Request, Timestamp};
use leased_engine::{CommitId, Now};
use leased_ha::{
    Ha, HaAction, HaConfig, HaEvent, HaMode, HaState, PartnerMessage, Peer, Role, bucket_of,
    primary_bucket,
};
use leased_wire::{BOOTREQUEST, MessageType, Options, Packet, code};

fn at(ms: u64) -> Now {
    Now {
        wall: Timestamp(1_000_000 + ms / 1000),
        mono: Duration::from_millis(ms),
    }
}

fn cfg(mode: HaMode, me: &str) -> Arc<HaConfig> {
    let second = match mode {
        HaMode::HotStandby => Role::Standby,
        HaMode::LoadBalancing => Role::Secondary,
    };
    Arc::new(HaConfig {
        mode,
        this_server: me.into(),
        peers: vec![
            Peer {
                name: "a".into(),
                address: "198.18.0.1:8647".parse().unwrap(),
                role: Role::Primary,
            },
            Peer {
                name: "b".into(),
                address: "198.18.0.2:8647".parse().unwrap(),
                role: second,
            },
        ],
        heartbeat_delay: Duration::from_secs(1),
        max_response_delay: Duration::from_secs(4),
        max_ack_delay: Duration::from_secs(2),
        max_unacked_clients: 1,
        sync_page_limit: 2,
        update_queue_limit: 3,
    })
}

fn discover(mac: u8, secs: u16) -> Request {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, mac]);
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![MessageType::Discover.code()]);
    let p = Packet {
        op: BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid: 1,
        secs,
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
    Request::new(p, Some("eth0".into()), None, true)
}

fn lease(ip: u8) -> Lease {
    Lease {
        ip: Ipv4Addr::new(198, 18, 0, ip),
        client_id: ClientId(vec![1, 2, 0, 0, 0, 0, ip]),
        hwaddr: HwAddr(vec![2, 0, 0, 0, 0, ip]),
        hostname: None,
        state: LeaseState::Bound,
        starts: Timestamp(1_000_000),
        expires: Timestamp(1_000_600),
        first_seen: Timestamp(1_000_000),
        circuit_id: None,
        remote_id: None,
        subscriber_id: None,
    }
}

fn messages(h: &mut Ha) -> Vec<PartnerMessage> {
    std::iter::from_fn(|| h.poll_message()).collect()
}

fn actions(h: &mut Ha) -> Vec<HaAction> {
    std::iter::from_fn(|| h.poll_action()).collect()
}

fn events(h: &mut Ha) -> Vec<HaEvent> {
    std::iter::from_fn(|| h.poll_event()).collect()
}

/// Two machines joined by hand: every frame encoded, decoded and handed over until quiet.
fn exchange(a: &mut Ha, b: &mut Ha, now: Now, table: &LeaseTable) {
    for _ in 0..50 {
        let (ma, mb) = (messages(a), messages(b));
        if ma.is_empty() && mb.is_empty() {
            return;
        }
        for m in ma {
            b.handle_message(now, PartnerMessage::decode(&m.encode()).unwrap(), table);
        }
        for m in mb {
            a.handle_message(now, PartnerMessage::decode(&m.encode()).unwrap(), table);
        }
    }
}

/// A pair brought up to its normal state over an empty table.
fn pair(mode: HaMode) -> (Ha, Ha) {
    let mut a = Ha::new(cfg(mode, "a"), at(0)).unwrap();
    let mut b = Ha::new(cfg(mode, "b"), at(0)).unwrap();
    a.handle_link_up(at(0));
    b.handle_link_up(at(0));
    exchange(&mut a, &mut b, at(0), &LeaseTable::default());
    (a, b)
}

#[test]
fn a_pair_syncs_then_takes_up_its_roles() {
    let (mut a, b) = pair(HaMode::HotStandby);
    assert_eq!(a.state(), HaState::HotStandby);
    assert_eq!(b.state(), HaState::HotStandby);
    assert!(a.serves(&discover(1, 0)) && !b.serves(&discover(1, 0)));
    assert!(actions(&mut a).contains(&HaAction::Gate(true)));
    let (a, b) = pair(HaMode::LoadBalancing);
    for mac in 0..20 {
        let r = discover(mac, 0);
        assert_ne!(a.serves(&r), b.serves(&r), "exactly one serves {mac}");
        let mine = primary_bucket(bucket_of(&[2, 0, 0, 0, 0, mac]));
        assert_eq!(a.serves(&r), mine);
    }
}

#[test]
fn lost_heartbeats_alone_never_mean_partner_down() {
    let (_, mut b) = pair(HaMode::HotStandby);
    actions(&mut b);
    // The primary goes silent: communication is interrupted after max_response_delay...
    b.handle_timeout(at(5_000));
    assert!(!b.partner_reachable());
    assert!(events(&mut b).contains(&HaEvent::CommunicationInterrupted));
    // ... and however long it stays silent, with clients answered (small secs), b waits.
    for t in (5_000..600_000).step_by(1_000) {
        b.handle_timeout(at(t));
        b.handle_client_request(at(t), &discover((t / 1000 % 50) as u8, 1));
    }
    assert_eq!(b.state(), HaState::HotStandby);
    // Clients retrying unanswered: one sighting each is not enough...
    b.handle_client_request(at(600_000), &discover(1, 3));
    b.handle_client_request(at(600_000), &discover(2, 3));
    assert_eq!(b.state(), HaState::HotStandby);
    // ... nor a duplicate (same secs)...
    b.handle_client_request(at(603_000), &discover(1, 3));
    assert_eq!(b.state(), HaState::HotStandby);
    // ... two more retries, the last max_ack_delay after the first, from more than
    // max_unacked_clients (1) clients are.
    b.handle_client_request(at(603_000), &discover(1, 6));
    b.handle_client_request(at(603_000), &discover(2, 6));
    b.handle_client_request(at(605_000), &discover(1, 8));
    assert_eq!(
        b.state(),
        HaState::HotStandby,
        "one client is not more than one"
    );
    b.handle_client_request(at(605_000), &discover(2, 8));
    assert_eq!(b.state(), HaState::PartnerDown);
    assert!(b.serves(&discover(9, 0)));
}

#[test]
fn a_request_is_no_evidence_and_a_reachable_partner_is_never_taken_over() {
    let (_, mut b) = pair(HaMode::HotStandby);
    for t in [1_000u64, 4_000, 7_000] {
        b.handle_timeout(at(t));
        let mut r = discover(1, (t / 500) as u16);
        r.packet
            .options
            .set(code::MESSAGE_TYPE, vec![MessageType::Request.code()]);
        b.handle_client_request(at(t), &r);
    }
    assert_eq!(b.state(), HaState::HotStandby);
}

#[test]
fn an_ack_waits_for_the_partner_and_the_batch_names_its_commits() {
    let (mut a, mut b) = pair(HaMode::HotStandby);
    actions(&mut a);
    a.lease_changed(CommitId(7), vec![lease(10)]);
    a.lease_changed(CommitId(8), vec![lease(11)]);
    let sent = messages(&mut a);
    assert!(
        matches!(&sent[..], [PartnerMessage::LeaseUpdates { leases, .. }] if leases.len() == 2),
        "changes queued together leave as one batch: {sent:?}"
    );
    for m in sent {
        b.handle_message(at(10), m, &LeaseTable::default());
    }
    let stores: Vec<_> = actions(&mut b)
        .into_iter()
        .filter_map(|x| match x {
            HaAction::Store { ack: Some(ack), .. } => Some(ack),
            _ => None,
        })
        .collect();
    assert_eq!(stores.len(), 1);
    // Nothing is acknowledged before b says its copy is durable.
    assert!(messages(&mut b).iter().all(|m| m.kind() != "lease-ack"));
    for s in stores {
        b.handle_stored(s);
    }
    for m in messages(&mut b) {
        a.handle_message(at(20), m, &LeaseTable::default());
    }
    let acked: Vec<CommitId> = actions(&mut a)
        .into_iter()
        .flat_map(|x| match x {
            HaAction::PartnerAcked(ids) => ids,
            _ => vec![],
        })
        .collect();
    assert_eq!(acked, [CommitId(7), CommitId(8)]);
}

#[test]
fn a_full_queue_drops_its_replies_and_asks_the_partner_to_sync() {
    let (mut a, _) = pair(HaMode::LoadBalancing);
    a.handle_link_down(at(10));
    actions(&mut a);
    for i in 0..4 {
        a.lease_changed(CommitId(i), vec![lease(10 + i as u8)]);
    }
    let acts = actions(&mut a);
    assert!(
        acts.contains(&HaAction::PartnerLost(vec![
            CommitId(0),
            CommitId(1),
            CommitId(2),
            CommitId(3)
        ])),
        "{acts:?}"
    );
    assert_eq!(a.unacked_updates(), 0);
    a.handle_link_up(at(20));
    let hello = messages(&mut a);
    assert!(
        matches!(&hello[0], PartnerMessage::Hello { behind: true, .. }),
        "{hello:?}"
    );
}

#[test]
fn another_pair_config_or_name_is_refused() {
    let mut a = Ha::new(cfg(HaMode::HotStandby, "a"), at(0)).unwrap();
    let mut other = Ha::new(cfg(HaMode::LoadBalancing, "b"), at(0)).unwrap();
    a.handle_link_up(at(0));
    other.handle_link_up(at(0));
    exchange(&mut a, &mut other, at(0), &LeaseTable::default());
    let ev = events(&mut a);
    assert!(
        ev.iter().any(
            |e| matches!(e, HaEvent::PartnerRefused { reason } if reason.contains("pair config"))
        ),
        "{ev:?}"
    );
    assert_eq!(a.state(), HaState::Waiting);
    assert!(!a.partner_reachable());
    let mut a = Ha::new(cfg(HaMode::HotStandby, "a"), at(0)).unwrap();
    a.handle_link_up(at(0));
    a.handle_message(
        at(0),
        PartnerMessage::Hello {
            server: "mallory".into(),
            config_version: cfg(HaMode::HotStandby, "a").config_version(),
            state: HaState::Waiting,
            behind: false,
        },
        &LeaseTable::default(),
    );
    assert!(
        events(&mut a)
            .iter()
            .any(|e| matches!(e, HaEvent::PartnerRefused { .. }))
    );
}

#[test]
fn clocks_too_far_apart_terminate_replication() {
    let (mut a, _) = pair(HaMode::HotStandby);
    a.handle_message(
        at(100),
        PartnerMessage::Heartbeat {
            state: HaState::HotStandby,
            wall: Timestamp(1_000_000 + 500),
        },
        &LeaseTable::default(),
    );
    assert_eq!(a.state(), HaState::Terminated);
    assert!(a.serves(&discover(1, 0)), "the primary keeps its scope");
    assert!(!a.partner_gate());
    a.lease_changed(CommitId(1), vec![lease(10)]);
    assert_eq!(a.unacked_updates(), 0, "nothing is replicated");
}

#[test]
fn maintenance_hands_over_at_once_and_resumes() {
    let (mut a, mut b) = pair(HaMode::LoadBalancing);
    a.start_maintenance(at(10)).unwrap();
    assert_eq!(a.state(), HaState::InMaintenance);
    assert!(!a.serves(&discover(1, 0)) && !a.serves(&discover(2, 0)));
    exchange(&mut a, &mut b, at(10), &LeaseTable::default());
    assert_eq!(b.state(), HaState::PartnerInMaintenance);
    assert!(b.serves(&discover(1, 0)) && b.serves(&discover(2, 0)));
    // The operator stops a: b serves alone as partner-down, without waiting for clients.
    b.handle_link_down(at(20));
    assert_eq!(b.state(), HaState::PartnerDown);
    b.handle_link_up(at(30));
    a.handle_link_up(at(30));
    a.resume(at(30)).unwrap();
    exchange(&mut a, &mut b, at(30), &LeaseTable::default());
    assert_eq!(a.state(), HaState::LoadBalancing);
    assert_eq!(b.state(), HaState::LoadBalancing);
    assert!(a.start_maintenance(at(40)).is_ok());
    exchange(&mut a, &mut b, at(40), &LeaseTable::default());
    assert!(b.start_maintenance(at(40)).is_err(), "not both at once");
}

#[test]
fn a_sync_is_paged_and_stores_every_page() {
    let table = LeaseTable::from_leases((10..15).map(lease));
    let mut b = Ha::new(cfg(HaMode::HotStandby, "b"), at(0)).unwrap();
    let mut a = Ha::new(cfg(HaMode::HotStandby, "a"), at(0)).unwrap();
    a.handle_link_up(at(0));
    b.handle_link_up(at(0));
    // a answers from `table`; b's own table is empty.
    let empty = LeaseTable::default();
    let mut stored = 0;
    for _ in 0..20 {
        for m in messages(&mut a) {
            b.handle_message(at(0), m, &empty);
        }
        for m in messages(&mut b) {
            a.handle_message(at(0), m, &table);
        }
        for x in actions(&mut b) {
            if let HaAction::Store {
                ack: None, leases, ..
            } = x
            {
                assert!(leases.len() <= 2, "pages of sync_page_limit");
                stored += leases.len();
            }
        }
    }
    assert_eq!(stored, 5);
    assert!(
        events(&mut b)
            .iter()
            .any(|e| matches!(e, HaEvent::SyncDone { leases: 5 }))
    );
}

#[test]
fn an_operator_sync_refetches_the_partner_table_then_resumes() {
    let (mut a, mut b) = pair(HaMode::HotStandby);
    let table = LeaseTable::from_leases([lease(10)]);
    assert!(a.request_sync(at(10)).is_ok());
    assert_eq!(
        a.state(),
        HaState::Syncing,
        "an operator sync starts at once"
    );
    assert!(
        !a.serves(&discover(1, 0)),
        "no client is served while syncing"
    );
    exchange(&mut a, &mut b, at(10), &table);
    assert!(
        actions(&mut a).iter().any(|x| matches!(
            x,
            HaAction::Store { ack: None, leases, .. } if leases.iter().any(|l| l.ip == lease(10).ip)
        )),
        "the partner's lease came in a sync page"
    );
    assert_eq!(a.state(), HaState::HotStandby);
    assert!(a.request_sync(at(20)).is_ok());
    assert!(a.request_sync(at(20)).is_err(), "one sync at a time");
    a.handle_link_down(at(30));
    assert!(
        a.request_sync(at(30)).is_err(),
        "no sync without the partner"
    );
}
