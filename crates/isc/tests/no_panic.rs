//! Property: no input makes the readers panic; they return a value or an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::path::Path;

use leased_isc::{parse_conf, parse_leases, subnet_stats};
use proptest::prelude::*;

/// Fragments that build syntactically plausible files, so the walkers get exercised deeply
/// rather than failing at the first byte.
const FRAGS: &[&str] = &[
    "subnet ",
    "198.18.0.0 ",
    "netmask ",
    "255.255.255.0 ",
    "255.0.255.0 ",
    "{ ",
    "} ",
    "; ",
    "range ",
    "dynamic-bootp ",
    "198.18.0.10 ",
    "198.18.0.250 ",
    "10.0.0.1 ",
    "pool ",
    "group ",
    "host h ",
    "hardware ethernet ",
    "52:54:00:00:00:01 ",
    "fixed-address ",
    "shared-network s ",
    "option routers ",
    "option domain-name ",
    "\"x\\\"y\" ",
    ", ",
    "include \"a.conf\" ",
    "# c\n",
    "\n",
    "lease ",
    "starts 4 2020/08/06 02:28:52 ",
    "ends never ",
    "binding state active ",
    "binding state ",
    "uid \"\\377\" ",
    "set x = ",
    "option agent.circuit-id ",
    "failover peer \"p\" state ",
    "server-duid ",
    "\"",
    "=",
    "epoch 5 ",
    "ddns-domainname ",
    "if ",
    "else ",
];

fn loader(_: &Path) -> io::Result<Vec<u8>> {
    Ok(b"include \"a.conf\"; subnet 198.18.0.0 netmask 255.255.255.0 { }".to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let c = parse_conf(Path::new("/p/m.conf"), &bytes, &loader);
        let l = parse_leases(&bytes, "l");
        if let Ok(c) = c {
            let _ = subnet_stats(&c, &l.leases, 0);
        }
    }

    #[test]
    fn plausible_fragments(idx in proptest::collection::vec(0..FRAGS.len(), 0..200)) {
        let text: String = idx.iter().map(|&i| FRAGS[i]).collect();
        let c = parse_conf(Path::new("/p/m.conf"), text.as_bytes(), &loader);
        let l = parse_leases(text.as_bytes(), "l");
        if let Ok(c) = c {
            let st = subnet_stats(&c, &l.leases, 0);
            for s in st {
                prop_assert!(s.ips.unused <= s.ips.total);
            }
        }
    }
}
