//! Value parsers shared by the model stage, and the compiler from `[options]`-style tables to
//! wire-ready [`OptionSet`]s.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use leased_wire::code;

use crate::ctx::Ctx;
use crate::file::{RawDuration, RawExtra, RawOptions};
use crate::span::{join_index, join_key};
use leased_core::model::OptionSet;

/// Option codes the server sets itself; configuring them is an error.
pub(crate) const SERVER_OWNED: [u8; 13] = [0, 50, 51, 52, 53, 54, 55, 57, 58, 59, 61, 82, 255];

/// Parses a duration: integer seconds, a string of digits, or `<n><unit>` groups with units
/// `d`, `h`, `m`, `s` in that order, each at most once (`"7d"`, `"1h30m"`, `"90s"`).
pub(crate) fn parse_duration(raw: &RawDuration) -> Result<u32, String> {
    match raw {
        RawDuration::Secs(n) => {
            u32::try_from(*n).map_err(|_| format!("{n} seconds is out of range (0..={})", u32::MAX))
        }
        RawDuration::Text(s) => parse_duration_str(s),
    }
}

fn parse_duration_str(s: &str) -> Result<u32, String> {
    let bad = || {
        format!(
            "invalid duration {s:?}: expected seconds or e.g. \"90s\", \"30m\", \"12h\", \"7d\", \"1h30m\""
        )
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return t
            .parse::<u32>()
            .map_err(|_| format!("duration {s:?} is out of range (0..={})", u32::MAX));
    }
    let units = [('d', 86_400u64), ('h', 3_600), ('m', 60), ('s', 1)];
    let mut total: u64 = 0;
    let mut next_unit = 0usize;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let rank = units
            .iter()
            .position(|(u, _)| *u == c.to_ascii_lowercase())
            .ok_or_else(bad)?;
        if digits.is_empty() || rank < next_unit {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let mult = units.get(rank).map_or(1, |(_, m)| *m);
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} is out of range (0..={}s)", u32::MAX))?;
        next_unit = rank + 1;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    u32::try_from(total).map_err(|_| format!("duration {s:?} is out of range (0..={}s)", u32::MAX))
}

/// Checks a DNS name (options 12, 15, 119): LDH labels of 1..=63 characters, at most 253 in
/// all, one optional trailing dot.
pub(crate) fn check_domain(name: &str) -> Result<(), String> {
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.is_empty() {
        return Err("empty domain name".into());
    }
    if n.len() > 253 {
        return Err(format!(
            "domain name {name:?} is longer than 253 characters"
        ));
    }
    for label in n.split('.') {
        if label.is_empty() {
            return Err(format!("domain name {name:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!(
                "domain name {name:?} has a label longer than 63 characters"
            ));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!(
                "domain name {name:?} may contain only letters, digits, '-' and '.'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "domain name {name:?} has a label starting or ending with '-'"
            ));
        }
    }
    Ok(())
}

/// Parses an IPv4 network in CIDR form whose host bits are zero.
pub(crate) fn parse_cidr(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s.trim().parse().map_err(|_| {
        format!("invalid IPv4 network {s:?}: expected CIDR such as \"198.18.0.0/24\"")
    })?;
    if net.addr() != net.network() {
        return Err(format!(
            "{s:?} has host bits set; the network is {}/{}",
            net.network(),
            net.prefix_len()
        ));
    }
    Ok(net)
}

/// Parses an IPv4 address.
pub(crate) fn parse_ip(s: &str) -> Result<Ipv4Addr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("invalid IPv4 address {s:?}"))
}

/// Codes set by the named keys of an options table, for clash checks against `extra`.
fn named_codes(raw: &RawOptions) -> Vec<(u8, &'static str)> {
    let mut v = Vec::new();
    let mut add = |set: bool, c: u8, k: &'static str| {
        if set {
            v.push((c, k));
        }
    };
    add(raw.dns.is_some(), code::DNS, "dns");
    add(raw.domain_name.is_some(), code::DOMAIN_NAME, "domain_name");
    add(
        raw.domain_search.is_some(),
        code::DOMAIN_SEARCH,
        "domain_search",
    );
    add(raw.ntp.is_some(), code::NTP, "ntp");
    add(raw.mtu.is_some(), code::MTU, "mtu");
    add(raw.wins.is_some(), code::NETBIOS_NS, "wins");
    add(raw.tftp_server.is_some(), code::TFTP_SERVER, "tftp_server");
    add(raw.bootfile.is_some(), code::BOOTFILE, "bootfile");
    add(raw.wpad_url.is_some(), code::WPAD, "wpad_url");
    add(
        raw.static_routes.is_some(),
        code::CLASSLESS_ROUTES,
        "static_routes",
    );
    add(
        raw.vendor_specific.is_some(),
        code::VENDOR_SPECIFIC,
        "vendor_specific",
    );
    v
}

/// Compiles one options table at `path`. `sibling_codes` are codes that keys beside the table
/// already set (a subnet's `routers` → 3, a reservation's `hostname` → 12); `extra` may not
/// repeat them.
pub(crate) fn compile(
    ctx: &mut Ctx<'_>,
    path: &str,
    raw: &RawOptions,
    sibling_codes: &[(u8, String)],
) -> OptionSet {
    let mut set = OptionSet::default();
    let key = |k: &str| join_key(path, k);

    if let Some(list) = &raw.dns {
        ip_list_opt(ctx, &key("dns"), list, code::DNS, &mut set.values);
    }
    if let Some(name) = &raw.domain_name {
        match check_domain(name) {
            Ok(()) => {
                let n = name.strip_suffix('.').unwrap_or(name);
                set.values.insert(code::DOMAIN_NAME, n.as_bytes().to_vec());
            }
            Err(m) => ctx.err(&key("domain_name"), m),
        }
    }
    if let Some(names) = &raw.domain_search {
        let p = key("domain_search");
        if names.is_empty() {
            ctx.err(&p, "must list at least one domain");
        }
        let mut ok = true;
        for (i, n) in names.iter().enumerate() {
            if let Err(m) = check_domain(n) {
                ctx.err(&join_index(&p, i), m);
                ok = false;
            }
        }
        if ok && !names.is_empty() {
            match leased_wire::domain_search(names) {
                Ok(bytes) => {
                    set.values.insert(code::DOMAIN_SEARCH, bytes);
                }
                Err(e) => ctx.err(&p, e.to_string()),
            }
        }
    }
    if let Some(list) = &raw.ntp {
        ip_list_opt(ctx, &key("ntp"), list, code::NTP, &mut set.values);
    }
    if let Some(mtu) = raw.mtu {
        match u16::try_from(mtu) {
            Ok(m) if m >= 68 => {
                set.values.insert(code::MTU, m.to_be_bytes().to_vec());
            }
            _ => ctx.err(
                &key("mtu"),
                format!("MTU {mtu} is out of range (68..=65535)"),
            ),
        }
    }
    if let Some(list) = &raw.wins {
        ip_list_opt(ctx, &key("wins"), list, code::NETBIOS_NS, &mut set.values);
    }
    if let Some(t) = &raw.tftp_server {
        if t.is_empty() {
            ctx.err(&key("tftp_server"), "must not be empty");
        } else {
            set.values.insert(code::TFTP_SERVER, t.as_bytes().to_vec());
        }
    }
    if let Some(b) = &raw.bootfile {
        if b.is_empty() {
            ctx.err(&key("bootfile"), "must not be empty");
        } else if b.len() > 128 {
            ctx.err(
                &key("bootfile"),
                format!(
                    "{} bytes long; the BOOTP file field holds at most 128",
                    b.len()
                ),
            );
        } else {
            set.values.insert(code::BOOTFILE, b.as_bytes().to_vec());
            set.boot_file = Some(b.clone());
        }
    }
    if let Some(ns) = &raw.next_server {
        match parse_ip(ns) {
            Ok(ip) => set.next_server = Some(ip),
            Err(m) => ctx.err(&key("next_server"), m),
        }
    } else if let Some(ip) = raw.tftp_server.as_deref().and_then(|t| parse_ip(t).ok()) {
        set.next_server = Some(ip);
    }
    if let Some(u) = &raw.wpad_url {
        if u.is_empty() {
            ctx.err(&key("wpad_url"), "must not be empty");
        } else {
            set.values.insert(code::WPAD, u.as_bytes().to_vec());
        }
    }
    if let Some(routes) = &raw.static_routes {
        let p = key("static_routes");
        if routes.is_empty() {
            ctx.err(&p, "must list at least one route");
        }
        let mut parsed = Vec::new();
        let mut ok = true;
        for (i, r) in routes.iter().enumerate() {
            let rp = join_index(&p, i);
            let dest = parse_cidr(&r.destination)
                .map_err(|m| ctx.err(&join_key(&rp, "destination"), m))
                .ok();
            let gw = parse_ip(&r.gateway)
                .map_err(|m| ctx.err(&join_key(&rp, "gateway"), m))
                .ok();
            match (dest, gw) {
                (Some(d), Some(g)) => parsed.push((d, g)),
                _ => ok = false,
            }
        }
        if ok && !parsed.is_empty() {
            set.values.insert(
                code::CLASSLESS_ROUTES,
                leased_wire::classless_routes(&parsed),
            );
        }
    }
    set.mirror_routes_to_249 = raw.mirror_routes_to_249;
    if let Some(h) = &raw.vendor_specific {
        match leased_wire::parse_hex(h) {
            Ok(bytes) if bytes.is_empty() => ctx.err(&key("vendor_specific"), "must not be empty"),
            Ok(bytes) => {
                set.values.insert(code::VENDOR_SPECIFIC, bytes);
            }
            Err(e) => ctx.err(&key("vendor_specific"), e.to_string()),
        }
    }
    if let Some(extras) = &raw.extra {
        let p = key("extra");
        let mut taken: Vec<(u8, String)> = named_codes(raw)
            .into_iter()
            .map(|(c, k)| (c, join_key(path, k)))
            .chain(sibling_codes.iter().cloned())
            .collect();
        for (i, x) in extras.iter().enumerate() {
            let xp = join_index(&p, i);
            let Some(c) = extra_code(ctx, &xp, x.code) else {
                continue;
            };
            if let Some((_, by)) = taken.iter().find(|(t, _)| *t == c) {
                ctx.err(
                    &join_key(&xp, "code"),
                    format!("option {c} is already set by {by}"),
                );
                continue;
            }
            taken.push((c, xp.clone()));
            if let Some(bytes) = extra_value(ctx, &xp, x) {
                set.values.insert(c, bytes);
            }
        }
    }
    set
}

fn extra_code(ctx: &mut Ctx<'_>, path: &str, code: i64) -> Option<u8> {
    let p = join_key(path, "code");
    let Ok(c) = u8::try_from(code) else {
        ctx.err(&p, format!("option code {code} is out of range (1..=254)"));
        return None;
    };
    if c == code::RAPID_COMMIT || c == code::IPV6_ONLY_PREFERRED {
        let key = if c == code::RAPID_COMMIT {
            "rapid_commit = true"
        } else {
            "ipv6_only_wait"
        };
        ctx.err(
            &p,
            format!("option {c} is sent by the server only to clients that ask; set {key} in the subnet instead"),
        );
        return None;
    }
    if SERVER_OWNED.contains(&c) {
        ctx.err(
            &p,
            format!("option {c} is set by the server itself and cannot be configured"),
        );
        return None;
    }
    Some(c)
}

fn extra_value(ctx: &mut Ctx<'_>, path: &str, x: &RawExtra) -> Option<Vec<u8>> {
    use serde_json::Value;
    let vp = join_key(path, "value");
    let wrong = |ctx: &mut Ctx<'_>, want: &str| {
        ctx.err(
            &vp,
            format!("type {:?} needs {want}, got {}", x.kind, describe(&x.value)),
        );
        None
    };
    let int = |ctx: &mut Ctx<'_>, max: u64| -> Option<u64> {
        match x.value.as_u64() {
            Some(n) if n <= max => Some(n),
            _ if x.value.is_i64() || x.value.is_u64() => {
                ctx.err(
                    &vp,
                    format!("{} is out of range for {} (0..={max})", x.value, x.kind),
                );
                None
            }
            _ => {
                ctx.err(
                    &vp,
                    format!(
                        "type {:?} needs an integer, got {}",
                        x.kind,
                        describe(&x.value)
                    ),
                );
                None
            }
        }
    };
    match x.kind.as_str() {
        "ip" => match &x.value {
            Value::String(s) => match parse_ip(s) {
                Ok(ip) => Some(ip.octets().to_vec()),
                Err(m) => {
                    ctx.err(&vp, m);
                    None
                }
            },
            _ => wrong(ctx, "an IPv4 address string"),
        },
        "ip_list" => match &x.value {
            Value::Array(items) if !items.is_empty() => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    let ip = match item {
                        Value::String(s) => parse_ip(s),
                        other => Err(format!("expected an IPv4 address, got {}", describe(other))),
                    };
                    match ip {
                        Ok(ip) => out.extend_from_slice(&ip.octets()),
                        Err(m) => {
                            ctx.err(&join_index(&vp, i), m);
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
            Value::Array(_) => {
                ctx.err(&vp, "must list at least one address");
                None
            }
            _ => wrong(ctx, "a list of IPv4 address strings"),
        },
        "u8" => int(ctx, u64::from(u8::MAX)).map(|n| vec![n as u8]),
        "u16" => int(ctx, u64::from(u16::MAX)).map(|n| (n as u16).to_be_bytes().to_vec()),
        "u32" => int(ctx, u64::from(u32::MAX)).map(|n| (n as u32).to_be_bytes().to_vec()),
        "bool" => match &x.value {
            Value::Bool(b) => Some(vec![u8::from(*b)]),
            _ => wrong(ctx, "true or false"),
        },
        "string" => match &x.value {
            Value::String(s) if s.is_empty() => {
                ctx.err(&vp, "must not be empty");
                None
            }
            Value::String(s) => Some(s.as_bytes().to_vec()),
            _ => wrong(ctx, "a string"),
        },
        "hex" => match &x.value {
            Value::String(s) => match leased_wire::parse_hex(s) {
                Ok(b) => Some(b),
                Err(e) => {
                    ctx.err(&vp, e.to_string());
                    None
                }
            },
            _ => wrong(ctx, "a hex string"),
        },
        other => {
            ctx.err(
                &join_key(path, "type"),
                format!(
                    "unknown option type {other:?}; expected one of ip, ip_list, u8, u16, u32, bool, string, hex"
                ),
            );
            None
        }
    }
}

fn describe(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

fn ip_list_opt(
    ctx: &mut Ctx<'_>,
    path: &str,
    list: &[String],
    code: u8,
    values: &mut BTreeMap<u8, Vec<u8>>,
) {
    if list.is_empty() {
        ctx.err(path, "must list at least one address");
        return;
    }
    let mut out = Vec::with_capacity(list.len() * 4);
    let mut ok = true;
    for (i, s) in list.iter().enumerate() {
        match parse_ip(s) {
            Ok(ip) => out.extend_from_slice(&ip.octets()),
            Err(m) => {
                ctx.err(&join_index(path, i), m);
                ok = false;
            }
        }
    }
    if ok {
        values.insert(code, out);
    }
}
