//! What [`crate::decide`] returns: data, never effects.

use std::net::Ipv4Addr;

use leased_wire::{MessageType, Packet};

use crate::lease::{HwAddr, LeaseChange};

/// The outcome of one packet plus the lease changes it makes.
#[must_use]
#[derive(Debug, Clone)]
pub struct Decision {
    pub outcome: Outcome,
    pub changes: Vec<LeaseChange>,
    /// What to log / count for this packet, whatever the outcome.
    pub event: Event,
}

/// Reply or drop: both at once cannot be represented.
#[derive(Debug, Clone)]
pub enum Outcome {
    Reply(Reply),
    Drop(DropReason),
}

/// A reply and where it goes.
#[derive(Debug, Clone)]
pub struct Reply {
    pub packet: Packet,
    /// The client's size limit for [`Packet::encode`] (option 57, at least 576).
    pub max_len: usize,
    pub route: Route,
}

/// RFC 2131 §4.1 delivery, decided in core and carried out by io.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// giaddr set: to the relay, server port 67 (or the RFC 8357 relay port).
    Relay { giaddr: Ipv4Addr, port: u16 },
    /// ciaddr set (RENEWING/REBINDING/INFORM): unicast to ciaddr:68.
    Unicast(Ipv4Addr),
    /// Broadcast bit set, or a NAK with no giaddr: 255.255.255.255:68 on the receiving link.
    Broadcast,
    /// No address yet and no broadcast bit: unicast to yiaddr at chaddr, without ARP.
    Hardware {
        yiaddr: Ipv4Addr,
        chaddr: HwAddr,
        htype: u8,
    },
}

/// Why a packet gets no reply. Each maps to one metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    BannedClient,
    /// A BOOTREPLY or other message a server does not answer.
    NotRequest,
    MissingMessageType,
    ZeroChaddr,
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
        }
    }
}

/// Why a REQUEST was NAKed; the text goes into option 56.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NakReason {
    WrongSubnet,
    AddressNotAvailable,
    NoLease,
    BannedClient,
    Reserved,
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
        }
    }
}

/// One log line's worth of facts about a packet and what we did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub received: Option<MessageType>,
    pub sent: Option<MessageType>,
    pub xid: u32,
    pub hwaddr: HwAddr,
    /// The address offered / acked / released / declined / requested, if any.
    pub ip: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub nak: Option<NakReason>,
    pub drop: Option<DropReason>,
}
