//! Tests 7 and 9: perfdhcp load (2,000 clients → 2,000 distinct bound addresses) and kill -9
//! during load (no ACK a client saw is lost). Heavy: serialised with [`HEAVY`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::argv;
use crate::gate;
use crate::support::clients::{PROBE_ACK, PerfRun, ProbeOpts, probe};
use crate::support::lab::CLI_IF;
use crate::support::leases::norm_mac;
use crate::support::proc::{Proc, bin};
use crate::support::{Cfg, Lab};

/// perfdhcp runs one at a time: they want a whole core each.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A /20 lab: server .0.1, perfdhcp's relay address .0.2, pool .1.0–.15.250.
fn wide_lab(net: &str) -> (Lab, Cfg) {
    let lab = Lab::with_net(net);
    let mut cfg = Cfg::for_lab(&lab);
    cfg.lease_time = 3600;
    cfg.pools = vec![(lab.ip(256), lab.ip(15 * 256 + 250))];
    lab.add_client_addr(&format!("{}/{}", lab.ip(2), lab.net.prefix_len()));
    (lab, cfg)
}

#[test]
fn perfdhcp_2000_clients_get_2000_addresses() {
    if !gate!("perfdhcp") {
        return;
    }
    let _g = heavy();
    let (lab, cfg) = wide_lab("198.19.0.0/20");
    let srv = lab.start_server(&cfg.render());
    let n = 2000;
    let base = "02:aa:00:00:00:00";
    let (out, st) = crate::support::clients::perfdhcp(
        &lab.cli_ns,
        CLI_IF,
        lab.srv_ip,
        &PerfRun {
            rate: 500,
            clients: n,
            num: n,
            secs: 20,
            base_mac: base.to_string(),
        },
    );
    assert!(
        st.do_sent >= u64::from(n),
        "perfdhcp sent only {} DISCOVERs: {}",
        st.do_sent,
        out.all()
    );
    assert_eq!(
        st.ra_rcvd,
        u64::from(n),
        "perfdhcp completed {} of {n} DORA exchanges ({st:?})\n{}\nserver log tail:\n{}",
        st.ra_rcvd,
        out.stdout,
        tail(&srv.log(), 30)
    );

    let leases = srv.leases();
    let bound: Vec<_> = leases
        .iter()
        .filter(|l| l.state == "bound" && l.mac.starts_with("02:aa:"))
        .collect();
    let ips: BTreeSet<Ipv4Addr> = bound.iter().map(|l| l.ip).collect();
    let macs: BTreeSet<&str> = bound.iter().map(|l| l.mac.as_str()).collect();
    assert_eq!(
        bound.len(),
        n as usize,
        "bound perfdhcp leases in store: {} (of {} leases)",
        bound.len(),
        leases.len()
    );
    assert_eq!(ips.len(), n as usize, "addresses not distinct");
    assert_eq!(macs.len(), n as usize, "MACs not distinct");
    assert!(
        ips.iter().all(|ip| super::interop::in_pool(&cfg, *ip)),
        "address outside the pool"
    );
}

fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// `(mac, ip)` of every ACK line in a server log (`ACK ip=… mac=…`, either order).
pub(crate) fn log_acks(log: &str) -> Vec<(String, Ipv4Addr)> {
    log.lines()
        .filter(|l| {
            l.split_whitespace()
                .any(|w| w == "ACK" || w.ends_with("ACK"))
                && !l.contains("NAK")
        })
        .filter_map(|l| {
            let mut ip = None;
            let mut mac = None;
            for w in l.split(|c: char| c.is_whitespace() || c == ',') {
                let w = w.trim_matches(|c| c == '"' || c == '{' || c == '}');
                if let Some(v) = w.strip_prefix("ip=").or_else(|| w.strip_prefix("yiaddr=")) {
                    ip = v.trim_matches('"').parse().ok();
                }
                if let Some(v) = w.strip_prefix("mac=").or_else(|| w.strip_prefix("chaddr=")) {
                    mac = Some(norm_mac(v.trim_matches('"')));
                }
            }
            Some((mac?, ip?))
        })
        .collect()
}

#[test]
fn kill9_under_load_loses_no_acked_lease() {
    if !gate!("perfdhcp") {
        return;
    }
    let _g = heavy();
    let (lab, cfg) = wide_lab("198.19.16.0/20");
    let mut srv = lab.start_server(&cfg.render());

    // background load: perfdhcp from the main client namespace
    let perf_out = lab.path("perfdhcp.out");
    let a = argv![
        bin("perfdhcp"),
        "-4",
        "-l",
        CLI_IF,
        "-r",
        400,
        "-R",
        20000,
        "-p",
        8,
        "-W",
        "1000000",
        "-g",
        "single",
        "-b",
        "mac=02:bb:00:00:00:00",
        lab.srv_ip
    ];
    let mut perf = Proc::spawn("perfdhcp", Some(&lab.cli_ns), &a, &perf_out, &[]);

    // foreground: probe clients in their own namespaces, recording every ACK they saw
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(String, Ipv4Addr, Instant)>>> = Arc::default();
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut workers = Vec::new();
    for w in 0..4u8 {
        let c = lab.add_client();
        let (stop, seen, attempts) = (stop.clone(), seen.clone(), attempts.clone());
        let mac_of = move |i: u8| format!("02:cc:00:00:{w:02x}:{i:02x}");
        workers.push(std::thread::spawn(move || {
            for i in 0..=255u8 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let mac = mac_of(i);
                attempts.fetch_add(1, Ordering::SeqCst);
                let p = probe(
                    &c.ns,
                    &c.iface,
                    &ProbeOpts {
                        timeout: Some(2),
                        ..ProbeOpts::mac(&mac)
                    },
                );
                if p.code() == Some(PROBE_ACK)
                    && let Some(ip) = p.ip()
                {
                    seen.lock()
                        .unwrap()
                        .push((norm_mac(&mac), ip, Instant::now()));
                }
            }
        }));
    }

    // let ACKs accumulate, then kill -9 in the middle of the load
    let t0 = Instant::now();
    while seen.lock().unwrap().len() < 20 && t0.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));
    let kill_at = Instant::now();
    let st = srv.kill9();
    let log_before = srv.log();
    assert!(
        perf.alive(),
        "perfdhcp ended before the kill: the kill was not under load\n{}",
        perf.output()
    );
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    perf.stop(Duration::from_secs(3));
    let acked = seen.lock().unwrap().clone();
    assert!(
        acked
            .iter()
            .all(|(_, _, t)| *t <= kill_at + Duration::from_secs(1))
    );
    assert!(
        acked.len() >= 10,
        "too few probe ACKs before the kill ({} of {} attempts) to mean anything\nlog:\n{}",
        acked.len(),
        attempts.load(Ordering::SeqCst),
        tail(&log_before, 40)
    );

    // restart and compare
    srv.start();
    let leases = srv.leases();
    let bound: BTreeMap<(String, Ipv4Addr), &str> = leases
        .iter()
        .map(|l| ((l.mac.clone(), l.ip), l.state.as_str()))
        .collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|(m, ip, _)| bound.get(&(m.clone(), *ip)) != Some(&"bound"))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} ACKs seen by probe clients are not bound in the store after kill -9 ({st}): {missing:?}",
        missing.len(),
        acked.len()
    );

    // every ACK the server logged before dying (it logs after the lease is durable)
    let logged = log_acks(&log_before);
    assert!(
        !logged.is_empty(),
        "no parsable `ACK ip=… mac=…` lines in the log:\n{}",
        tail(&log_before, 20)
    );
    let lost: Vec<_> = logged
        .iter()
        .filter(|(m, ip)| bound.get(&(m.clone(), *ip)) != Some(&"bound"))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} logged ACKs are not bound after restart: {:?}",
        lost.len(),
        logged.len(),
        &lost[..lost.len().min(20)]
    );
    eprintln!(
        "kill -9: {} probe ACKs and {} logged ACKs all survived",
        acked.len(),
        logged.len()
    );
}
