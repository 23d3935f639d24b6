//! Login back-off: a source that keeps presenting wrong keys to the dashboard's login form is
//! refused (429, `Retry-After`) before its next key is even checked, for an interval that
//! doubles with each further failure — the router endpoint's rule (`leased_export::auth`), with
//! its numbers: three free failures (a mistyped key), then 1 s, 2 s, 4 s … up to a minute,
//! forgotten after ten quiet minutes or at the first success.
//!
//! Why its own table: the API crate does not depend on the export, and a guess at the
//! dashboard should not lock a router out of its endpoint (or the reverse). Sources are kept in
//! a bounded LRU table (O(1) lookup, update and eviction), keyed by IPv4 address or IPv6 /64.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hashlink::LruCache;

/// Consecutive failures a source may make before it is refused.
pub const FREE_FAILURES: u32 = 3;
/// The first refusal; each further failure doubles it.
pub const BASE: Duration = Duration::from_secs(1);
/// The longest refusal.
pub const MAX: Duration = Duration::from_secs(60);
/// A source that has not failed for this long starts afresh.
pub const FORGET: Duration = Duration::from_secs(600);
/// Most sources remembered.
pub const CAPACITY: usize = 4096;

/// The back-off key: an IPv4 address (IPv4-mapped included) or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// One IPv4 address.
    V4([u8; 4]),
    /// An IPv6 /64 (a host has a whole /64 to pick addresses from).
    V6([u8; 8]),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Source::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let o = a.octets();
                    let mut net = [0u8; 8];
                    net.copy_from_slice(o.get(..8).unwrap_or(&[0; 8]));
                    Source::V6(net)
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Recent login failures per source.
#[derive(Debug)]
pub struct Backoff {
    table: LruCache<Source, Failures>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl Backoff {
    /// An empty table remembering at most `capacity` sources.
    pub fn new(capacity: usize) -> Self {
        Self {
            table: LruCache::new(capacity.max(1)),
        }
    }

    /// How long `src` is still refused at `now`, if it is.
    pub fn blocked(&mut self, src: Source, now: Instant) -> Option<Duration> {
        let until = self.table.get(&src)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a wrong key from `src` at `now`; returns the refusal it earns, if any.
    pub fn failure(&mut self, src: Source, now: Instant) -> Option<Duration> {
        let mut f = match self.table.get(&src) {
            Some(f) if now.saturating_duration_since(f.last) < FORGET => *f,
            _ => Failures {
                count: 0,
                last: now,
                blocked_until: None,
            },
        };
        f.count = f.count.saturating_add(1);
        f.last = now;
        let over = f.count.saturating_sub(FREE_FAILURES);
        let block = (over > 0).then(|| BASE.saturating_mul(1u32 << (over - 1).min(20)).min(MAX));
        f.blocked_until = block.map(|b| now + b);
        self.table.insert(src, f);
        block
    }

    /// A right key from `src`: its failures are forgotten.
    pub fn success(&mut self, src: Source) {
        self.table.remove(&src);
    }

    /// Sources remembered.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_earn_a_growing_capped_refusal() {
        let mut b = Backoff::default();
        let s = Source::V4([198, 18, 0, 9]);
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(b.failure(s, t0), None);
        }
        assert_eq!(b.blocked(s, t0), None);
        assert_eq!(b.failure(s, t0), Some(Duration::from_secs(1)));
        assert_eq!(b.blocked(s, t0), Some(Duration::from_secs(1)));
        assert_eq!(b.failure(s, t0), Some(Duration::from_secs(2)));
        for _ in 0..30 {
            b.failure(s, t0);
        }
        assert_eq!(b.blocked(s, t0), Some(MAX));
        assert_eq!(b.blocked(s, t0 + MAX), None);
        b.success(s);
        assert_eq!(b.failure(s, t0), None, "a success starts afresh");
        // Ten quiet minutes start afresh too.
        let later = t0 + FORGET;
        for _ in 0..FREE_FAILURES {
            assert_eq!(b.failure(s, later), None);
        }
    }

    #[test]
    fn bounded_and_keyed_by_v6_64() {
        let mut b = Backoff::new(2);
        let t0 = Instant::now();
        for i in 0..100u8 {
            b.failure(Source::V4([198, 18, 1, i]), t0);
        }
        assert_eq!(b.len(), 2);
        let a: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0u8; 16]));
        let c: IpAddr = "2001:db8::ffff:1"
            .parse()
            .unwrap_or(IpAddr::from([0u8; 16]));
        assert_eq!(Source::from(a), Source::from(c));
        let m: IpAddr = "::ffff:198.18.0.1"
            .parse()
            .unwrap_or(IpAddr::from([0u8; 16]));
        assert_eq!(Source::from(m), Source::V4([198, 18, 0, 1]));
    }
}
