//! The streaming reader reads what the whole-file reader reads: the same current leases, hosts,
//! failover peers, server DUID and entry count, and the same warnings with the same places
//! (the streaming reader gives them in file order), on the fixtures, on the inputs DHCPStats
//! crashed on, on generated text, whatever the size of the read buffer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufReader;
use std::path::Path;

use leased_isc::{IscLeases, LeaseEntry, LeaseReader, parse_leases};
use proptest::prelude::*;

fn streamed(text: &[u8], buffer: usize) -> IscLeases {
    LeaseReader::new(BufReader::with_capacity(buffer, text), "f")
        .into_leases()
        .unwrap()
}

fn assert_same(text: &[u8]) {
    let whole = parse_leases(text, "f");
    for buffer in [1, 3, 16, 8192] {
        let mut s = streamed(text, buffer);
        let show = String::from_utf8_lossy(text);
        assert_eq!(s.leases, whole.leases, "leases, buffer {buffer}: {show}");
        assert_eq!(s.hosts, whole.hosts, "hosts: {show}");
        assert_eq!(s.failover_peers, whole.failover_peers, "peers: {show}");
        assert_eq!(s.server_duid, whole.server_duid, "duid: {show}");
        assert_eq!(s.entries_read, whole.entries_read, "entries: {show}");
        let mut w = whole.warnings.clone();
        w.sort();
        s.warnings.sort();
        assert_eq!(s.warnings, w, "warnings, buffer {buffer}: {show}");
    }
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_fixture_file() {
    assert_same(&data("edge.leases"));
}

#[test]
fn odd_inputs() {
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
        "a b } lease 198.18.0.1 { binding state active; }",
        "lease 198.18.0.1 { uid \"unterminated",
        "lease 198.18.0.1 { uid \"a;}\\\"{\"; binding state active; } lease 198.18.0.2 { }",
        "\u{0}\u{1}\u{2}",
        "lease 198.18.0.1 { starts 4 2020/02/30 00:00:00; ends 9 9999/12/31 23:59:60; }",
        "lease 198.18.0.1 { binding state active; } lease 198.18.0.1 { binding state free; }",
        "lease 198.18.0.1 { ends never; }\nlease 198.18.0.2 { x { y { z; } } a }\n",
        "é lease 198.18.0.1 { hardware ethernet 52:54:00:00:00:01; client-hostname \"é\"; }",
        "server-duid \"\\000\\001\"; failover peer \"p\" state { my state normal at 1 2020/01/01 00:00:00; }",
        "host h { hardware ethernet 52:54:00:00:00:09; fixed-address 198.18.0.9; }\nhost h { deleted; }",
        "lease 198.18.0.1 { binding state active; }\nlease 198.18.0.2 { starts 4 2020/08/06 02:28:52;",
    ] {
        assert_same(text.as_bytes());
    }
    let deep = "lease 198.18.0.3 ".to_string() + &"{".repeat(100) + &"}".repeat(100);
    assert_same(deep.as_bytes());
}

#[test]
fn every_entry_comes_in_file_order() {
    let text = b"lease 198.18.0.1 { binding state active; }\n  lease 198.18.0.1 { bogus; }\n";
    let got: Vec<LeaseEntry> = LeaseReader::new(&text[..], "f")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(matches!(&got[0], LeaseEntry::Lease { lease, col: 1 } if lease.line == 1));
    assert!(
        matches!(&got[1], LeaseEntry::Warning(w) if (w.line, w.col) == (2, 22) && w.message.contains("bogus"))
    );
    assert!(matches!(&got[2], LeaseEntry::Lease { lease, col: 3 } if lease.line == 2));
}

#[test]
fn a_read_error_is_an_error() {
    assert!(LeaseReader::open(Path::new("/nonexistent/dhcpd.leases")).is_err());
}

const FRAGS: &[&str] = &[
    "lease ",
    "198.18.0.1 ",
    "198.18.0.2 ",
    "{ ",
    "} ",
    "; ",
    "\n",
    "# c ; } {\n",
    "starts 4 2020/08/06 02:28:52",
    "ends never",
    "binding state active",
    "binding state free",
    "next binding state ",
    "hardware ethernet 52:54:00:00:00:01",
    "uid \"\\377\\\"x\"",
    "uid 01:02:03",
    "\"",
    "\\",
    "set x = \"a;b\"",
    "option agent.circuit-id \"c\"",
    "client-hostname \"h\"",
    "failover peer \"p\" state ",
    "my state normal at 4 2020/08/06 02:28:52",
    "server-duid ",
    "host h ",
    "fixed-address 198.18.0.9",
    "deleted",
    "on expiry ",
    "é",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn same_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        assert_same(&bytes);
    }

    #[test]
    fn same_on_plausible_fragments(idx in proptest::collection::vec(0..FRAGS.len(), 0..150)) {
        let text: String = idx.iter().map(|&i| FRAGS[i]).collect();
        assert_same(text.as_bytes());
    }
}
