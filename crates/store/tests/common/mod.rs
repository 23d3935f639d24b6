//! Shared helpers for the store's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::Ipv4Addr;

use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};

/// A Bound lease for 198.18.x.y (x.y from `n`), whose content varies with `version`.
pub fn lease(n: u16, version: u64) -> Lease {
    let [hi, lo] = n.to_be_bytes();
    Lease {
        ip: Ipv4Addr::new(198, 18, hi, lo),
        client_id: ClientId(vec![1, 0x02, 0, 0, hi, lo]),
        hwaddr: HwAddr(vec![0x02, 0, 0, 0, hi, lo]),
        hostname: Some(format!("host-{n}-v{version}")),
        state: LeaseState::Bound,
        starts: Timestamp(1_700_000_000 + version),
        expires: Timestamp(1_700_003_600 + version),
        first_seen: Timestamp(1_700_000_000),
        // Relay data on some leases, so that optional fields are exercised both ways.
        circuit_id: n.is_multiple_of(3).then(|| vec![0, 4, hi, lo]),
        remote_id: None,
        subscriber_id: n.is_multiple_of(5).then(|| b"sub\n\"x\"".to_vec()),
    }
}

/// What `load` must return after applying `commits` in order: latest per ip, sorted by ip.
pub fn expected(commits: &[Vec<Lease>]) -> Vec<Lease> {
    let mut map: HashMap<Ipv4Addr, Lease> = HashMap::new();
    for c in commits {
        for l in c {
            map.insert(l.ip, l.clone());
        }
    }
    let mut v: Vec<Lease> = map.into_values().collect();
    v.sort_by_key(|l| l.ip);
    v
}

#[cfg(feature = "sql")]
pub mod sql;
