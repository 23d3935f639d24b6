//! `[ddns]`: dynamic DNS updates (RFC 2136, signed with TSIG) for the leases leased hands out,
//! with per-subnet zones in `[[ddns.subnets]]`. Shape and checks here; the protocol model gets
//! the option 81 policy of each subnet, io gets the rest.
//!
//! Why the zones sit under `[ddns]` and not in `[[subnets]]`: DDNS is one room's concern, and a
//! subnet entry here names its network, so `[[subnets]]` stays the address plan alone.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use base64::Engine as _;
use ipnet::Ipv4Net;
use leased_core::fqdn::{FqdnPolicies, FqdnPolicy, valid_name};
use serde::Deserialize;

use crate::ctx::Ctx;
use crate::file::RawDuration;

/// `[ddns]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDdns {
    pub enabled: Option<bool>,
    pub servers: Option<Vec<String>>,
    pub key_name: Option<String>,
    pub key_algorithm: Option<String>,
    pub key_secret: Option<String>,
    pub key_secret_file: Option<String>,
    pub forward_zone: Option<String>,
    pub reverse_zone: Option<String>,
    pub qualifying_suffix: Option<String>,
    pub override_client_update: Option<bool>,
    pub override_no_update: Option<bool>,
    pub ttl: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub max_backoff: Option<RawDuration>,
    pub queue_path: Option<String>,
    pub queue_limit: Option<i64>,
    pub subnets: Option<Vec<RawDdnsSubnet>>,
}

/// `[[ddns.subnets]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDdnsSubnet {
    pub network: String,
    pub enabled: Option<bool>,
    pub forward_zone: Option<String>,
    pub reverse_zone: Option<String>,
    pub qualifying_suffix: Option<String>,
    pub override_client_update: Option<bool>,
    pub override_no_update: Option<bool>,
}

/// The TSIG algorithms leased signs with (RFC 8945 §6: hmac-sha256 is mandatory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    /// `hmac-sha256`.
    HmacSha256,
    /// `hmac-sha384`.
    HmacSha384,
    /// `hmac-sha512`.
    HmacSha512,
}

/// One subnet's zones: where its names and its addresses' PTRs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdnsZones {
    /// The subnet.
    pub network: Ipv4Net,
    /// The zone A and DHCID records are added to (no final dot); `None`: no forward updates.
    pub forward_zone: Option<String>,
    /// The zone PTR records are added to; `None`: no reverse updates.
    pub reverse_zone: Option<String>,
    /// What partial names are qualified with.
    pub suffix: String,
}

/// The validated `[ddns]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdnsSettings {
    /// The DNS servers updates are sent to, tried in turn.
    pub servers: Vec<SocketAddr>,
    /// The TSIG key's name (as the DNS server knows it, no final dot).
    pub key_name: String,
    /// Its algorithm.
    pub key_algorithm: TsigAlgorithm,
    /// Its secret, decoded from base64.
    pub key_secret: Vec<u8>,
    /// TTL of the records added, seconds.
    pub ttl: u32,
    /// How long one try waits for an answer, seconds.
    pub timeout: u32,
    /// The longest wait between retries while a server is unreachable, seconds.
    pub max_backoff: u32,
    /// The durable queue of updates not yet acknowledged.
    pub queue_path: PathBuf,
    /// At most this many updates wait in the queue (the oldest is dropped, counted, beyond).
    pub queue_limit: usize,
    /// The zones of each subnet that does DDNS.
    pub zones: Vec<DdnsZones>,
    /// What core answers to option 81 in each of those subnets.
    pub policies: FqdnPolicies,
}

impl DdnsSettings {
    /// The zones of the subnet holding `ip` (the most specific one).
    pub fn zones_for(&self, ip: Ipv4Addr) -> Option<&DdnsZones> {
        self.zones
            .iter()
            .filter(|z| z.network.contains(&ip))
            .max_by_key(|z| z.network.prefix_len())
    }
}

/// A zone or suffix as written, without the final dot, lower-cased; an error when it is not a
/// domain name.
fn zone(ctx: &mut Ctx<'_>, path: &str, raw: Option<&String>) -> Option<String> {
    let raw = raw?;
    let z = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if valid_name(&z) {
        Some(z)
    } else {
        ctx.err(path, format!("{raw:?} is not a domain name"));
        None
    }
}

fn seconds(ctx: &mut Ctx<'_>, path: &str, raw: Option<&RawDuration>, default: u32) -> u32 {
    match raw.map(crate::options::parse_duration) {
        None => default,
        Some(Ok(v)) if v >= 1 => v,
        Some(Ok(_)) => {
            ctx.err(path, "must be at least 1 second");
            default
        }
        Some(Err(m)) => {
            ctx.err(path, m);
            default
        }
    }
}

/// Checks `[ddns]`; absent (or `enabled = false`) means no updates and no option 81.
pub(crate) fn ddns(
    ctx: &mut Ctx<'_>,
    raw: Option<&RawDdns>,
    subnets: &[Ipv4Net],
    store_path: &std::path::Path,
) -> Option<DdnsSettings> {
    let raw = raw?;
    if raw.enabled == Some(false) {
        return None;
    }
    let mut servers = Vec::new();
    for (i, s) in raw.servers.iter().flatten().enumerate() {
        let parsed = s
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| s.parse::<std::net::IpAddr>().ok().map(|ip| (ip, 53).into()));
        match parsed {
            Some(a) => servers.push(a),
            None => ctx.err(
                &format!("ddns.servers[{i}]"),
                format!("{s:?} is not an address or address:port"),
            ),
        }
    }
    if servers.is_empty() {
        ctx.err("ddns.servers", "at least one DNS server is needed");
    }
    let key_name = match raw.key_name.as_deref().map(|k| k.trim_end_matches('.')) {
        Some(k) if valid_key_name(k) => k.to_ascii_lowercase(),
        Some(k) => {
            ctx.err("ddns.key_name", format!("{k:?} is not a key name"));
            String::new()
        }
        None => {
            ctx.err(
                "ddns.key_name",
                "a TSIG key is required: updates are never sent unsigned",
            );
            String::new()
        }
    };
    let key_algorithm = match raw.key_algorithm.as_deref().unwrap_or("hmac-sha256") {
        "hmac-sha256" => TsigAlgorithm::HmacSha256,
        "hmac-sha384" => TsigAlgorithm::HmacSha384,
        "hmac-sha512" => TsigAlgorithm::HmacSha512,
        other => {
            ctx.err(
                "ddns.key_algorithm",
                format!("{other:?}: use hmac-sha256, hmac-sha384 or hmac-sha512"),
            );
            TsigAlgorithm::HmacSha256
        }
    };
    let secret_text = match (&raw.key_secret, &raw.key_secret_file) {
        (Some(s), None) => Some(s.clone()),
        (None, Some(f)) => match std::fs::read_to_string(f) {
            Ok(t) => Some(t),
            Err(e) => {
                ctx.err("ddns.key_secret_file", format!("cannot read {f:?}: {e}"));
                None
            }
        },
        (Some(_), Some(_)) => {
            ctx.err(
                "ddns.key_secret",
                "set key_secret or key_secret_file, not both",
            );
            None
        }
        (None, None) => {
            ctx.err(
                "ddns.key_secret",
                "the TSIG key's secret (base64) is required",
            );
            None
        }
    };
    let key_secret = secret_text
        .and_then(|t| {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(t.trim())
                .ok()
                .filter(|k| !k.is_empty());
            if decoded.is_none() {
                ctx.err("ddns.key_secret", "is not a base64 secret");
            }
            decoded
        })
        .unwrap_or_default();

    let global_forward = zone(ctx, "ddns.forward_zone", raw.forward_zone.as_ref());
    let global_reverse = zone(ctx, "ddns.reverse_zone", raw.reverse_zone.as_ref());
    let global_suffix = zone(
        ctx,
        "ddns.qualifying_suffix",
        raw.qualifying_suffix.as_ref(),
    );
    let over_client = raw.override_client_update.unwrap_or(false);
    let over_no = raw.override_no_update.unwrap_or(false);

    let mut zones = Vec::new();
    let mut policies = FqdnPolicies::default();
    let mut listed = Vec::new();
    for (i, s) in raw.subnets.iter().flatten().enumerate() {
        let path = format!("ddns.subnets[{i}]");
        let Ok(net) = s.network.parse::<Ipv4Net>() else {
            ctx.err(
                &format!("{path}.network"),
                format!("{:?} is not a network (a.b.c.d/n)", s.network),
            );
            continue;
        };
        if !subnets.contains(&net) {
            ctx.err(
                &format!("{path}.network"),
                format!("{net} is not one of the [[subnets]]"),
            );
            continue;
        }
        if listed.contains(&net) {
            ctx.err(&format!("{path}.network"), format!("{net} is listed twice"));
            continue;
        }
        listed.push(net);
        if s.enabled == Some(false) {
            continue;
        }
        let forward = zone(
            ctx,
            &format!("{path}.forward_zone"),
            s.forward_zone.as_ref(),
        )
        .or_else(|| global_forward.clone());
        let reverse = zone(
            ctx,
            &format!("{path}.reverse_zone"),
            s.reverse_zone.as_ref(),
        )
        .or_else(|| global_reverse.clone());
        let suffix = zone(
            ctx,
            &format!("{path}.qualifying_suffix"),
            s.qualifying_suffix.as_ref(),
        )
        .or_else(|| global_suffix.clone());
        push(
            &mut zones,
            &mut policies,
            net,
            forward,
            reverse,
            suffix,
            s.override_client_update.unwrap_or(over_client),
            s.override_no_update.unwrap_or(over_no),
        );
    }
    // Subnets not listed get the global zones, when there are any.
    if global_forward.is_some() || global_reverse.is_some() {
        for &net in subnets.iter().filter(|n| !listed.contains(n)) {
            push(
                &mut zones,
                &mut policies,
                net,
                global_forward.clone(),
                global_reverse.clone(),
                global_suffix.clone(),
                over_client,
                over_no,
            );
        }
    }
    for rev in zones.iter().filter_map(|z| z.reverse_zone.as_ref()) {
        if !rev.ends_with("in-addr.arpa") {
            ctx.err(
                "ddns.reverse_zone",
                format!("{rev:?} is not under in-addr.arpa"),
            );
            break;
        }
    }
    let queue_limit = match raw.queue_limit {
        None => 10_000,
        Some(n) => match usize::try_from(n) {
            Ok(n) if (1..=1_000_000).contains(&n) => n,
            _ => {
                ctx.err("ddns.queue_limit", "must be between 1 and 1000000");
                10_000
            }
        },
    };
    let queue_path = match &raw.queue_path {
        Some(p) if p.is_empty() => {
            ctx.err("ddns.queue_path", "must not be empty");
            PathBuf::new()
        }
        Some(p) => PathBuf::from(p),
        None => {
            let mut p = store_path.as_os_str().to_owned();
            p.push(".ddns");
            PathBuf::from(p)
        }
    };
    Some(DdnsSettings {
        servers,
        key_name,
        key_algorithm,
        key_secret,
        ttl: seconds(ctx, "ddns.ttl", raw.ttl.as_ref(), 300),
        timeout: seconds(ctx, "ddns.timeout", raw.timeout.as_ref(), 2),
        max_backoff: seconds(ctx, "ddns.max_backoff", raw.max_backoff.as_ref(), 60),
        queue_path,
        queue_limit,
        zones,
        policies,
    })
}

/// A TSIG key name: labels of letters, digits, hyphens and underscores.
fn valid_key_name(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[allow(clippy::too_many_arguments)]
fn push(
    zones: &mut Vec<DdnsZones>,
    policies: &mut FqdnPolicies,
    network: Ipv4Net,
    forward_zone: Option<String>,
    reverse_zone: Option<String>,
    suffix: Option<String>,
    override_client_update: bool,
    override_no_update: bool,
) {
    if forward_zone.is_none() && reverse_zone.is_none() {
        return;
    }
    let suffix = suffix.or_else(|| forward_zone.clone()).unwrap_or_default();
    policies.by_subnet.push((
        network,
        FqdnPolicy {
            suffix: suffix.clone(),
            forward: forward_zone.is_some(),
            reverse: reverse_zone.is_some(),
            override_client_update,
            override_no_update,
        },
    ));
    zones.push(DdnsZones {
        network,
        forward_zone,
        reverse_zone,
        suffix,
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::{Format, load_str};

    const BASE: &str = "[store]\npath = \"/var/lib/leased/x\"\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\n\
                        pools = [\"198.18.0.10-198.18.0.20\"]\n[[subnets]]\nnetwork = \"198.18.1.0/24\"\n\
                        pools = [\"198.18.1.10-198.18.1.20\"]\n";
    const KEY: &str = "key_name = \"ddns-key\"\nkey_secret = \"c2VjcmV0c2VjcmV0c2VjcmV0\"\n\
                       servers = [\"127.0.0.1:5300\"]\n";

    #[test]
    fn global_zones_and_a_subnet_of_its_own() {
        let text = format!(
            "{BASE}[ddns]\n{KEY}forward_zone = \"Example.Test.\"\nreverse_zone = \"18.198.in-addr.arpa\"\n\
             [[ddns.subnets]]\nnetwork = \"198.18.1.0/24\"\nforward_zone = \"lab.example.test\"\n\
             override_client_update = true\n"
        );
        let c = load_str(&text, "t.toml", Format::Toml).unwrap();
        let d = c.ddns.unwrap();
        assert_eq!(d.key_secret, b"secretsecretsecret");
        assert_eq!(d.servers[0].port(), 5300);
        assert_eq!(d.queue_path.to_str().unwrap(), "/var/lib/leased/x.ddns");
        let z = d.zones_for("198.18.1.5".parse().unwrap()).unwrap();
        assert_eq!(z.forward_zone.as_deref(), Some("lab.example.test"));
        assert_eq!(z.suffix, "lab.example.test");
        let z = d.zones_for("198.18.0.5".parse().unwrap()).unwrap();
        assert_eq!(z.forward_zone.as_deref(), Some("example.test"));
        assert_eq!(z.reverse_zone.as_deref(), Some("18.198.in-addr.arpa"));
        let p = &c.network.client_fqdn;
        assert!(
            p.for_subnet("198.18.1.0/24".parse().unwrap())
                .unwrap()
                .override_client_update
        );
        assert!(
            !p.for_subnet("198.18.0.0/24".parse().unwrap())
                .unwrap()
                .override_client_update
        );
    }

    #[test]
    fn no_section_no_ddns_and_bad_values_are_errors() {
        let c = load_str(BASE, "t.toml", Format::Toml).unwrap();
        assert!(c.ddns.is_none() && c.network.client_fqdn.by_subnet.is_empty());
        let text = format!(
            "{BASE}[ddns]\nservers = [\"nope\"]\nkey_algorithm = \"hmac-md5\"\n\
             forward_zone = \"a b\"\n[[ddns.subnets]]\nnetwork = \"198.18.9.0/24\"\n"
        );
        let e = load_str(&text, "t.toml", Format::Toml)
            .unwrap_err()
            .to_string();
        for want in [
            "ddns.servers[0]",
            "ddns.key_name",
            "ddns.key_secret",
            "ddns.key_algorithm",
            "ddns.forward_zone",
            "ddns.subnets[0].network",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
