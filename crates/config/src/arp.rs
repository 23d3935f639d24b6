//! `[arp_watch]`: ARP anomaly detection (io's monitor) — who really uses the addresses of the
//! served subnets, compared with the leases, the reservations and the banned MACs.
//!
//! Why the shape: the scan reads the kernel's neighbour table every `interval`; `probe` adds
//! RFC 5227 ARP probes of the pool and reserved addresses (so silent hosts answer), sent at
//! most `probe_rate` a second so a /16 pool never floods the link.

use serde::Deserialize;

use crate::ctx::Ctx;

/// `[arp_watch]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArpWatch {
    pub enabled: Option<bool>,
    pub interval: Option<crate::file::RawDuration>,
    pub probe: Option<bool>,
    pub probe_rate: Option<i64>,
}

/// ARP anomaly detection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpWatchSettings {
    /// Scan (true when the section is present, unless set false).
    pub enabled: bool,
    /// Seconds between scans of the neighbour table.
    pub interval: u32,
    /// ARP-probe pool and reserved addresses between scans (needs CAP_NET_RAW).
    pub probe: bool,
    /// At most this many probes a second, over all links.
    pub probe_rate: u32,
}

impl Default for ArpWatchSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: 60,
            probe: false,
            probe_rate: 20,
        }
    }
}

/// Checks `[arp_watch]`; absent means off.
pub(crate) fn arp_watch(ctx: &mut Ctx<'_>, raw: Option<&RawArpWatch>) -> ArpWatchSettings {
    let Some(raw) = raw else {
        return ArpWatchSettings::default();
    };
    let mut s = ArpWatchSettings {
        enabled: raw.enabled.unwrap_or(true),
        probe: raw.probe.unwrap_or(false),
        ..ArpWatchSettings::default()
    };
    if let Some(raw_d) = &raw.interval {
        match crate::options::parse_duration(raw_d) {
            Ok(d) if d >= 1 => s.interval = d,
            Ok(_) => ctx.err("arp_watch.interval", "must be at least 1 second"),
            Err(m) => ctx.err("arp_watch.interval", m),
        }
    }
    if let Some(n) = raw.probe_rate {
        match u32::try_from(n) {
            Ok(n) if (1..=10_000).contains(&n) => s.probe_rate = n,
            _ => ctx.err(
                "arp_watch.probe_rate",
                "must be a whole number of probes a second, 1 to 10000",
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
    fn absent_is_off_present_is_on_with_checked_values() {
        let c = load_str(BASE, "t.toml", Format::Toml).unwrap();
        assert!(!c.arp_watch.enabled);
        let text = format!("{BASE}[arp_watch]\ninterval = \"2m\"\nprobe = true\nprobe_rate = 5\n");
        let a = load_str(&text, "t.toml", Format::Toml).unwrap().arp_watch;
        assert!(a.enabled && a.probe);
        assert_eq!((a.interval, a.probe_rate), (120, 5));
        let bad = format!("{BASE}[arp_watch]\ninterval = 0\nprobe_rate = 0\n");
        let e = load_str(&bad, "t.toml", Format::Toml)
            .unwrap_err()
            .to_string();
        assert!(e.contains("arp_watch.interval"), "{e}");
        assert!(e.contains("arp_watch.probe_rate"), "{e}");
        let unknown = format!("{BASE}[arp_watch]\nprobes = true\n");
        assert!(load_str(&unknown, "t.toml", Format::Toml).is_err());
    }
}
