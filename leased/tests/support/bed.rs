//! A relay test bed: a client link, `leased relay` (or another relay) between it and an
//! upstream link, and an upstream server (Kea, ISC dhcpd, leased) in its own namespace.
//!
//! Topology (`x` = the lab's third octet):
//! `cli` [cli0, clients] ⇄ `srv` [srv0 198.18.x.1/24 | rup0 198.19.x.1/24, the relay]
//! ⇄ `up` [up0 198.19.x.2/24, route 198.18.x.0/24 via 198.19.x.1, the upstream server].
//! The upstream leased also serves 198.19.x.0/24 on up0 directly (pool .200-.210), so a
//! client on rup0 is one it sees without a relay.
#![allow(clippy::unwrap_used, clippy::useless_vec)]

use std::net::Ipv4Addr;
use std::time::Duration;

use super::clients::Capture;
use super::lab::{CLI_IF, Lab, SRV_IF};
use super::proc::{Proc, bin, must, poll, run};
use super::server::leased_bin;
use crate::argv;

/// The upstream server's interface (in the upstream namespace).
pub const UP_IF: &str = "up0";
/// The relay's upstream-side interface (in the relay namespace).
pub const RUP_IF: &str = "rup0";
/// The circuit-id template the relay is configured with, and what it expands to.
pub const CIRCUIT: &str = "lab-{interface}";
pub const CIRCUIT_VALUE: &str = "lab-srv0";

pub struct Bed {
    pub lab: Lab,
    pub x: u8,
    pub up: String,
}

impl Bed {
    pub fn new() -> Bed {
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

    pub fn up_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.x, 2)
    }

    /// An address on the upstream link where nothing answers (an upstream that is down).
    pub fn dead_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.x, 99)
    }

    pub fn pool(&self) -> (Ipv4Addr, Ipv4Addr) {
        (self.lab.ip(100), self.lab.ip(150))
    }

    pub fn in_pool(&self, ip: Ipv4Addr) -> bool {
        let (a, b) = self.pool();
        ip >= a && ip <= b
    }

    /// `leased relay` in the relay namespace, waiting until it says it started.
    pub fn relay(&self, upstreams: &[Ipv4Addr], extra: &str) -> Proc {
        self.relay_with(upstreams, "", extra)
    }

    /// [`Bed::relay`] with more `[relay]` keys.
    pub fn relay_with(&self, upstreams: &[Ipv4Addr], relay_extra: &str, extra: &str) -> Proc {
        self.relay_with_env(upstreams, relay_extra, extra, &[])
    }

    /// [`Bed::relay_with`] with more environment variables (`NOTIFY_SOCKET`, …).
    pub fn relay_with_env(
        &self,
        upstreams: &[Ipv4Addr],
        relay_extra: &str,
        extra: &str,
        env: &[(&str, String)],
    ) -> Proc {
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
            &[&[("NO_COLOR", "1".to_string())], env].concat(),
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
    pub fn kea(&self) -> Proc {
        self.kea_with(300, 100, 200)
    }

    /// Kea with its lease time and T1/T2.
    pub fn kea_with(&self, valid: u32, t1: u32, t2: u32) -> Proc {
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
    pub fn dhcpd(&self) -> Proc {
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
    pub fn leased(&self) -> Proc {
        self.leased_with("", "")
    }

    /// [`Bed::leased`] with more `[server]` keys and more sections (reservations).
    pub fn leased_with(&self, server_extra: &str, extra: &str) -> Proc {
        let lab = &self.lab;
        let (a, b) = self.pool();
        let x = self.x;
        let cfg = format!(
            r#"[server]
interfaces = ["{UP_IF}"]
lease_time = 300
{server_extra}

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

{extra}
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

    pub fn wait_port67(&self, mut p: Proc, what: &str) -> Proc {
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
    pub fn captures(&self, tag: &str) -> (Capture, Capture) {
        (
            Capture::start(&self.lab, &self.up, UP_IF, &format!("{tag}-up")),
            Capture::start(&self.lab, &self.lab.cli_ns, CLI_IF, &format!("{tag}-cli")),
        )
    }
}
