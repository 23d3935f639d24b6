//! The server's behaviour around the pure decision core, **sans IO**: no sockets, no async
//! runtime, no clock reads. It owns the lease table and decides everything that happens around
//! [`leased_core::decide`]: the `[limits]` rate limits and offer caps, the hold of an OFFER while
//! its address is probed, which reply may leave once which commit is durable, the merge of
//! leases other servers wrote, and one typed [`LeaseEvent`] per durable lease change for the log,
//! the history, billing and metrics. A driver (`leased-io`) feeds it and carries out what it asks;
//! a test or simulation can do the same on a virtual clock.
//!
//! Methods, as quinn-proto's `Connection` sorts them:
//! - getters ([`Engine::table`], [`Engine::plan`]);
//! - handlers of what happened, named `handle_*`: [`Engine::handle_packet`],
//!   [`Engine::handle_commit`], [`Engine::handle_external`], [`Engine::handle_probe`],
//!   [`Engine::handle_timeout`], and with HA [`Engine::handle_partner_ack`] and
//!   [`Engine::handle_partner_lost`] (an ACK then waits for both the local store and the
//!   partner while [`Engine::set_partner_gate`] is on);
//! - polls of what to do, named `poll_*`: [`Engine::poll_transmit`] (replies that may leave now),
//!   [`Engine::poll_commit`] (leases to make durable), [`Engine::poll_probe`] (addresses to
//!   check), [`Engine::poll_effect`] (lease events and log facts), [`Engine::poll_timeout`] (when
//!   to call `handle_timeout`).
//!
//! Calling order: after every handler, drain every poll (a handler's outputs are queued in order;
//! a commit or probe must be answered before its reply can leave). Time is a parameter: each
//! handler takes [`Now`], whose wall clock must not go backwards between calls (the engine holds
//! it still if it does) and whose monotonic part drives the rate limits and the probe cache.
#![forbid(unsafe_code)]

mod effect;
mod engine;
pub mod leasequery;
mod limits;
mod merge;
mod probe;
mod settings;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use leased_core::Timestamp;

pub use effect::{DropReason, Effect, LeaseEvent, LeaseEventKind, ProbeVia};
pub use engine::{
    Commit, CommitId, CommitOutcome, Engine, Inbound, MAX_AWAITING_PARTNER, Transmit,
};
pub use limits::Limited;
pub use probe::{MAX_ATTEMPTS, MAX_IN_FLIGHT, Probe, ProbeAnswer, ProbeId};
pub use settings::{ConflictCheckMode, ConflictCheckSettings, EngineSettings, Limits, RateLimit};

/// The time, as the driver read it once for a handler call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Now {
    /// Unix seconds: lease times, what is stored and shown.
    pub wall: Timestamp,
    /// A monotonic clock (any origin): rate limits and the probe cache, immune to clock steps.
    pub mono: Duration,
}

/// Where a request came in, and so where its reply goes out: the driver's own bookkeeping,
/// carried through the engine untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index of the receiving link (socket) in the driver's list.
    pub link: usize,
    /// The packet's source (a relay's address, or the client's), when known.
    pub src: Option<SocketAddrV4>,
    /// Our address on that link, from IP_PKTINFO or the interface.
    pub local: Option<Ipv4Addr>,
}
