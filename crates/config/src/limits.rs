//! `[limits]`: starvation defence. Token-bucket request-rate limits per client MAC, per Option 82
//! circuit-id and remote-id, and per relay (giaddr; the receiving interface for clients on a
//! served link), plus caps on offers in flight. Shape and checks live here so the rest of the
//! loader only gains a field and a call; the engine enforces them before a packet reaches `decide`.
//!
//! Why in config and not hard-coded: the right rates depend on the network (a campus link
//! with a thousand laptops waking at 8:00 differs from one CPE per port), and every limit is off
//! unless set, so upgrading never starts dropping traffic.

use serde::Deserialize;

use leased_engine::{Limits, RateLimit};

use crate::ctx::Ctx;

/// `[limits]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub per_mac: Option<RawBucket>,
    pub per_circuit_id: Option<RawBucket>,
    pub per_remote_id: Option<RawBucket>,
    pub per_relay: Option<RawBucket>,
    pub max_offers_in_flight: Option<i64>,
    pub max_offers_in_flight_per_relay: Option<i64>,
}

/// `{ rate = …, burst = … }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBucket {
    pub rate: Option<f64>,
    pub burst: Option<i64>,
}

fn bucket(ctx: &mut Ctx<'_>, path: &str, raw: Option<&RawBucket>) -> Option<RateLimit> {
    let raw = raw?;
    let rate = match raw.rate {
        Some(r) if r.is_finite() && r > 0.0 && r <= 1e9 => Some(r),
        Some(_) => {
            ctx.err(
                &format!("{path}.rate"),
                "must be a number of requests per second above 0 (e.g. 0.5 or 20)",
            );
            None
        }
        None => {
            ctx.err(path, "rate is required, e.g. { rate = 2, burst = 10 }");
            None
        }
    };
    let burst = match raw.burst {
        None => rate.map(|r| r.ceil().clamp(1.0, f64::from(u32::MAX)) as u32),
        Some(b) => match u32::try_from(b) {
            Ok(b) if b >= 1 => Some(b),
            _ => {
                ctx.err(
                    &format!("{path}.burst"),
                    "must be a whole number of at least 1",
                );
                None
            }
        },
    };
    Some(RateLimit {
        rate: rate?,
        burst: burst?,
    })
}

fn cap(ctx: &mut Ctx<'_>, path: &str, v: Option<i64>) -> Option<u32> {
    let v = v?;
    match u32::try_from(v) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            ctx.err(path, "must be a whole number of at least 1");
            None
        }
    }
}

/// Checks `[limits]`; absent means no limits.
pub(crate) fn limits(ctx: &mut Ctx<'_>, raw: Option<&RawLimits>) -> Limits {
    let Some(raw) = raw else {
        return Limits::default();
    };
    Limits {
        per_mac: bucket(ctx, "limits.per_mac", raw.per_mac.as_ref()),
        per_circuit_id: bucket(ctx, "limits.per_circuit_id", raw.per_circuit_id.as_ref()),
        per_remote_id: bucket(ctx, "limits.per_remote_id", raw.per_remote_id.as_ref()),
        per_relay: bucket(ctx, "limits.per_relay", raw.per_relay.as_ref()),
        max_offers_in_flight: cap(ctx, "limits.max_offers_in_flight", raw.max_offers_in_flight),
        max_offers_in_flight_per_relay: cap(
            ctx,
            "limits.max_offers_in_flight_per_relay",
            raw.max_offers_in_flight_per_relay,
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Format, load_str};

    const BASE: &str = "[store]\npath = \"x\"\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\n\
                        pools = [\"198.18.0.10-198.18.0.20\"]\n";

    fn load(extra: &str) -> Result<Limits, String> {
        load_str(&format!("{BASE}{extra}"), "t.toml", Format::Toml)
            .map(|c| c.limits)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn absent_means_no_limits() {
        let l = load("").unwrap();
        assert!(l.is_empty());
    }

    #[test]
    fn every_key_parses_and_burst_defaults_to_the_rate() {
        let l = load(
            "[limits]\nper_mac = { rate = 0.5, burst = 4 }\nper_circuit_id = { rate = 3 }\n\
             per_remote_id = { rate = 20, burst = 40 }\nper_relay = { rate = 100, burst = 200 }\n\
             max_offers_in_flight = 500\nmax_offers_in_flight_per_relay = 50\n",
        )
        .unwrap();
        assert_eq!(
            l.per_mac,
            Some(RateLimit {
                rate: 0.5,
                burst: 4
            })
        );
        assert_eq!(
            l.per_circuit_id,
            Some(RateLimit {
                rate: 3.0,
                burst: 3
            })
        );
        assert_eq!(l.per_relay.unwrap().burst, 200);
        assert_eq!(l.max_offers_in_flight, Some(500));
        assert_eq!(l.max_offers_in_flight_per_relay, Some(50));
        assert!(!l.is_empty());
    }

    #[test]
    fn bad_values_are_errors_with_their_place() {
        let e = load("[limits]\nper_mac = { rate = 0, burst = 0 }\n").unwrap_err();
        assert!(e.contains("t.toml:7:"), "{e}");
        assert!(e.contains("limits.per_mac.rate"), "{e}");
        assert!(e.contains("limits.per_mac.burst"), "{e}");
        let e = load("[limits]\nmax_offers_in_flight = -1\n").unwrap_err();
        assert!(e.contains("limits.max_offers_in_flight"), "{e}");
        let e = load("[limits]\nper_relay = { burst = 3 }\n").unwrap_err();
        assert!(e.contains("rate is required"), "{e}");
        let e = load("[limits]\nper_vlan = { rate = 1 }\n").unwrap_err();
        assert!(e.contains("per_vlan"), "{e}");
    }

    #[test]
    fn json_has_the_same_schema() {
        let json = r#"{"store":{"path":"x"},"subnets":[{"network":"198.18.0.0/24",
            "pools":["198.18.0.10-198.18.0.20"]}],
            "limits":{"per_mac":{"rate":1,"burst":2},"max_offers_in_flight":9}}"#;
        let c = load_str(json, "t.json", Format::Json).unwrap();
        assert_eq!(
            c.limits.per_mac,
            Some(RateLimit {
                rate: 1.0,
                burst: 2
            })
        );
        assert_eq!(c.limits.max_offers_in_flight, Some(9));
    }
}
