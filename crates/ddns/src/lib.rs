//! Dynamic DNS for leased, sans IO: which DNS updates a binding change needs and the
//! messages that make them.
//!
//! - [`dhcid`]: the RFC 4701 DHCID of a client and name.
//! - [`message`]: RFC 2136 update messages for each RFC 4703 step, TSIG-signed (RFC 8945),
//!   and the checks an answer must pass (id, source, TSIG, time) before it is believed.
//! - [`Ddns`]: the state machine. Bindings in, polls out (messages to send, records for the
//!   durable queue, reports to log), one job at a time in binding order, retried with
//!   back-off while the server is down. The driver in io owns the sockets, the clock and the
//!   queue file.
//!
//! The option 81 policy (the S/O/N flags, qualifying names) lives in core
//! (`leased_core::fqdn`) so the reply and the updates read one rule.
#![forbid(unsafe_code)]

pub mod dhcid;
mod machine;
pub mod message;

pub use machine::{
    Binding, ChangeKind, Ddns, Job, Named, Op, Persist, Report, Settings, Transmit, Zones,
};
pub use message::{Algorithm, Key};

#[cfg(test)]
mod tests;
