//! Leases, their state machine, and the in-memory table that decisions read.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch. Core never reads a clock; io passes this in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `self + secs`, saturating.
    pub fn plus(self, secs: u32) -> Self {
        Self(self.0.saturating_add(u64::from(secs)))
    }
}

/// A client hardware address (chaddr, `hlen` bytes). Config MACs are 6-byte Ethernet ones.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HwAddr(pub Vec<u8>);

impl HwAddr {
    /// Parses `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or `aabbccddeeff` (case-insensitive).
    pub fn parse_mac(s: &str) -> Option<Self> {
        let hex: String = s.chars().filter(|c| *c != ':' && *c != '-').collect();
        if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let bytes = (0..6)
            .map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        // Separators, when used, must be consistent and between every pair.
        let sep_ok = match s.len() {
            12 => true,
            17 => {
                let seps: Vec<char> = s.chars().skip(2).step_by(3).collect();
                seps.len() == 5
                    && seps.iter().all(|c| *c == seps[0])
                    && (seps[0] == ':' || seps[0] == '-')
            }
            _ => false,
        };
        sep_ok.then_some(Self(bytes))
    }
}

impl std::fmt::Display for HwAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The key a client is known by: option 61 when sent, else `[htype] ++ chaddr` (RFC 2131 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub Vec<u8>);

/// Where a lease is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Held for a client between OFFER and REQUEST; not persisted.
    Offered,
    /// ACKed; valid until `expires`.
    Bound,
    /// Given back by its owner; the address is free but remembered for stickiness.
    Released,
    /// Reached `expires` without renewal; free but remembered for stickiness.
    Expired,
    /// The client said the address is in use by someone else; quarantined until `expires`.
    Declined,
}

/// One address's binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The address; the table's primary key.
    pub ip: Ipv4Addr,
    /// Who holds (or last held) the address: the key stickiness and ownership checks use.
    pub client_id: ClientId,
    /// The client's chaddr, for logs, reservations by MAC and the API.
    pub hwaddr: HwAddr,
    /// The client's host name (option 12) or its reservation's, for logs and DNS exports.
    pub hostname: Option<String>,
    /// Where the binding is in its life.
    pub state: LeaseState,
    /// When this binding (or offer) was made or last renewed.
    pub starts: Timestamp,
    /// End of validity for Offered/Bound, end of quarantine for Declined.
    pub expires: Timestamp,
    /// When this client was first given this address.
    pub first_seen: Timestamp,
    /// Option 82 circuit-id the binding was made through: a unicast renewal without Option 82
    /// keeps its port reservation, class and per-circuit count with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<Vec<u8>>,
    /// Option 82 remote-id the binding was made through (see `circuit_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<Vec<u8>>,
    /// Option 82 subscriber-id the binding was made through (see `circuit_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_id: Option<Vec<u8>>,
}

/// How soon a change must reach stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The reply may leave only once this is durable (ACK).
    BeforeReply,
    /// Persist with the next group, nobody waits (RELEASE, DECLINE, expiry).
    Lazy,
    /// Memory only (offers: a lost offer costs the client one retry).
    Volatile,
}

/// A lease written by a decision: an upsert keyed by `lease.ip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseChange {
    /// The lease as it is after the change.
    pub lease: Lease,
    /// How soon the store must have it.
    pub durability: Durability,
}

impl Lease {
    /// True when the address is taken at `now`: an offer or binding not yet past `expires`,
    /// or a declined address still in quarantine. Released and expired leases never are.
    pub fn is_active(&self, now: Timestamp) -> bool {
        match self.state {
            LeaseState::Offered | LeaseState::Bound | LeaseState::Declined => self.expires > now,
            LeaseState::Released | LeaseState::Expired => false,
        }
    }

    /// True when this lease still waits for a timed transition ([`LeaseTable::expire`]).
    fn has_deadline(&self) -> bool {
        matches!(
            self.state,
            LeaseState::Offered | LeaseState::Bound | LeaseState::Declined
        )
    }
}

/// The in-memory lease table, indexed by address and by client. Decisions read it; the io
/// shell applies each decision's changes to it, and loads it from the store at start.
///
/// One lease per address: a [`LeaseChange`] is an upsert keyed by `lease.ip`, and addresses
/// once known are never forgotten (their last binding is what makes stickiness work).
///
/// Indexes, chosen so that allocation stays O(log n) in large pools:
/// - `by_ip`: every lease, by address;
/// - `known`: the same addresses as a sorted vector, so "how many known addresses lie in this
///   range" is two binary searches (finds never-used addresses without scanning);
/// - `by_client`: the addresses each client holds or held;
/// - `deadlines`: Offered/Bound/Declined leases by `(expires, ip)`: the next timed transition,
///   and lapsed-but-not-yet-expired addresses;
/// - `free`: Released/Expired leases by `(expires, ip)`: "oldest free address first".
#[derive(Debug, Default, Clone)]
pub struct LeaseTable {
    by_ip: BTreeMap<u32, Lease>,
    known: Vec<u32>,
    by_client: BTreeMap<ClientId, Vec<u32>>,
    deadlines: BTreeSet<(Timestamp, u32)>,
    free: BTreeSet<(Timestamp, u32)>,
    /// Addresses by (remote-id, circuit-id) of their lease, for per-circuit caps.
    by_circuit: BTreeMap<(Vec<u8>, Vec<u8>), BTreeSet<u32>>,
    /// Addresses by remote-id of their lease, for per-remote-id caps.
    by_remote: BTreeMap<Vec<u8>, BTreeSet<u32>>,
}

impl LeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a table from stored leases (e.g. the store's snapshot). A later lease for the
    /// same address replaces an earlier one.
    pub fn from_leases(leases: impl IntoIterator<Item = Lease>) -> Self {
        let mut table = Self::new();
        for lease in leases {
            table.insert(lease, false);
        }
        table.known = table.by_ip.keys().copied().collect();
        table
    }

    /// Applies a decision's (or [`LeaseTable::expire`]'s) changes in order. Idempotent:
    /// applying the same changes twice leaves the same table.
    pub fn apply(&mut self, changes: &[LeaseChange]) {
        for change in changes {
            self.insert(change.lease.clone(), true);
        }
    }

    /// The lease for `ip`, in whatever state.
    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&u32::from(ip))
    }

    /// The client's most recent lease (latest `starts`, then highest address), in any state.
    pub fn by_client(&self, client: &ClientId) -> Option<&Lease> {
        self.leases_of(client).max_by_key(|l| (l.starts, l.ip))
    }

    /// Every lease currently recorded for `client` (one per address), in address order.
    pub fn leases_of<'a>(&'a self, client: &ClientId) -> impl Iterator<Item = &'a Lease> + 'a {
        self.by_client
            .get(client)
            .into_iter()
            .flatten()
            .filter_map(|ip| self.by_ip.get(ip))
    }

    /// True when `ip` is taken at `now` (see [`Lease::is_active`]).
    pub fn is_active(&self, ip: Ipv4Addr, now: Timestamp) -> bool {
        self.by_ip(ip).is_some_and(|l| l.is_active(now))
    }

    /// Every lease, in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values()
    }

    /// Every lease above `after` (all of them for `None`), in address order: lets a reader
    /// walk the table in bounded steps (a bulk leasequery) without holding it.
    pub fn iter_after(&self, after: Option<Ipv4Addr>) -> impl Iterator<Item = &Lease> {
        use std::ops::Bound;
        let lo = after.map_or(Bound::Unbounded, |a| Bound::Excluded(u32::from(a)));
        self.by_ip.range((lo, Bound::Unbounded)).map(|(_, l)| l)
    }

    /// Number of addresses with a lease record (in any state).
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// True when no lease is recorded.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Turns every timed-out lease into its next state, applies the changes and returns them
    /// for persisting (applying them again is harmless):
    /// - Bound past `expires` → Expired, [`Durability::Lazy`];
    /// - Offered past `expires` → Expired, [`Durability::Volatile`] (offers were never stored;
    ///   the address becomes reusable, and stays sticky for that client);
    /// - Declined past its quarantine → Expired, [`Durability::Lazy`] (free again).
    ///
    /// "Past" means `expires <= now`, the same rule [`Lease::is_active`] uses, so decisions
    /// never depend on whether this ran yet.
    pub fn expire(&mut self, now: Timestamp) -> Vec<LeaseChange> {
        let changes: Vec<LeaseChange> = self
            .deadlines
            .iter()
            .take_while(|(t, _)| *t <= now)
            .filter_map(|(_, ip)| self.by_ip.get(ip))
            .map(|lease| {
                let durability = match lease.state {
                    LeaseState::Offered => Durability::Volatile,
                    _ => Durability::Lazy,
                };
                LeaseChange {
                    lease: Lease {
                        state: LeaseState::Expired,
                        ..lease.clone()
                    },
                    durability,
                }
            })
            .collect();
        self.apply(&changes);
        changes
    }

    /// When [`LeaseTable::expire`] next has work: the earliest end of an offer, binding or
    /// quarantine. io arms its timer for this.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// The highest known address in `lo..=hi`.
    pub(crate) fn highest_known_in(&self, lo: u32, hi: u32) -> Option<u32> {
        self.by_ip.range(lo..=hi).next_back().map(|(ip, _)| *ip)
    }

    /// How many known addresses lie in `lo..=hi`: two binary searches.
    pub(crate) fn count_known_in(&self, lo: u32, hi: u32) -> u64 {
        if hi < lo {
            return 0;
        }
        let a = self.known.partition_point(|ip| *ip < lo);
        let b = self.known.partition_point(|ip| *ip <= hi);
        u64::try_from(b.saturating_sub(a)).unwrap_or(u64::MAX)
    }

    /// Addresses that are not active at `now` and have been used before, oldest end first:
    /// released/expired leases merged with lapsed offers/bindings/quarantines that
    /// [`LeaseTable::expire`] has not processed yet.
    pub(crate) fn reusable(&self, now: Timestamp) -> impl Iterator<Item = &Lease> + '_ {
        let mut free = self.free.iter().peekable();
        let mut lapsed = self
            .deadlines
            .iter()
            .take_while(move |(t, _)| *t <= now)
            .peekable();
        std::iter::from_fn(move || {
            let next = match (free.peek(), lapsed.peek()) {
                (Some(a), Some(b)) if b < a => lapsed.next(),
                (Some(_), _) => free.next(),
                (None, _) => lapsed.next(),
            };
            next.map(|(_, ip)| *ip)
        })
        .filter_map(|ip| self.by_ip.get(&ip))
    }

    /// Leases active at `now` made through circuit `circuit_id` of relay `remote_id` (the
    /// circuit-id alone when the relay sends no remote-id), other than `except`'s.
    pub fn active_on_circuit(
        &self,
        remote_id: Option<&[u8]>,
        circuit_id: &[u8],
        except: &ClientId,
        now: Timestamp,
    ) -> usize {
        let key = (remote_id.unwrap_or_default().to_vec(), circuit_id.to_vec());
        self.count_active(self.by_circuit.get(&key), except, now)
    }

    /// Leases active at `now` made through remote-id `remote_id`, other than `except`'s.
    pub fn active_on_remote(&self, remote_id: &[u8], except: &ClientId, now: Timestamp) -> usize {
        self.count_active(self.by_remote.get(remote_id), except, now)
    }

    fn count_active(
        &self,
        ips: Option<&BTreeSet<u32>>,
        except: &ClientId,
        now: Timestamp,
    ) -> usize {
        ips.into_iter()
            .flatten()
            .filter_map(|ip| self.by_ip.get(ip))
            .filter(|l| {
                &l.client_id != except
                    && matches!(l.state, LeaseState::Offered | LeaseState::Bound)
                    && l.is_active(now)
            })
            .count()
    }

    fn unindex_relay(&mut self, ip: u32) {
        let Some(old) = self.by_ip.get(&ip) else {
            return;
        };
        if let Some(c) = &old.circuit_id {
            let key = (old.remote_id.clone().unwrap_or_default(), c.clone());
            if let Some(set) = self.by_circuit.get_mut(&key) {
                set.remove(&ip);
                if set.is_empty() {
                    self.by_circuit.remove(&key);
                }
            }
        }
        if let Some(r) = &old.remote_id
            && let Some(set) = self.by_remote.get_mut(r)
        {
            set.remove(&ip);
            if set.is_empty() {
                let r = r.clone();
                self.by_remote.remove(&r);
            }
        }
    }

    /// Upserts one lease and keeps every index in step.
    fn insert(&mut self, lease: Lease, maintain_known: bool) {
        let ip = u32::from(lease.ip);
        self.unindex_relay(ip);
        if let Some(c) = &lease.circuit_id {
            let key = (lease.remote_id.clone().unwrap_or_default(), c.clone());
            self.by_circuit.entry(key).or_default().insert(ip);
        }
        if let Some(r) = &lease.remote_id {
            self.by_remote.entry(r.clone()).or_default().insert(ip);
        }
        if let Some(old) = self.by_ip.get(&ip) {
            let key = (old.expires, ip);
            self.deadlines.remove(&key);
            self.free.remove(&key);
            if old.client_id != lease.client_id {
                let old_client = old.client_id.clone();
                if let Some(ips) = self.by_client.get_mut(&old_client) {
                    ips.retain(|x| *x != ip);
                    if ips.is_empty() {
                        self.by_client.remove(&old_client);
                    }
                }
            }
        } else if maintain_known {
            let pos = self.known.partition_point(|x| *x < ip);
            self.known.insert(pos, ip);
        }
        let ips = self.by_client.entry(lease.client_id.clone()).or_default();
        if !ips.contains(&ip) {
            ips.push(ip);
            ips.sort_unstable();
        }
        let key = (lease.expires, ip);
        if lease.has_deadline() {
            self.deadlines.insert(key);
        } else {
            self.free.insert(key);
        }
        self.by_ip.insert(ip, lease);
    }
}
