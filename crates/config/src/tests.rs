//! Compiled only under `#[cfg(test)]` (see mod.rs). Loader tests: the example file, error positions and keys, every semantic check, JSON parity,
//! option encodings, MAC spellings, durations and the banned-MACs environment variable.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::Path;

use crate::file::RawDuration;
use crate::options::parse_duration;
use crate::*;
use leased_core::{ClientId, HwAddr};

const EXAMPLE: &str = include_str!("../../../leased.example.toml");

const BASE: &str = r#"[[subnets]]
network = "198.18.0.0/24"
routers = ["198.18.0.1"]
pools = ["198.18.0.100-198.18.0.200"]
"#;

fn toml_ok(text: &str) -> Config {
    match load_str(text, "t.toml", Format::Toml) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn toml_errs(text: &str) -> Vec<ConfigError> {
    match load_str(text, "t.toml", Format::Toml) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

fn json_errs(text: &str) -> Vec<ConfigError> {
    match load_str(text, "t.json", Format::Json) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

/// Asserts that `errs` has an error at `key` whose message contains `needle`; returns it.
fn find<'a>(errs: &'a [ConfigError], key: &str, needle: &str) -> &'a ConfigError {
    errs.iter()
        .find(|e| e.key == key && e.message.contains(needle))
        .unwrap_or_else(|| panic!("no error at {key} containing {needle:?} in:\n{errs:#?}"))
}

fn at(errs: &[ConfigError], key: &str, needle: &str, line: usize, col: usize) {
    let e = find(errs, key, needle);
    assert_eq!((e.line, e.col), (line, col), "position of {e}");
}

/// `BASE` with `extra` appended.
fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

// ---------------------------------------------------------------- the example

#[test]
fn example_loads_with_every_value() {
    let c = toml_ok(EXAMPLE);
    let s = &c.network.server;
    assert!(s.authoritative);
    assert_eq!(c.process.interfaces, ["eth0", "eth1"]);
    assert_eq!(s.lease_time, 86_400);
    assert_eq!(s.renewal_time, Some(14_400));
    assert_eq!(s.rebinding_time, Some(25_200));
    assert_eq!(s.offer_hold, 60);
    assert_eq!(s.decline_quarantine, 86_400);
    assert_eq!(s.sticky_window, 86_400);
    assert_eq!(s.server_id, Some(Ipv4Addr::new(198, 18, 0, 1)));
    assert_eq!(c.process.pid_file.as_deref(), Some(Path::new("leased.pid")));
    assert_eq!(c.store.path, Path::new("leased.leases"));
    assert_eq!(c.logging.format, LogFormat::Text);
    assert_eq!(c.logging.level, "info");

    let g = &c.network.options;
    assert_eq!(g.values[&6], [198, 18, 0, 53, 198, 18, 1, 53]);
    assert_eq!(g.values[&15], b"lan");
    assert_eq!(g.values[&119], b"\x03lan\x00\x04corp\xc0\x00");
    assert_eq!(g.values[&42], [198, 18, 0, 1]);
    assert_eq!(g.values[&26], [0x05, 0xdc]);
    assert_eq!(g.values[&44], [198, 18, 0, 3]);
    assert_eq!(g.values[&66], b"198.18.0.2");
    assert_eq!(g.values[&67], b"pxelinux.0");
    assert_eq!(g.values[&252], b"http://wpad.lan/wpad.dat");
    assert_eq!(g.values[&121], [16, 198, 19, 198, 18, 0, 254]);
    assert_eq!(g.values[&43], [0x01, 0x04, 0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(g.values[&150], [198, 18, 0, 2]);
    assert_eq!(g.values[&224], b"site-a");
    assert_eq!(g.values[&23], [64]);
    assert_eq!(g.values[&22], [0x05, 0xdc]);
    assert_eq!(g.next_server, Some(Ipv4Addr::new(198, 18, 0, 2)));
    assert_eq!(g.boot_file.as_deref(), Some("pxelinux.0"));
    assert_eq!(g.mirror_routes_to_249, Some(true));

    assert_eq!(c.network.subnets.len(), 3);
    assert_eq!(s.max_leases_per_circuit_id, Some(1));
    assert_eq!(s.max_leases_per_remote_id, Some(48));
    let a = &c.network.subnets[0];
    assert_eq!(a.network.to_string(), "198.18.0.0/24");
    assert_eq!(a.interface.as_deref(), Some("eth0"));
    assert_eq!(a.server_id, Some(Ipv4Addr::new(198, 18, 0, 1)));
    assert_eq!(a.routers, [Ipv4Addr::new(198, 18, 0, 1)]);
    assert_eq!(a.lease_time, Some(28_800));
    let r = |s: [u8; 4], e: [u8; 4]| AddrRange {
        start: s.into(),
        end: e.into(),
    };
    assert_eq!(
        a.pools,
        [
            r([198, 18, 0, 100], [198, 18, 0, 200]),
            r([198, 18, 0, 210], [198, 18, 0, 220])
        ]
    );
    assert_eq!(
        a.exclusions,
        [
            r([198, 18, 0, 150], [198, 18, 0, 150]),
            r([198, 18, 0, 160], [198, 18, 0, 165])
        ]
    );
    assert_eq!(a.options.values[&1], [255, 255, 255, 0]);
    assert_eq!(a.options.values[&28], [198, 18, 0, 255]);
    assert_eq!(a.options.values[&3], [198, 18, 0, 1]);
    assert_eq!(a.options.values[&6], [198, 18, 0, 53], "subnet dns wins");
    assert_eq!(a.options.values[&19], [0]);
    assert_eq!(a.options.values[&15], b"lan", "global kept");
    let b = &c.network.subnets[1];
    assert_eq!(b.interface, None);
    assert_eq!(b.lease_time, None);
    assert_eq!(b.exclusions, []);
    assert_eq!(b.options.values[&15], b"branch.lan");
    assert_eq!(b.options.values[&2], [0, 0, 0x0e, 0x10]);
    assert_eq!(b.options.values[&69], [198, 18, 1, 25]);
    assert_eq!(b.options.values[&125], [0, 0, 0x0d, 0xe9, 4, 3, 1, 2, 3]);
    assert_eq!(b.shared_network.as_deref(), Some("access"));
    assert_eq!(
        c.network.subnets[2].shared_network.as_deref(),
        Some("access")
    );
    assert_eq!(b.max_leases_per_circuit_id, Some(2));
    assert_eq!(b.max_leases_per_remote_id, Some(96));
    let mac = vec![0xc8, 0xbe, 0x19, 0x93, 0x11, 0x48];
    assert_eq!(
        b.reservations[1].key,
        ReservationKey::PortKey {
            switch: mac.clone(),
            port: 4
        }
    );
    let mut rid = vec![0, 6];
    rid.extend(&mac);
    assert_eq!(
        b.reservations[2].key,
        ReservationKey::RelayPair {
            remote_id: rid.clone(),
            circuit_id: vec![0, 4, 0, 1, 0, 5]
        }
    );
    assert_eq!(
        b.reservations[3].key,
        ReservationKey::CircuitId(b"Gi0/1/7".to_vec())
    );
    assert_eq!(
        b.reservations[4].key,
        ReservationKey::SubscriberId(b"customer-1042".to_vec())
    );
    assert_eq!(
        c.network.relay_keys.switch,
        leased_core::relay::Extractor::RemoteIdMac
    );
    assert_eq!(
        c.network.relay_keys.port,
        leased_core::relay::Extractor::CircuitIdLastBytePort
    );
    assert!(c.network.relay_keys.named.contains_key("vlan"));
    assert_eq!(c.network.classes.len(), 3);
    assert_eq!(
        c.network.classes[1].pool,
        Some((0, r([198, 18, 0, 210], [198, 18, 0, 220]))),
        "named pool"
    );
    let pxe = &c.network.classes[0];
    assert_eq!(pxe.name, "pxe");
    assert_eq!(pxe.matcher.vendor_class.as_deref(), Some("PXEClient*"));
    assert_eq!(pxe.matcher.user_class.as_deref(), Some("iPXE*"));
    assert_eq!(pxe.pool, Some((0, r([198, 18, 0, 230], [198, 18, 0, 239]))));
    assert_eq!(pxe.options.values[&66], b"198.18.0.2");
    let cams = &c.network.classes[2].matcher;
    assert_eq!(cams.mac_prefix.as_deref(), Some(&[0, 0x40, 0x8c][..]));
    assert_eq!(cams.hostname.as_deref(), Some("cam*"));
    assert_eq!(cams.circuit_id.as_deref(), Some(&b"Gi0/1/9"[..]));
    assert_eq!(cams.remote_id.as_deref(), Some(&rid[..]));

    assert_eq!(a.reservations.len(), 1);
    let p = &a.reservations[0];
    assert_eq!(
        p.key,
        ReservationKey::Mac(HwAddr(vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]))
    );
    assert_eq!(p.ip, Ipv4Addr::new(198, 18, 0, 10));
    assert_eq!(p.hostname.as_deref(), Some("printer"));
    assert_eq!(
        p.metadata,
        Metadata {
            note: Some("laser printer".into()),
            equipment_type: Some("Printer".into()),
            manufacturer: Some("HP".into()),
            management_type: Some("web".into()),
            management_interface: Some("http://198.18.0.10".into()),
            first_seen: Some(1_725_550_000),
        }
    );
    assert_eq!(p.options.values[&12], b"printer");
    assert_eq!(p.options.values[&6], [198, 18, 0, 54]);
    assert_eq!(p.options.boot_file.as_deref(), Some("printer.bin"));
    let n = &b.reservations[0];
    assert_eq!(
        n.key,
        ReservationKey::ClientId(ClientId(vec![1, 2, 3, 4, 5, 6, 7]))
    );

    let banned = HwAddr::parse_mac("dc:ed:83:f3:68:5b").unwrap();
    assert_eq!(c.network.banned_macs.len(), 2);
    assert_eq!(
        c.network.banned_macs[&banned].note.as_deref(),
        Some("guest device blocked")
    );
    let empty = HwAddr::parse_mac("00:11:22:33:44:66").unwrap();
    assert_eq!(c.network.banned_macs[&empty], Metadata::default());
    let dev = HwAddr::parse_mac("00:11:22:33:44:55").unwrap();
    let o = &c.network.device_overrides[&dev];
    assert_eq!(o.values[&6], [198, 18, 0, 53]);
    assert_eq!(o.values[&66], b"198.18.0.2");
    assert_eq!(o.next_server, Some(Ipv4Addr::new(198, 18, 0, 2)));
    assert_eq!(o.boot_file.as_deref(), Some("special.efi"));
}

#[test]
fn example_loads_from_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../leased.example.toml");
    let c = load_file(&path).unwrap();
    assert_eq!(c, toml_ok(EXAMPLE));
}

#[test]
fn example_uses_only_benchmarking_addresses() {
    let net: ipnet::Ipv4Net = "198.18.0.0/15".parse().unwrap();
    for word in EXAMPLE.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        if let Ok(ip) = word.parse::<Ipv4Addr>() {
            assert!(net.contains(&ip), "{ip} in the example");
        }
    }
}

#[test]
fn example_sets_every_key() {
    let keys = [
        "authoritative",
        "interfaces",
        "lease_time",
        "renewal_time",
        "rebinding_time",
        "offer_hold",
        "decline_quarantine",
        "sticky_window",
        "server_id",
        "pid_file",
        "user",
        "group",
        "path",
        "format",
        "level",
        "dns",
        "domain_name",
        "domain_search",
        "ntp",
        "mtu",
        "wins",
        "tftp_server",
        "bootfile",
        "next_server",
        "wpad_url",
        "static_routes",
        "destination",
        "gateway",
        "mirror_routes_to_249",
        "vendor_specific",
        "extra",
        "code",
        "type",
        "value",
        "network",
        "interface",
        "routers",
        "pools",
        "start",
        "end",
        "exclusions",
        "mac",
        "client_id",
        "ip",
        "hostname",
        "note",
        "equipment_type",
        "manufacturer",
        "management_type",
        "management_interface",
        "first_seen",
        "max_leases_per_circuit_id",
        "max_leases_per_remote_id",
        "rapid_commit",
        "ipv6_only_wait",
        "ipv6_only_address",
        "shared_network",
        "port_key",
        "remote_id",
        "circuit_id",
        "subscriber_id",
        "switch",
        "port",
        "extractors",
        "name",
        "match",
        "pool",
        "vendor_class",
        "user_class",
        "mac_prefix",
        "hostname",
        "trusted_relays",
        "trusted_option82_interfaces",
        // Commented out in the example where enabling would open a socket or a database
        // connection; still shown, so every key is there to copy.
        "auto_reload",
        "file",
        "conflict_check",
        "conflict_check_timeout_ms",
        "conflict_check_cache",
        "backend",
        "url",
        "url_env",
        "sync_interval",
        "offer_when_down",
        "server_name",
        "allocation_slot",
        "per_mac",
        "per_circuit_id",
        "per_remote_id",
        "per_relay",
        "max_offers_in_flight",
        "max_offers_in_flight_per_relay",
        "enabled",
        "whitelist",
        "log_per_minute",
        "probe_interval",
        "probe_mac",
        "interval",
        "probe",
        "probe_rate",
        "listen",
        "keys",
        "public_health",
        "public_metrics",
        "http_redirect",
        "cert",
        "key",
        "outbox",
        "username",
        "password",
        "password_env",
        "timeout",
        "chunk_size",
        "headers",
        "password_hash",
        "fallback",
        "owner",
        "timeout_ms",
        "max_concurrency",
        "slices",
        "history_sql",
        "sql",
        "socket",
        "replay",
        "tcp_listen",
        "header_timeout",
        "request_timeout",
        "idle_timeout",
        "max_connections",
        "allow_plaintext",
        "hello_timeout",
        "allow",
        "max_connections_per_requestor",
        "max_queued_changes",
        "write_timeout",
        "query_timeout",
    ];
    for k in keys {
        assert!(
            EXAMPLE.contains(&format!("{k} = ")),
            "{k} missing from the example"
        );
    }
    for section in [
        "[server]",
        "[store]",
        "[logging]",
        "[options]",
        "[[subnets]]",
        "[subnets.options]",
        "[[reservations]]",
        "[reservations.options]",
        "[banned_macs]",
        "[device_overrides.",
        "[relay_keys]",
        "[[classes]]",
        "[classes.options]",
        "[limits]",
        "[rogue_servers]",
        "[arp_watch]",
        "# [api]",
        "# [api.tls]",
        "# [export]",
        "# [export.sonar]",
        "# [export.webhook]",
        "# [[export.routers]]",
        "# [sql_assignment]",
        "# [[sql_assignment.queries]]",
        "# [console]",
        "# [[relay_auth]]",
    ] {
        assert!(
            EXAMPLE.contains(section),
            "{section} missing from the example"
        );
    }
    for t in ["ip", "ip_list", "u8", "u16", "u32", "bool", "string", "hex"] {
        assert!(
            EXAMPLE.contains(&format!("type = \"{t}\"")),
            "extra type {t}"
        );
    }
}

fn example_json() -> String {
    let v: toml::Value = toml::from_str(EXAMPLE).unwrap();
    let j: serde_json::Value = serde_json::to_value(&v).unwrap();
    serde_json::to_string_pretty(&j).unwrap()
}

#[test]
fn example_as_json_loads_to_the_same_config() {
    let json = example_json();
    let from_json = load_str(&json, "example.json", Format::Json).unwrap();
    assert_eq!(from_json, toml_ok(EXAMPLE));

    let path = std::env::temp_dir().join(format!("leased-config-test-{}.json", std::process::id()));
    std::fs::write(&path, &json).unwrap();
    let loaded = load_file(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(loaded.unwrap(), from_json);
}

#[test]
fn defaults() {
    let c = toml_ok(BASE);
    assert!(c.network.server.authoritative);
    assert!(c.process.interfaces.is_empty());
    assert_eq!(c.network.server.lease_time, 86_400);
    assert_eq!(c.network.server.renewal_time, None);
    assert_eq!(c.network.server.rebinding_time, None);
    assert_eq!(c.network.server.offer_hold, 60);
    assert_eq!(c.network.server.decline_quarantine, 86_400);
    assert_eq!(c.network.server.sticky_window, 86_400);
    assert_eq!(c.network.server.server_id, None);
    assert_eq!(c.process.pid_file, None);
    assert_eq!(c.store.path, Path::new("leased.leases"));
    assert_eq!(c.logging.format, LogFormat::Text);
    assert_eq!(c.logging.level, "info");
    assert_eq!(c.network.options, OptionSet::default());
    assert!(c.network.banned_macs.is_empty() && c.network.device_overrides.is_empty());
    let s = &c.network.subnets[0];
    assert_eq!(s.options.values.len(), 3, "{:?}", s.options);
    assert_eq!(s.options.values[&3], [198, 18, 0, 1]);
}

#[test]
fn small_prefixes_have_no_broadcast_option() {
    let c =
        toml_ok("[[subnets]]\nnetwork = \"198.18.0.0/31\"\npools = [\"198.18.0.0-198.18.0.1\"]\n");
    let s = &c.network.subnets[0];
    assert_eq!(s.options.values[&1], [255, 255, 255, 254]);
    assert!(!s.options.values.contains_key(&28));
}

// ---------------------------------------------------------------- file-stage errors

#[test]
fn unknown_key_names_key_and_position() {
    let errs = toml_errs(&with("[server]\nbogus_key = 1\n"));
    assert_eq!(errs.len(), 1);
    at(&errs, "server.bogus_key", "unknown field `bogus_key`", 6, 1);
    assert_eq!(
        errs[0].to_string(),
        format!("t.toml:6:1: server.bogus_key: {}", errs[0].message)
    );
}

#[test]
fn unknown_top_level_key() {
    let errs = toml_errs(&format!("colour = \"blue\"\n{BASE}"));
    at(&errs, "colour", "unknown field `colour`", 1, 1);
}

#[test]
fn wrong_type_names_key_and_position() {
    let errs = toml_errs(&with("[options]\nmtu = \"big\"\n"));
    at(&errs, "options.mtu", "invalid type", 6, 7);
    let errs = toml_errs(&with("[server]\nauthoritative = \"yes\"\n"));
    at(&errs, "server.authoritative", "invalid type", 6, 17);
    let errs = toml_errs(&with("[server]\nlease_time = 1.5\n"));
    at(&errs, "server.lease_time", "duration string", 6, 14);
    let errs = toml_errs(&with("[options]\ndns = \"198.18.0.53\"\n"));
    at(&errs, "options.dns", "invalid type", 6, 7);
}

#[test]
fn missing_required_key() {
    let errs = toml_errs("[[subnets]]\npools = []\n");
    at(&errs, "subnets[0]", "missing field `network`", 1, 1);
    let errs = toml_errs(&with("[[reservations]]\nmac = \"aa:bb:cc:dd:ee:ff\"\n"));
    at(&errs, "reservations[0]", "missing field `ip`", 5, 1);
}

#[test]
fn unknown_key_in_inline_tables() {
    let errs = toml_errs(
        "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [{ start = \"198.18.0.10\", stop = \"198.18.0.20\" }]\n",
    );
    at(
        &errs,
        "subnets[0].pools[0].stop",
        "unknown field `stop`",
        3,
        35,
    );
}

#[test]
fn toml_syntax_errors_are_all_reported() {
    let errs = toml_errs("[server\nlease_time = \n");
    assert!(!errs.is_empty());
    assert_eq!(errs[0].line, 1);
    let errs = toml_errs(&with("[server]\nlease_time = 1\nlease_time = 2\n"));
    assert_eq!(errs[0].line, 7, "{errs:?}");
}

#[test]
fn json_file_stage_errors_carry_serde_json_positions() {
    let errs = json_errs("{\"server\": {\"bogus_key\": 1}}");
    assert_eq!(errs.len(), 1);
    at(
        &errs,
        "server.bogus_key",
        "unknown field `bogus_key`",
        1,
        23,
    );
    let errs = json_errs("{\n  \"options\": {\n    \"mtu\": \"big\"\n  }\n}");
    at(&errs, "options.mtu", "invalid type", 3, 16);
    let errs = json_errs("{\n  \"server\": {,}\n}");
    assert_eq!((errs[0].line, errs[0].col), (2, 14), "{errs:?}");
    assert!(!errs[0].message.contains(" at line "), "{errs:?}");
}

#[test]
fn json_semantic_errors_carry_positions() {
    let text = r#"{
  "subnets": [
    {
      "network": "198.18.0.0/24",
      "pools": ["198.18.0.1-198.18.0.9", "x"]
    }
  ],
  "banned_macs": { "zz:zz": {} }
}"#;
    let errs = json_errs(text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    at(&errs, "subnets[0].pools[1]", "invalid address range", 5, 42);
    at(&errs, "banned_macs.\"zz:zz\"", "invalid MAC", 8, 20);
}

#[test]
fn json_example_mutated_reports_position_of_value() {
    let json = example_json().replace("\"198.18.1.250\"", "\"198.18.1.2x0\"");
    let errs = json_errs(&json);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let offset = json.find("\"198.18.1.2x0\"").unwrap();
    let line = json[..offset].matches('\n').count() + 1;
    let col = offset - json[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
    at(
        &errs,
        "subnets[1].pools[0].end",
        "invalid IPv4 address",
        line,
        col,
    );

    let json = example_json().replace("\"198.18.1.250\"", "\"198.18.9.250\"");
    let errs = json_errs(&json);
    let offset = json.find("\"198.18.9.250\"").unwrap();
    let table = json[..offset].rfind('{').unwrap();
    let line = json[..table].matches('\n').count() + 1;
    let col = table - json[..table].rfind('\n').map_or(0, |i| i + 1) + 1;
    at(&errs, "subnets[1].pools[0]", "not inside subnet", line, col);
}

// ---------------------------------------------------------------- the mutation test

/// Every table of the example, with `bogus_key = 1` inserted into it: (text, line, column).
fn bogus_mutations() -> Vec<(String, usize)> {
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    let mut out = vec![(format!("bogus_key = 1\n{EXAMPLE}"), 1)];
    for (i, line) in lines.iter().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        let mut edit = |new_lines: Vec<String>, at_line: usize| {
            let mut all: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
            all.splice(i..=i, new_lines);
            out.push((all.join("\n") + "\n", at_line));
        };
        if code.trim_start().starts_with('[') && !code.contains('=') {
            edit(vec![line.to_string(), "bogus_key = 1".into()], i + 2);
        }
        for (j, _) in code.match_indices('{') {
            let rest = code[j + 1..].trim_start();
            let insert = if rest.starts_with('}') {
                "bogus_key = 1 "
            } else {
                "bogus_key = 1, "
            };
            let new = format!("{}{}{}", &line[..=j], insert, &line[j + 1..]);
            edit(vec![new], i + 1);
        }
    }
    out
}

#[test]
fn bogus_key_in_every_table_is_named_with_its_line() {
    let mutations = bogus_mutations();
    // The root, 27 headers, and 21 inline tables (a route, 8 extras, 2 pools, 2 banned MACs,
    // a port_key, 3 class matches, 4 [limits] buckets).
    assert_eq!(mutations.len(), 49);
    for (text, line) in mutations {
        let errs = toml_errs(&text);
        let hit = errs
            .iter()
            .find(|e| e.key.ends_with("bogus_key") && e.line == line);
        assert!(
            hit.is_some(),
            "no error naming bogus_key on line {line}:\n{errs:#?}"
        );
    }
}

// ---------------------------------------------------------------- semantic checks

#[test]
fn all_errors_are_reported_in_file_order() {
    // [server] comes after the subnets in the file, but is checked first.
    let text = r#"[[subnets]]
network = "198.18.0.0/33"

[[subnets]]
network = "198.18.1.0/24"
pools = ["198.18.1.10-198.18.2.10", "198.18.1.20-198.18.1.5"]
routers = ["198.18.1.255"]

[server]
lease_time = "forever"
server_id = "224.0.0.1"

[[reservations]]
ip = "198.18.1.7"
"#;
    let errs = toml_errs(text);
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "subnets[0].network",
            "subnets[1].pools[0]",
            "subnets[1].pools[1]",
            "subnets[1].routers[0]",
            "server.lease_time",
            "server.server_id",
            "reservations[0]",
        ],
        "{errs:#?}"
    );
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 6, 6, 7, 10, 11, 13]);
    let shown = ConfigErrors(errs).to_string();
    assert_eq!(shown.lines().count(), 7);
    assert!(shown.starts_with("t.toml:2:11: subnets[0].network: invalid IPv4 network"));
}

#[test]
fn at_least_one_subnet() {
    let errs = toml_errs("[server]\nlease_time = 60\n");
    at(&errs, "subnets", "at least one", 1, 1);
    // Written out empty, it says the server serves nothing yet (the packaged config).
    assert!(toml_ok("subnets = []\n").network.subnets.is_empty());
}

#[test]
fn subnet_checks() {
    let text = r#"[[subnets]]
network = "198.18.0.0/23"

[[subnets]]
network = "198.18.1.0/24"
server_id = "198.18.2.1"
routers = ["198.18.1.0", "x"]
pools = ["198.18.1.0-198.18.1.10", "198.18.1.20-198.18.1.30", "198.18.1.25-198.18.1.40", "198.18.1.250-198.18.1.255"]
exclusions = ["198.18.1.50", "198.18.1.29-198.18.1.31", "198.18.1.22", "bad"]
lease_time = 0

[[subnets]]
network = "198.18.4.1/24"
interface = "this-name-is-way-too-long"
"#;
    let errs = toml_errs(text);
    find(&errs, "subnets[1].network", "overlaps subnets[0].network");
    find(&errs, "subnets[1].server_id", "outside subnet");
    find(&errs, "subnets[1].routers[0]", "network or broadcast");
    find(&errs, "subnets[1].routers[1]", "invalid IPv4 address");
    find(&errs, "subnets[1].pools[0]", "network or broadcast");
    find(&errs, "subnets[1].pools[2]", "overlaps subnets[1].pools[1]");
    find(&errs, "subnets[1].pools[3]", "network or broadcast");
    find(&errs, "subnets[1].exclusions[0]", "not inside any pool");
    find(&errs, "subnets[1].exclusions[1]", "not inside any pool");
    find(&errs, "subnets[1].exclusions[3]", "invalid address range");
    find(&errs, "subnets[1].lease_time", "greater than 0");
    find(
        &errs,
        "subnets[2].network",
        "host bits set; the network is 198.18.4.0/24",
    );
    find(&errs, "subnets[2].interface", "1 to 15 bytes");
    assert!(!errs.iter().any(|e| e.key == "subnets[1].exclusions[2]"));
    assert_eq!(errs.len(), 13, "{errs:#?}");
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn pool_table_spelling_errors_point_at_the_bound() {
    let text = "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [{ start = \"198.18.0.20\", end = \"198.18.0.10\" }, { start = \"x\", end = \"198.18.0.1\" }]\n";
    let errs = toml_errs(text);
    at(&errs, "subnets[0].pools[0].end", "before its start", 3, 41);
    at(
        &errs,
        "subnets[0].pools[1].start",
        "invalid IPv4 address",
        3,
        68,
    );
}

#[test]
fn server_user_and_group() {
    let c = toml_ok(&format!(
        "[server]\nuser = \"leased\"\ngroup = \"65534\"\n{BASE}"
    ));
    let user = c.process.user.expect("user");
    assert_eq!((user.name.as_str(), user.line, user.col), ("leased", 2, 8));
    let group = c.process.group.expect("group");
    assert_eq!(
        (group.numeric(), group.line, group.col),
        (Some(65534), 3, 9)
    );
    let c = toml_ok(BASE);
    assert_eq!((c.process.user, c.process.group), (None, None));

    let errs = toml_errs(&format!("[server]\nuser = \"a b\"\ngroup = \"\"\n{BASE}"));
    at(&errs, "server.user", "not an account name", 2, 8);
    at(&errs, "server.group", "must not be empty", 3, 9);
    let errs = toml_errs(&format!("[server]\ngroup = \"leased\"\n{BASE}"));
    at(&errs, "server.group", "needs server.user", 2, 9);
    let errs = toml_errs(&format!("[server]\nuser = 1000\n{BASE}"));
    find(&errs, "server.user", "string");
}

#[test]
fn server_checks() {
    let text = with(
        r#"[server]
interfaces = ["eth0", "eth0", ""]
lease_time = 0
offer_hold = "0s"
server_id = "0.0.0.0"
pid_file = ""
"#,
    );
    let errs = toml_errs(&text);
    find(&errs, "server.interfaces[1]", "listed twice");
    find(&errs, "server.interfaces[2]", "1 to 15 bytes");
    find(&errs, "server.lease_time", "greater than 0");
    find(&errs, "server.offer_hold", "greater than 0");
    find(&errs, "server.server_id", "unicast");
    find(&errs, "server.pid_file", "empty");
    assert_eq!(errs.len(), 6, "{errs:#?}");

    let errs = toml_errs(&with(
        "[server]\nlease_time = \"1h\"\nrenewal_time = \"50m\"\nrebinding_time = \"40m\"\n",
    ));
    at(
        &errs,
        "server.rebinding_time",
        "greater than renewal_time",
        8,
        18,
    );
    let errs = toml_errs(&with(
        "[server]\nlease_time = \"1h\"\nrenewal_time = \"1h\"\nrebinding_time = \"2h\"\n",
    ));
    find(&errs, "server.renewal_time", "less than lease_time");
    find(&errs, "server.rebinding_time", "less than lease_time");
    let errs = toml_errs(&format!(
        "[server]\nrenewal_time = \"2h\"\n{BASE}lease_time = \"1h\"\n"
    ));
    find(
        &errs,
        "subnets[0].lease_time",
        "longer than server.renewal_time",
    );
    toml_ok(&with(
        "[server]\nlease_time = \"1h\"\nrenewal_time = \"30m\"\nrebinding_time = \"50m\"\n",
    ));
    let errs = toml_errs(&with(
        "[server]\nlease_time = \"8h\"\nrenewal_time = \"7h\"\n",
    ));
    find(
        &errs,
        "server.renewal_time",
        "default rebinding_time (7/8 of lease_time = 25200s)",
    );
    let errs = toml_errs(&with(
        "[server]\nlease_time = \"8h\"\nrebinding_time = \"4h\"\n",
    ));
    find(
        &errs,
        "server.rebinding_time",
        "default renewal_time (half of lease_time = 14400s)",
    );
    toml_ok(&with(
        "[server]\nlease_time = \"8h\"\nrenewal_time = \"6h\"\n",
    ));
    toml_ok(&with(
        "[server]\nlease_time = \"8h\"\nrebinding_time = \"5h\"\n",
    ));
}

#[test]
fn store_and_logging_checks() {
    let errs = toml_errs(&with(
        "[store]\npath = \"\"\n[logging]\nformat = \"xml\"\nlevel = \" \"\n",
    ));
    find(&errs, "store.path", "empty");
    find(&errs, "logging.format", "unknown log format \"xml\"");
    find(&errs, "logging.level", "empty");
    let c = toml_ok(&with(
        "[logging]\nformat = \"json\"\nlevel = \"leased=debug\"\n",
    ));
    assert_eq!(c.logging.format, LogFormat::Json);
    assert_eq!(c.logging.level, "leased=debug");
}

#[test]
fn reservation_checks() {
    let text = with(
        r#"
[[reservations]]
mac = "aa:bb:cc:dd:ee:01"
ip = "198.18.0.20"

[[reservations]]
mac = "AA-BB-CC-DD-EE-01"
ip = "198.18.0.20"

[[reservations]]
ip = "198.18.0.21"

[[reservations]]
mac = "aa:bb:cc:dd:ee:02"
client_id = "01:aa:bb:cc:dd:ee:02"
ip = "198.18.0.22"

[[reservations]]
mac = "aa:bb:cc:dd:ee:03"
ip = "198.18.9.1"

[[reservations]]
mac = "aa:bb:cc:dd:ee:04"
ip = "198.18.0.1"

[[reservations]]
mac = "aa:bb:cc:dd:ee:05"
ip = "198.18.0.255"

[[reservations]]
client_id = "01:aa:bb:cc:dd:ee:01"
ip = "198.18.0.23"

[[reservations]]
client_id = "01"
ip = "198.18.0.24"

[[reservations]]
mac = "aa:bb:cc:dd:ee"
ip = "198.18.0.25"
hostname = "bad_name"
first_seen = -1

[[reservations]]
client_id = "zz"
ip = "198.18.0"
"#,
    );
    let errs = toml_errs(&text);
    find(
        &errs,
        "reservations[1].mac",
        "already reserved by reservations[0]",
    );
    find(
        &errs,
        "reservations[1].ip",
        "already reserved by reservations[0]",
    );
    at(&errs, "reservations[2]", "needs mac or client_id", 14, 1);
    find(&errs, "reservations[3].client_id", "not both");
    find(&errs, "reservations[4].ip", "not inside any subnet");
    find(&errs, "reservations[5].ip", "router of subnets[0]");
    find(&errs, "reservations[6].ip", "network or broadcast");
    find(
        &errs,
        "reservations[7].client_id",
        "already reserved by reservations[0]",
    );
    find(&errs, "reservations[8].client_id", "at least 2 bytes");
    find(&errs, "reservations[9].mac", "invalid MAC");
    find(&errs, "reservations[9].hostname", "letters, digits");
    find(&errs, "reservations[9].first_seen", "Unix time");
    find(&errs, "reservations[10].client_id", "hex");
    find(&errs, "reservations[10].ip", "invalid IPv4 address");
    assert_eq!(errs.len(), 14, "{errs:#?}");
}

#[test]
fn reservation_on_server_ids() {
    let errs = toml_errs(&format!(
        "[server]\nserver_id = \"198.18.0.2\"\n{BASE}server_id = \"198.18.0.3\"\n\
         [[reservations]]\nmac = \"aa:bb:cc:dd:ee:01\"\nip = \"198.18.0.2\"\n\
         [[reservations]]\nmac = \"aa:bb:cc:dd:ee:02\"\nip = \"198.18.0.3\"\n"
    ));
    find(&errs, "reservations[0].ip", "server.server_id");
    find(&errs, "reservations[1].ip", "server_id of subnets[0]");
}

#[test]
fn reservation_in_a_subnet_with_a_bad_network_is_not_a_second_error() {
    let errs = toml_errs(
        "[[subnets]]\nnetwork = \"198.18.0.0\"\n[[reservations]]\nmac = \"aa:bb:cc:dd:ee:01\"\nip = \"198.18.0.5\"\n",
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn reservations_go_to_their_subnet_in_file_order() {
    let c = toml_ok(&format!(
        "{BASE}[[subnets]]\nnetwork = \"198.18.1.0/24\"\n\
         [[reservations]]\nmac = \"aa:bb:cc:dd:ee:01\"\nip = \"198.18.1.5\"\n\
         [[reservations]]\nmac = \"aa:bb:cc:dd:ee:02\"\nip = \"198.18.0.5\"\n\
         [[reservations]]\nmac = \"aa:bb:cc:dd:ee:03\"\nip = \"198.18.1.4\"\n"
    ));
    let ips = |i: usize| -> Vec<Ipv4Addr> {
        c.network.subnets[i]
            .reservations
            .iter()
            .map(|r| r.ip)
            .collect()
    };
    assert_eq!(ips(0), [Ipv4Addr::new(198, 18, 0, 5)]);
    assert_eq!(
        ips(1),
        [Ipv4Addr::new(198, 18, 1, 5), Ipv4Addr::new(198, 18, 1, 4)]
    );
    assert_eq!(c.network.subnets[1].pools, []);
}

// ---------------------------------------------------------------- MACs

#[test]
fn mac_spellings() {
    let want = HwAddr(vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    for spelling in [
        "aa:bb:cc:dd:ee:ff",
        "AA-BB-CC-DD-EE-FF",
        "aabbccddeeff",
        "AaBbCcDdEeFf",
    ] {
        let c = toml_ok(&with(&format!(
            "[[reservations]]\nmac = \"{spelling}\"\nip = \"198.18.0.9\"\n\
             [banned_macs]\n\"{spelling}\" = {{}}\n\
             [device_overrides.\"{spelling}\"]\nmtu = 1400\n"
        )));
        assert_eq!(
            c.network.subnets[0].reservations[0].key,
            ReservationKey::Mac(want.clone())
        );
        assert!(c.network.banned_macs.contains_key(&want), "{spelling}");
        assert!(c.network.device_overrides.contains_key(&want), "{spelling}");
    }
    for bad in [
        "aa:bb:cc:dd:ee",
        "aa:bb-cc:dd:ee:ff",
        "aa:bb:cc:dd:ee:fg",
        "aabbccddeeff00",
        "",
    ] {
        let errs = toml_errs(&with(&format!(
            "[[reservations]]\nmac = \"{bad}\"\nip = \"198.18.0.9\"\n"
        )));
        at(&errs, "reservations[0].mac", "invalid MAC", 6, 7);
    }
}

#[test]
fn duplicate_macs_after_normalisation() {
    let text = with(
        r#"[banned_macs]
"aa:bb:cc:dd:ee:ff" = {}
"AABBCCDDEEFF" = { note = "again" }
"nope" = {}

[device_overrides."00-11-22-33-44-55"]
mtu = 1400
[device_overrides."00:11:22:33:44:55"]
mtu = 1500
"#,
    );
    let errs = toml_errs(&text);
    at(
        &errs,
        "banned_macs.AABBCCDDEEFF",
        "listed twice (also as \"aa:bb:cc:dd:ee:ff\")",
        7,
        1,
    );
    at(&errs, "banned_macs.nope", "invalid MAC", 8, 1);
    at(
        &errs,
        "device_overrides.\"00:11:22:33:44:55\"",
        "listed twice",
        12,
        19,
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn banned_metadata_is_strict() {
    let errs = toml_errs(&with(
        "[banned_macs]\n\"aa:bb:cc:dd:ee:ff\" = { colour = \"red\" }\n",
    ));
    at(
        &errs,
        "banned_macs.\"aa:bb:cc:dd:ee:ff\".colour",
        "unknown field",
        6,
        25,
    );
    let errs = toml_errs(&with(
        "[banned_macs]\n\"aa:bb:cc:dd:ee:ff\" = { first_seen = -5 }\n",
    ));
    at(
        &errs,
        "banned_macs.\"aa:bb:cc:dd:ee:ff\".first_seen",
        "Unix time",
        6,
        38,
    );
}

// ---------------------------------------------------------------- durations

#[test]
fn durations() {
    let ok = |s: &str| parse_duration(&RawDuration::Text(s.into()));
    assert_eq!(ok("90s"), Ok(90));
    assert_eq!(ok("30m"), Ok(1_800));
    assert_eq!(ok("12h"), Ok(43_200));
    assert_eq!(ok("7d"), Ok(604_800));
    assert_eq!(ok("1h30m"), Ok(5_400));
    assert_eq!(ok("1d2h3m4s"), Ok(93_784));
    assert_eq!(ok("3600"), Ok(3_600));
    assert_eq!(ok("0s"), Ok(0));
    assert_eq!(ok("1H"), Ok(3_600));
    assert_eq!(parse_duration(&RawDuration::Secs(42)), Ok(42));
    for bad in [
        "",
        "h",
        "1x",
        "1h1h",
        "30m1h",
        "1.5h",
        "1 h",
        "-5s",
        "99999999999s",
    ] {
        assert!(ok(bad).is_err(), "{bad:?}");
    }
    assert!(ok("4294967295").is_ok());
    assert!(ok("4294967296").is_err());
    assert!(ok("49711d").is_err());
    assert!(parse_duration(&RawDuration::Secs(-1)).is_err());
    assert!(parse_duration(&RawDuration::Secs(1 << 40)).is_err());

    let c = toml_ok(&with("[server]\nlease_time = 3600\noffer_hold = \"2m\"\n"));
    assert_eq!(
        (c.network.server.lease_time, c.network.server.offer_hold),
        (3_600, 120)
    );
    let errs = toml_errs(&with(
        "[server]\nsticky_window = \"1w\"\ndecline_quarantine = -1\n",
    ));
    at(
        &errs,
        "server.sticky_window",
        "invalid duration \"1w\"",
        6,
        17,
    );
    at(&errs, "server.decline_quarantine", "out of range", 7, 22);
}

// ---------------------------------------------------------------- option encodings

fn opts(body: &str) -> OptionSet {
    toml_ok(&format!("[options]\n{body}\n{BASE}"))
        .network
        .options
}

fn opt_errs(body: &str) -> Vec<ConfigError> {
    toml_errs(&format!("[options]\n{body}\n{BASE}"))
}

#[test]
fn classless_routes_encoding() {
    let o = opts(
        r#"static_routes = [
  { destination = "198.19.0.0/16", gateway = "198.18.0.254" },
  { destination = "0.0.0.0/0", gateway = "198.18.0.1" },
  { destination = "198.18.128.0/17", gateway = "198.18.0.2" },
]"#,
    );
    assert_eq!(
        o.values[&121],
        [
            16, 198, 19, 198, 18, 0, 254, //
            0, 198, 18, 0, 1, //
            17, 198, 18, 128, 198, 18, 0, 2
        ]
    );
    assert_eq!(o.mirror_routes_to_249, None);
    let errs = opt_errs(
        "static_routes = [{ destination = \"198.19.0.1/16\", gateway = \"x\" }]\nmirror_routes_to_249 = true",
    );
    at(
        &errs,
        "options.static_routes[0].destination",
        "host bits",
        2,
        34,
    );
    at(
        &errs,
        "options.static_routes[0].gateway",
        "invalid IPv4",
        2,
        61,
    );
    let errs = opt_errs("static_routes = []");
    find(&errs, "options.static_routes", "at least one");
}

#[test]
fn domain_search_encoding() {
    let o = opts(r#"domain_search = ["example.lan", "corp.example.lan", "lan."]"#);
    assert_eq!(
        o.values[&119],
        b"\x07example\x03lan\x00\x04corp\xc0\x00\xc0\x08".to_vec()
    );
    let errs = opt_errs(r#"domain_search = ["ok.lan", "bad..lan", "-x.lan"]"#);
    at(&errs, "options.domain_search[1]", "empty label", 2, 28);
    find(
        &errs,
        "options.domain_search[2]",
        "starting or ending with '-'",
    );
    let errs = opt_errs(&format!("domain_name = \"{}.lan\"", "a".repeat(64)));
    find(&errs, "options.domain_name", "longer than 63");
}

#[test]
fn vendor_specific_hex_spellings() {
    for spelling in [
        "01:04:de:ad:be:ef",
        "01 04 DE AD BE EF",
        "0104deadbeef",
        "01-04-de-ad-be-ef",
    ] {
        let o = opts(&format!("vendor_specific = \"{spelling}\""));
        assert_eq!(o.values[&43], [1, 4, 0xde, 0xad, 0xbe, 0xef], "{spelling}");
    }
    let errs = opt_errs("vendor_specific = \"01:0g\"");
    at(&errs, "options.vendor_specific", "hex", 2, 19);
    let errs = opt_errs("vendor_specific = \"\"");
    find(&errs, "options.vendor_specific", "empty");
}

#[test]
fn named_option_encodings() {
    let o = opts(
        "dns = [\"198.18.0.53\"]\nmtu = 68\ntftp_server = \"tftp.lan\"\nbootfile = \"a.efi\"\nwpad_url = \"http://w/\"",
    );
    assert_eq!(o.values[&6], [198, 18, 0, 53]);
    assert_eq!(o.values[&26], [0, 68]);
    assert_eq!(o.values[&66], b"tftp.lan");
    assert_eq!(o.next_server, None, "a name is not an address");
    assert_eq!(o.values[&67], b"a.efi");
    assert_eq!(o.boot_file.as_deref(), Some("a.efi"));
    assert_eq!(o.values[&252], b"http://w/");
    let o = opts("tftp_server = \"198.18.0.7\"\nnext_server = \"198.18.0.8\"");
    assert_eq!(o.next_server, Some(Ipv4Addr::new(198, 18, 0, 8)));

    let errs = opt_errs(
        "mtu = 67\ndns = []\nntp = [\"198.18.0.1\", \"198.18.0.256\"]\nwins = [\"1.2.3\"]\nbootfile = \"\"\nnext_server = \"n\"",
    );
    at(&errs, "options.mtu", "out of range (68..=65535)", 2, 7);
    find(&errs, "options.dns", "at least one");
    at(&errs, "options.ntp[1]", "invalid IPv4", 4, 22);
    find(&errs, "options.wins[0]", "invalid IPv4");
    find(&errs, "options.bootfile", "empty");
    find(&errs, "options.next_server", "invalid IPv4");
    let errs = opt_errs("mtu = 65536");
    find(&errs, "options.mtu", "out of range");
    let errs = opt_errs(&format!("bootfile = \"{}\"", "b".repeat(129)));
    find(&errs, "options.bootfile", "128");
}

#[test]
fn extra_option_types() {
    let o = opts(
        r#"extra = [
  { code = 150, type = "ip", value = "198.18.0.2" },
  { code = 151, type = "ip_list", value = ["198.18.0.2", "198.18.0.3"] },
  { code = 152, type = "u8", value = 255 },
  { code = 153, type = "u16", value = 65535 },
  { code = 154, type = "u32", value = 4294967295 },
  { code = 155, type = "bool", value = true },
  { code = 156, type = "string", value = "héllo" },
  { code = 157, type = "hex", value = "0xdeadbeef" },
]"#,
    );
    assert_eq!(o.values[&150], [198, 18, 0, 2]);
    assert_eq!(o.values[&151], [198, 18, 0, 2, 198, 18, 0, 3]);
    assert_eq!(o.values[&152], [255]);
    assert_eq!(o.values[&153], [255, 255]);
    assert_eq!(o.values[&154], [255, 255, 255, 255]);
    assert_eq!(o.values[&155], [1]);
    assert_eq!(o.values[&156], "héllo".as_bytes());
    assert_eq!(o.values[&157], [0xde, 0xad, 0xbe, 0xef]);
}

#[test]
fn extra_option_errors() {
    let errs = opt_errs(
        r#"dns = ["198.18.0.53"]
extra = [
  { code = 53, type = "u8", value = 1 },
  { code = 256, type = "u8", value = 1 },
  { code = 160, type = "u8", value = 256 },
  { code = 161, type = "u16", value = -1 },
  { code = 162, type = "u32", value = "7" },
  { code = 163, type = "bool", value = 1 },
  { code = 164, type = "ip", value = "198.18.0" },
  { code = 165, type = "ip_list", value = ["198.18.0.1", 7] },
  { code = 166, type = "colour", value = "red" },
  { code = 6, type = "ip", value = "198.18.0.1" },
  { code = 167, type = "string", value = "" },
  { code = 167, type = "string", value = "again" },
  { code = 168, type = "ip_list", value = [] },
]"#,
    );
    at(&errs, "options.extra[0].code", "set by the server", 4, 12);
    find(&errs, "options.extra[1].code", "out of range (1..=254)");
    at(
        &errs,
        "options.extra[2].value",
        "256 is out of range for u8 (0..=255)",
        6,
        38,
    );
    find(&errs, "options.extra[3].value", "out of range for u16");
    find(
        &errs,
        "options.extra[4].value",
        "needs an integer, got a string",
    );
    find(
        &errs,
        "options.extra[5].value",
        "needs true or false, got an integer",
    );
    find(&errs, "options.extra[6].value", "invalid IPv4");
    find(
        &errs,
        "options.extra[7].value[1]",
        "expected an IPv4 address, got an integer",
    );
    at(
        &errs,
        "options.extra[8].type",
        "unknown option type \"colour\"",
        12,
        24,
    );
    find(&errs, "options.extra[9].code", "already set by options.dns");
    find(&errs, "options.extra[10].value", "empty");
    find(
        &errs,
        "options.extra[11].code",
        "already set by options.extra[10]",
    );
    find(&errs, "options.extra[12].value", "at least one");
    assert_eq!(errs.len(), 13, "{errs:#?}");

    for owned in crate::options::SERVER_OWNED {
        let errs = opt_errs(&format!(
            "extra = [{{ code = {owned}, type = \"u8\", value = 1 }}]"
        ));
        find(&errs, "options.extra[0].code", "");
    }
}

#[test]
fn extra_clashes_with_sibling_keys() {
    let errs = toml_errs(&format!(
        "{BASE}[subnets.options]\nextra = [{{ code = 3, type = \"ip\", value = \"198.18.0.1\" }}]\n\
         [[reservations]]\nmac = \"aa:bb:cc:dd:ee:ff\"\nip = \"198.18.0.9\"\nhostname = \"h\"\n\
         [reservations.options]\nextra = [{{ code = 12, type = \"string\", value = \"h2\" }}]\n"
    ));
    find(
        &errs,
        "subnets[0].options.extra[0].code",
        "already set by subnets[0].routers",
    );
    find(
        &errs,
        "reservations[0].options.extra[0].code",
        "already set by reservations[0].hostname",
    );
    assert_eq!(errs.len(), 2);
    // Without routers, a subnet may set option 3 itself; option 1 overrides the derived mask.
    let c = toml_ok(
        "[[subnets]]\nnetwork = \"198.18.0.0/24\"\n[subnets.options]\nextra = [\
         { code = 3, type = \"ip\", value = \"198.18.0.9\" }, { code = 1, type = \"ip\", value = \"255.255.0.0\" }]\n",
    );
    assert_eq!(c.network.subnets[0].options.values[&3], [198, 18, 0, 9]);
    assert_eq!(c.network.subnets[0].options.values[&1], [255, 255, 0, 0]);
}

#[test]
fn option_layers_merge_by_code() {
    let c = toml_ok(&format!(
        "[options]\ndns = [\"198.18.0.53\"]\nntp = [\"198.18.0.1\"]\nbootfile = \"g.efi\"\n{BASE}\
         [subnets.options]\ndns = [\"198.18.0.54\"]\n"
    ));
    let s = &c.network.subnets[0].options;
    assert_eq!(s.values[&6], [198, 18, 0, 54]);
    assert_eq!(s.values[&42], [198, 18, 0, 1]);
    assert_eq!(s.boot_file.as_deref(), Some("g.efi"));
    assert_eq!(
        c.network.options.values[&6],
        [198, 18, 0, 53],
        "global unchanged"
    );
}

// ---------------------------------------------------------------- LEASED_BANNED_MACS

#[test]
fn merge_banned_env_accepts_every_separator_and_spelling() {
    let mut c = toml_ok(&with(
        "[banned_macs]\n\"aa:bb:cc:dd:ee:01\" = { note = \"kept\" }\n",
    ));
    merge_banned_env(
        &mut c,
        "aa:bb:cc:dd:ee:01, AA-BB-CC-DD-EE-02;aabbccddee03\n aa:bb:cc:dd:ee:04\t,,",
    )
    .unwrap();
    assert_eq!(c.network.banned_macs.len(), 4);
    let m = |s: &str| HwAddr::parse_mac(s).unwrap();
    assert_eq!(
        c.network.banned_macs[&m("aabbccddee01")].note.as_deref(),
        Some("kept")
    );
    for s in ["aabbccddee02", "aabbccddee03", "aabbccddee04"] {
        assert_eq!(c.network.banned_macs[&m(s)], Metadata::default());
    }
    merge_banned_env(&mut c, "").unwrap();
    merge_banned_env(&mut c, " \n ").unwrap();
    assert_eq!(c.network.banned_macs.len(), 4);
}

#[test]
fn merge_banned_env_reports_each_bad_token_and_changes_nothing() {
    let mut c = toml_ok(BASE);
    let errs = merge_banned_env(
        &mut c,
        "aa:bb:cc:dd:ee:01,nope;aa:bb:cc:dd:ee\n11:22:33:44:55:66",
    )
    .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("\"nope\""), "{errs:?}");
    assert!(errs[1].contains("\"aa:bb:cc:dd:ee\""), "{errs:?}");
    assert!(c.network.banned_macs.is_empty());
}

// ---------------------------------------------------------------- robustness

#[test]
fn truncated_and_garbled_inputs_never_panic() {
    let json = example_json();
    for text in [EXAMPLE, json.as_str()] {
        for cut in (0..text.len()).step_by(7) {
            if let Some(prefix) = text.get(..cut) {
                let _ = load_str(prefix, "t", Format::Toml);
                let _ = load_str(prefix, "t", Format::Json);
            }
        }
    }
    for text in [
        "",
        "{",
        "[",
        "\u{0}",
        "[[subnets]]",
        "{\"subnets\": null}",
        "= 1",
    ] {
        let _ = load_str(text, "t", Format::Toml);
        let _ = load_str(text, "t", Format::Json);
    }
}

#[test]
fn read_errors_name_the_file() {
    let e = load_file(Path::new("/nonexistent/leased.toml")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/leased.toml: cannot read config file")
    );
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_an_error_value_not_a_panic(s in "\\PC{0,200}") {
            let _ = load_str(&s, "p", Format::Toml);
            let _ = load_str(&s, "p", Format::Json);
        }

        #[test]
        fn any_byte_edit_of_the_example_is_handled(pos in 0usize..4000, c in proptest::char::any()) {
            let mut text: Vec<char> = EXAMPLE.chars().collect();
            if let Some(slot) = text.get_mut(pos % EXAMPLE.chars().count()) {
                *slot = c;
            }
            let text: String = text.into_iter().collect();
            if let Err(e) = load_str(&text, "p", Format::Toml) {
                prop_assert!(!e.0.is_empty());
            }
        }
    }
}

#[test]
fn subnets_written_empty_serve_nothing_but_absent_subnets_are_an_error() {
    let c = toml_ok("subnets = []\n[server]\npid_file = \"/run/leased/leased.pid\"\n");
    assert!(c.network.subnets.is_empty());
    let c = load_str(r#"{"subnets": []}"#, "t.json", Format::Json).unwrap();
    assert!(c.network.subnets.is_empty());
    find(
        &toml_errs("[server]\n"),
        "subnets",
        "at least one [[subnets]]",
    );
    find(&toml_errs(""), "subnets", "subnets = []");
}
