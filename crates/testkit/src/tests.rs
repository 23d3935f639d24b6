#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x42];
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 50);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The probe's schedule: 1 s, 2 s, 4 s … apart, five sends, at most `timeout` per message.
fn probe_retransmit(timeout: u64) -> Retransmit {
    Retransmit {
        first: secs(1),
        max_wait: secs(64),
        max_sends: 5,
        give_up_after: Some(secs(timeout)),
    }
}

/// A server's reply of type `t` to `req`, as a server would build it.
fn reply(req: &Packet, t: MessageType, yiaddr: Ipv4Addr, opts: &[(u8, Vec<u8>)]) -> Packet {
    let mut p = req.clone();
    p.op = BOOTREPLY;
    p.yiaddr = yiaddr;
    p.options = Options::new();
    p.options.set(code::MESSAGE_TYPE, vec![t.code()]);
    for (c, v) in opts {
        p.options.set(*c, v.clone());
    }
    p
}

fn sid() -> (u8, Vec<u8>) {
    (code::SERVER_ID, SERVER.octets().to_vec())
}

fn lease(s: u32) -> (u8, Vec<u8>) {
    (code::LEASE_TIME, s.to_be_bytes().to_vec())
}

fn ip_opt(p: &Packet, c: u8) -> Option<Ipv4Addr> {
    option_ip(p, c)
}

/// A client bound to [`IP`] for `lease_secs`, its REQUEST sent at `at`.
fn bound(at: u64, lease_secs: u32) -> Client {
    let mut c = Client::new(ClientConfig::new(MAC));
    c.start_dora(secs(at), 7);
    let d = c.poll_transmit(secs(at)).unwrap().packet;
    assert!(c.handle_reply(
        secs(at),
        &reply(&d, MessageType::Offer, IP, &[sid()]),
        SERVER
    ));
    let r = c.poll_transmit(secs(at)).unwrap().packet;
    let ack = reply(&r, MessageType::Ack, IP, &[sid(), lease(lease_secs)]);
    assert!(c.handle_reply(secs(at), &ack, SERVER));
    while c.poll_event().is_some() {}
    c
}

#[test]
fn dora_builds_each_message_and_binds() {
    let mut cfg = ClientConfig::new(MAC);
    cfg.client_id = Some(vec![1, 2, 0, 0, 0, 0, 0x42]);
    cfg.hostname = Some("probe".into());
    cfg.broadcast_flag = true;
    cfg.param_request_list = vec![1, 3, 6];
    cfg.max_message_size = Some(1500);
    cfg.requested_ip = Some(IP);
    let mut c = Client::new(cfg);
    assert_eq!(c.state(), State::Init);
    c.start_dora(secs(10), 0xabcd);
    assert_eq!(c.state(), State::Selecting);
    assert_eq!(c.xid(), Some(0xabcd));

    let t = c.poll_transmit(secs(10)).unwrap();
    assert_eq!((t.to, t.attempt), (Destination::Broadcast, 1));
    let d = &t.packet;
    assert_eq!(d.op, BOOTREQUEST);
    assert_eq!(d.message_type(), Some(MessageType::Discover));
    assert_eq!(d.xid, 0xabcd);
    assert_eq!(d.chaddr(), &MAC);
    assert!(d.broadcast());
    assert_eq!((d.hops, d.giaddr), (0, Ipv4Addr::UNSPECIFIED));
    assert_eq!(
        d.options.get(code::CLIENT_ID),
        Some(&[1, 2, 0, 0, 0, 0, 0x42][..])
    );
    assert_eq!(d.options.get(code::HOSTNAME), Some(&b"probe"[..]));
    assert_eq!(
        d.options.get(code::PARAM_REQUEST_LIST),
        Some(&[1, 3, 6][..])
    );
    assert_eq!(d.options.get(code::MAX_MESSAGE_SIZE), Some(&[5, 0xdc][..]));
    assert_eq!(ip_opt(d, code::REQUESTED_IP), Some(IP));
    assert_eq!(ip_opt(d, code::SERVER_ID), None);
    assert!(
        c.poll_transmit(secs(10)).is_none(),
        "sent once until its timer"
    );

    let offer = reply(d, MessageType::Offer, IP, &[sid(), lease(600)]);
    assert!(c.handle_reply(secs(11), &offer, SERVER));
    assert!(matches!(c.poll_event(), Some(Event::Offer(r)) if r.packet == offer));
    assert_eq!(
        c.state(),
        State::Requesting {
            ip: IP,
            server: SERVER
        }
    );

    let t = c.poll_transmit(secs(12)).unwrap();
    assert_eq!((t.to, t.attempt), (Destination::Broadcast, 1));
    let r = &t.packet;
    assert_eq!(r.message_type(), Some(MessageType::Request));
    assert_eq!(r.xid, 0xabcd, "the REQUEST keeps the DISCOVER's xid");
    assert_eq!(r.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(ip_opt(r, code::REQUESTED_IP), Some(IP));
    assert_eq!(ip_opt(r, code::SERVER_ID), Some(SERVER));
    assert_eq!(
        r.options.get(code::PARAM_REQUEST_LIST),
        Some(&[1, 3, 6][..])
    );

    let ack = reply(
        r,
        MessageType::Ack,
        IP,
        &[
            sid(),
            lease(600),
            (code::RENEWAL_TIME, 200u32.to_be_bytes().to_vec()),
        ],
    );
    assert!(c.handle_reply(secs(13), &ack, SERVER));
    assert!(matches!(c.poll_event(), Some(Event::Ack(r)) if r.from == SERVER));
    let b = Binding {
        ip: IP,
        server: SERVER,
        lease: secs(600),
        bound_at: secs(12),
        t1: secs(212),
        t2: secs(12 + 525),
    };
    assert_eq!(c.state(), State::Bound(b));
    assert_eq!(c.binding(), Some(&b));
    assert_eq!(b.expires(), secs(612));
    assert!(!c.busy());
    assert_eq!(c.poll_timeout(), Some(secs(612)), "the lease's end");
    assert!(
        !c.handle_reply(secs(14), &ack, SERVER),
        "nothing is under way"
    );
}

#[test]
fn replies_not_for_this_exchange_are_ignored() {
    let mut c = Client::new(ClientConfig::new(MAC));
    c.start_dora(secs(0), 5);
    let d = c.poll_transmit(secs(0)).unwrap().packet;
    let offer = reply(&d, MessageType::Offer, IP, &[sid()]);

    let mut other_xid = offer.clone();
    other_xid.xid = 6;
    let mut other_mac = offer.clone();
    other_mac.chaddr[5] = 0x43;
    let mut request = offer.clone();
    request.op = BOOTREQUEST;
    let ack = reply(&d, MessageType::Ack, IP, &[sid()]);
    let mut no_type = offer.clone();
    no_type.options.remove(code::MESSAGE_TYPE);
    for p in [&other_xid, &other_mac, &request, &ack, &no_type] {
        assert!(!c.handle_reply(secs(0), p, SERVER), "{p:?}");
    }
    assert_eq!(c.state(), State::Selecting);
    assert!(c.poll_event().is_none());

    assert!(c.handle_reply(secs(0), &offer, SERVER));
    // A second OFFER for the same xid: the client already took one.
    assert!(!c.handle_reply(secs(0), &offer, SERVER));
    // An INFORM is not answered by a NAK.
    let mut c = Client::new(ClientConfig::new(MAC));
    c.start_inform(secs(0), 9, IP, None);
    let i = c.poll_transmit(secs(0)).unwrap().packet;
    assert!(!c.handle_reply(
        secs(0),
        &reply(&i, MessageType::Nak, Ipv4Addr::UNSPECIFIED, &[]),
        SERVER
    ));
    assert_eq!(c.state(), State::Informing { ip: IP });
}

#[test]
fn the_probes_schedule_retransmits_then_gives_up_at_its_timeout() {
    let mut cfg = ClientConfig::new(MAC);
    cfg.retransmit = probe_retransmit(5);
    let mut c = Client::new(cfg);
    c.start_dora(secs(100), 1);
    let mut sent = Vec::new();
    let mut now = secs(100);
    for _ in 0..20 {
        while let Some(t) = c.poll_transmit(now) {
            sent.push((now.as_secs() - 100, t.attempt));
        }
        let Some(at) = c.poll_timeout() else { break };
        assert!(at > now, "a timer in the future");
        now = at;
        c.handle_timeout(now);
    }
    assert_eq!(sent, [(0, 1), (1, 2), (3, 3)]);
    assert_eq!(now, secs(105), "given up at the timeout");
    assert_eq!(c.state(), State::TimedOut);
    assert_eq!(
        c.poll_event(),
        Some(Event::TimedOut {
            waiting_for: MessageType::Offer
        })
    );
    assert_eq!(c.poll_timeout(), None);

    // A long timeout: five sends, then the last wait.
    let mut cfg = ClientConfig::new(MAC);
    cfg.retransmit = probe_retransmit(60);
    let mut c = Client::new(cfg);
    c.start_renew(secs(0), 1, IP, SERVER);
    let mut sent = Vec::new();
    let mut now = secs(0);
    for _ in 0..20 {
        while let Some(t) = c.poll_transmit(now) {
            sent.push(now.as_secs());
            assert_eq!(t.to, Destination::Server(SERVER));
        }
        let Some(at) = c.poll_timeout() else { break };
        now = at;
        c.handle_timeout(now);
    }
    assert_eq!(sent, [0, 1, 3, 7, 15]);
    assert_eq!(now, secs(31));
    assert_eq!(
        c.poll_event(),
        Some(Event::TimedOut {
            waiting_for: MessageType::Ack
        })
    );
}

#[test]
fn rfc2131_schedule_doubles_from_four_seconds() {
    let mut c = Client::new(ClientConfig::new(MAC));
    c.start_reboot(secs(0), 1, IP);
    let mut sent = Vec::new();
    let mut now = secs(0);
    for _ in 0..20 {
        while c.poll_transmit(now).is_some() {
            sent.push(now.as_secs());
        }
        let Some(at) = c.poll_timeout() else { break };
        // Early calls change nothing.
        c.handle_timeout(at - Duration::from_millis(1));
        assert!(c.poll_transmit(at - Duration::from_millis(1)).is_none());
        now = at;
        c.handle_timeout(now);
    }
    assert_eq!(sent, [0, 4, 12, 28, 60]);
    assert_eq!(now, secs(124));
    assert_eq!(c.state(), State::TimedOut);

    let r = Retransmit {
        max_wait: secs(10),
        ..Retransmit::RFC2131
    };
    assert_eq!(r.wait_after(1), secs(4));
    assert_eq!(r.wait_after(2), secs(8));
    assert_eq!(r.wait_after(3), secs(10));
    assert_eq!(r.wait_after(u32::MAX), secs(10));
}

#[test]
fn a_retransmission_is_the_same_message_and_a_reply_to_it_binds_from_the_first_send() {
    let mut c = Client::new(ClientConfig::new(MAC));
    c.start_reboot(secs(0), 3, IP);
    let first = c.poll_transmit(secs(0)).unwrap();
    c.handle_timeout(secs(4));
    let again = c.poll_transmit(secs(4)).unwrap();
    assert_eq!(again.packet, first.packet);
    assert_eq!(again.attempt, 2);
    let ack = reply(&again.packet, MessageType::Ack, IP, &[lease(100)]);
    let from = Ipv4Addr::new(198, 18, 0, 2);
    assert!(c.handle_reply(secs(5), &ack, from));
    let b = *c.binding().unwrap();
    assert_eq!(b.bound_at, secs(0));
    assert_eq!(b.server, from, "no option 54: the sender");
    assert_eq!((b.t1, b.t2), (secs(50), secs(88)));
}

#[test]
fn a_nak_drops_the_lease() {
    let mut c = bound(0, 300);
    c.start_renew(secs(150), 8, IP, SERVER);
    assert_eq!(
        c.state(),
        State::Renewing {
            ip: IP,
            server: SERVER
        }
    );
    assert!(c.binding().is_some(), "still held while renewing");
    let r = c.poll_transmit(secs(150)).unwrap().packet;
    let nak = reply(&r, MessageType::Nak, Ipv4Addr::UNSPECIFIED, &[sid()]);
    assert!(c.handle_reply(secs(150), &nak, SERVER));
    assert_eq!(c.state(), State::Naked);
    assert_eq!(c.binding(), None);
    assert!(matches!(c.poll_event(), Some(Event::Nak(_))));
}

#[test]
fn renew_and_rebind_carry_ciaddr_only() {
    let mut c = bound(0, 300);
    c.start_renew(secs(150), 8, IP, SERVER);
    let t = c.poll_transmit(secs(150)).unwrap();
    assert_eq!(t.to, Destination::Server(SERVER));
    let r = &t.packet;
    assert_eq!(r.message_type(), Some(MessageType::Request));
    assert_eq!(r.ciaddr, IP);
    assert_eq!(r.options.get(code::REQUESTED_IP), None);
    assert_eq!(r.options.get(code::SERVER_ID), None);
    // The ACK's lease counts from the renewal.
    assert!(c.handle_reply(
        secs(151),
        &reply(r, MessageType::Ack, IP, &[lease(300)]),
        SERVER
    ));
    let b = *c.binding().unwrap();
    assert_eq!(
        (b.bound_at, b.expires(), b.server),
        (secs(150), secs(450), SERVER)
    );

    c.start_rebind(secs(400), 9, IP);
    assert_eq!(c.state(), State::Rebinding { ip: IP });
    let t = c.poll_transmit(secs(400)).unwrap();
    assert_eq!(t.to, Destination::Broadcast);
    assert_eq!(t.packet.ciaddr, IP);
    assert_eq!(t.packet.options.get(code::SERVER_ID), None);
}

#[test]
fn reboot_asks_for_its_address_without_a_server() {
    let mut c = Client::new(ClientConfig::new(MAC));
    c.start_reboot(secs(0), 4, IP);
    assert_eq!(c.state(), State::Rebooting { ip: IP });
    let t = c.poll_transmit(secs(0)).unwrap();
    assert_eq!(t.to, Destination::Broadcast);
    assert_eq!(t.packet.message_type(), Some(MessageType::Request));
    assert_eq!(t.packet.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(ip_opt(&t.packet, code::REQUESTED_IP), Some(IP));
    assert_eq!(t.packet.options.get(code::SERVER_ID), None);
}

#[test]
fn release_and_decline_are_sent_once_and_end_the_lease() {
    let mut cfg = ClientConfig::new(MAC);
    cfg.broadcast_flag = true;
    let mut c = Client::new(cfg.clone());
    assert_eq!(c.release(secs(0), 1), Err(NoBinding));
    assert_eq!(c.decline(secs(0), 1), Err(NoBinding));
    assert!(c.poll_transmit(secs(0)).is_none());

    let mut c = bound(0, 300);
    c.start_renew(secs(200), 8, IP, SERVER);
    c.release(secs(200), 11).unwrap();
    let t = c.poll_transmit(secs(200)).unwrap();
    assert_eq!(t.to, Destination::Server(SERVER));
    let p = &t.packet;
    assert_eq!(p.message_type(), Some(MessageType::Release));
    assert_eq!((p.xid, p.ciaddr, p.flags), (11, IP, 0));
    assert_eq!(ip_opt(p, code::SERVER_ID), Some(SERVER));
    assert_eq!(p.options.get(code::PARAM_REQUEST_LIST), None);
    assert!(
        c.poll_transmit(secs(200)).is_none(),
        "the renewal was dropped"
    );
    assert_eq!((c.state(), c.binding()), (State::Init, None));
    assert!(!c.busy());
    assert_eq!(c.poll_timeout(), None);

    let mut c = Client::new(cfg);
    c.start_reboot(secs(0), 2, IP);
    let r = c.poll_transmit(secs(0)).unwrap().packet;
    assert!(c.handle_reply(
        secs(0),
        &reply(&r, MessageType::Ack, IP, &[sid(), lease(60)]),
        SERVER
    ));
    c.decline(secs(1), 12).unwrap();
    let t = c.poll_transmit(secs(1)).unwrap();
    assert_eq!(t.to, Destination::Broadcast);
    let p = &t.packet;
    assert_eq!(p.message_type(), Some(MessageType::Decline));
    assert_eq!((p.ciaddr, p.flags), (Ipv4Addr::UNSPECIFIED, 0x8000));
    assert_eq!(ip_opt(p, code::REQUESTED_IP), Some(IP));
    assert_eq!(ip_opt(p, code::SERVER_ID), Some(SERVER));
    assert_eq!(c.binding(), None);

    // A RELEASE still waiting leaves before the exchange started after it.
    let mut c = bound(0, 300);
    c.release(secs(10), 14).unwrap();
    c.start_dora(secs(10), 15);
    let first = c.poll_transmit(secs(10)).unwrap().packet;
    assert_eq!(first.message_type(), Some(MessageType::Release));
    let then = c.poll_transmit(secs(10)).unwrap().packet;
    assert_eq!(then.message_type(), Some(MessageType::Discover));

    // An ACK without option 51 grants an infinite lease, which can still be released.
    let mut c = Client::new(ClientConfig::new(MAC));
    c.start_reboot(secs(0), 3, IP);
    let r = c.poll_transmit(secs(0)).unwrap().packet;
    assert!(c.handle_reply(secs(0), &reply(&r, MessageType::Ack, IP, &[sid()]), SERVER));
    assert_eq!(c.binding().unwrap().lease, secs(u64::from(u32::MAX)));
    c.release(secs(1_000_000), 13).unwrap();
}

#[test]
fn inform_keeps_a_binding_and_answers_without_one() {
    let mut c = bound(0, 300);
    c.start_inform(secs(10), 20, IP, None);
    assert_eq!(c.state(), State::Informing { ip: IP });
    let t = c.poll_transmit(secs(10)).unwrap();
    assert_eq!(t.to, Destination::Broadcast);
    assert_eq!(t.packet.message_type(), Some(MessageType::Inform));
    assert_eq!(t.packet.ciaddr, IP);
    assert_eq!(t.packet.options.get(code::SERVER_ID), None);
    let ack = reply(&t.packet, MessageType::Ack, Ipv4Addr::UNSPECIFIED, &[sid()]);
    assert!(c.handle_reply(secs(10), &ack, SERVER));
    assert!(matches!(c.state(), State::Bound(b) if b.bound_at == secs(0)));

    let mut c = Client::new(ClientConfig::new(MAC));
    c.start_inform(secs(0), 21, IP, Some(SERVER));
    let t = c.poll_transmit(secs(0)).unwrap();
    assert_eq!(t.to, Destination::Server(SERVER));
    assert_eq!(ip_opt(&t.packet, code::SERVER_ID), Some(SERVER));
    let ack = reply(&t.packet, MessageType::Ack, Ipv4Addr::UNSPECIFIED, &[sid()]);
    assert!(c.handle_reply(secs(0), &ack, SERVER));
    assert_eq!(c.state(), State::Informed { ip: IP });
    assert_eq!(c.binding(), None);
}

#[test]
fn discover_only_stops_at_the_offer() {
    let mut c = Client::new(ClientConfig::new(MAC));
    c.start_discover(secs(0), 30);
    let d = c.poll_transmit(secs(0)).unwrap().packet;
    let from = Ipv4Addr::new(198, 18, 0, 3);
    // No option 54: the sender is taken as the server.
    assert!(c.handle_reply(secs(1), &reply(&d, MessageType::Offer, IP, &[]), from));
    assert_eq!(
        c.state(),
        State::Offered {
            ip: IP,
            server: from
        }
    );
    assert!(c.poll_transmit(secs(1)).is_none());
    assert!(!c.busy());
    assert!(matches!(c.poll_event(), Some(Event::Offer(r)) if r.from == from));
}

#[test]
fn a_lease_that_runs_out_is_dropped_with_its_renewal() {
    let mut c = bound(0, 100);
    assert_eq!(c.poll_timeout(), Some(secs(100)));
    c.start_renew(secs(60), 8, IP, SERVER);
    c.poll_transmit(secs(60)).unwrap();
    assert_eq!(c.poll_timeout(), Some(secs(64)), "the retransmission first");
    c.handle_timeout(secs(100));
    assert_eq!((c.state(), c.binding(), c.xid()), (State::Init, None, None));
    assert_eq!(c.poll_event(), Some(Event::Expired { ip: IP }));
    assert_eq!(c.poll_timeout(), None);

    // While starting over, the old lease is still held until it ends.
    let mut c = bound(0, 100);
    c.start_dora(secs(50), 9);
    assert!(c.binding().is_some());
    c.handle_timeout(secs(100));
    assert_eq!((c.state(), c.binding()), (State::Selecting, None));
    let mut c = bound(0, 100);
    c.handle_timeout(secs(99));
    assert!(matches!(c.state(), State::Bound(_)));
    c.handle_timeout(secs(100));
    assert_eq!(c.state(), State::Init);
}

#[test]
fn an_ack_after_its_lease_would_have_ended_binds_nothing() {
    let mut c = Client::new(ClientConfig::new(MAC));
    c.start_reboot(secs(0), 1, IP);
    let r = c.poll_transmit(secs(0)).unwrap().packet;
    let ack = reply(&r, MessageType::Ack, IP, &[sid(), lease(300)]);
    assert!(
        c.handle_reply(secs(300), &ack, SERVER),
        "taken, and over at once"
    );
    assert_eq!((c.state(), c.binding()), (State::Init, None));
    assert!(matches!(c.poll_event(), Some(Event::Ack(_))));
    assert_eq!(c.poll_event(), Some(Event::Expired { ip: IP }));
}

#[test]
fn a_renewal_without_answer_leaves_the_lease_bound() {
    let mut cfg = ClientConfig::new(MAC);
    cfg.retransmit = probe_retransmit(5);
    let mut c = Client::new(cfg);
    c.start_reboot(secs(0), 1, IP);
    let r = c.poll_transmit(secs(0)).unwrap().packet;
    assert!(c.handle_reply(
        secs(0),
        &reply(&r, MessageType::Ack, IP, &[sid(), lease(300)]),
        SERVER
    ));
    c.start_renew(secs(150), 2, IP, SERVER);
    c.poll_transmit(secs(150)).unwrap();
    c.handle_timeout(secs(155));
    assert!(matches!(c.state(), State::Bound(b) if b.ip == IP));
}

#[test]
fn abandon_starts_over_and_keeps_the_lease() {
    let mut c = bound(0, 300);
    c.start_renew(secs(150), 8, IP, SERVER);
    c.abandon(secs(151));
    assert_eq!(c.state(), State::Init);
    assert_eq!(c.binding().map(|b| b.ip), Some(IP));
    assert!(c.poll_transmit(secs(151)).is_none());
    let mut c = bound(0, 300);
    c.abandon(secs(1));
    assert!(
        matches!(c.state(), State::Bound(_)),
        "nothing was under way"
    );
}

#[test]
fn as_a_relay_with_option82_and_overriding_options() {
    let mut cfg = ClientConfig::new(MAC);
    let relay = Ipv4Addr::new(198, 18, 1, 1);
    cfg.giaddr = Some(relay);
    cfg.option82 = Some(vec![1, 2, b'c', 1]);
    let other = Ipv4Addr::new(198, 18, 0, 99);
    cfg.extra_options = vec![
        (code::REQUESTED_IP, other.octets().to_vec()),
        (60, b"test".to_vec()),
    ];
    let mut c = Client::new(cfg);
    c.start_dora(secs(0), 40);
    let d = c.poll_transmit(secs(0)).unwrap().packet;
    assert_eq!((d.giaddr, d.hops), (relay, 1));
    assert_eq!(
        d.options.get(code::RELAY_AGENT_INFO),
        Some(&[1, 2, b'c', 1][..])
    );
    assert_eq!(d.options.get(60), Some(&b"test"[..]));
    assert!(c.handle_reply(secs(0), &reply(&d, MessageType::Offer, IP, &[sid()]), relay));
    let r = c.poll_transmit(secs(0)).unwrap().packet;
    assert_eq!(
        ip_opt(&r, code::REQUESTED_IP),
        Some(other),
        "--option 50 wins"
    );
    assert_eq!(
        r.options.get(code::RELAY_AGENT_INFO),
        Some(&[1, 2, b'c', 1][..])
    );
}

#[test]
fn events_are_bounded() {
    let mut c = Client::new(ClientConfig::new(MAC));
    for xid in 0..(MAX_EVENTS as u32 + 5) {
        c.start_discover(secs(0), xid);
        let d = c.poll_transmit(secs(0)).unwrap().packet;
        assert!(c.handle_reply(secs(0), &reply(&d, MessageType::Offer, IP, &[]), SERVER));
    }
    let xids: Vec<u32> = std::iter::from_fn(|| c.poll_event())
        .map(|e| match e {
            Event::Offer(r) => r.packet.xid,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(xids.len(), MAX_EVENTS);
    assert_eq!(xids.first(), Some(&5), "the oldest were dropped");
}

#[test]
fn messages_round_trip_through_the_wire_codec() {
    let mut cfg = ClientConfig::new(MAC);
    cfg.client_id = Some(vec![1, 2, 3]);
    cfg.hostname = Some("h".into());
    cfg.option82 = Some(vec![1, 1, 9]);
    cfg.param_request_list = vec![1, 3];
    cfg.max_message_size = Some(1500);
    let mut c = Client::new(cfg);
    c.start_dora(secs(0), 0x1234_5678);
    let d = c.poll_transmit(secs(0)).unwrap().packet;
    let mut buf = Vec::new();
    d.encode(1500, &mut buf);
    assert_eq!(Packet::decode(&buf).unwrap(), d);
}
