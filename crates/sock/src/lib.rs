//! The sockets of leased that the standard library has no type for, and the only crate of the
//! workspace with `unsafe` code.
//!
//! What is here, one module each: [`udp`] (the per-interface DHCP socket: SO_BINDTODEVICE and
//! IP_PKTINFO, so a datagram tells where it was sent and which of our addresses answers),
//! [`packet`] (`AF_PACKET`: the layer-2 sender for clients without an address, the ARP socket,
//! the filtered receive socket of the monitors), [`icmp`] (raw ICMP echo), [`neigh`] (the
//! kernel's neighbour table over rtnetlink) and [`Async`] (a socket of this crate registered
//! with tokio). Protocol bytes (ARP payloads, echo requests, DHCP) and waiting policy
//! (timeouts, retries, tasks) stay with the callers in leased-io.
//!
//! Everything is built on what `nix` and `socket2` offer safely. Three things they do not
//! offer, and each is one small `unsafe` block with its `SAFETY:` note:
//! - an `AF_PACKET` address (`sockaddr_ll`) as a `nix` address type ([`packet`]);
//! - `PACKET_AUXDATA`, an integer socket option neither crate knows ([`packet`]);
//! - registering a descriptor with tokio's reactor ([`Async::new`]), unsafe because the reactor
//!   must be able to trust that the descriptor stays open and the same; [`Async`] only accepts
//!   this crate's socket types, which guarantee it.
//!
//! The crate inherits the workspace's `unsafe_code = "deny"`; each of the three functions that
//! hold a block allows it for itself alone, so a new `unsafe` anywhere else fails to compile.
//!
//! Sockets that need `CAP_NET_RAW` are opened through an [`Open`] the caller passes:
//! `socket2::Socket::new` itself, or leased-io's helper thread that kept the capability after
//! the process dropped root.
#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]
#![warn(missing_docs)]

mod reactor;

pub mod icmp;
pub mod neigh;
pub mod packet;
pub mod udp;

pub use reactor::{Async, Pollable};

use std::io;

use socket2::{Domain, Protocol, Socket, Type};

/// How a socket that needs `CAP_NET_RAW` is opened (`socket2::Socket::new` has this shape).
/// The caller decides: after dropping root only a thread that kept the capability can open one.
pub trait Open: FnOnce(Domain, Type, Option<Protocol>) -> io::Result<Socket> {}

impl<F: FnOnce(Domain, Type, Option<Protocol>) -> io::Result<Socket>> Open for F {}

/// Adds what we were doing to an OS error, keeping its kind (so EACCES stays recognisable).
fn with_context(e: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
