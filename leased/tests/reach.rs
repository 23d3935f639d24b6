//! System tests of rapid commit (RFC 4039), IPv6-only preferred (RFC 8925) and the RFC 8357
//! relay source port, against real peers: `dhcpcd` (9.x asks for both with `option
//! rapid_commit` / `option ipv6_only_preferred`) on a client link, and `leased relay` on a
//! non-67 port in front of `leased serve`. Packets are read back from tcpdump captures, leases
//! from the server's store. Root and the peers are required: without them each test prints
//! `SKIP: …` (a failure under `CI=true`). Addresses in 198.18.0.0/15 only, every wait bounded,
//! processes stopped by PID, namespaces deleted (the lab's `Drop`).
//!
//! Topologies: the plain lab (`support/lab.rs`) for the client tests, the relay bed
//! (`support/bed.rs`) for the relay.

#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use support::bed::{Bed, UP_IF};
use support::clients::Capture;
use support::lab::{CLI_IF, SRV_IF};
use support::proc::{poll, run};
use support::{Cfg, Dhcpcd, Lab};

/// The re-exec helper of `support::raw` (does nothing unless its variable is set).
#[test]
fn udp_send_helper() {
    support::raw::helper_main();
}

/// DHCP message types in a `tcpdump -v` capture, in order.
fn messages(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.split_once("DHCP-Message (53), length 1: ")?;
            Some(rest.trim().to_string())
        })
        .collect()
}

/// The lab's server with `subnet` keys appended to its subnet.
fn server_cfg(lab: &Lab, subnet: &str) -> String {
    // The subnet table is the last one before `extra`; keys appended there belong to it.
    let cfg = Cfg::for_lab(lab).render();
    cfg.replacen("pools = [", &format!("{subnet}\npools = ["), 1)
}

#[test]
fn dhcpcd_rapid_commit_is_a_two_message_exchange() {
    if !gate!("dhcpcd", "unshare", "tcpdump") {
        return;
    }
    let lab = Lab::new();
    let srv = lab.start_server(&server_cfg(&lab, "rapid_commit = true"));
    let mac = lab.mac(40, 1);
    lab.set_client_mac(&mac);
    let cap = Capture::start(&lab, &lab.srv_ns, SRV_IF, "rapid");
    let mut c = Dhcpcd::new(&lab, &lab.cli_ns, CLI_IF, "dhcpcd-rapid", None);
    c.conf = "option rapid_commit\n".into();
    c.start(false);
    let ev = c.c.wait_event(0, &["BOUND"], Duration::from_secs(25));
    let ev = ev.unwrap_or_else(|| {
        panic!(
            "dhcpcd got no lease by rapid commit\n{}\n--- server\n{}",
            c.c.diag(),
            srv.log()
        )
    });
    let ip = ev.ip().expect("BOUND without an address");
    // The binding is in the store (it was durable before the ACK left).
    let (ok, leases) = srv.leases_until(Duration::from_secs(5), |l| {
        l.iter()
            .any(|r| r.ip == ip && r.state == "bound" && r.mac.eq_ignore_ascii_case(&mac))
    });
    assert!(ok, "no binding for {ip} in the store: {leases:?}");
    std::thread::sleep(Duration::from_millis(500));
    let lines = cap.finish();
    let msgs = messages(&lines);
    assert_eq!(
        msgs,
        ["Discover", "ACK"],
        "not a two-message exchange:\n{}",
        lines.join("\n")
    );
    let text = lines.join("\n");
    assert!(
        text.matches("(80), length 0").count() == 2,
        "option 80 in both the DISCOVER and the ACK:\n{text}"
    );
    c.c.stop();
}

#[test]
fn dhcpcd_without_rapid_commit_on_the_server_gets_an_offer() {
    if !gate!("dhcpcd", "unshare", "tcpdump") {
        return;
    }
    let lab = Lab::new();
    let srv = lab.start_server(&server_cfg(&lab, ""));
    lab.set_client_mac(&lab.mac(40, 2));
    let cap = Capture::start(&lab, &lab.srv_ns, SRV_IF, "no-rapid");
    let mut c = Dhcpcd::new(&lab, &lab.cli_ns, CLI_IF, "dhcpcd-norapid", None);
    c.conf = "option rapid_commit\n".into();
    c.start(false);
    let ev = c.c.wait_event(0, &["BOUND"], Duration::from_secs(25));
    assert!(ev.is_some(), "{}\n--- server\n{}", c.c.diag(), srv.log());
    std::thread::sleep(Duration::from_millis(500));
    let lines = cap.finish();
    assert_eq!(
        messages(&lines),
        ["Discover", "Offer", "Request", "ACK"],
        "{}",
        lines.join("\n")
    );
    c.c.stop();
}

/// dhcpcd asking for option 108 against a subnet with `ipv6_only_wait = "10m"` and `policy`:
/// it takes V6ONLY_WAIT = 600 s and stays silent (no REQUEST, no DISCOVER retransmission);
/// returns the server's leases and the capture.
fn v6only_exchange(policy: &str, ipv4ll: bool, mac: (u8, u8)) -> (Vec<String>, Vec<String>) {
    let lab = Lab::new();
    let srv = lab.start_server(&server_cfg(
        &lab,
        &format!("ipv6_only_wait = \"10m\"\nipv6_only_address = \"{policy}\""),
    ));
    lab.set_client_mac(&lab.mac(mac.0, mac.1));
    let cap = Capture::start(&lab, &lab.srv_ns, SRV_IF, &format!("v6only-{policy}"));
    let mut c = Dhcpcd::new(&lab, &lab.cli_ns, CLI_IF, "dhcpcd-v6only", None);
    c.conf = "option ipv6_only_preferred\n".into();
    c.ipv4ll = ipv4ll;
    c.start(false);
    let heard = poll(Duration::from_secs(20), || {
        c.c.output()
            .contains("IPv6-Only Preferred received (600 seconds)")
            .then_some(())
    });
    assert!(
        heard.is_some(),
        "dhcpcd did not take V6ONLY_WAIT = 600 s:\n{}\n--- server\n{}",
        c.c.diag(),
        srv.log()
    );
    // V6ONLY_WAIT honoured: without an answer dhcpcd retransmits its DISCOVER after about
    // 4 s; now it leaves DHCPv4 alone for 600 s. Twelve seconds cover two retransmissions.
    std::thread::sleep(Duration::from_secs(12));
    let lines = cap.finish();
    assert_eq!(
        messages(&lines),
        ["Discover", "Offer"],
        "dhcpcd went on with DHCPv4:\n{}\n{}",
        lines.join("\n"),
        c.c.output()
    );
    let text = lines.join("\n");
    assert!(text.contains("(108), length 4: 600"), "{text}");
    assert!(
        c.c.events().iter().all(|e| e.ip().is_none()),
        "dhcpcd configured an address: {:?}",
        c.c.events()
    );
    let states = srv.leases().into_iter().map(|l| l.state).collect();
    c.c.stop();
    (states, lines)
}

#[test]
fn dhcpcd_honours_ipv6_only_preferred_offered_no_address() {
    if !gate!("dhcpcd", "unshare", "tcpdump") {
        return;
    }
    // IPv4 link-local on: dhcpcd sends Auto-Configure (RFC 2563), and 9.x honours 108 in a
    // 0.0.0.0 OFFER only beside the server's Auto-Configure answer.
    let (states, lines) = v6only_exchange("none", true, (41, 1));
    assert!(
        states.is_empty(),
        "nothing may be offered or bound: {states:?}"
    );
    let text = lines.join("\n");
    // tcpdump prints Your-IP only when it is not 0.0.0.0.
    assert!(!text.contains("Your-IP"), "an address was offered:\n{text}");
    // Auto-Configure answered "do not" (tcpdump: NOAUTO ... N).
    assert!(text.contains("(116), length 1: N"), "{text}");
}

#[test]
fn dhcpcd_honours_ipv6_only_preferred_beside_an_offered_address() {
    if !gate!("dhcpcd", "unshare", "tcpdump") {
        return;
    }
    let (states, lines) = v6only_exchange("lease", false, (41, 2));
    assert!(
        states.iter().all(|s| s != "bound"),
        "an offer is not a binding: {states:?}"
    );
    assert!(
        lines.join("\n").contains("Your-IP 198.18."),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn leased_relay_on_a_relay_port_in_front_of_leased_serve() {
    if !gate!("dhcpcd", "unshare", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let x = bed.x;
    let giaddr = bed.lab.srv_ip;
    let _up = bed.leased_with(
        &format!("trusted_relays = [\"{giaddr}\", \"198.19.{x}.1\"]"),
        "",
    );
    let up_cap = Capture::start(&bed.lab, &bed.up, UP_IF, "relayport-up");
    let mut relay = bed.relay_with(&[bed.up_ip()], "source_port = 1067", "");
    let ss = run(
        Some(&bed.lab.srv_ns),
        &argv!["ss", "-Hulnp", "sport = :1067"],
        Duration::from_secs(5),
    );
    assert!(
        ss.stdout.contains(&format!("pid={},", relay.pid())),
        "the relay does not listen on 1067: {}",
        ss.all()
    );
    bed.lab.set_client_mac(&bed.lab.mac(42, 1));
    let mut c = Dhcpcd::new(&bed.lab, &bed.lab.cli_ns, CLI_IF, "dhcpcd-relayport", None);
    c.start(false);
    let ev = c.c.wait_event(0, &["BOUND"], Duration::from_secs(30));
    let ev = ev.unwrap_or_else(|| {
        panic!(
            "no lease through the relay on port 1067\n{}\n--- relay\n{}\n--- upstream\n{}",
            c.c.diag(),
            relay.output(),
            std::fs::read_to_string(bed.lab.path("up.log")).unwrap_or_default()
        )
    });
    let ip = ev.ip().unwrap();
    assert!(bed.in_pool(ip), "{ip} is not from the relayed pool");
    std::thread::sleep(Duration::from_millis(500));
    let lines = up_cap.finish();
    let text = lines.join("\n");
    // Requests leave the relay from 1067 and every reply comes back to giaddr:1067.
    let requests = lines
        .iter()
        .filter(|l| l.contains(&format!("198.19.{x}.1.1067 > 198.19.{x}.2.67:")))
        .count();
    let to_port = lines
        .iter()
        .filter(|l| l.contains(&format!("> {giaddr}.1067:")))
        .count();
    let to_67 = lines
        .iter()
        .filter(|l| l.contains(&format!("> {giaddr}.67:")))
        .count();
    assert!(
        requests >= 2,
        "DISCOVER and REQUEST from port 1067:\n{text}"
    );
    assert!(to_port >= 2, "OFFER and ACK to the relay port:\n{text}");
    assert_eq!(to_67, 0, "a reply went to port 67:\n{text}");
    assert!(relay.alive(), "the relay died:\n{}", relay.output());
    c.c.stop();
    relay.stop(Duration::from_secs(5));
}

#[test]
fn an_untrusted_relays_port_is_ignored() {
    if !gate!("dhcpcd", "unshare", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let x = bed.x;
    let giaddr = bed.lab.srv_ip;
    // Some other relay is trusted, not this one: its Option 82, sub-option 19 with it, is not
    // believed, so replies go to giaddr:67, where this relay does not listen.
    let up = bed.leased_with(&format!("trusted_relays = [\"198.19.{x}.99\"]"), "");
    let up_cap = Capture::start(&bed.lab, &bed.up, UP_IF, "untrusted-up");
    let mut relay = bed.relay_with(&[bed.up_ip()], "source_port = 1067", "");
    bed.lab.set_client_mac(&bed.lab.mac(42, 2));
    let mut c = Dhcpcd::new(&bed.lab, &bed.lab.cli_ns, CLI_IF, "dhcpcd-untrusted", None);
    c.start(false);
    let offered = poll(Duration::from_secs(20), || {
        let log = std::fs::read_to_string(bed.lab.path("up.log")).unwrap_or_default();
        log.contains("OFFER").then_some(())
    });
    assert!(offered.is_some(), "the upstream offered nothing");
    std::thread::sleep(Duration::from_secs(2));
    let lines = up_cap.finish();
    let text = lines.join("\n");
    let to_port = lines
        .iter()
        .filter(|l| l.contains(&format!("> {giaddr}.1067:")))
        .count();
    let to_67 = lines
        .iter()
        .filter(|l| l.contains(&format!("> {giaddr}.67:")))
        .count();
    assert_eq!(
        to_port, 0,
        "a reply went to an untrusted relay's port:\n{text}"
    );
    assert!(to_67 >= 1, "the OFFER goes to port 67:\n{text}");
    assert!(
        c.c.events().iter().all(|e| e.ip().is_none()),
        "the client bound through a relay whose replies went elsewhere: {:?}",
        c.c.events()
    );
    drop(up);
    c.c.stop();
    relay.stop(Duration::from_secs(5));
}
