//! Leasequery decisions without a socket or a clock: RFC 4388 answers by address, MAC and
//! client-id, RFC 6148 by remote-id, RFC 6926 bulk steps by remote-id and by window, the
//! refusals, and the active stream's update messages, queries built by the test kit's
//! requestor and answers read by it.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashSet;
use std::net::Ipv4Addr;

use leased_config::{Format, load_str};
use leased_core::{ClientId, HwAddr, Lease, LeaseState, LeaseTable, Plan, Timestamp};
use leased_engine::leasequery::{self as lq, Context, Cursor, Query, Transport};
use leased_testkit::leasequery::{Requestor, encode, parse_answer};
use leased_wire::Packet;
use leased_wire::leasequery::{DhcpState, Status, msg};

const NOW: u64 = 1_000_000;

fn plan() -> Plan {
    let config = load_str(
        "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.200\"]\n",
        "t.toml",
        Format::Toml,
    )
    .unwrap();
    Plan::new(config.network)
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, n)
}

fn mac(n: u8) -> Vec<u8> {
    vec![2, 0, 0, 0, 0, n]
}

fn lease(n: u8, client: u8, state: LeaseState, starts: u64, expires: u64) -> Lease {
    let mut id = vec![1];
    id.extend(mac(client));
    Lease {
        ip: ip(n),
        client_id: ClientId(id),
        hwaddr: HwAddr(mac(client)),
        hostname: None,
        state,
        starts: Timestamp(starts),
        expires: Timestamp(expires),
        first_seen: Timestamp(starts),
        circuit_id: Some(format!("port{client}").into_bytes()),
        remote_id: Some(if client < 5 {
            b"olt-a".to_vec()
        } else {
            b"olt-b".to_vec()
        }),
        subscriber_id: None,
    }
}

/// Client 1 holds .10 and .11 (.11 newer); client 2 held .12 (released); client 6 holds .13
/// through olt-b; .14 is offered.
fn table() -> LeaseTable {
    LeaseTable::from_leases([
        lease(10, 1, LeaseState::Bound, NOW - 100, NOW + 500),
        lease(11, 1, LeaseState::Bound, NOW - 50, NOW + 550),
        lease(12, 2, LeaseState::Released, NOW - 900, NOW - 300),
        lease(13, 6, LeaseState::Bound, NOW - 10, NOW + 590),
        lease(14, 3, LeaseState::Offered, NOW - 1, NOW + 30),
    ])
}

fn cx(transport: Transport) -> Context {
    Context {
        server_id: ip(1),
        now: Timestamp(NOW),
        transport,
    }
}

fn requestor() -> Requestor {
    Requestor::new(Ipv4Addr::new(198, 18, 0, 2), 100)
}

/// The UDP answer to `q`, as the requestor reads it off the wire.
fn udp(q: &Packet) -> leased_testkit::leasequery::Answer {
    let q = Packet::decode(&encode(q)).unwrap();
    let parsed = lq::parse(&q, false).unwrap();
    let a = lq::answer_udp(&table(), &plan(), &parsed, &cx(Transport::Udp));
    parse_answer(&encode(&a)).unwrap()
}

#[test]
fn by_ip_active_unassigned_unknown() {
    let mut r = requestor();
    let a = udp(&r.by_ip(ip(10)));
    assert_eq!(a.kind, msg::LEASEACTIVE);
    assert_eq!((a.ip, a.chaddr.clone()), (ip(10), mac(1)));
    assert_eq!(a.server_id, Some(ip(1)));
    assert_eq!(a.lease_time, Some(500));
    assert_eq!(a.last_transaction, Some(100));
    assert_eq!(a.state, Some(DhcpState::Active.code()));
    assert_eq!(a.base_time, Some(NOW as u32));
    assert_eq!(a.start_time_of_state, Some(100));
    assert_eq!(a.remote_id.as_deref(), Some(&b"olt-a"[..]));
    assert_eq!(a.xid, 100);
    // Released, offered and never-used addresses of ours: unassigned; foreign: unknown.
    let a = udp(&r.by_ip(ip(12)));
    assert_eq!((a.kind, a.ip), (msg::LEASEUNASSIGNED, ip(12)));
    assert_eq!(a.lease_time, None);
    assert_eq!(a.state, Some(DhcpState::Released.code()));
    assert_eq!(udp(&r.by_ip(ip(14))).kind, msg::LEASEUNASSIGNED);
    assert_eq!(udp(&r.by_ip(ip(99))).kind, msg::LEASEUNASSIGNED);
    let a = udp(&r.by_ip(Ipv4Addr::new(198, 19, 0, 1)));
    assert_eq!(a.kind, msg::LEASEUNKNOWN);
}

#[test]
fn by_mac_and_client_id_name_the_newest_and_every_address() {
    let mut r = requestor();
    let m: [u8; 6] = mac(1).try_into().unwrap();
    for a in [
        udp(&r.by_mac(m)),
        udp(&r.by_client_id(&[1, 2, 0, 0, 0, 0, 1])),
    ] {
        assert_eq!(a.kind, msg::LEASEACTIVE);
        assert_eq!(a.ip, ip(11), "the most recent binding");
        assert_eq!(a.associated, vec![ip(10), ip(11)]);
        assert_eq!(a.client_id.as_deref(), Some(&[1, 2, 0, 0, 0, 0, 1][..]));
    }
    // Client 2's only lease is released; client 9 is unknown.
    assert_eq!(
        udp(&r.by_mac(mac(2).try_into().unwrap())).kind,
        msg::LEASEUNKNOWN
    );
    assert_eq!(
        udp(&r.by_mac(mac(9).try_into().unwrap())).kind,
        msg::LEASEUNKNOWN
    );
}

#[test]
fn refusals() {
    let mut r = requestor();
    // No query type at all over UDP.
    let mut q = r.by_ip(Ipv4Addr::UNSPECIFIED);
    q.options.remove(leased_wire::code::CLIENT_ID);
    assert_eq!(lq::parse(&q, false).unwrap_err().label, "no_query");
    // Over TCP the same is "all bindings".
    assert_eq!(
        lq::parse(&r.bulk_all(None, None), true).unwrap().query,
        Query::All
    );
    // Two query types over TCP.
    let mut q = r.by_ip(ip(10));
    q.options.set(leased_wire::code::CLIENT_ID, vec![1, 2, 3]);
    assert_eq!(
        lq::parse(&q, true).unwrap_err().status,
        Status::MalformedQuery
    );
    // Relay-id is not recorded with leases.
    let e = lq::parse(&r.bulk_by_relay_id(b"relay"), true).unwrap_err();
    assert_eq!(e.status, Status::NotAllowed);
    // A bad query-start-time.
    let mut q = r.bulk_all(None, None);
    q.options
        .set(leased_wire::leasequery::opt::QUERY_START_TIME, vec![1, 2]);
    assert_eq!(
        lq::parse(&q, true).unwrap_err().status,
        Status::MalformedQuery
    );
}

fn walk(q: &Packet, skip: &HashSet<Ipv4Addr>, max: usize) -> Vec<Vec<Packet>> {
    let mut c = Cursor::new(lq::parse(q, true).unwrap());
    let t = table();
    let mut steps = Vec::new();
    while !c.finished() {
        steps.push(c.step(&t, skip, max, &cx(Transport::Tcp)));
        assert!(steps.len() < 100);
    }
    steps
}

fn ips(steps: &[Vec<Packet>]) -> Vec<Ipv4Addr> {
    steps.iter().flatten().map(|p| p.ciaddr).collect()
}

#[test]
fn bulk_by_remote_id_window_and_steps() {
    let mut r = requestor();
    let steps = walk(&r.bulk_by_remote_id(b"olt-a", None), &HashSet::new(), 256);
    // Offers are no bindings; the released .12 is described as such.
    assert_eq!(ips(&steps), vec![ip(10), ip(11), ip(12)]);
    let kinds: Vec<u8> = steps
        .iter()
        .flatten()
        .map(|p| lq::message_type(p).unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![msg::LEASEACTIVE, msg::LEASEACTIVE, msg::LEASEUNASSIGNED]
    );
    let a = parse_answer(&encode(&steps[0][0])).unwrap();
    assert_eq!(a.base_time, Some(NOW as u32));
    assert_eq!(a.circuit_id.as_deref(), Some(&b"port1"[..]));
    // Narrowed to one circuit; another relay.
    let q = r.bulk_by_remote_id(b"olt-a", Some(b"port2"));
    assert_eq!(ips(&walk(&q, &HashSet::new(), 256)), vec![ip(12)]);
    let q = r.bulk_by_remote_id(b"olt-b", None);
    assert_eq!(ips(&walk(&q, &HashSet::new(), 256)), vec![ip(13)]);
    // One answer per step; every binding once.
    let steps = walk(&r.bulk_all(None, None), &HashSet::new(), 1);
    assert_eq!(ips(&steps), vec![ip(10), ip(11), ip(12), ip(13)]);
    assert!(steps.iter().all(|s| s.len() <= 1));
    // Changed within the last 60 s; changes waiting for a commit left to their event.
    let q = r.bulk_all(Some((NOW - 60) as u32), None);
    assert_eq!(ips(&walk(&q, &HashSet::new(), 256)), vec![ip(11), ip(13)]);
    let q = r.bulk_all(Some((NOW - 60) as u32), None);
    assert_eq!(ips(&walk(&q, &HashSet::from([ip(13)]), 256)), vec![ip(11)]);
    let q = r.bulk_all(None, Some((NOW - 200) as u32));
    assert_eq!(ips(&walk(&q, &HashSet::new(), 256)), vec![ip(12)]);
    // A single address over TCP.
    let q = r.by_ip(ip(13));
    assert_eq!(ips(&walk(&q, &HashSet::new(), 256)), vec![ip(13)]);
}

#[test]
fn active_updates_and_status_messages() {
    let l = lease(20, 7, LeaseState::Bound, NOW, NOW + 600);
    let a = parse_answer(&encode(&lq::update(&l, 42, &cx(Transport::Tcp)))).unwrap();
    assert_eq!((a.kind, a.xid, a.ip), (msg::LEASEACTIVE, 42, ip(20)));
    assert_eq!(a.state, Some(DhcpState::Active.code()));
    let released = Lease {
        state: LeaseState::Released,
        expires: Timestamp(NOW),
        ..l
    };
    let a = parse_answer(&encode(&lq::update(&released, 42, &cx(Transport::Tcp)))).unwrap();
    assert_eq!((a.kind, a.chaddr), (msg::LEASEUNASSIGNED, mac(7)));
    assert_eq!(a.state, Some(DhcpState::Released.code()));
    assert_eq!(a.start_time_of_state, Some(0));
    let s = lq::status(
        42,
        Status::CatchUpComplete,
        "catch-up complete",
        &cx(Transport::Tcp),
    );
    let a = parse_answer(&encode(&s)).unwrap();
    assert_eq!(a.kind, msg::LEASEQUERYSTATUS);
    assert_eq!(a.status, Some((7, "catch-up complete".into())));
    let a = parse_answer(&encode(&lq::done(42, &cx(Transport::Tcp)))).unwrap();
    assert_eq!((a.kind, a.status), (msg::LEASEQUERYDONE, None));
    let a = parse_answer(&encode(&lq::tls_answer(1, false, &cx(Transport::Tcp)))).unwrap();
    assert_eq!(
        a.status.map(|s| s.0),
        Some(Status::TlsConnectionRefused.code())
    );
}
