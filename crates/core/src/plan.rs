//! The address plan: a validated [`Config`] plus the indexes decisions need to be fast
//! (reservations by client and by address, subnet lookup). Built once per config load/reload.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::config::{Config, Reservation, ReservationKey, Subnet};
use crate::lease::{ClientId, HwAddr};

/// Config plus lookup indexes. io builds one per (re)load and swaps it atomically.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The validated configuration this plan was built from.
    pub config: Config,
    /// Per subnet, in `config.subnets` order.
    subnets: Vec<SubnetPlan>,
    /// Subnet indexes by network address, for "which subnet contains this address".
    by_network: BTreeMap<u32, Vec<usize>>,
    /// Subnet indexes by their `interface`.
    by_interface: BTreeMap<String, Vec<usize>>,
    res_by_mac: BTreeMap<HwAddr, Vec<ResRef>>,
    res_by_client_id: BTreeMap<ClientId, Vec<ResRef>>,
    res_by_ip: BTreeMap<u32, ResRef>,
}

/// Points at `config.subnets[subnet].reservations[index]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResRef {
    pub(crate) subnet: usize,
    pub(crate) index: usize,
}

/// Precomputed address sets of one subnet, as sorted `u32`s / merged inclusive ranges.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubnetPlan {
    /// Dynamic pools, sorted.
    pub(crate) pools: Vec<(u32, u32)>,
    /// Never handed out, not even to a reservation: network, broadcast, routers, server ids.
    pub(crate) never: Vec<u32>,
    /// Configured exclusions, merged.
    pub(crate) excluded: Vec<(u32, u32)>,
    /// Not dynamically allocatable: `never` ∪ exclusions ∪ every reservation address, merged.
    pub(crate) blocked: Vec<(u32, u32)>,
}

impl SubnetPlan {
    fn build(subnet: &Subnet, server_id: Option<Ipv4Addr>) -> Self {
        let net = subnet.network;
        let mut never: Vec<u32> = Vec::new();
        // RFC 3021: /31 and /32 have no network or broadcast address.
        if net.prefix_len() < 31 {
            never.push(u32::from(net.network()));
            never.push(u32::from(net.broadcast()));
        }
        never.extend(subnet.routers.iter().map(|r| u32::from(*r)));
        never.extend(
            subnet
                .server_id
                .iter()
                .chain(server_id.iter())
                .map(|a| u32::from(*a)),
        );
        never.sort_unstable();
        never.dedup();

        let mut pools: Vec<(u32, u32)> = subnet
            .pools
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| (u32::from(r.start), u32::from(r.end)))
            .collect();
        pools.sort_unstable();

        let excluded = merge(
            subnet
                .exclusions
                .iter()
                .filter(|r| !r.is_empty())
                .map(|r| (u32::from(r.start), u32::from(r.end)))
                .collect(),
        );
        let mut blocked: Vec<(u32, u32)> = never.iter().map(|a| (*a, *a)).collect();
        blocked.extend(excluded.iter().copied());
        blocked.extend(subnet.reservations.iter().map(|r| {
            let a = u32::from(r.ip);
            (a, a)
        }));
        Self {
            pools,
            never,
            excluded,
            blocked: merge(blocked),
        }
    }

    /// True for addresses never handed out (network, broadcast, routers, server ids).
    pub(crate) fn is_never(&self, ip: u32) -> bool {
        self.never.binary_search(&ip).is_ok()
    }

    /// True when `ip` lies in a configured exclusion.
    pub(crate) fn is_excluded(&self, ip: u32) -> bool {
        range_containing(&self.excluded, ip).is_some()
    }

    /// True when `ip` lies in a dynamic pool.
    pub(crate) fn in_pool(&self, ip: u32) -> bool {
        range_containing(&self.pools, ip).is_some()
    }

    /// The blocked range containing `ip`, if any.
    pub(crate) fn blocked_range(&self, ip: u32) -> Option<(u32, u32)> {
        range_containing(&self.blocked, ip)
    }

    /// Blocked ranges clipped to `lo..=hi`, in order.
    pub(crate) fn blocked_within(&self, lo: u32, hi: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let first = self.blocked.partition_point(|(_, end)| *end < lo);
        self.blocked
            .get(first..)
            .unwrap_or_default()
            .iter()
            .take_while(move |(start, _)| *start <= hi)
            .map(move |(start, end)| ((*start).max(lo), (*end).min(hi)))
    }
}

/// The range of sorted, disjoint `ranges` that contains `ip`.
fn range_containing(ranges: &[(u32, u32)], ip: u32) -> Option<(u32, u32)> {
    let i = ranges.partition_point(|(_, end)| *end < ip);
    ranges.get(i).copied().filter(|(start, _)| *start <= ip)
}

/// Sorts inclusive ranges and merges overlapping or adjacent ones.
fn merge(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if u64::from(start) <= u64::from(last.1) + 1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

impl Plan {
    /// Builds the indexes for `config`. Infallible: the loader already validated it. Should an
    /// invariant not hold anyway (e.g. a duplicate reservation address), the first entry wins.
    pub fn new(config: Config) -> Self {
        let mut plan = Self {
            subnets: Vec::with_capacity(config.subnets.len()),
            by_network: BTreeMap::new(),
            by_interface: BTreeMap::new(),
            res_by_mac: BTreeMap::new(),
            res_by_client_id: BTreeMap::new(),
            res_by_ip: BTreeMap::new(),
            config,
        };
        for (si, subnet) in plan.config.subnets.iter().enumerate() {
            plan.subnets
                .push(SubnetPlan::build(subnet, plan.config.server.server_id));
            plan.by_network
                .entry(u32::from(subnet.network.network()))
                .or_default()
                .push(si);
            if let Some(name) = &subnet.interface {
                plan.by_interface.entry(name.clone()).or_default().push(si);
            }
            for (ri, res) in subnet.reservations.iter().enumerate() {
                let r = ResRef {
                    subnet: si,
                    index: ri,
                };
                match &res.key {
                    ReservationKey::Mac(m) => plan.res_by_mac.entry(m.clone()).or_default().push(r),
                    ReservationKey::ClientId(c) => {
                        plan.res_by_client_id.entry(c.clone()).or_default().push(r);
                    }
                }
                plan.res_by_ip.entry(u32::from(res.ip)).or_insert(r);
            }
        }
        plan
    }

    /// The most specific subnet whose network contains `ip`, as an index into
    /// `config.subnets`.
    pub fn subnet_index_containing(&self, ip: Ipv4Addr) -> Option<usize> {
        let ipn = u32::from(ip);
        // Fast path: with non-overlapping subnets, the one starting last at or before `ip`.
        if let Some((_, idxs)) = self.by_network.range(..=ipn).next_back()
            && let Some(i) = self.most_specific(idxs.iter().copied(), ip)
        {
            return Some(i);
        }
        // Nested subnets (not produced by the loader today): most specific of all.
        self.most_specific(0..self.config.subnets.len(), ip)
    }

    fn most_specific(&self, idxs: impl Iterator<Item = usize>, ip: Ipv4Addr) -> Option<usize> {
        idxs.filter_map(|i| Some((i, self.config.subnets.get(i)?)))
            .filter(|(_, s)| s.network.contains(&ip))
            .max_by_key(|(i, s)| (s.network.prefix_len(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    }

    /// Subnets served on interface `name`, in config order.
    pub fn subnet_indexes_on(&self, name: &str) -> &[usize] {
        self.by_interface.get(name).map_or(&[], Vec::as_slice)
    }

    /// The reservation holding `ip`, if any.
    pub fn reservation_at(&self, ip: Ipv4Addr) -> Option<&Reservation> {
        self.res_by_ip
            .get(&u32::from(ip))
            .and_then(|r| self.reservation(*r))
    }

    /// The reservation for this client in subnet `subnet` (index into `config.subnets`):
    /// a client-id reservation first, then a MAC one.
    pub fn reservation_for(
        &self,
        subnet: usize,
        client_id: &ClientId,
        hwaddr: &HwAddr,
    ) -> Option<&Reservation> {
        let by_cid = self.res_by_client_id.get(client_id).into_iter().flatten();
        let by_mac = self.res_by_mac.get(hwaddr).into_iter().flatten();
        by_cid
            .chain(by_mac)
            .find(|r| r.subnet == subnet)
            .and_then(|r| self.reservation(*r))
    }

    pub(crate) fn subnet_plan(&self, subnet: usize) -> Option<&SubnetPlan> {
        self.subnets.get(subnet)
    }

    fn reservation(&self, r: ResRef) -> Option<&Reservation> {
        self.config.subnets.get(r.subnet)?.reservations.get(r.index)
    }
}

/// True when `res` names this client.
pub(crate) fn reservation_matches(
    res: &Reservation,
    client_id: &ClientId,
    hwaddr: &HwAddr,
) -> bool {
    match &res.key {
        ReservationKey::Mac(m) => m == hwaddr,
        ReservationKey::ClientId(c) => c == client_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_joins_overlapping_and_adjacent() {
        assert_eq!(
            merge(vec![(5, 6), (1, 2), (3, 3), (10, 12), (11, 20)]),
            vec![(1, 3), (5, 6), (10, 20)]
        );
        assert_eq!(
            merge(vec![(u32::MAX, u32::MAX), (0, 0)]),
            vec![(0, 0), (u32::MAX, u32::MAX)]
        );
    }

    #[test]
    fn range_lookup() {
        let r = vec![(1, 3), (7, 9)];
        assert_eq!(range_containing(&r, 0), None);
        assert_eq!(range_containing(&r, 2), Some((1, 3)));
        assert_eq!(range_containing(&r, 5), None);
        assert_eq!(range_containing(&r, 9), Some((7, 9)));
        assert_eq!(range_containing(&r, 10), None);
    }
}
