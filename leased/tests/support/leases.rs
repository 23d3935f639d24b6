//! Reading `leased leases --json`: tolerant about field spellings, strict about meaning.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::Value;

/// One lease as the store reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRec {
    pub ip: Ipv4Addr,
    /// Lower-case, colon-separated.
    pub mac: String,
    /// offered / bound / released / expired / declined
    pub state: String,
    pub hostname: Option<String>,
    /// Expiry in Unix seconds, when the JSON gives one we can read.
    pub expires: Option<u64>,
    pub raw: Value,
}

/// Normalises a MAC to `aa:bb:cc:dd:ee:ff`.
pub fn norm_mac(m: &str) -> String {
    let hex: String = m
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_lowercase();
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

fn field<'a>(o: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| o.get(*n))
        .filter(|v| !v.is_null())
}

/// Seconds since the epoch from a number, a digit string, or an RFC 3339 UTC timestamp.
pub fn parse_time(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => s.parse::<u64>().ok().or_else(|| rfc3339(s)),
        Value::Object(o) => o.get("secs").or_else(|| o.get("unix")).and_then(parse_time),
        _ => None,
    }
}

fn rfc3339(s: &str) -> Option<u64> {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = s
        .get(19..)?
        .trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let off = match rest {
        "Z" | "z" | "" | "+00:00" => 0,
        r if r.len() == 6 => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            sign * (r.get(1..3)?.parse::<i64>().ok()? * 3600
                + r.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // days from civil (Howard Hinnant)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    u64::try_from(days * 86400 + h * 3600 + mi * 60 + se - off).ok()
}

fn mac_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(norm_mac(s)),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => None,
    }
}

/// Parses the JSON array printed by `leased leases --json`. Panics with the text on any doubt.
pub fn parse_leases(text: &str) -> Vec<LeaseRec> {
    let v: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("leases --json is not JSON ({e}):\n{text}"));
    let arr = match &v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o
            .get("leases")
            .and_then(|l| l.as_array())
            .cloned()
            .unwrap_or_else(|| panic!("leases --json: no array:\n{text}")),
        _ => panic!("leases --json: not an array:\n{text}"),
    };
    arr.into_iter()
        .map(|o| {
            let ip = field(&o, &["ip", "address", "ip_address"])
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("lease without ip: {o}"));
            let mac = field(&o, &["mac", "hwaddr", "hw_address", "chaddr"])
                .and_then(mac_of)
                .unwrap_or_default();
            let state = field(&o, &["state"])
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let hostname = field(&o, &["hostname", "host_name"])
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let expires =
                field(&o, &["expires", "expires_at", "expiry", "ends"]).and_then(parse_time);
            LeaseRec {
                ip,
                mac,
                state,
                hostname,
                expires,
                raw: o,
            }
        })
        .collect()
}

/// Leases keyed by address.
pub fn by_ip(leases: &[LeaseRec]) -> BTreeMap<Ipv4Addr, LeaseRec> {
    leases.iter().map(|l| (l.ip, l.clone())).collect()
}

/// The lease for `mac`, if the store has exactly one (panics on several bound ones).
pub fn find_mac<'a>(leases: &'a [LeaseRec], mac: &str) -> Vec<&'a LeaseRec> {
    let m = norm_mac(mac);
    leases.iter().filter(|l| l.mac == m).collect()
}

#[test]
fn rfc3339_parses() {
    assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(rfc3339("2000-03-01T00:00:01Z"), Some(951868801));
    assert_eq!(rfc3339("2000-03-01T01:00:01+01:00"), Some(951868801));
    assert_eq!(norm_mac("02-00-00-00-00-AB"), "02:00:00:00:00:ab");
}
