//! dhcpd.leases reader: every field, last-wins, and the inputs the seed crashed on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::path::Path;

use leased_isc::{
    BindingState, IscLease, IscLeases, IscTime, isc_escape, parse_leases, read_leases,
};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn get<'a>(l: &'a IscLeases, a: &str) -> &'a IscLease {
    l.leases
        .iter()
        .find(|x| x.ip == ip(a))
        .unwrap_or_else(|| panic!("no lease {a}"))
}

fn edge() -> IscLeases {
    read_leases(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/edge.leases")).unwrap()
}

#[test]
fn every_field() {
    let l = edge();
    let x = get(&l, "198.18.10.102");
    assert_eq!(x.starts, Some(IscTime::At(1_600_000_000)));
    assert_eq!(x.ends, Some(IscTime::At(1_600_003_600)));
    assert_eq!(x.cltt, Some(IscTime::At(1_600_000_000)));
    assert_eq!(x.binding_state, Some(BindingState::Active));
    assert_eq!(x.next_binding_state, Some(BindingState::Free));
    assert_eq!(x.rewind_binding_state, Some(BindingState::Free));
    let hw = x.hardware.as_ref().unwrap();
    assert_eq!(
        (hw.htype.as_str(), hw.address.as_str()),
        ("ethernet", "52:54:00:ff:02:23")
    );
    assert_eq!(
        x.uid.as_deref(),
        Some(&[1u8, 0x52, 0x54, 0, 0xff, 2, 0x23][..])
    );
    assert_eq!(x.client_hostname.as_deref(), Some("laptop \"one\""));
    assert_eq!(
        x.vars.get("ddns-fwd-name").map(String::as_str),
        Some("clientA.example")
    );
    assert_eq!(
        x.vars.get("vendor-class-identifier").map(String::as_str),
        Some("MSFT 5.0")
    );
    assert_eq!(x.circuit_id.as_deref(), Some(&b"eth0/1/2"[..]));
    assert_eq!(
        x.remote_id.as_deref(),
        Some(&[0u8, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e][..])
    );

    let f = l
        .leases
        .iter()
        .find(|x| x.ip == ip("198.18.10.101"))
        .unwrap();
    assert_eq!(
        f.binding_state, None,
        "missing binding state is kept as None"
    );
    assert_eq!(f.ends, Some(IscTime::Never));
}

#[test]
fn last_entry_wins_and_truncated_tail_is_dropped() {
    let l = edge();
    let a = get(&l, "198.18.10.100");
    assert_eq!(a.binding_state, Some(BindingState::Active));
    assert_eq!(a.hardware.as_ref().unwrap().address, "52:54:00:ff:02:99");
    assert_eq!(a.starts.unwrap().to_string(), "5 2020/08/07 02:28:52");
    assert_eq!(a.uid, None, "fields of the superseded entry do not leak");
    // The truncated last entry for .103 is ignored: the complete earlier one stands.
    assert_eq!(
        get(&l, "198.18.10.103").binding_state,
        Some(BindingState::Released)
    );
    assert_eq!(l.entries_read, 9);
    assert_eq!(l.leases.len(), 8);
    let sorted: Vec<Ipv4Addr> = l.leases.iter().map(|x| x.ip).collect();
    let mut s2 = sorted.clone();
    s2.sort();
    assert_eq!(sorted, s2);
}

#[test]
fn states_duid_failover_hosts() {
    let l = edge();
    for (a, st) in [
        ("198.18.10.104", BindingState::Backup),
        ("198.18.10.105", BindingState::Expired),
        ("198.18.10.106", BindingState::Abandoned),
        ("198.18.10.107", BindingState::Reset),
    ] {
        assert_eq!(get(&l, a).binding_state, Some(st));
    }
    let duid = l.server_duid.as_deref().unwrap();
    assert_eq!(&duid[..4], &[0, 1, 0, 1]);
    assert_eq!(
        isc_escape(duid),
        "\\000\\001\\000\\001&\\276'cRT\\000\\377\\002!"
    );
    assert_eq!(l.failover_peers.len(), 1);
    assert_eq!(l.failover_peers[0].name, "fo");
    assert_eq!(l.failover_peers[0].my_state.as_deref(), Some("normal"));
    assert_eq!(
        l.failover_peers[0].partner_state.as_deref(),
        Some("communications-interrupted")
    );
    let hosts: Vec<&str> = l.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(hosts, ["omapi-host"], "'deleted' removes a host");
}

#[test]
fn warnings_for_unknowns_and_truncation() {
    let l = edge();
    let w: Vec<String> = l.warnings.iter().map(|w| w.to_string()).collect();
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    assert!(has("unknown statement 'frobnicate'"), "{w:#?}");
    assert!(has("unknown statement 'mystery-top-level'"));
    assert!(has("valid IPv4"));
    assert!(has("incomplete lease entry"));
    assert!(has("end of file"));
    // 'on expiry { … }' inside a lease is known and silent.
    assert!(!has("'on'"));
    assert!(w.iter().all(|x| x.contains("edge.leases:")));
}

#[test]
fn blank_lines_comments_and_oddities_never_crash() {
    for text in [
        "",
        "\n\n\n",
        "# only a comment",
        "lease 198.18.0.1 {\n\n\n}\n",
        "lease 198.18.0.1 { # c\n # c2\n binding state active; # c3\n } # c4",
        "lease 198.18.0.1 {",
        "lease 198.18.0.1 { binding state",
        "lease 198.18.0.1 { binding;  state; next; rewind binding; set; set x; hardware; uid; starts; ends 1 2; }",
        "lease 198.18.0.1;",
        "lease { }",
        "}}}}",
        "lease 198.18.0.1 { uid \"unterminated",
        "\u{0}\u{1}\u{2}",
        "lease 198.18.0.1 { starts 4 2020/02/30 00:00:00; ends 9 9999/12/31 23:59:60; }",
    ] {
        let _ = parse_leases(text.as_bytes(), "t");
    }
    let l = parse_leases(b"lease 198.18.0.1 {\n\n binding state active;\n\n}\n", "t");
    assert_eq!(l.leases.len(), 1);
    assert!(l.warnings.is_empty());
    let l = parse_leases(
        b"lease 198.18.0.1 { starts 4 2020/02/30 00:00:00; binding state free; }",
        "t",
    );
    assert_eq!(l.leases[0].starts, None);
    assert_eq!(l.warnings.len(), 1);
    assert_eq!((l.warnings[0].line, l.warnings[0].col), (1, 20));
}

/// What DHCPStats reports of an entry, as dhcpd 4.4 writes it (failover times, `set`
/// variables, DDNS names, a binary value), read back as written.
const DHCPD44: &str = r#"lease 198.18.20.131 {
  starts 3 2020/09/16 14:41:51;
  ends 3 2020/09/23 14:41:51;
  tstp 0 2020/09/27 02:41:51;
  tsfp 0 2020/09/27 02:41:52;
  atsfp 0 2020/09/27 02:41:53;
  cltt 3 2020/09/16 14:41:51;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 52:54:00:16:7d:92;
  uid 01:52:54:00:16:7d:92;
  set ddns-rev-name = "131.20.18.198.in-addr.arpa.";
  set ddns-txt = "\001\002\005v\304\013C1";
  set ddns-fwd-name = "clientA.subnet.example";
  set vendor-class-identifier = "MSFT 5.0";
  set vendor-string = "android-dhcp-13";
  client-hostname "clientA";
}
lease 198.18.20.132 {
  starts 3 2020/09/16 14:41:51;
  binding state active;
  uid "\377\000\032\3161\000\001\"x";
}
"#;

#[test]
fn dhcpstats_fields_as_written() {
    let l = parse_leases(DHCPD44.as_bytes(), "dhcpd.leases");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let x = get(&l, "198.18.20.131");
    assert_eq!(x.tstp.unwrap().to_string(), "0 2020/09/27 02:41:51");
    assert_eq!(x.tsfp.unwrap().to_string(), "0 2020/09/27 02:41:52");
    assert_eq!(x.atsfp.unwrap().to_string(), "0 2020/09/27 02:41:53");
    // An unquoted colon-hex uid (lease-id-format hex) comes back as written, not re-escaped.
    assert_eq!(x.uid_text.as_deref(), Some("01:52:54:00:16:7d:92"));
    assert_eq!(
        x.uid.as_deref(),
        Some(&[1u8, 0x52, 0x54, 0, 0x16, 0x7d, 0x92][..])
    );
    let var = |k: &str| x.vars.get(k).map(String::as_str);
    assert_eq!(var("ddns-fwd-name"), Some("clientA.subnet.example"));
    assert_eq!(var("ddns-rev-name"), Some("131.20.18.198.in-addr.arpa."));
    assert_eq!(var("vendor-class-identifier"), Some("MSFT 5.0"));
    assert_eq!(var("vendor-string"), Some("android-dhcp-13"));
    // Binary values keep dhcpd's escapes, as DHCPStats shows them.
    assert_eq!(var("ddns-txt"), Some(r"\001\002\005v\304\013C1"));
    assert_eq!(x.vars.len(), 5);
    // A quoted uid: its text between the quotes, escapes (\" included) kept.
    let y = get(&l, "198.18.20.132");
    assert_eq!(
        y.uid_text.as_deref(),
        Some(r#"\377\000\032\3161\000\001\"x"#)
    );
    assert_eq!(
        y.uid.as_deref(),
        Some(&[0xffu8, 0, 0x1a, 0xce, b'1', 0, 1, b'"', b'x'][..])
    );
}

#[test]
fn entry_without_binding_state_is_judged_at_the_given_now() {
    // 2020-08-06 06:28:52 UTC, the end written in these entries.
    let end: i64 = 1_596_695_332;
    let text = "\
lease 198.18.30.1 {
  starts 4 2020/08/06 02:28:52;
  ends 4 2020/08/06 06:28:52;
  hardware ethernet 52:54:00:00:30:01;
}
lease 198.18.30.2 {
  ends never;
}
lease 198.18.30.3 {
  starts 4 2020/08/06 02:28:52;
}
lease 198.18.30.4 {
  ends 4 2020/08/06 06:28:52;
  on expiry { set gone = \"yes\"; }
}
lease 198.18.30.5 {
  ends 4 2020/08/06 06:28:52;
  binding state free;
}
lease 198.18.30.5 {
  ends 4 2020/08/06 06:28:52;
}
lease 198.18.30.6 {
  ends 4 2020/08/06 06:28:52;
}
lease 198.18.30.6 {
  ends 4 2020/08/06 06:28:52;
  binding state backup;
}
";
    let l = parse_leases(text.as_bytes(), "/var/lib/dhcp/dhcpd.leases");
    let at = |a: &str, now: i64| get(&l, a).binding_state_at(now);
    // dhcpd's rule: active while `ends` is in the future, free from then on.
    assert_eq!(at("198.18.30.1", end - 1), BindingState::Active);
    assert_eq!(at("198.18.30.1", end), BindingState::Free);
    assert_eq!(at("198.18.30.1", end + 400 * 86_400), BindingState::Free);
    // `ends never`: active at any time; no `ends` at all: free.
    assert_eq!(at("198.18.30.2", i64::MAX), BindingState::Active);
    assert_eq!(at("198.18.30.3", 0), BindingState::Free);
    // An expiry hook keeps it active past its end, as in dhcpd.
    assert_eq!(at("198.18.30.4", end + 1), BindingState::Active);
    // The last entry decides, with or without a state; a written state is never overridden.
    assert_eq!(at("198.18.30.5", end - 1), BindingState::Active);
    assert_eq!(at("198.18.30.6", end - 1), BindingState::Backup);
    // One warning per current entry without a state, with its file and line.
    let w: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    let line = |n: u32, ip: &str| {
        format!(
            "/var/lib/dhcp/dhcpd.leases:{n}:1: lease {ip} has no 'binding state': taken as \
             active while its 'ends' is in the future and free after, as dhcpd does"
        )
    };
    assert_eq!(
        w,
        [
            line(1, "198.18.30.1"),
            line(6, "198.18.30.2"),
            line(9, "198.18.30.3"),
            line(12, "198.18.30.4"),
            line(20, "198.18.30.5"),
        ]
    );
}

#[test]
fn old_style_fields() {
    let l = parse_leases(
        b"lease 198.18.0.1 { abandoned; ddns-fwd-name \"a.example\"; hardware ethernet 0:1:2:3:4:5; }",
        "t",
    );
    let x = &l.leases[0];
    assert_eq!(x.binding_state, Some(BindingState::Abandoned));
    assert_eq!(
        x.vars.get("ddns-fwd-name").map(String::as_str),
        Some("a.example")
    );
    assert_eq!(x.hardware.as_ref().unwrap().address, "00:01:02:03:04:05");
}

#[test]
fn serialises_in_isc_time_form() {
    let l = edge();
    let j = serde_json::to_value(get(&l, "198.18.10.100")).unwrap();
    assert_eq!(j["starts"], "5 2020/08/07 02:28:52");
    assert_eq!(j["binding_state"], "active");
    assert!(j.get("uid").is_none());
    let j = serde_json::to_value(get(&l, "198.18.10.101")).unwrap();
    assert_eq!(j["ends"], "never");
    let j = serde_json::to_value(BindingState::Other("weird".into())).unwrap();
    assert_eq!(j, "weird");
}

#[test]
fn missing_file_is_an_io_error() {
    assert!(read_leases(Path::new("/nonexistent/dhcpd.leases")).is_err());
}
