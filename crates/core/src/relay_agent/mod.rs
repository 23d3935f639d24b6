//! The relay agent of `leased relay`, sans IO: every decision the relay makes, with no socket
//! and no clock, so that io only waits for datagrams and carries out what the agent says.
//!
//! - [`rewrite`](self#functions): the pure byte rewrite of one request or reply
//!   ([`relay_request`], [`relay_reply`], the server-id rewrite, the binding a reply stands for).
//! - [`RelayAgent`]: the state around it, driven like quinn-proto's `Connection`: the
//!   outstanding requests a reply must answer, the per-client memo an ACK's binding needs, the
//!   real server behind each rewritten server identifier, the RFC 4030 replay counter. Handlers
//!   take a datagram and the time; polls say what to send and what happened.

mod agent;
mod rewrite;

pub use agent::{
    AgentConfig, DEFAULT_CAPACITY, LinkConfig, Now, REPLY_WINDOW, Received, RelayAgent, RelayEvent,
    Transmit,
};
pub use rewrite::{
    AgentLink, AgentPolicy, Delivery, ExistingOption82, Forwarded, RelayDrop, binding_from_reply,
    expand_template, option82_value, relay_reply, relay_request, requested_address,
    rewrite_server_id, server_id,
};
