//! `[server] conflict_check`, `conflict_check_timeout_ms`, `conflict_check_cache`: make sure an
//! address is really free before offering it (io's checker; off by default).
//!
//! Why in the config model and not only in io: `leased check` must name a bad value with its
//! line like every other key. The keys live in `[server]`; the settings are their own struct so
//! the many `ServerSettings` literals in tests stay as they are.

use super::file::RawServer;
use super::validate::Ctx;

/// How an address is checked before it is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictCheckMode {
    /// No check (default): the offer leaves at once.
    #[default]
    Off,
    /// On-link clients: an ARP probe (RFC 5227); relayed clients: an ICMP echo.
    Arp,
    /// An ICMP echo for every client.
    Ping,
}

/// Conflict-check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictCheckSettings {
    /// Which probe, if any (`off` keeps the OFFER path exactly as without the feature).
    pub mode: ConflictCheckMode,
    /// How long to wait for an answer, in milliseconds (10..=5000, default 500).
    pub timeout_ms: u32,
    /// Seconds an address that did not answer is not checked again (default 60; 0: always).
    pub cache_secs: u32,
}

impl Default for ConflictCheckSettings {
    fn default() -> Self {
        Self {
            mode: ConflictCheckMode::Off,
            timeout_ms: 500,
            cache_secs: 60,
        }
    }
}

/// Checks the conflict-check keys of `[server]`.
pub(super) fn conflict_check(ctx: &mut Ctx<'_>, raw: &RawServer) -> ConflictCheckSettings {
    let mut s = ConflictCheckSettings::default();
    if let Some(m) = &raw.conflict_check {
        match m.as_str() {
            "off" => s.mode = ConflictCheckMode::Off,
            "arp" => s.mode = ConflictCheckMode::Arp,
            "ping" => s.mode = ConflictCheckMode::Ping,
            other => ctx.err(
                "server.conflict_check",
                format!("{other:?} is not one of \"off\", \"arp\", \"ping\""),
            ),
        }
    }
    if let Some(n) = raw.conflict_check_timeout_ms {
        match u32::try_from(n) {
            Ok(n) if (10..=5000).contains(&n) => s.timeout_ms = n,
            _ => ctx.err(
                "server.conflict_check_timeout_ms",
                "must be a whole number of milliseconds, 10 to 5000",
            ),
        }
    }
    if let Some(raw_d) = &raw.conflict_check_cache {
        match super::options::parse_duration(raw_d) {
            Ok(d) => s.cache_secs = d,
            Err(m) => ctx.err("server.conflict_check_cache", m),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::ConflictCheckMode;
    use crate::config::{Format, load_str};

    const NET: &str = "[store]\npath = \"x\"\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\n\
                       pools = [\"198.18.0.10-198.18.0.20\"]\n";

    #[test]
    fn off_by_default_modes_and_bounds_checked() {
        let c = load_str(NET, "t.toml", Format::Toml).unwrap();
        assert_eq!(c.conflict_check.mode, ConflictCheckMode::Off);
        let text = format!(
            "[server]\nconflict_check = \"arp\"\nconflict_check_timeout_ms = 200\n\
             conflict_check_cache = \"2m\"\n{NET}"
        );
        let c = load_str(&text, "t.toml", Format::Toml)
            .unwrap()
            .conflict_check;
        assert_eq!(
            (c.mode, c.timeout_ms, c.cache_secs),
            (ConflictCheckMode::Arp, 200, 120)
        );
        let bad =
            format!("[server]\nconflict_check = \"icmp\"\nconflict_check_timeout_ms = 5\n{NET}");
        let e = load_str(&bad, "t.toml", Format::Toml)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.conflict_check:"), "{e}");
        assert!(e.contains("server.conflict_check_timeout_ms"), "{e}");
    }
}
