//! Trust at the edge, as an attacker on a subscriber port would try it, in namespaces with real
//! relays (`leased relay`, ISC dhcrelay) and crafted clients (`leased probe`):
//! - a direct client forging a subscriber's Option 82, in the options or hidden in the
//!   overloaded `file`/`sname` fields, gets a pool address and the subscriber keeps its lease;
//! - a snooping switch on a trusted interface is served by its Option 82;
//! - a relay outside `trusted_relays` is served as if it sent no Option 82;
//! - a forged BOOTREPLY toward `leased relay` (from no upstream, or answering no request) never
//!   reaches the client link, nor becomes a billing binding.
//!
//! Topology: see `support/bed.rs` (the upstream leased serves the relayed 198.18.x.0/24 and
//! 198.19.x.0/24 directly on up0; a probe on the relay namespace's rup0 is a direct client
//! there). Root and the peers are required: without them each test prints `SKIP: …` (a
//! failure under `CI=true`).

#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use leased_wire::{BOOTREPLY, BOOTREQUEST, MessageType, Options, Packet, code};
use support::Udhcpc;
use support::bed::{Bed, CIRCUIT_VALUE, RUP_IF};
use support::clients::{Capture, PROBE_ACK, ProbeOpts, probe};
use support::lab::CLI_IF;
use support::proc::{Proc, bin, must, poll, run};
use support::server::leased_bin;

/// The re-exec helper of `support::raw` (does nothing unless its variable is set).
#[test]
fn udp_send_helper() {
    support::raw::helper_main();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Option 82 with circuit-id `circuit` and, when given, a link selection (sub-option 5).
fn option82(circuit: &str, link: Option<Ipv4Addr>) -> Vec<u8> {
    let mut v = vec![1, u8::try_from(circuit.len()).unwrap()];
    v.extend_from_slice(circuit.as_bytes());
    if let Some(l) = link {
        v.extend([5, 4]);
        v.extend(l.octets());
    }
    v
}

/// The lease store of the upstream leased, as `leased leases --json` prints it.
fn upstream_leases(bed: &Bed) -> Vec<serde_json::Value> {
    let o = run(
        None,
        &argv![
            leased_bin(),
            "leases",
            "-c",
            bed.lab.path("up.toml").display(),
            "--json"
        ],
        Duration::from_secs(10),
    );
    assert!(o.ok(), "{}", o.all());
    serde_json::from_str::<Vec<serde_json::Value>>(&o.stdout).unwrap()
}

fn lease_of(leases: &[serde_json::Value], ip: Ipv4Addr) -> Option<&serde_json::Value> {
    leases.iter().find(|l| l["ip"] == ip.to_string())
}

/// Stops a leased and returns its log, with the shutdown counters line.
fn stop_and_log(mut p: Proc) -> String {
    p.stop(Duration::from_secs(10));
    p.output()
}

#[test]
fn a_direct_client_forging_a_subscribers_option82_gets_a_pool_address() {
    if !gate!("udhcpc") {
        return;
    }
    let bed = Bed::new();
    let x = bed.x;
    let victim_ip = bed.lab.ip(50);
    let up = bed.leased_with(
        // The upstream's own relay is believed by default (no list): the warning is logged.
        "",
        &format!(
            "[[reservations]]\ncircuit_id = '\"{CIRCUIT_VALUE}\"'\nip = \"{victim_ip}\"\n\n\
             [[reservations]]\ncircuit_id = '\"snoop-port-7\"'\nip = \"198.19.{x}.60\"\n"
        ),
    );
    let mut relay = bed.relay(&[bed.up_ip()], "");

    // The subscriber behind the relay's port: its reserved address.
    let lab = &bed.lab;
    let victim_mac = lab.mac(0x51, 1);
    lab.set_client_mac(&victim_mac);
    let mut victim = Udhcpc::new(lab, &lab.cli_ns, CLI_IF, "victim", Some("victim"));
    victim.start(false, true, &[]);
    let ev = victim.c.wait_event(0, &["bound"], Duration::from_secs(30));
    assert_eq!(
        ev.as_ref().and_then(|e| e.ip()),
        Some(victim_ip),
        "the subscriber did not get its reservation: {ev:?}\n{}",
        victim.c.diag()
    );
    victim.c.stop();
    let before = lease_of(&upstream_leases(&bed), victim_ip)
        .cloned()
        .unwrap();

    // The attacker sits on up0's link with giaddr 0 and names the subscriber's circuit, with a
    // link selection for the subscriber's subnet: in the options, in `file`, in `sname`.
    let forged = hex(&option82(CIRCUIT_VALUE, Some(lab.net.network())));
    let direct_pool =
        |ip: Ipv4Addr| ip.octets()[..3] == [198, 19, x] && (200..=210).contains(&ip.octets()[3]);
    for (i, area) in ["options", "file", "sname"].iter().enumerate() {
        let mac = format!("02:00:00:ba:d0:{i:02x}");
        let r = probe(
            &lab.srv_ns,
            RUP_IF,
            &ProbeOpts {
                mac: Some(mac.clone()),
                args: argv!["--option82", forged, "--option82-in", area],
                ..Default::default()
            },
        );
        assert_eq!(r.code(), Some(PROBE_ACK), "{area}: {}", r.diag());
        let got = r.ip().unwrap();
        assert_ne!(
            got, victim_ip,
            "{area}: the forgery got the subscriber's address"
        );
        assert!(direct_pool(got), "{area}: {got} is not from up0's own pool");
        assert!(
            !r.out.stdout.contains("relay_agent_info"),
            "{area}: the forged Option 82 was echoed: {}",
            r.diag()
        );
    }
    // Without a trusted interface, a snooping switch's Option 82 on up0 is a client's too.
    let r = probe(
        &lab.srv_ns,
        RUP_IF,
        &ProbeOpts {
            mac: Some("02:00:00:5e:00:07".into()),
            args: argv!["--option82", hex(&option82("snoop-port-7", None))],
            ..Default::default()
        },
    );
    assert_eq!(r.code(), Some(PROBE_ACK), "{}", r.diag());
    assert_ne!(r.ip(), Some(Ipv4Addr::new(198, 19, x, 60)));

    // The subscriber's binding is untouched, and it is served its address again.
    let leases = upstream_leases(&bed);
    assert_eq!(
        lease_of(&leases, victim_ip),
        Some(&before),
        "the binding changed"
    );
    let again = bed.lab.probe(&ProbeOpts::mac(&victim_mac));
    assert_eq!(
        again.code(),
        Some(PROBE_ACK),
        "the subscriber was refused: {}",
        again.diag()
    );
    assert_eq!(again.ip(), Some(victim_ip));
    relay.stop(Duration::from_secs(5));
    let log = stop_and_log(up);
    assert!(
        log.contains("server.trusted_relays is not set"),
        "no warning about an open relay set:\n{log}"
    );
    let counters = log
        .lines()
        .find(|l| l.contains("counters at shutdown"))
        .unwrap();
    assert!(
        // DISCOVER and REQUEST each: the forgery in the options and the unlisted snooping
        // switch, then the two hidden in file/sname.
        counters.contains("untrusted_option82.direct=4")
            && counters.contains("untrusted_option82.overloaded=4"),
        "{counters}"
    );
}

#[test]
fn a_snooping_switch_on_a_trusted_interface_is_served_by_its_option82() {
    if !gate!() {
        return;
    }
    let bed = Bed::new();
    let x = bed.x;
    let reserved = Ipv4Addr::new(198, 19, x, 60);
    let up = bed.leased_with(
        "trusted_option82_interfaces = [\"up0\"]",
        &format!("[[reservations]]\ncircuit_id = '\"snoop-port-7\"'\nip = \"{reserved}\"\n"),
    );
    let r = probe(
        &bed.lab.srv_ns,
        RUP_IF,
        &ProbeOpts {
            mac: Some("02:00:00:5e:00:07".into()),
            args: argv!["--option82", hex(&option82("snoop-port-7", None))],
            ..Default::default()
        },
    );
    assert_eq!(r.code(), Some(PROBE_ACK), "{}", r.diag());
    assert_eq!(r.ip(), Some(reserved), "{}", r.diag());
    // Hidden in `file`, even a trusted link's Option 82 does not count.
    let r = probe(
        &bed.lab.srv_ns,
        RUP_IF,
        &ProbeOpts {
            mac: Some("02:00:00:5e:00:08".into()),
            args: argv![
                "--option82",
                hex(&option82("snoop-port-7", None)),
                "--option82-in",
                "file"
            ],
            ..Default::default()
        },
    );
    assert_eq!(r.code(), Some(PROBE_ACK), "{}", r.diag());
    assert_ne!(r.ip(), Some(reserved));
    drop(up);
}

/// ISC dhcrelay (`-a`: circuit-id = the client interface's name) in the relay namespace.
fn dhcrelay(bed: &Bed) -> Proc {
    let lab = &bed.lab;
    let mut p = Proc::spawn(
        "dhcrelay",
        Some(&lab.srv_ns),
        &argv![
            bin("dhcrelay"),
            "-4",
            "-d",
            "-a",
            "-pf",
            lab.path("dhcrelay.pid").display(),
            "-id",
            support::lab::SRV_IF,
            "-iu",
            RUP_IF,
            bed.up_ip()
        ],
        &lab.path("dhcrelay.log"),
        &[],
    );
    let pid = p.pid();
    let ok = poll(Duration::from_secs(10), || {
        let o = run(
            Some(&lab.srv_ns),
            &argv!["ss", "-Hulnp", "sport = :67"],
            Duration::from_secs(5),
        );
        o.stdout.contains(&format!("pid={pid},")).then_some(())
    });
    assert!(
        ok.is_some() && p.alive(),
        "dhcrelay did not start:\n{}",
        p.output()
    );
    p
}

#[test]
fn a_relay_outside_trusted_relays_is_not_served_by_its_option82() {
    if !gate!("dhcrelay", "udhcpc") {
        return;
    }
    let bed = Bed::new();
    let x = bed.x;
    let lab = &bed.lab;
    let reserved = lab.ip(50);
    let reservation = format!("[[reservations]]\ncircuit_id = '\"srv0\"'\nip = \"{reserved}\"\n");
    let _relay = dhcrelay(&bed);

    // Only some other relay is trusted: dhcrelay's client is served from the pool.
    let up = bed.leased_with(
        &format!("trusted_relays = [\"198.19.{x}.250\"]"),
        &reservation,
    );
    let r = lab.probe(&ProbeOpts::mac("02:00:00:c1:00:01"));
    assert_eq!(r.code(), Some(PROBE_ACK), "{}", r.diag());
    let got = r.ip().unwrap();
    assert!(bed.in_pool(got), "{got}: not a pool address");
    let log = stop_and_log(up);
    assert!(
        log.contains("untrusted_option82.unlisted_relay="),
        "not counted:\n{log}"
    );

    // dhcrelay listed (its giaddr and its source): a real client gets the reservation.
    let up = bed.leased_with(
        &format!("trusted_relays = [\"{}\", \"198.19.{x}.1\"]", lab.srv_ip),
        &reservation,
    );
    let mut u = Udhcpc::new(lab, &lab.cli_ns, CLI_IF, "listed", None);
    u.start(false, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(30));
    assert_eq!(
        ev.as_ref().and_then(|e| e.ip()),
        Some(reserved),
        "{ev:?}\n{}\n--- dhcrelay\n{}",
        u.c.diag(),
        std::fs::read_to_string(lab.path("dhcrelay.log")).unwrap_or_default()
    );
    u.c.stop();
    let log = stop_and_log(up);
    assert!(
        !log.contains("server.trusted_relays is not set"),
        "warned although relays are listed:\n{log}"
    );
}

/// A BOOTP message from the server side (`op` = BOOTREPLY) or a client (BOOTREQUEST).
fn message(
    op: u8,
    t: MessageType,
    xid: u32,
    mac: [u8; 6],
    yiaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
) -> Vec<u8> {
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![t.code()]);
    if op == BOOTREPLY {
        options.set(
            code::SERVER_ID,
            Ipv4Addr::new(198, 19, 0, 2).octets().to_vec(),
        );
        options.set(code::LEASE_TIME, 3600u32.to_be_bytes().to_vec());
    }
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let p = Packet {
        op,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid,
        secs: 0,
        flags: 0x8000,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr,
        chaddr,
        sname: vec![],
        file: vec![],
        options,
        option82_in_overload: false,
    };
    let mut out = Vec::new();
    p.encode(576, &mut out);
    out
}

#[test]
fn a_forged_bootreply_never_reaches_the_client() {
    if !gate!("tcpdump") {
        return;
    }
    let bed = Bed::new();
    let lab = &bed.lab;
    // No server upstream: every reply is one the test sends.
    let mut relay = bed.relay(&[bed.up_ip()], "");
    let cli = Capture::start(lab, &lab.cli_ns, CLI_IF, "forged-cli");
    let relay_at = SocketAddrV4::new(Ipv4Addr::new(198, 19, bed.x, 1), 67);
    let giaddr = lab.srv_ip;
    let send_up = |src: Ipv4Addr, payload: Vec<u8>| {
        let o = support::raw::send_from_ns(
            &bed.up,
            SocketAddrV4::new(src, 67),
            &[relay_at],
            &[payload],
        );
        assert!(o.stdout.contains("SENT"), "{}", o.all());
    };

    // 1. An ACK from an address that is not an upstream.
    let stranger = Ipv4Addr::new(198, 19, bed.x, 66);
    must(
        Some(&bed.up),
        &argv![
            "ip",
            "addr",
            "add",
            format!("{stranger}/24"),
            "dev",
            support::bed::UP_IF
        ],
    );
    let ack = |xid, mac, ip| message(BOOTREPLY, MessageType::Ack, xid, mac, ip, giaddr);
    send_up(
        stranger,
        ack(0x0bad_0001, [2, 0, 0, 0xba, 0xd0, 1], lab.ip(77)),
    );
    // 2. An ACK from the upstream's address that answers no request we forwarded.
    send_up(
        bed.up_ip(),
        ack(0x0bad_0002, [2, 0, 0, 0xba, 0xd0, 2], lab.ip(77)),
    );
    // 3. A request we forward, then its reply from the upstream: delivered (the path works).
    lab.add_client_addr(&format!("{}/24", lab.ip(9)));
    let o = support::raw::send_from_ns(
        &lab.cli_ns,
        SocketAddrV4::new(lab.ip(9), 68),
        &[SocketAddrV4::new(lab.srv_ip, 67)],
        &[message(
            BOOTREQUEST,
            MessageType::Discover,
            0x600d_0003,
            [2, 0, 0, 0x60, 0x0d, 3],
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
        )],
    );
    assert!(o.stdout.contains("SENT"), "{}", o.all());
    std::thread::sleep(Duration::from_millis(300));
    send_up(
        bed.up_ip(),
        message(
            BOOTREPLY,
            MessageType::Offer,
            0x600d_0003,
            [2, 0, 0, 0x60, 0x0d, 3],
            lab.ip(78),
            giaddr,
        ),
    );
    std::thread::sleep(Duration::from_millis(500));

    let lines = cli.finish().join("\n");
    assert!(
        lines.contains(&format!("Your-IP {}", lab.ip(78))),
        "the genuine reply was not delivered (the test sees nothing):\n{lines}"
    );
    assert!(
        !lines.contains(&format!("Your-IP {}", lab.ip(77))),
        "a forged reply reached the client link:\n{lines}"
    );
    relay.stop(Duration::from_secs(5));
    let log = relay.output();
    let stopped = log
        .lines()
        .find(|l| l.contains("relay stopped"))
        .unwrap_or_default();
    assert!(
        stopped.contains("unsolicited_replies=2") && stopped.contains("delivered=1"),
        "{stopped}\n{log}"
    );
    assert!(
        !log.contains("ba:d0:01") && !log.contains("ba:d0:02"),
        "a forged ACK became a binding:\n{log}"
    );
}

/// UDP payloads sent to `port` in a tcpdump capture (classic pcap, Ethernet frames).
fn udp_payloads_to(pcap: &std::path::Path, port: u16) -> Vec<Vec<u8>> {
    let data = std::fs::read(pcap).unwrap();
    let mut out = Vec::new();
    let mut at = 24;
    while let Some(rec) = data.get(at..at + 16) {
        let len = u32::from_le_bytes(rec[8..12].try_into().unwrap()) as usize;
        let Some(frame) = data.get(at + 16..at + 16 + len) else {
            break;
        };
        at += 16 + len;
        // Ethernet (14), IPv4 (IHL words), UDP (8).
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
            continue;
        }
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let udp = &frame[14 + ihl..];
        if u16::from_be_bytes([udp[2], udp[3]]) == port {
            out.push(udp[8..].to_vec());
        }
    }
    out
}

const RELAY_KEY: &str = "relay-key-0123456789";

#[test]
fn a_signing_relays_option82_counts_only_with_its_key_and_never_twice() {
    if !gate!("tcpdump") {
        return;
    }
    let bed = Bed::new();
    let lab = &bed.lab;
    let reserved = lab.ip(50);
    let with_key = |key: &str| {
        format!(
            "[[relay_auth]]\nrelay = \"{}\"\nkey = \"{key}\"\n\n\
             [[reservations]]\ncircuit_id = '\"{CIRCUIT_VALUE}\"'\nip = \"{reserved}\"\n",
            lab.srv_ip
        )
    };
    // No trusted_relays list would believe any relay; a key makes this one prove itself.
    let mut relay = bed.relay_with(&[bed.up_ip()], &format!("auth_key = \"{RELAY_KEY}\""), "");

    // The same key on both ends: served by the relay's Option 82 (the reservation).
    let up = bed.leased_with("", &with_key(RELAY_KEY));
    let cap = Capture::start(lab, &bed.up, support::bed::UP_IF, "signed-up");
    let r = lab.probe(&ProbeOpts::mac("02:00:00:a0:00:01"));
    assert_eq!(r.code(), Some(PROBE_ACK), "{}", r.diag());
    assert_eq!(r.ip(), Some(reserved), "{}", r.diag());
    let file = cap.file.clone();
    cap.finish();
    let signed = udp_payloads_to(&file, 67);
    assert!(!signed.is_empty(), "no relayed request captured");
    let log = stop_and_log(up);
    assert!(!log.contains("untrusted_option82"), "{log}");

    // Another key on the server: the relay's Option 82 is not believed.
    let up = bed.leased_with("", &with_key("not-the-relays-key-0"));
    let r = lab.probe(&ProbeOpts::mac("02:00:00:a0:00:02"));
    assert_eq!(r.code(), Some(PROBE_ACK), "{}", r.diag());
    let got = r.ip().unwrap();
    assert!(bed.in_pool(got) && got != reserved, "{got}");
    let log = stop_and_log(up);
    let counters = log
        .lines()
        .rev()
        .find(|l| l.contains("counters at shutdown"))
        .unwrap();
    assert!(
        counters.contains("untrusted_option82.auth_bad_mac="),
        "{counters}"
    );

    // The right key again, and a captured request sent a second time: the replay is refused.
    relay.stop(Duration::from_secs(5));
    let up = bed.leased_with("", &with_key(RELAY_KEY));
    let from = SocketAddrV4::new(Ipv4Addr::new(198, 19, bed.x, 1), 67);
    let to = SocketAddrV4::new(bed.up_ip(), 67);
    let first = signed.first().unwrap().clone();
    let o = support::raw::send_from_ns(&lab.srv_ns, from, &[to], &[first.clone(), first]);
    assert!(o.stdout.contains("SENT"), "{}", o.all());
    std::thread::sleep(Duration::from_millis(500));
    let log = stop_and_log(up);
    // The log file is shared by the three servers: the last counters line is this one's.
    let counters = log
        .lines()
        .rev()
        .find(|l| l.contains("counters at shutdown"))
        .unwrap();
    assert!(
        counters.contains("received.DISCOVER=2")
            && counters.contains("untrusted_option82.auth_replayed=1"),
        "the second copy was not refused as a replay: {counters}"
    );
}
