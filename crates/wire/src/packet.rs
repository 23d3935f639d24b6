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

/// Length of the fixed BOOTP header, up to the magic cookie.
const HEADER_LEN: usize = 236;
/// Length of the `sname` field.
const SNAME_LEN: usize = 64;
/// Length of the `file` field.
const FILE_LEN: usize = 128;
/// RFC 2131 §2: every client accepts 576-byte messages, whatever option 57 says.
const MIN_MAX_LEN: usize = 576;

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
    /// Client looking for servers.
    Discover,
    /// Server offering an address.
    Offer,
    /// Client asking for, renewing or confirming an address.
    Request,
    /// Client found the address in use.
    Decline,
    /// Server commits the lease.
    Ack,
    /// Server refuses the request.
    Nak,
    /// Client gives the address back.
    Release,
    /// Client with an address asks for configuration only.
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
    /// [`BOOTREQUEST`] or [`BOOTREPLY`].
    pub op: u8,
    /// Hardware type (1 = Ethernet).
    pub htype: u8,
    /// As received; use [`Packet::chaddr`] for the meaningful bytes.
    pub hlen: u8,
    /// Relay hop count.
    pub hops: u8,
    /// Transaction id chosen by the client, echoed in replies.
    pub xid: u32,
    /// Seconds since the client began acquisition.
    pub secs: u16,
    /// Flags; only the broadcast bit is defined, see [`Packet::broadcast`].
    pub flags: u16,
    /// Client address, set when the client already has one (renew, inform).
    pub ciaddr: Ipv4Addr,
    /// "Your" address: the one the server hands out.
    pub yiaddr: Ipv4Addr,
    /// Next server (TFTP) address.
    pub siaddr: Ipv4Addr,
    /// Relay agent address; non-zero when relayed.
    pub giaddr: Ipv4Addr,
    /// Client hardware address, 16 bytes as on the wire.
    pub chaddr: [u8; 16],
    /// Server host name field (64 bytes on the wire, NUL padded).
    pub sname: Vec<u8>,
    /// Boot file name field (128 bytes on the wire, NUL padded); PXE reads it.
    pub file: Vec<u8>,
    /// The options, raw, after overload and RFC 3396 concatenation.
    pub options: Options,
    /// An Option 82 was found in the overloaded `file`/`sname` areas and discarded. Only a relay
    /// writes Option 82, and it writes it in the main area (RFC 3046 §2.1); a copy elsewhere can
    /// only have come from the client, so it is never merged into [`Packet::options`].
    pub option82_in_overload: bool,
}

impl Packet {
    /// Decodes a datagram. Never panics; any structural fault is a [`Malformed`].
    ///
    /// Honours option overload (52: `file`, then `sname`) and concatenates repeated codes.
    pub fn decode(buf: &[u8]) -> Result<Self, Malformed> {
        let (hdr, rest) = buf
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(Malformed::Truncated)?;
        let (cookie, main_area) = rest.split_first_chunk::<4>().ok_or(Malformed::Truncated)?;
        if *cookie != MAGIC_COOKIE {
            return Err(Malformed::BadMagicCookie);
        }

        let mut h = Header(hdr);
        let [op, htype, hlen, hops] = h.take::<4>();
        if hlen > 16 {
            return Err(Malformed::BadHlen);
        }
        let xid = u32::from_be_bytes(h.take());
        let secs = u16::from_be_bytes(h.take());
        let flags = u16::from_be_bytes(h.take());
        let ciaddr = Ipv4Addr::from(h.take::<4>());
        let yiaddr = Ipv4Addr::from(h.take::<4>());
        let siaddr = Ipv4Addr::from(h.take::<4>());
        let giaddr = Ipv4Addr::from(h.take::<4>());
        let chaddr = h.take::<16>();
        let sname_raw = h.take::<SNAME_LEN>();
        let file_raw = h.take::<FILE_LEN>();

        let mut options = Options::new();
        parse_area(main_area, &mut options, Area::Main)?;

        // RFC 2132 §9.3: the overload value is only meaningful in the main area, so it is read
        // before the other areas can add to option 52. The RFC fixes the order: file, then sname.
        let overload = match options.get(crate::code::OVERLOAD) {
            Some(&[v @ 1..=3]) => v,
            _ => 0,
        };
        let mut option82_in_overload = false;
        if overload & 1 != 0 {
            option82_in_overload |= parse_area(&file_raw, &mut options, Area::Overload)?;
        }
        if overload & 2 != 0 {
            option82_in_overload |= parse_area(&sname_raw, &mut options, Area::Overload)?;
        }
        let field = |raw: &[u8], used_for_options: bool| {
            if used_for_options {
                Vec::new()
            } else {
                trim_nuls(raw).to_vec()
            }
        };

        Ok(Self {
            op,
            htype,
            hlen,
            hops,
            xid,
            secs,
            flags,
            ciaddr,
            yiaddr,
            siaddr,
            giaddr,
            chaddr,
            sname: field(&sname_raw, overload & 2 != 0),
            file: field(&file_raw, overload & 1 != 0),
            options,
            option82_in_overload,
        })
    }

    /// Encodes into `out` (cleared first), writing option 53 first, then the options in their
    /// order, option 82 last, then END, padded to [`DHCP_MIN_LEN`].
    ///
    /// `max_len` is the client's limit (option 57, at least 576): options that do not fit are
    /// skipped, later smaller ones may still go in; 53 and 82 are always kept. Values longer than
    /// 255 bytes are split into several instances (RFC 3396).
    ///
    /// Option 52 (overload) is never written: this encoder keeps `sname`/`file` as plain fields,
    /// and announcing overload would make the client parse them as options.
    pub fn encode(&self, max_len: usize, out: &mut Vec<u8>) {
        use crate::code::{END, MESSAGE_TYPE, OVERLOAD, PAD, RELAY_AGENT_INFO};

        let limit = max_len.max(MIN_MAX_LEN);
        out.clear();
        let needed = HEADER_LEN
            + 4
            + self
                .options
                .iter()
                .map(|(_, v)| encoded_len(v))
                .sum::<usize>()
            + 1;
        out.reserve(needed.min(limit).max(DHCP_MIN_LEN));

        out.extend_from_slice(&[self.op, self.htype, self.hlen, self.hops]);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for addr in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&addr.octets());
        }
        out.extend_from_slice(&self.chaddr);
        put_field(out, &self.sname, SNAME_LEN);
        put_field(out, &self.file, FILE_LEN);
        out.extend_from_slice(&MAGIC_COOKIE);

        let msg_type = self.options.get(MESSAGE_TYPE);
        let relay = self.options.get(RELAY_AGENT_INFO);
        if let Some(v) = msg_type {
            put_option(out, MESSAGE_TYPE, v);
        }
        // Room kept back for option 82 and END, so that they always go in.
        let reserved = relay.map_or(0, encoded_len) + 1;
        for (code, value) in self.options.iter() {
            if matches!(code, PAD | OVERLOAD | MESSAGE_TYPE | RELAY_AGENT_INFO | END) {
                continue;
            }
            let room = limit.saturating_sub(out.len() + reserved);
            if encoded_len(value) <= room {
                put_option(out, code, value);
            }
        }
        if let Some(v) = relay {
            put_option(out, RELAY_AGENT_INFO, v);
        }
        out.push(END);
        if out.len() < DHCP_MIN_LEN {
            out.resize(DHCP_MIN_LEN, 0);
        }
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

/// A cursor over the fixed header. The header is exactly [`HEADER_LEN`] bytes and the fields
/// taken add up to that, so the zero fallback is never used; it only keeps the code panic-free.
struct Header<'a>(&'a [u8]);

impl Header<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.0 = tail;
                *head
            }
            None => [0; N],
        }
    }
}

/// Parses one option area into `options`, concatenating repeated codes (RFC 3396).
///
/// PAD is skipped, END stops; an area that simply ends without END is accepted, because many
/// clients omit it. A length byte or a value running past the area is [`Malformed::OptionOverrun`].
/// Which options area is being read: Option 82 counts only from the main one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    Main,
    Overload,
}

/// Appends the options of one area to `options`; in an overload area Option 82 is skipped.
/// Returns whether an Option 82 was skipped.
fn parse_area(mut area: &[u8], options: &mut Options, which: Area) -> Result<bool, Malformed> {
    use crate::code::{END, PAD, RELAY_AGENT_INFO};
    let mut skipped_82 = false;
    while let Some((&code, rest)) = area.split_first() {
        match code {
            PAD => area = rest,
            END => break,
            _ => {
                let (&len, rest) = rest.split_first().ok_or(Malformed::OptionOverrun)?;
                let (value, rest) = rest
                    .split_at_checked(usize::from(len))
                    .ok_or(Malformed::OptionOverrun)?;
                if code == RELAY_AGENT_INFO && which == Area::Overload {
                    skipped_82 = true;
                } else {
                    options.append(code, value);
                }
                area = rest;
            }
        }
    }
    Ok(skipped_82)
}

/// `raw` without its trailing NULs.
fn trim_nuls(mut raw: &[u8]) -> &[u8] {
    while let [head @ .., 0] = raw {
        raw = head;
    }
    raw
}

/// Writes a fixed-width, NUL-padded header field, truncating what does not fit.
fn put_field(out: &mut Vec<u8>, value: &[u8], width: usize) {
    let value = value.get(..width).unwrap_or(value);
    out.extend_from_slice(value);
    out.resize(out.len() + width.saturating_sub(value.len()), 0);
}

/// Bytes taken by `value` once written: two per instance of at most 255 value bytes.
fn encoded_len(value: &[u8]) -> usize {
    value.len() + 2 * value.len().div_ceil(255).max(1)
}

/// Writes one option, split into consecutive instances of at most 255 bytes (RFC 3396).
fn put_option(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    if value.is_empty() {
        out.extend_from_slice(&[code, 0]);
        return;
    }
    for chunk in value.chunks(255) {
        // `chunks(255)` never yields more than 255 bytes.
        let len = u8::try_from(chunk.len()).unwrap_or(u8::MAX);
        out.extend_from_slice(&[code, len]);
        out.extend_from_slice(chunk);
    }
}
