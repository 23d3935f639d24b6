//! Address allocation: which address a client may have, and which one a DISCOVER gets.
//!
//! Order (first that fits wins): the client's reservation → its own active offer/binding →
//! its previous address within the sticky window → the address it asked for (option 50) → a
//! never-used pool address → the oldest released/expired/unquarantined address. With an
//! allocation slot (servers sharing an SQL store), the never-used search starts in this
//! server's segment of each pool and wraps through the others, so servers do not all race for
//! the same next address. Nothing here
//! hands out a network, broadcast, router or server-id address, an excluded one, one reserved
//! for another client, or one outside the pools (the client's own reservation excepted).

use std::net::Ipv4Addr;

use crate::decide::Decider;
use crate::decision::NakReason;
use crate::lease::{Lease, LeaseState, LeaseTable};
use crate::model::Reservation;
use crate::plan::SubnetPlan;
use crate::sql::AllocationSlot;

impl Decider<'_> {
    /// True when `ip` is unavailable to this client now: another client holds it, or it is
    /// quarantined after a DECLINE (for everyone, the decliner included).
    fn held_by_other(&self, ip: Ipv4Addr) -> bool {
        self.leases.by_ip(ip).is_some_and(|l| {
            l.is_active(self.now)
                && (l.client_id != self.c.client_id || l.state == LeaseState::Declined)
        })
    }

    /// True when the client's reservation can be given to it now. A relay-keyed reservation
    /// belongs to the port: another device's lease there is taken over (a quarantine is not).
    pub(crate) fn reservation_usable(&self, r: &Reservation) -> bool {
        self.subnet.network.contains(&r.ip)
            && !self.sp.is_never(u32::from(r.ip))
            && (!self.held_by_other(r.ip) || self.takes_over(r.ip))
    }

    /// True when `ip` is the port's reservation for this client (relay-keyed, or an SQL row
    /// owned by the port) and is held by another client (not quarantined): the port's new
    /// device takes the address over.
    fn takes_over(&self, ip: Ipv4Addr) -> bool {
        self.port_owned
            && self.reservation.is_some_and(|r| r.ip == ip)
            && self
                .leases
                .by_ip(ip)
                .is_none_or(|l| l.state != LeaseState::Declined)
    }

    /// May this client have `ip` (now, in the selected subnet)? The reason when not.
    ///
    /// Its own reservation may lie outside the pools or in an exclusion (exclusions restrict
    /// dynamic allocation only); any other address must be in a pool, not excluded, not
    /// reserved for someone else, and not active for another client.
    pub(crate) fn check_allocatable(&self, ip: Ipv4Addr) -> Result<(), NakReason> {
        if !self.subnet.network.contains(&ip) {
            return Err(NakReason::WrongSubnet);
        }
        let ipn = u32::from(ip);
        if self.sp.is_never(ipn) || (self.held_by_other(ip) && !self.takes_over(ip)) {
            return Err(NakReason::AddressNotAvailable);
        }
        if self.reservation.is_some_and(|r| r.ip == ip) {
            return Ok(());
        }
        if self.plan.reservation_at(ip).is_some_and(|r| {
            !self
                .plan
                .reservation_matches(r, &self.c.client_id, &self.c.hwaddr, &self.relay)
        }) {
            return Err(NakReason::Reserved);
        }
        if !self.sp.in_pool(ipn) || self.sp.is_excluded(ipn) || self.sp.in_class_range(ipn) {
            return Err(NakReason::AddressNotAvailable);
        }
        Ok(())
    }

    fn allocatable(&self, ip: Ipv4Addr) -> bool {
        self.check_allocatable(ip).is_ok()
    }

    /// The address a DISCOVER gets, or `None` when the subnet is exhausted for this client.
    pub(crate) fn allocate(&self) -> Option<Ipv4Addr> {
        let now = self.now;
        // 1. Its reservation, unless someone else is (still) using that address.
        if let Some(r) = self.reservation.filter(|r| self.reservation_usable(r)) {
            return Some(r.ip);
        }
        let own_here = || {
            self.leases
                .leases_of(&self.c.client_id)
                .filter(|l| self.subnet.network.contains(&l.ip))
        };
        // 2. Its own active offer or binding.
        if let Some(l) = own_here()
            .filter(|l| {
                matches!(l.state, LeaseState::Offered | LeaseState::Bound) && l.is_active(now)
            })
            .filter(|l| self.allocatable(l.ip))
            .max_by_key(|l| (l.starts, l.ip))
        {
            return Some(l.ip);
        }
        // 3. Its previous address, within the sticky window after that lease ended.
        let window = self.plan.network.server.sticky_window;
        if let Some(l) = own_here()
            .filter(|l| l.state != LeaseState::Declined && !l.is_active(now))
            .filter(|l| now <= l.expires.plus(window))
            .filter(|l| self.allocatable(l.ip))
            .max_by_key(|l| (l.expires, l.ip))
        {
            return Some(l.ip);
        }
        // 4. The address it asked for.
        if let Some(ip) = self.c.requested_ip
            && !self.leases.is_active(ip, now)
            && self.allocatable(ip)
        {
            return Some(ip);
        }
        // 5. A never-used address, 6. the address free for longest.
        self.sp
            .pools
            .iter()
            .find_map(|(start, end)| {
                never_used_from_slot(self.sp, self.leases, *start, *end, self.plan.alloc_slot)
            })
            .map(Ipv4Addr::from)
            .or_else(|| self.oldest_free())
    }

    /// The reusable address (released, expired, lapsed, unquarantined) whose lease ended
    /// first, among those this subnet may hand out dynamically.
    ///
    /// Cost: entries of other subnets or blocked addresses that ended earlier are skipped one
    /// by one; this runs only once no never-used address is left.
    fn oldest_free(&self) -> Option<Ipv4Addr> {
        self.leases
            .reusable(self.now)
            .filter(|l: &&Lease| self.subnet.network.contains(&l.ip))
            .map(|l| u32::from(l.ip))
            .find(|ip| self.sp.in_pool(*ip) && self.sp.blocked_range(*ip).is_none())
            .map(Ipv4Addr::from)
    }
}

/// Number of addresses in `lo..=hi` that are neither known to `leases` nor blocked.
fn count_unused(sp: &SubnetPlan, leases: &LeaseTable, lo: u32, hi: u32) -> u64 {
    if hi < lo {
        return 0;
    }
    let total = u64::from(hi - lo) + 1;
    let (mut blocked, mut known_blocked) = (0u64, 0u64);
    for (a, b) in sp.blocked_within(lo, hi) {
        blocked += u64::from(b - a) + 1;
        known_blocked += leases.count_known_in(a, b);
    }
    // known ∪ blocked = known + blocked − known∩blocked.
    total.saturating_sub(blocked + leases.count_known_in(lo, hi) - known_blocked)
}

/// A never-used address of pool `start..=end`, searching this server's segment first: the pool
/// is cut into `slot.count` near-equal segments (fewer when the pool is smaller) and segments
/// `index, index+1, …` are tried in turn, wrapping. Without a slot: [`never_used`] on the
/// whole pool. Cost: at most `count` calls of [`never_used`], only when segments are full.
pub(crate) fn never_used_from_slot(
    sp: &SubnetPlan,
    leases: &LeaseTable,
    start: u32,
    end: u32,
    slot: Option<AllocationSlot>,
) -> Option<u32> {
    let Some(slot) = slot.filter(|s| s.count > 1) else {
        return never_used(sp, leases, start, end);
    };
    if end < start {
        return None;
    }
    let len = u64::from(end - start) + 1;
    let n = u64::from(slot.count).min(len);
    // Segment k is [bound(k), bound(k+1) - 1]; bound is strictly increasing since n <= len.
    let bound = |k: u64| u64::from(start) + len * k / n;
    let first = u64::from(slot.index) % n;
    (0..n).map(|j| (first + j) % n).find_map(|k| {
        let lo = u32::try_from(bound(k)).ok()?;
        let hi = u32::try_from(bound(k + 1) - 1).ok()?;
        never_used(sp, leases, lo, hi)
    })
}

/// The lowest address of pool `start..=end` that no lease has ever used and that is not
/// blocked: first above the highest known address (O(log n)), else by bisection on counts
/// (O(log² n)); never a linear scan of the pool.
pub(crate) fn never_used(
    sp: &SubnetPlan,
    leases: &LeaseTable,
    start: u32,
    end: u32,
) -> Option<u32> {
    let top = leases.highest_known_in(start, end);
    // Above the highest known address everything is unknown: skip blocked ranges.
    let mut cand = match top {
        None => Some(start),
        Some(t) => t.checked_add(1).filter(|c| *c <= end),
    };
    while let Some(c) = cand {
        match sp.blocked_range(c) {
            None => return Some(c),
            Some((_, b)) => cand = b.checked_add(1).filter(|n| *n <= end),
        }
    }
    // Gaps below it.
    let (mut lo, mut hi) = (start, top?);
    if count_unused(sp, leases, lo, hi) == 0 {
        return None;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if count_unused(sp, leases, lo, mid) > 0 {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let free = leases.count_known_in(lo, lo) == 0 && sp.blocked_range(lo).is_none();
    free.then_some(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{ClientId, HwAddr, Timestamp};

    fn lease(ip: u32) -> Lease {
        Lease {
            ip: Ipv4Addr::from(ip),
            client_id: ClientId(ip.to_be_bytes().to_vec()),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, 1]),
            hostname: None,
            state: LeaseState::Bound,
            starts: Timestamp(0),
            expires: Timestamp(1000),
            first_seen: Timestamp(0),
            circuit_id: None,
            remote_id: None,
            subscriber_id: None,
        }
    }

    fn plan(start: u32, end: u32) -> SubnetPlan {
        SubnetPlan {
            pools: vec![(start, end)],
            ..SubnetPlan::default()
        }
    }

    fn slot(index: u32, count: u32) -> Option<AllocationSlot> {
        Some(AllocationSlot { index, count })
    }

    #[test]
    fn no_slot_or_single_slot_is_the_plain_search() {
        let sp = plan(100, 199);
        let t = LeaseTable::from_leases([lease(100), lease(101)]);
        assert_eq!(never_used_from_slot(&sp, &t, 100, 199, None), Some(102));
        assert_eq!(
            never_used_from_slot(&sp, &t, 100, 199, slot(0, 1)),
            Some(102)
        );
        assert_eq!(
            never_used_from_slot(&sp, &t, 100, 199, slot(0, 3)),
            Some(102)
        );
    }

    #[test]
    fn each_slot_starts_in_its_own_segment() {
        let sp = plan(100, 199);
        let t = LeaseTable::new();
        // 100 addresses in 3 segments: [100,132], [133,165], [166,199].
        let firsts: Vec<_> = (0..3)
            .map(|k| never_used_from_slot(&sp, &t, 100, 199, slot(k, 3)))
            .collect();
        assert_eq!(firsts, vec![Some(100), Some(133), Some(166)]);
        // Another server's leases in a segment do not move this one's start.
        let t = LeaseTable::from_leases([lease(166), lease(167), lease(100)]);
        assert_eq!(
            never_used_from_slot(&sp, &t, 100, 199, slot(1, 3)),
            Some(133)
        );
        assert_eq!(
            never_used_from_slot(&sp, &t, 100, 199, slot(2, 3)),
            Some(168)
        );
    }

    #[test]
    fn a_full_segment_moves_on_and_wraps() {
        let sp = plan(100, 199);
        let t = LeaseTable::from_leases((166..=199).map(lease));
        assert_eq!(
            never_used_from_slot(&sp, &t, 100, 199, slot(2, 3)),
            Some(100),
            "the last segment wraps to the first"
        );
        let t = LeaseTable::from_leases((133..=165).chain([170]).map(lease));
        assert_eq!(
            never_used_from_slot(&sp, &t, 100, 199, slot(1, 3)),
            Some(171),
            "a full segment moves to the next one, above its highest known address"
        );
        let t = LeaseTable::from_leases((100..=199).map(lease));
        assert_eq!(never_used_from_slot(&sp, &t, 100, 199, slot(1, 3)), None);
    }

    #[test]
    fn blocked_addresses_and_small_pools() {
        let mut sp = plan(100, 199);
        sp.blocked = vec![(133, 140)];
        let t = LeaseTable::new();
        assert_eq!(
            never_used_from_slot(&sp, &t, 100, 199, slot(1, 3)),
            Some(141)
        );
        // More slots than addresses: one address per segment, index taken modulo the length.
        let sp = plan(10, 11);
        assert_eq!(never_used_from_slot(&sp, &t, 10, 11, slot(5, 64)), Some(11));
        assert_eq!(never_used_from_slot(&sp, &t, 10, 11, slot(4, 64)), Some(10));
        let t = LeaseTable::from_leases([lease(11)]);
        assert_eq!(never_used_from_slot(&sp, &t, 10, 11, slot(5, 64)), Some(10));
        // A whole-range pool does not overflow.
        let sp = plan(0, u32::MAX);
        let t = LeaseTable::new();
        assert_eq!(
            never_used_from_slot(&sp, &t, 0, u32::MAX, slot(1, 2)),
            Some(1 << 31)
        );
    }
}
