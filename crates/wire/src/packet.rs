//! The fixed BOOTP header plus the options area, decoded and encoded.

use std::net::Ipv4Addr;

/// `op` of a client message.
pub const BOOTREQUEST: u8 = 1;
/// `op` of a server message.
pub const BOOTREPLY: u8 = 2;
/// RFC 2131 §3: the four bytes that open the options area.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// RFC 2131 §2: every DHCP message may be up to 576 bytes; smaller BOOTP relays pad to 300.
pub const DHCP_MIN_LEN: usize = 300;

/// Why a datagram was not a usable DHCP message. Each variant is counted under its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// Shorter than the fixed header plus the magic cookie.
    #[error("truncated packet")]
    Truncated,
    /// The options area does not start with 99.130.83.99.
    #[error("bad magic cookie")]
    BadMagicCookie,
    /// An option's length runs past the end of its area.
    #[error("option length overruns the packet")]
    OptionOverrun,
    /// `hlen` larger than the 16-byte chaddr field.
    #[error("hlen larger than 16")]
    BadHlen,
}

impl Malformed {
    /// A stable, low-cardinality name for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::BadMagicCookie => "bad_magic_cookie",
            Self::OptionOverrun => "option_overrun",
            Self::BadHlen => "bad_hlen",
        }
    }
}

/// DHCP message type, option 53 (RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    /// The option 53 value.
    pub fn code(self) -> u8 {
        match self {
            Self::Discover => 1,
            Self::Offer => 2,
            Self::Request => 3,
            Self::Decline => 4,
            Self::Ack => 5,
            Self::Nak => 6,
            Self::Release => 7,
            Self::Inform => 8,
        }
    }

    /// Parses an option 53 value; unknown values (e.g. leasequery) are `None`.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }

    /// Upper-case name as used in log lines (`DISCOVER`, `ACK`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Discover => "DISCOVER",
            Self::Offer => "OFFER",
            Self::Request => "REQUEST",
            Self::Decline => "DECLINE",
            Self::Ack => "ACK",
            Self::Nak => "NAK",
            Self::Release => "RELEASE",
            Self::Inform => "INFORM",
        }
    }
}

/// Options as raw bytes, in the order they are to be written (or were first seen).
///
/// Decoding concatenates repeated instances of one code (RFC 3396), adjacent or not, so each
/// code appears at most once here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    entries: Vec<(u8, Vec<u8>)>,
}

impl Options {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `code`, if present.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets `code` to `value`, replacing an earlier value in place (its position is kept).
    pub fn set(&mut self, code: u8, value: Vec<u8>) {
        match self.entries.iter_mut().find(|(c, _)| *c == code) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((code, value)),
        }
    }

    /// Appends bytes to `code` (RFC 3396 concatenation), creating it if absent.
    pub fn append(&mut self, code: u8, value: &[u8]) {
        match self.entries.iter_mut().find(|(c, _)| *c == code) {
            Some(slot) => slot.1.extend_from_slice(value),
            None => self.entries.push((code, value.to_vec())),
        }
    }

    /// Removes `code`, returning its value.
    pub fn remove(&mut self, code: u8) -> Option<Vec<u8>> {
        let pos = self.entries.iter().position(|(c, _)| *c == code)?;
        Some(self.entries.remove(pos).1)
    }

    /// All options in order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.entries.iter().map(|(c, v)| (*c, v.as_slice()))
    }

    /// Number of distinct codes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One DHCP message: the BOOTP header and its options.
///
/// The same type serves requests (decoded from the network, or built by `leased probe`) and
/// replies (built by the core, encoded by [`Packet::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub op: u8,
    pub htype: u8,
    /// As received; use [`Packet::chaddr`] for the meaningful bytes.
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// Server host name field (64 bytes on the wire, NUL padded).
    pub sname: Vec<u8>,
    /// Boot file name field (128 bytes on the wire, NUL padded); PXE reads it.
    pub file: Vec<u8>,
    pub options: Options,
}

impl Packet {
    /// Decodes a datagram. Never panics; any structural fault is a [`Malformed`].
    ///
    /// Honours option overload (52: `file`, then `sname`) and concatenates repeated codes.
    pub fn decode(buf: &[u8]) -> Result<Self, Malformed> {
        let _ = buf;
        unimplemented!("wire helper implements this")
    }

    /// Encodes into `out` (cleared first), writing option 53 first, then the options in their
    /// order, option 82 last, then END, padded to [`DHCP_MIN_LEN`].
    ///
    /// `max_len` is the client's limit (option 57, at least 576): options that do not fit are
    /// skipped, later smaller ones may still go in; 53 and 82 are always kept. Values longer than
    /// 255 bytes are split into several instances (RFC 3396).
    pub fn encode(&self, max_len: usize, out: &mut Vec<u8>) {
        let _ = (max_len, out);
        unimplemented!("wire helper implements this")
    }

    /// The meaningful part of chaddr (`hlen` bytes, at most 16).
    pub fn chaddr(&self) -> &[u8] {
        let n = usize::from(self.hlen).min(16);
        &self.chaddr[..n]
    }

    /// The broadcast bit of `flags` (RFC 2131 §2, figure 2).
    pub fn broadcast(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// Option 53, if present and known.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.options.get(crate::code::MESSAGE_TYPE) {
            Some([c]) => MessageType::from_code(*c),
            _ => None,
        }
    }
}
