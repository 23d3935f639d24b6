//! What the engine tells its driver, besides replies, commits and probes: one typed
//! [`LeaseEvent`] per lease change that became durable (for history, billing and metrics), and
//! the log-worthy facts ([`Effect`]) with one [`DropReason`] for every request that got no reply.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use leased_core::{ClientId, Event, HwAddr, Lease, LeaseChange, RelayInfo, Timestamp};
use leased_wire::MessageType;

use crate::limits::Limited;

/// Why a request got no reply: the core's reasons, the limits, and the server's own. One
/// label each, for the `dropped` metric and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The decision's own reason (banned client, pool exhausted, …). Never
    /// [`leased_core::DropReason::NoReplyNeeded`], which is not a drop.
    Decision(leased_core::DropReason),
    /// Over a `[limits]` rate or offer cap.
    Limit(Limited),
    /// The reply's lease did not become durable (the store failed, or another server holds the
    /// address): the reply is not sent and the client will retry.
    StoreError,
    /// The reply's lease became durable only after it had lapsed or changed (a store that
    /// stalled): sending it would hand out an address the table no longer holds for the client.
    StaleReply,
    /// The receive queue was full (counted where the queue is, before the engine).
    Overload,
    /// A DISCOVER while the lease database is down (counted before the engine).
    StoreDown,
    /// The SQL assignment chain failed and its fallback is `silent` (counted before the engine).
    SqlUnavailable,
}

impl DropReason {
    /// The stable, low-cardinality label of the `dropped` metric and the log.
    pub fn label(self) -> &'static str {
        match self {
            Self::Decision(r) => r.label(),
            Self::Limit(l) => l.label(),
            Self::StoreError => "store_error",
            Self::StaleReply => "stale_reply",
            Self::Overload => "overload",
            Self::StoreDown => "store_down",
            Self::SqlUnavailable => "sql_unavailable",
        }
    }
}

/// What happened to a lease, as history, billing and metrics all see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseEventKind {
    /// A new binding: the client did not hold this address bound before.
    AckNew,
    /// The same client's binding extended.
    Renew,
    /// The client gave the address back.
    Release,
    /// The client found the address in use; it is quarantined.
    Decline,
    /// The lease ran out.
    Expire,
    /// A REQUEST refused; nothing changed.
    Nak,
}

impl LeaseEventKind {
    /// The history's event name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AckNew => "ack_new",
            Self::Renew => "renew",
            Self::Release => "release",
            Self::Decline => "decline",
            Self::Expire => "expire",
            Self::Nak => "nak",
        }
    }

    /// True for a binding made or extended.
    pub fn binds(self) -> bool {
        matches!(self, Self::AckNew | Self::Renew)
    }
}

/// One lease event. Emitted once its change is durable (a NAK, which changes nothing, at once),
/// so that nothing downstream hears of a binding a crash could take back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseEvent {
    /// What happened.
    pub kind: LeaseEventKind,
    /// When it was decided.
    pub at: Timestamp,
    /// The address (for a NAK, the one the client asked for, or 0.0.0.0).
    pub ip: Ipv4Addr,
    /// The client.
    pub client_id: ClientId,
    /// Its hardware address.
    pub hwaddr: HwAddr,
    /// Its host name, if known.
    pub hostname: Option<String>,
    /// The relay data it came with (trusted only: see `leased_core::trust`).
    pub circuit_id: Option<Vec<u8>>,
    /// See [`LeaseEvent::circuit_id`].
    pub remote_id: Option<Vec<u8>>,
    /// The relay it came through, if any.
    pub giaddr: Option<Ipv4Addr>,
    /// The lease as it now stands (`None` for a NAK).
    pub lease: Option<Lease>,
    /// The request's variables for the operator's `history_sql` (only when one is configured).
    pub vars: Option<BTreeMap<String, String>>,
    /// The request's client FQDN option (81) as received, for DNS updates (`None`: not sent,
    /// or not a request's event).
    pub client_fqdn: Option<Vec<u8>>,
}

/// A log-worthy fact, in the order it happened. The driver writes the log lines and counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A request was decided: its log line.
    Received {
        /// The decision's facts.
        event: Event,
        /// The interface it came in on.
        iface: Option<String>,
    },
    /// A request got no reply.
    Dropped {
        /// Why.
        reason: DropReason,
        /// The decision's facts (for a limit: the packet's, no decision was made).
        event: Event,
        /// The subnet the request was being served from, for a pool-exhausted line.
        subnet: Option<String>,
        /// The request's relay data, for a circuit-limit line.
        relay: Option<RelayInfo>,
        /// For a limit: write the (rate-limited) line now, reporting this many drops since the
        /// previous one; `None`: stay quiet.
        report: Option<u64>,
        /// For a limit: the packet's giaddr and interface, for its line.
        via: Option<(Ipv4Addr, Option<String>)>,
    },
    /// A reply whose lease did not become durable: not sent.
    CommitFailed {
        /// The decision's facts.
        event: Event,
        /// The reply that was not sent.
        sent: Option<MessageType>,
        /// The store's error.
        error: String,
    },
    /// A reply's lease lapsed or changed while its commit was in flight: not sent.
    Stale {
        /// The decision's facts.
        event: Event,
    },
    /// A commit nobody waited for failed (counted as a store error).
    LazyCommitFailed {
        /// The store's error.
        error: String,
    },
    /// A lease change became durable.
    Lease(LeaseEvent),
    /// A RELEASE, DECLINE or expiry whose commit failed in an outage that the store retries:
    /// to be recorded when the retry makes it durable.
    Parked(LeaseEvent),
    /// The timer ended offers, leases and quarantines.
    Expired(Vec<LeaseChange>),
    /// An offered address answered its conflict check: quarantined, another one is chosen.
    Conflict {
        /// The address.
        ip: Ipv4Addr,
        /// Who answered, if the check says (ARP gives a MAC, ICMP does not).
        answered_by: Option<[u8; 6]>,
        /// How it was checked.
        via: ProbeVia,
        /// The client that was to get it.
        client: HwAddr,
        /// 1 for the first address of this request.
        attempt: u8,
        /// Seconds it is quarantined.
        quarantine: u32,
    },
    /// [`crate::probe::MAX_ATTEMPTS`] addresses in a row answered: no offer now.
    ConflictGaveUp {
        /// The client.
        client: HwAddr,
    },
    /// The SQL assignment chain gave the client an address it was not served: the address is
    /// another client's (with `owner = "lease"`), lies outside every subnet, or may never be
    /// handed out. The client was served from the pools.
    AssignmentSkipped {
        /// The row's address.
        ip: Ipv4Addr,
        /// The client.
        client: HwAddr,
        /// `held`, `outside` or `unusable`.
        reason: &'static str,
    },
    /// A held offer changed while its check ran (the client moved on): not sent.
    ProbeOutdated {
        /// The address.
        ip: Ipv4Addr,
    },
    /// The conflict checks are at their limit: this offer leaves unchecked.
    ProbeSkipped {
        /// The address.
        ip: Ipv4Addr,
    },
}

/// How an address was checked for a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeVia {
    /// An RFC 5227 ARP probe on the client's link.
    Arp,
    /// An ICMP echo.
    Ping,
}

impl ProbeVia {
    /// The log word.
    pub fn name(self) -> &'static str {
        match self {
            Self::Arp => "arp",
            Self::Ping => "ping",
        }
    }
}
