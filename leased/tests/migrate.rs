//! Migration against the real servers, in network namespaces: Kea (then dnsmasq) serves a link
//! to perfdhcp clients, a real dhclient and a reserved client; its config and lease file are
//! imported with `leased import`; leased then serves the same link, and
//!
//! - every client the old server had bound renews (a RENEWING REQUEST: unicast from its
//!   address, ciaddr set, no option 50 or 54, as `leased probe --renew` sends it) and is ACKed
//!   with the same address;
//! - the dhclient, started again without its lease file, so that it DISCOVERs, is offered and
//!   bound to its old address;
//! - the reserved client gets its reserved address from leased.
//!
//! Root and the peers are required (else `SKIP: …`; a failure under `CI=true`). Addresses in
//! 198.18.0.0/15 only, every wait bounded, processes stopped by PID, namespaces deleted.

#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use support::clients::{PROBE_ACK, PROBE_NAK, PerfRun, ProbeOpts, perfdhcp, probe};
use support::lab::{CLI_IF, SRV_IF};
use support::proc::{Proc, bin, must, poll, run};
use support::server::leased_bin;
use support::{Dhclient, Lab};

/// How many different perfdhcp clients to bind.
const PERF_CLIENTS: u32 = 24;

/// A client the old server had bound.
#[derive(Debug, Clone)]
struct Held {
    ip: Ipv4Addr,
    mac: String,
    /// Option 61 as the client sent it (hex), to send it again.
    client_id: Option<String>,
}

/// The old server, running.
struct Peer {
    proc: Proc,
    /// `leased import` arguments after `import` (source, config, leases).
    import: Vec<String>,
    /// Reads the bound leases from the old server's lease file.
    held: fn(&Path, u64) -> Vec<Held>,
    leases: PathBuf,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn reserved_mac(lab: &Lab) -> String {
    lab.mac(0x5e, 0x01)
}

fn reserved_ip(lab: &Lab) -> Ipv4Addr {
    lab.ip(20)
}

fn wait_port67(lab: &Lab, mut p: Proc, what: &str) -> Proc {
    let pid = p.pid();
    let ok = poll(Duration::from_secs(15), || {
        let o = run(
            Some(&lab.srv_ns),
            &argv!["ss", "-Hulnp", "sport = :67"],
            Duration::from_secs(5),
        );
        o.stdout.contains(&format!("pid={pid},")).then_some(())
    });
    assert!(
        ok.is_some() && p.alive(),
        "{what} did not start:\n{}",
        p.output()
    );
    p
}

/// Kea's memfile: the last line of each address wins; bound means state 0, a valid lifetime
/// and an expiry ahead.
fn kea_held(path: &Path, now: u64) -> Vec<Held> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut last: BTreeMap<Ipv4Addr, Option<Held>> = BTreeMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let (Some(ip), Some(mac), Some(cid), Some(valid), Some(expire), Some(state)) = (
            f.first().and_then(|s| s.parse::<Ipv4Addr>().ok()),
            f.get(1),
            f.get(2),
            f.get(3).and_then(|s| s.parse::<u64>().ok()),
            f.get(4).and_then(|s| s.parse::<u64>().ok()),
            f.get(9),
        ) else {
            continue;
        };
        let bound = valid > 0 && expire > now && *state == "0";
        last.insert(
            ip,
            bound.then(|| Held {
                ip,
                mac: mac.to_string(),
                client_id: (!cid.is_empty()).then(|| cid.to_string()),
            }),
        );
    }
    last.into_values().flatten().collect()
}

/// dnsmasq's lease file: `expiry mac ip hostname client-id`.
fn dnsmasq_held(path: &Path, now: u64) -> Vec<Held> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let expiry: u64 = f.first()?.parse().ok()?;
            let ip: Ipv4Addr = f.get(2)?.parse().ok()?;
            let mac = f.get(1)?.to_string();
            (expiry == 0 || expiry > now).then(|| Held {
                ip,
                mac,
                client_id: f.get(4).filter(|c| **c != "*").map(|c| c.to_string()),
            })
        })
        .collect()
}

fn start_kea(lab: &Lab) -> Peer {
    let leases = lab.path("kea-leases4.csv");
    let (a, b) = (lab.ip(100), lab.ip(150));
    // Comments as operators write them: the importer must take them.
    let cfg = format!(
        r#"// kea-dhcp4 for the migration test
{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ "{SRV_IF}" ] }},
  # leases in a CSV file, written at once
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{leases}", "lfc-interval": 0 }},
  "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 3000,
  "authoritative": true,
  /* one subnet, one pool, a reservation */
  "subnet4": [ {{ "id": 1, "subnet": "{net}", "pools": [ {{ "pool": "{a} - {b}" }} ],
                 "option-data": [ {{ "name": "routers", "data": "{gw}" }},
                                  {{ "name": "domain-name-servers", "data": "{gw}" }} ],
                 "reservations": [ {{ "hw-address": "{rmac}", "ip-address": "{rip}", "hostname": "printer" }} ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "output_options": [ {{ "output": "{log}" }} ], "severity": "INFO" }} ]
}} }}"#,
        leases = leases.display(),
        net = lab.net,
        gw = lab.srv_ip,
        rmac = reserved_mac(lab),
        rip = reserved_ip(lab),
        log = lab.path("kea.log").display(),
    );
    let path = lab.path("kea-dhcp4.conf");
    std::fs::write(&path, cfg).unwrap();
    let env = [
        ("KEA_PIDFILE_DIR", lab.dir().display().to_string()),
        ("KEA_LOCKFILE_DIR", lab.dir().display().to_string()),
    ];
    let p = Proc::spawn(
        "kea-dhcp4",
        Some(&lab.srv_ns),
        &argv![bin("kea-dhcp4"), "-c", path.display()],
        &lab.path("kea.out"),
        &env,
    );
    Peer {
        proc: wait_port67(lab, p, "kea-dhcp4"),
        import: argv![
            "kea",
            "--config",
            path.display(),
            "--leases",
            leases.display()
        ],
        held: kea_held,
        leases,
    }
}

fn start_dnsmasq(lab: &Lab) -> Peer {
    let leases = lab.path("dnsmasq.leases");
    let cfg = format!(
        "# dnsmasq for the migration test: DHCP only\n\
         port=0\n\
         interface={SRV_IF}\n\
         bind-interfaces\n\
         dhcp-authoritative\n\
         no-ping\n\
         dhcp-range={a},{b},255.255.255.0,1h\n\
         dhcp-option=option:router,{gw}\n\
         dhcp-option=6,{gw}\n\
         dhcp-host={rmac},{rip},printer\n\
         dhcp-leasefile={leases}\n\
         pid-file={pid}\n\
         user=root\n\
         log-dhcp\n\
         log-facility=-\n",
        a = lab.ip(100),
        b = lab.ip(150),
        gw = lab.srv_ip,
        rmac = reserved_mac(lab),
        rip = reserved_ip(lab),
        leases = leases.display(),
        pid = lab.path("dnsmasq.pid").display(),
    );
    let path = lab.path("dnsmasq.conf");
    std::fs::write(&path, cfg).unwrap();
    let p = Proc::spawn(
        "dnsmasq",
        Some(&lab.srv_ns),
        &argv![
            bin("dnsmasq"),
            "--no-daemon",
            format!("--conf-file={}", path.display())
        ],
        &lab.path("dnsmasq.out"),
        &[],
    );
    Peer {
        proc: wait_port67(lab, p, "dnsmasq"),
        import: argv![
            "dnsmasq",
            "--conf",
            path.display(),
            "--leases",
            leases.display()
        ],
        held: dnsmasq_held,
        leases,
    }
}

/// `leased probe … --json` in `ns` on `iface` with `extra` arguments.
fn leased_probe(
    ns: &str,
    iface: &str,
    mac: &str,
    args: Vec<String>,
) -> support::clients::ProbeResult {
    probe(
        ns,
        iface,
        &ProbeOpts {
            mac: Some(mac.to_string()),
            timeout: Some(5),
            args,
            ..ProbeOpts::default()
        },
    )
}

/// The whole migration against the peer `start` runs; `listed` are constructs the import must
/// report as not mapped.
fn migrate(start: fn(&Lab) -> Peer, listed: &[&str]) {
    let lab = Lab::new();
    let mut peer = start(&lab);
    // perfdhcp, relaying from 198.18.x.2 on the client link.
    lab.add_client_addr(&format!("{}/24", lab.ip(2)));
    let (out, stats) = perfdhcp(
        &lab.cli_ns,
        CLI_IF,
        lab.srv_ip,
        &PerfRun {
            rate: 50,
            clients: PERF_CLIENTS,
            num: PERF_CLIENTS * 2,
            secs: 20,
            base_mac: lab.mac(0xaa, 0x00),
        },
    );
    assert!(
        stats.ra_rcvd >= 1,
        "perfdhcp got no ACK from the old server:\n{}",
        out.all()
    );
    // A real dhclient on its own client namespace.
    let c = lab.add_client();
    let mut d = Dhclient::new(&lab, &c.ns, &c.iface, "dh-old", Some("migrated"));
    d.start();
    let ev =
        d.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(30));
    let dip = ev.as_ref().and_then(|e| e.ip());
    assert!(
        dip.is_some(),
        "dhclient got no lease from the old server:\n{}",
        d.c.diag()
    );
    let dip = dip.unwrap();
    // The reserved client.
    let r = lab.probe(&ProbeOpts::mac(&reserved_mac(&lab)));
    assert_eq!(r.ip(), Some(reserved_ip(&lab)), "old server: {}", r.diag());
    // The old server goes; dhclient dies without a word (no RELEASE), keeping its address.
    d.c.signal(Signal::SIGKILL);
    d.c.stop();
    peer.proc.stop(Duration::from_secs(10));
    let held = (peer.held)(&peer.leases, now());
    assert!(
        held.len() >= 3 && held.iter().any(|h| h.ip == dip),
        "the old server's lease file holds too little: {held:?}\n{}",
        std::fs::read_to_string(&peer.leases).unwrap_or_default()
    );

    // Import.
    let out = lab.path("imported.toml");
    let store = lab.path("imported.leases");
    let mut a = argv![leased_bin(), "import"];
    a.extend(peer.import.iter().cloned());
    a.extend(argv!["--out", out.display(), "--store", store.display()]);
    let imp = run(None, &a, Duration::from_secs(60));
    assert!(imp.ok(), "import failed:\n{}", imp.all());
    println!("{}", imp.all());
    assert!(
        imp.stdout
            .contains(&format!("{} active leases", held.len())),
        "every bound lease imported ({}):\n{}",
        held.len(),
        imp.all()
    );
    for l in listed {
        assert!(
            imp.stderr.contains(l),
            "{l:?} is not listed as not mapped:\n{}",
            imp.stderr
        );
    }
    let check = run(
        None,
        &argv![leased_bin(), "check", "-c", out.display()],
        Duration::from_secs(10),
    );
    assert!(check.ok(), "{}", check.all());

    // leased on the same link.
    let server = lab.start_server(&std::fs::read_to_string(&out).unwrap());
    // leased knows whose each address is: a stranger renewing one is refused.
    let taken = held.iter().find(|h| h.ip != dip).unwrap();
    must(
        Some(&lab.cli_ns),
        &argv![
            "ip",
            "addr",
            "replace",
            format!("{}/32", taken.ip),
            "dev",
            CLI_IF
        ],
    );
    let r = leased_probe(
        &lab.cli_ns,
        CLI_IF,
        &lab.mac(0x5e, 0x99),
        argv!["--renew", taken.ip, "--server", lab.srv_ip],
    );
    assert_eq!(
        r.code(),
        Some(PROBE_NAK),
        "a stranger's RENEW of {}'s address was not refused: {}",
        taken.mac,
        r.diag()
    );
    // Every client renews and keeps its address.
    let mut renewed = 0;
    for h in held.iter().filter(|h| h.ip != dip) {
        must(
            Some(&lab.cli_ns),
            &argv![
                "ip",
                "addr",
                "replace",
                format!("{}/32", h.ip),
                "dev",
                CLI_IF
            ],
        );
        let mut args = argv!["--renew", h.ip, "--server", lab.srv_ip];
        if let Some(cid) = &h.client_id {
            args.extend(argv!["--client-id", cid]);
        }
        let r = leased_probe(&lab.cli_ns, CLI_IF, &h.mac, args);
        assert_eq!(
            (r.code(), r.ip()),
            (Some(PROBE_ACK), Some(h.ip)),
            "the RENEW of {h:?} was not ACKed with its address:\n{}\n--- server\n{}",
            r.diag(),
            server.log()
        );
        renewed += 1;
    }
    // The dhclient renews from the address it kept, then DISCOVERs afresh and is offered it.
    let r = leased_probe(
        &c.ns,
        &c.iface,
        &c.mac,
        argv!["--renew", dip, "--server", lab.srv_ip],
    );
    assert_eq!(
        (r.code(), r.ip()),
        (Some(PROBE_ACK), Some(dip)),
        "{}",
        r.diag()
    );
    let _ = std::fs::remove_file(&d.lf);
    let mut d2 = Dhclient::new(&lab, &c.ns, &c.iface, "dh-new", Some("migrated"));
    d2.start();
    let ev =
        d2.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(30));
    assert_eq!(
        ev.as_ref().map(|e| (e.reason.as_str(), e.ip())),
        Some(("BOUND", Some(dip))),
        "dhclient did not get its old address back from a DISCOVER:\n{}\n--- server\n{}",
        d2.c.diag(),
        server.log()
    );
    d2.c.stop();
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("DISCOVER") && l.contains(&c.mac))
            && log
                .lines()
                .any(|l| l.contains("OFFER") && l.contains(&format!("ip={dip}"))),
        "no DISCOVER/OFFER of {dip} in the log:\n{log}"
    );
    // The reservation came along.
    let r = lab.probe(&ProbeOpts::mac(&reserved_mac(&lab)));
    assert_eq!(r.ip(), Some(reserved_ip(&lab)), "leased: {}", r.diag());
    println!(
        "{renewed} clients renewed with their addresses, dhclient rediscovered {dip}, reservation kept"
    );
}

#[test]
fn from_kea_every_client_keeps_its_address() {
    if !gate!("kea-dhcp4", "perfdhcp", "dhclient") {
        return;
    }
    migrate(
        start_kea,
        &[
            "not mapped: Dhcp4.loggers",
            "not mapped: Dhcp4.lease-database.persist",
        ],
    );
}

#[test]
fn from_dnsmasq_every_client_keeps_its_address() {
    if !gate!("dnsmasq", "perfdhcp", "dhclient") {
        return;
    }
    migrate(
        start_dnsmasq,
        &[
            "bind-interfaces",
            "no-ping",
            "log-dhcp",
            "user=root",
            "pid-file=",
        ],
    );
}
