//! dhcplane: its strict JSON config (one subnet: pools, exclusions, reservations with
//! metadata, banned MACs, device overrides, class overrides, detection settings), its
//! reservations file, and its lease DB (`{"ByIP": {…}, "ByMAC": {…}}`).
//!
//! leased's schema was modelled on dhcplane's (see `docs/config.md`, "Differences from
//! dhcplane"), so most keys have a direct counterpart; every other key is listed.

use std::fmt;
use std::io::Read;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::options;
use crate::{
    ArpWatchPart, ClassPart, Expiry, Extra, ImportError, Imported, LeaseRecord, MatchPart,
    MetaPart, Opts, RecordState, ReservationPart, RoguePart, Route, SubnetPart, Unmapped,
};

/// What [`import_config`] found beside the config itself.
#[derive(Debug, Clone, Default)]
pub struct DhcplaneConfig {
    /// The leased config and the list of what does not map.
    pub imported: Imported,
    /// `lease_db_path`, when set.
    pub lease_file: Option<String>,
    /// `reservations_path`, when set (dhcplane's default is `dhcplane.reservations` beside
    /// the config).
    pub reservations_file: Option<String>,
}

/// dhcplane's default lease and sticky time.
const DAY: u64 = 86_400;

fn reason(key: &str) -> &'static str {
    match key {
        "compact_on_load" => {
            "leased compacts its journal by itself and keeps ended leases for sticky_window"
        }
        "equipment_types" | "management_types" => {
            "leased keeps any equipment_type/management_type without a list of allowed values"
        }
        "console_max_lines" | "console_tcp_address" => {
            "leased's console is configured in [console] (replay, tcp_listen with an API key)"
        }
        "logging" => "leased logs to stderr as set in [logging]; rotation is the service manager's",
        "hostname_12" => {
            "leased sends option 12 only from a reservation's hostname (dhcplane sent it to \
             clients that sent none)"
        }
        "max_dhcp_message_size_57" => "option 57 is the client's; leased sizes replies itself",
        _ => "not a dhcplane key (dhcplane itself refuses unknown keys)",
    }
}

struct Obj<'a> {
    map: &'a Map<String, Value>,
    used: Vec<&'a str>,
    path: String,
}

impl<'a> Obj<'a> {
    fn get(&mut self, k: &'a str) -> Option<&'a Value> {
        let (key, v) = self.map.get_key_value(k)?;
        self.used.push(key.as_str());
        Some(v).filter(|v| !v.is_null())
    }

    fn str(&mut self, k: &'a str) -> Option<&'a str> {
        self.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    fn strs(&mut self, k: &'a str) -> Vec<String> {
        self.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn finish(self, notes: &mut Vec<Unmapped>) {
        for k in self.map.keys() {
            if !self.used.contains(&k.as_str()) {
                let at = if self.path.is_empty() {
                    k.clone()
                } else {
                    format!("{}.{k}", self.path)
                };
                notes.push(Unmapped::new(at, reason(k)));
            }
        }
    }
}

fn obj<'a>(v: &'a Value, path: &str) -> Option<Obj<'a>> {
    v.as_object().map(|map| Obj {
        map,
        used: Vec::new(),
        path: path.to_string(),
    })
}

/// dhcplane's `vendor_specific_43_hex` spellings (`01:04:…`, `hex:0104`, `0x01,0x04`).
fn hex43(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t.strip_prefix("hex:").unwrap_or(t);
    let digits: String = t
        .split([',', ' ', ':', '-'])
        .map(|p| p.trim().trim_start_matches("0x").trim_start_matches("0X"))
        .collect();
    options::parse_hex(&digits).map(|b| options::hex(&b))
}

/// Device options (`dns`, `tftp_server_name`, `bootfile_name`) as leased options.
fn device_opts(v: &Value, path: &str, notes: &mut Vec<Unmapped>) -> Opts {
    let mut o = Opts::default();
    let Some(mut x) = obj(v, path) else {
        notes.push(Unmapped::new(path, "expected an object"));
        return o;
    };
    o.dns = x.strs("dns");
    o.tftp_server = x.str("tftp_server_name").map(str::to_string);
    o.bootfile = x.str("bootfile_name").map(str::to_string);
    x.finish(notes);
    o
}

fn meta(x: &mut Obj<'_>) -> MetaPart {
    MetaPart {
        note: x.str("note").map(str::to_string),
        equipment_type: x.str("equipment_type").map(str::to_string),
        manufacturer: x.str("manufacturer").map(str::to_string),
        management_type: x.str("management_type").map(str::to_string),
        management_interface: x.str("management_interface").map(str::to_string),
        first_seen: x
            .get("first_seen")
            .and_then(Value::as_i64)
            .filter(|t| *t > 0),
    }
}

/// Reservations keyed by MAC: `{mac: {ip, note, …}}` or the legacy `{mac: "ip"}`.
fn reservations(v: &Value, path: &str, notes: &mut Vec<Unmapped>) -> Vec<ReservationPart> {
    let mut out = Vec::new();
    let Some(map) = v.as_object() else {
        notes.push(Unmapped::new(path, "expected an object keyed by MAC"));
        return out;
    };
    for (mac, r) in map {
        let at = format!("{path}.{mac}");
        let mut res = ReservationPart {
            origin: at.clone(),
            mac: Some(mac.clone()),
            ..ReservationPart::default()
        };
        match r {
            Value::String(ip) => res.ip = ip.clone(),
            Value::Object(_) => {
                let Some(mut x) = obj(r, &at) else { continue };
                res.ip = x.str("ip").unwrap_or_default().to_string();
                res.meta = meta(&mut x);
                x.finish(notes);
            }
            _ => {
                notes.push(Unmapped::new(at, "expected an address or an object"));
                continue;
            }
        }
        if res.ip.is_empty() {
            notes.push(Unmapped::new(at, "no ip: not a reservation"));
            continue;
        }
        out.push(res);
    }
    out
}

/// Reads a dhcplane config; `reservations` is the text of its reservations file, when there
/// is one (newer dhcplane keeps them there).
pub fn import_config(
    text: &str,
    reservations_text: Option<&str>,
) -> Result<DhcplaneConfig, ImportError> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| ImportError::Source(format!("{}:{}: {e}", e.line(), e.column())))?;
    let Some(mut c) = obj(&root, "") else {
        return Err(ImportError::Source(
            "the config is not a JSON object".into(),
        ));
    };
    let mut notes = Vec::new();
    let mut out = DhcplaneConfig::default();
    let cfg = &mut out.imported.config;
    let Some(cidr) = c.str("subnet_cidr") else {
        return Err(ImportError::Source("no subnet_cidr".into()));
    };
    let network: Ipv4Net = cidr
        .parse()
        .map_err(|_| ImportError::Source(format!("subnet_cidr {cidr:?} is not a network")))?;
    let iface = c.str("interface").map(str::to_string);
    if let Some(i) = &iface {
        cfg.server.interfaces.push(i.clone());
    }
    let mut subnet = SubnetPart {
        origin: "subnet_cidr".into(),
        network: network.trunc().to_string(),
        interface: iface,
        server_id: c.str("server_ip").map(str::to_string),
        ..SubnetPart::default()
    };
    if let Some(gw) = c.str("gateway") {
        subnet.routers.push(gw.to_string());
    }
    for (i, p) in c
        .get("pools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match (
            p.get("start").and_then(Value::as_str),
            p.get("end").and_then(Value::as_str),
        ) {
            (Some(a), Some(b)) => subnet.pools.push(format!("{a}-{b}")),
            _ => notes.push(Unmapped::new(format!("pools[{i}]"), "needs start and end")),
        }
    }
    subnet.exclusions = c.strs("exclusions");
    cfg.server.authoritative = Some(
        c.get("authoritative")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    );
    let secs = |v: Option<&Value>| {
        v.and_then(Value::as_i64)
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .unwrap_or(DAY)
    };
    cfg.server.lease_time = Some(secs(c.get("lease_seconds")));
    cfg.server.sticky_window = Some(secs(c.get("lease_sticky_seconds")));
    cfg.server.auto_reload = c.get("auto_reload").and_then(Value::as_bool);
    cfg.server.pid_file = c.str("pid_file").map(str::to_string);
    out.lease_file = c.str("lease_db_path").map(str::to_string);
    out.reservations_file = c.str("reservations_path").map(str::to_string);
    // Options of the one subnet are the global ones.
    let o = &mut cfg.options;
    o.dns = c.strs("dns");
    o.domain_name = c.str("domain").map(str::to_string);
    o.ntp = c.strs("ntp");
    o.mtu = c.get("mtu").and_then(Value::as_i64).filter(|m| *m > 0);
    o.tftp_server = c.str("tftp_server_name").map(str::to_string);
    o.bootfile = c.str("bootfile_name").map(str::to_string);
    o.wpad_url = c.str("wpad_url").map(str::to_string);
    o.wins = c.strs("wins");
    o.domain_search = c.strs("domain_search");
    for (i, r) in c
        .get("static_routes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match (
            r.get("cidr").and_then(Value::as_str),
            r.get("gateway").and_then(Value::as_str),
        ) {
            (Some(d), Some(g)) => o.static_routes.push(Route {
                destination: d.to_string(),
                gateway: g.to_string(),
            }),
            _ => notes.push(Unmapped::new(
                format!("static_routes[{i}]"),
                "needs cidr and gateway",
            )),
        }
    }
    if c.get("mirror_routes_to_249").and_then(Value::as_bool) == Some(true) {
        o.mirror_routes_to_249 = Some(true);
    }
    if let Some(h) = c.str("vendor_specific_43_hex") {
        match hex43(h) {
            Some(x) => o.vendor_specific = Some(x),
            None => notes.push(Unmapped::new(
                "vendor_specific_43_hex",
                format!("{h:?} is not hex"),
            )),
        }
    }
    // The extra option keys of later dhcplane versions.
    if let Some(v) = c.get("enable_broadcast_28").and_then(Value::as_bool)
        && !v
    {
        notes.push(Unmapped::new(
            "enable_broadcast_28",
            "leased always sends option 28 (the subnet's broadcast address)",
        ));
    }
    if c.get("use_classful_routes_33").and_then(Value::as_bool) == Some(true) {
        let mut list = Vec::new();
        for r in c
            .get("routes_33")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let (Some(d), Some(g)) = (
                r.get("destination").and_then(Value::as_str),
                r.get("gateway").and_then(Value::as_str),
            ) {
                list.push(toml::Value::String(d.to_string()));
                list.push(toml::Value::String(g.to_string()));
            }
        }
        if !list.is_empty() {
            o.extra.push(Extra {
                code: 33,
                kind: "ip_list",
                value: toml::Value::Array(list),
            });
        }
    } else {
        c.get("routes_33");
    }
    if let Some(n) = c
        .get("netbios_node_type_46")
        .and_then(Value::as_i64)
        .filter(|n| *n > 0)
    {
        o.extra.push(Extra {
            code: 46,
            kind: "u8",
            value: toml::Value::Integer(n),
        });
    }
    if let Some(s) = c.str("netbios_scope_id_47") {
        o.extra.push(Extra {
            code: 47,
            kind: "string",
            value: toml::Value::String(s.to_string()),
        });
    }
    let tftp150 = c.strs("tftp_servers_150");
    if !tftp150.is_empty() {
        o.extra.push(Extra {
            code: 150,
            kind: "ip_list",
            value: toml::Value::Array(tftp150.into_iter().map(toml::Value::String).collect()),
        });
    }
    if c.get("echo_relay_agent_info_82").and_then(Value::as_bool) == Some(false) {
        notes.push(Unmapped::new(
            "echo_relay_agent_info_82",
            "leased always echoes Option 82 to relays (RFC 3046)",
        ));
    }
    cfg.subnets.push(subnet);
    // Reservations: in the config (legacy) and/or the reservations file.
    if let Some(r) = c.get("reservations") {
        cfg.reservations = reservations(r, "reservations", &mut notes);
    }
    if let Some(text) = reservations_text {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            ImportError::Source(format!(
                "reservations file {}:{}: {e}",
                e.line(),
                e.column()
            ))
        })?;
        for r in reservations(&v, "reservations file", &mut notes) {
            // The file wins over the legacy key for the same MAC, as dhcplane merges them.
            cfg.reservations.retain(|x| x.mac != r.mac);
            cfg.reservations.push(r);
        }
    }
    if let Some(d) = c.get("device_overrides").and_then(Value::as_object) {
        for (mac, v) in d {
            let opts = device_opts(v, &format!("device_overrides.{mac}"), &mut notes);
            if !opts.is_empty() {
                cfg.device_overrides.insert(mac.clone(), opts);
            }
        }
    }
    if let Some(b) = c.get("banned_macs").and_then(Value::as_object) {
        for (mac, v) in b {
            let m = match obj(v, &format!("banned_macs.{mac}")) {
                Some(mut x) => {
                    let m = meta(&mut x);
                    x.finish(&mut notes);
                    m
                }
                None => MetaPart::default(),
            };
            cfg.banned_macs.insert(mac.clone(), m);
        }
    }
    for (key, field) in [
        ("vendor_class_overrides", "vendor_class"),
        ("user_class_overrides_77", "user_class"),
    ] {
        let Some(map) = c.get(key).and_then(Value::as_object) else {
            continue;
        };
        for (name, v) in map {
            let path = format!("{key}.{name}");
            if name.contains(['*', '?']) {
                notes.push(Unmapped::new(
                    path,
                    "a class string with * or ? would be a glob in leased; not mapped",
                ));
                continue;
            }
            let options = device_opts(v, &path, &mut notes);
            let matcher = if field == "vendor_class" {
                MatchPart {
                    vendor_class: Some(name.clone()),
                    ..MatchPart::default()
                }
            } else {
                MatchPart {
                    user_class: Some(name.clone()),
                    ..MatchPart::default()
                }
            };
            cfg.classes.push(ClassPart {
                origin: path,
                name: format!("{field}-{name}"),
                matcher,
                pool: None,
                options,
            });
        }
    }
    if cfg.classes.len() > 1 {
        notes.push(Unmapped::new(
            "vendor_class_overrides / user_class_overrides_77",
            "a client matching several gets only the first class's options in leased \
             (dhcplane applies vendor, then user class overrides)",
        ));
    }
    if let Some(d) = c.get("detect_dhcp_servers")
        && let Some(mut x) = obj(d, "detect_dhcp_servers")
    {
        let mut r = RoguePart {
            enabled: x.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            whitelist: x.strs("whitelist_servers"),
            log_per_minute: x
                .get("rate_limit")
                .and_then(Value::as_i64)
                .filter(|n| *n > 0),
            probe_interval: None,
        };
        let probe = x.str("active_probe").unwrap_or("off");
        if probe != "off" {
            r.probe_interval = Some(
                x.get("probe_interval")
                    .and_then(Value::as_u64)
                    .unwrap_or(600)
                    .max(60),
            );
        } else {
            x.get("probe_interval");
        }
        if x.get("first_scan").is_some() {
            notes.push(Unmapped::new(
                "detect_dhcp_servers.first_scan",
                "leased watches passively from the start",
            ));
        }
        x.finish(&mut notes);
        cfg.rogue_servers = Some(r);
    }
    if let Some(a) = c.get("arp_anomaly_detection")
        && let Some(mut x) = obj(a, "arp_anomaly_detection")
    {
        let enabled = x.get("enabled").and_then(Value::as_bool).unwrap_or(false);
        let interval = x
            .get("probe_interval")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0);
        if x.get("first_scan").is_some() {
            notes.push(Unmapped::new(
                "arp_anomaly_detection.first_scan",
                "leased's first scan comes one interval after start",
            ));
        }
        x.finish(&mut notes);
        // dhcplane pings every pool address on each scan: leased's ARP probing does that job.
        cfg.arp_watch = Some(ArpWatchPart {
            enabled,
            interval: Some(interval.unwrap_or(1800)),
            probe: Some(true),
        });
    }
    c.finish(&mut notes);
    out.imported.unmapped = notes;
    Ok(out)
}

/// One lease of dhcplane's DB.
#[derive(Debug, Deserialize)]
struct RawLease {
    #[serde(default)]
    mac: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    allocated_at: Option<Value>,
    #[serde(default)]
    expiry: Option<Value>,
    #[serde(default)]
    first_seen: Option<Value>,
}

/// What reading a dhcplane lease DB saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseDbStats {
    /// Entries given to the sink.
    pub entries: u64,
    /// Entries skipped as malformed, with the first few reasons.
    pub skipped: u64,
    /// Up to ten reasons, for the summary.
    pub problems: Vec<String>,
}

/// Epoch seconds, or an RFC 3339 time (older dhcplane versions), or `None`.
fn time(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => rfc3339(s),
        _ => None,
    }
    .filter(|t| *t > 0)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to unix seconds.
fn rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(10).is_none_or(|c| !matches!(c, b'T' | b't' | b' '))
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.chars().take_while(char::is_ascii_digit).count();
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(t).ok()
}

fn record(raw: RawLease) -> Result<LeaseRecord, String> {
    let ip: Ipv4Addr = raw
        .ip
        .parse()
        .map_err(|_| format!("{:?} is not an IPv4 address", raw.ip))?;
    let hw = leased_core::HwAddr::parse_mac(&raw.mac)
        .ok_or_else(|| format!("{:?} is not a MAC", raw.mac))?;
    let expires = time(raw.expiry.as_ref()).ok_or("no expiry")?;
    Ok(LeaseRecord {
        ip,
        hwaddr: hw.0,
        client_id: None,
        hostname: raw.hostname.filter(|h| !h.is_empty()),
        starts: time(raw.allocated_at.as_ref()),
        expires: Expiry::At(expires),
        state: RecordState::Active,
        first_seen: time(raw.first_seen.as_ref()),
        circuit_id: None,
        remote_id: None,
    })
}

/// Reads a dhcplane lease DB from `reader` entry by entry (the file is never held whole),
/// giving each lease of `ByIP` (or, when that is absent, `ByMAC`) to `sink`. The key is
/// matched as Go does (case-insensitively), and the README's `by_ip` spelling is accepted too.
/// A `sink` error stops the read and is returned.
pub fn read_leases<R: Read>(
    reader: R,
    sink: &mut dyn FnMut(LeaseRecord) -> Result<(), String>,
) -> Result<LeaseDbStats, String> {
    let mut stats = LeaseDbStats::default();
    let mut de = serde_json::Deserializer::from_reader(reader);
    TopSeed {
        sink,
        stats: &mut stats,
    }
    .deserialize(&mut de)
    .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(stats)
}

struct TopSeed<'s> {
    sink: &'s mut dyn FnMut(LeaseRecord) -> Result<(), String>,
    stats: &'s mut LeaseDbStats,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dhcplane lease DB ({\"ByIP\": {…}, \"ByMAC\": {…}})")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut from_ip = false;
        while let Some(key) = map.next_key::<String>()? {
            let k = key.to_ascii_lowercase().replace('_', "");
            let take = match k.as_str() {
                "byip" => {
                    from_ip = true;
                    true
                }
                "bymac" => !from_ip && self.stats.entries == 0,
                _ => false,
            };
            if take {
                map.next_value_seed(EntriesSeed {
                    sink: &mut *self.sink,
                    stats: &mut *self.stats,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct EntriesSeed<'s> {
    sink: &'s mut dyn FnMut(LeaseRecord) -> Result<(), String>,
    stats: &'s mut LeaseDbStats,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("leases keyed by address or MAC")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let raw: Value = map.next_value()?;
            let parsed = serde_json::from_value::<RawLease>(raw)
                .map_err(|e| e.to_string())
                .and_then(record);
            match parsed {
                Ok(rec) => {
                    self.stats.entries += 1;
                    (self.sink)(rec).map_err(de::Error::custom)?;
                }
                Err(why) => {
                    self.stats.skipped += 1;
                    if self.stats.problems.len() < 10 {
                        self.stats.problems.push(format!("{key}: {why}"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("2024-09-05T15:46:40Z"), Some(1_725_551_200));
        assert_eq!(
            rfc3339("2024-09-05T17:46:40.123+02:00"),
            Some(1_725_551_200)
        );
        assert_eq!(rfc3339("yesterday"), None);
        assert_eq!(
            time(Some(&serde_json::json!(1725551111))),
            Some(1_725_551_111)
        );
        assert_eq!(time(Some(&serde_json::json!(0))), None);
    }

    #[test]
    fn hex_spellings() {
        for s in [
            "01:04:de:ad:be:ef",
            "01 04 de ad be ef",
            "hex:0104deadbeef",
            "0x01,0x04,0xDE,0xAD,0xBE,0xEF",
        ] {
            assert_eq!(hex43(s).as_deref(), Some("01:04:de:ad:be:ef"), "{s}");
        }
    }

    #[test]
    fn lease_db_streams_by_ip_only() {
        let db = r#"{"ByIP": {
            "198.18.0.100": {"mac": "AA:BB:CC:DD:EE:FF", "ip": "198.18.0.100", "hostname": "h",
                             "allocated_at": 1725551111, "expiry": "2024-09-05T15:46:40Z"},
            "198.18.0.101": {"mac": "nope", "ip": "198.18.0.101", "expiry": 5}
          },
          "ByMAC": {"aa:bb:cc:dd:ee:ff": {"mac": "aa:bb:cc:dd:ee:ff", "ip": "198.18.0.100", "expiry": 9}}}"#;
        let mut got = Vec::new();
        let stats = read_leases(db.as_bytes(), &mut |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(stats.entries, 1);
        assert_eq!(stats.skipped, 1);
        assert_eq!(got[0].expires, Expiry::At(1_725_551_200));
        assert_eq!(got[0].hwaddr, vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        // Only ByMAC (or the README's by_mac): used.
        let mut n = 0;
        read_leases(
            r#"{"by_mac": {"x": {"mac": "aa:bb:cc:dd:ee:ff", "ip": "198.18.0.9", "expiry": 9}}}"#
                .as_bytes(),
            &mut |_| {
                n += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(n, 1);
        assert!(read_leases("[1]".as_bytes(), &mut |_| Ok(())).is_err());
    }
}
