//! DHCPStats-style per-subnet counts over an [`IscConfig`] and its leases.
//!
//! Definitions (per subnet; "lease" means the last entry in `dhcpd.leases` for an address):
//! - `total`: distinct addresses covered by the subnet's ranges. Overlapping or repeated ranges
//!   are counted once (DHCPStats summed them).
//! - `active`, `released`, `free`, `backup`: leases in that binding state whose address lies
//!   in the subnet's network. A lease belongs to the most specific subnet containing it (the
//!   DHCPStats took the first match). Leases in other states are in [`SubnetStats`]'s extra fields.
//! - `unused`: addresses in the ranges with **no** lease entry at all, i.e. never handed out
//!   since dhcpd's database began — DHCPStats' documented meaning. DHCPStats computed
//!   `total - (active + free + backup)`, which went negative when leases lay outside the ranges
//!   and forgot `released`; counting range addresses directly can never go below zero.
//! - `static`: distinct fixed addresses inside the subnet's network from its hosts (hosts
//!   declared in the subnet or anywhere with a fixed address in it). Hosts without an IPv4
//!   fixed address are not counted (DHCPStats did the same but keyed by name, so two hosts with
//!   the same name counted once).
//!
//! Counts depend on binding states, not on the clock: an `active` lease whose `ends` has
//! passed stays `active` until dhcpd rewrites it, exactly as dhcpd's file says. The one
//! exception is an entry with no binding state at all (old files): dhcpd takes it as active
//! while `ends` is in the future and free after, and so do these counts, judged at the `now`
//! the caller passes (the moment the file was read).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::model::{BindingState, IscConfig, IscLease, IscSubnet};

/// The DHCPStats `ips` object. Field names and order are DHCPStats' wire format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IpCounts {
    /// Addresses in the ranges.
    pub total: u64,
    /// Leases in state `active`.
    pub active: u64,
    /// Leases in state `released`.
    pub released: u64,
    /// Leases in state `free`.
    pub free: u64,
    /// Leases in state `backup`.
    pub backup: u64,
    /// Range addresses never leased (no entry in the leases file). Never negative.
    pub unused: u64,
    /// Fixed addresses of host declarations in the subnet.
    #[serde(rename = "static")]
    pub static_: u64,
}

impl IpCounts {
    fn add(&mut self, o: &IpCounts) {
        self.total += o.total;
        self.active += o.active;
        self.released += o.released;
        self.free += o.free;
        self.backup += o.backup;
        self.unused += o.unused;
        self.static_ += o.static_;
    }
}

/// Counts for one subnet, with what the DHCPStats shape has no room for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetStats {
    /// The subnet.
    pub network: Ipv4Net,
    /// The DHCPStats counts.
    pub ips: IpCounts,
    /// Leases in state `expired`.
    pub expired: u64,
    /// Leases in state `abandoned`.
    pub abandoned: u64,
    /// Leases in any other state (`reset`, `bootp`, unknown words).
    pub other: u64,
    /// Leases in the network but outside every range (e.g. after a range shrank).
    pub outside_ranges: u64,
    /// The leases counted for this subnet, by address.
    pub lease_ips: Vec<Ipv4Addr>,
}

/// The subnet (index into `subnets`) whose network contains `ip`, the most specific if several
/// do.
pub(crate) fn index_in(subnets: &[IscSubnet], ip: Ipv4Addr) -> Option<usize> {
    subnets
        .iter()
        .enumerate()
        .filter(|(_, s)| s.network.contains(&ip))
        .max_by_key(|(_, s)| s.network.prefix_len())
        .map(|(i, _)| i)
}

/// The index in `config.subnets` of the subnet that holds `ip` (most specific match).
pub fn subnet_index_of(config: &IscConfig, ip: Ipv4Addr) -> Option<usize> {
    index_in(&config.subnets, ip)
}

/// Ranges merged into sorted, disjoint, inclusive `u32` intervals.
fn merged(ranges: &[(Ipv4Addr, Ipv4Addr)]) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = ranges
        .iter()
        .map(|&(a, b)| {
            let (a, b) = (u32::from(a), u32::from(b));
            (a.min(b), a.max(b))
        })
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if u64::from(a) <= u64::from(last.1) + 1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn in_ranges(m: &[(u32, u32)], ip: u32) -> bool {
    let i = m.partition_point(|&(_, hi)| hi < ip);
    m.get(i).is_some_and(|&(lo, _)| lo <= ip)
}

/// Per-subnet counts, in the order of `config.subnets`. `leases` may contain several entries
/// for an address; the last one wins, as in the file. `now` (Unix seconds) decides the state
/// of entries without a binding state ([`IscLease::binding_state_at`]).
pub fn subnet_stats(config: &IscConfig, leases: &[IscLease], now: i64) -> Vec<SubnetStats> {
    let mut last: BTreeMap<Ipv4Addr, &IscLease> = BTreeMap::new();
    for l in leases {
        last.insert(l.ip, l);
    }
    let mut per: Vec<Vec<&IscLease>> = vec![Vec::new(); config.subnets.len()];
    for l in last.values() {
        if let Some(v) = index_in(&config.subnets, l.ip).and_then(|i| per.get_mut(i)) {
            v.push(l);
        }
    }
    config
        .subnets
        .iter()
        .zip(per)
        .map(|(s, ls)| {
            let m = merged(&s.ranges);
            let total: u64 = m.iter().map(|&(a, b)| u64::from(b - a) + 1).sum();
            let mut st = SubnetStats {
                network: s.network,
                ips: IpCounts {
                    total,
                    ..IpCounts::default()
                },
                expired: 0,
                abandoned: 0,
                other: 0,
                outside_ranges: 0,
                lease_ips: Vec::with_capacity(ls.len()),
            };
            let mut in_range_leased: u64 = 0;
            for l in ls {
                st.lease_ips.push(l.ip);
                match l.binding_state_at(now) {
                    BindingState::Active => st.ips.active += 1,
                    BindingState::Released => st.ips.released += 1,
                    BindingState::Free => st.ips.free += 1,
                    BindingState::Backup => st.ips.backup += 1,
                    BindingState::Expired => st.expired += 1,
                    BindingState::Abandoned => st.abandoned += 1,
                    _ => st.other += 1,
                }
                if in_ranges(&m, u32::from(l.ip)) {
                    in_range_leased += 1;
                } else {
                    st.outside_ranges += 1;
                }
            }
            st.ips.unused = total.saturating_sub(in_range_leased);
            let statics: BTreeSet<Ipv4Addr> = s
                .hosts
                .iter()
                .flat_map(|h| h.fixed_addresses.iter().copied())
                .filter(|ip| s.network.contains(ip))
                .collect();
            st.ips.static_ = statics.len() as u64;
            st
        })
        .collect()
}

/// The sum over subnets: DHCPStats' `/counts` `ip_counts`.
pub fn total_counts(stats: &[SubnetStats]) -> IpCounts {
    let mut t = IpCounts::default();
    for s in stats {
        t.add(&s.ips);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_membership() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let m = merged(&[
            (ip("10.0.0.20"), ip("10.0.0.30")),
            (ip("10.0.0.10"), ip("10.0.0.19")),
            (ip("10.0.0.25"), ip("10.0.0.40")),
            (ip("10.0.0.50"), ip("10.0.0.50")),
        ]);
        assert_eq!(m.len(), 2);
        assert!(in_ranges(&m, u32::from(ip("10.0.0.10"))));
        assert!(in_ranges(&m, u32::from(ip("10.0.0.40"))));
        assert!(!in_ranges(&m, u32::from(ip("10.0.0.41"))));
        assert!(in_ranges(&m, u32::from(ip("10.0.0.50"))));
        assert!(!in_ranges(&m, u32::from(ip("10.0.0.9"))));
        let full = merged(&[(ip("0.0.0.0"), ip("255.255.255.255"))]);
        assert_eq!(full, vec![(0, u32::MAX)]);
    }
}
