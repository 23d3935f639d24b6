//! Test 1: dhclient, udhcpc and dhcpcd each get a lease from the pool, renew it (same
//! address, expiry extended in the store) and release it (store shows `released`).

use std::net::Ipv4Addr;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::gate;
use crate::support::clients::Client;
use crate::support::lab::CLI_IF;
use crate::support::leases::{LeaseRec, find_mac};
use crate::support::{Cfg, Dhclient, Dhcpcd, Lab, Server, Udhcpc};

/// Short leases so dhclient renews by itself at T1 (lease/2).
const LEASE: u32 = 10;

pub(crate) fn in_pool(cfg: &Cfg, ip: Ipv4Addr) -> bool {
    cfg.pools.iter().any(|(a, b)| *a <= ip && ip <= *b)
}

/// Waits until the store has `mac` bound to `ip` (and `extra` holds); returns that lease.
pub(crate) fn wait_bound(
    srv: &Server,
    mac: &str,
    ip: Ipv4Addr,
    what: &str,
    extra: impl Fn(&LeaseRec) -> bool,
) -> LeaseRec {
    let pred = |l: &LeaseRec| l.ip == ip && l.state == "bound" && extra(l);
    let (ok, leases) = srv.leases_until(Duration::from_secs(5), |ls| {
        find_mac(ls, mac).into_iter().any(pred)
    });
    assert!(
        ok,
        "{what}: store has no matching bound lease for {mac} -> {ip}; store: {leases:#?}\nserver log:\n{}",
        srv.log()
    );
    find_mac(&leases, mac)
        .into_iter()
        .find(|l| pred(l))
        .cloned()
        .expect("found")
}

/// Waits until the store shows `ip` released.
pub(crate) fn wait_state(srv: &Server, ip: Ipv4Addr, state: &str, what: &str) -> LeaseRec {
    let (ok, leases) = srv.leases_until(Duration::from_secs(8), |ls| {
        ls.iter().any(|l| l.ip == ip && l.state == state)
    });
    assert!(
        ok,
        "{what}: store does not show {ip} {state}; store: {leases:#?}\nserver log:\n{}",
        srv.log()
    );
    leases.into_iter().find(|l| l.ip == ip).expect("found")
}

fn expires(l: &LeaseRec) -> u64 {
    l.expires
        .unwrap_or_else(|| panic!("lease has no readable expiry: {}", l.raw))
}

fn fail(what: &str, c: &Client, srv: &Server) -> String {
    format!("{what}\n{}\n--- server log\n{}", c.diag(), srv.log())
}

fn setup(lab: &Lab) -> (Cfg, Server<'_>) {
    let mut cfg = Cfg::for_lab(lab);
    cfg.lease_time = LEASE;
    let srv = lab.start_server(&cfg.render());
    (cfg, srv)
}

#[test]
fn dhclient_gets_renews_releases() {
    if !gate!("dhclient") {
        return;
    }
    let lab = Lab::new();
    let (cfg, srv) = setup(&lab);
    let mac = lab.mac(1, 1);
    lab.set_client_mac(&mac);
    let mut d = Dhclient::new(&lab, &lab.cli_ns, CLI_IF, "dhclient", Some("dhc-host"));
    d.start();
    let ev =
        d.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(25));
    let ev = ev.unwrap_or_else(|| panic!("{}", fail("dhclient got no lease", &d.c, &srv)));
    let ip = ev.ip().expect("BOUND without address");
    assert!(in_pool(&cfg, ip), "{ip} not in pool");
    assert_eq!(
        ev.var("new_routers"),
        Some(lab.srv_ip.to_string().as_str()),
        "router option"
    );
    assert_eq!(ev.var("new_subnet_mask"), Some("255.255.255.0"));
    let first = wait_bound(&srv, &mac, ip, "after BOUND", |_| true);
    assert_eq!(
        first.hostname.as_deref(),
        Some("dhc-host"),
        "hostname in store: {}",
        first.raw
    );

    // RENEW at T1 = 5 s: unicast REQUEST from the bound address
    let n = d.c.events().len();
    let ev =
        d.c.wait_event(n, &["RENEW", "REBIND"], Duration::from_secs(15));
    let ev = ev.unwrap_or_else(|| panic!("{}", fail("dhclient did not renew", &d.c, &srv)));
    assert_eq!(
        ev.reason,
        "RENEW",
        "{}",
        fail(
            "dhclient had to REBIND: unicast RENEW unanswered",
            &d.c,
            &srv
        )
    );
    assert_eq!(ev.ip(), Some(ip), "address changed on renew");
    wait_bound(&srv, &mac, ip, "after RENEW", |l| {
        expires(l) > expires(&first)
    });

    let o = d.release();
    assert!(o.ok(), "dhclient -r failed: {}", o.all());
    wait_state(&srv, ip, "released", "after dhclient -r");
    assert!(
        srv.wait_log(std::time::Duration::from_secs(5), |l| l.contains("RELEASE"))
            .is_some(),
        "no RELEASE in log:\n{}",
        srv.log()
    );
}

#[test]
fn udhcpc_gets_renews_releases() {
    if !gate!("udhcpc") {
        return;
    }
    let lab = Lab::new();
    let (cfg, srv) = setup(&lab);
    let mac = lab.mac(1, 2);
    lab.set_client_mac(&mac);
    let mut u = Udhcpc::new(&lab, &lab.cli_ns, CLI_IF, "udhcpc", Some("udh-host"));
    u.start(true, false, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(15));
    let ev = ev.unwrap_or_else(|| panic!("{}", fail("udhcpc got no lease", &u.c, &srv)));
    let ip = ev.ip().expect("bound without ip");
    assert!(in_pool(&cfg, ip), "{ip} not in pool");
    assert_eq!(ev.var("router"), Some(lab.srv_ip.to_string().as_str()));
    assert_eq!(ev.var("serverid"), Some(lab.srv_ip.to_string().as_str()));
    let first = wait_bound(&srv, &mac, ip, "after bound", |_| true);
    assert_eq!(
        first.hostname.as_deref(),
        Some("udh-host"),
        "hostname in store: {}",
        first.raw
    );

    std::thread::sleep(Duration::from_millis(1200)); // so a renewed expiry is a later second
    let n = u.c.events().len();
    assert!(u.c.signal(Signal::SIGUSR1), "udhcpc gone: {}", u.c.diag());
    let ev =
        u.c.wait_event(n, &["renew", "bound"], Duration::from_secs(10));
    let ev = ev.unwrap_or_else(|| panic!("{}", fail("udhcpc did not renew", &u.c, &srv)));
    assert_eq!(ev.ip(), Some(ip), "address changed on renew");
    wait_bound(&srv, &mac, ip, "after renew", |l| {
        expires(l) > expires(&first)
    });

    let n = u.c.events().len();
    assert!(u.c.signal(Signal::SIGUSR2));
    let ev = u.c.wait_event(n, &["deconfig"], Duration::from_secs(10));
    assert!(
        ev.is_some(),
        "{}",
        fail("udhcpc did not release", &u.c, &srv)
    );
    wait_state(&srv, ip, "released", "after udhcpc SIGUSR2");
    u.c.stop();
}

#[test]
fn dhcpcd_gets_renews_releases() {
    if !gate!("dhcpcd", "unshare") {
        return;
    }
    let lab = Lab::new();
    let (cfg, srv) = setup(&lab);
    let mac = lab.mac(1, 3);
    lab.set_client_mac(&mac);
    let mut c = Dhcpcd::new(&lab, &lab.cli_ns, CLI_IF, "dhcpcd", Some("dcd-host"));
    c.start(false);
    let ev =
        c.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(25));
    let ev = ev.unwrap_or_else(|| panic!("{}", fail("dhcpcd got no lease", &c.c, &srv)));
    let ip = ev.ip().expect("BOUND without address");
    assert!(in_pool(&cfg, ip), "{ip} not in pool");
    let first = wait_bound(&srv, &mac, ip, "after BOUND", |_| true);
    assert_eq!(
        first.hostname.as_deref(),
        Some("dcd-host"),
        "hostname in store: {}",
        first.raw
    );

    std::thread::sleep(Duration::from_millis(1200));
    let n = c.c.events().len();
    assert!(c.c.signal(Signal::SIGUSR1), "dhcpcd gone: {}", c.c.diag());
    let ev =
        c.c.wait_event(n, &["RENEW", "REBIND", "BOUND"], Duration::from_secs(10));
    let ev = ev.unwrap_or_else(|| panic!("{}", fail("dhcpcd did not renew", &c.c, &srv)));
    assert_eq!(ev.ip(), Some(ip), "address changed on renew");
    wait_bound(&srv, &mac, ip, "after renew", |l| {
        expires(l) > expires(&first)
    });

    // SIGALRM: dhcpcd releases the lease and exits (its hook then sees STOP/STOPPED)
    let n = c.c.events().len();
    assert!(c.c.signal(Signal::SIGALRM));
    let ev =
        c.c.wait_event(n, &["RELEASE", "STOP", "STOPPED"], Duration::from_secs(10));
    assert!(
        ev.is_some(),
        "{}",
        fail("dhcpcd did not stop after SIGALRM", &c.c, &srv)
    );
    assert!(
        c.c.output().contains("sending RELEASE"),
        "{}",
        fail("dhcpcd sent no RELEASE", &c.c, &srv)
    );
    wait_state(&srv, ip, "released", "after dhcpcd release");
    c.c.stop();
}
