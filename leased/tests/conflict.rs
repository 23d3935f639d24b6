//! Conflict check before OFFER (issue 8, `[server] conflict_check = "arp"`), end to end: a host
//! on the client link holds three pool addresses statically, configured before leased starts.
//! leased never offers any — on-link clients (`leased probe`, broadcast) are checked by ARP,
//! relayed ones (perfdhcp acts as a relay) by ICMP echo — each is quarantined once (`CONFLICT`
//! logged, the address `declined` in the store), and checks run beside serving: 30 relayed
//! clients whose every new address waits for a 300 ms check are all bound in about the time of
//! one check, not thirty.
//!
//! Root and perfdhcp are required (else `SKIP: …`; a failure under `CI=true`).
#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::Value;
use support::clients::{PerfRun, perfdhcp};
use support::lab::CLI_IF;
use support::proc::{must, run};
use support::server::leased_bin;
use support::{Cfg, Lab};

const CLIENTS: u32 = 30;

#[test]
fn a_used_address_is_never_offered_and_checks_do_not_serialise_the_server() {
    if !gate!("perfdhcp") {
        return;
    }
    let lab = Lab::new();
    // The squatter: three pool addresses, .100 and .101 the first ones the allocator hands
    // out (to the on-link clients), .110 one a relayed client meets later.
    let squat = lab.add_client();
    for n in [100, 101, 110] {
        must(
            Some(&squat.ns),
            &argv![
                "ip",
                "addr",
                "add",
                format!("{}/24", lab.ip(n)),
                "dev",
                CLI_IF
            ],
        );
    }
    let mut cfg = Cfg::for_lab(&lab);
    cfg.pools = vec![(lab.ip(100), lab.ip(160))];
    let text = cfg.render().replacen(
        "[server]\n",
        "[server]\nconflict_check = \"arp\"\nconflict_check_timeout_ms = 300\n\
         conflict_check_cache = \"1h\"\n",
        1,
    );
    let server = lab.start_server(&text);
    let on_link_used = [lab.ip(100).to_string(), lab.ip(101).to_string()];
    let relayed_used = lab.ip(110).to_string();
    let used = [
        on_link_used[0].clone(),
        on_link_used[1].clone(),
        relayed_used.clone(),
    ];

    // On-link clients: ARP probes find the squatter.
    let client = lab.add_client();
    let mut got = Vec::new();
    for i in 0..3u8 {
        let out = run(
            Some(&client.ns),
            &argv![
                leased_bin(),
                "probe",
                "-i",
                CLI_IF,
                "--mac",
                format!("02:c0:00:00:00:{i:02x}"),
                "--timeout",
                "5",
                "--json"
            ],
            Duration::from_secs(20),
        );
        assert!(
            out.ok(),
            "probe {i} failed: {}\n{}",
            out.all(),
            server.log()
        );
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        let ip = v["ack"]["yiaddr"].as_str().unwrap().to_string();
        println!("on-link client {i}: {ip} in {:?}", out.elapsed);
        assert!(!used.contains(&ip), "offered a used address {ip}");
        got.push(ip);
    }
    let log = server.log();
    for ip in &on_link_used {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("CONFLICT ip={ip} ")))
            .collect();
        assert_eq!(lines.len(), 1, "{ip} quarantined once: {lines:#?}\n{log}");
        assert!(lines[0].contains("via=arp"), "{}", lines[0]);
        assert!(
            lines[0].contains(&squat.mac),
            "answered by the squatter: {}",
            lines[0]
        );
    }

    // Relayed clients (perfdhcp is a relay: ICMP checks): 20 new clients a second, each new
    // address held for a 300 ms check. One check at a time could serve barely 3 a second and
    // the queue would grow; beside serving, every first OFFER leaves about one check after its
    // DISCOVER. perfdhcp then repeats the same clients: their addresses are cached as free,
    // so they are answered at once.
    lab.add_client_addr(&format!("{}/24", lab.ip(2)));
    let run_ = PerfRun {
        rate: 20,
        clients: CLIENTS,
        num: 10_000,
        secs: 3,
        base_mac: "02:5e:00:00:00:00".into(),
    };
    let (out, stats) = perfdhcp(&lab.cli_ns, CLI_IF, lab.srv_ip, &run_);
    println!("perfdhcp: {stats:?} in {:?}", out.elapsed);
    let log = server.log();
    let latencies = offer_latencies(&log, "02:5e:");
    let (first, again): (Vec<_>, Vec<_>) = latencies.iter().partition(|(_, n, _)| *n == 0);
    println!("first offers: {first:?}\nrepeat offers: {again:?}");
    assert_eq!(
        first.len(),
        CLIENTS as usize,
        "every relayed client offered:\n{}",
        out.all()
    );
    for (mac, _, secs) in &first {
        assert!(
            *secs < 1.0,
            "{mac}: first OFFER after {secs} s (checks serialised?)"
        );
    }
    assert!(
        again.len() >= 5,
        "perfdhcp repeated too few clients: {again:?}"
    );
    for (mac, _, secs) in &again {
        assert!(*secs < 0.1, "{mac}: cached address offered after {secs} s");
    }
    let conflicts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("CONFLICT ip={relayed_used} ")))
        .collect();
    assert_eq!(conflicts.len(), 1, "{conflicts:#?}\n{log}");
    assert!(conflicts[0].contains("via=ping"), "{}", conflicts[0]);
    let leases = server.leases();
    let bound: Vec<_> = leases
        .iter()
        .filter(|l| l.state == "bound" && l.mac.starts_with("02:5e:"))
        .collect();
    assert_eq!(bound.len(), CLIENTS as usize, "{leases:#?}");

    // Nobody was ever offered a used address; both are quarantined in the store.
    let log = server.log();
    for ip in &used {
        assert!(
            !log.lines()
                .any(|l| l.contains("OFFER") && l.contains(&format!("ip={ip} "))),
            "{ip} offered:\n{log}"
        );
    }
    let leases = server.leases();
    for ip in &used {
        let rec = leases.iter().find(|l| &l.ip.to_string() == ip);
        assert_eq!(
            rec.map(|r| r.state.as_str()),
            Some("declined"),
            "{ip}: {rec:?}"
        );
    }
    assert_eq!(got.len(), 3);
}

/// Seconds of the day of a text log line (`2026-11-23T01:45:29.488870Z …`).
fn time_of(line: &str) -> Option<f64> {
    let t = line
        .split_whitespace()
        .next()?
        .split('T')
        .nth(1)?
        .trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

/// For every DISCOVER from a MAC starting with `prefix` that got an OFFER: (MAC, how many
/// earlier exchanges that MAC had, seconds from its first DISCOVER of that xid to the OFFER).
fn offer_latencies(log: &str, prefix: &str) -> Vec<(String, usize, f64)> {
    let mut asked: std::collections::HashMap<(String, String), f64> = Default::default();
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let mut out = Vec::new();
    for line in log.lines() {
        let (Some(t), Some(mac), Some(xid)) =
            (time_of(line), field(line, "mac="), field(line, "xid="))
        else {
            continue;
        };
        if !mac.starts_with(prefix) {
            continue;
        }
        let key = (mac.to_string(), xid.to_string());
        if line.contains(" DISCOVER ") {
            asked.entry(key).or_insert(t);
        } else if line.contains(" OFFER ")
            && let Some(t0) = asked.remove(&key)
        {
            let n = seen.entry(mac.to_string()).or_default();
            let d = t - t0;
            out.push((mac.to_string(), *n, if d < 0.0 { d + 86_400.0 } else { d }));
            *n += 1;
        }
    }
    out
}
