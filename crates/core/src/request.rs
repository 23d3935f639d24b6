//! A decoded packet plus what io knows about how it arrived.

use std::net::Ipv4Addr;

use leased_wire::Packet;

/// Input to [`crate::decide`].
#[derive(Debug, Clone)]
pub struct Request {
    pub packet: Packet,
    /// Name of the interface it arrived on (`None` in pure tests or unknown).
    pub interface: Option<String>,
    /// Our IPv4 address on that interface (from IP_PKTINFO / the interface). Used to pick the
    /// subnet for direct clients and as the default server identifier.
    pub local_addr: Option<Ipv4Addr>,
    /// True when the packet arrived as a broadcast (255.255.255.255 destination).
    pub broadcast_dst: bool,
    /// UDP source port of the packet, when io knows it: replies to a relay that sent the
    /// RFC 8357 relay-port sub-option go back to this port instead of 67.
    pub src_port: Option<u16>,
}

impl Request {
    /// Wraps a packet received on `interface` whose local address is `local_addr`.
    pub fn new(
        packet: Packet,
        interface: Option<String>,
        local_addr: Option<Ipv4Addr>,
        broadcast_dst: bool,
    ) -> Self {
        Self {
            packet,
            interface,
            local_addr,
            broadcast_dst,
            src_port: None,
        }
    }
}
