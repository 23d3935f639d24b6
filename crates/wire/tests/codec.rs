//! Option payload encoders and small parsers.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use leased_wire::{
    CodecError, classless_routes, domain_search, ip_list, parse_hex, relay_suboptions,
};

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn rfc3397_example() {
    // RFC 3397 §3: "eng.apple.com." and "marketing.apple.com.".
    let got = domain_search(&names(&["eng.apple.com.", "marketing.apple.com."])).unwrap();
    let mut want = vec![3];
    want.extend_from_slice(b"eng");
    want.push(5);
    want.extend_from_slice(b"apple");
    want.push(3);
    want.extend_from_slice(b"com");
    want.push(0);
    want.push(9);
    want.extend_from_slice(b"marketing");
    want.extend_from_slice(&[0xc0, 0x04]);
    assert_eq!(got, want);
}

#[test]
fn domain_search_trailing_dot_optional_and_duplicates_compress() {
    let a = domain_search(&names(&["example.com", "example.com.", "corp.example.com"])).unwrap();
    let mut want = vec![7];
    want.extend_from_slice(b"example");
    want.push(3);
    want.extend_from_slice(b"com");
    want.push(0);
    want.extend_from_slice(&[0xc0, 0x00]); // whole name repeated
    want.push(4);
    want.extend_from_slice(b"corp");
    want.extend_from_slice(&[0xc0, 0x00]);
    assert_eq!(a, want);
    assert_eq!(domain_search(&[]).unwrap(), Vec::<u8>::new());
}

#[test]
fn domain_search_single_label_and_no_shared_suffix() {
    let got = domain_search(&names(&["lan", "home.arpa"])).unwrap();
    assert_eq!(
        got,
        [&[3][..], b"lan", &[0, 4], b"home", &[4], b"arpa", &[0]].concat()
    );
}

#[test]
fn domain_search_rejects_bad_names() {
    let long_label = "a".repeat(64);
    let ok_label = "a".repeat(63);
    // 4 labels of 63 = 4*64 + 1 = 257 bytes in wire form.
    let too_long = [ok_label.as_str(); 4].join(".");
    // 3 labels of 63 + one of 61 = 3*64 + 62 + 1 = 255: the limit.
    let just_fits = format!("{0}.{0}.{0}.{1}", ok_label, "b".repeat(61));
    assert!(domain_search(std::slice::from_ref(&ok_label)).is_ok());
    assert!(domain_search(&[just_fits]).is_ok());
    for bad in [
        "",
        ".",
        "a..b",
        ".a.b",
        "a.b..",
        long_label.as_str(),
        too_long.as_str(),
    ] {
        let err = domain_search(&names(&["good.example", bad])).unwrap_err();
        match err {
            CodecError::DomainName { name, .. } => assert_eq!(name, bad),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn domain_search_may_exceed_255() {
    let list: Vec<String> = (0..30)
        .map(|i| format!("host{i}.unrelated{i}.test"))
        .collect();
    let got = domain_search(&list).unwrap();
    assert!(got.len() > 255);
}

fn route(net: &str, via: [u8; 4]) -> (Ipv4Net, Ipv4Addr) {
    (net.parse().unwrap(), Ipv4Addr::from(via))
}

#[test]
fn rfc3442_examples() {
    assert_eq!(
        classless_routes(&[route("10.0.0.0/8", [10, 0, 0, 1])]),
        [8, 10, 10, 0, 0, 1]
    );
    assert_eq!(
        classless_routes(&[route("0.0.0.0/0", [198, 18, 0, 1])]),
        [0, 198, 18, 0, 1]
    );
    assert_eq!(
        classless_routes(&[route("10.17.0.0/16", [10, 0, 0, 1])]),
        [16, 10, 17, 10, 0, 0, 1]
    );
    // RFC 3442 §3 table: 10.27.129.0/24, 10.229.0.128/25, 10.198.122.47/32.
    assert_eq!(
        classless_routes(&[
            route("10.27.129.0/24", [1, 2, 3, 4]),
            route("10.229.0.128/25", [5, 6, 7, 8]),
            route("10.198.122.47/32", [9, 9, 9, 9]),
        ]),
        [
            24, 10, 27, 129, 1, 2, 3, 4, //
            25, 10, 229, 0, 128, 5, 6, 7, 8, //
            32, 10, 198, 122, 47, 9, 9, 9, 9,
        ]
    );
    assert!(classless_routes(&[]).is_empty());
}

#[test]
fn classless_routes_uses_network_address() {
    // Host bits are dropped: 10.1.2.3/8 describes 10.0.0.0/8; /9 keeps the top bit of octet 2.
    assert_eq!(
        classless_routes(&[route("10.1.2.3/8", [10, 0, 0, 1])]),
        [8, 10, 10, 0, 0, 1]
    );
    assert_eq!(
        classless_routes(&[route("10.255.2.3/9", [10, 0, 0, 1])]),
        [9, 10, 128, 10, 0, 0, 1]
    );
}

#[test]
fn ip_list_concatenates() {
    assert_eq!(
        ip_list(&[Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2)]),
        [198, 18, 0, 1, 198, 18, 0, 2]
    );
}

#[test]
fn hex_spellings() {
    let want = vec![0x01, 0x04, 0xde, 0xad];
    for s in [
        "01:04:de:ad",
        "01-04-de-ad",
        "0104dead",
        "0x0104dead",
        "0X0104DEAD",
        "01 04 de ad",
        "01:04:DE:AD",
        "  01:04:dE:Ad\n",
        "0x01:04:de:ad",
    ] {
        assert_eq!(parse_hex(s).unwrap(), want, "{s:?}");
    }
    assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
    assert_eq!(parse_hex("   ").unwrap(), Vec::<u8>::new());
}

#[test]
fn hex_rejections_say_why() {
    let msg = |s: &str| match parse_hex(s) {
        Err(CodecError::Hex(m)) => m,
        other => panic!("{s:?}: {other:?}"),
    };
    assert!(msg("010").contains("odd number"));
    assert!(msg("1:04").contains("splits a byte"));
    assert!(msg("01:4").contains("odd number"));
    assert!(msg("01:0g").contains("invalid character 'g'"));
    assert!(msg("0x").contains("no digits"));
    assert!(msg("01.02").contains("invalid character '.'"));
    assert!(msg("é1").contains("invalid character"));
}

#[test]
fn relay_suboptions_split_in_order() {
    let v = [1, 3, b'e', b't', b'h', 2, 0, 9, 2, 0xaa, 0xbb, 1, 1, b'x'];
    let subs = relay_suboptions(&v).unwrap();
    assert_eq!(
        subs,
        vec![
            (1, &b"eth"[..]),
            (2, &[][..]),
            (9, &[0xaa, 0xbb][..]),
            (1, &b"x"[..]),
        ]
    );
    assert!(relay_suboptions(&[]).unwrap().is_empty());
}

#[test]
fn relay_suboptions_rejects_truncation() {
    for bad in [&[1][..], &[1, 3, b'a', b'b'][..], &[1, 1, b'a', 2][..]] {
        assert!(
            matches!(relay_suboptions(bad), Err(CodecError::RelayInfo(_))),
            "{bad:?}"
        );
    }
}
