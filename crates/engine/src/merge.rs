//! Leases another server wrote to a shared store (the sync loop), or that beat one of our
//! commits (a conflict), merged into the table where they are news.

use leased_core::{Durability, Lease, LeaseChange, LeaseState, LeaseTable, Timestamp};

/// The changes that apply `leases` to `table`:
/// - an address we know nothing of is taken as reported;
/// - the same client's lease is taken when it is newer (`starts`, then `expires`), or when it
///   ends the same binding (released, expired or declined with the same `starts`: a release
///   moves `expires` back, an expiry keeps it);
/// - another client's *active* lease is taken unless ours is active and newer (a stale read
///   racing our own newer binding); another client's lapsed lease changes nothing;
/// - `force` (the row that just beat our commit): another client's lease is always taken.
///
/// The changes are [`Durability::Volatile`]: they are already in the store.
pub(crate) fn external_changes(
    table: &LeaseTable,
    leases: Vec<Lease>,
    now: Timestamp,
    force: bool,
) -> Vec<LeaseChange> {
    leases
        .into_iter()
        .filter(|l| match table.by_ip(l.ip) {
            None => true,
            Some(t) if t.client_id == l.client_id => t != l && newer_same_client(l, t),
            Some(t) => force || (l.is_active(now) && !(t.is_active(now) && t.starts > l.starts)),
        })
        .map(|lease| LeaseChange {
            lease,
            durability: Durability::Volatile,
        })
        .collect()
}

/// The same client's lease `l` is news over ours `t`: a later binding (`starts`), or the same
/// binding later in its life: its end (released, expired, declined) beats it bound whatever
/// `expires` says (a release moves `expires` back), else the later `expires` (a renewal in the
/// same second).
fn newer_same_client(l: &Lease, t: &Lease) -> bool {
    let ended = |x: &Lease| !matches!(x.state, LeaseState::Bound | LeaseState::Offered);
    match l.starts.cmp(&t.starts) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => match (ended(l), ended(t)) {
            (true, false) => true,
            (false, true) => false,
            _ => l.expires > t.expires,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use leased_core::{ClientId, HwAddr};

    use super::*;

    fn lease(ip: u8, client: u8, state: LeaseState, starts: u64, expires: u64) -> Lease {
        Lease {
            ip: Ipv4Addr::new(198, 18, 0, ip),
            client_id: ClientId(vec![1, 2, 0, 0, 0, 0, client]),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, client]),
            hostname: None,
            state,
            starts: Timestamp(starts),
            expires: Timestamp(expires),
            first_seen: Timestamp(starts),
            circuit_id: None,
            remote_id: None,
            subscriber_id: None,
        }
    }

    #[test]
    fn external_rules() {
        let now = Timestamp(1000);
        let table = LeaseTable::from_leases([
            lease(10, 1, LeaseState::Bound, 900, 2000),
            lease(11, 1, LeaseState::Offered, 990, 1010),
            lease(12, 3, LeaseState::Bound, 950, 2000),
        ]);
        // Unknown address: taken.
        let c = external_changes(
            &table,
            vec![lease(20, 2, LeaseState::Bound, 900, 2000)],
            now,
            false,
        );
        assert_eq!(c.len(), 1);
        // Another client's active lease over our offer: taken (the conflict case).
        let c = external_changes(
            &table,
            vec![lease(11, 2, LeaseState::Bound, 995, 2000)],
            now,
            false,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].durability, Durability::Volatile);
        // A stale read older than our own active binding: ignored.
        let c = external_changes(
            &table,
            vec![lease(12, 2, LeaseState::Bound, 900, 2000)],
            now,
            false,
        );
        assert!(c.is_empty());
        // Another client's lapsed lease: ignored.
        let c = external_changes(
            &table,
            vec![lease(10, 2, LeaseState::Released, 990, 990)],
            now,
            false,
        );
        assert!(c.is_empty());
        // ... unless it just beat our commit.
        let c = external_changes(
            &table,
            vec![lease(11, 2, LeaseState::Bound, 900, 2000)],
            now,
            true,
        );
        assert_eq!(c.len(), 1);
        // Same client: only newer.
        let c = external_changes(
            &table,
            vec![lease(10, 1, LeaseState::Bound, 800, 1500)],
            now,
            false,
        );
        assert!(c.is_empty());
        let c = external_changes(
            &table,
            vec![lease(10, 1, LeaseState::Bound, 995, 3000)],
            now,
            false,
        );
        assert_eq!(c.len(), 1);
        let c = external_changes(
            &table,
            vec![lease(10, 1, LeaseState::Bound, 900, 2000)],
            now,
            false,
        );
        assert!(c.is_empty());
        // Same client, same binding, given back (expires moved back) or lapsed: taken.
        let c = external_changes(
            &table,
            vec![lease(10, 1, LeaseState::Released, 900, 995)],
            now,
            false,
        );
        assert_eq!(c.len(), 1);
        let c = external_changes(
            &table,
            vec![lease(10, 1, LeaseState::Expired, 900, 2000)],
            now,
            false,
        );
        assert_eq!(c.len(), 1);
        // ... and the binding does not come back over its own end.
        let released = LeaseTable::from_leases([lease(10, 1, LeaseState::Released, 900, 995)]);
        let c = external_changes(
            &released,
            vec![lease(10, 1, LeaseState::Bound, 900, 2000)],
            now,
            false,
        );
        assert!(c.is_empty());
        // ... but not an end of an older binding.
        let c = external_changes(
            &table,
            vec![lease(10, 1, LeaseState::Released, 800, 995)],
            now,
            false,
        );
        assert!(c.is_empty());
    }
}
