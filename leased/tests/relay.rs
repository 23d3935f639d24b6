//! System tests of issue 4 (relayed networks, Option 82 assignment): the real `leased` in a
//! network namespace, reached through ISC `dhcrelay -a` (which inserts Option 82) and through
//! `leased probe --giaddr` acting as a relay with the pydhcpdb seed's exact Option 82 bytes.
//! Root and the peers are required; without them each test prints `SKIP: …` (a failure under
//! `CI=true`). Every address is in 198.18.0.0/15, every wait is bounded, every process is
//! stopped by PID and every namespace deleted (the lab's `Drop`).
//!
//! Topology (`x` = the lab's third octet):
//! `rc` [cli0, client] ⇄ `cli` [rl0 198.19.x.1/24 | cli0 198.18.x.2/24 + 198.19.x.254/32, relay]
//! ⇄ `srv` [srv0 198.18.x.1/24, route 198.19.x.0/24 via 198.18.x.2, leased].

#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use leased_wire::{BOOTREPLY, BOOTREQUEST, MessageType, Options, Packet, code};
use serde_json::Value;
use support::Lab;
use support::clients::{Capture, PROBE_ACK};
use support::lab::{CLI_IF, SRV_IF};
use support::proc::{Proc, bin, must, poll, run};
use support::server::{Server, leased_bin};

/// The seed's Option 82: circuit-id 00 04 00 01 00 04 (VLAN 1, port 4), remote-id 00 06 +
/// switch MAC c8:be:19:93:11:48.
const SEED: &str = "010600040001000402080006c8be19931148";

/// The seed's switch, port `p` (the circuit-id's last byte is hex characters 14..16).
fn port(p: u8) -> String {
    format!("{}{p:02x}{}", &SEED[..14], &SEED[16..])
}

/// A relayed test bed: the lab, the relayed network's third octet, and the server.
struct Bed {
    lab: Lab,
    x: u8,
    /// Namespace of the client behind the relay.
    rc: String,
}

impl Bed {
    fn new() -> Bed {
        let lab = Lab::new();
        let x = lab.net.network().octets()[2];
        let rc = format!("{}-rc", lab.name);
        lab.add_ns(&rc);
        must(
            None,
            &argv![
                "ip", "link", "add", "rl0", "netns", lab.cli_ns, "type", "veth", "peer", "name",
                CLI_IF, "netns", rc
            ],
        );
        lab.add_client_addr(&format!("{}/24", lab.ip(2)));
        must(
            Some(&lab.cli_ns),
            &argv![
                "ip",
                "addr",
                "add",
                format!("198.19.{x}.1/24"),
                "dev",
                "rl0"
            ],
        );
        must(Some(&lab.cli_ns), &argv!["ip", "link", "set", "rl0", "up"]);
        must(
            Some(&lab.cli_ns),
            &argv!["sysctl", "-qw", "net.ipv4.ip_forward=1"],
        );
        must(Some(&rc), &argv!["ip", "link", "set", CLI_IF, "up"]);
        must(
            Some(&lab.srv_ns),
            &argv![
                "ip",
                "route",
                "add",
                format!("198.19.{x}.0/24"),
                "via",
                lab.ip(2),
                "dev",
                SRV_IF
            ],
        );
        Bed { lab, x, rc }
    }

    fn remote(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.x, n)
    }

    /// leased with the lab's own subnet plus the relayed 198.19.x.0/24 (`relayed` appended to
    /// that subnet's table, `extra` at the end of the file).
    fn start(&self, relayed: &str, extra: &str) -> Server<'_> {
        let lab = &self.lab;
        let x = self.x;
        let cfg = format!(
            r#"[server]
lease_time = 300

[store]
path = "{store}"

[[subnets]]
network = "{net}"
interface = "{SRV_IF}"
routers = ["{srv}"]
pools = ["{p0}-{p1}"]

[[subnets]]
network = "198.19.{x}.0/24"
routers = ["198.19.{x}.1"]
pools = ["198.19.{x}.100-198.19.{x}.200"]
{relayed}

{extra}
"#,
            store = lab.path("leases.db").display(),
            net = lab.net,
            srv = lab.srv_ip,
            p0 = lab.ip(100),
            p1 = lab.ip(200),
        );
        let check = run(
            None,
            &argv![leased_bin(), "check", "-c", {
                let p = lab.path("check.toml");
                std::fs::write(&p, &cfg).unwrap();
                p.display().to_string()
            }],
            Duration::from_secs(10),
        );
        assert!(check.ok(), "config invalid:\n{cfg}\n{}", check.all());
        lab.start_server(&cfg)
    }

    /// `dhcrelay -4 -d -a` in the relay namespace, down rl0, up cli0, to the server.
    fn relay(&self) -> Proc {
        let lab = &self.lab;
        let pf = lab.path("dhcrelay.pid");
        let a = argv![
            bin("dhcrelay"),
            "-4",
            "-d",
            "-a",
            "-pf",
            pf.display(),
            "-id",
            "rl0",
            "-iu",
            CLI_IF,
            lab.srv_ip
        ];
        let mut relay = Proc::spawn(
            "dhcrelay",
            Some(&lab.cli_ns),
            &a,
            &lab.path("dhcrelay.out"),
            &[],
        );
        let listening = poll(Duration::from_secs(5), || {
            let o = run(
                Some(&lab.cli_ns),
                &argv!["ss", "-Hulnp", "sport = :67"],
                Duration::from_secs(5),
            );
            o.stdout
                .contains(&format!("pid={},", relay.pid()))
                .then_some(())
        });
        assert!(
            listening.is_some() && relay.alive(),
            "dhcrelay did not start: {}",
            relay.output()
        );
        relay
    }

    /// `leased probe` as a relay agent at 198.19.x.254 (an extra address of the relay
    /// namespace), unicasting to the server with Option 82 `o82`.
    fn probe(&self, mac: &str, o82: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
        let lab = &self.lab;
        let gi = self.remote(254);
        let _ = run(
            Some(&lab.cli_ns),
            &argv!["ip", "addr", "add", format!("{gi}/32"), "dev", CLI_IF],
            Duration::from_secs(5),
        );
        let mut a = argv![
            leased_bin(),
            "probe",
            "--giaddr",
            gi,
            "--server",
            lab.srv_ip,
            "--mac",
            mac,
            "--option82",
            o82,
            "--json",
            "--timeout",
            "3"
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        let out = run(Some(&lab.cli_ns), &a, Duration::from_secs(20));
        let json = serde_json::from_str::<Value>(out.stdout.trim())
            .ok()
            .filter(Value::is_object)
            .unwrap_or(Value::Null);
        (out.code(), json, out.all())
    }
}

/// The hex of option `c` in `msg` ("offer"/"ack"/"nak") of a probe's JSON.
fn opt_hex(j: &Value, msg: &str, c: u8) -> Option<String> {
    j.get(msg)?
        .get("options")?
        .as_array()?
        .iter()
        .find(|o| o.get("code").and_then(Value::as_u64) == Some(u64::from(c)))?
        .get("hex")?
        .as_str()
        .map(str::to_string)
}

fn yiaddr(j: &Value, msg: &str) -> Option<Ipv4Addr> {
    j.get(msg)?.get("yiaddr")?.as_str()?.parse().ok()
}

/// DHCP packets (with their option 82) read back from a pcap with `tcpdump -x`.
fn dhcp_in_pcap(file: &std::path::Path) -> Vec<Packet> {
    let o = run(
        None,
        &argv![bin("tcpdump"), "-r", file.display(), "-nn", "-x"],
        Duration::from_secs(10),
    );
    let mut packets = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut flush = |cur: &mut Vec<u8>| {
        // IPv4 header (IHL words) + 8 bytes UDP, then BOOTP.
        if let Some(ihl) = cur.first().map(|b| usize::from(b & 0x0f) * 4)
            && let Some(body) = cur.get(ihl + 8..)
            && let Ok(p) = Packet::decode(body)
        {
            packets.push(p);
        }
        cur.clear();
    };
    for line in o.stdout.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("0x").and_then(|r| r.split_once(':')) {
            for word in rest.1.split_whitespace() {
                for i in (0..word.len()).step_by(2) {
                    if let Some(b) = word
                        .get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        cur.push(b);
                    }
                }
            }
        } else {
            flush(&mut cur);
        }
    }
    flush(&mut cur);
    packets
}

#[test]
fn dhcrelay_agent_option_is_used_and_echoed_exactly() {
    if !gate!("dhcrelay", "udhcpc", "dhclient", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let lab = &bed.lab;
    // dhcrelay -a sends the downstream interface name as the circuit-id.
    let srv = bed.start(
        "",
        &format!(
            "[[reservations]]\ncircuit_id = '\"rl0\"'\nip = \"{}\"\n",
            bed.remote(50)
        ),
    );
    let cap = Capture::start(lab, &lab.srv_ns, SRV_IF, "relay82");
    let mut relay = bed.relay();

    let mac = lab.mac(40, 1);
    must(
        Some(&bed.rc),
        &argv!["ip", "link", "set", CLI_IF, "address", mac],
    );
    let mut u = support::Udhcpc::new(lab, &bed.rc, CLI_IF, "udhcpc-82", None);
    u.start(false, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(20));
    let ev = ev.unwrap_or_else(|| {
        panic!(
            "udhcpc got no lease through dhcrelay -a\n{}\n--- dhcrelay\n{}\n--- server\n{}",
            u.c.diag(),
            relay.output(),
            srv.log()
        )
    });
    assert_eq!(
        ev.ip(),
        Some(bed.remote(50)),
        "the circuit's reserved address"
    );
    u.c.stop();

    // Another device on the same circuit (dhclient, new MAC) takes the circuit's address.
    let mac2 = lab.mac(40, 2);
    must(Some(&bed.rc), &argv!["ip", "addr", "flush", "dev", CLI_IF]);
    must(
        Some(&bed.rc),
        &argv!["ip", "link", "set", CLI_IF, "address", mac2],
    );
    let mut d = support::Dhclient::new(lab, &bed.rc, CLI_IF, "dhclient-82", None);
    d.start();
    let ev = d.c.wait_event(0, &["BOUND"], Duration::from_secs(30));
    let ev = ev.unwrap_or_else(|| {
        panic!(
            "dhclient got no lease through dhcrelay -a\n{}\n--- dhcrelay\n{}\n--- server\n{}",
            d.c.diag(),
            relay.output(),
            srv.log()
        )
    });
    assert_eq!(
        ev.ip(),
        Some(bed.remote(50)),
        "the new device takes the port's address"
    );
    d.c.stop();
    relay.stop(Duration::from_secs(3));

    // On the server link: every reply's Option 82 is byte for byte its request's.
    let file = cap.file.clone();
    let _ = cap.finish();
    let packets = dhcp_in_pcap(&file);
    let requests: Vec<&Packet> = packets.iter().filter(|p| p.op == BOOTREQUEST).collect();
    let replies: Vec<&Packet> = packets.iter().filter(|p| p.op == BOOTREPLY).collect();
    assert!(
        !requests.is_empty() && !replies.is_empty(),
        "capture: {packets:?}"
    );
    for r in &replies {
        let sent = r
            .options
            .get(code::RELAY_AGENT_INFO)
            .expect("reply without option 82");
        let req = requests
            .iter()
            .find(|q| q.xid == r.xid)
            .expect("reply without a request");
        assert_eq!(
            Some(sent),
            req.options.get(code::RELAY_AGENT_INFO),
            "option 82 echoed byte for byte (xid {:#x})",
            r.xid
        );
        assert_eq!(r.giaddr, bed.remote(1));
    }
    let first = requests[0].options.get(code::RELAY_AGENT_INFO).unwrap();
    assert_eq!(
        first.get(..2),
        Some(&[1u8, 3][..]),
        "circuit-id sub-option first: {first:02x?}"
    );
    assert_eq!(first.get(2..5), Some(&b"rl0"[..]));
}

#[test]
fn probe_with_seed_option82_gets_port_addresses_and_caps() {
    if !gate!() {
        return;
    }
    let bed = Bed::new();
    let lab = &bed.lab;
    let srv = bed.start(
        "max_leases_per_circuit_id = 1",
        &format!(
            "[[reservations]]\nport_key = {{ switch = \"c8:be:19:93:11:48\", port = 4 }}\nip = \"{}\"\n\n\
             [[reservations]]\nport_key = {{ switch = \"c8:be:19:93:11:48\", port = 5 }}\nip = \"{}\"\n",
            bed.remote(50),
            bed.remote(51)
        ),
    );
    assert_eq!(port(4), SEED);

    // The reserved address, with Option 82 echoed exactly in OFFER and ACK.
    let (code, j, out) = bed.probe(&lab.mac(41, 1), SEED, &[]);
    assert_eq!(code, Some(PROBE_ACK), "{out}\n--- server\n{}", srv.log());
    assert_eq!(yiaddr(&j, "ack"), Some(bed.remote(50)), "{out}");
    assert_eq!(opt_hex(&j, "offer", 82).as_deref(), Some(SEED), "{out}");
    assert_eq!(opt_hex(&j, "ack", 82).as_deref(), Some(SEED), "{out}");

    // Another port of the same switch: its own address.
    let (code, j, out) = bed.probe(&lab.mac(41, 2), &port(5), &[]);
    assert_eq!(code, Some(PROBE_ACK), "{out}");
    assert_eq!(yiaddr(&j, "ack"), Some(bed.remote(51)), "{out}");

    // A new device on port 4: the port's address.
    let (code, j, out) = bed.probe(&lab.mac(41, 3), SEED, &[]);
    assert_eq!(code, Some(PROBE_ACK), "{out}");
    assert_eq!(yiaddr(&j, "ack"), Some(bed.remote(50)), "{out}");

    // Per-circuit cap on a port without a reservation: one device, the second is not offered.
    let (code, j, out) = bed.probe(&lab.mac(41, 4), &port(7), &[]);
    assert_eq!(code, Some(PROBE_ACK), "{out}");
    let first = yiaddr(&j, "ack").unwrap();
    assert!((100..=200).contains(&first.octets()[3]), "{first}");
    let (code, _, out) = bed.probe(&lab.mac(41, 5), &port(7), &["--discover-only"]);
    assert_ne!(code, Some(PROBE_ACK), "over the cap but offered: {out}");
    let logged = srv.wait_log(Duration::from_secs(5), |l| l.contains("circuit_limit"));
    assert!(logged.is_some(), "cap not logged:\n{}", srv.log());

    // A NAK echoes Option 82 too (INIT-REBOOT for an address the client cannot have).
    let (code, j, out) = bed.probe(
        &lab.mac(41, 6),
        &port(8),
        &["--option", &format!("50:{}", hex_ip(bed.remote(51)))],
    );
    // (`--option 50:` overrides the REQUEST's requested address: port 5's, reserved for
    // another client.)
    assert_eq!(code, Some(support::clients::PROBE_NAK), "{out}");
    assert_eq!(
        opt_hex(&j, "nak", 82).as_deref(),
        Some(port(8).as_str()),
        "{out}"
    );
}

#[test]
fn unicast_renewal_without_option82_keeps_the_port_address() {
    if !gate!() {
        return;
    }
    let bed = Bed::new();
    let lab = &bed.lab;
    let srv = bed.start(
        "",
        &format!(
            "[[reservations]]\nport_key = {{ switch = \"c8:be:19:93:11:48\", port = 4 }}\nip = \"{}\"\n",
            bed.remote(50)
        ),
    );
    let mac = lab.mac(42, 1);
    let (code, j, out) = bed.probe(&mac, SEED, &[]);
    assert_eq!(code, Some(PROBE_ACK), "{out}\n{}", srv.log());
    assert_eq!(yiaddr(&j, "ack"), Some(bed.remote(50)));
    // Unicast RENEWING from the client's address: ciaddr set, no giaddr, no Option 82,
    // through the relay's router (not its DHCP relay).
    let ip = bed.remote(50);
    must(
        Some(&bed.rc),
        &argv!["ip", "addr", "add", format!("{ip}/24"), "dev", CLI_IF],
    );
    must(
        Some(&bed.rc),
        &argv!["ip", "route", "add", "default", "via", bed.remote(1)],
    );
    let before = srv
        .leases()
        .into_iter()
        .find(|l| l.ip == ip)
        .expect("lease");
    std::thread::sleep(Duration::from_millis(1100));
    let mut chaddr = [0u8; 16];
    for (i, b) in mac.split(':').enumerate().take(6) {
        chaddr[i] = u8::from_str_radix(b, 16).unwrap();
    }
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![MessageType::Request.code()]);
    let renew = Packet {
        op: BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid: 0x5eed_0004,
        secs: 0,
        flags: 0,
        ciaddr: ip,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr,
        sname: vec![],
        file: vec![],
        options,
        option82_in_overload: false,
    };
    let mut bytes = Vec::new();
    renew.encode(576, &mut bytes);
    let o = support::raw::send_from_ns(
        &bed.rc,
        SocketAddrV4::new(ip, 68),
        &[SocketAddrV4::new(lab.srv_ip, 67)],
        &[bytes],
    );
    assert!(
        o.stdout.contains("type=Some(5)"),
        "no ACK to the unicast renewal:\n{}\n--- server\n{}",
        o.all(),
        srv.log()
    );
    let after = srv
        .leases()
        .into_iter()
        .find(|l| l.ip == ip)
        .expect("lease");
    assert_eq!(after.state, "bound");
    assert_eq!(after.mac, before.mac);
    assert!(
        after.expires > before.expires,
        "renewal did not extend the lease: {before:?} → {after:?}"
    );
}

/// Not a test of its own: the raw-UDP helper that `support::raw::send_from_ns` runs inside a
/// namespace. Without its environment variable it returns at once.
#[test]
fn udp_send_helper() {
    support::raw::helper_main();
}

/// `c6120063`-style hex of an address, for `--option 50:…`.
fn hex_ip(ip: Ipv4Addr) -> String {
    ip.octets().iter().map(|b| format!("{b:02x}")).collect()
}

/// perfdhcp in relay mode (it sets giaddr to its `-l` address) against two relayed subnets:
/// every lease of a run comes from the subnet holding that run's giaddr.
#[test]
fn perfdhcp_relayed_to_two_subnets_gets_the_right_one() {
    if !gate!("perfdhcp") {
        return;
    }
    let lab = Lab::new();
    let x = lab.net.network().octets()[2];
    let gi_a = Ipv4Addr::new(198, 19, x, 126);
    let gi_b = Ipv4Addr::new(198, 19, x, 254);
    lab.add_client_addr(&format!("{}/24", lab.ip(2)));
    for gi in [gi_a, gi_b] {
        must(
            Some(&lab.cli_ns),
            &argv!["ip", "addr", "add", format!("{gi}/32"), "dev", CLI_IF],
        );
    }
    must(
        Some(&lab.srv_ns),
        &argv![
            "ip",
            "route",
            "add",
            format!("198.19.{x}.0/24"),
            "via",
            lab.ip(2),
            "dev",
            SRV_IF
        ],
    );
    let cfg = format!(
        r#"[server]
lease_time = 300

[store]
path = "{store}"

[[subnets]]
network = "{net}"
interface = "{SRV_IF}"
pools = ["{p0}-{p1}"]

[[subnets]]
network = "198.19.{x}.0/25"
routers = ["198.19.{x}.126"]
pools = ["198.19.{x}.10-198.19.{x}.100"]

[[subnets]]
network = "198.19.{x}.128/25"
routers = ["198.19.{x}.254"]
pools = ["198.19.{x}.140-198.19.{x}.230"]
"#,
        store = lab.path("leases.db").display(),
        net = lab.net,
        p0 = lab.ip(100),
        p1 = lab.ip(200),
    );
    let srv = lab.start_server(&cfg);
    for (gi, base, lo, hi) in [
        (gi_a, "02:1b:aa:00:00:00", 10u8, 100u8),
        (gi_b, "02:1b:bb:00:00:00", 140, 230),
    ] {
        let a = argv![
            bin("perfdhcp"),
            "-4",
            "-l",
            gi,
            "-r",
            "20",
            "-R",
            "10",
            "-n",
            "10",
            "-p",
            "10",
            "-W",
            "2000000",
            "-b",
            format!("mac={base}"),
            lab.srv_ip
        ];
        let out = run(Some(&lab.cli_ns), &a, Duration::from_secs(40));
        let leases = srv.leases();
        let mine: Vec<_> = leases
            .iter()
            .filter(|l| l.mac.starts_with(&base[..9]) && l.state == "bound")
            .collect();
        assert!(
            !mine.is_empty(),
            "no bound lease for giaddr {gi}\n{}\n--- server\n{}",
            out.all(),
            srv.log()
        );
        for l in mine {
            let o = l.ip.octets();
            assert!(
                o[2] == x && (lo..=hi).contains(&o[3]),
                "giaddr {gi} got {} (want 198.19.{x}.{lo}-{hi})",
                l.ip
            );
        }
    }
}
