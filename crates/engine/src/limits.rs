//! Starvation defence: the `[limits]` token buckets and offer caps, checked by the engine before
//! a request reaches `decide`. Pure and clock-free: the caller passes `now` (monotonic seconds),
//! so the tests drive time by hand.
//!
//! Why here and not in core: limits are about load, not about the protocol answer; a dropped
//! request leaves no trace in the lease table, and the per-key bucket state must not make the
//! decision function stateful.
//!
//! Memory is bounded: each bucket table holds at most [`MAX_KEYS`] keys, and a new key in a full
//! table takes the place of the key seen least recently, in O(1) (an LRU map): a random-MAC
//! flood costs the same per packet whether the table is full or not, is still held by the
//! per-relay bucket and the offer caps, and a key that keeps sending keeps its bucket.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use hashlink::LruCache;

use crate::settings::{Limits, RateLimit};
use leased_core::{LeaseChange, LeaseState, RelayInfo, Timestamp};
use leased_wire::{MessageType, Packet, code};

/// Most keys one bucket table tracks.
pub const MAX_KEYS: usize = 65_536;

/// A token bucket: `burst` tokens at most, `rate` added per second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    last: f64,
}

impl Bucket {
    /// A full bucket at `now`.
    pub(crate) fn full(limit: &RateLimit, now: f64) -> Self {
        Self {
            tokens: f64::from(limit.burst),
            last: now,
        }
    }

    fn refill(&mut self, limit: &RateLimit, now: f64) {
        let elapsed = (now - self.last).max(0.0);
        self.tokens = (self.tokens + elapsed * limit.rate).min(f64::from(limit.burst));
        self.last = self.last.max(now);
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, limit: &RateLimit, now: f64) -> bool {
        self.refill(limit, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Buckets by key, at most [`MAX_KEYS`]; the least recently seen key makes room.
struct Table {
    buckets: LruCache<Vec<u8>, Bucket>,
}

impl Default for Table {
    fn default() -> Self {
        Self {
            buckets: LruCache::new(MAX_KEYS),
        }
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("keys", &self.buckets.len())
            .finish()
    }
}

impl Table {
    /// Takes a token for `key`; false means over the limit. O(1) whether the table is full or
    /// not: a new key in a full table evicts the least recently seen one.
    fn take(&mut self, key: &[u8], limit: &RateLimit, now: f64) -> bool {
        if let Some(b) = self.buckets.get_mut(key) {
            return b.take(limit, now);
        }
        let mut b = Bucket::full(limit, now);
        let ok = b.take(limit, now);
        self.buckets.insert(key.to_vec(), b);
        ok
    }
}

/// Why the guard dropped a request; the label is the `dropped.<label>` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limited {
    /// The client's MAC is over `per_mac`.
    Mac,
    /// The Option 82 circuit-id is over `per_circuit_id`.
    CircuitId,
    /// The Option 82 remote-id is over `per_remote_id`.
    RemoteId,
    /// The relay (or receiving interface) is over `per_relay`.
    Relay,
    /// A DISCOVER while `max_offers_in_flight` offers are outstanding.
    OffersInFlight,
    /// A DISCOVER while the relay has `max_offers_in_flight_per_relay` offers outstanding.
    OffersInFlightRelay,
}

impl Limited {
    /// Stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Limited::Mac => "rate_mac",
            Limited::CircuitId => "rate_circuit_id",
            Limited::RemoteId => "rate_remote_id",
            Limited::Relay => "rate_relay",
            Limited::OffersInFlight => "offers_in_flight",
            Limited::OffersInFlightRelay => "offers_in_flight_relay",
        }
    }
}

/// The relay key of a request: its giaddr, or the receiving interface for a direct client.
pub(crate) fn relay_key(pkt: &Packet, iface: Option<&str>) -> Vec<u8> {
    if pkt.giaddr.is_unspecified() {
        let mut k = b"if:".to_vec();
        k.extend_from_slice(iface.unwrap_or("").as_bytes());
        k
    } else {
        pkt.giaddr.octets().to_vec()
    }
}

/// An outstanding offer: its address's deadline and the relay it went through.
#[derive(Debug, Clone)]
struct Offer {
    expires: Timestamp,
    relay: Vec<u8>,
}

/// The guard's state: buckets per key and the offers in flight.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    mac: Table,
    circuit: Table,
    remote: Table,
    relay: Table,
    /// Outstanding offers by address.
    offers: HashMap<Ipv4Addr, Offer>,
    /// The same, by deadline, to forget lapsed ones in order.
    by_deadline: BTreeSet<(Timestamp, Ipv4Addr)>,
    /// Outstanding offers per relay key.
    per_relay: HashMap<Vec<u8>, u32>,
}

impl Guard {
    /// Checks one request against `limits`. `mono` is monotonic seconds (bucket refill), `now`
    /// the lease clock (offer deadlines). `Err` names the limit it is over; nothing is consumed
    /// from the buckets after the first one that refuses.
    pub(crate) fn check(
        &mut self,
        limits: &Limits,
        pkt: &Packet,
        iface: Option<&str>,
        mono: f64,
        now: Timestamp,
    ) -> Result<(), Limited> {
        if let Some(l) = &limits.per_mac
            && !self.mac.take(pkt.chaddr(), l, mono)
        {
            return Err(Limited::Mac);
        }
        if (limits.per_circuit_id.is_some() || limits.per_remote_id.is_some())
            && let Some(info) = pkt
                .options
                .get(code::RELAY_AGENT_INFO)
                .map(RelayInfo::parse)
        {
            if let (Some(l), Some(c)) = (&limits.per_circuit_id, &info.circuit_id) {
                // A circuit-id is only unique within its relay agent.
                let mut key = info.remote_id.clone().unwrap_or_default();
                key.push(0xff);
                key.extend_from_slice(c);
                if !self.circuit.take(&key, l, mono) {
                    return Err(Limited::CircuitId);
                }
            }
            if let (Some(l), Some(r)) = (&limits.per_remote_id, &info.remote_id)
                && !self.remote.take(r, l, mono)
            {
                return Err(Limited::RemoteId);
            }
        }
        let needs_relay =
            limits.per_relay.is_some() || limits.max_offers_in_flight_per_relay.is_some();
        let relay = needs_relay.then(|| relay_key(pkt, iface));
        if let (Some(l), Some(key)) = (&limits.per_relay, &relay)
            && !self.relay.take(key, l, mono)
        {
            return Err(Limited::Relay);
        }
        if pkt.message_type() == Some(MessageType::Discover) {
            self.forget_lapsed(now);
            if let Some(cap) = limits.max_offers_in_flight
                && self.offers.len() >= cap as usize
            {
                return Err(Limited::OffersInFlight);
            }
            if let (Some(cap), Some(key)) = (limits.max_offers_in_flight_per_relay, &relay)
                && self.per_relay.get(key).copied().unwrap_or(0) >= cap
            {
                return Err(Limited::OffersInFlightRelay);
            }
        }
        Ok(())
    }

    /// Follows a decision's lease changes: an Offered lease is an offer in flight (through
    /// `relay`); any other state for that address ends it.
    pub(crate) fn track(&mut self, changes: &[LeaseChange], relay: &[u8]) {
        for c in changes {
            let ip = c.lease.ip;
            self.remove(ip);
            if c.lease.state == LeaseState::Offered {
                self.by_deadline.insert((c.lease.expires, ip));
                *self.per_relay.entry(relay.to_vec()).or_default() += 1;
                self.offers.insert(
                    ip,
                    Offer {
                        expires: c.lease.expires,
                        relay: relay.to_vec(),
                    },
                );
            }
        }
    }

    /// Offers outstanding now (after forgetting lapsed ones).
    #[cfg(test)]
    pub(crate) fn offers_in_flight(&mut self, now: Timestamp) -> usize {
        self.forget_lapsed(now);
        self.offers.len()
    }

    fn remove(&mut self, ip: Ipv4Addr) {
        if let Some(o) = self.offers.remove(&ip) {
            self.by_deadline.remove(&(o.expires, ip));
            if let Some(n) = self.per_relay.get_mut(&o.relay) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_relay.remove(&o.relay);
                }
            }
        }
    }

    fn forget_lapsed(&mut self, now: Timestamp) {
        while let Some(&(t, ip)) = self.by_deadline.first() {
            if t > now {
                break;
            }
            self.remove(ip);
            self.by_deadline.remove(&(t, ip));
        }
    }
}

/// Logs drops by the guard at most once per second, with how many were suppressed, so a flood
/// cannot flood the log too.
#[derive(Debug, Default)]
pub(crate) struct DropLog {
    next: f64,
    suppressed: u64,
}

impl DropLog {
    /// Notes a drop at `mono`; returns the number of drops (this one included) to report now,
    /// or `None` while the log is quiet.
    pub(crate) fn note(&mut self, mono: f64) -> Option<u64> {
        self.suppressed += 1;
        if mono >= self.next {
            self.next = mono + 1.0;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use leased_core::Durability;
    use leased_core::{ClientId, HwAddr, Lease};

    fn lim(rate: f64, burst: u32) -> Option<RateLimit> {
        Some(RateLimit { rate, burst })
    }

    fn discover(mac: u8, giaddr: Ipv4Addr, opt82: Option<&[u8]>) -> Packet {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, mac]);
        let mut p = Packet {
            op: 1,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 1,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr,
            chaddr,
            sname: vec![],
            file: vec![],
            options: Default::default(),
            option82_in_overload: false,
        };
        p.options.set(code::MESSAGE_TYPE, vec![1]);
        if let Some(v) = opt82 {
            p.options.set(code::RELAY_AGENT_INFO, v.to_vec());
        }
        p
    }

    fn offered(ip: u8, expires: u64) -> LeaseChange {
        LeaseChange {
            lease: Lease {
                ip: Ipv4Addr::new(198, 18, 0, ip),
                client_id: ClientId(vec![ip]),
                hwaddr: HwAddr(vec![ip]),
                hostname: None,
                state: LeaseState::Offered,
                starts: Timestamp(0),
                expires: Timestamp(expires),
                first_seen: Timestamp(0),
                circuit_id: None,
                remote_id: None,
                subscriber_id: None,
            },
            durability: Durability::Volatile,
        }
    }

    const T: Timestamp = Timestamp(100);
    const DIRECT: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let l = RateLimit {
            rate: 2.0,
            burst: 3,
        };
        let mut b = Bucket::full(&l, 0.0);
        assert!(b.take(&l, 0.0) && b.take(&l, 0.0) && b.take(&l, 0.0));
        assert!(!b.take(&l, 0.0));
        assert!(!b.take(&l, 0.4), "0.8 tokens after 0.4 s");
        assert!(b.take(&l, 0.5), "one token after 0.5 s at 2/s");
        // Never more than the burst, however long it was idle.
        let mut b = Bucket::full(&l, 0.0);
        for _ in 0..3 {
            assert!(b.take(&l, 1000.0));
        }
        assert!(!b.take(&l, 1000.0));
        // A clock that steps back does not mint tokens.
        assert!(!b.take(&l, 10.0));
    }

    #[test]
    fn per_mac_limits_one_client_and_not_the_others() {
        let limits = Limits {
            per_mac: lim(1.0, 2),
            ..Default::default()
        };
        let mut g = Guard::default();
        let a = discover(1, DIRECT, None);
        assert!(g.check(&limits, &a, Some("eth0"), 0.0, T).is_ok());
        assert!(g.check(&limits, &a, Some("eth0"), 0.0, T).is_ok());
        assert_eq!(
            g.check(&limits, &a, Some("eth0"), 0.0, T),
            Err(Limited::Mac)
        );
        assert!(
            g.check(&limits, &discover(2, DIRECT, None), Some("eth0"), 0.0, T)
                .is_ok()
        );
        assert!(g.check(&limits, &a, Some("eth0"), 1.0, T).is_ok());
    }

    #[test]
    fn per_relay_keys_by_giaddr_or_interface() {
        let limits = Limits {
            per_relay: lim(0.001, 2),
            ..Default::default()
        };
        let mut g = Guard::default();
        let relay = Ipv4Addr::new(198, 18, 1, 1);
        for mac in 0..2 {
            assert!(
                g.check(&limits, &discover(mac, relay, None), None, 0.0, T)
                    .is_ok()
            );
        }
        assert_eq!(
            g.check(&limits, &discover(9, relay, None), None, 0.0, T),
            Err(Limited::Relay)
        );
        // Another relay and a direct link have their own buckets.
        let other = Ipv4Addr::new(198, 18, 2, 1);
        assert!(
            g.check(&limits, &discover(9, other, None), None, 0.0, T)
                .is_ok()
        );
        assert!(
            g.check(&limits, &discover(9, DIRECT, None), Some("eth0"), 0.0, T)
                .is_ok()
        );
        assert!(
            g.check(&limits, &discover(9, DIRECT, None), Some("eth0"), 0.0, T)
                .is_ok()
        );
        assert_eq!(
            g.check(&limits, &discover(9, DIRECT, None), Some("eth0"), 0.0, T),
            Err(Limited::Relay)
        );
        assert!(
            g.check(&limits, &discover(9, DIRECT, None), Some("eth1"), 0.0, T)
                .is_ok()
        );
    }

    #[test]
    fn circuit_and_remote_id_buckets() {
        let limits = Limits {
            per_circuit_id: lim(0.001, 1),
            per_remote_id: lim(0.001, 3),
            ..Default::default()
        };
        let mut g = Guard::default();
        let relay = Ipv4Addr::new(198, 18, 1, 1);
        let port = |p: u8| vec![1, 1, p, 2, 2, 0xaa, 0xbb];
        assert!(
            g.check(&limits, &discover(1, relay, Some(&port(1))), None, 0.0, T)
                .is_ok()
        );
        assert_eq!(
            g.check(&limits, &discover(2, relay, Some(&port(1))), None, 0.0, T),
            Err(Limited::CircuitId),
            "the same port, whatever the MAC"
        );
        assert!(
            g.check(&limits, &discover(3, relay, Some(&port(2))), None, 0.0, T)
                .is_ok()
        );
        assert!(
            g.check(&limits, &discover(4, relay, Some(&port(3))), None, 0.0, T)
                .is_ok()
        );
        assert_eq!(
            g.check(&limits, &discover(5, relay, Some(&port(4))), None, 0.0, T),
            Err(Limited::RemoteId),
            "a fourth port of the same switch is over the remote-id's burst"
        );
        // Without Option 82 neither applies.
        assert!(
            g.check(&limits, &discover(6, relay, None), None, 0.0, T)
                .is_ok()
        );
    }

    #[test]
    fn offers_in_flight_cap_counts_until_requested_or_lapsed() {
        let limits = Limits {
            max_offers_in_flight: Some(2),
            ..Default::default()
        };
        let mut g = Guard::default();
        let d = discover(1, DIRECT, None);
        g.track(&[offered(10, 160)], b"if:eth0");
        g.track(&[offered(11, 170)], b"if:eth0");
        assert_eq!(g.offers_in_flight(T), 2);
        assert_eq!(
            g.check(&limits, &d, Some("eth0"), 0.0, T),
            Err(Limited::OffersInFlight)
        );
        // A REQUEST is never held by the offer cap.
        let mut r = d.clone();
        r.options.set(code::MESSAGE_TYPE, vec![3]);
        assert!(g.check(&limits, &r, Some("eth0"), 0.0, T).is_ok());
        // The offer becomes a binding: one slot frees.
        let mut bound = offered(10, 9999);
        bound.lease.state = LeaseState::Bound;
        g.track(&[bound], b"if:eth0");
        assert!(g.check(&limits, &d, Some("eth0"), 0.0, T).is_ok());
        // Re-offering the same address does not count twice.
        g.track(&[offered(12, 165)], b"if:eth0");
        g.track(&[offered(12, 166)], b"if:eth0");
        assert_eq!(g.offers_in_flight(T), 2);
        // Lapsed offers are forgotten at their deadline.
        assert_eq!(g.offers_in_flight(Timestamp(166)), 1);
        assert_eq!(g.offers_in_flight(Timestamp(170)), 0);
        assert!(
            g.check(&limits, &d, Some("eth0"), 0.0, Timestamp(170))
                .is_ok()
        );
    }

    #[test]
    fn per_relay_offer_cap_leaves_other_links_alone() {
        let limits = Limits {
            max_offers_in_flight: Some(10),
            max_offers_in_flight_per_relay: Some(2),
            ..Default::default()
        };
        let mut g = Guard::default();
        g.track(&[offered(10, 999), offered(11, 999)], b"if:att0");
        let d = discover(1, DIRECT, None);
        assert_eq!(
            g.check(&limits, &d, Some("att0"), 0.0, T),
            Err(Limited::OffersInFlightRelay)
        );
        assert!(g.check(&limits, &d, Some("good0"), 0.0, T).is_ok());
    }

    #[test]
    fn tables_stay_bounded_under_a_random_mac_flood() {
        let limits = Limits {
            per_mac: lim(1.0, 1),
            ..Default::default()
        };
        let mut g = Guard::default();
        for i in 0..(MAX_KEYS as u32 + 1000) {
            let mut p = discover(0, DIRECT, None);
            p.chaddr[2..6].copy_from_slice(&i.to_be_bytes());
            let _ = g.check(&limits, &p, Some("eth0"), 0.0, T);
        }
        assert_eq!(g.mac.buckets.len(), MAX_KEYS);
        // A new key in the full table takes the least recently seen key's place.
        let p = discover(77, DIRECT, None);
        assert!(g.check(&limits, &p, Some("eth0"), 10.0, T).is_ok());
        assert_eq!(g.mac.buckets.len(), MAX_KEYS);
    }

    #[test]
    fn a_key_that_keeps_sending_keeps_its_bucket_in_a_full_table() {
        let limits = Limits {
            per_mac: lim(0.001, 2),
            ..Default::default()
        };
        let mut g = Guard::default();
        let noisy = discover(9, DIRECT, None);
        assert!(g.check(&limits, &noisy, Some("eth0"), 0.0, T).is_ok());
        assert!(g.check(&limits, &noisy, Some("eth0"), 0.0, T).is_ok());
        for i in 0..(2 * MAX_KEYS as u32) {
            let mut p = discover(0, DIRECT, None);
            p.chaddr[2..6].copy_from_slice(&i.to_be_bytes());
            let _ = g.check(&limits, &p, Some("eth0"), 0.0, T);
            // The noisy client is refused every so often, so it stays recently seen.
            if i % 10_000 == 0 {
                assert_eq!(
                    g.check(&limits, &noisy, Some("eth0"), 0.0, T),
                    Err(Limited::Mac),
                    "its empty bucket was forgotten after {i} new keys"
                );
            }
        }
    }

    #[test]
    fn drop_log_speaks_once_a_second() {
        let mut l = DropLog::default();
        assert_eq!(l.note(0.0), Some(1));
        assert_eq!(l.note(0.5), None);
        assert_eq!(l.note(0.9), None);
        assert_eq!(l.note(1.0), Some(3));
    }
}
