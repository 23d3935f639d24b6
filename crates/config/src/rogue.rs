//! `[rogue_servers]`: passive detection of foreign DHCP servers on the served links (io's
//! monitor). Shape and checks here, so the loader only gains a field and a call.
//!
//! Why a whitelist by address *and* by MAC: a second, sanctioned server (failover peer, a
//! relay's upstream seen on a shared segment) is known by its address; a box whose address
//! changes (a lab router) by its MAC.

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::ctx::Ctx;
use leased_core::HwAddr;

/// `[rogue_servers]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRogue {
    pub enabled: Option<bool>,
    pub whitelist: Option<Vec<String>>,
    pub log_per_minute: Option<i64>,
    pub probe_interval: Option<crate::file::RawDuration>,
    pub probe_mac: Option<String>,
}

/// Rogue DHCP server detection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RogueSettings {
    /// Watch the served links (true when the section is present, unless set false).
    pub enabled: bool,
    /// Servers (by option 54 / source address) that are allowed on our links.
    pub whitelist_ips: Vec<Ipv4Addr>,
    /// Servers (by Ethernet source) that are allowed on our links.
    pub whitelist_macs: Vec<HwAddr>,
    /// At most this many `FOREIGN-DHCP-SERVER` lines a minute (later ones wait their turn).
    pub log_per_minute: u32,
    /// Active probing: every this many seconds, a DISCOVER from `probe_mac` on every watched
    /// link, so that a server that is silent until asked shows itself (its OFFER is caught by
    /// the passive watch). `None`: passive only.
    pub probe_interval: Option<u32>,
    /// The probe's client MAC (locally administered by default), never a real client's.
    pub probe_mac: HwAddr,
}

/// Default probe MAC: locally administered, "leasd" in its last five bytes.
pub const DEFAULT_PROBE_MAC: [u8; 6] = [0x02, 0x6c, 0x65, 0x61, 0x73, 0x64];

impl Default for RogueSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            whitelist_ips: Vec::new(),
            whitelist_macs: Vec::new(),
            log_per_minute: 6,
            probe_interval: None,
            probe_mac: HwAddr(DEFAULT_PROBE_MAC.to_vec()),
        }
    }
}

/// Checks `[rogue_servers]`; absent means off.
pub(crate) fn rogue(ctx: &mut Ctx<'_>, raw: Option<&RawRogue>) -> RogueSettings {
    let Some(raw) = raw else {
        return RogueSettings::default();
    };
    let mut s = RogueSettings {
        enabled: raw.enabled.unwrap_or(true),
        ..RogueSettings::default()
    };
    for (i, entry) in raw.whitelist.iter().flatten().enumerate() {
        let t = entry.trim();
        if let Ok(ip) = t.parse::<Ipv4Addr>() {
            s.whitelist_ips.push(ip);
        } else if let Some(mac) = HwAddr::parse_mac(t) {
            s.whitelist_macs.push(mac);
        } else {
            ctx.err(
                &format!("rogue_servers.whitelist[{i}]"),
                format!("{entry:?} is neither an IPv4 address nor a MAC address"),
            );
        }
    }
    if let Some(n) = raw.log_per_minute {
        match u32::try_from(n) {
            Ok(n) if n >= 1 => s.log_per_minute = n,
            _ => ctx.err(
                "rogue_servers.log_per_minute",
                "must be a whole number of at least 1",
            ),
        }
    }
    if let Some(raw_d) = &raw.probe_interval {
        match crate::options::parse_duration(raw_d) {
            Ok(d) if d >= 1 => s.probe_interval = Some(d),
            Ok(_) => ctx.err("rogue_servers.probe_interval", "must be at least 1 second"),
            Err(m) => ctx.err("rogue_servers.probe_interval", m),
        }
    }
    if let Some(m) = &raw.probe_mac {
        match HwAddr::parse_mac(m) {
            Some(mac) if mac.0.len() == 6 => s.probe_mac = mac,
            _ => ctx.err(
                "rogue_servers.probe_mac",
                format!("{m:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"),
            ),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::{Format, load_str};

    const BASE: &str = "[store]\npath = \"x\"\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\n\
                        pools = [\"198.18.0.10-198.18.0.20\"]\n";

    #[test]
    fn section_turns_detection_on_with_a_whitelist() {
        let c = load_str(BASE, "t.toml", Format::Toml).unwrap();
        assert!(!c.rogue_servers.enabled);
        let text = format!(
            "{BASE}[rogue_servers]\nwhitelist = [\"198.18.0.2\", \"aa-bb-cc-dd-ee-ff\"]\n\
             log_per_minute = 3\n"
        );
        let c = load_str(&text, "t.toml", Format::Toml).unwrap();
        let r = c.rogue_servers;
        assert!(r.enabled);
        assert_eq!(
            r.whitelist_ips,
            vec!["198.18.0.2".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            r.whitelist_macs[0].0,
            vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
        );
        assert_eq!(r.log_per_minute, 3);
        assert_eq!(r.probe_interval, None);
        let text = format!(
            "{BASE}[rogue_servers]\nprobe_interval = \"10m\"\nprobe_mac = \"02:00:00:00:00:aa\"\n"
        );
        let r = load_str(&text, "t.toml", Format::Toml)
            .unwrap()
            .rogue_servers;
        assert_eq!(r.probe_interval, Some(600));
        assert_eq!(r.probe_mac.0, vec![2, 0, 0, 0, 0, 0xaa]);
    }

    #[test]
    fn bad_entries_are_errors_with_their_place() {
        let text = format!("{BASE}[rogue_servers]\nwhitelist = [\"nope\"]\nlog_per_minute = 0\n");
        let e = load_str(&text, "t.toml", Format::Toml)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.toml:7:") && e.contains("rogue_servers.whitelist[0]"),
            "{e}"
        );
        assert!(e.contains("rogue_servers.log_per_minute"), "{e}");
    }
}
