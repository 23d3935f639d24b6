//! `leased relay` under a service manager: a real `dhclient` → `leased relay` → `leased serve`
//! across the network namespaces of `support/bed.rs`, with `NOTIFY_SOCKET` pointing at a
//! datagram socket this test reads: READY=1 once every socket is bound, watchdog pings while
//! every receive loop beats, a STATUS with the forwarding counts, SIGHUP ignored (the relay
//! reads its config only at start) and STOPPING=1 on SIGTERM. Root and dhclient are required:
//! without them the test prints `SKIP: …` (a failure under `CI=true`). Addresses in
//! 198.18.0.0/15 only, every wait bounded, processes stopped by PID, namespaces deleted.

#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

#[path = "ops/notify.rs"]
mod notify;

use std::time::Duration;

use nix::sys::signal::Signal;
use support::Dhclient;
use support::bed::Bed;
use support::lab::{CLI_IF, SRV_IF};

#[test]
fn relay_tells_the_service_manager_ready_status_stopping_and_feeds_the_watchdog() {
    if !gate!("dhclient") {
        return;
    }
    let bed = Bed::new();
    let _up = bed.leased();
    let dir = tempfile::tempdir().unwrap();
    let mut mgr = notify::Manager::bind(dir.path());
    let mut relay = bed.relay_with_env(
        &[bed.up_ip()],
        "",
        "",
        &[
            ("NOTIFY_SOCKET", mgr.path.display().to_string()),
            ("WATCHDOG_USEC", "2000000".to_string()),
        ],
    );
    let ready = mgr.next_state(Duration::from_secs(10));
    let ready = ready.unwrap_or_else(|| panic!("no READY=1:\n{}", relay.output()));
    assert!(
        ready.starts_with(&format!(
            "READY=1\nSTATUS=relaying on {SRV_IF} to {}",
            bed.up_ip()
        )),
        "{ready:?}"
    );
    assert!(
        relay.output().contains("relay started"),
        "{}",
        relay.output()
    );

    // Every loop beats once a second: pings at least every second with WATCHDOG_USEC=2 s.
    let pings = mgr.pings_within(Duration::from_secs(4));
    assert!(pings >= 3, "{pings} pings in 4 s:\n{}", mgr.all());

    // SIGHUP neither ends the relay nor pretends to reload.
    assert!(relay.signal(Signal::SIGHUP));
    let logged = support::proc::poll(Duration::from_secs(5), || {
        relay.output().contains("SIGHUP ignored").then_some(())
    });
    assert!(logged.is_some() && relay.alive(), "{}", relay.output());

    // A client binds through the relay; the status line counts what was forwarded.
    let lab = &bed.lab;
    let mut d = Dhclient::new(lab, &lab.cli_ns, CLI_IF, "dh", Some("notify-dh"));
    d.start();
    let ev =
        d.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(30));
    assert!(
        ev.as_ref()
            .and_then(|e| e.ip())
            .is_some_and(|ip| bed.in_pool(ip)),
        "dhclient got no address through the relay: {ev:?}\n{}\n--- relay\n{}",
        d.c.diag(),
        relay.output()
    );
    let counted = (0..4).find_map(|_| {
        let m = mgr.wait_for(Duration::from_secs(8), "forwarded")?;
        let forwarded = m
            .split("; ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())?;
        (forwarded >= 2).then_some(m)
    });
    assert!(
        counted.is_some(),
        "no status with the forwarded requests:\n{}",
        mgr.all()
    );
    assert!(
        !mgr.all().contains("RELOADING"),
        "the relay does not reload:\n{}",
        mgr.all()
    );

    assert!(relay.signal(Signal::SIGTERM));
    let stopping = mgr.next_state(Duration::from_secs(10));
    assert!(
        stopping
            .as_deref()
            .is_some_and(|m| m.starts_with("STOPPING=1\n")),
        "{stopping:?}\n{}",
        mgr.all()
    );
    let status = relay.wait_timeout(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        relay.output()
    );
}
