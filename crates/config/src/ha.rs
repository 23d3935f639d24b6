//! `[ha]`: two leased servers sharing their clients without a shared database (hot-standby or
//! load-balancing, Kea's model). Shape and checks here, so the loader only gains a field and a
//! call; the state machine's part of the settings is `leased_ha::HaConfig`, the partner link's
//! trust (TLS files, shared key) stays here for the transport.
//!
//! Why the timers are Kea's names and defaults: operators moving a pair from Kea's HA hook
//! should find the same knobs meaning the same things.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use leased_ha::{HaConfig, HaMode, Peer, Role};

use crate::ctx::Ctx;
use crate::file::RawDuration;

/// Shortest accepted partner key, in bytes: the key is all that stands between the network and
/// a forged partner that could hand out or withdraw every lease.
pub const MIN_HA_KEY_LEN: usize = 16;

/// `[ha]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHa {
    pub mode: Option<String>,
    pub this_server: Option<String>,
    pub peers: Option<Vec<RawPeer>>,
    pub heartbeat_delay: Option<RawDuration>,
    pub max_response_delay: Option<RawDuration>,
    pub max_ack_delay: Option<RawDuration>,
    pub max_unacked_clients: Option<i64>,
    pub sync_page_limit: Option<i64>,
    pub update_queue_limit: Option<i64>,
    pub shared_key: Option<String>,
    pub tls: Option<RawHaTls>,
}

/// `[[ha.peers]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeer {
    pub name: Option<String>,
    pub url: Option<String>,
    pub role: Option<String>,
}

/// `[ha.tls]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHaTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub ca: Option<String>,
}

/// The validated `[ha]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaSettings {
    /// What the state machine runs on (mode, peers, timers, caps); its
    /// [`HaConfig::config_version`] is what the partners compare in their hello.
    pub machine: HaConfig,
    /// Mutual TLS for the partner link, when configured.
    pub tls: Option<HaTls>,
    /// A shared key both partners prove they know, when configured.
    pub shared_key: Option<HaKey>,
}

/// The partner link's TLS files: ours, and the CA that must have signed the partner's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaTls {
    /// This server's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA the partner's certificate must chain to (client and server side).
    pub ca: PathBuf,
}

/// The partner link's shared key; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct HaKey(pub String);

impl std::fmt::Debug for HaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HaKey(…)")
    }
}

/// Reads a delay: whole seconds, a duration string (`"10s"`, `"1m"`), or milliseconds
/// (`"500ms"`), within `min..=max`.
fn delay(
    ctx: &mut Ctx<'_>,
    path: &str,
    raw: Option<&RawDuration>,
    default: Duration,
    (min, max): (Duration, Duration),
) -> Duration {
    let Some(raw) = raw else {
        return default;
    };
    let parsed = match raw {
        RawDuration::Text(t) if t.trim().ends_with("ms") => {
            let digits = t.trim().trim_end_matches("ms");
            digits
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("invalid duration {t:?}: expected e.g. \"500ms\" or \"10s\""))
        }
        other => crate::options::parse_duration(other).map(|s| Duration::from_secs(u64::from(s))),
    };
    match parsed {
        Ok(d) if d >= min && d <= max => d,
        Ok(_) => {
            ctx.err(
                path,
                format!(
                    "must be between {} ms and {} s",
                    min.as_millis(),
                    max.as_secs()
                ),
            );
            default
        }
        Err(m) => {
            ctx.err(path, m);
            default
        }
    }
}

fn count(ctx: &mut Ctx<'_>, path: &str, v: Option<i64>, default: u32, min: u32, max: u32) -> u32 {
    let Some(v) = v else {
        return default;
    };
    match u32::try_from(v) {
        Ok(n) if (min..=max).contains(&n) => n,
        _ => {
            ctx.err(path, format!("must be a whole number from {min} to {max}"));
            default
        }
    }
}

fn non_empty_path(ctx: &mut Ctx<'_>, path: &str, v: Option<&String>) -> PathBuf {
    match v {
        Some(p) if !p.trim().is_empty() => PathBuf::from(p),
        Some(_) => {
            ctx.err(path, "must not be empty");
            PathBuf::new()
        }
        None => {
            ctx.err(path, "is required in [ha.tls]");
            PathBuf::new()
        }
    }
}

/// In load-balancing, where each server searches first for a never-used address: the primary
/// from the start of each pool, the secondary from its middle, so that the two rarely pick the
/// same fresh address at once (the partner's update would then be refused and one ACK lost).
pub(crate) fn allocation_slot(ha: &HaSettings) -> Option<leased_core::sql::AllocationSlot> {
    let m = &ha.machine;
    (m.mode == HaMode::LoadBalancing).then(|| leased_core::sql::AllocationSlot {
        index: u32::from(m.me().is_some_and(|p| p.role != Role::Primary)),
        count: 2,
    })
}

/// Checks `[ha]`; absent means a standalone server.
pub(crate) fn ha(ctx: &mut Ctx<'_>, raw: Option<&RawHa>) -> Option<HaSettings> {
    let raw = raw?;
    let defaults = HaConfig::default();
    let mode = match raw.mode.as_deref() {
        Some("hot-standby") => HaMode::HotStandby,
        Some("load-balancing") => HaMode::LoadBalancing,
        Some(other) => {
            ctx.err(
                "ha.mode",
                format!("unknown mode {other:?}; expected \"hot-standby\" or \"load-balancing\""),
            );
            HaMode::HotStandby
        }
        None => {
            ctx.err(
                "ha",
                "mode is required: \"hot-standby\" or \"load-balancing\"",
            );
            HaMode::HotStandby
        }
    };
    let mut peers = Vec::new();
    for (i, p) in raw.peers.iter().flatten().enumerate() {
        let at = format!("ha.peers[{i}]");
        let name = match p.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() && n.len() <= 64 => n.to_owned(),
            Some(_) => {
                ctx.err(&format!("{at}.name"), "must be 1 to 64 characters");
                continue;
            }
            None => {
                ctx.err(&at, "name is required");
                continue;
            }
        };
        let address = match p.url.as_deref().map(str::parse::<SocketAddr>) {
            Some(Ok(a)) if a.port() != 0 => a,
            Some(_) => {
                ctx.err(
                    &format!("{at}.url"),
                    "must be the partner link's address:port, e.g. \"198.18.0.2:8647\"",
                );
                continue;
            }
            None => {
                ctx.err(&at, "url (address:port) is required");
                continue;
            }
        };
        let role = match (mode, p.role.as_deref()) {
            (_, Some("primary")) => Role::Primary,
            (HaMode::HotStandby, Some("standby")) => Role::Standby,
            (HaMode::LoadBalancing, Some("secondary")) => Role::Secondary,
            (_, Some(other)) => {
                let want = match mode {
                    HaMode::HotStandby => "\"primary\" or \"standby\"",
                    HaMode::LoadBalancing => "\"primary\" or \"secondary\"",
                };
                ctx.err(
                    &format!("{at}.role"),
                    format!(
                        "role {other:?} does not fit {}; expected {want}",
                        mode.label()
                    ),
                );
                continue;
            }
            (_, None) => {
                ctx.err(&at, "role is required");
                continue;
            }
        };
        if peers.iter().any(|q: &Peer| q.name == name) {
            ctx.err(
                &format!("{at}.name"),
                format!("peer {name:?} is named twice"),
            );
            continue;
        }
        peers.push(Peer {
            name,
            address,
            role,
        });
    }
    let complete = raw.peers.as_ref().is_some_and(|p| p.len() == peers.len());
    if raw.peers.as_ref().is_none_or(|p| p.len() != 2) {
        ctx.err(
            "ha.peers",
            "exactly two [[ha.peers]] are needed: this server and its partner (backup servers \
             are not supported)",
        );
    } else if complete && peers.iter().filter(|p| p.role == Role::Primary).count() != 1 {
        ctx.err("ha.peers", "exactly one peer must be the primary");
    }
    let this_server = match raw.this_server.as_deref() {
        Some(n) if peers.iter().any(|p| p.name == n) => n.to_owned(),
        Some(n) => {
            if complete {
                ctx.err(
                    "ha.this_server",
                    format!("{n:?} is not the name of one of [[ha.peers]]"),
                );
            }
            n.to_owned()
        }
        None => {
            ctx.err(
                "ha",
                "this_server is required: the name of this server in [[ha.peers]]",
            );
            String::new()
        }
    };
    let heartbeat_delay = delay(
        ctx,
        "ha.heartbeat_delay",
        raw.heartbeat_delay.as_ref(),
        defaults.heartbeat_delay,
        (Duration::from_millis(100), Duration::from_secs(3_600)),
    );
    let max_response_delay = delay(
        ctx,
        "ha.max_response_delay",
        raw.max_response_delay.as_ref(),
        defaults.max_response_delay,
        (Duration::from_millis(100), Duration::from_secs(3_600)),
    );
    if max_response_delay <= heartbeat_delay {
        ctx.err(
            "ha.max_response_delay",
            "must be longer than heartbeat_delay (several heartbeats must be missed)",
        );
    }
    let max_ack_delay = delay(
        ctx,
        "ha.max_ack_delay",
        raw.max_ack_delay.as_ref(),
        defaults.max_ack_delay,
        // Clients' `secs` is 16 bits of seconds.
        (
            Duration::from_millis(1),
            Duration::from_secs(u64::from(u16::MAX) - 1),
        ),
    );
    let max_unacked_clients = count(
        ctx,
        "ha.max_unacked_clients",
        raw.max_unacked_clients,
        defaults.max_unacked_clients,
        0,
        10_000,
    );
    let sync_page_limit = count(
        ctx,
        "ha.sync_page_limit",
        raw.sync_page_limit,
        defaults.sync_page_limit,
        1,
        50_000,
    );
    let update_queue_limit = count(
        ctx,
        "ha.update_queue_limit",
        raw.update_queue_limit,
        defaults.update_queue_limit,
        1,
        1_000_000,
    );
    let shared_key = match &raw.shared_key {
        Some(k) if k.len() < MIN_HA_KEY_LEN => {
            ctx.err(
                "ha.shared_key",
                format!(
                    "must be at least {MIN_HA_KEY_LEN} bytes long (this one has {}); generate \
                     one with e.g. `openssl rand -hex 16`",
                    k.len()
                ),
            );
            None
        }
        Some(k) => Some(HaKey(k.clone())),
        None => None,
    };
    let tls = raw.tls.as_ref().map(|t| HaTls {
        cert: non_empty_path(ctx, "ha.tls.cert", t.cert.as_ref()),
        key: non_empty_path(ctx, "ha.tls.key", t.key.as_ref()),
        ca: non_empty_path(ctx, "ha.tls.ca", t.ca.as_ref()),
    });
    if raw.tls.is_none() && raw.shared_key.is_none() {
        ctx.err(
            "ha",
            "the partner link must be authenticated: set [ha.tls] (cert, key, ca) and/or \
             shared_key",
        );
    }
    Some(HaSettings {
        machine: HaConfig {
            mode,
            this_server,
            peers,
            heartbeat_delay,
            max_response_delay,
            max_ack_delay,
            max_unacked_clients,
            sync_page_limit,
            update_queue_limit,
        },
        tls,
        shared_key,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Format, load_str};

    const BASE: &str = "[store]\npath = \"x\"\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\n\
                        pools = [\"198.18.0.10-198.18.0.20\"]\n";

    const PEERS: &str = "[[ha.peers]]\nname = \"a\"\nurl = \"198.18.0.1:8647\"\nrole = \"primary\"\n\
                         [[ha.peers]]\nname = \"b\"\nurl = \"198.18.0.2:8647\"\nrole = \"standby\"\n";

    fn load(extra: &str) -> Result<Option<HaSettings>, String> {
        load_str(&format!("{BASE}{extra}"), "t.toml", Format::Toml)
            .map(|c| c.ha)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn absent_means_standalone() {
        assert_eq!(load("").unwrap(), None);
    }

    #[test]
    fn a_hot_standby_pair_with_defaults_and_a_key() {
        let h = load(&format!(
            "[ha]\nmode = \"hot-standby\"\nthis_server = \"b\"\n\
             shared_key = \"0123456789abcdef\"\n{PEERS}"
        ))
        .unwrap()
        .unwrap();
        let m = &h.machine;
        assert_eq!(m.mode, HaMode::HotStandby);
        assert_eq!(m.me().unwrap().role, Role::Standby);
        assert_eq!(m.partner().unwrap().name, "a");
        assert_eq!(m.heartbeat_delay, Duration::from_secs(10));
        assert_eq!(m.max_response_delay, Duration::from_secs(60));
        assert_eq!(m.max_unacked_clients, 10);
        assert_eq!(h.shared_key, Some(HaKey("0123456789abcdef".into())));
        assert!(
            !format!("{h:?}").contains("0123456789abcdef"),
            "key in Debug"
        );
        // The other server's view of the same pair has the same config version.
        let a = load(&format!(
            "[ha]\nmode = \"hot-standby\"\nthis_server = \"a\"\nheartbeat_delay = \"500ms\"\n\
             shared_key = \"0123456789abcdef\"\n{PEERS}"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(a.machine.heartbeat_delay, Duration::from_millis(500));
        assert_eq!(a.machine.config_version(), m.config_version());
    }

    #[test]
    fn load_balancing_with_tls_and_every_knob() {
        let h = load(
            "[ha]\nmode = \"load-balancing\"\nthis_server = \"a\"\nheartbeat_delay = 2\n\
             max_response_delay = \"20s\"\nmax_ack_delay = \"5s\"\nmax_unacked_clients = 0\n\
             sync_page_limit = 500\nupdate_queue_limit = 100\n\
             [ha.tls]\ncert = \"a.pem\"\nkey = \"a.key\"\nca = \"ca.pem\"\n\
             [[ha.peers]]\nname = \"a\"\nurl = \"198.18.0.1:8647\"\nrole = \"primary\"\n\
             [[ha.peers]]\nname = \"b\"\nurl = \"198.18.0.2:8647\"\nrole = \"secondary\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.machine.mode, HaMode::LoadBalancing);
        assert_eq!(h.machine.max_unacked_clients, 0);
        assert_eq!(h.machine.sync_page_limit, 500);
        assert_eq!(h.machine.update_queue_limit, 100);
        assert_eq!(h.tls.unwrap().ca, PathBuf::from("ca.pem"));
    }

    #[test]
    fn load_balancing_servers_search_fresh_addresses_from_different_ends() {
        let text = |me: &str| {
            format!(
                "{BASE}[ha]\nmode = \"load-balancing\"\nthis_server = \"{me}\"\n\
                 shared_key = \"0123456789abcdef\"\n\
                 [[ha.peers]]\nname = \"a\"\nurl = \"198.18.0.1:8647\"\nrole = \"primary\"\n\
                 [[ha.peers]]\nname = \"b\"\nurl = \"198.18.0.2:8647\"\nrole = \"secondary\"\n"
            )
        };
        let a = load_str(&text("a"), "t.toml", Format::Toml).unwrap();
        let b = load_str(&text("b"), "t.toml", Format::Toml).unwrap();
        assert_eq!(a.network.allocation_slot.unwrap().index, 0);
        assert_eq!(b.network.allocation_slot.unwrap().index, 1);
    }

    #[test]
    fn bad_values_are_errors_with_their_place() {
        let e = load(&format!(
            "[ha]\nmode = \"hot-standby\"\nthis_server = \"c\"\nshared_key = \"short\"\n\
             max_response_delay = \"5s\"\n{PEERS}"
        ))
        .unwrap_err();
        assert!(e.contains("t.toml:8:15: ha.this_server"), "{e}");
        assert!(e.contains("ha.shared_key") && e.contains("16 bytes"), "{e}");
        assert!(e.contains("ha.max_response_delay"), "{e}");
        let e = load("[ha]\nmode = \"active-active\"\n").unwrap_err();
        assert!(e.contains("ha.mode"), "{e}");
        assert!(e.contains("exactly two"), "{e}");
        assert!(e.contains("authenticated"), "{e}");
        let e = load(
            "[ha]\nmode = \"load-balancing\"\nthis_server = \"a\"\nshared_key = \"0123456789abcdef\"\n\
             [ha.tls]\ncert = \"\"\nkey = \"k\"\n\
             [[ha.peers]]\nname = \"a\"\nurl = \"nowhere\"\nrole = \"primary\"\n\
             [[ha.peers]]\nname = \"b\"\nurl = \"198.18.0.2:8647\"\nrole = \"standby\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("ha.tls.cert") && e.contains("must not be empty"),
            "{e}"
        );
        assert!(e.contains("ha.tls.ca"), "{e}");
        assert!(e.contains("ha.peers[0].url"), "{e}");
        assert!(
            e.contains("ha.peers[1].role") && e.contains("load-balancing"),
            "{e}"
        );
        let e = load(&format!(
            "[ha]\nmode = \"hot-standby\"\nthis_server = \"a\"\nshared_key = \"0123456789abcdef\"\n\
             partner_url = \"x\"\n{PEERS}"
        ))
        .unwrap_err();
        assert!(e.contains("partner_url"), "{e}");
    }

    #[test]
    fn two_primaries_are_refused() {
        let e = load(
            "[ha]\nmode = \"hot-standby\"\nthis_server = \"a\"\nshared_key = \"0123456789abcdef\"\n\
             [[ha.peers]]\nname = \"a\"\nurl = \"198.18.0.1:8647\"\nrole = \"primary\"\n\
             [[ha.peers]]\nname = \"b\"\nurl = \"198.18.0.2:8647\"\nrole = \"primary\"\n",
        )
        .unwrap_err();
        assert!(e.contains("exactly one peer must be the primary"), "{e}");
    }

    #[test]
    fn json_has_the_same_schema() {
        let json = r#"{"store":{"path":"x"},"subnets":[{"network":"198.18.0.0/24",
            "pools":["198.18.0.10-198.18.0.20"]}],
            "ha":{"mode":"hot-standby","this_server":"a","shared_key":"0123456789abcdef",
              "peers":[{"name":"a","url":"198.18.0.1:8647","role":"primary"},
                       {"name":"b","url":"198.18.0.2:8647","role":"standby"}]}}"#;
        let c = load_str(json, "t.json", Format::Json).unwrap();
        assert_eq!(c.ha.unwrap().machine.this_server, "a");
    }
}
