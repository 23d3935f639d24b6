//! The pure half of the SQL assignment chain and SQL history (pydhcpdb's feature, done safely):
//! parsing `:Name` placeholders out of query text, the variables a packet provides, and turning
//! a result row into an [`Assignment`].
//!
//! pydhcpdb spliced `{Name}` values into the SQL text, so a hostname such as
//! `x'); DROP TABLE users; --` was SQL. Here a template is split once, at config load, into
//! text and placeholders; the placeholders become the driver's own parameter markers (`$1`…
//! for PostgreSQL, `?` for MySQL) and every value is *bound*, never spliced. Nothing in the SQL
//! text ever comes from a packet.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use leased_wire::{Packet, code};

use crate::relay::{Extractor, RelayInfo, RelayKeys, to_hex};
use crate::request::Assignment;

/// The variables a packet can provide, under pydhcpdb's names (ROADMAP.md). Values are text:
/// MACs and Option 82 fields as bare lowercase hex (pydhcpdb's form, e.g. `080027059ed0`),
/// addresses dotted. A field the packet lacks (no option 12, 60 or 82, no circuit-id, …) is
/// bound as SQL NULL, which no `=` matches: pydhcpdb left such a `{Name}` unreplaced, so its
/// query matched nothing, and binding `''` instead would let a row with an empty `mac` or
/// `port` match every unrelayed client. `RequestedIpAddress`, `ciaddr` and `giaddr` are always
/// there (`0.0.0.0` when unset, as in pydhcpdb).
pub const BUILTIN_VARS: [&str; 11] = [
    "ClientMacAddress",
    "RequestedIpAddress",
    "HostName",
    "Vendor",
    "giaddr",
    "ciaddr",
    "chaddr",
    "option_82_hex",
    "option_82_AgentCircuitId_hex",
    "option_82_AgentCircuitId_port_hex",
    "option_82_AgentRemoteId_hex",
];

/// Variables only a history INSERT has (they describe the lease event, not the packet).
pub const HISTORY_VARS: [&str; 4] = ["IpAddress", "Event", "ClientId", "Time"];

/// How a driver writes parameter markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// PostgreSQL (and CockroachDB, YugabyteDB): `$1`, `$2`, … in order.
    Numbered,
    /// MySQL/MariaDB: `?` for each.
    Question,
}

/// A query with its `:Name` placeholders taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTemplate {
    /// Text pieces; a placeholder sits between each two (`pieces.len() == names.len() + 1`).
    pieces: Vec<String>,
    /// The variable of each placeholder, in order (repeats allowed).
    pub names: Vec<String>,
    /// Byte offset in the original text of each placeholder's `:`, for error positions.
    pub offsets: Vec<usize>,
}

impl SqlTemplate {
    /// Splits `sql` at its `:Name` placeholders (`Name` = `[A-Za-z_][A-Za-z0-9_]*`).
    ///
    /// Not placeholders: anything inside '…' strings (with '' and \' escapes), "…" and `…`
    /// quoted identifiers, `--` and `/* */` comments, and PostgreSQL's `::type` casts. A `?`
    /// or `$1` already in the text is refused: mixing the driver's own markers with ours
    /// would bind values to the wrong places.
    pub fn parse(sql: &str) -> Result<Self, String> {
        let b = sql.as_bytes();
        let mut pieces = Vec::new();
        let mut names = Vec::new();
        let mut offsets = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < b.len() {
            match b.get(i).copied().unwrap_or(0) {
                q @ (b'\'' | b'"' | b'`') => {
                    i += 1;
                    loop {
                        match b.get(i).copied() {
                            None => return Err(format!("unterminated {} quote", q as char)),
                            Some(b'\\') if q == b'\'' => i += 2,
                            Some(c) if c == q => {
                                if b.get(i + 1) == Some(&q) {
                                    i += 2;
                                } else {
                                    i += 1;
                                    break;
                                }
                            }
                            Some(_) => i += 1,
                        }
                    }
                }
                b'-' if b.get(i + 1) == Some(&b'-') => {
                    while i < b.len() && b.get(i) != Some(&b'\n') {
                        i += 1;
                    }
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    i += 2;
                    while i < b.len() && !(b.get(i) == Some(&b'*') && b.get(i + 1) == Some(&b'/')) {
                        i += 1;
                    }
                    i += 2;
                }
                b':' if b.get(i + 1) == Some(&b':') => i += 2,
                b':' if b
                    .get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
                {
                    let name_start = i + 1;
                    let mut j = name_start;
                    while b
                        .get(j)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    {
                        j += 1;
                    }
                    pieces.push(sql.get(start..i).unwrap_or_default().to_string());
                    names.push(sql.get(name_start..j).unwrap_or_default().to_string());
                    offsets.push(i);
                    start = j;
                    i = j;
                }
                b'?' => {
                    return Err(
                        "use :Name placeholders, not ? (values are bound by name)".to_string()
                    );
                }
                b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                    return Err(
                        "use :Name placeholders, not $1 (values are bound by name)".to_string()
                    );
                }
                _ => i += 1,
            }
        }
        pieces.push(sql.get(start..).unwrap_or_default().to_string());
        Ok(Self {
            pieces,
            names,
            offsets,
        })
    }

    /// The SQL text for a driver: each placeholder replaced by its parameter marker. Bind
    /// [`SqlTemplate::names`]' values in order.
    pub fn render(&self, style: Placeholders) -> String {
        let mut out = String::new();
        for (i, piece) in self.pieces.iter().enumerate() {
            out.push_str(piece);
            if i + 1 < self.pieces.len() {
                match style {
                    Placeholders::Numbered => out.push_str(&format!("${}", i + 1)),
                    Placeholders::Question => out.push('?'),
                }
            }
        }
        out
    }

    /// The values to bind, in marker order; a variable missing from `vars` (the packet lacks
    /// the field) is `None`, bound as SQL NULL.
    pub fn values<'a>(&self, vars: &'a BTreeMap<String, String>) -> Vec<Option<&'a str>> {
        self.names
            .iter()
            .map(|n| vars.get(n).map(String::as_str))
            .collect()
    }
}

fn dotted(ip: Ipv4Addr) -> String {
    ip.to_string()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// The variables of one packet: those of [`BUILTIN_VARS`] the packet has, plus each named
/// slice in `slices` (pydhcpdb's `src:dst:start:end`, rendered as hex, clamped like a Python
/// slice: [`Extractor::variable`]). A variable the packet lacks is left out of the map, so it
/// binds as NULL. Pure; never panics on any packet.
pub fn packet_variables(
    pkt: &Packet,
    slices: &BTreeMap<String, Extractor>,
) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let mac = to_hex(pkt.chaddr());
    if !mac.is_empty() {
        v.insert("ClientMacAddress".into(), mac.clone());
        v.insert("chaddr".into(), mac);
    }
    let requested = pkt
        .options
        .get(code::REQUESTED_IP)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from);
    v.insert("RequestedIpAddress".into(), dotted(requested));
    let text = |c: u8| {
        pkt.options
            .get(c)
            .map(lossy)
            .filter(|t: &String| !t.is_empty())
    };
    if let Some(h) = text(code::HOSTNAME) {
        v.insert("HostName".into(), h);
    }
    if let Some(h) = text(code::VENDOR_CLASS) {
        v.insert("Vendor".into(), h);
    }
    v.insert("giaddr".into(), dotted(pkt.giaddr));
    v.insert("ciaddr".into(), dotted(pkt.ciaddr));
    let relay = pkt
        .options
        .get(code::RELAY_AGENT_INFO)
        .map(RelayInfo::parse);
    let keys = relay.as_ref().map(RelayInfo::keys).unwrap_or_default();
    relay_variables(&mut v, relay.as_ref().map(|r| r.raw.as_slice()), &keys);
    for (name, ex) in slices {
        if let Some(x) = ex.variable(&keys) {
            v.insert(name.clone(), x);
        }
    }
    v
}

/// What `leased check` says about each slice of `[sql_assignment]`: where its end lies past
/// a shorter value, the value is cut there, as pydhcpdb's Python slices are, and below its
/// start the variable is NULL. Said so that an operator who copied pydhcpdb's
/// `option_82_hex:sw_mac:26:40` knows a 38-digit value still gives 12 digits.
pub fn slice_notes(slices: &BTreeMap<String, Extractor>) -> Vec<String> {
    slices
        .iter()
        .filter_map(|(name, ex)| {
            let Extractor::Slice {
                source,
                hex,
                start,
                end,
            } = ex
            else {
                return None;
            };
            let src = match source {
                crate::relay::SliceSource::CircuitId => "circuit_id",
                crate::relay::SliceSource::RemoteId => "remote_id",
                crate::relay::SliceSource::SubscriberId => "subscriber_id",
                crate::relay::SliceSource::Option82 => "option_82",
            };
            let (src, unit) = if *hex {
                (format!("{src}_hex"), "hex digits")
            } else {
                (src.to_string(), "bytes")
            };
            Some(format!(
                "sql_assignment slice :{name} takes {unit} {start}..{end} of {src}; a value \
                 shorter than {end} {unit} is cut at its end, as in Python (pydhcpdb), and one \
                 of {start} {unit} or fewer leaves :{name} NULL"
            ))
        })
        .collect()
}

/// The `option_82_*` variables. `option_82_hex` starts with the option's length byte, as
/// pydhcpdb's did, so pydhcpdb slice offsets keep working.
fn relay_variables(v: &mut BTreeMap<String, String>, raw: Option<&[u8]>, keys: &RelayKeys) {
    let with_len = raw.and_then(|r| {
        let len = u8::try_from(r.len()).ok()?;
        Some(to_hex(
            &std::iter::once(len)
                .chain(r.iter().copied())
                .collect::<Vec<u8>>(),
        ))
    });
    let mut put = |name: &str, value: Option<String>| {
        if let Some(x) = value.filter(|x| !x.is_empty()) {
            v.insert(name.into(), x);
        }
    };
    put("option_82_hex", with_len);
    let cid = keys.circuit_id.as_deref();
    put("option_82_AgentCircuitId_hex", cid.map(to_hex));
    put(
        "option_82_AgentCircuitId_port_hex",
        cid.and_then(|c| c.last_chunk::<1>()).map(|b| to_hex(b)),
    );
    put(
        "option_82_AgentRemoteId_hex",
        keys.remote_id.as_deref().map(to_hex),
    );
}

fn parse_addr_list(col: &str, text: &str) -> Result<Vec<Ipv4Addr>, String> {
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<Ipv4Addr>()
                .map_err(|_| format!("column {col}: {t:?} is not an IPv4 address"))
        })
        .collect()
}

impl Assignment {
    /// Builds an assignment from a result row given as (column name, text value) pairs.
    ///
    /// Columns (case-insensitive): `ip` (required), `mask`, `router`, `dns` (addresses
    /// separated by commas or spaces), `lease_time` (seconds), `hostname`, and `option_N`
    /// (N = 1..=254, the value as hex, e.g. `option_66 = '7466747073727631'`). A NULL or
    /// empty value means "not given". Other columns are ignored (a `SELECT *` over a
    /// pydhcpdb `users` table has `id`, `mac`, `port`). A bad value is an error naming the
    /// column: the row came from an operator's table and the log must say what is wrong.
    pub fn from_columns(cols: &[(String, Option<String>)]) -> Result<Self, String> {
        let mut a = Assignment {
            ip: Ipv4Addr::UNSPECIFIED,
            mask: None,
            router: Vec::new(),
            dns: Vec::new(),
            lease_time: None,
            hostname: None,
            options: BTreeMap::new(),
        };
        let mut ip = None;
        for (name, value) in cols {
            let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "ip" => {
                    ip = Some(
                        value
                            .parse::<Ipv4Addr>()
                            .map_err(|_| format!("column ip: {value:?} is not an IPv4 address"))?,
                    );
                }
                "mask" => {
                    a.mask =
                        Some(value.parse::<Ipv4Addr>().map_err(|_| {
                            format!("column mask: {value:?} is not a dotted netmask")
                        })?);
                }
                "router" => a.router = parse_addr_list("router", value)?,
                "dns" => a.dns = parse_addr_list("dns", value)?,
                "lease_time" => {
                    a.lease_time = Some(value.parse::<u32>().map_err(|_| {
                        format!("column lease_time: {value:?} is not a number of seconds")
                    })?);
                }
                "hostname" => a.hostname = Some(value.to_string()),
                other => {
                    if let Some(n) = other.strip_prefix("option_") {
                        let code = n
                            .parse::<u8>()
                            .ok()
                            .filter(|c| (1..=254).contains(c))
                            .ok_or_else(|| format!("column {other}: not an option code 1..254"))?;
                        let bytes = leased_wire::parse_hex(value)
                            .map_err(|_| format!("column {other}: value must be hex"))?;
                        a.options.insert(code, bytes);
                    }
                }
            }
        }
        a.ip = ip.ok_or("the row has no ip column (or it is NULL)")?;
        Ok(a)
    }
}

/// Segment `index` of `count` equal segments of each pool: the search for a never-used address
/// starts there and wraps through the following segments. Part of the config (never random),
/// so allocation stays deterministic for a given config and lease table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocationSlot {
    /// This server's segment, `0..count`.
    pub index: u32,
    /// How many segments each pool is cut into (≥ 1).
    pub count: u32,
}

/// Segments a pool is cut into when the slot is derived from `server_name`: enough that a
/// handful of servers rarely share one (3 servers: ~95 % all distinct), few enough that each
/// segment of a typical pool holds many addresses.
pub const DERIVED_SLOTS: u32 = 64;

impl AllocationSlot {
    /// The slot for `server_name` when none is configured: FNV-1a of the name, so the same name
    /// always gets the same slot (a restart does not move a server's allocations).
    pub fn from_name(name: &str) -> Self {
        let mut h: u32 = 0x811c_9dc5;
        for b in name.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        Self {
            index: h % DERIVED_SLOTS,
            count: DERIVED_SLOTS,
        }
    }

    /// Parses `"k/N"` with `0 ≤ k < N`, `N ≥ 1`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected \"k/N\" with 0 <= k < N, e.g. \"1/3\"");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// Who keeps a row's address when another client holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqlOwner {
    /// The client holding the lease keeps it; the row's client is served from the pools (with
    /// the row's other options). The default: nothing changes hands behind anyone's back.
    #[default]
    Lease,
    /// The row's address belongs to the port (pydhcpdb's intent): the device now on it takes
    /// the address over at once, as with a relay-keyed reservation.
    Port,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_quotes_comments_and_casts() {
        let t = SqlTemplate::parse(
            "SELECT ip::text, ':Not' AS \":Id\" FROM users -- :Comment\n \
             WHERE mac = :ClientMacAddress AND port = :option_82_AgentCircuitId_port_hex \
             /* :X */ OR mac = :ClientMacAddress",
        )
        .unwrap();
        assert_eq!(
            t.names,
            [
                "ClientMacAddress",
                "option_82_AgentCircuitId_port_hex",
                "ClientMacAddress"
            ]
        );
        let pg = t.render(Placeholders::Numbered);
        assert!(pg.contains("mac = $1 AND port = $2"), "{pg}");
        assert!(pg.contains("OR mac = $3"), "{pg}");
        assert!(pg.contains("ip::text, ':Not' AS \":Id\""), "{pg}");
        let my = t.render(Placeholders::Question);
        assert!(my.contains("mac = ? AND port = ?"), "{my}");
    }

    #[test]
    fn driver_markers_and_bad_quotes_are_refused() {
        assert!(SqlTemplate::parse("SELECT ip FROM u WHERE mac = ?").is_err());
        assert!(SqlTemplate::parse("SELECT ip FROM u WHERE mac = $1").is_err());
        assert!(SqlTemplate::parse("SELECT 'x").is_err());
        // Escaped quotes stay inside the string.
        let t = SqlTemplate::parse("SELECT 'it''s :no', 'a\\' :no' WHERE a = :Yes").unwrap();
        assert_eq!(t.names, ["Yes"]);
    }

    #[test]
    fn hostile_values_never_reach_the_text() {
        let t = SqlTemplate::parse("SELECT ip FROM users WHERE host = :HostName").unwrap();
        let mut vars = BTreeMap::new();
        vars.insert(
            "HostName".to_string(),
            "x'); DROP TABLE users; --".to_string(),
        );
        assert_eq!(
            t.render(Placeholders::Numbered),
            "SELECT ip FROM users WHERE host = $1"
        );
        assert_eq!(t.values(&vars), [Some("x'); DROP TABLE users; --")]);
    }

    fn relay_packet() -> Packet {
        let mut p = Packet {
            op: 1,
            htype: 1,
            hlen: 6,
            hops: 1,
            xid: 1,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::new(172, 30, 114, 25),
            chaddr: [0; 16],
            sname: vec![],
            file: vec![],
            options: leased_wire::Options::new(),
            option82_in_overload: false,
        };
        p.chaddr[..6].copy_from_slice(&[0x00, 0x25, 0x22, 0x4a, 0xd7, 0x64]);
        p.options.set(code::MESSAGE_TYPE, vec![1]);
        p.options.set(code::HOSTNAME, b"host".to_vec());
        // pydhcpdb's own capture: circuit-id 00 04 00 01 00 06, remote-id 00 06 + switch MAC.
        p.options.set(
            code::RELAY_AGENT_INFO,
            vec![
                1, 6, 0, 4, 0, 1, 0, 6, 2, 8, 0, 6, 0, 0x1e, 0x58, 0x9e, 0xb2, 0xad,
            ],
        );
        p
    }

    #[test]
    fn variables_match_pydhcpdb_names_and_values() {
        let mut slices = BTreeMap::new();
        let (name, ex) = Extractor::parse_slice("option_82_hex:sw_mac:26:38").unwrap();
        slices.insert(name.unwrap(), ex);
        let v = packet_variables(&relay_packet(), &slices);
        assert_eq!(v["ClientMacAddress"], "0025224ad764");
        assert_eq!(v["chaddr"], "0025224ad764");
        assert_eq!(v["RequestedIpAddress"], "0.0.0.0");
        assert_eq!(v["giaddr"], "172.30.114.25");
        assert_eq!(v["HostName"], "host");
        assert_eq!(v["option_82_hex"], "12010600040001000602080006001e589eb2ad");
        assert_eq!(v["option_82_AgentCircuitId_hex"], "000400010006");
        assert_eq!(v["option_82_AgentCircuitId_port_hex"], "06");
        assert_eq!(v["option_82_AgentRemoteId_hex"], "0006001e589eb2ad");
        assert_eq!(v["sw_mac"], "001e589eb2ad");
        for b in BUILTIN_VARS {
            // The packet has every field but a vendor class (option 60).
            assert_eq!(v.contains_key(b), b != "Vendor", "{b}");
        }
    }

    #[test]
    fn missing_fields_are_left_out_so_they_bind_as_null() {
        let mut p = relay_packet();
        p.options.remove(code::RELAY_AGENT_INFO);
        p.options.remove(code::HOSTNAME);
        p.giaddr = Ipv4Addr::UNSPECIFIED;
        let mut slices = BTreeMap::new();
        let (name, ex) = Extractor::parse_slice("option_82_hex:sw_mac:26:40").unwrap();
        slices.insert(name.unwrap(), ex);
        let v = packet_variables(&p, &slices);
        let keys: Vec<&str> = v.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "ClientMacAddress",
                "RequestedIpAddress",
                "chaddr",
                "ciaddr",
                "giaddr"
            ]
        );
        let t = SqlTemplate::parse(
            "SELECT ip FROM users WHERE mac = :sw_mac AND port = :option_82_AgentCircuitId_port_hex \
             OR host = :HostName OR mac = :ClientMacAddress",
        )
        .unwrap();
        assert_eq!(t.values(&v), [None, None, None, Some("0025224ad764")]);
        // An empty option 12 (or one of NULs) is no host name either.
        p.options.set(code::HOSTNAME, vec![0, 0]);
        assert!(!packet_variables(&p, &slices).contains_key("HostName"));
    }

    #[test]
    fn slices_are_cut_like_python_slices() {
        // Each expected value is Python's `s[a:b]` of pydhcpdb's option_82_hex (38 digits).
        let keys = RelayInfo::parse(&[
            1, 6, 0, 4, 0, 1, 0, 6, 2, 8, 0, 6, 0, 0x1e, 0x58, 0x9e, 0xb2, 0xad,
        ])
        .keys();
        for (spec, python) in [
            ("option_82_hex:x:26:40", Some("001e589eb2ad")),
            ("option_82_hex:x:20:22", Some("08")),
            ("option_82_hex:x:16:18", Some("06")),
            ("option_82_hex:x:36:40", Some("ad")),
            ("option_82_hex:x:37:39", Some("d")),
            ("option_82_hex:x:1:3", Some("20")),
            ("option_82_hex:x:38:40", None),
            ("option_82_hex:x:40:44", None),
            ("circuit_id:x:4:9", Some("0006")),
            ("circuit_id:x:6:9", None),
        ] {
            let (_, ex) = Extractor::parse_slice(spec).unwrap();
            assert_eq!(ex.variable(&keys).as_deref(), python, "{spec}");
        }
        // Reservation keys stay strict: a value too short for the slice gives nothing.
        let (_, ex) = Extractor::parse_slice("option_82_hex:x:26:40").unwrap();
        assert_eq!(ex.extract(&keys), None);
        let (_, ex) = Extractor::parse_slice("circuit_id:x:4:9").unwrap();
        assert_eq!(ex.extract(&keys), None);
        // The named extractors give the same text either way.
        let port = Extractor::builtin("circuit_id_port").unwrap();
        assert_eq!(port.variable(&keys).as_deref(), Some("06"));
        assert_eq!(port.variable(&RelayKeys::default()), None);
    }

    #[test]
    fn check_notes_say_where_slices_are_cut() {
        let mut slices = BTreeMap::new();
        let (name, ex) = Extractor::parse_slice("option_82_hex:sw_mac:26:40").unwrap();
        slices.insert(name.unwrap(), ex);
        slices.insert(
            "port".into(),
            Extractor::builtin("circuit_id_port").unwrap(),
        );
        assert_eq!(
            slice_notes(&slices),
            [
                "sql_assignment slice :sw_mac takes hex digits 26..40 of option_82_hex; a value \
              shorter than 40 hex digits is cut at its end, as in Python (pydhcpdb), and one \
              of 26 hex digits or fewer leaves :sw_mac NULL"
            ]
        );
    }

    #[test]
    fn rows_become_assignments() {
        let col = |n: &str, v: Option<&str>| (n.to_string(), v.map(str::to_string));
        let a = Assignment::from_columns(&[
            col("id", Some("1")),
            col("IP", Some("192.168.0.19")),
            col("mask", Some("255.255.255.0")),
            col("router", Some("192.168.0.1")),
            col("dns", Some("8.8.8.8, 1.1.1.1")),
            col("lease_time", Some("600")),
            col("hostname", None),
            col("option_66", Some("7466")),
        ])
        .unwrap();
        assert_eq!(a.ip, Ipv4Addr::new(192, 168, 0, 19));
        assert_eq!(a.dns.len(), 2);
        assert_eq!(a.lease_time, Some(600));
        assert_eq!(a.options.get(&66), Some(&vec![0x74, 0x66]));
        assert!(Assignment::from_columns(&[col("ip", Some("x"))]).is_err());
        assert!(Assignment::from_columns(&[col("mask", Some("255.0.0.0"))]).is_err());
    }
}
