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
    let l = parse_leases(b"lease 198.18.0.1 { starts 4 2020/02/30 00:00:00; }", "t");
    assert_eq!(l.leases[0].starts, None);
    assert_eq!(l.warnings.len(), 1);
    assert_eq!((l.warnings[0].line, l.warnings[0].col), (1, 20));
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
