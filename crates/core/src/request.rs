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
    /// IPv4 source address of the packet, when io knows it: a relay is trusted by it and by
    /// giaddr ([`crate::trust`]).
    pub src_addr: Option<Ipv4Addr>,
    /// What io found checking the RFC 4030 signature of a relay that signs its requests (the
    /// check needs the datagram's bytes and the replay memory, both io's).
    pub relay_auth: RelayAuthCheck,
    /// What the SQL assignment chain decided for this client, when one is configured and a
    /// query returned a row. io runs the (async, database-bound) chain *before* the packet
    /// reaches the engine, so core stays pure: it honours this first, as a fixed address for
    /// this client (like a reservation) and as the top option layer.
    pub assignment: Option<Assignment>,
}

/// The outcome of io's RFC 4030 check of a request ([`crate::relay_auth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelayAuthCheck {
    /// Not checked: the relay has no key, or nobody checked (then a relay with a key is not
    /// believed).
    #[default]
    NotChecked,
    /// A valid MAC with a counter above the last one accepted from this relay.
    Valid,
    /// Why it failed.
    Failed(crate::relay_auth::AuthFailure),
}

/// A fixed address and its parameters, from an external source (the SQL assignment chain,
/// pydhcpdb's `ip, mask, router, dns` row). Values are already parsed and checked by
/// [`Assignment::from_columns`]; core only places them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The client's address. Honoured only inside a subnet of the client's link that leased
    /// serves (it needs a server identity and options there).
    pub ip: Ipv4Addr,
    /// Option 1, overriding the subnet's mask.
    pub mask: Option<Ipv4Addr>,
    /// Option 3, overriding the subnet's routers (empty: the subnet's).
    pub router: Vec<Ipv4Addr>,
    /// Option 6, overriding the DNS servers (empty: the configured ones).
    pub dns: Vec<Ipv4Addr>,
    /// Option 51 in seconds, overriding the subnet's lease time.
    pub lease_time: Option<u32>,
    /// Option 12 to send and record.
    pub hostname: Option<String>,
    /// Further options by code, already wire-encoded (from `option_N` columns, hex).
    pub options: std::collections::BTreeMap<u8, Vec<u8>>,
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
            src_addr: None,
            relay_auth: RelayAuthCheck::NotChecked,
            assignment: None,
        }
    }
}
