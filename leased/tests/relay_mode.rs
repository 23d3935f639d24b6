//! System tests of `leased relay` (issue 7): real clients (dhclient, udhcpc) → `leased relay` →
//! real upstream servers (Kea, ISC dhcpd, leased) across network namespaces. Clients get
//! addresses; the upstream sees the inserted Option 82 (a capture on its link, and Kea's lease
//! file with `store-extended-info`); clients never see it; one upstream down does not stop the
//! others; hops at the limit. Root and the peers are required: without them each test prints
//! `SKIP: …` (a failure under `CI=true`). Addresses in 198.18.0.0/15 only, every wait bounded,
//! processes stopped by PID, namespaces deleted (the lab's `Drop`).
//!
//! Topology (`x` = the lab's third octet):
//! `cli` [cli0, clients] ⇄ `srv` [srv0 198.18.x.1/24 | rup0 198.19.x.1/24, leased relay]
//! ⇄ `up` [up0 198.19.x.2/24, route 198.18.x.0/24 via 198.19.x.1, the upstream server].

#![allow(clippy::useless_vec, clippy::unwrap_used)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use leased_wire::{BOOTREQUEST, MessageType, Options, Packet, code};
use support::clients::Capture;
use support::lab::{CLI_IF, SRV_IF};
use support::proc::{Proc, bin, must, poll, run};
use support::server::leased_bin;
use support::{Dhclient, Lab, Udhcpc};

/// The upstream server's interface (in the upstream namespace).
const UP_IF: &str = "up0";
/// The relay's upstream-side interface (in the relay namespace).
const RUP_IF: &str = "rup0";
/// The circuit-id template the relay is configured with, and what it expands to.
const CIRCUIT: &str = "lab-{interface}";
const CIRCUIT_VALUE: &str = "lab-srv0";

/// The re-exec helper of `support::raw` (does nothing unless its variable is set).
#[test]
fn udp_send_helper() {
    support::raw::helper_main();
}

struct Bed {
    lab: Lab,
    x: u8,
    up: String,
}

impl Bed {
    fn new() -> Bed {
        let lab = Lab::new();
        let x = lab.net.network().octets()[2];
        let up = format!("{}-up", lab.name);
        lab.add_ns(&up);
        must(
            None,
            &argv![
                "ip", "link", "add", RUP_IF, "netns", lab.srv_ns, "type", "veth", "peer", "name",
                UP_IF, "netns", up
            ],
        );
        for (ns, ifc, addr) in [
            (&lab.srv_ns, RUP_IF, format!("198.19.{x}.1/24")),
            (&up, UP_IF, format!("198.19.{x}.2/24")),
        ] {
            let _ = run(
                Some(ns),
                &argv![
                    "sysctl",
                    "-qw",
                    format!("net.ipv6.conf.{ifc}.disable_ipv6=1")
                ],
                Duration::from_secs(5),
            );
            must(Some(ns), &argv!["ip", "addr", "add", addr, "dev", ifc]);
            must(Some(ns), &argv!["ip", "link", "set", ifc, "up"]);
        }
        must(
            Some(&up),
            &argv![
                "ip",
                "route",
                "add",
                lab.net,
                "via",
                format!("198.19.{x}.1"),
                "dev",
                UP_IF
            ],
        );
        Bed { lab, x, up }
    }

    fn up_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.x, 2)
    }

    /// An address on the upstream link where nothing answers (an upstream that is down).
    fn dead_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.x, 99)
    }

    fn pool(&self) -> (Ipv4Addr, Ipv4Addr) {
        (self.lab.ip(100), self.lab.ip(150))
    }

    fn in_pool(&self, ip: Ipv4Addr) -> bool {
        let (a, b) = self.pool();
        ip >= a && ip <= b
    }

    /// `leased relay` in the relay namespace, waiting until it says it started.
    fn relay(&self, upstreams: &[Ipv4Addr], extra: &str) -> Proc {
        self.relay_with(upstreams, "", extra)
    }

    /// [`Bed::relay`] with more `[relay]` keys.
    fn relay_with(&self, upstreams: &[Ipv4Addr], relay_extra: &str, extra: &str) -> Proc {
        let lab = &self.lab;
        let ups: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
        let cfg = format!(
            r#"[logging]
level = "debug"

[relay]
upstreams = [{ups}]
max_hops = 4
existing_option82 = "replace"
{relay_extra}

[[relay.interfaces]]
name = "{SRV_IF}"
circuit_id = "{CIRCUIT}"
remote_id = "{{mac}}"

[export]
outbox = "{outbox}"
[export.webhook]
url = "http://127.0.0.1:9/hook"
interval = "1h"
{extra}
"#,
            ups = ups.join(", "),
            outbox = lab.path("outbox").display(),
        );
        let path = lab.path("relay.toml");
        std::fs::write(&path, &cfg).unwrap();
        let check = run(
            None,
            &argv![leased_bin(), "check", "-c", path.display()],
            Duration::from_secs(10),
        );
        assert!(check.ok(), "relay config invalid:\n{cfg}\n{}", check.all());
        let mut p = Proc::spawn(
            "leased relay",
            Some(&lab.srv_ns),
            &argv![leased_bin(), "relay", "-c", path.display()],
            &lab.path("relay.log"),
            &[("NO_COLOR", "1".to_string())],
        );
        let ok = poll(Duration::from_secs(10), || {
            p.output().contains("relay started").then_some(())
        });
        assert!(
            ok.is_some() && p.alive(),
            "leased relay did not start:\n{}",
            p.output()
        );
        p
    }

    /// Kea in the upstream namespace, storing relay data in its lease file.
    fn kea(&self) -> Proc {
        self.kea_with(300, 100, 200)
    }

    /// Kea with its lease time and T1/T2.
    fn kea_with(&self, valid: u32, t1: u32, t2: u32) -> Proc {
        let lab = &self.lab;
        let (a, b) = self.pool();
        let leases = lab.path("kea-leases4.csv");
        let cfg = format!(
            r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ "{UP_IF}" ], "dhcp-socket-type": "udp" }},
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{leases}", "lfc-interval": 0 }},
  "store-extended-info": true,
  "valid-lifetime": {valid}, "renew-timer": {t1}, "rebind-timer": {t2},
  "subnet4": [ {{ "id": 1, "subnet": "{net}", "pools": [ {{ "pool": "{a} - {b}" }} ],
                 "option-data": [ {{ "name": "routers", "data": "{gw}" }} ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "output_options": [ {{ "output": "{log}" }} ], "severity": "DEBUG", "debuglevel": 40 }} ]
}} }}"#,
            leases = leases.display(),
            net = lab.net,
            gw = lab.srv_ip,
            log = lab.path("kea.log").display(),
        );
        let path = lab.path("kea.json");
        std::fs::write(&path, cfg).unwrap();
        let env = [
            ("KEA_PIDFILE_DIR", lab.dir().display().to_string()),
            ("KEA_LOCKFILE_DIR", lab.dir().display().to_string()),
        ];
        let p = Proc::spawn(
            "kea-dhcp4",
            Some(&self.up),
            &argv![bin("kea-dhcp4"), "-c", path.display()],
            &lab.path("kea.out"),
            &env,
        );
        self.wait_port67(p, "kea-dhcp4")
    }

    /// ISC dhcpd in the upstream namespace.
    fn dhcpd(&self) -> Proc {
        let lab = &self.lab;
        let (a, b) = self.pool();
        let x = self.x;
        let cfg = format!(
            "authoritative;\ndefault-lease-time 300;\nmax-lease-time 600;\n\
             subnet 198.19.{x}.0 netmask 255.255.255.0 {{ }}\n\
             subnet {n} netmask 255.255.255.0 {{ range {a} {b}; option routers {gw}; }}\n",
            n = lab.net.network(),
            gw = lab.srv_ip,
        );
        let conf = lab.path("dhcpd.conf");
        std::fs::write(&conf, cfg).unwrap();
        let leases = lab.path("dhcpd.leases");
        std::fs::write(&leases, "").unwrap();
        let p = Proc::spawn(
            "dhcpd",
            Some(&self.up),
            &argv![
                bin("dhcpd"),
                "-4",
                "-f",
                "-d",
                "-cf",
                conf.display(),
                "-lf",
                leases.display(),
                "-pf",
                lab.path("dhcpd.pid").display(),
                UP_IF
            ],
            &lab.path("dhcpd.out"),
            &[],
        );
        self.wait_port67(p, "dhcpd")
    }

    /// leased serving the relayed network in the upstream namespace.
    fn leased(&self) -> Proc {
        let lab = &self.lab;
        let (a, b) = self.pool();
        let x = self.x;
        let cfg = format!(
            r#"[server]
interfaces = ["{UP_IF}"]
lease_time = 300

[store]
path = "{store}"

[[subnets]]
network = "198.19.{x}.0/24"
interface = "{UP_IF}"
pools = ["198.19.{x}.200-198.19.{x}.210"]

[[subnets]]
network = "{net}"
routers = ["{gw}"]
pools = ["{a}-{b}"]
"#,
            store = lab.path("up.leases").display(),
            net = lab.net,
            gw = lab.srv_ip,
        );
        let path = lab.path("up.toml");
        std::fs::write(&path, cfg).unwrap();
        let p = Proc::spawn(
            "leased serve (upstream)",
            Some(&self.up),
            &argv![leased_bin(), "serve", "-c", path.display()],
            &lab.path("up.log"),
            &[("NO_COLOR", "1".to_string())],
        );
        self.wait_port67(p, "leased serve")
    }

    fn wait_port67(&self, mut p: Proc, what: &str) -> Proc {
        let pid = p.pid();
        let ok = poll(Duration::from_secs(15), || {
            let o = run(
                Some(&self.up),
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

    /// Captures on the upstream link and on the client link.
    fn captures(&self, tag: &str) -> (Capture, Capture) {
        (
            Capture::start(&self.lab, &self.up, UP_IF, &format!("{tag}-up")),
            Capture::start(&self.lab, &self.lab.cli_ns, CLI_IF, &format!("{tag}-cli")),
        )
    }
}

/// Lines of a capture that show an Option 82 with our circuit-id.
fn our_82(lines: &[String]) -> bool {
    lines.iter().any(|l| l.contains("Agent-Information"))
        && lines.iter().any(|l| l.contains(CIRCUIT_VALUE))
}

fn any_82(lines: &[String]) -> bool {
    lines
        .iter()
        .any(|l| l.contains("Agent-Information") || l.contains(CIRCUIT_VALUE))
}

/// dhclient in the client namespace and udhcpc in a second one, both bound through the relay.
fn two_clients_bind(bed: &Bed) -> Vec<Ipv4Addr> {
    let lab = &bed.lab;
    let mut d = Dhclient::new(lab, &lab.cli_ns, CLI_IF, "dh", Some("relayed-dh"));
    d.start();
    let ev =
        d.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(30));
    let dip = ev.as_ref().and_then(|e| e.ip());
    assert!(
        dip.is_some_and(|ip| bed.in_pool(ip)),
        "dhclient got no address from the pool: {ev:?}\n{}\n--- relay\n{}",
        d.c.diag(),
        std::fs::read_to_string(lab.path("relay.log")).unwrap_or_default()
    );
    let c2 = lab.add_client();
    let mut u = Udhcpc::new(lab, &c2.ns, &c2.iface, "ud", Some("relayed-ud"));
    u.start(false, true, &[]);
    let ev = u.c.wait_event(0, &["bound"], Duration::from_secs(30));
    let uip = ev.as_ref().and_then(|e| e.ip());
    assert!(
        uip.is_some_and(|ip| bed.in_pool(ip)),
        "udhcpc got no address from the pool: {ev:?}\n{}\n--- relay\n{}",
        u.c.diag(),
        std::fs::read_to_string(lab.path("relay.log")).unwrap_or_default()
    );
    assert_ne!(dip, uip);
    d.c.stop();
    u.c.stop();
    vec![dip.unwrap(), uip.unwrap()]
}

/// The relay's captured bindings (ACKs relayed), from its outbox.
fn relayed_bindings(bed: &Bed) -> usize {
    let o = run(
        None,
        &argv![
            leased_bin(),
            "export",
            "status",
            "--json",
            "-c",
            bed.lab.path("relay.toml").display()
        ],
        Duration::from_secs(10),
    );
    assert!(o.ok(), "export status failed: {}", o.all());
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    v[0]["queue_depth"].as_u64().unwrap() as usize
}

#[test]
fn relay_to_kea() {
    if !gate!("kea-dhcp4", "dhclient", "udhcpc", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let _kea = bed.kea();
    let (up_cap, cli_cap) = bed.captures("kea");
    let mut relay = bed.relay(&[bed.up_ip()], "");
    let ips = two_clients_bind(&bed);
    let up = up_cap.finish();
    let cli = cli_cap.finish();
    assert!(
        our_82(&up),
        "Kea's link shows no Option 82 from the relay:\n{}",
        up.join("\n")
    );
    assert!(!any_82(&cli), "a client saw Option 82:\n{}", cli.join("\n"));
    // Kea stored the relay agent information with each lease.
    let csv = std::fs::read_to_string(bed.lab.path("kea-leases4.csv")).unwrap_or_default();
    let circuit_hex: String = CIRCUIT_VALUE.bytes().map(|b| format!("{b:02x}")).collect();
    for ip in &ips {
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("{ip},")))
            .unwrap_or_else(|| panic!("no Kea lease for {ip}:\n{csv}"));
        let l = line.to_ascii_lowercase();
        assert!(
            l.contains("relay-agent-info") && l.contains(&circuit_hex),
            "Kea's lease for {ip} lacks our Option 82:\n{line}"
        );
    }
    // Both ACKs were captured as bindings for export.
    assert!(relayed_bindings(&bed) >= 2, "relay recorded no bindings");
    relay.stop(Duration::from_secs(5));
}

#[test]
fn relay_to_isc_dhcpd() {
    if !gate!("dhcpd", "dhclient", "udhcpc", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let _dhcpd = bed.dhcpd();
    let (up_cap, cli_cap) = bed.captures("dhcpd");
    let mut relay = bed.relay(&[bed.up_ip()], "");
    let ips = two_clients_bind(&bed);
    let up = up_cap.finish();
    let cli = cli_cap.finish();
    assert!(
        our_82(&up),
        "dhcpd's link shows no Option 82 from the relay:\n{}",
        up.join("\n")
    );
    assert!(!any_82(&cli), "a client saw Option 82:\n{}", cli.join("\n"));
    let leases = std::fs::read_to_string(bed.lab.path("dhcpd.leases")).unwrap_or_default();
    for ip in &ips {
        assert!(
            leases.contains(&format!("lease {ip} ")),
            "dhcpd has no lease {ip}:\n{leases}"
        );
    }
    relay.stop(Duration::from_secs(5));
}

#[test]
fn relay_to_leased_with_one_upstream_down() {
    if !gate!("dhclient", "udhcpc", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let _up = bed.leased();
    let (up_cap, cli_cap) = bed.captures("leased");
    // The first upstream does not exist: its copies go nowhere, the second still serves.
    let mut relay = bed.relay(&[bed.dead_ip(), bed.up_ip()], "");
    let ips = two_clients_bind(&bed);
    let up = up_cap.finish();
    let cli = cli_cap.finish();
    assert!(
        our_82(&up),
        "leased's link shows no Option 82 from the relay:\n{}",
        up.join("\n")
    );
    assert!(!any_82(&cli), "a client saw Option 82:\n{}", cli.join("\n"));
    // The upstream leased recorded the circuit-id with each lease.
    let o = run(
        None,
        &argv![
            leased_bin(),
            "leases",
            "-c",
            bed.lab.path("up.toml").display(),
            "--json"
        ],
        Duration::from_secs(10),
    );
    assert!(o.ok(), "{}", o.all());
    for ip in &ips {
        assert!(
            o.stdout.contains(&ip.to_string()),
            "upstream leased has no lease {ip}:\n{}",
            o.stdout
        );
    }
    let relay_log = relay.output();
    assert!(relay.alive(), "the relay died:\n{relay_log}");
    relay.stop(Duration::from_secs(5));
}

fn discover(xid: u32, hops: u8, mac: [u8; 6]) -> Vec<u8> {
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![MessageType::Discover.code()]);
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let p = Packet {
        op: BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops,
        xid,
        secs: 0,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr,
        sname: vec![],
        file: vec![],
        options,
        option82_in_overload: false,
    };
    let mut out = Vec::new();
    p.encode(576, &mut out);
    out
}

#[test]
fn relay_hops_at_the_limit() {
    if !gate!("tcpdump") {
        return;
    }
    let bed = Bed::new();
    let _up = bed.leased();
    let up_cap = Capture::start(&bed.lab, &bed.up, UP_IF, "hops-up");
    let mut relay = bed.relay(&[bed.up_ip()], "");
    let lab = &bed.lab;
    lab.add_client_addr(&format!("{}/24", lab.ip(2)));
    // max_hops = 4: hops 4 is forwarded (as 5), hops 5 is dropped.
    let at_limit = discover(0x7e57_0004, 4, [2, 0, 0, 0x7e, 0, 4]);
    let over = discover(0x7e57_0005, 5, [2, 0, 0, 0x7e, 0, 5]);
    let out = support::raw::send_from_ns(
        &lab.cli_ns,
        SocketAddrV4::new(lab.ip(2), 68),
        &[SocketAddrV4::new(lab.srv_ip, 67)],
        &[at_limit, over],
    );
    assert!(out.stdout.contains("SENT"), "{}", out.all());
    std::thread::sleep(Duration::from_secs(1));
    let up = up_cap.finish();
    let text = up.join("\n");
    assert!(
        text.contains("0x7e570004"),
        "the request at the hop limit was not forwarded:\n{text}"
    );
    assert!(
        text.contains("hops 5"),
        "forwarded hops not incremented:\n{text}"
    );
    assert!(
        !text.contains("0x7e570005"),
        "the request over the hop limit was forwarded:\n{text}"
    );
    relay.stop(Duration::from_secs(5));
}

/// With `rewrite_server_id`, the relay names itself in option 54 of the replies (Kea 2.2
/// ignores sub-option 11, so `server_id_override` alone is not enough), the client's unicast
/// renewal (RENEWING, ciaddr set) comes to the relay, is relayed, and its ACK goes back to
/// ciaddr: the relay sees the renewal and the binding stays current for export.
#[test]
fn relay_rewrite_server_id_brings_renewals_through_the_relay() {
    if !gate!("kea-dhcp4", "dhclient", "tcpdump") {
        return;
    }
    let bed = Bed::new();
    let _kea = bed.kea_with(30, 3, 20);
    let cli_cap = Capture::start(&bed.lab, &bed.lab.cli_ns, CLI_IF, "sid-cli");
    let mut relay = bed.relay_with(
        &[bed.up_ip()],
        "server_id_override = true\nrewrite_server_id = true",
        "",
    );
    let lab = &bed.lab;
    let mut d = Dhclient::new(lab, &lab.cli_ns, CLI_IF, "dh", None);
    d.start();
    let ev =
        d.c.wait_event(0, &["BOUND", "REBOOT"], Duration::from_secs(30));
    assert!(ev.is_some(), "no lease: {}", d.c.diag());
    let n = d.c.events().len();
    let ev = d.c.wait_event(n, &["RENEW"], Duration::from_secs(20));
    assert!(
        ev.is_some(),
        "no renewal: {}\n--- relay\n{}",
        d.c.diag(),
        relay.output()
    );
    d.c.stop();
    let cli = cli_cap.finish().join("\n");
    let log = relay.output();
    let bindings = log.matches("binding kind=Bound").count();
    assert!(
        bindings >= 2,
        "the renewal did not pass through the relay:\n{log}"
    );
    assert!(
        log.contains("route=Unicast"),
        "the renewal's ACK was not unicast to ciaddr:\n{log}"
    );
    // The client only ever saw the relay as its server, once per reply.
    let relay_sid = format!("Server-ID (54), length 4: {}", lab.srv_ip);
    assert!(cli.contains(&relay_sid), "option 54 not rewritten:\n{cli}");
    assert!(
        !cli.contains(&format!("Server-ID (54), length 4: {}", bed.up_ip())),
        "{cli}"
    );
    relay.stop(Duration::from_secs(5));
}

/// `[server] user = "nobody"` on the relay: once port 67 is bound it runs as nobody with no
/// capability at all, its exporter still writes the outbox (the folder it made as root is
/// handed over), and clients are still relayed.
#[test]
fn relay_as_nobody_keeps_no_capability_and_still_relays() {
    if !gate!("dhclient", "udhcpc") {
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("group nogroup");
    let bed = Bed::new();
    let _up = bed.leased();
    let outbox = bed.lab.path("outbox");
    std::fs::create_dir(&outbox).unwrap();
    std::os::unix::fs::chown(
        &outbox,
        Some(nobody.uid.as_raw()),
        Some(nogroup.gid.as_raw()),
    )
    .unwrap();
    let mut relay = bed.relay(
        &[bed.up_ip()],
        "\n[server]\nuser = \"nobody\"\ngroup = \"nogroup\"\n",
    );
    let ok = poll(Duration::from_secs(10), || {
        relay.output().contains("dropped root").then_some(())
    });
    assert!(ok.is_some(), "no drop logged:\n{}", relay.output());
    let status = std::fs::read_to_string(format!("/proc/{}/status", relay.pid())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let uid = nobody.uid.as_raw();
    assert_eq!(
        field("Uid"),
        format!("{uid}\t{uid}\t{uid}\t{uid}"),
        "{status}"
    );
    for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(field(set), "0000000000000000", "{set}\n{status}");
    }
    two_clients_bind(&bed);
    // The ACKs reached the outbox, written as nobody.
    let queued = poll(Duration::from_secs(10), || {
        (relayed_bindings(&bed) >= 2).then_some(())
    });
    assert!(queued.is_some(), "relay log:\n{}", relay.output());
    assert!(relay.alive(), "the relay died:\n{}", relay.output());
    relay.stop(Duration::from_secs(5));
}
