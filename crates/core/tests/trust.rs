//! Whose Option 82 counts: a client that writes its own (giaddr 0) or hides one in the
//! overloaded `file`/`sname` fields is served as a client without relay data, and the
//! subscriber it named keeps its reservation; snooping switches on listed interfaces and
//! listed relays are believed.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::*;
use leased_config::{Format, load_str};
use leased_core::trust::{self, Untrusted};
use leased_core::{LeaseState, Route};
use leased_wire::{MessageType, Packet, code};

/// circuit-id "c-victim", remote-id "r-victim".
const VICTIM_82: &[u8] = &[
    1, 8, b'c', b'-', b'v', b'i', b'c', b't', b'i', b'm', 2, 8, b'r', b'-', b'v', b'i', b'c', b't',
    b'i', b'm',
];
const RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

const CONFIG: &str = r#"
[server]
lease_time = 3600
max_leases_per_circuit_id = 1
EXTRA

[[subnets]]
network = "198.18.0.0/24"
interface = "eth0"
routers = ["198.18.0.1"]
pools = ["198.18.0.10-198.18.0.20"]

[[subnets]]
network = "198.18.1.0/24"
routers = ["198.18.1.1"]
pools = ["198.18.1.100-198.18.1.110"]

[[subnets]]
network = "198.18.9.0/24"
routers = ["198.18.9.1"]
pools = ["198.18.9.100-198.18.9.110"]

[[reservations]]
circuit_id = '"c-victim"'
ip = "198.18.0.5"

[[reservations]]
circuit_id = '"c-victim"'
remote_id = '"r-victim"'
ip = "198.18.1.5"
"#;

fn loaded(extra: &str) -> leased_config::Config {
    let text = CONFIG.replace("EXTRA", extra);
    load_str(&text, "t.toml", Format::Toml).unwrap_or_else(|e| panic!("{e}"))
}

fn harness(extra: &str) -> Harness {
    Harness::new(loaded(extra).network)
}

/// The victim's DORA through `relay` (0.0.0.0: a snooping switch on eth0).
fn victim_binds(h: &mut Harness, relay: Ipv4Addr, want: Ipv4Addr) {
    let offer = h.send(
        &Pkt::discover(1)
            .giaddr(relay)
            .opt(code::RELAY_AGENT_INFO, VICTIM_82),
    );
    assert_eq!(offered_ip(&offer), want, "{offer:?}");
    let ack = h.send(
        &Pkt::select(1, Ipv4Addr::new(198, 18, 0, 1), want)
            .giaddr(relay)
            .opt(code::RELAY_AGENT_INFO, VICTIM_82),
    );
    assert_eq!(sent(&ack), Some(MessageType::Ack), "{ack:?}");
}

#[test]
fn a_direct_client_forging_a_subscribers_option82_gets_a_pool_address() {
    let mut h = harness("");
    victim_binds(&mut h, RELAY, Ipv4Addr::new(198, 18, 1, 5));
    let victim = h.table.by_ip(Ipv4Addr::new(198, 18, 1, 5)).unwrap().clone();

    // The attacker on eth0 (giaddr 0) names the victim's circuit, and asks for the victim's
    // subnet by link selection (sub-option 5) and option 118.
    let mut forged = VICTIM_82.to_vec();
    forged.extend([5, 4, 198, 18, 1, 0]);
    let attack = Pkt::discover(2)
        .opt(code::RELAY_AGENT_INFO, &forged)
        .opt(code::SUBNET_SELECTION, &[198, 18, 9, 0]);
    let mut req = h.request(&attack);
    assert_eq!(
        trust::judge(&req, &h.plan.network.relay_trust),
        Err(Untrusted::Direct)
    );
    // decide judges on its own: the reservation on eth0's subnet is not the attacker's.
    let d = leased_core::decide(&req, &h.plan, &h.table, h.now);
    let ip = offered_ip(&d);
    assert!(
        ip != Ipv4Addr::new(198, 18, 0, 5),
        "the victim's reservation was offered"
    );
    assert_eq!(
        option(&d, code::RELAY_AGENT_INFO),
        None,
        "forged relay data echoed"
    );
    // Option 118 is the client's own hint and still selects a subnet (RFC 3011); only relay
    // data is relay-only.
    assert_eq!(ip.octets()[2], 9, "{d:?}");
    assert!(d.changes.iter().all(|c| c.lease.ip != victim.ip));
    assert!(
        d.changes.iter().all(|c| c.lease.circuit_id.is_none()),
        "billed as the victim"
    );

    // screen() removes it for everything that reads the packet before decide (limits, SQL).
    assert_eq!(
        trust::screen(&mut req, &h.plan.network.relay_trust),
        Some(Untrusted::Direct)
    );
    assert_eq!(req.packet.options.get(code::RELAY_AGENT_INFO), None);
    assert_eq!(trust::screen(&mut req, &h.plan.network.relay_trust), None);

    // The whole exchange: the attacker is bound to a pool address; the victim keeps its lease.
    let attack = Pkt::discover(2).opt(code::RELAY_AGENT_INFO, VICTIM_82);
    let offer = h.send(&attack);
    let got = offered_ip(&offer);
    assert!(
        (10..=20).contains(&got.octets()[3]) && got.octets()[2] == 0,
        "{got}"
    );
    let ack = h.send(
        &Pkt::select(2, Ipv4Addr::new(198, 18, 0, 1), got).opt(code::RELAY_AGENT_INFO, VICTIM_82),
    );
    assert_eq!(sent(&ack), Some(MessageType::Ack));
    // The circuit cap (1 lease per circuit) did not count the attacker against the victim,
    // and the victim's binding is untouched.
    let still = h.table.by_ip(Ipv4Addr::new(198, 18, 1, 5)).unwrap();
    assert_eq!(still, &victim);
    assert_eq!(still.state, LeaseState::Bound);
    let renew = h.send(
        &Pkt::renew(1, Ipv4Addr::new(198, 18, 1, 5))
            .giaddr(RELAY)
            .opt(code::RELAY_AGENT_INFO, VICTIM_82),
    );
    assert_eq!(
        sent(&renew),
        Some(MessageType::Ack),
        "victim NAKed: {renew:?}"
    );
}

#[test]
fn a_snooping_switch_on_a_trusted_interface_is_believed() {
    let mut h = harness(r#"trusted_option82_interfaces = ["eth0"]"#);
    let req = h.request(&Pkt::discover(1).opt(code::RELAY_AGENT_INFO, VICTIM_82));
    assert_eq!(trust::judge(&req, &h.plan.network.relay_trust), Ok(()));
    victim_binds(&mut h, Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(198, 18, 0, 5));
    // The same packet on another interface is a client's own.
    h.interface = Some("eth1".into());
    let req = h.request(&Pkt::discover(3).opt(code::RELAY_AGENT_INFO, VICTIM_82));
    assert_eq!(
        trust::judge(&req, &h.plan.network.relay_trust),
        Err(Untrusted::Direct)
    );
}

#[test]
fn only_listed_relays_are_believed_when_a_list_exists() {
    let mut h = harness(r#"trusted_relays = ["198.18.1.0/28", "198.18.9.1"]"#);
    victim_binds(&mut h, RELAY, Ipv4Addr::new(198, 18, 1, 5));
    // A relay outside the list (anyone can write giaddr): served from the pool of giaddr's
    // subnet, as a client without relay data.
    let rogue = Ipv4Addr::new(198, 18, 1, 200);
    let mut req = h.request(
        &Pkt::discover(2)
            .giaddr(rogue)
            .opt(code::RELAY_AGENT_INFO, VICTIM_82),
    );
    assert_eq!(
        trust::judge(&req, &h.plan.network.relay_trust),
        Err(Untrusted::UnlistedRelay)
    );
    let d = leased_core::decide(&req, &h.plan, &h.table, h.now);
    assert_eq!(offered_ip(&d).octets()[2], 1);
    assert!(offered_ip(&d).octets()[3] >= 100, "{d:?}");
    // A listed giaddr sent from an unlisted source is not believed either.
    req.packet.giaddr = RELAY;
    req.src_addr = Some(Ipv4Addr::new(198, 18, 0, 77));
    assert_eq!(
        trust::judge(&req, &h.plan.network.relay_trust),
        Err(Untrusted::UnlistedRelay)
    );
    req.src_addr = Some(Ipv4Addr::new(198, 18, 9, 1));
    assert_eq!(trust::judge(&req, &h.plan.network.relay_trust), Ok(()));
}

#[test]
fn the_relay_port_is_honoured_only_for_a_trusted_relay_address() {
    let mut o82 = VICTIM_82.to_vec();
    o82.extend([19, 0]);
    let h = harness(r#"trusted_relays = ["198.18.1.1"]"#);
    let mut req = h.request(
        &Pkt::discover(1)
            .giaddr(RELAY)
            .opt(code::RELAY_AGENT_INFO, &o82),
    );
    req.src_port = Some(4067);
    req.src_addr = Some(RELAY);
    let d = leased_core::decide(&req, &h.plan, &h.table, h.now);
    assert_eq!(
        d.reply().unwrap().route,
        Route::Relay {
            giaddr: RELAY,
            port: 4067
        }
    );
    // A direct client writing giaddr 0 and sub-option 19: no relay data at all.
    let mut req = h.request(&Pkt::discover(2).opt(code::RELAY_AGENT_INFO, &o82));
    req.src_port = Some(4067);
    let d = leased_core::decide(&req, &h.plan, &h.table, h.now);
    assert!(!matches!(d.reply().unwrap().route, Route::Relay { .. }));
}

#[test]
fn option82_hidden_in_file_and_sname_is_never_honoured() {
    let mut h = harness("");
    // A relayed request whose relay wrote circuit "c-other"; the client hid the victim's
    // circuit and a link selection in `file` (option 52 = 1).
    let mut raw = Vec::new();
    let mut p = Pkt::discover(2)
        .giaddr(RELAY)
        .opt(
            code::RELAY_AGENT_INFO,
            &[1, 7, b'c', b'-', b'o', b't', b'h', b'e', b'r'],
        )
        .0;
    p.encode(576, &mut raw);
    // The encoder never writes overload: announce it (52 = 1, "file holds options") right
    // after the magic cookie and put the hidden option into `file` by hand.
    raw.splice(240..240, [code::OVERLOAD, 1, 1]);
    let file_at = 108;
    let mut hidden = vec![82, VICTIM_82.len() as u8 + 6];
    hidden.extend_from_slice(VICTIM_82);
    hidden.extend([5, 4, 198, 18, 9, 0]);
    hidden.push(255);
    raw[file_at..file_at + hidden.len()].copy_from_slice(&hidden);
    let decoded = Packet::decode(&raw).unwrap();
    assert!(decoded.option82_in_overload);
    p = decoded;
    let mut req = h.request(&Pkt(p));
    assert_eq!(
        trust::screen(&mut req, &h.plan.network.relay_trust),
        Some(Untrusted::Overloaded)
    );
    assert_eq!(
        req.packet.options.get(code::RELAY_AGENT_INFO),
        Some(&[1, 7, b'c', b'-', b'o', b't', b'h', b'e', b'r'][..]),
        "the relay's own Option 82 is kept as it was"
    );
    let d = leased_core::decide(&req, &h.plan, &h.table, h.now);
    let ip = offered_ip(&d);
    assert_eq!(
        ip.octets()[2],
        1,
        "link selection from file was honoured: {ip}"
    );
    assert_ne!(
        ip,
        Ipv4Addr::new(198, 18, 1, 5),
        "the victim's reservation was offered"
    );
    h.table.apply(&d.changes);
}

#[test]
fn trust_keys_are_checked_and_an_open_relay_set_is_warned_about() {
    let bad = "[server]\ntrusted_relays = [\"198.18.1.1\", \"nope\", \"0.0.0.0/0\"]\n\
               trusted_option82_interfaces = [\"eth 0\"]\n";
    let e = load_str(bad, "t.toml", Format::Toml)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.toml:2:") && e.contains("server.trusted_relays[1]"),
        "{e}"
    );
    assert!(e.contains("server.trusted_relays[2]"), "{e}");
    assert!(
        e.contains("t.toml:3:") && e.contains("trusted_option82_interfaces[0]"),
        "{e}"
    );

    // Relay-keyed reservations and a circuit cap with every relay believed: one warning that
    // names them; listing the relays silences it.
    let w = leased_config::relay_trust_warnings(&loaded(""));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("2 relay-keyed reservations") && w[0].contains("lease caps"),
        "{w:?}"
    );
    let listed = loaded(r#"trusted_relays = ["198.18.1.1"]"#);
    assert!(leased_config::relay_trust_warnings(&listed).is_empty());
    let plain = load_str(
        "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.20\"]\n",
        "t.toml",
        Format::Toml,
    )
    .unwrap();
    assert!(leased_config::relay_trust_warnings(&plain).is_empty());
}

#[test]
fn a_signing_relay_is_believed_only_with_a_valid_fresh_signature() {
    use leased_core::RelayAuthCheck;
    use leased_core::relay_auth::AuthFailure;
    // The relay signs (RFC 4030) and is not in trusted_relays: the signature alone decides.
    let h = harness(
        "trusted_relays = [\"198.18.9.9\"]\n\n[[relay_auth]]\nrelay = \"198.18.1.1\"\n\
         key = \"relay-key-0123456789\"\n",
    );
    let mut req = h.request(
        &Pkt::discover(1)
            .giaddr(RELAY)
            .opt(code::RELAY_AGENT_INFO, VICTIM_82),
    );
    let trust = &h.plan.network.relay_trust;
    assert_eq!(
        trust::judge(&req, trust),
        Err(Untrusted::Auth(AuthFailure::Missing)),
        "unchecked is not believed"
    );
    req.relay_auth = RelayAuthCheck::Valid;
    assert_eq!(trust::judge(&req, trust), Ok(()));
    let d = leased_core::decide(&req, &h.plan, &h.table, h.now);
    assert_eq!(offered_ip(&d), Ipv4Addr::new(198, 18, 1, 5), "{d:?}");
    for f in [
        AuthFailure::BadMac,
        AuthFailure::Replayed,
        AuthFailure::Unsupported,
    ] {
        req.relay_auth = RelayAuthCheck::Failed(f);
        assert_eq!(trust::judge(&req, trust), Err(Untrusted::Auth(f)));
        let d = leased_core::decide(&req, &h.plan, &h.table, h.now);
        assert_ne!(offered_ip(&d), Ipv4Addr::new(198, 18, 1, 5), "{f:?}");
    }
    // A key too short, or a relay listed twice, names its line.
    let e = load_str(
        "[[relay_auth]]\nrelay = \"198.18.1.1\"\nkey = \"short\"\n\n[[relay_auth]]\nrelay = \"198.18.1.1\"\nkey = \"relay-key-0123456789\"\n",
        "t.toml",
        Format::Toml,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("t.toml:3:") && e.contains("relay_auth[0].key"),
        "{e}"
    );
    assert!(e.contains("t.toml:6:") && e.contains("listed twice"), "{e}");
}
