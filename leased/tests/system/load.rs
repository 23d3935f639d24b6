//! Tests 7 and 9: perfdhcp load (2,000 clients → 2,000 distinct bound addresses) and kill -9
//! during load (no ACK a client saw is lost). Heavy: serialised with [`HEAVY`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::argv;
use crate::gate;
use crate::support::clients::{PROBE_ACK, PerfRun, ProbeOpts, probe};
use crate::support::lab::{CLI_IF, ClientNs};
use crate::support::leases::norm_mac;
use crate::support::proc::{Proc, bin};
use crate::support::{Cfg, Lab};

/// perfdhcp runs one at a time: they want a whole core each.
static HEAVY: Mutex<()> = Mutex::new(());

pub(crate) fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A wide lab: server .0.1, perfdhcp's relay address .0.2, pool from .1.0 to the end of the
/// network (less a few).
fn wide_lab(net: &str) -> (Lab, Cfg) {
    let lab = Lab::with_net(net);
    let mut cfg = Cfg::for_lab(&lab);
    cfg.lease_time = 3600;
    let last = u32::from(lab.net.broadcast()) - u32::from(lab.net.network());
    cfg.pools = vec![(lab.ip(256), lab.ip(last - 5))];
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

pub(crate) fn tail(s: &str, n: usize) -> String {
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

/// One kill -9 cycle's observations.
struct Cycle {
    /// (mac, ip) of every ACK a probe client received.
    acked: Vec<(String, Ipv4Addr)>,
    /// (mac, ip) of every ACK the server logged before it died.
    logged: Vec<(String, Ipv4Addr)>,
    attempts: u32,
}

/// Load (perfdhcp + 4 probe clients in their own namespaces), then kill -9 the server while
/// the load runs. Returns what the clients saw. The server is left dead.
fn load_and_kill(
    lab: &Lab,
    srv: &mut crate::support::Server,
    clients: &[ClientNs],
    cycle: u8,
) -> Cycle {
    let perf_out = lab.path(&format!("perfdhcp.{cycle}.out"));
    let a = argv![
        bin("perfdhcp"),
        "-4",
        "-l",
        CLI_IF,
        "-r",
        200,
        "-R",
        20000,
        "-p",
        30,
        "-W",
        "1000000",
        "-g",
        "single",
        "-b",
        format!("mac=02:bb:{cycle:02x}:00:00:00"),
        lab.srv_ip
    ];
    let mut perf = Proc::spawn("perfdhcp", Some(&lab.cli_ns), &a, &perf_out, &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(String, Ipv4Addr)>>> = Arc::default();
    let attempts = Arc::new(AtomicU32::new(0));
    let mut workers = Vec::new();
    for (w, c) in clients.iter().enumerate() {
        let (stop, seen, attempts, c) = (stop.clone(), seen.clone(), attempts.clone(), c.clone());
        workers.push(std::thread::spawn(move || {
            for i in 0..=255u8 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let mac = format!("02:cc:{cycle:02x}:00:{w:02x}:{i:02x}");
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
                    seen.lock().expect("lock").push((norm_mac(&mac), ip));
                }
            }
        }));
    }

    // let ACKs accumulate, then kill -9 in the middle of the load
    let t0 = Instant::now();
    while seen.lock().expect("lock").len() < 20 && t0.elapsed() < Duration::from_secs(8) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let st = srv.kill9();
    let log = srv.log();
    let perf_alive = perf.alive();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    perf.stop(Duration::from_secs(3));
    assert!(
        perf_alive,
        "cycle {cycle}: perfdhcp ended before the kill ({st}): not under load\n{}",
        perf.output()
    );
    let acked = seen.lock().expect("lock").clone();
    Cycle {
        acked,
        logged: log_acks(&log),
        attempts: attempts.load(Ordering::SeqCst),
    }
}

#[test]
fn kill9_under_load_loses_no_acked_lease() {
    if !gate!("perfdhcp") {
        return;
    }
    let _g = heavy();
    let (lab, cfg) = wide_lab("198.19.64.0/18");
    let mut srv = lab.start_server(&cfg.render());
    let clients: Vec<ClientNs> = (0..4).map(|_| lab.add_client()).collect();

    // `leases --json` must read the store at any moment: during load, right after a kill -9
    // (torn tail), during start-up
    let stop_reader = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop_reader.clone();
        let store = srv.store_path().expect("store path");
        std::thread::spawn(move || {
            let (mut ok, mut bad) = (0u32, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let o = crate::support::proc::run(
                    None,
                    &argv![
                        crate::support::server::leased_bin(),
                        "leases",
                        "--store",
                        store.display(),
                        "--json"
                    ],
                    Duration::from_secs(20),
                );
                let parsed = o.ok()
                    && serde_json::from_str::<serde_json::Value>(&o.stdout)
                        .is_ok_and(|v| v.is_array());
                if parsed {
                    ok += 1
                } else if bad.len() < 5 {
                    bad.push(o.all())
                }
                std::thread::sleep(Duration::from_millis(150));
            }
            (ok, bad)
        })
    };

    let mut acked_all: Vec<(String, Ipv4Addr)> = Vec::new();
    let mut logged_all: Vec<(String, Ipv4Addr)> = Vec::new();
    for cycle in 0..3u8 {
        let c = load_and_kill(&lab, &mut srv, &clients, cycle);
        assert!(
            c.acked.len() >= 10,
            "cycle {cycle}: too few probe ACKs before the kill ({} of {} attempts)\nlog:\n{}",
            c.acked.len(),
            c.attempts,
            tail(&srv.log(), 40)
        );
        assert!(
            !c.logged.is_empty(),
            "cycle {cycle}: no parsable `ACK ip=… mac=…` lines:\n{}",
            tail(&srv.log(), 20)
        );
        acked_all.extend(c.acked);
        logged_all.extend(c.logged);

        // restart on the store the killed server left behind
        srv.start();
        let leases = srv.leases();
        let bound: BTreeMap<(String, Ipv4Addr), &str> = leases
            .iter()
            .map(|l| ((l.mac.clone(), l.ip), l.state.as_str()))
            .collect();
        let missing: Vec<_> = acked_all
            .iter()
            .filter(|k| bound.get(*k) != Some(&"bound"))
            .collect();
        assert!(
            missing.is_empty(),
            "after kill -9 #{}: {} of {} ACKs seen by clients are not bound in the store: {:?}",
            cycle + 1,
            missing.len(),
            acked_all.len(),
            &missing[..missing.len().min(20)]
        );
        // the server logs an ACK only after its lease is durable
        let lost: Vec<_> = logged_all
            .iter()
            .filter(|k| bound.get(*k) != Some(&"bound"))
            .collect();
        assert!(
            lost.is_empty(),
            "after kill -9 #{}: {} of {} logged ACKs are not bound: {:?}",
            cycle + 1,
            lost.len(),
            logged_all.len(),
            &lost[..lost.len().min(20)]
        );
        // one address, one client
        let mut ips = BTreeSet::new();
        let dup: Vec<_> = leases
            .iter()
            .filter(|l| l.state == "bound" && !ips.insert(l.ip))
            .collect();
        assert!(dup.is_empty(), "address bound twice after restart: {dup:?}");
    }
    stop_reader.store(true, Ordering::SeqCst);
    let (reads, bad) = reader.join().expect("reader");
    assert!(
        bad.is_empty(),
        "`leased leases --json` failed while the server ran / after kill -9 ({reads} good reads):\n{}",
        bad.join("\n")
    );
    assert!(reads >= 5, "only {reads} store reads");
    eprintln!(
        "kill -9 x3: {} probe ACKs and {} logged ACKs all survived; {reads} concurrent store reads",
        acked_all.len(),
        logged_all.len()
    );
}

#[test]
fn pool_exhaustion_under_load_never_double_allocates() {
    if !gate!("perfdhcp") {
        return;
    }
    let _g = heavy();
    let lab = Lab::new();
    let mut cfg = Cfg::for_lab(&lab);
    cfg.pools = vec![(lab.ip(100), lab.ip(159))]; // 60 addresses for 150 clients
    cfg.lease_time = 3600;
    lab.add_client_addr(&format!("{}/24", lab.ip(2)));
    let srv = lab.start_server(&cfg.render());
    let run = PerfRun {
        rate: 200,
        clients: 150,
        num: 150,
        secs: 10,
        base_mac: "02:dd:00:00:00:00".into(),
    };
    let (out, st) = crate::support::clients::perfdhcp(&lab.cli_ns, CLI_IF, lab.srv_ip, &run);
    assert!(
        st.do_sent >= 150,
        "perfdhcp sent {} DISCOVERs: {}",
        st.do_sent,
        out.all()
    );
    let leases = srv.leases();
    let bound: Vec<_> = leases.iter().filter(|l| l.state == "bound").collect();
    let ips: BTreeSet<Ipv4Addr> = bound.iter().map(|l| l.ip).collect();
    assert_eq!(
        ips.len(),
        bound.len(),
        "an address is bound twice: {bound:#?}"
    );
    assert!(
        ips.iter().all(|ip| super::interop::in_pool(&cfg, *ip)),
        "address outside the pool"
    );
    assert_eq!(
        bound.len(),
        60,
        "the whole pool should be bound, no more ({st:?})"
    );
    assert_eq!(
        st.ra_rcvd, 60,
        "ACKs perfdhcp received ({st:?}):\n{}",
        out.stdout
    );
    let uniq: Vec<&str> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("non unique addresses:"))
        .collect();
    assert!(
        !uniq.is_empty() && uniq.iter().all(|l| *l == "non unique addresses: 0"),
        "perfdhcp saw duplicate addresses:\n{}",
        out.stdout
    );
    assert!(
        srv.wait_log(std::time::Duration::from_secs(5), |l| l
            .contains("pool exhausted"))
            .is_some(),
        "no pool-exhausted line:\n{}",
        tail(&srv.log(), 20)
    );
    // a client that already has a lease still gets it back when the pool is full
    let mac = &bound[0].mac;
    let p = lab.probe(&ProbeOpts::mac(mac));
    assert_eq!(
        p.code(),
        Some(PROBE_ACK),
        "bound client refused when the pool is full: {}",
        p.diag()
    );
    assert_eq!(p.ip(), Some(bound[0].ip));
}
