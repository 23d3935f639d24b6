//! Protocol edges with real clients: a wrong-network INIT-REBOOT is NAKed and the client
//! recovers, a banned client's REQUEST is NAKed, leases expire in the store and a returning
//! client gets its old address back.

use std::time::Duration;

use super::interop::{in_pool, wait_bound, wait_state};
use crate::gate;
use crate::support::clients::{PROBE_ACK, ProbeOpts};
use crate::support::lab::CLI_IF;
use crate::support::{Cfg, Dhclient, Lab};

/// A dhclient lease file that makes dhclient start in INIT-REBOOT, asking for `ip`: its renew,
/// rebind and expiry times are a day from now, so dhclient holds it as unexpired.
fn recorded_lease(ip: &str, server: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let later = leased_api::stats::isc_time(leased_core::Timestamp(now + 86_400));
    format!(
        "lease {{\n  interface \"{CLI_IF}\";\n  fixed-address {ip};\n  option subnet-mask 255.255.255.0;\n  option dhcp-lease-time 3600;\n  option dhcp-server-identifier {server};\n  renew {later};\n  rebind {later};\n  expire {later};\n}}\n"
    )
}

#[test]
fn wrong_network_init_reboot_is_naked_and_client_recovers() {
    if !gate!("dhclient") {
        return;
    }
    let lab = Lab::new();
    let cfg = Cfg::for_lab(&lab);
    let srv = lab.start_server(&cfg.render());
    let mac = lab.mac(13, 1);
    lab.set_client_mac(&mac);
    let mut d = Dhclient::new(&lab, &lab.cli_ns, CLI_IF, "dhclient", None);
    // the client believes it still holds an address from another network
    std::fs::write(&d.lf, recorded_lease("198.19.250.5", "198.19.250.1")).unwrap();
    d.start();
    let ev = d.c.wait_event(0, &["BOUND"], Duration::from_secs(25));
    let ev = ev.unwrap_or_else(|| {
        panic!(
            "dhclient did not recover from the NAK\n{}\nlog:\n{}",
            d.c.diag(),
            srv.log()
        )
    });
    let ip = ev.ip().expect("ip");
    assert!(in_pool(&cfg, ip), "{ip} not from the pool");
    let nak = srv
        .wait_log(Duration::from_secs(5), |l| {
            l.contains("NAK") && l.contains(&mac)
        })
        .is_some();
    assert!(
        nak,
        "no NAK for the wrong-network REQUEST of {mac}:\n{}\n{}",
        srv.log(),
        d.c.diag()
    );
    assert!(
        d.c.output().contains("DHCPNAK"),
        "dhclient saw no NAK:\n{}",
        d.c.diag()
    );
    wait_bound(&srv, &mac, ip, "after NAK + DORA", |_| true);
    assert!(
        srv.leases()
            .iter()
            .all(|l| l.ip.to_string() != "198.19.250.5")
    );
}

#[test]
fn banned_client_request_is_naked() {
    if !gate!("dhclient") {
        return;
    }
    let lab = Lab::new();
    let banned = lab.mac(14, 0x66);
    let cfg = Cfg::for_lab(&lab).ban(&banned);
    let srv = lab.start_server(&cfg.render());
    lab.set_client_mac(&banned);
    let mut d = Dhclient::new(&lab, &lab.cli_ns, CLI_IF, "dhclient", None);
    let ip = lab.ip(150).to_string();
    std::fs::write(&d.lf, recorded_lease(&ip, &lab.srv_ip.to_string())).unwrap();
    d.start();
    let nak = srv.wait_log(Duration::from_secs(10), |l| {
        l.contains("NAK") && l.contains(&banned)
    });
    assert!(
        nak.is_some(),
        "authoritative server did not NAK the banned client's REQUEST:\n{}\n{}",
        srv.log(),
        d.c.diag()
    );
    // and it gets nothing afterwards
    assert!(
        d.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(4))
            .is_none(),
        "banned client bound: {}",
        d.c.diag()
    );
    d.c.stop();
    assert!(
        srv.leases().iter().all(|l| l.mac != banned),
        "store has a lease for the banned MAC: {:#?}",
        srv.leases()
    );
}

#[test]
fn lease_expires_and_client_gets_it_back() {
    if !gate!() {
        return;
    }
    let lab = Lab::new();
    let mut cfg = Cfg::for_lab(&lab);
    cfg.lease_time = 3;
    let srv = lab.start_server(&cfg.render());
    let mac = lab.mac(15, 1);
    let p = lab.probe(&ProbeOpts::mac(&mac));
    assert_eq!(
        p.code(),
        Some(PROBE_ACK),
        "{}\nlog:\n{}",
        p.diag(),
        srv.log()
    );
    let ip = p.ip().expect("ip");
    let lt = p.get(&["lease_time"]).and_then(|v| v.as_u64());
    assert_eq!(lt, Some(3), "lease time option: {}", p.diag());
    wait_bound(&srv, &mac, ip, "granted", |_| true);
    // nobody renews: the store must say expired soon after 3 s
    let l = wait_state(&srv, ip, "expired", "3 s lease without renewal");
    assert_eq!(l.mac, crate::support::leases::norm_mac(&mac));
    assert!(
        srv.wait_log(std::time::Duration::from_secs(5), |l| l.contains("EXPIRE"))
            .is_some(),
        "no EXPIRE in log:\n{}",
        srv.log()
    );
    // another client comes and goes; the old client still gets its address back (sticky)
    let p2 = lab.probe(&ProbeOpts::mac(&lab.mac(15, 2)));
    assert_eq!(p2.code(), Some(PROBE_ACK));
    assert_ne!(
        p2.ip(),
        Some(ip),
        "an expired lease's address went to another client while free ones remain"
    );
    let p = lab.probe(&ProbeOpts::mac(&mac));
    assert_eq!(p.code(), Some(PROBE_ACK), "{}", p.diag());
    assert_eq!(
        p.ip(),
        Some(ip),
        "returning client did not get its old address: {}",
        p.diag()
    );
}
