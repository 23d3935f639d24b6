//! DHCPStats-style counts, including the cases where the seed went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::path::Path;

use leased_isc::{
    IpCounts, IscConfig, parse_conf, parse_leases, subnet_index_of, subnet_stats, total_counts,
};

fn conf(text: &str) -> IscConfig {
    let none = |_: &Path| -> io::Result<Vec<u8>> { Err(io::ErrorKind::NotFound.into()) };
    parse_conf(Path::new("t.conf"), text.as_bytes(), &none).unwrap()
}

const CONF: &str = "\
subnet 198.18.0.0 netmask 255.255.255.0 {
  range 198.18.0.100 198.18.0.149;          # 50, outside a pool (the seed ignored it)
  pool { range 198.18.0.140 198.18.0.159; } # overlaps 10: 10 new
  host s1 { hardware ethernet 52:54:00:00:00:01; fixed-address 198.18.0.11; }
}
host s2 { hardware ethernet 52:54:00:00:00:02; fixed-address 198.18.0.12; }
host s2 { hardware ethernet 52:54:00:00:00:03; fixed-address 198.18.0.13; }
host other { fixed-address 198.18.9.9; }
host noip { hardware ethernet 52:54:00:00:00:04; }
subnet 198.18.1.0 netmask 255.255.255.0 { range 198.18.1.10 198.18.1.11; }
subnet 198.18.2.0 netmask 255.255.255.0 { }
";

const LEASES: &str = "\
lease 198.18.0.100 { binding state active; }
lease 198.18.0.101 { binding state active; }
lease 198.18.0.102 { binding state released; }
lease 198.18.0.103 { binding state free; }
lease 198.18.0.104 { binding state backup; }
lease 198.18.0.105 { binding state expired; }
lease 198.18.0.106 { binding state abandoned; }
lease 198.18.0.107 { }
lease 198.18.0.108 { binding state reset; }
lease 198.18.0.101 { binding state free; }
lease 198.18.0.50 { binding state active; }
lease 198.18.1.10 { binding state active; }
lease 198.18.1.11 { binding state active; }
lease 198.18.1.12 { binding state active; }
lease 198.18.1.13 { binding state active; }
lease 198.18.77.1 { binding state active; }
";

#[test]
fn counts_follow_the_documented_definitions() {
    let c = conf(CONF);
    let l = parse_leases(LEASES.as_bytes(), "t");
    let st = subnet_stats(&c, &l.leases, 0);
    assert_eq!(st.len(), 3);

    let s0 = &st[0];
    assert_eq!(
        s0.ips,
        IpCounts {
            total: 60,
            active: 2, // .100 and .50 (outside ranges, still active in the subnet)
            released: 1,
            free: 3, // .103, .101 (last entry wins), .107 (no state, no end: free as in dhcpd)
            backup: 1,
            unused: 60 - 9, // .100–.108 have entries
            static_: 3,     // .11, .12, .13 (two hosts named s2 both count)
        }
    );
    assert_eq!(
        (s0.expired, s0.abandoned, s0.other, s0.outside_ranges),
        (1, 1, 1, 1)
    );
    assert_eq!(s0.lease_ips.len(), 10);

    // More active leases than range addresses: the seed's unused went negative.
    let s1 = &st[1];
    assert_eq!(s1.ips.total, 2);
    assert_eq!(s1.ips.active, 4);
    assert_eq!(s1.ips.unused, 0);
    assert_eq!(s1.outside_ranges, 2);

    let s2 = &st[2];
    assert_eq!(s2.ips, IpCounts::default());

    let t = total_counts(&st);
    assert_eq!(t.total, 62);
    assert_eq!(t.active, 6);
    assert_eq!(t.static_, 3);

    assert_eq!(
        subnet_index_of(&c, "198.18.1.200".parse().unwrap()),
        Some(1)
    );
    assert_eq!(subnet_index_of(&c, "198.18.77.1".parse().unwrap()), None);
}

#[test]
fn json_shape_is_dhcpstats() {
    let c = conf(CONF);
    let st = subnet_stats(&c, &[], 0);
    let j = serde_json::to_string(&st[0].ips).unwrap();
    assert_eq!(
        j,
        r#"{"total":60,"active":0,"released":0,"free":0,"backup":0,"unused":60,"static":3}"#
    );
}

#[test]
fn most_specific_subnet_wins() {
    let c = conf(
        "subnet 198.18.0.0 netmask 255.255.0.0 { range 198.18.0.1 198.18.0.10; }\n\
         subnet 198.18.0.0 netmask 255.255.255.0 { range 198.18.0.5 198.18.0.6; }",
    );
    let l = parse_leases(b"lease 198.18.0.5 { binding state active; }", "t");
    let st = subnet_stats(&c, &l.leases, 0);
    assert_eq!(st[0].ips.active, 0);
    assert_eq!(st[1].ips.active, 1);
    assert_eq!(st[0].ips.unused, 10);
    assert_eq!(st[1].ips.unused, 1);
}

#[test]
fn huge_ranges_do_not_overflow() {
    let c = conf(
        "subnet 0.0.0.0 netmask 0.0.0.0 { range 0.0.0.0 255.255.255.255; range 1.2.3.4 1.2.3.5; }",
    );
    let st = subnet_stats(&c, &[], 0);
    assert_eq!(st[0].ips.total, 1u64 << 32);
    assert_eq!(st[0].ips.unused, 1u64 << 32);
}

#[test]
fn entries_without_binding_state_count_as_dhcpd_counts_them() {
    let c = conf("subnet 198.18.5.0 netmask 255.255.255.0 { range 198.18.5.10 198.18.5.19; }");
    // 2030-01-01 00:00:00 UTC; the entries end an hour either side of it.
    let now: i64 = 1_893_456_000;
    let l = parse_leases(
        b"lease 198.18.5.10 { starts 2 2029/12/31 23:00:00; ends 3 2030/01/01 01:00:00; }\n\
          lease 198.18.5.11 { starts 2 2029/12/31 22:00:00; ends 2 2029/12/31 23:00:00; }\n\
          lease 198.18.5.12 { ends never; }\n\
          lease 198.18.5.13 { binding state active; ends 2 2029/12/31 23:00:00; }\n",
        "t",
    );
    let st = subnet_stats(&c, &l.leases, now);
    // .10 (ends after now) and .12 (never) are active, .11 (ended) free; .13 keeps its
    // written state although it has ended, as dhcpd's file says.
    assert_eq!((st[0].ips.active, st[0].ips.free), (3, 1));
    assert_eq!(st[0].other, 0);
    // A day later .10 has ended too.
    let st = subnet_stats(&c, &l.leases, now + 86_400);
    assert_eq!((st[0].ips.active, st[0].ips.free), (2, 2));
    assert_eq!(l.warnings.len(), 3, "{:?}", l.warnings);
}
