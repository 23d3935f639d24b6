//! Relayed networks, Option 82 assignment and client classes (issue 4), decided end to end
//! from configs loaded by the real loader and packets carrying the pydhcpdb seed's exact
//! Option 82 bytes.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::*;
use leased_config::{Format, load_str};
use leased_core::{Decision, DropReason, LeaseState, Route};
use leased_wire::{MessageType, code};

/// `01 06 00 04 00 01 00 04 02 08 00 06 c8 be 19 93 11 48`: circuit-id 00 04 00 01 00 04
/// (D-Link format: VLAN 1, module 0, port 4), remote-id 00 06 + switch MAC c8:be:19:93:11:48.
const SEED: [u8; 18] = [
    0x01, 0x06, 0x00, 0x04, 0x00, 0x01, 0x00, 0x04, 0x02, 0x08, 0x00, 0x06, 0xc8, 0xbe, 0x19, 0x93,
    0x11, 0x48,
];

/// The same switch, port `port`.
fn port(port: u8) -> Vec<u8> {
    let mut v = SEED.to_vec();
    v[7] = port;
    v
}

const RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

fn r(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, last)
}

const BASE: &str = r#"
[server]
lease_time = 3600

[[subnets]]
network = "198.18.0.0/24"
interface = "eth0"
routers = ["198.18.0.1"]
pools = ["198.18.0.10-198.18.0.20"]

[[subnets]]
network = "198.18.1.0/24"
routers = ["198.18.1.1"]
pools = ["198.18.1.100-198.18.1.110"]
"#;

fn harness(extra: &str) -> Harness {
    let text = format!("{BASE}\n{extra}");
    let cfg = load_str(&text, "test.toml", Format::Toml).unwrap_or_else(|e| panic!("{e}"));
    Harness::new(cfg.network)
}

const PORTS: &str = r#"
[[reservations]]
port_key = { switch = "c8:be:19:93:11:48", port = 4 }
ip = "198.18.1.50"

[[reservations]]
port_key = { switch = "c8be19931148", port = 5 }
ip = "198.18.1.51"
"#;

/// A relayed DISCOVER from `client` with Option 82 `o82`.
fn discover(client: u8, o82: &[u8]) -> Pkt {
    Pkt::discover(client)
        .giaddr(RELAY)
        .opt(code::RELAY_AGENT_INFO, o82)
}

fn select(client: u8, addr: Ipv4Addr, o82: &[u8]) -> Pkt {
    Pkt::select(client, a(1), addr)
        .giaddr(RELAY)
        .opt(code::RELAY_AGENT_INFO, o82)
}

/// DORA through the relay; returns the ACKed address.
fn bind(h: &mut Harness, client: u8, o82: &[u8]) -> Ipv4Addr {
    let offer = h.send(&discover(client, o82));
    let ip = offered_ip(&offer);
    assert_eq!(option(&offer, code::RELAY_AGENT_INFO), Some(o82));
    let ack = h.send(&select(client, ip, o82));
    assert_eq!(sent(&ack), Some(MessageType::Ack), "{ack:?}");
    assert_eq!(option(&ack, code::RELAY_AGENT_INFO), Some(o82));
    ip
}

fn route(d: &Decision) -> Route {
    d.reply().unwrap().route.clone()
}

#[test]
fn port_reservation_gets_its_address_echo_exact_in_offer_and_ack() {
    let mut h = harness(PORTS);
    let offer = h.send(&discover(1, &SEED));
    assert_eq!(offered_ip(&offer), r(50));
    assert_eq!(option(&offer, code::RELAY_AGENT_INFO), Some(&SEED[..]));
    assert_eq!(
        route(&offer),
        Route::Relay {
            giaddr: RELAY,
            port: 67
        }
    );
    let ack = h.send(&select(1, r(50), &SEED));
    assert_eq!(sent(&ack), Some(MessageType::Ack));
    assert_eq!(ack.reply().unwrap().packet.yiaddr, r(50));
    assert_eq!(option(&ack, code::RELAY_AGENT_INFO), Some(&SEED[..]));
    let lease = h.table.by_ip(r(50)).unwrap();
    assert_eq!(lease.state, LeaseState::Bound);
    assert_eq!(lease.circuit_id.as_deref(), Some(&SEED[2..8]));
    assert_eq!(lease.remote_id.as_deref(), Some(&SEED[10..]));
}

#[test]
fn two_ports_of_one_switch_get_two_addresses() {
    let mut h = harness(PORTS);
    assert_eq!(bind(&mut h, 1, &port(4)), r(50));
    assert_eq!(bind(&mut h, 2, &port(5)), r(51));
    // A port without a reservation gets a pool address.
    let ip = bind(&mut h, 3, &port(6));
    assert!((100..=110).contains(&ip.octets()[3]), "{ip}");
}

#[test]
fn new_mac_on_the_port_takes_the_address_over() {
    let mut h = harness(PORTS);
    assert_eq!(bind(&mut h, 1, &SEED), r(50));
    h.advance(10);
    assert_eq!(bind(&mut h, 2, &SEED), r(50));
    let lease = h.table.by_ip(r(50)).unwrap();
    assert_eq!(lease.hwaddr, hw(2));
    // The old device is refused its old address.
    let d = h.send(&Pkt::renew(1, r(50)));
    assert_eq!(sent(&d), Some(MessageType::Nak), "{d:?}");
}

#[test]
fn takeover_offer_is_persisted_when_it_replaces_a_binding() {
    let mut h = harness(PORTS);
    bind(&mut h, 1, &SEED);
    let d = h.send(&discover(2, &SEED));
    assert_eq!(offered_ip(&d), r(50));
    assert_eq!(d.changes[0].durability, leased_core::Durability::Lazy);
}

#[test]
fn unicast_renewal_without_option_82_keeps_address_and_relay_data() {
    let mut h = harness(PORTS);
    assert_eq!(bind(&mut h, 1, &SEED), r(50));
    h.advance(1800);
    let d = h.send(&Pkt::renew(1, r(50)));
    assert_eq!(sent(&d), Some(MessageType::Ack), "{d:?}");
    assert_eq!(d.reply().unwrap().packet.yiaddr, r(50));
    assert_eq!(route(&d), Route::Unicast(r(50)));
    assert_eq!(option(&d, code::RELAY_AGENT_INFO), None);
    let lease = h.table.by_ip(r(50)).unwrap();
    assert_eq!(lease.expires.0, h.now.0 + 3600);
    assert_eq!(lease.circuit_id.as_deref(), Some(&SEED[2..8]));
    assert_eq!(lease.remote_id.as_deref(), Some(&SEED[10..]));
}

#[test]
fn nak_echoes_option_82_byte_for_byte() {
    let mut h = harness(PORTS);
    let d = h.send(
        &Pkt::reboot(1, r(105))
            .giaddr(RELAY)
            .opt(code::RELAY_AGENT_INFO, &SEED),
    );
    assert_eq!(sent(&d), Some(MessageType::Nak), "{d:?}");
    assert_eq!(option(&d, code::RELAY_AGENT_INFO), Some(&SEED[..]));
    assert_eq!(d.reply().unwrap().packet.giaddr, RELAY);
}

#[test]
fn echo_survives_encoding_as_the_last_option() {
    let mut h = harness(PORTS);
    let d = h.send(&discover(1, &SEED).prl(&[1, 3, 6]));
    let mut bytes = Vec::new();
    d.reply().unwrap().packet.encode(576, &mut bytes);
    let mut want = vec![82, 18];
    want.extend_from_slice(&SEED);
    want.push(255);
    let tail = &bytes[bytes.len() - want.len()..];
    // Padding may follow END; find the option before it.
    let pos = bytes
        .windows(want.len())
        .position(|w| w == want.as_slice())
        .unwrap_or_else(|| panic!("82 not found verbatim in {tail:02x?}"));
    assert!(pos > 240);
}

#[test]
fn malformed_option_82_is_answered_and_echoed_but_keys_nothing() {
    let mut h = harness(PORTS);
    // circuit-id claims 9 bytes, 2 follow.
    let bad = [1u8, 9, 0, 4];
    let d = h.send(&discover(1, &bad));
    let ip = offered_ip(&d);
    assert!(
        (100..=110).contains(&ip.octets()[3]),
        "pool address, not a port's: {ip}"
    );
    assert_eq!(option(&d, code::RELAY_AGENT_INFO), Some(&bad[..]));
    // Zero-length circuit-id: the remote-id still parses, the circuit is absent.
    let zero = [1u8, 0, 2, 8, 0, 6, 0xc8, 0xbe, 0x19, 0x93, 0x11, 0x48];
    let d = h.send(&discover(2, &zero));
    assert_eq!(option(&d, code::RELAY_AGENT_INFO), Some(&zero[..]));
    assert_ne!(offered_ip(&d), r(50));
}

#[test]
fn server_id_override_is_option_54_and_accepted_as_ours() {
    let mut h = harness(PORTS);
    let mut o82 = SEED.to_vec();
    o82.extend([11, 4, 198, 18, 1, 1]);
    let d = h.send(&discover(1, &o82));
    assert_eq!(option(&d, code::SERVER_ID), Some(&[198, 18, 1, 1][..]));
    let req = Pkt::select(1, RELAY, r(50))
        .giaddr(RELAY)
        .opt(code::RELAY_AGENT_INFO, &o82);
    let d = h.send(&req);
    assert_eq!(sent(&d), Some(MessageType::Ack), "{d:?}");
    assert_eq!(option(&d, code::SERVER_ID), Some(&[198, 18, 1, 1][..]));
    // Another server's id is still not ours.
    let other = Pkt::select(1, Ipv4Addr::new(198, 18, 9, 9), r(50))
        .giaddr(RELAY)
        .opt(code::RELAY_AGENT_INFO, &o82);
    assert_eq!(h.peek(&other).drop_reason(), Some(DropReason::NotForUs));
}

#[test]
fn relay_port_suboption_replies_to_the_source_port() {
    let h = harness(PORTS);
    let mut o82 = SEED.to_vec();
    o82.extend([19, 0]);
    let mut req = h.request(&discover(1, &o82));
    req.src_port = Some(3067);
    req.src_addr = Some(RELAY);
    let d = leased_core::decide(&req, &h.plan, &h.table, h.now);
    assert_eq!(
        route(&d),
        Route::Relay {
            giaddr: RELAY,
            port: 3067
        }
    );
    // From another source than giaddr (anyone can write giaddr and sub-option 19): port 67,
    // never a port of the sender's choosing at the address it named.
    req.src_addr = Some(Ipv4Addr::new(198, 18, 0, 99));
    let d = leased_core::decide(&req, &h.plan, &h.table, h.now);
    assert_eq!(
        route(&d),
        Route::Relay {
            giaddr: RELAY,
            port: 67
        }
    );
    // Without sub-option 19 the source port is ignored.
    let mut req = h.request(&discover(1, &SEED));
    req.src_port = Some(3067);
    let d = leased_core::decide(&req, &h.plan, &h.table, h.now);
    assert_eq!(
        route(&d),
        Route::Relay {
            giaddr: RELAY,
            port: 67
        }
    );
}

#[test]
fn link_selection_suboption_picks_the_subnet_over_giaddr() {
    let mut h = harness("");
    let mut o82 = SEED.to_vec();
    o82.extend([5, 4, 198, 18, 0, 0]);
    let d = h.send(&discover(1, &o82));
    assert_eq!(offered_ip(&d).octets()[2], 0, "{d:?}");
    // A malformed Option 82 hides its link selection: giaddr decides.
    let d = h.send(&discover(2, &[5, 4, 198, 18]));
    assert_eq!(offered_ip(&d).octets()[2], 1);
}

#[test]
fn per_circuit_cap_is_enforced_and_released_capacity_reused() {
    let text = BASE.replace(
        "lease_time = 3600",
        "lease_time = 3600\nmax_leases_per_circuit_id = 1",
    );
    let mut h = Harness::new(load_str(&text, "t", Format::Toml).unwrap().network);
    let ip = bind(&mut h, 1, &SEED);
    let d = h.send(&discover(2, &SEED));
    assert_eq!(d.drop_reason(), Some(DropReason::CircuitLimit), "{d:?}");
    assert_eq!(d.event.drop, Some(DropReason::CircuitLimit));
    // INIT-REBOOT straight to REQUEST is capped too.
    let d = h.send(&select(2, r(101), &SEED));
    assert_eq!(d.drop_reason(), Some(DropReason::CircuitLimit), "{d:?}");
    // Same circuit-id behind another switch is another circuit.
    let mut other_switch = SEED.to_vec();
    other_switch[17] = 0x49;
    bind(&mut h, 3, &other_switch);
    // The holder still renews.
    let d = h.send(&select(1, ip, &SEED));
    assert_eq!(sent(&d), Some(MessageType::Ack));
    // Once it releases, the next device is served.
    let released = h.send(&Pkt::release(1, ip).sid(a(1)));
    assert_eq!(released.drop_reason(), Some(DropReason::NoReplyNeeded));
    bind(&mut h, 2, &SEED);
}

#[test]
fn per_remote_id_cap_and_subnet_override() {
    let text = BASE
        .replace(
            "lease_time = 3600",
            "lease_time = 3600\nmax_leases_per_remote_id = 2",
        )
        .replace(
            "pools = [\"198.18.1.100-198.18.1.110\"]",
            "pools = [\"198.18.1.100-198.18.1.110\"]\nmax_leases_per_remote_id = 1",
        );
    let mut h = Harness::new(load_str(&text, "t", Format::Toml).unwrap().network);
    bind(&mut h, 1, &port(1));
    let d = h.send(&discover(2, &port(2)));
    assert_eq!(d.drop_reason(), Some(DropReason::CircuitLimit));
}

#[test]
fn circuit_remote_pair_and_subscriber_reservations() {
    let mut h = harness(
        r#"
[[reservations]]
remote_id = "00:06:c8:be:19:93:11:48"
circuit_id = "00:04:00:01:00:07"
ip = "198.18.1.60"

[[reservations]]
circuit_id = '"eth0/1/9"'
ip = "198.18.1.61"

[[reservations]]
remote_id = "0006aabbccddeeff"
ip = "198.18.1.62"

[[reservations]]
subscriber_id = '"cust-42"'
ip = "198.18.1.63"
"#,
    );
    assert_eq!(bind(&mut h, 1, &port(7)), r(60));
    assert_eq!(
        bind(
            &mut h,
            2,
            &[1, 8, b'e', b't', b'h', b'0', b'/', b'1', b'/', b'9']
        ),
        r(61)
    );
    assert_eq!(
        bind(&mut h, 3, &[2, 8, 0, 6, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]),
        r(62)
    );
    assert_eq!(
        bind(
            &mut h,
            4,
            &[1, 1, 9, 6, 7, b'c', b'u', b's', b't', b'-', b'4', b'2']
        ),
        r(63)
    );
    // The pair needs both halves.
    let d = h.send(&discover(5, &[1, 6, 0, 4, 0, 1, 0, 7]));
    assert_ne!(offered_ip(&d), r(60));
}

#[test]
fn user_defined_slice_extractors_drive_port_keys() {
    let mut h = harness(
        r#"
[relay_keys]
switch = "sw_mac"
port = "sw_port"
extractors = ["option_82_hex:sw_mac:26:38", "option_82_hex:sw_port:16:18"]

[[reservations]]
port_key = { switch = "c8:be:19:93:11:48", port = 4 }
ip = "198.18.1.50"
"#,
    );
    assert_eq!(bind(&mut h, 1, &SEED), r(50));
    let d = h.send(&discover(2, &port(3)));
    assert_ne!(offered_ip(&d), r(50));
}

#[test]
fn shared_network_moves_on_when_the_first_subnet_is_exhausted() {
    let text = r#"
[[subnets]]
network = "198.18.1.0/24"
shared_network = "campus"
routers = ["198.18.1.1"]
pools = ["198.18.1.100-198.18.1.101"]

[[subnets]]
network = "198.18.2.0/24"
shared_network = "campus"
routers = ["198.18.2.1"]
pools = ["198.18.2.100-198.18.2.101"]

[[subnets]]
network = "198.18.3.0/24"
pools = ["198.18.3.100-198.18.3.101"]
"#;
    let mut h = Harness::new(load_str(text, "t", Format::Toml).unwrap().network);
    let o = [1u8, 1, 1];
    let ips: Vec<Ipv4Addr> = (1..=4).map(|c| bind(&mut h, c, &o)).collect();
    assert_eq!(ips[0], r(100));
    assert_eq!(ips[1], r(101));
    assert_eq!(ips[2], Ipv4Addr::new(198, 18, 2, 100));
    assert_eq!(ips[3], Ipv4Addr::new(198, 18, 2, 101));
    // Both exhausted: silence, never the unrelated 198.18.3.0/24.
    assert_eq!(
        h.send(&discover(5, &o)).drop_reason(),
        Some(DropReason::PoolExhausted)
    );
    // A renewal in the second subnet through the first subnet's giaddr is on its link.
    let d = h.send(
        &Pkt::reboot(3, ips[2])
            .giaddr(RELAY)
            .opt(code::RELAY_AGENT_INFO, &o),
    );
    assert_eq!(sent(&d), Some(MessageType::Ack), "{d:?}");
    // Rediscovering keeps the second-subnet address.
    let d = h.send(&discover(3, &o));
    assert_eq!(offered_ip(&d), ips[2]);
}

#[test]
fn subnets_on_one_interface_share_the_link() {
    let text = r#"
[[subnets]]
network = "198.18.0.0/24"
interface = "eth0"
pools = ["198.18.0.10-198.18.0.10"]

[[subnets]]
network = "198.18.4.0/24"
interface = "eth0"
pools = ["198.18.4.10-198.18.4.10"]
"#;
    let mut h = Harness::new(load_str(text, "t", Format::Toml).unwrap().network);
    assert_eq!(offered_ip(&h.send(&Pkt::discover(1))), a(10));
    assert_eq!(
        offered_ip(&h.send(&Pkt::discover(2))),
        Ipv4Addr::new(198, 18, 4, 10)
    );
    assert_eq!(
        h.send(&Pkt::discover(3)).drop_reason(),
        Some(DropReason::PoolExhausted)
    );
}

const CLASSES: &str = r#"
[[classes]]
name = "pxe"
match = { vendor_class = "PXEClient*" }
pool = "198.18.1.200-198.18.1.201"
[classes.options]
tftp_server = "198.18.1.9"
bootfile = "pxelinux.0"

[[classes]]
name = "cameras"
match = { mac_prefix = "02:00:00", hostname = "cam*" }
[classes.options]
dns = ["198.18.1.53"]

[[classes]]
name = "port9"
match = { circuit_id = "00:04:00:01:00:09", remote_id = "00:06:c8:be:19:93:11:48" }
pool = "198.18.1.210-198.18.1.210"
"#;

#[test]
fn class_pool_and_options() {
    let mut h = harness(CLASSES);
    let pxe = discover(1, &SEED).opt(code::VENDOR_CLASS, b"PXEClient:Arch:00000:UNDI:002001");
    let d = h.send(&pxe);
    assert_eq!(offered_ip(&d), r(200));
    assert_eq!(option(&d, 66), Some(&b"198.18.1.9"[..]));
    // Non-members never get the class pool, members never leave it.
    for c in 2..=12 {
        let d = h.send(&discover(c, &port(c + 20)));
        if let Some(rep) = d.reply() {
            assert!(
                rep.packet.yiaddr.octets()[3] < 200,
                "{c}: {:?}",
                rep.packet.yiaddr
            );
        }
    }
    let d = h.send(&select(2, r(201), &SEED));
    assert_eq!(sent(&d), Some(MessageType::Nak));
    assert_eq!(offered_ip(&h.send(&pxe)), r(200));
    let second = discover(13, &SEED).opt(code::VENDOR_CLASS, b"PXEClient");
    assert_eq!(offered_ip(&h.send(&second)), r(201));
    let third = discover(14, &SEED).opt(code::VENDOR_CLASS, b"PXEClient");
    assert_eq!(
        h.send(&third).drop_reason(),
        Some(DropReason::PoolExhausted)
    );
}

#[test]
fn class_pool_by_name() {
    let text = BASE.replace(
        "pools = [\"198.18.1.100-198.18.1.110\"]",
        "pools = [\"198.18.1.100-198.18.1.110\", \
         { start = \"198.18.1.120\", end = \"198.18.1.121\", name = \"voip\" }]",
    ) + "\n[[classes]]\nname = \"phones\"\nmatch = { vendor_class = \"Polycom*\" }\npool = \"voip\"\n";
    let mut h = Harness::new(load_str(&text, "t", Format::Toml).unwrap().network);
    let phone = discover(1, &SEED).opt(code::VENDOR_CLASS, b"Polycom-VVX");
    assert_eq!(offered_ip(&h.send(&phone)), r(120));
    for c in 2..=12 {
        if let Some(rep) = h.send(&discover(c, &port(c + 20))).reply() {
            assert!(
                rep.packet.yiaddr.octets()[3] <= 110,
                "{:?}",
                rep.packet.yiaddr
            );
        }
    }
}

#[test]
fn class_matches_all_given_fields() {
    let mut h = harness(CLASSES);
    let cam = discover(1, &SEED)
        .opt(code::HOSTNAME, b"cam-door")
        .prl(&[1, 3, 6]);
    assert_eq!(
        option(&h.send(&cam), code::DNS),
        Some(&[198, 18, 1, 53][..])
    );
    let not_cam = discover(2, &SEED)
        .opt(code::HOSTNAME, b"laptop")
        .prl(&[1, 3, 6]);
    assert_eq!(option(&h.send(&not_cam), code::DNS), None);
    // Relay fields: port 9 of the switch lands in its class pool.
    assert_eq!(bind(&mut h, 3, &port(9)), r(210));
}

#[test]
fn device_override_and_reservation_apply_on_top_of_the_class() {
    let extra = format!(
        r#"{CLASSES}
[device_overrides."02:00:00:00:00:01"]
dns = ["198.18.1.54"]

[[reservations]]
mac = "02:00:00:00:00:02"
ip = "198.18.1.70"
[reservations.options]
dns = ["198.18.1.55"]
"#
    );
    let mut h = harness(&extra);
    let cam = |c: u8| {
        discover(c, &SEED)
            .opt(code::HOSTNAME, b"cam-1")
            .prl(&[1, 3, 6])
    };
    assert_eq!(
        option(&h.send(&cam(1)), code::DNS),
        Some(&[198, 18, 1, 54][..])
    );
    let d = h.send(&cam(2));
    assert_eq!(offered_ip(&d), r(70));
    assert_eq!(option(&d, code::DNS), Some(&[198, 18, 1, 55][..]));
    assert_eq!(
        option(&h.send(&cam(3)), code::DNS),
        Some(&[198, 18, 1, 53][..])
    );
}

#[test]
fn old_leases_without_relay_fields_still_load() {
    let json = r#"{"ip":"198.18.1.5","client_id":[1,2,0,0,0,0,1],"hwaddr":[2,0,0,0,0,1],
        "hostname":null,"state":"bound","starts":1,"expires":2,"first_seen":1}"#;
    let l: leased_core::Lease = serde_json::from_str(json).unwrap();
    assert_eq!(l.circuit_id, None);
    let back = serde_json::to_string(&l).unwrap();
    assert!(!back.contains("circuit_id"), "{back}");
}

#[test]
fn config_errors_name_the_key() {
    let bad = |extra: &str, key: &str, msg: &str| {
        let text = format!("{BASE}\n{extra}");
        let e = load_str(&text, "t", Format::Toml).unwrap_err();
        assert!(
            e.0.iter().any(|x| x.key == key && x.message.contains(msg)),
            "{key}: {msg} not in {e:?}"
        );
    };
    bad(
        "[relay_keys]\nport = \"nope\"",
        "relay_keys.port",
        "unknown extractor",
    );
    bad(
        "[relay_keys]\nextractors = [\"circuit_id:1:2\"]",
        "relay_keys.extractors[0]",
        "name the extractor",
    );
    bad(
        "[relay_keys]\nextractors = [\"option_82_hex:x:1:2\"]",
        "relay_keys.extractors[0]",
        "whole bytes",
    );
    bad(
        "[[reservations]]\nmac = \"02:00:00:00:00:01\"\ncircuit_id = \"01\"\nip = \"198.18.1.5\"",
        "reservations[0].circuit_id",
        "not both",
    );
    bad(
        "[[reservations]]\ncircuit_id = \"0x\"\nip = \"198.18.1.5\"",
        "reservations[0].circuit_id",
        "no digits",
    );
    bad(
        "[[reservations]]\ncircuit_id = '\"\"'\nip = \"198.18.1.5\"",
        "reservations[0].circuit_id",
        "must not be empty",
    );
    bad(
        "[[reservations]]\nport_key = { switch = \"zz\", port = 1 }\nip = \"198.18.1.5\"",
        "reservations[0].port_key.switch",
        "invalid character",
    );
    bad(
        "[[classes]]\nname = \"a\"\npool = \"198.18.0.200-198.18.1.5\"",
        "classes[0].pool",
        "not inside one subnet",
    );
    bad(
        "[[classes]]\nname = \"a\"\n[[classes]]\nname = \"a\"",
        "classes[1].name",
        "defined twice",
    );
    bad(
        "[[classes]]\nname = \"a\"\nmatch = { mac_prefix = \"\" }",
        "classes[0].match.mac_prefix",
        "1 to 16 bytes",
    );
    bad(
        "[[classes]]\nname = \"a\"\npool = \"nosuch\"",
        "classes[0].pool",
        "invalid",
    );
    let dup = BASE.replace(
        "pools = [\"198.18.1.100-198.18.1.110\"]",
        "pools = [{ start = \"198.18.1.100\", end = \"198.18.1.101\", name = \"p\" }, \
         { start = \"198.18.1.102\", end = \"198.18.1.103\", name = \"p\" }]\n\
         exclusions = [{ start = \"198.18.1.100\", end = \"198.18.1.100\", name = \"e\" }]",
    );
    let e = load_str(&dup, "t", Format::Toml).unwrap_err();
    assert!(
        e.0.iter()
            .any(|x| x.key == "subnets[1].pools[1].name" && x.message.contains("used twice")),
        "{e:?}"
    );
    assert!(
        e.0.iter()
            .any(|x| x.key == "subnets[1].exclusions[0].name" && x.message.contains("only pools")),
        "{e:?}"
    );
    let capped = BASE.replace("lease_time = 3600", "max_leases_per_circuit_id = 0");
    let e = load_str(&capped, "t", Format::Toml).unwrap_err();
    assert!(e.0[0].key == "server.max_leases_per_circuit_id", "{e:?}");
}
