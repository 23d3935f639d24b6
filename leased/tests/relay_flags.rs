//! `leased relay` with no config file, as the dhcp-batcher ran ("use command line switches and
//! a shell script"): started with flags only, it relays udhcpc to a real Kea with our Option 82
//! (Kea's lease file has the circuit-id the `--circuit-id` template made) and exports the
//! binding to the Sonar stand-in; then the file `--print-config` writes for the same flags is
//! accepted by `leased check`, and `leased relay -c` on it does exactly the same for a second
//! client. Root, kea-dhcp4 and udhcpc are required (else `SKIP: …`; a failure under
//! `CI=true`). Topology: `support/bed.rs`; the Sonar stand-in runs on the relay namespace's
//! loopback.

#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use support::Udhcpc;
use support::bed::{Bed, CIRCUIT, CIRCUIT_VALUE};
use support::lab::SRV_IF;
use support::proc::{Proc, poll, run};
use support::server::leased_bin;
use support::sonar::{self, Fake};

/// The re-exec entry of the Sonar stand-in (does nothing unless its variable is set).
#[test]
fn fake_sonar_helper() {
    sonar::helper_main();
}

const SONAR_ADDR: &str = "127.0.0.1:8067";
const PASSWORD_ENV: &str = "LEASED_TEST_SONAR_PASSWORD";

/// The relay's settings as flags: everything `Bed::relay` puts in its file, plus Sonar.
fn flags(bed: &Bed) -> Vec<String> {
    argv![
        "--interface",
        SRV_IF,
        "--upstream",
        bed.up_ip(),
        "--circuit-id",
        CIRCUIT,
        "--remote-id",
        "{mac}",
        "--max-hops",
        4,
        "--existing-option82",
        "replace",
        "--rewrite-server-id",
        "--log-level",
        "debug",
        "--outbox",
        bed.lab.path("outbox").display(),
        "--sonar-url",
        format!("http://{SONAR_ADDR}"),
        "--sonar-user",
        sonar::USER,
        "--sonar-password-env",
        PASSWORD_ENV,
        "--interval",
        "1s",
        "--timeout",
        "5s"
    ]
}

fn spawn_relay(bed: &Bed, args: &[String], tag: &str) -> Proc {
    let mut a = argv![leased_bin(), "relay"];
    a.extend(args.iter().cloned());
    let log = bed.lab.path(&format!("{tag}.log"));
    let mut p = Proc::spawn(
        tag,
        Some(&bed.lab.srv_ns),
        &a,
        &log,
        &[
            ("NO_COLOR", "1".to_string()),
            (PASSWORD_ENV, sonar::PASSWORD.to_string()),
        ],
    );
    let ok = poll(Duration::from_secs(10), || {
        p.output().contains("relay started").then_some(())
    });
    assert!(
        ok.is_some() && p.alive(),
        "{tag} did not start:\n{}",
        p.output()
    );
    p
}

/// A udhcpc in a new client namespace gets an address through the relay; returns it and the
/// client's MAC.
fn bind(bed: &Bed, tag: &str) -> (Ipv4Addr, String) {
    let c = bed.lab.add_client();
    let mut u = Udhcpc::new(&bed.lab, &c.ns, &c.iface, tag, None);
    u.start(false, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(30));
    let ip = ev.as_ref().and_then(|e| e.ip());
    assert!(
        ip.is_some_and(|ip| bed.in_pool(ip)),
        "udhcpc ({tag}) got no address through the relay: {ev:?}\n{}",
        u.c.diag()
    );
    u.c.stop();
    (ip.unwrap(), c.mac.to_ascii_uppercase())
}

/// Kea's lease file has the lease of `ip` with our circuit-id in its relay data.
fn kea_saw_our_option82(bed: &Bed, ip: Ipv4Addr) {
    let csv = std::fs::read_to_string(bed.lab.path("kea-leases4.csv")).unwrap_or_default();
    let circuit_hex: String = CIRCUIT_VALUE.bytes().map(|b| format!("{b:02x}")).collect();
    let line = csv
        .lines()
        .rev()
        .find(|l| l.starts_with(&format!("{ip},")))
        .unwrap_or_else(|| panic!("no Kea lease for {ip}:\n{csv}"))
        .to_ascii_lowercase();
    assert!(
        line.contains("relay-agent-info") && line.contains(&circuit_hex),
        "Kea's lease for {ip} lacks the circuit-id {CIRCUIT_VALUE:?}:\n{line}"
    );
}

/// Sonar got the binding of (ip, mac), not expired, within a bounded wait.
fn sonar_got(fake: &Fake, ip: Ipv4Addr, mac: &str, relay: &mut Proc) {
    let got = poll(Duration::from_secs(20), || {
        fake.items()
            .iter()
            .any(|(i, m, expired)| *i == ip.to_string() && m == mac && !expired)
            .then_some(())
    });
    assert!(
        got.is_some(),
        "Sonar never got {ip} {mac}: {:?}\n--- relay\n{}",
        fake.lines(),
        relay.output()
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[test]
fn relay_from_flags_alone_relays_and_exports_like_its_printed_file() {
    if !gate!("kea-dhcp4", "udhcpc") {
        return;
    }
    let bed = Bed::new();
    let _kea = bed.kea();
    let fake = Fake::start(&bed.lab, &bed.lab.srv_ns, SONAR_ADDR, "sonar");
    let flags = flags(&bed);

    // 1. Flags only.
    let mut relay = spawn_relay(&bed, &flags, "relay-flags");
    let (ip1, mac1) = bind(&bed, "u1");
    kea_saw_our_option82(&bed, ip1);
    sonar_got(&fake, ip1, &mac1, &mut relay);
    relay.stop(Duration::from_secs(5));

    // 2. The same flags with --print-config: a file `leased check` accepts…
    let mut a = argv![leased_bin(), "relay"];
    a.extend(flags.iter().cloned());
    a.push("--print-config".into());
    let printed = run(None, &a, Duration::from_secs(10));
    assert!(printed.ok(), "--print-config failed: {}", printed.all());
    assert!(printed.stdout.contains("[relay]") && printed.stdout.contains("[export.sonar]"));
    assert!(
        !printed.stdout.contains(sonar::PASSWORD),
        "the password is never printed, only its variable:\n{}",
        printed.stdout
    );
    let file = bed.lab.path("relay-printed.toml");
    std::fs::write(&file, &printed.stdout).unwrap();
    let check = run(
        None,
        &argv![leased_bin(), "check", "-c", file.display()],
        Duration::from_secs(10),
    );
    assert!(
        check.ok(),
        "the printed config does not check:\n{}\n{}",
        printed.stdout,
        check.all()
    );

    // 3. …and `leased relay -c` on it relays and exports the next client the same way.
    let mut relay = spawn_relay(&bed, &argv!["-c", file.display()], "relay-file");
    let (ip2, mac2) = bind(&bed, "u2");
    assert_ne!(ip1, ip2);
    kea_saw_our_option82(&bed, ip2);
    sonar_got(&fake, ip2, &mac2, &mut relay);
    relay.stop(Duration::from_secs(5));
}

/// A bad flag is refused before anything starts, naming the flag.
#[test]
fn relay_flags_errors_name_the_flag() {
    let o = run(
        None,
        &argv![
            leased_bin(),
            "relay",
            "--interface",
            "eth1",
            "--upstream",
            "198.18.1.300",
            "--sonar-url",
            "http://127.0.0.1:9",
            "--sonar-user",
            "u",
            "--sonar-password-env",
            "PW",
            "--interval",
            "soon"
        ],
        Duration::from_secs(10),
    );
    assert_eq!(o.code(), Some(1), "{}", o.all());
    assert!(
        o.stderr
            .contains("command line: --upstream (relay.upstreams[0])"),
        "{}",
        o.all()
    );
    assert!(
        o.stderr.contains("--interval (export.sonar.interval)"),
        "{}",
        o.all()
    );
    let o = run(None, &argv![leased_bin(), "relay"], Duration::from_secs(10));
    assert_eq!(o.code(), Some(2), "{}", o.all());
    assert!(o.stderr.contains("--interface"), "{}", o.all());
}
