//! The address plan: the validated [`Network`] plus the indexes decisions need to be fast
//! (reservations by client and by address, subnet lookup). Built once per config load/reload.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::lease::{ClientId, HwAddr};
use crate::model::{Network, Reservation, ReservationKey, Subnet};
use crate::relay::{RelayKeys, as_number};
use crate::sql::AllocationSlot;

/// The network plus lookup indexes. io builds one per (re)load and swaps it atomically.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The validated network this plan was built from.
    pub network: Network,
    /// Per subnet, in `network.subnets` order.
    subnets: Vec<SubnetPlan>,
    /// Subnet indexes by network address, for "which subnet contains this address".
    by_network: BTreeMap<u32, Vec<usize>>,
    /// Subnet indexes by their `interface`.
    by_interface: BTreeMap<String, Vec<usize>>,
    res_by_mac: BTreeMap<HwAddr, Vec<ResRef>>,
    res_by_client_id: BTreeMap<ClientId, Vec<ResRef>>,
    res_by_ip: BTreeMap<u32, ResRef>,
    /// Reservations keyed on Option 82 data.
    res_by_relay: BTreeMap<ReservationKey, ResRef>,
    /// Per subnet: the subnets sharing its link, itself first, then config order.
    groups: Vec<Vec<usize>>,
    /// Per class (index into `network.classes`): the plan of its pool, when it has one.
    class_plans: Vec<Option<SubnetPlan>>,
    /// Where this server's never-used search starts in each pool (servers sharing an SQL
    /// store); `None`: at the pool's start.
    pub(crate) alloc_slot: Option<AllocationSlot>,
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
    /// Reservation addresses, sorted.
    pub(crate) reserved: Vec<u32>,
    /// Class pools in this subnet: only members of their class get these addresses.
    pub(crate) class_ranges: Vec<(u32, u32)>,
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
        let mut reserved: Vec<u32> = subnet
            .reservations
            .iter()
            .map(|r| u32::from(r.ip))
            .collect();
        reserved.sort_unstable();
        let mut blocked: Vec<(u32, u32)> = never.iter().map(|a| (*a, *a)).collect();
        blocked.extend(excluded.iter().copied());
        blocked.extend(reserved.iter().map(|a| (*a, *a)));
        Self {
            pools,
            never,
            excluded,
            blocked: merge(blocked),
            class_ranges: Vec::new(),
            reserved,
        }
    }

    /// Non-members of a class never get its pool: block the class ranges dynamically.
    fn with_class_ranges(mut self, ranges: Vec<(u32, u32)>) -> Self {
        let mut blocked = self.blocked.clone();
        blocked.extend(ranges.iter().copied());
        self.blocked = merge(blocked);
        self.class_ranges = merge(ranges);
        self
    }

    /// The plan members of a class with pool `range` allocate from: only that range.
    fn for_class(&self, range: (u32, u32)) -> Self {
        Self {
            pools: vec![range],
            never: self.never.clone(),
            excluded: self.excluded.clone(),
            // The base plan's blocks minus the class ranges (members may use their own).
            blocked: {
                let mut b: Vec<(u32, u32)> = self.never.iter().map(|a| (*a, *a)).collect();
                b.extend(self.excluded.iter().copied());
                b.extend(self.reserved.iter().map(|a| (*a, *a)));
                merge(b)
            },
            class_ranges: Vec::new(),
            reserved: self.reserved.clone(),
        }
    }

    /// True when `ip` is in another class's pool (never for a member plan).
    pub(crate) fn in_class_range(&self, ip: u32) -> bool {
        range_containing(&self.class_ranges, ip).is_some()
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
    /// Builds the indexes for `network`. Infallible: the loader already validated it. Should an
    /// invariant not hold anyway (e.g. a duplicate reservation address), the first entry wins.
    pub fn new(network: Network) -> Self {
        let mut plan = Self {
            subnets: Vec::with_capacity(network.subnets.len()),
            by_network: BTreeMap::new(),
            by_interface: BTreeMap::new(),
            res_by_mac: BTreeMap::new(),
            res_by_client_id: BTreeMap::new(),
            res_by_ip: BTreeMap::new(),
            res_by_relay: BTreeMap::new(),
            groups: Vec::new(),
            class_plans: Vec::new(),
            alloc_slot: network.allocation_slot,
            network,
        };
        for (si, subnet) in plan.network.subnets.iter().enumerate() {
            plan.subnets
                .push(SubnetPlan::build(subnet, plan.network.server.server_id));
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
                    k => {
                        plan.res_by_relay.entry(k.clone()).or_insert(r);
                    }
                }
                plan.res_by_ip.entry(u32::from(res.ip)).or_insert(r);
            }
        }
        let subnets = &plan.network.subnets;
        plan.groups = subnets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut g = vec![i];
                g.extend(
                    subnets
                        .iter()
                        .enumerate()
                        .filter(|(j, o)| *j != i && same_link(s, o))
                        .map(|(j, _)| j),
                );
                g
            })
            .collect();
        let mut ranges: Vec<Vec<(u32, u32)>> = vec![Vec::new(); plan.subnets.len()];
        for class in &plan.network.classes {
            if let Some((si, r)) = class.pool
                && let Some(v) = ranges.get_mut(si)
            {
                v.push((u32::from(r.start), u32::from(r.end)));
            }
        }
        for (sp, r) in plan.subnets.iter_mut().zip(ranges) {
            if !r.is_empty() {
                *sp = std::mem::take(sp).with_class_ranges(r);
            }
        }
        plan.class_plans = plan
            .network
            .classes
            .iter()
            .map(|c| {
                let (si, r) = c.pool?;
                Some(
                    plan.subnets
                        .get(si)?
                        .for_class((u32::from(r.start), u32::from(r.end))),
                )
            })
            .collect();
        plan
    }

    /// The subnets sharing subnet `subnet`'s link (itself first): where allocation goes on
    /// when it is exhausted, and where a relayed client's address may lie.
    pub fn link_group(&self, subnet: usize) -> &[usize] {
        self.groups.get(subnet).map_or(&[], Vec::as_slice)
    }

    /// The pool plan of class `class`, if it has a pool.
    pub(crate) fn class_plan(&self, class: usize) -> Option<&SubnetPlan> {
        self.class_plans.get(class).and_then(Option::as_ref)
    }

    /// The reservation for this client among `subnets`, with its subnet: client-id, then MAC,
    /// then relay keys ((remote-id, circuit-id) pair, circuit-id, remote-id, subscriber-id,
    /// switch + port).
    pub fn reservation_among(
        &self,
        subnets: &[usize],
        client_id: &ClientId,
        hwaddr: &HwAddr,
        relay: &RelayKeys,
    ) -> Option<(usize, &Reservation)> {
        let by_cid = self.res_by_client_id.get(client_id).into_iter().flatten();
        let by_mac = self.res_by_mac.get(hwaddr).into_iter().flatten();
        let by_relay = self
            .relay_lookup_keys(relay)
            .into_iter()
            .filter_map(|k| self.res_by_relay.get(&k));
        by_cid
            .chain(by_mac)
            .copied()
            .chain(by_relay.copied())
            .find(|r| subnets.contains(&r.subnet))
            .and_then(|r| Some((r.subnet, self.reservation(r)?)))
    }

    /// The relay reservation keys this relay data can match, most specific first.
    fn relay_lookup_keys(&self, relay: &RelayKeys) -> Vec<ReservationKey> {
        if relay.is_empty() {
            return Vec::new();
        }
        let mut keys = Vec::with_capacity(5);
        if let (Some(r), Some(c)) = (&relay.remote_id, &relay.circuit_id) {
            keys.push(ReservationKey::RelayPair {
                remote_id: r.clone(),
                circuit_id: c.clone(),
            });
        }
        if let Some(c) = &relay.circuit_id {
            keys.push(ReservationKey::CircuitId(c.clone()));
        }
        if let Some(r) = &relay.remote_id {
            keys.push(ReservationKey::RemoteId(r.clone()));
        }
        if let Some(s) = &relay.subscriber_id {
            keys.push(ReservationKey::SubscriberId(s.clone()));
        }
        let rk = &self.network.relay_keys;
        if let (Some(switch), Some(port)) = (
            rk.switch.extract(relay),
            rk.port.extract(relay).as_deref().and_then(as_number),
        ) {
            keys.push(ReservationKey::PortKey { switch, port });
        }
        keys
    }

    /// True when `res` names this client (relay keys: from its Option 82 or its lease).
    pub(crate) fn reservation_matches(
        &self,
        res: &Reservation,
        client_id: &ClientId,
        hwaddr: &HwAddr,
        relay: &RelayKeys,
    ) -> bool {
        match &res.key {
            ReservationKey::Mac(m) => m == hwaddr,
            ReservationKey::ClientId(c) => c == client_id,
            k => self.relay_lookup_keys(relay).contains(k),
        }
    }

    /// The most specific subnet whose network contains `ip`, as an index into
    /// `network.subnets`.
    pub fn subnet_index_containing(&self, ip: Ipv4Addr) -> Option<usize> {
        let ipn = u32::from(ip);
        // Fast path: with non-overlapping subnets, the one starting last at or before `ip`.
        if let Some((_, idxs)) = self.by_network.range(..=ipn).next_back()
            && let Some(i) = self.most_specific(idxs.iter().copied(), ip)
        {
            return Some(i);
        }
        // Nested subnets (not produced by the loader today): most specific of all.
        self.most_specific(0..self.network.subnets.len(), ip)
    }

    fn most_specific(&self, idxs: impl Iterator<Item = usize>, ip: Ipv4Addr) -> Option<usize> {
        idxs.filter_map(|i| Some((i, self.network.subnets.get(i)?)))
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

    /// The reservation for this client in subnet `subnet` by client-id or MAC (relay-keyed
    /// ones need the packet: see [`Plan::reservation_among`]).
    pub fn reservation_for(
        &self,
        subnet: usize,
        client_id: &ClientId,
        hwaddr: &HwAddr,
    ) -> Option<&Reservation> {
        self.reservation_among(&[subnet], client_id, hwaddr, &RelayKeys::default())
            .map(|(_, r)| r)
    }

    pub(crate) fn subnet_plan(&self, subnet: usize) -> Option<&SubnetPlan> {
        self.subnets.get(subnet)
    }

    fn reservation(&self, r: ResRef) -> Option<&Reservation> {
        self.network
            .subnets
            .get(r.subnet)?
            .reservations
            .get(r.index)
    }
}

/// True when two subnets share a link: the same `shared_network` name, or, when neither
/// names one, the same `interface`.
fn same_link(a: &Subnet, b: &Subnet) -> bool {
    match (&a.shared_network, &b.shared_network) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.interface.is_some() && a.interface == b.interface,
        _ => false,
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

    fn subnet(net: &str, iface: Option<&str>, shared: Option<&str>) -> Subnet {
        Subnet {
            network: net.parse().unwrap_or_else(|_| unreachable!()),
            interface: iface.map(str::to_string),
            server_id: None,
            routers: vec![],
            pools: vec![],
            exclusions: vec![],
            reservations: vec![],
            lease_time: None,
            shared_network: shared.map(str::to_string),
            max_leases_per_circuit_id: None,
            max_leases_per_remote_id: None,
            options: crate::model::OptionSet::default(),
            rapid_commit: false,
            ipv6_only: None,
        }
    }

    #[test]
    fn links_by_name_else_by_interface() {
        let a = subnet("198.18.0.0/24", Some("eth0"), None);
        let b = subnet("198.18.1.0/24", Some("eth0"), None);
        let c = subnet("198.18.2.0/24", Some("eth0"), Some("x"));
        let d = subnet("198.18.3.0/24", None, Some("x"));
        let e = subnet("198.18.4.0/24", None, None);
        let f = subnet("198.18.5.0/24", None, None);
        assert!(same_link(&a, &b), "same interface, no names");
        assert!(
            !same_link(&a, &c),
            "a name separates it from unnamed subnets"
        );
        assert!(same_link(&c, &d), "same name, whatever the interface");
        assert!(!same_link(&e, &f), "no interface, no name: alone");
        assert!(!same_link(&d, &e));
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
