//! High availability for leased, **sans IO**: one server's side of a pair of servers that
//! share their clients without a shared database. No sockets, no async runtime, no clock reads;
//! a driver (the partner link's TLS transport and the io loop) feeds it what happened and
//! carries out what it asks, and a test drives the same API on a virtual clock.
//!
//! What it decides:
//! - which clients this server may answer now ([`Ha::serves`]: hot-standby, RFC 3074
//!   load-balancing, partner-down, maintenance);
//! - when the partner is gone — never from lost heartbeats alone: clients of the partner's scope
//!   must also be seen waiting (their `secs`) while the partner is silent (Kea's rule);
//! - which lease changes go to the partner, batched, and when the engine may release an ACK
//!   because the partner holds its lease durably ([`HaAction::PartnerAcked`],
//!   [`HaAction::Gate`]);
//! - the paged bulk sync a returning server runs before it serves again;
//! - the partner messages ([`PartnerMessage`]) and their versioned binary encoding.
//!
//! See [`Ha`] for the method taxonomy and calling order.
#![forbid(unsafe_code)]

mod hash;
mod machine;
mod message;
mod scope;
mod settings;
mod state;

pub use hash::{bucket_of, client_key, primary_bucket, request_bucket};
pub use machine::{
    Ha, HaAction, HaError, HaEvent, MAX_BATCH_LEASES, MAX_BATCHES_IN_FLIGHT, MAX_CLOCK_SKEW,
    MAX_WATCHED_CLIENTS, StoreAck,
};
pub use message::{DecodeError, MAX_FRAME, PROTOCOL_VERSION, PartnerMessage};
pub use scope::{PoolScope, own_half};
pub use settings::{HaConfig, HaMode, Peer, Role};
pub use state::HaState;
