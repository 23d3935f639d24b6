//! Leases, their state machine, and the in-memory table that decisions read.

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
    pub ip: Ipv4Addr,
    pub client_id: ClientId,
    pub hwaddr: HwAddr,
    pub hostname: Option<String>,
    pub state: LeaseState,
    /// When this binding (or offer) was made or last renewed.
    pub starts: Timestamp,
    /// End of validity for Offered/Bound, end of quarantine for Declined.
    pub expires: Timestamp,
    /// When this client was first given this address.
    pub first_seen: Timestamp,
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
    pub lease: Lease,
    pub durability: Durability,
}

/// The in-memory lease table, indexed by address and by client. Decisions read it; the io
/// shell applies each decision's changes to it, and loads it from the store at start.
#[derive(Debug, Default, Clone)]
pub struct LeaseTable {
    // core helper: indexes by ip and client id, plus whatever allocation needs to be fast
}
