//! What [`crate::decide`] returns: data, never effects.

use std::net::Ipv4Addr;

use leased_wire::{MessageType, Packet};

use crate::lease::{HwAddr, LeaseChange};

/// The outcome of one packet plus the lease changes it makes.
#[must_use]
#[derive(Debug, Clone)]
pub struct Decision {
    /// Reply or drop.
    pub outcome: Outcome,
    /// Lease upserts for io to apply to the table and persist per their [`crate::Durability`],
    /// in order. May be non-empty on a drop (DECLINE, RELEASE, a REQUEST for another server).
    pub changes: Vec<LeaseChange>,
    /// What to log / count for this packet, whatever the outcome.
    pub event: Event,
}

/// Reply or drop: both at once cannot be represented.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Send this reply (after the `BeforeReply` changes are durable).
    Reply(Reply),
    /// Send nothing; count the reason.
    Drop(DropReason),
}

/// A reply and where it goes.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The BOOTREPLY to encode.
    pub packet: Packet,
    /// The client's size limit for [`Packet::encode`] (option 57, at least 576).
    pub max_len: usize,
    pub route: Route,
}

/// RFC 2131 §4.1 delivery, decided in core and carried out by io.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// giaddr set: to the relay, server port 67 (or the RFC 8357 relay port).
    Relay {
        /// The relay's address (the request's giaddr).
        giaddr: Ipv4Addr,
        /// Destination UDP port.
        port: u16,
    },
    /// ciaddr set (RENEWING/REBINDING/INFORM): unicast to ciaddr:68.
    Unicast(Ipv4Addr),
    /// Broadcast bit set, or a NAK with no giaddr: 255.255.255.255:68 on the receiving link.
    Broadcast,
    /// No address yet and no broadcast bit: unicast to yiaddr at chaddr, without ARP.
    Hardware {
        /// The address given to the client (IP destination).
        yiaddr: Ipv4Addr,
        /// The client's hardware address (link-layer destination).
        chaddr: HwAddr,
        /// The hardware type, for the ARP entry or the AF_PACKET frame.
        htype: u8,
    },
}

/// Why a packet gets no reply. Each maps to one metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The client's MAC is banned (DISCOVER, INFORM; REQUEST when not authoritative).
    BannedClient,
    /// A BOOTREPLY or other message a server does not answer.
    NotRequest,
    /// No option 53, or a malformed one (e.g. BOOTP).
    MissingMessageType,
    /// All-zero chaddr and no option 61: no way to know the client.
    ZeroChaddr,
    /// hlen larger than the 16-byte chaddr field.
    BadHlen,
    /// REQUEST/DECLINE/RELEASE whose server identifier is another server's.
    NotForUs,
    /// No configured subnet matches the link or relay.
    NoSubnet,
    /// No free address: logged, never NAKed (RFC 2131 §4.3.1).
    PoolExhausted,
    /// RELEASE/DECLINE from a client that does not own the lease, or REQUEST we may not answer.
    NotOwner,
    /// Non-authoritative: stay silent rather than NAK.
    NotAuthoritative,
    /// Nothing to do (e.g. RELEASE/DECLINE handled; they get no reply).
    NoReplyNeeded,
    /// Message types a server ignores (OFFER, ACK, NAK from a client port, …).
    UnsupportedMessage,
    /// A new lease would exceed `max_leases_per_circuit_id` / `max_leases_per_remote_id`.
    CircuitLimit,
}

impl DropReason {
    /// A stable, low-cardinality name for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BannedClient => "banned_client",
            Self::NotRequest => "not_request",
            Self::MissingMessageType => "missing_message_type",
            Self::ZeroChaddr => "zero_chaddr",
            Self::BadHlen => "bad_hlen",
            Self::NotForUs => "not_for_us",
            Self::NoSubnet => "no_subnet",
            Self::PoolExhausted => "pool_exhausted",
            Self::NotOwner => "not_owner",
            Self::NotAuthoritative => "not_authoritative",
            Self::NoReplyNeeded => "no_reply_needed",
            Self::UnsupportedMessage => "unsupported_message",
            Self::CircuitLimit => "circuit_limit",
        }
    }
}

/// Why a REQUEST was NAKed; the text goes into option 56.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NakReason {
    /// The address is not on the client's network (it moved).
    WrongSubnet,
    /// The address is held by another client, excluded, outside the pools or never handed out.
    AddressNotAvailable,
    /// The REQUEST names no address at all (no option 50, no ciaddr).
    NoLease,
    /// The client's MAC is banned.
    BannedClient,
    /// The address is reserved for another client.
    Reserved,
    /// The client has a reservation at another address: it should come back via DISCOVER.
    ReservedElsewhere,
}

impl NakReason {
    /// Option 56 text and log label.
    pub fn text(&self) -> &'static str {
        match self {
            Self::WrongSubnet => "requested address not on this network",
            Self::AddressNotAvailable => "requested address not available",
            Self::NoLease => "no lease for this client",
            Self::BannedClient => "client is banned",
            Self::Reserved => "address reserved for another client",
            Self::ReservedElsewhere => "client has a different reserved address",
        }
    }
}

/// One log line's worth of facts about a packet and what we did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Option 53 of the packet, when known.
    pub received: Option<MessageType>,
    /// The reply's type, when one is sent.
    pub sent: Option<MessageType>,
    /// Transaction id, to correlate with client logs and captures.
    pub xid: u32,
    /// chaddr (`hlen` bytes).
    pub hwaddr: HwAddr,
    /// The address offered / acked / released / declined / requested, if any.
    pub ip: Option<Ipv4Addr>,
    /// The client's host name (option 12) or its lease's / reservation's.
    pub hostname: Option<String>,
    /// Why we NAKed, when we did.
    pub nak: Option<NakReason>,
    /// Why we sent nothing, when we did not.
    pub drop: Option<DropReason>,
}

impl Decision {
    /// The reply, if one is to be sent.
    pub fn reply(&self) -> Option<&Reply> {
        match &self.outcome {
            Outcome::Reply(r) => Some(r),
            Outcome::Drop(_) => None,
        }
    }

    /// The drop reason, if nothing is to be sent.
    pub fn drop_reason(&self) -> Option<DropReason> {
        match &self.outcome {
            Outcome::Reply(_) => None,
            Outcome::Drop(r) => Some(*r),
        }
    }

    /// True when io must make some change durable before sending the reply.
    pub fn needs_durability(&self) -> bool {
        self.changes
            .iter()
            .any(|c| c.durability == crate::lease::Durability::BeforeReply)
    }
}
