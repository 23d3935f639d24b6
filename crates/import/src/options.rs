//! DHCPv4 options by code, with Kea's and dnsmasq's names and value types, and how one lands in
//! a leased option table: a named key where leased has one (`dns`, `ntp`, …), else an `extra`
//! of the matching type, else raw bytes (`hex`).

use std::net::Ipv4Addr;

use crate::{Extra, Opts, Route};

/// The value type of an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ip,
    IpList,
    U8,
    U16,
    U32,
    I32,
    Bool,
    Str,
    /// Opaque bytes: only hex data maps.
    Binary,
    /// Classless static routes (RFC 3442).
    Routes,
}

/// One known option.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Def {
    pub code: u8,
    pub kea: &'static str,
    pub dnsmasq: &'static str,
    pub kind: Kind,
}

const fn d(code: u8, kea: &'static str, dnsmasq: &'static str, kind: Kind) -> Def {
    Def {
        code,
        kea,
        dnsmasq,
        kind,
    }
}

use Kind::*;

/// Kea's standard DHCPv4 option definitions and dnsmasq's names (`dnsmasq --help dhcp`).
const DEFS: &[Def] = &[
    d(1, "subnet-mask", "netmask", Ip),
    d(2, "time-offset", "time-offset", I32),
    d(3, "routers", "router", IpList),
    d(4, "time-servers", "", IpList),
    d(5, "name-servers", "", IpList),
    d(6, "domain-name-servers", "dns-server", IpList),
    d(7, "log-servers", "log-server", IpList),
    d(8, "cookie-servers", "", IpList),
    d(9, "lpr-servers", "lpr-server", IpList),
    d(10, "impress-servers", "", IpList),
    d(11, "resource-location-servers", "", IpList),
    d(12, "host-name", "hostname", Str),
    d(13, "boot-size", "boot-file-size", U16),
    d(14, "merit-dump", "", Str),
    d(15, "domain-name", "domain-name", Str),
    d(16, "swap-server", "swap-server", Ip),
    d(17, "root-path", "root-path", Str),
    d(18, "extensions-path", "extension-path", Str),
    d(19, "ip-forwarding", "ip-forward-enable", Bool),
    d(
        20,
        "non-local-source-routing",
        "non-local-source-routing",
        Bool,
    ),
    d(21, "policy-filter", "policy-filter", IpList),
    d(22, "max-dgram-reassembly", "max-datagram-reassembly", U16),
    d(23, "default-ip-ttl", "default-ttl", U8),
    d(24, "path-mtu-aging-timeout", "", U32),
    d(26, "interface-mtu", "mtu", U16),
    d(27, "all-subnets-local", "all-subnets-local", Bool),
    d(28, "broadcast-address", "broadcast", Ip),
    d(29, "perform-mask-discovery", "", Bool),
    d(30, "mask-supplier", "", Bool),
    d(31, "router-discovery", "router-discovery", Bool),
    d(32, "router-solicitation-address", "router-solicitation", Ip),
    d(33, "static-routes", "static-route", IpList),
    d(34, "trailer-encapsulation", "trailer-encapsulation", Bool),
    d(35, "arp-cache-timeout", "arp-timeout", U32),
    d(36, "ieee802-3-encapsulation", "ethernet-encap", Bool),
    d(37, "default-tcp-ttl", "tcp-ttl", U8),
    d(38, "tcp-keepalive-interval", "tcp-keepalive", U32),
    d(39, "tcp-keepalive-garbage", "", Bool),
    d(40, "nis-domain", "nis-domain", Str),
    d(41, "nis-servers", "nis-server", IpList),
    d(42, "ntp-servers", "ntp-server", IpList),
    d(43, "vendor-encapsulated-options", "vendor-encap", Binary),
    d(44, "netbios-name-servers", "netbios-ns", IpList),
    d(45, "netbios-dd-server", "netbios-dd", IpList),
    d(46, "netbios-node-type", "netbios-nodetype", U8),
    d(47, "netbios-scope", "netbios-scope", Str),
    d(48, "font-servers", "x-windows-fs", IpList),
    d(49, "x-display-manager", "x-windows-dm", IpList),
    d(50, "dhcp-requested-address", "", Ip),
    d(51, "dhcp-lease-time", "", U32),
    d(52, "dhcp-option-overload", "", U8),
    d(53, "dhcp-message-type", "", U8),
    d(54, "dhcp-server-identifier", "", Ip),
    d(55, "dhcp-parameter-request-list", "", Binary),
    d(56, "dhcp-message", "", Str),
    d(57, "dhcp-max-message-size", "", U16),
    d(58, "dhcp-renewal-time", "T1", U32),
    d(59, "dhcp-rebinding-time", "T2", U32),
    d(60, "vendor-class-identifier", "vendor-class", Str),
    d(61, "dhcp-client-identifier", "", Binary),
    d(62, "nwip-domain-name", "", Str),
    d(64, "nisplus-domain-name", "nis+-domain", Str),
    d(65, "nisplus-servers", "nis+-server", IpList),
    d(66, "tftp-server-name", "tftp-server", Str),
    d(67, "boot-file-name", "bootfile-name", Str),
    d(68, "mobile-ip-home-agent", "mobile-ip-home", IpList),
    d(69, "smtp-server", "smtp-server", IpList),
    d(70, "pop-server", "pop3-server", IpList),
    d(71, "nntp-server", "nntp-server", IpList),
    d(72, "www-server", "", IpList),
    d(73, "finger-server", "", IpList),
    d(74, "irc-server", "irc-server", IpList),
    d(75, "streettalk-server", "", IpList),
    d(76, "streettalk-directory-assistance-server", "", IpList),
    d(100, "pcode", "posix-timezone", Str),
    d(101, "tcode", "tzdb-timezone", Str),
    d(108, "v6-only-preferred", "ipv6-only", U32),
    d(114, "v4-captive-portal", "", Str),
    d(119, "domain-search", "domain-search", Str),
    d(
        121,
        "classless-static-route",
        "classless-static-route",
        Routes,
    ),
    d(82, "dhcp-agent-options", "", Binary),
    d(150, "", "tftp-server-address", IpList),
    d(249, "", "", Routes),
    d(252, "", "", Str),
];

/// Codes leased sets itself: never accepted from a config.
const OWN_CODES: &[u8] = &[0, 50, 51, 52, 53, 54, 55, 57, 58, 59, 61, 82, 255];

/// The definition of `code`.
pub(crate) fn by_code(code: u8) -> Option<&'static Def> {
    DEFS.iter().find(|x| x.code == code)
}

/// The definition Kea names `name`.
pub(crate) fn by_kea_name(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|x| !x.kea.is_empty() && x.kea == name)
}

/// The definition dnsmasq names `name` (after `option:`).
pub(crate) fn by_dnsmasq_name(name: &str) -> Option<&'static Def> {
    DEFS.iter()
        .find(|x| !x.dnsmasq.is_empty() && x.dnsmasq == name)
}

/// An option's value as a source writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    /// Values in text, already split at the source's separators.
    Values(Vec<String>),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

/// What setting an option did beyond the option table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placed {
    /// Written into the table.
    Set,
    /// Option 3: the caller puts these on the subnet.
    Routers(Vec<Ipv4Addr>),
    /// Option 12: the caller makes it the reservation's `hostname` (or an `extra` elsewhere).
    Hostname(String),
    /// Option 1: derived from the subnet by leased; the caller compares.
    Mask(Ipv4Addr),
}

/// Decodes hex in the usual spellings (`0a:0b`, `0a 0b`, `0a-0b`, `0a0b`, `0x0a0b`).
pub(crate) fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: String = t
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-' | ','))
        .collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    (0..digits.len() / 2)
        .map(|i| u8::from_str_radix(digits.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect()
}

/// Bytes as `0a:0b:…`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ip(s: &str) -> Result<Ipv4Addr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{:?} is not an IPv4 address", s.trim()))
}

fn ips(values: &[String]) -> Result<Vec<Ipv4Addr>, String> {
    let v: Vec<Ipv4Addr> = values
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| ip(s))
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err("no address given".into());
    }
    Ok(v)
}

fn strings(v: &[Ipv4Addr]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn number(values: &[String], max: u64) -> Result<u64, String> {
    let [one] = values else {
        return Err("expected one number".into());
    };
    let n: u64 = one
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a number", one.trim()))?;
    if n > max {
        return Err(format!("{n} is out of range (at most {max})"));
    }
    Ok(n)
}

/// Parses classless routes written `net/len - gw` (Kea) or as `net/len,gw` pairs (dnsmasq).
pub(crate) fn parse_routes(values: &[String]) -> Result<Vec<Route>, String> {
    let items: Vec<&str> = values
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let item = items[i];
        let (dest, gw) = if let Some((a, b)) = item.split_once(" - ") {
            i += 1;
            (a.trim(), b.trim())
        } else {
            let gw = items
                .get(i + 1)
                .ok_or_else(|| format!("route {item:?} has no gateway"))?;
            i += 2;
            (item, *gw)
        };
        let net: ipnet::Ipv4Net = dest
            .parse()
            .map_err(|_| format!("{dest:?} is not a network/prefix"))?;
        ip(gw)?;
        out.push(Route {
            destination: net.to_string(),
            gateway: gw.to_string(),
        });
    }
    if out.is_empty() {
        return Err("no route given".into());
    }
    Ok(out)
}

fn push_extra(opts: &mut Opts, code: u8, kind: &'static str, value: toml::Value) {
    opts.extra.retain(|e| e.code != code);
    opts.extra.push(Extra { code, kind, value });
}

fn set_hex(opts: &mut Opts, code: u8, bytes: &[u8]) {
    push_extra(opts, code, "hex", toml::Value::String(hex(bytes)));
}

/// Puts option `code` with `data` into `opts` (`kind` when the source defines its own type for
/// the code, else the standard one). An error says why it does not map.
pub(crate) fn set(
    opts: &mut Opts,
    code: u8,
    kind: Option<Kind>,
    data: &Data,
) -> Result<Placed, String> {
    if OWN_CODES.contains(&code) {
        return Err(format!(
            "option {code} is set by leased itself (lease times come from lease_time)"
        ));
    }
    let kind = kind.or_else(|| by_code(code).map(|x| x.kind));
    let values = match data {
        Data::Bytes(b) => {
            if b.is_empty() {
                return Err("empty value".into());
            }
            match code {
                43 => opts.vendor_specific = Some(hex(b)),
                _ => set_hex(opts, code, b),
            }
            return Ok(Placed::Set);
        }
        Data::Values(v) => v,
    };
    let Some(kind) = kind else {
        return Err(format!(
            "option {code} has no known type; give its value as hex to import it"
        ));
    };
    let joined = values.join(",");
    match (code, kind) {
        (1, _) => return Ok(Placed::Mask(ip(&joined)?)),
        (3, _) => return Ok(Placed::Routers(ips(values)?)),
        (12, _) => {
            if joined.trim().is_empty() {
                return Err("empty host name".into());
            }
            return Ok(Placed::Hostname(joined.trim().to_string()));
        }
        (6, _) => opts.dns = strings(&ips(values)?),
        (42, _) => opts.ntp = strings(&ips(values)?),
        (44, _) => opts.wins = strings(&ips(values)?),
        (15, _) => opts.domain_name = Some(non_empty(&joined)?),
        (119, _) => {
            let names: Vec<String> = values
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if names.is_empty() {
                return Err("empty search list".into());
            }
            opts.domain_search = names;
        }
        (26, _) => opts.mtu = Some(i64::try_from(number(values, 65_535)?).unwrap_or(0)),
        (66, _) => opts.tftp_server = Some(non_empty(&joined)?),
        (67, _) => opts.bootfile = Some(non_empty(&joined)?),
        (252, _) => opts.wpad_url = Some(non_empty(&joined)?),
        (121, _) => opts.static_routes = parse_routes(values)?,
        (249, _) => {
            let routes = parse_routes(values)?;
            if routes == opts.static_routes {
                opts.mirror_routes_to_249 = Some(true);
            } else {
                set_hex(opts, 249, &encode_routes(&routes)?);
            }
        }
        (43, _) => {
            return Err("vendor-encapsulated options map only as hex data".into());
        }
        (_, Kind::Ip) => push_extra(
            opts,
            code,
            "ip",
            toml::Value::String(ip(&joined)?.to_string()),
        ),
        (_, Kind::IpList) => push_extra(
            opts,
            code,
            "ip_list",
            toml::Value::Array(
                strings(&ips(values)?)
                    .into_iter()
                    .map(toml::Value::String)
                    .collect(),
            ),
        ),
        (_, Kind::U8 | Kind::U16 | Kind::U32) => {
            let (name, max) = match kind {
                Kind::U8 => ("u8", u64::from(u8::MAX)),
                Kind::U16 => ("u16", u64::from(u16::MAX)),
                _ => ("u32", u64::from(u32::MAX)),
            };
            let n = number(values, max)?;
            push_extra(
                opts,
                code,
                name,
                toml::Value::Integer(i64::try_from(n).unwrap_or(0)),
            );
        }
        (_, Kind::I32) => {
            let [one] = values.as_slice() else {
                return Err("expected one number".into());
            };
            let n: i32 = one
                .trim()
                .parse()
                .map_err(|_| format!("{:?} is not a 32-bit number", one.trim()))?;
            set_hex(opts, code, &n.to_be_bytes());
        }
        (_, Kind::Bool) => {
            let b = match joined.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" => true,
                "false" | "0" | "off" | "no" => false,
                other => return Err(format!("{other:?} is not a boolean")),
            };
            push_extra(opts, code, "bool", toml::Value::Boolean(b));
        }
        (_, Kind::Str) => push_extra(
            opts,
            code,
            "string",
            toml::Value::String(non_empty(&joined)?),
        ),
        (_, Kind::Binary) => match parse_hex(&joined) {
            Some(b) => set_hex(opts, code, &b),
            None => return Err("opaque option: only hex data maps".into()),
        },
        (_, Kind::Routes) => set_hex(opts, code, &encode_routes(&parse_routes(values)?)?),
    }
    Ok(Placed::Set)
}

fn non_empty(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty value".into());
    }
    Ok(t.to_string())
}

/// RFC 3442 encoding of routes (for option 249 when it is not a copy of 121).
fn encode_routes(routes: &[Route]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for r in routes {
        let net: ipnet::Ipv4Net = r
            .destination
            .parse()
            .map_err(|_| format!("{:?} is not a network", r.destination))?;
        let len = net.prefix_len();
        out.push(len);
        let significant = usize::from(len.div_ceil(8));
        out.extend_from_slice(
            net.network()
                .octets()
                .get(..significant)
                .unwrap_or_default(),
        );
        out.extend_from_slice(&ip(&r.gateway)?.octets());
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vals(v: &[&str]) -> Data {
        Data::Values(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn named_typed_and_raw() {
        let mut o = Opts::default();
        assert_eq!(
            set(&mut o, 6, None, &vals(&["198.18.0.53", " 198.18.0.54"])),
            Ok(Placed::Set)
        );
        assert_eq!(o.dns, ["198.18.0.53", "198.18.0.54"]);
        set(&mut o, 23, None, &vals(&["64"])).unwrap();
        set(&mut o, 2, None, &vals(&["-3600"])).unwrap();
        set(&mut o, 224, None, &Data::Bytes(vec![1, 2])).unwrap();
        let kinds: Vec<(u8, &str)> = o.extra.iter().map(|e| (e.code, e.kind)).collect();
        assert_eq!(kinds, [(23, "u8"), (2, "hex"), (224, "hex")]);
        assert_eq!(o.extra[1].value.as_str(), Some("ff:ff:f1:f0"));
        assert_eq!(
            set(&mut o, 3, None, &vals(&["198.18.0.1"])),
            Ok(Placed::Routers(vec![Ipv4Addr::new(198, 18, 0, 1)]))
        );
        assert!(set(&mut o, 51, None, &vals(&["3600"])).is_err());
        assert!(set(&mut o, 200, None, &vals(&["x"])).is_err());
        assert!(set(&mut o, 6, None, &vals(&["nope"])).is_err());
    }

    #[test]
    fn routes_both_spellings() {
        let k = parse_routes(&[
            "10.0.0.0/8 - 198.18.0.1".into(),
            "0.0.0.0/0 - 198.18.0.1".into(),
        ])
        .unwrap();
        let d = parse_routes(&[
            "10.0.0.0/8".into(),
            "198.18.0.1".into(),
            "0.0.0.0/0".into(),
            "198.18.0.1".into(),
        ])
        .unwrap();
        assert_eq!(k, d);
        assert_eq!(
            encode_routes(&k).unwrap(),
            [8, 10, 198, 18, 0, 1, 0, 198, 18, 0, 1]
        );
    }

    #[test]
    fn hex_spellings() {
        for s in ["01:02:ff", "01 02 ff", "0102ff", "0x0102FF", "01-02-ff"] {
            assert_eq!(parse_hex(s), Some(vec![1, 2, 255]), "{s}");
        }
        assert_eq!(parse_hex("012"), None);
        assert_eq!(parse_hex(""), None);
    }
}
