//! System tests of `leased relay`: real clients (dhclient, udhcpc) → `leased relay` →
//! real upstream servers (Kea, ISC dhcpd, leased) across network namespaces. Clients get
//! addresses; the upstream sees the inserted Option 82 (a capture on its link, and Kea's lease
//! file with `store-extended-info`); clients never see it; one upstream down does not stop the
//! others; hops at the limit. Root and the peers are required: without them each test prints
//! `SKIP: …` (a failure under `CI=true`). Addresses in 198.18.0.0/15 only, every wait bounded,
//! processes stopped by PID, namespaces deleted (the lab's `Drop`).
//!
//! Topology: see `support/bed.rs`.

#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use leased_wire::{BOOTREQUEST, MessageType, Options, Packet, code};
use support::bed::{Bed, CIRCUIT_VALUE, UP_IF};
use support::clients::Capture;
use support::lab::CLI_IF;
use support::proc::{poll, run};
use support::server::leased_bin;
use support::{Dhclient, Udhcpc};

/// The re-exec helper of `support::raw` (does nothing unless its variable is set).
#[test]
fn udp_send_helper() {
    support::raw::helper_main();
}

/// Lines of a capture that show an Option 82 with our circuit-id.
fn our_82(lines: &[String]) -> bool {
    lines.iter().any(|l| l.contains("Agent-Information"))
        && lines.iter().any(|l| l.contains(CIRCUIT_VALUE))
}

fn any_82(lines: &[String]) -> bool {
    lines
        .iter()
        .any(|l| l.contains("Agent-Information") || l.contains(CIRCUIT_VALUE))
}

/// dhclient in the client namespace and udhcpc in a second one, both bound through the relay.
fn two_clients_bind(bed: &Bed) -> Vec<Ipv4Addr> {
    let lab = &bed.lab;
    let mut d = Dhclient::new(lab, &lab.cli_ns, CLI_IF, "dh", Some("relayed-dh"));
    d.start();
    let ev =
        d.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(30));
    let dip = ev.as_ref().and_then(|e| e.ip());
    assert!(
        dip.is_some_and(|ip| bed.in_pool(ip)),
        "dhclient got no address from the pool: {ev:?}\n{}\n--- relay\n{}",
        d.c.diag(),
        std::fs::read_to_string(lab.path("relay.log")).unwrap_or_default()
    );
    let c2 = lab.add_client();
    let mut u = Udhcpc::new(lab, &c2.ns, &c2.iface, "ud", Some("relayed-ud"));
    u.start(false, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(30));
    let uip = ev.as_ref().and_then(|e| e.ip());
    assert!(
        uip.is_some_and(|ip| bed.in_pool(ip)),
        "udhcpc got no address from the pool: {ev:?}\n{}\n--- relay\n{}",
        u.c.diag(),
        std::fs::read_to_string(lab.path("relay.log")).unwrap_or_default()
    );
    assert_ne!(dip, uip);
    d.c.stop();
    u.c.stop();
    vec![dip.unwrap(), uip.unwrap()]
}

/// The relay's captured bindings (ACKs relayed), from its outbox.
fn relayed_bindings(bed: &Bed) -> usize {
    let o = run(
        None,
        &argv![
            leased_bin(),
            "export",
            "status",
            "--json",
            "-c",
            bed.lab.path("relay.toml").display()
        ],
        Duration::from_secs(10),
    );
    assert!(o.ok(), "export status failed: {}", o.all());
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    v[0]["queue_depth"].as_u64().unwrap() as usize
}

#[test]
fn relay_to_kea() {
    if !gate!("kea-dhcp4", "dhclient", "udhcpc", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let _kea = bed.kea();
    let (up_cap, cli_cap) = bed.captures("kea");
    let mut relay = bed.relay(&[bed.up_ip()], "");
    let ips = two_clients_bind(&bed);
    let up = up_cap.finish();
    let cli = cli_cap.finish();
    assert!(
        our_82(&up),
        "Kea's link shows no Option 82 from the relay:\n{}",
        up.join("\n")
    );
    assert!(!any_82(&cli), "a client saw Option 82:\n{}", cli.join("\n"));
    // Kea stored the relay agent information with each lease.
    let csv = std::fs::read_to_string(bed.lab.path("kea-leases4.csv")).unwrap_or_default();
    let circuit_hex: String = CIRCUIT_VALUE.bytes().map(|b| format!("{b:02x}")).collect();
    for ip in &ips {
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("{ip},")))
            .unwrap_or_else(|| panic!("no Kea lease for {ip}:\n{csv}"));
        let l = line.to_ascii_lowercase();
        assert!(
            l.contains("relay-agent-info") && l.contains(&circuit_hex),
            "Kea's lease for {ip} lacks our Option 82:\n{line}"
        );
    }
    // Both ACKs were captured as bindings for export.
    assert!(relayed_bindings(&bed) >= 2, "relay recorded no bindings");
    relay.stop(Duration::from_secs(5));
}

#[test]
fn relay_to_isc_dhcpd() {
    if !gate!("dhcpd", "dhclient", "udhcpc", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let _dhcpd = bed.dhcpd();
    let (up_cap, cli_cap) = bed.captures("dhcpd");
    let mut relay = bed.relay(&[bed.up_ip()], "");
    let ips = two_clients_bind(&bed);
    let up = up_cap.finish();
    let cli = cli_cap.finish();
    assert!(
        our_82(&up),
        "dhcpd's link shows no Option 82 from the relay:\n{}",
        up.join("\n")
    );
    assert!(!any_82(&cli), "a client saw Option 82:\n{}", cli.join("\n"));
    let leases = std::fs::read_to_string(bed.lab.path("dhcpd.leases")).unwrap_or_default();
    for ip in &ips {
        assert!(
            leases.contains(&format!("lease {ip} ")),
            "dhcpd has no lease {ip}:\n{leases}"
        );
    }
    relay.stop(Duration::from_secs(5));
}

#[test]
fn relay_to_leased_with_one_upstream_down() {
    if !gate!("dhclient", "udhcpc", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let _up = bed.leased();
    let (up_cap, cli_cap) = bed.captures("leased");
    // The first upstream does not exist: its copies go nowhere, the second still serves.
    let mut relay = bed.relay(&[bed.dead_ip(), bed.up_ip()], "");
    let ips = two_clients_bind(&bed);
    let up = up_cap.finish();
    let cli = cli_cap.finish();
    assert!(
        our_82(&up),
        "leased's link shows no Option 82 from the relay:\n{}",
        up.join("\n")
    );
    assert!(!any_82(&cli), "a client saw Option 82:\n{}", cli.join("\n"));
    // The upstream leased recorded the circuit-id with each lease.
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
    for ip in &ips {
        assert!(
            o.stdout.contains(&ip.to_string()),
            "upstream leased has no lease {ip}:\n{}",
            o.stdout
        );
    }
    let relay_log = relay.output();
    assert!(relay.alive(), "the relay died:\n{relay_log}");
    relay.stop(Duration::from_secs(5));
}

fn discover(xid: u32, hops: u8, mac: [u8; 6]) -> Vec<u8> {
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![MessageType::Discover.code()]);
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let p = Packet {
        op: BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops,
        xid,
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
    let mut out = Vec::new();
    p.encode(576, &mut out);
    out
}

#[test]
fn relay_hops_at_the_limit() {
    if !gate!("tcpdump") {
        return;
    }
    let bed = Bed::new();
    let _up = bed.leased();
    let up_cap = Capture::start(&bed.lab, &bed.up, UP_IF, "hops-up");
    let mut relay = bed.relay(&[bed.up_ip()], "");
    let lab = &bed.lab;
    lab.add_client_addr(&format!("{}/24", lab.ip(2)));
    // max_hops = 4: hops 4 is forwarded (as 5), hops 5 is dropped.
    let at_limit = discover(0x7e57_0004, 4, [2, 0, 0, 0x7e, 0, 4]);
    let over = discover(0x7e57_0005, 5, [2, 0, 0, 0x7e, 0, 5]);
    let out = support::raw::send_from_ns(
        &lab.cli_ns,
        SocketAddrV4::new(lab.ip(2), 68),
        &[SocketAddrV4::new(lab.srv_ip, 67)],
        &[at_limit, over],
    );
    assert!(out.stdout.contains("SENT"), "{}", out.all());
    std::thread::sleep(Duration::from_secs(1));
    let up = up_cap.finish();
    let text = up.join("\n");
    assert!(
        text.contains("0x7e570004"),
        "the request at the hop limit was not forwarded:\n{text}"
    );
    assert!(
        text.contains("hops 5"),
        "forwarded hops not incremented:\n{text}"
    );
    assert!(
        !text.contains("0x7e570005"),
        "the request over the hop limit was forwarded:\n{text}"
    );
    relay.stop(Duration::from_secs(5));
}

/// With `rewrite_server_id`, the relay names itself in option 54 of the replies (Kea 2.2
/// ignores sub-option 11, so `server_id_override` alone is not enough), the client's unicast
/// renewal (RENEWING, ciaddr set) comes to the relay, is relayed, and its ACK goes back to
/// ciaddr: the relay sees the renewal and the binding stays current for export.
#[test]
fn relay_rewrite_server_id_brings_renewals_through_the_relay() {
    if !gate!("kea-dhcp4", "dhclient", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let _kea = bed.kea_with(30, 3, 20);
    let cli_cap = Capture::start(&bed.lab, &bed.lab.cli_ns, CLI_IF, "sid-cli");
    let mut relay = bed.relay_with(
        &[bed.up_ip()],
        "server_id_override = true\nrewrite_server_id = true",
        "",
    );
    let lab = &bed.lab;
    let mut d = Dhclient::new(lab, &lab.cli_ns, CLI_IF, "dh", None);
    d.start();
    let ev =
        d.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(30));
    assert!(ev.is_some(), "no lease: {}", d.c.diag());
    let n = d.c.events().len();
    let ev = d.c.wait_event(n, &["RENEW"], Duration::from_secs(20));
    assert!(
        ev.is_some(),
        "no renewal: {}\n--- relay\n{}",
        d.c.diag(),
        relay.output()
    );
    d.c.stop();
    let cli = cli_cap.finish().join("\n");
    let log = relay.output();
    let bindings = log.matches("binding kind=Bound").count();
    assert!(
        bindings >= 2,
        "the renewal did not pass through the relay:\n{log}"
    );
    assert!(
        log.contains("route=Unicast"),
        "the renewal's ACK was not unicast to ciaddr:\n{log}"
    );
    // The client only ever saw the relay as its server, once per reply.
    let relay_sid = format!("Server-ID (54), length 4: {}", lab.srv_ip);
    assert!(cli.contains(&relay_sid), "option 54 not rewritten:\n{cli}");
    assert!(
        !cli.contains(&format!("Server-ID (54), length 4: {}", bed.up_ip())),
        "{cli}"
    );
    relay.stop(Duration::from_secs(5));
}

/// `[server] user = "nobody"` on the relay: once port 67 is bound it runs as nobody with no
/// capability at all, its exporter still writes the outbox (the folder it made as root is
/// handed over), and clients are still relayed.
#[test]
fn relay_as_nobody_keeps_no_capability_and_still_relays() {
    if !gate!("dhclient", "udhcpc") {
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("group nogroup");
    let bed = Bed::new();
    let _up = bed.leased();
    let outbox = bed.lab.path("outbox");
    std::fs::create_dir(&outbox).unwrap();
    std::os::unix::fs::chown(
        &outbox,
        Some(nobody.uid.as_raw()),
        Some(nogroup.gid.as_raw()),
    )
    .unwrap();
    let mut relay = bed.relay(
        &[bed.up_ip()],
        "\n[server]\nuser = \"nobody\"\ngroup = \"nogroup\"\n",
    );
    let ok = poll(Duration::from_secs(10), || {
        relay.output().contains("dropped root").then_some(())
    });
    assert!(ok.is_some(), "no drop logged:\n{}", relay.output());
    let status = std::fs::read_to_string(format!("/proc/{}/status", relay.pid())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let uid = nobody.uid.as_raw();
    assert_eq!(
        field("Uid"),
        format!("{uid}\t{uid}\t{uid}\t{uid}"),
        "{status}"
    );
    for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(field(set), "0000000000000000", "{set}\n{status}");
    }
    two_clients_bind(&bed);
    // The ACKs reached the outbox, written as nobody.
    let queued = poll(Duration::from_secs(10), || {
        (relayed_bindings(&bed) >= 2).then_some(())
    });
    assert!(queued.is_some(), "relay log:\n{}", relay.output());
    assert!(relay.alive(), "the relay died:\n{}", relay.output());
    relay.stop(Duration::from_secs(5));
}
