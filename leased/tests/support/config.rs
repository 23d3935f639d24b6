//! The server configuration the tests write, in one place so a schema change is one edit.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::lab::{Lab, SRV_IF};

/// A fixed address for one MAC.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

/// What the tests vary in `leased`'s TOML config.
#[derive(Debug, Clone)]
pub struct Cfg {
    pub authoritative: bool,
    pub lease_time: u32,
    pub decline_quarantine: u32,
    pub offer_hold: Option<u32>,
    pub store_path: PathBuf,
    pub network: String,
    pub interface: String,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub pools: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub reservations: Vec<Reservation>,
    pub banned: Vec<String>,
    /// Raw TOML appended at the end of the file.
    pub extra: String,
}

impl Cfg {
    /// The default for a lab: pool .100–.200, router .1, 120 s leases, store in the lab dir.
    pub fn for_lab(lab: &Lab) -> Cfg {
        Cfg {
            authoritative: true,
            lease_time: 120,
            decline_quarantine: 600,
            offer_hold: None,
            store_path: lab.path("leases.db"),
            network: lab.net.to_string(),
            interface: SRV_IF.to_string(),
            routers: vec![lab.srv_ip],
            dns: Vec::new(),
            pools: vec![(lab.ip(100), lab.ip(200))],
            reservations: Vec::new(),
            banned: Vec::new(),
            extra: String::new(),
        }
    }

    /// Adds a reservation.
    pub fn reserve(mut self, mac: &str, ip: Ipv4Addr) -> Self {
        self.reservations.push(Reservation {
            mac: mac.to_string(),
            ip,
            hostname: None,
        });
        self
    }

    /// Bans a MAC.
    pub fn ban(mut self, mac: &str) -> Self {
        self.banned.push(mac.to_string());
        self
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let q = |v: &[Ipv4Addr]| {
            v.iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = String::new();
        let _ = writeln!(s, "[server]");
        let _ = writeln!(s, "authoritative = {}", self.authoritative);
        let _ = writeln!(s, "lease_time = {}", self.lease_time);
        let _ = writeln!(s, "decline_quarantine = {}", self.decline_quarantine);
        if let Some(h) = self.offer_hold {
            let _ = writeln!(s, "offer_hold = {h}");
        }
        let _ = writeln!(s, "\n[store]\npath = \"{}\"", self.store_path.display());
        let _ = writeln!(s, "\n[[subnets]]");
        let _ = writeln!(s, "network = \"{}\"", self.network);
        let _ = writeln!(s, "interface = \"{}\"", self.interface);
        let _ = writeln!(s, "routers = [{}]", q(&self.routers));
        let pools = self
            .pools
            .iter()
            .map(|(a, b)| format!("\"{a}-{b}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(s, "pools = [{pools}]");
        if !self.dns.is_empty() {
            let _ = writeln!(s, "[subnets.options]\ndns = [{}]", q(&self.dns));
        }
        for r in &self.reservations {
            let _ = writeln!(
                s,
                "\n[[reservations]]\nmac = \"{}\"\nip = \"{}\"",
                r.mac, r.ip
            );
            if let Some(h) = &r.hostname {
                let _ = writeln!(s, "hostname = \"{h}\"");
            }
        }
        if !self.banned.is_empty() {
            let _ = writeln!(s, "\n[banned_macs]");
            for m in &self.banned {
                let _ = writeln!(s, "\"{m}\" = {{}}");
            }
        }
        if !self.extra.is_empty() {
            let _ = writeln!(s, "\n{}", self.extra);
        }
        s
    }
}
