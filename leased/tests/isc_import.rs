//! `leased import isc` of a generated dhcpd.leases of 20,000 addresses, with the churn of a real
//! file (superseded entries, entries without a binding state, ended, infinite, outside the
//! subnets, without an Ethernet address, with a client identifier and Option 82): every lease
//! that is current and active lands in the store with every field, and nothing else does.
//! Not timed: the million-lease run with its memory bound is `bench/scale.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "ops/common.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use common::{isc_time, leased, text, wall_clock};
use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};
use leased_store::EmbeddedStore;

const ADDRESSES: u32 = 20_000;
const TEN_YEARS: u64 = 10 * 365 * 86_400;

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [2, 0x5c, b[0], b[1], b[2], b[3]]
}

fn mac_text(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The leases file, and the leases the import must write, built from `now`.
fn fixture(now: u64) -> (String, BTreeMap<Ipv4Addr, Lease>, usize) {
    let started = now - 3600;
    let (s, future, ended) = (
        isc_time(started),
        isc_time(now + 86_400),
        isc_time(now - 60),
    );
    let mut early = String::new();
    let mut late = String::new();
    let mut want = BTreeMap::new();
    let mut no_state = 0;
    for i in 0..ADDRESSES {
        let inside = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 1)) + i);
        let m = mac(i);
        let hw = mac_text(&m);
        let plain_id: Vec<u8> = std::iter::once(1).chain(m).collect();
        let bound = |ip, client_id: Vec<u8>, hostname: Option<String>, expires| Lease {
            ip,
            client_id: ClientId(client_id),
            hwaddr: HwAddr(m.to_vec()),
            hostname,
            state: LeaseState::Bound,
            starts: Timestamp(started),
            expires: Timestamp(expires),
            first_seen: Timestamp(started),
            circuit_id: None,
            remote_id: None,
            subscriber_id: None,
        };
        let host = format!("h{i}");
        match i % 10 {
            // Active, then released by a later entry: not imported.
            0 => {
                let _ = write!(
                    early,
                    "lease {inside} {{\n  starts {s};\n  ends {future};\n  binding state active;\n  hardware ethernet {hw};\n}}\n"
                );
                let _ = write!(
                    late,
                    "lease {inside} {{\n  starts {s};\n  ends {s};\n  binding state released;\n  hardware ethernet {hw};\n}}\n"
                );
            }
            // Free, then renewed twice: the last entry's host name wins.
            1 => {
                let _ = write!(
                    early,
                    "lease {inside} {{\n  starts {s};\n  ends {ended};\n  binding state free;\n  hardware ethernet {hw};\n}}\n\
                     lease {inside} {{\n  starts {s};\n  ends {future};\n  binding state active;\n  hardware ethernet {hw};\n  client-hostname \"old\";\n}}\n"
                );
                let _ = write!(
                    late,
                    "lease {inside} {{\n  starts {s};\n  ends {future};\n  cltt {s};\n  binding state active;\n  next binding state free;\n  hardware ethernet {hw};\n  client-hostname \"{host}\";\n}}\n"
                );
                want.insert(inside, bound(inside, plain_id, Some(host), now + 86_400));
            }
            // No binding state, ends in the future: active, as dhcpd takes it (and a note).
            2 => {
                no_state += 1;
                let _ = write!(
                    late,
                    "lease {inside} {{\n  starts {s};\n  ends {future};\n  hardware ethernet {hw};\n}}\n"
                );
                want.insert(inside, bound(inside, plain_id, None, now + 86_400));
            }
            // No binding state, ended: free (and a note).
            3 => {
                no_state += 1;
                let _ = write!(
                    late,
                    "lease {inside} {{\n  starts {s};\n  ends {ended};\n  hardware ethernet {hw};\n}}\n"
                );
            }
            // Marked active but already ended: not imported.
            4 => {
                let _ = write!(
                    late,
                    "lease {inside} {{\n  starts {s};\n  ends {ended};\n  binding state active;\n  hardware ethernet {hw};\n}}\n"
                );
            }
            // Infinite.
            5 => {
                let _ = write!(
                    late,
                    "lease {inside} {{\n  starts {s};\n  ends never;\n  binding state active;\n  hardware ethernet {hw};\n}}\n"
                );
                want.insert(inside, bound(inside, plain_id, None, now + TEN_YEARS));
            }
            // A client identifier and Option 82.
            6 => {
                let uid = [0xff, 0, (i >> 8) as u8, i as u8, b'"'];
                let _ = write!(
                    late,
                    "lease {inside} {{\n  starts {s};\n  ends {future};\n  binding state active;\n  hardware ethernet {hw};\n  uid \"\\377\\000\\{:03o}\\{:03o}\\\"\";\n  option agent.circuit-id \"eth0/{i}\";\n  option agent.remote-id 0:1b:{:02x};\n  client-hostname \"{host}\";\n}}\n",
                    uid[2],
                    uid[3],
                    i % 256
                );
                let mut l = bound(inside, uid.to_vec(), Some(host), now + 86_400);
                l.circuit_id = Some(format!("eth0/{i}").into_bytes());
                l.remote_id = Some(vec![0, 0x1b, (i % 256) as u8]);
                want.insert(inside, l);
            }
            // Outside every subnet of the config: not imported.
            7 => {
                let outside = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 1)) + i);
                let _ = write!(
                    late,
                    "lease {outside} {{\n  starts {s};\n  ends {future};\n  binding state active;\n  hardware ethernet {hw};\n}}\n"
                );
            }
            // No Ethernet address: not imported.
            8 => {
                let _ = write!(
                    late,
                    "lease {inside} {{\n  starts {s};\n  ends {future};\n  binding state active;\n  hardware token-ring 00:11;\n}}\n"
                );
            }
            // Plain, as dhcpd 4.4 writes it.
            _ => {
                let _ = write!(
                    late,
                    "lease {inside} {{\n  starts {s};\n  ends {future};\n  tstp {future};\n  cltt {s};\n  binding state active;\n  next binding state free;\n  rewind binding state free;\n  hardware ethernet {hw};\n  set vendor-class-identifier = \"MSFT 5.0\";\n  client-hostname \"{host}\";\n}}\n"
                );
                want.insert(inside, bound(inside, plain_id, Some(host), now + 86_400));
            }
        }
    }
    let file = format!(
        "# The format of this file is documented in the dhcpd.leases(5) manual page.\n\
         authoring-byte-order little-endian;\n\nserver-duid \"\\000\\001\";\n\n{early}\n{late}\
         lease 198.18.0.1 {{\n  starts {s};\n  binding state active;\n  hardware ethernet"
    );
    (file, want, no_state)
}

#[test]
fn every_active_lease_lands_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dhcpd.conf");
    let leases = dir.path().join("dhcpd.leases");
    std::fs::write(
        &conf,
        "subnet 198.18.0.0 netmask 255.255.0.0 {\n  range 198.18.0.1 198.18.255.254;\n  option routers 198.18.0.1;\n}\n",
    )
    .unwrap();
    let (file, want, no_state) = fixture(wall_clock());
    std::fs::write(&leases, file).unwrap();
    let out = dir.path().join("leased.toml");
    let store = dir.path().join("leases.journal");
    let o = leased(
        &[
            "import",
            "isc",
            "--conf",
            conf.to_str().unwrap(),
            "--leases",
            leases.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ],
        &[],
    );
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{stdout}{err}");
    assert!(
        stdout.contains(&format!("and {} active leases into", want.len())),
        "{stdout}"
    );
    // One note per current entry without a binding state, and notes for the entry cut off at
    // the end (the last entry of 198.18.0.1 before it stays in force).
    let notes = err
        .lines()
        .filter(|l| l.contains("no 'binding state'"))
        .count();
    assert_eq!(notes, no_state, "{err}");
    assert!(err.contains("incomplete lease entry"), "{err}");
    // Those three (the cut-off entry: its statement, its block, the entry) and nothing else.
    assert_eq!(err.lines().count(), no_state + 3, "{err}");
    assert!(err.lines().all(|l| l.starts_with("note: ")), "{err}");

    let got = EmbeddedStore::read_only(&store).unwrap();
    assert_eq!(got.len(), want.len());
    for l in &got {
        let w = want
            .get(&l.ip)
            .unwrap_or_else(|| panic!("{} imported", l.ip));
        assert_eq!(l, w);
    }
    // The config names the store, and leased runs it.
    let o = leased(&["check", "-c", out.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
}
