//! The machine's RFC 4703 decisions, driven with signed answers as a DNS server gives them.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use leased_core::fqdn::{FLAG_E, FLAG_N, FqdnPolicy};

use crate::message::{DHCID, sign_response};
use crate::{Algorithm, Binding, ChangeKind, Ddns, Key, Op, Persist, Report, Settings, Zones};

const NOW: u64 = 1_700_000_000_000;
const IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

fn key() -> Key {
    Key::new("k", Algorithm::HmacSha256, b"secret-secret".to_vec()).unwrap()
}

fn server() -> SocketAddr {
    "127.0.0.1:5300".parse().unwrap()
}

fn machine() -> Ddns {
    Ddns::new(
        Settings {
            servers: vec![server()],
            key: key(),
            ttl: 300,
            timeout_ms: 2000,
            max_backoff_ms: 8000,
            queue_limit: 4,
            names_limit: 100,
        },
        42,
    )
}

fn zones() -> Zones {
    Zones {
        forward_zone: Some("example.test".into()),
        reverse_zone: Some("18.198.in-addr.arpa".into()),
        policy: FqdnPolicy {
            suffix: "example.test".into(),
            forward: true,
            reverse: true,
            ..FqdnPolicy::default()
        },
    }
}

fn binding(kind: ChangeKind, mac: u8, name: &str) -> Binding {
    let hw = vec![2, 0, 0, 0, 0, mac];
    let mut id = vec![1];
    id.extend_from_slice(&hw);
    Binding {
        kind,
        ip: IP,
        client_id: id,
        hwaddr: hw,
        hostname: Some(name.into()),
        client_fqdn: None,
    }
}

/// The message sent, decoded, and a signed answer to it with `rc`.
fn exchange(d: &mut Ddns, rc: ResponseCode) -> Message {
    let t = d.poll_transmit().expect("a message to send");
    assert!(d.poll_transmit().is_none(), "one message at a time");
    let m = Message::from_vec(&t.bytes).unwrap();
    let mac = m.signature().unwrap().data.mac.clone();
    let answer = sign_response(&key(), &mac, m.metadata.id, NOW / 1000, rc);
    d.handle_response(t.to, &answer, NOW);
    m
}

fn reports(d: &mut Ddns) -> Vec<Report> {
    std::iter::from_fn(|| d.poll_report())
        .filter(|r| !matches!(r, Report::Ignored { .. }))
        .collect()
}

#[test]
fn add_when_the_name_is_free_then_ptr() {
    let mut d = machine();
    d.handle_binding(&binding(ChangeKind::Bound, 1, "host"), &zones(), NOW);
    let m = exchange(&mut d, ResponseCode::NoError);
    assert_eq!(m.queries[0].name().to_string(), "example.test.");
    assert_eq!(m.answers[0].name.to_string(), "host.example.test.");
    assert_eq!(m.answers[0].dns_class, DNSClass::NONE);
    assert_eq!(m.authorities[1].record_type(), DHCID);
    let m = exchange(&mut d, ResponseCode::NoError);
    assert_eq!(m.queries[0].name().to_string(), "18.198.in-addr.arpa.");
    assert_eq!(
        m.authorities[1].name.to_string(),
        "10.0.18.198.in-addr.arpa."
    );
    assert_eq!(m.authorities[1].record_type(), RecordType::PTR);
    assert_eq!(
        reports(&mut d),
        vec![Report::Done {
            op: Op::Add,
            fqdn: "host.example.test".into(),
            ip: IP
        }]
    );
    assert_eq!(d.queued(), 0);
    // A renewal of the same binding changes nothing in DNS.
    d.handle_binding(&binding(ChangeKind::Renewed, 1, "host"), &zones(), NOW);
    assert!(d.poll_transmit().is_none());
}

#[test]
fn name_in_use_with_our_dhcid_is_replaced_with_another_is_refused() {
    let mut d = machine();
    d.handle_binding(&binding(ChangeKind::Bound, 1, "host"), &zones(), NOW);
    exchange(&mut d, ResponseCode::YXDomain);
    // §5.3.2: the DHCID prerequisite, then the A replaced.
    let m = exchange(&mut d, ResponseCode::NoError);
    assert_eq!(m.answers[0].record_type(), DHCID);
    assert_eq!(m.answers[0].dns_class, DNSClass::IN);
    assert_eq!(m.authorities[0].dns_class, DNSClass::ANY);
    exchange(&mut d, ResponseCode::NoError);
    assert!(matches!(reports(&mut d)[..], [Report::Done { .. }]));

    // Another client wants the same name: YXDOMAIN, then NXRRSET on its DHCID: refused, and
    // no PTR is written for it.
    let mut other = binding(ChangeKind::Bound, 2, "host");
    other.ip = Ipv4Addr::new(198, 18, 0, 11);
    d.handle_binding(&other, &zones(), NOW);
    exchange(&mut d, ResponseCode::YXDomain);
    exchange(&mut d, ResponseCode::NXRRSet);
    assert!(d.poll_transmit().is_none());
    assert_eq!(
        reports(&mut d),
        vec![Report::Conflict {
            op: Op::Add,
            fqdn: "host.example.test".into(),
            ip: other.ip
        }]
    );
    // Its release touches nothing: it never had the name.
    other.kind = ChangeKind::Released;
    d.handle_binding(&other, &zones(), NOW);
    assert!(d.poll_transmit().is_none());
}

#[test]
fn release_removes_a_then_dhcid_then_ptr_only_while_the_dhcid_matches() {
    let mut d = machine();
    d.handle_binding(&binding(ChangeKind::Bound, 1, "host"), &zones(), NOW);
    exchange(&mut d, ResponseCode::NoError);
    exchange(&mut d, ResponseCode::NoError);
    reports(&mut d);
    d.handle_binding(&binding(ChangeKind::Released, 1, "host"), &zones(), NOW);
    let m = exchange(&mut d, ResponseCode::NoError);
    assert_eq!(m.answers[0].record_type(), DHCID);
    assert_eq!(m.authorities[0].dns_class, DNSClass::NONE);
    assert_eq!(m.authorities[0].record_type(), RecordType::A);
    let m = exchange(&mut d, ResponseCode::NoError);
    assert_eq!(m.authorities[0].record_type(), DHCID);
    let m = exchange(&mut d, ResponseCode::NoError);
    assert_eq!(m.authorities[0].record_type(), RecordType::PTR);
    assert!(matches!(
        reports(&mut d)[..],
        [Report::Done { op: Op::Remove, .. }]
    ));

    // Expiry after the name changed hands: NXRRSET on the DHCID, nothing removed.
    d.handle_binding(&binding(ChangeKind::Bound, 1, "host"), &zones(), NOW);
    exchange(&mut d, ResponseCode::NoError);
    exchange(&mut d, ResponseCode::NoError);
    reports(&mut d);
    d.handle_binding(&binding(ChangeKind::Expired, 1, "host"), &zones(), NOW);
    exchange(&mut d, ResponseCode::NXRRSet);
    assert!(d.poll_transmit().is_none(), "no PTR removal");
    assert!(matches!(
        reports(&mut d)[..],
        [Report::Conflict { op: Op::Remove, .. }]
    ));
}

#[test]
fn option_81_flags_decide_what_is_updated() {
    let mut d = machine();
    // S=0: the client does its A itself; the server does the PTR only.
    let mut b = binding(ChangeKind::Bound, 1, "ignored");
    b.client_fqdn = Some(vec![FLAG_E, 0, 0, 4, b'b', b'o', b'o', b'k']);
    d.handle_binding(&b, &zones(), NOW);
    let m = exchange(&mut d, ResponseCode::NoError);
    assert_eq!(m.authorities[1].record_type(), RecordType::PTR);
    assert_eq!(
        format!("{}", m.authorities[1].data),
        "book.example.test.",
        "the option 81 name wins over option 12"
    );
    assert!(d.poll_transmit().is_none());
    // N=1: nothing at all.
    let mut d = machine();
    b.client_fqdn = Some(vec![FLAG_N, 0, 0]);
    d.handle_binding(&b, &zones(), NOW);
    assert!(d.poll_transmit().is_none());
}

#[test]
fn no_answer_retries_with_backoff_and_forged_answers_are_ignored() {
    let mut d = machine();
    d.handle_binding(&binding(ChangeKind::Bound, 1, "host"), &zones(), NOW);
    let first = d.poll_transmit().unwrap();
    // A forged answer (another key) and one from another address change nothing.
    let m = Message::from_vec(&first.bytes).unwrap();
    let mac = m.signature().unwrap().data.mac.clone();
    let forged_key = Key::new("k", Algorithm::HmacSha256, b"guess".to_vec()).unwrap();
    let forged = sign_response(
        &forged_key,
        &mac,
        m.metadata.id,
        NOW / 1000,
        ResponseCode::NoError,
    );
    d.handle_response(first.to, &forged, NOW);
    let real = sign_response(
        &key(),
        &mac,
        m.metadata.id,
        NOW / 1000,
        ResponseCode::NoError,
    );
    d.handle_response("127.0.0.2:5300".parse().unwrap(), &real, NOW);
    let ignored: Vec<_> = std::iter::from_fn(|| d.poll_report()).collect();
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert!(d.poll_transmit().is_none());
    assert_eq!(d.poll_timeout(), Some(NOW + 2000));
    // Timeouts: 1 s, 2 s, 4 s, 8 s, 8 s… between tries.
    let mut t = NOW + 2000;
    for wait in [1000, 2000, 4000, 8000, 8000] {
        d.handle_timeout(t);
        assert!(d.poll_transmit().is_none());
        assert_eq!(d.poll_timeout(), Some(t + wait));
        t += wait;
        d.handle_timeout(t);
        assert!(d.poll_transmit().is_some(), "tried again");
        t += 2000;
    }
}

#[test]
fn the_queue_survives_a_restart_and_is_bounded() {
    let mut d = machine();
    let mut store = std::collections::BTreeMap::new();
    for i in 0..3u8 {
        let mut b = binding(ChangeKind::Bound, i, &format!("h{i}"));
        b.ip = Ipv4Addr::new(198, 18, 0, 10 + i);
        d.handle_binding(&b, &zones(), NOW);
    }
    while let Some(p) = d.poll_persist() {
        match p {
            Persist::Put { key, value } => store.insert(key, value),
            Persist::Remove { key } => store.remove(&key),
        };
    }
    assert_eq!(store.len(), 3);
    // A new process: the same three jobs, in order.
    let mut d = machine();
    assert_eq!(d.restore(store.clone()), 0);
    assert_eq!(d.queued(), 3);
    d.handle_timeout(NOW);
    let m = Message::from_vec(&d.poll_transmit().unwrap().bytes).unwrap();
    assert_eq!(m.answers[0].name.to_string(), "h0.example.test.");
    // Two more: the limit is four, so the oldest behind the one in flight goes.
    for i in 3..5u8 {
        let mut b = binding(ChangeKind::Bound, i, &format!("h{i}"));
        b.ip = Ipv4Addr::new(198, 18, 0, 10 + i);
        d.handle_binding(&b, &zones(), NOW);
    }
    assert_eq!(d.queued(), 4);
    assert!(
        std::iter::from_fn(|| d.poll_report())
            .any(|r| matches!(r, Report::Dropped { ref fqdn, .. } if fqdn == "h1.example.test"))
    );
    assert_eq!(d.restore([("junk".to_string(), "x".to_string())]), 1);
}
