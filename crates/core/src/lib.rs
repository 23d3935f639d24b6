//! The decision core of leased. **No IO, no clock, deterministic.**
//!
//! One question is answered here: given this packet, this configuration, the leases we know and
//! the time now, what do we reply and which leases change? [`decide`] is that function. Sockets,
//! disks, timers and logging live in other crates and call in with `now` as a parameter.
//!
//! Calling order for the io shell: build a [`Plan`] from the loaded [`model::Network`] (the
//! config crate's loader makes one) and a [`LeaseTable`] from the store, then per packet: [`Request::new`] → [`decide`] → [`LeaseTable::apply`] on the
//! changes → persist the changes whose [`Durability`] asks for it → send the reply. Periodically
//! (at [`LeaseTable::next_deadline`]) call [`LeaseTable::expire`], which applies and returns the
//! timed transitions so they can be persisted and logged. Decisions treat lapsed leases as free
//! whether or not `expire` has run yet.
#![forbid(unsafe_code)]

mod alloc;
pub mod binding;
mod class;
mod classify;
mod decide;
mod decision;
pub mod fqdn;
mod lease;
pub mod model;
mod plan;
pub mod relay;
pub mod relay_agent;
pub mod relay_auth;
mod reply;
mod request;
pub mod sql;
pub mod trust;

pub use binding::{BindingEvent, BindingKind};
pub use decide::decide;
pub use decision::{Decision, DropReason, Event, NakReason, Outcome, Reply, Route};
pub use lease::{
    ClientId, Durability, HwAddr, Lease, LeaseChange, LeaseState, LeaseTable, Timestamp,
};
pub use model::Network;
pub use plan::Plan;
pub use relay::{Extractor, RelayInfo, RelayKeys};
pub use request::{Assignment, RelayAuthCheck, Request};
