//! `[server] conflict_check`, `conflict_check_timeout_ms`, `conflict_check_cache`: make sure an
//! address is really free before offering it (io's checker; off by default).
//!
//! Why in the config model and not only in io: `leased check` must name a bad value with its
//! line like every other key. The keys live in `[server]`; the settings are their own struct so
//! the many `ServerSettings` literals in tests stay as they are.

use crate::file::RawServer;
use leased_engine::{ConflictCheckMode, ConflictCheckSettings};

use crate::ctx::Ctx;

/// Checks the conflict-check keys of `[server]`.
pub(crate) fn conflict_check(ctx: &mut Ctx<'_>, raw: &RawServer) -> ConflictCheckSettings {
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
        match crate::options::parse_duration(raw_d) {
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
    use crate::{Format, load_str};

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
