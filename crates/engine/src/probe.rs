//! The conflict check before an OFFER (`[server] conflict_check`): the offer is held while the
//! driver probes its address, then sent, or the address is quarantined like a DECLINE and the
//! request decided again. The rules live here; the ARP probe and the ICMP echo are the
//! driver's.
//!
//! Bounded: at most [`MAX_IN_FLIGHT`] checks at once (beyond that an offer leaves unchecked,
//! so a flood cannot queue work without bound), at most [`MAX_ATTEMPTS`] addresses per request,
//! and a cache of addresses found free that forgets the least recently remembered one.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::settings::ConflictCheckMode;
use hashlink::LruCache;
use leased_core::{Event, Reply, Request};

use crate::Origin;
use crate::effect::ProbeVia;

/// Addresses tried per request before it is left to the client's retry.
pub const MAX_ATTEMPTS: u8 = 4;
/// Checks running at once.
pub const MAX_IN_FLIGHT: usize = 1024;
/// Addresses remembered as free.
const MAX_CACHE: usize = 65_536;

/// Names one check, from [`crate::Engine::poll_probe`] to [`crate::Engine::handle_probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId(pub u64);

/// A check for the driver to run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "every probe must be answered with Engine::handle_probe"]
pub struct Probe {
    /// Its name, for the answer.
    pub id: ProbeId,
    /// The address to check.
    pub ip: Ipv4Addr,
    /// The link the request came in on ([`Origin::link`]).
    pub link: usize,
    /// The client is on that link (giaddr 0): an ARP probe can reach the address.
    pub on_link: bool,
    /// `arp` (on-link by ARP, else ICMP) or `ping` (ICMP always).
    pub mode: ConflictCheckMode,
    /// How long to wait for an answer.
    pub timeout: Duration,
}

/// Someone answered for the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeAnswer {
    /// How.
    pub via: ProbeVia,
    /// The MAC that answered (ARP only).
    pub mac: Option<[u8; 6]>,
}

/// An offer waiting for its check.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) req: Request,
    pub(crate) origin: Origin,
    pub(crate) reply: Reply,
    pub(crate) event: Event,
    pub(crate) received: Duration,
    pub(crate) attempt: u8,
}

/// The checks in flight and what was learned.
pub(crate) struct Probes {
    pub(crate) held: HashMap<ProbeId, Held>,
    next: u64,
    /// Addresses that did not answer, until when (monotonic) they count as free.
    free_until: LruCache<Ipv4Addr, Duration>,
}

impl Default for Probes {
    fn default() -> Self {
        Self {
            held: HashMap::new(),
            next: 0,
            free_until: LruCache::new(MAX_CACHE),
        }
    }
}

impl Probes {
    /// True when `ip` was found free recently enough to skip the check.
    pub(crate) fn cached_free(&mut self, ip: Ipv4Addr, mono: Duration) -> bool {
        match self.free_until.get(&ip) {
            Some(until) if *until > mono => true,
            Some(_) => {
                self.free_until.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Remembers `ip` as free for `secs` (0: never).
    pub(crate) fn remember_free(&mut self, ip: Ipv4Addr, mono: Duration, secs: u32) {
        if secs > 0 {
            self.free_until
                .insert(ip, mono + Duration::from_secs(u64::from(secs)));
        }
    }

    /// Holds an offer; `None` when [`MAX_IN_FLIGHT`] checks already run.
    pub(crate) fn hold(&mut self, held: Held) -> Option<ProbeId> {
        if self.held.len() >= MAX_IN_FLIGHT {
            return None;
        }
        self.next += 1;
        let id = ProbeId(self.next);
        self.held.insert(id, held);
        Some(id)
    }
}
