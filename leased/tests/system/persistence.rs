//! Test 8: a clean restart restores every lease, and clients keep their addresses.

use std::time::Duration;

use serde_json::Value;

use super::interop::wait_bound;
use crate::gate;
use crate::support::clients::{PROBE_ACK, ProbeOpts};
use crate::support::lab::CLI_IF;
use crate::support::leases::LeaseRec;
use crate::support::{Cfg, Lab, Udhcpc};

fn canon(leases: &[LeaseRec]) -> Vec<Value> {
    let mut v: Vec<_> = leases.iter().map(|l| l.raw.clone()).collect();
    v.sort_by_key(|x| x.to_string());
    v
}

#[test]
fn restart_restores_every_lease() {
    if !gate!("udhcpc") {
        return;
    }
    let lab = Lab::new();
    let mut cfg = Cfg::for_lab(&lab);
    cfg.lease_time = 600;
    let mut srv = lab.start_server(&cfg.render());

    let mut granted = Vec::new();
    for i in 1..=6u8 {
        let mac = lab.mac(8, i);
        let p = lab.probe(&ProbeOpts {
            hostname: Some(format!("host-{i}")),
            ..ProbeOpts::mac(&mac)
        });
        assert_eq!(
            p.code(),
            Some(PROBE_ACK),
            "{}\nlog:\n{}",
            p.diag(),
            srv.log()
        );
        let ip = p.ip().expect("ip");
        wait_bound(&srv, &mac, ip, "granted", |_| true);
        granted.push((mac, ip));
    }
    // and a real client
    let umac = lab.mac(8, 0x20);
    lab.set_client_mac(&umac);
    let mut u = Udhcpc::new(&lab, &lab.cli_ns, CLI_IF, "udhcpc", Some("udh-restart"));
    u.start(true, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(15));
    let uip = ev
        .and_then(|e| e.ip())
        .unwrap_or_else(|| panic!("udhcpc: {}\nlog:\n{}", u.c.diag(), srv.log()));
    wait_bound(&srv, &umac, uip, "udhcpc", |_| true);
    u.c.stop();

    let before = srv.leases();
    assert_eq!(
        before.iter().filter(|l| l.state == "bound").count(),
        granted.len() + 1,
        "{before:#?}"
    );

    let st = srv.term();
    assert!(
        st.success(),
        "leased exited with {st} on SIGTERM; log:\n{}",
        srv.log()
    );
    let stopped = srv.leases();
    assert_eq!(
        canon(&stopped),
        canon(&before),
        "store read with the server stopped differs"
    );

    srv.start();
    let after = srv.leases();
    assert_eq!(
        canon(&after),
        canon(&before),
        "leases after restart differ from before"
    );

    // clients coming back get their own addresses
    for (mac, ip) in &granted[..3] {
        let p = lab.probe(&ProbeOpts::mac(mac));
        assert_eq!(p.code(), Some(PROBE_ACK), "{}", p.diag());
        assert_eq!(
            p.ip(),
            Some(*ip),
            "{mac} got another address after restart: {}",
            p.diag()
        );
    }
    lab.set_client_mac(&umac);
    let mut u = Udhcpc::new(&lab, &lab.cli_ns, CLI_IF, "udhcpc2", Some("udh-restart"));
    u.start(true, true, &["-r", &uip.to_string()]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(15));
    assert_eq!(
        ev.and_then(|e| e.ip()),
        Some(uip),
        "udhcpc after restart: {}\nlog:\n{}",
        u.c.diag(),
        srv.log()
    );
    wait_bound(&srv, &umac, uip, "udhcpc after restart", |_| true);
}

#[test]
fn clean_stop_keeps_release_and_decline() {
    if !gate!() {
        return;
    }
    let lab = Lab::new();
    let cfg = Cfg::for_lab(&lab);
    let mut srv = lab.start_server(&cfg.render());
    let (a, b, c) = (lab.mac(9, 1), lab.mac(9, 2), lab.mac(9, 3));
    let pa = lab.probe(&ProbeOpts {
        release: true,
        ..ProbeOpts::mac(&a)
    });
    assert_eq!(pa.code(), Some(PROBE_ACK), "{}", pa.diag());
    let pb = lab.probe(&ProbeOpts {
        decline: true,
        ..ProbeOpts::mac(&b)
    });
    assert_eq!(pb.code(), Some(PROBE_ACK), "{}", pb.diag());
    let pc = lab.probe(&ProbeOpts::mac(&c));
    assert_eq!(pc.code(), Some(PROBE_ACK), "{}", pc.diag());
    let (ia, ib, ic) = (
        pa.ip().expect("ip"),
        pb.ip().expect("ip"),
        pc.ip().expect("ip"),
    );
    // stop at once: RELEASE and DECLINE are lazily persisted, a clean stop must still keep them
    let st = srv.term();
    assert!(st.success(), "exit {st}; log:\n{}", srv.log());
    let leases = srv.leases();
    let state = |ip| leases.iter().find(|l| l.ip == ip).map(|l| l.state.clone());
    assert_eq!(
        state(ia).as_deref(),
        Some("released"),
        "RELEASE lost by a clean stop: {leases:#?}"
    );
    assert_eq!(
        state(ib).as_deref(),
        Some("declined"),
        "DECLINE lost by a clean stop: {leases:#?}"
    );
    assert_eq!(state(ic).as_deref(), Some("bound"), "{leases:#?}");
    srv.start();
    let after = srv.leases();
    assert_eq!(canon(&after), canon(&leases), "restart changed the store");
    // the quarantine survives the restart: a new client is not offered the declined address
    let p = lab.probe(&ProbeOpts::mac(&lab.mac(9, 4)));
    assert_eq!(p.code(), Some(PROBE_ACK), "{}", p.diag());
    assert_ne!(
        p.ip(),
        Some(ib),
        "declined address handed out after restart"
    );
}

#[test]
fn lease_that_expired_while_down_is_expired_after_start() {
    if !gate!() {
        return;
    }
    let lab = Lab::new();
    let mut cfg = Cfg::for_lab(&lab);
    cfg.lease_time = 2;
    let mut srv = lab.start_server(&cfg.render());
    let mac = lab.mac(9, 0x10);
    let p = lab.probe(&ProbeOpts::mac(&mac));
    assert_eq!(p.code(), Some(PROBE_ACK), "{}", p.diag());
    let ip = p.ip().expect("ip");
    let st = srv.term();
    assert!(st.success());
    std::thread::sleep(Duration::from_secs(3));
    srv.start();
    super::interop::wait_state(
        &srv,
        ip,
        "expired",
        "lease that ran out while the server was down",
    );
    // its owner still gets it back first
    let p = lab.probe(&ProbeOpts::mac(&mac));
    assert_eq!(p.ip(), Some(ip), "{}", p.diag());
}
