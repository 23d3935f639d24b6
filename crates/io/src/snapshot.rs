//! The lease table as readers see it: a copy the driver publishes, so that no reader ever makes
//! the engine wait.

use leased_core::{Lease, Timestamp};

/// The lease table as the engine last published it.
#[derive(Debug, Clone, Default)]
pub struct LeaseSnapshot {
    /// Every lease record (any state), in address order, so lookups can binary-search.
    pub leases: Vec<Lease>,
    /// The engine's clock when the copy was taken.
    pub taken_at: Timestamp,
}

impl LeaseSnapshot {
    /// The record for `ip`, if any (binary search: the snapshot is in address order).
    pub fn by_ip(&self, ip: std::net::Ipv4Addr) -> Option<&Lease> {
        self.leases
            .binary_search_by_key(&ip, |l| l.ip)
            .ok()
            .and_then(|i| self.leases.get(i))
    }
}
