//! The relay agent's packet rewrite (RFC 1542 §4.1, RFC 3046 §2.1–2.2), pure and byte-level.
//!
//! Why bytes and not decode → encode: a relay must forward what the client sent, with only the
//! fields it owns changed (giaddr, hops, Option 82). Re-encoding would reorder options, drop
//! overload areas and resize the packet. So the fixed header is copied, giaddr and hops are
//! patched in place, and the main option area is walked once to remove or insert Option 82
//! just before END. Option 54 is never touched (a second one would confuse clients).
//!
//! The agent ([`super::RelayAgent`]) calls [`relay_request`] for every request from a
//! client-facing link and [`relay_reply`] for every reply it accepts from an upstream server.

use std::net::Ipv4Addr;

use leased_wire::{BOOTREPLY, BOOTREQUEST, MessageType, Packet, code};

use crate::binding::{BindingEvent, BindingKind};

use crate::decision::Route;
use crate::lease::{HwAddr, Timestamp};
use crate::relay::{RelayInfo, sub};

/// Fixed BOOTP header plus the magic cookie: where the main option area starts.
const OPTIONS_AT: usize = 240;
/// giaddr's offset in the header.
const GIADDR_AT: usize = 24;
/// hops' offset in the header.
const HOPS_AT: usize = 3;
/// RFC 2131 §2: every host accepts 576-byte IP datagrams, i.e. 548 bytes of DHCP; a relay may
/// always grow a request up to this, and never shrinks one.
const MIN_LIMIT: usize = 548;
/// BOOTP's minimum message size (RFC 951); shorter results are zero-padded.
const BOOTP_MIN: usize = 300;

/// How the relay treats requests; built from `[relay]` by io.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentPolicy {
    /// Requests whose hops already exceed this are dropped (RFC 1542 §4.1.1).
    pub max_hops: u8,
    /// Insert our Option 82.
    pub option82: bool,
    /// What to do when the request already has one; `None`: drop it from a first-hop request
    /// (giaddr 0: the client wrote it, RFC 3046 §2.1.1), keep it from a downstream relay.
    pub existing: Option<ExistingOption82>,
    /// Add sub-option 5 (link selection).
    pub link_selection: bool,
    /// Add sub-option 11 (server identifier override).
    pub server_id_override: bool,
    /// Add sub-option 19 (RFC 8357 relay source port): the relay sends from, and listens on, a
    /// port other than 67, and the server must answer there.
    pub relay_port: bool,
}

/// The receiving link as the relay presents it to servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentLink<'a> {
    /// Our address on the link: giaddr, and the value of sub-options 5 and 11.
    pub address: Ipv4Addr,
    /// Sub-option 1 value (already expanded, see [`expand_template`]).
    pub circuit_id: &'a [u8],
    /// Sub-option 2 value.
    pub remote_id: &'a [u8],
    /// RFC 4030: append an authentication sub-option with this replay counter (and a zero MAC
    /// that [`crate::relay_auth::sign`] fills in once the datagram is final).
    pub signature: Option<u64>,
}

/// Why a datagram is not relayed. Each maps to one metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayDrop {
    /// Not a DHCP message (short, bad cookie, option overrun, hlen > 16).
    Malformed,
    /// A BOOTREPLY on the client side, or a BOOTREQUEST from upstream.
    WrongDirection,
    /// hops already above `max_hops`.
    HopLimit,
    /// The request carried Option 82 and the policy is `drop`.
    ExistingOption82,
    /// A reply whose giaddr is not ours.
    NotOurs,
    /// A reply from an address that is not a listed upstream: a client (or anyone who can
    /// reach port 67) must not forge replies to its neighbours through us.
    NotFromUpstream,
    /// A reply (from a listed upstream) that answers no request forwarded within the reply
    /// window: it must neither reach a client nor become a billing binding.
    Unsolicited,
    /// A datagram on a link index the agent was not configured with (a driver's mistake,
    /// counted rather than trusted).
    UnknownLink,
}

impl RelayDrop {
    /// A stable, low-cardinality name for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::WrongDirection => "wrong_direction",
            Self::HopLimit => "hop_limit",
            Self::ExistingOption82 => "existing_option82",
            Self::NotOurs => "not_ours",
            Self::NotFromUpstream => "not_from_upstream",
            Self::Unsolicited => "unsolicited",
            Self::UnknownLink => "unknown_link",
        }
    }
}

/// A request ready to forward to every upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The datagram to send.
    pub bytes: Vec<u8>,
    /// An Option 82 hidden in the overloaded `file`/`sname` fields was blanked (no agent
    /// writes it there; a server that honours overload must never see it).
    pub scrubbed_overload: bool,
    /// Our Option 82 is in it.
    pub inserted: bool,
    /// We wanted to insert Option 82 but it did not fit (RFC 3046 §2.1: forward without it).
    pub did_not_fit: bool,
    /// Option 53 of the request.
    pub message_type: Option<MessageType>,
    /// The client's host name (option 12), remembered for the binding its ACK makes.
    pub hostname: Option<String>,
}

/// A reply ready to deliver to its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The datagram, without Option 82.
    pub bytes: Vec<u8>,
    /// Where it goes (RFC 1542 §4.1.2 / RFC 2131 §4.1).
    pub route: Route,
    /// The reply's giaddr: which of our links it goes out of.
    pub giaddr: Ipv4Addr,
    /// Option 53 of the reply.
    pub message_type: Option<MessageType>,
    /// The Option 82 the server echoed (ours), parsed, before it was removed.
    pub echoed: Option<RelayInfo>,
}

/// Expands a circuit-id / remote-id template: `{interface}`, `{vlan}` (digits after the last
/// `.` of the name, else empty), `{ifindex}`; `{mac}` becomes the 6 raw bytes of `mac` (RFC 3046
/// agents send remote-id as binary). Everything else is copied; the result is cut at 64 bytes.
pub fn expand_template(
    template: &str,
    ifname: &str,
    ifindex: u32,
    mac: Option<[u8; 6]>,
) -> Vec<u8> {
    let vlan = ifname
        .rsplit_once('.')
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("");
    let mut out = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let (piece, tail): (Vec<u8>, &str) = if let Some(t) = rest.strip_prefix("{interface}") {
            (ifname.as_bytes().to_vec(), t)
        } else if let Some(t) = rest.strip_prefix("{vlan}") {
            (vlan.as_bytes().to_vec(), t)
        } else if let Some(t) = rest.strip_prefix("{ifindex}") {
            (ifindex.to_string().into_bytes(), t)
        } else if let Some(t) = rest.strip_prefix("{mac}") {
            (mac.map(|m| m.to_vec()).unwrap_or_default(), t)
        } else {
            let mut chars = rest.chars();
            let c = chars.next().map(String::from).unwrap_or_default();
            (c.into_bytes(), chars.as_str())
        };
        out.extend_from_slice(&piece);
        rest = tail;
    }
    out.truncate(64);
    out
}

/// Our Option 82 value for `link`: sub-options 1 and 2 (when non-empty), then 5, 11 and 19 as
/// the policy asks, then the RFC 4030 signature when signing. Values are capped so that the option always fits its one-byte length.
pub fn option82_value(link: &AgentLink<'_>, policy: &AgentPolicy) -> Vec<u8> {
    let mut v = Vec::new();
    let mut put = |code: u8, value: &[u8]| {
        let value = value.get(..64).unwrap_or(value);
        if !value.is_empty() {
            v.push(code);
            v.push(u8::try_from(value.len()).unwrap_or(64));
            v.extend_from_slice(value);
        }
    };
    put(sub::CIRCUIT_ID, link.circuit_id);
    put(sub::REMOTE_ID, link.remote_id);
    if policy.link_selection {
        put(sub::LINK_SELECTION, &link.address.octets());
    }
    if policy.server_id_override {
        put(sub::SERVER_ID_OVERRIDE, &link.address.octets());
    }
    if policy.relay_port {
        // RFC 8357 §5.1: empty for DHCPv4; the server takes the port from the UDP header.
        v.extend([sub::RELAY_PORT, 0]);
    }
    // The RFC 4030 signature stays the last sub-option.
    if let Some(counter) = link.signature {
        let value = crate::relay_auth::placeholder(counter);
        v.push(crate::relay_auth::SUBOPTION);
        v.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
        v.extend_from_slice(&value);
    }
    v
}

/// The main option area walked once: options other than 82 as byte spans (in order), the 82
/// instances, and whether an END was seen.
struct Area {
    /// `(start, end)` byte ranges of every option except 82, PAD and END.
    kept: Vec<(usize, usize)>,
    /// Concatenated Option 82 value (RFC 3396), if present.
    relay: Option<Vec<u8>>,
}

fn walk(buf: &[u8]) -> Option<Area> {
    let mut kept = Vec::new();
    let mut relay: Option<Vec<u8>> = None;
    let mut i = OPTIONS_AT;
    while let Some(&c) = buf.get(i) {
        match c {
            code::PAD => i += 1,
            code::END => break,
            _ => {
                let len = usize::from(*buf.get(i + 1)?);
                let end = i + 2 + len;
                let value = buf.get(i + 2..end)?;
                if c == code::RELAY_AGENT_INFO {
                    relay.get_or_insert_with(Vec::new).extend_from_slice(value);
                } else {
                    kept.push((i, end));
                }
                i = end;
            }
        }
    }
    Some(Area { kept, relay })
}

/// Byte ranges (code to end of value) of every Option 82 in the `file`/`sname` fields that
/// option 52 of the main area declares as option space (RFC 2132 §9.3).
fn overloaded_option82(buf: &[u8]) -> Vec<(usize, usize)> {
    /// Where `file` and `sname` start, and how long they are.
    const FILE: (usize, usize) = (108, 128);
    const SNAME: (usize, usize) = (44, 64);
    let overload = find_option(buf, code::OVERLOAD)
        .filter(|(_, len)| *len == 1)
        .and_then(|(at, _)| buf.get(at).copied())
        .unwrap_or(0);
    let mut found = Vec::new();
    for (bit, (start, len)) in [(1u8, FILE), (2u8, SNAME)] {
        if overload & bit == 0 {
            continue;
        }
        let end = start + len;
        let mut i = start;
        while i < end {
            match buf.get(i) {
                None | Some(&code::END) => break,
                Some(&code::PAD) => i += 1,
                Some(&c) => {
                    let Some(&l) = buf.get(i + 1) else { break };
                    let next = i + 2 + usize::from(l);
                    if next > end {
                        break;
                    }
                    if c == code::RELAY_AGENT_INFO {
                        found.push((i, next));
                    }
                    i = next;
                }
            }
        }
    }
    found
}

/// Header + the kept options + optional Option 82 + END, zero-padded to `min_len`.
fn rebuild(buf: &[u8], area: &Area, relay: Option<&[u8]>, min_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len().max(min_len));
    out.extend_from_slice(buf.get(..OPTIONS_AT).unwrap_or(buf));
    for &(s, e) in &area.kept {
        out.extend_from_slice(buf.get(s..e).unwrap_or_default());
    }
    if let Some(v) = relay {
        out.push(code::RELAY_AGENT_INFO);
        out.push(u8::try_from(v.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(v);
    }
    out.push(code::END);
    if out.len() < min_len {
        out.resize(min_len, 0);
    }
    out
}

/// Rewrites a client request for the upstream servers: hops + 1 (dropped above the limit),
/// giaddr set to our address if it is 0 (a downstream relay's giaddr is kept, RFC 1542
/// §4.1.1), Option 82 inserted / kept / replaced / the request dropped per policy, inserted
/// last before END and only if the result fits in the larger of the received size and 548
/// bytes (RFC 3046 §2.1: otherwise forwarded without it).
pub fn relay_request(
    datagram: &[u8],
    link: &AgentLink<'_>,
    policy: &AgentPolicy,
) -> Result<Forwarded, RelayDrop> {
    let packet = Packet::decode(datagram).map_err(|_| RelayDrop::Malformed)?;
    if packet.op != BOOTREQUEST {
        return Err(RelayDrop::WrongDirection);
    }
    if packet.hops > policy.max_hops {
        return Err(RelayDrop::HopLimit);
    }
    let area = walk(datagram).ok_or(RelayDrop::Malformed)?;
    let hidden = overloaded_option82(datagram);
    let has_82 = area.relay.is_some() || !hidden.is_empty();
    let existing = policy
        .existing
        .unwrap_or(if packet.giaddr.is_unspecified() {
            ExistingOption82::Drop
        } else {
            ExistingOption82::Keep
        });
    let has_82_main = area.relay.is_some();
    let (ours, strip): (Option<Vec<u8>>, bool) = match (has_82, existing) {
        (true, ExistingOption82::Drop) => return Err(RelayDrop::ExistingOption82),
        // Only a main-area Option 82 can be a downstream agent's; a hidden copy alone is
        // blanked and ours inserted as if there were none.
        (true, ExistingOption82::Keep) if has_82_main => (None, false),
        (true, ExistingOption82::Replace) => {
            (policy.option82.then(|| option82_value(link, policy)), true)
        }
        (_, _) => (policy.option82.then(|| option82_value(link, policy)), false),
    };
    let ours = ours.filter(|v| !v.is_empty());
    let limit = datagram.len().max(MIN_LIMIT);
    let min_len = datagram.len().max(BOOTP_MIN);
    let mut inserted = false;
    let mut did_not_fit = false;
    let mut out = if ours.is_none() && !strip {
        datagram.to_vec()
    } else {
        let kept_len: usize = area.kept.iter().map(|(s, e)| e - s).sum();
        let relay_keep = if strip { None } else { area.relay.clone() };
        match &ours {
            // Header, the kept options, 82's code, length and value, END.
            Some(v) if OPTIONS_AT + kept_len + 2 + v.len() < limit => {
                inserted = true;
                rebuild(datagram, &area, Some(v), min_len)
            }
            Some(_) => {
                did_not_fit = true;
                // Forward without ours; with `replace`, the client side's is still removed.
                if strip {
                    rebuild(datagram, &area, None, min_len)
                } else {
                    datagram.to_vec()
                }
            }
            None => rebuild(datagram, &area, relay_keep.as_deref(), min_len),
        }
    };
    // The header (and so file/sname) is copied unchanged by every path above: blank the
    // hidden copies in place, which moves nothing.
    for (start, end) in &hidden {
        if let Some(span) = out.get_mut(*start..*end) {
            span.fill(code::PAD);
        }
    }
    if let Some(h) = out.get_mut(HOPS_AT) {
        *h = packet.hops.saturating_add(1);
    }
    if packet.giaddr.is_unspecified()
        && let Some(g) = out.get_mut(GIADDR_AT..GIADDR_AT + 4)
    {
        g.copy_from_slice(&link.address.octets());
    }
    let hostname = packet
        .options
        .get(code::HOSTNAME)
        .map(|h| String::from_utf8_lossy(h).into_owned());
    Ok(Forwarded {
        bytes: out,
        scrubbed_overload: !hidden.is_empty(),
        inserted,
        did_not_fit,
        message_type: packet.message_type(),
        hostname,
    })
}

/// Rewrites a server's reply for its client: every Option 82 is removed (RFC 3046 §2.2: the
/// client must never see it) and the delivery route is chosen per RFC 1542 §4.1.2: ciaddr set
/// → unicast there; broadcast bit, a NAK, or no yiaddr → broadcast; else unicast to yiaddr at
/// chaddr. `ours` says whether a giaddr is one of our links' addresses.
pub fn relay_reply(
    datagram: &[u8],
    ours: impl Fn(Ipv4Addr) -> bool,
) -> Result<Delivery, RelayDrop> {
    let packet = Packet::decode(datagram).map_err(|_| RelayDrop::Malformed)?;
    if packet.op != BOOTREPLY {
        return Err(RelayDrop::WrongDirection);
    }
    if !ours(packet.giaddr) {
        return Err(RelayDrop::NotOurs);
    }
    let area = walk(datagram).ok_or(RelayDrop::Malformed)?;
    let echoed = area.relay.as_deref().map(RelayInfo::parse);
    let bytes = if area.relay.is_some() {
        rebuild(datagram, &area, None, datagram.len().max(BOOTP_MIN))
    } else {
        datagram.to_vec()
    };
    let message_type = packet.message_type();
    let route = if !packet.ciaddr.is_unspecified() && message_type != Some(MessageType::Nak) {
        Route::Unicast(packet.ciaddr)
    } else if packet.broadcast()
        || message_type == Some(MessageType::Nak)
        || packet.yiaddr.is_unspecified()
    {
        Route::Broadcast
    } else {
        Route::Hardware {
            yiaddr: packet.yiaddr,
            chaddr: HwAddr(packet.chaddr().to_vec()),
            htype: packet.htype,
        }
    };
    Ok(Delivery {
        bytes,
        route,
        giaddr: packet.giaddr,
        message_type,
        echoed,
    })
}

/// The binding event a relayed reply stands for: ACK with a yiaddr (or ciaddr, a renewal) →
/// `Bound` with option 51's lease time (no option 51 → no event); NAK
/// → `Nak` for `requested` (the address the client asked for, remembered from its REQUEST).
/// Circuit-id and remote-id come from the echoed Option 82, else from `inserted` (ours).
pub fn binding_from_reply(
    datagram: &[u8],
    now: Timestamp,
    hostname: Option<String>,
    requested: Option<Ipv4Addr>,
    inserted: Option<&RelayInfo>,
) -> Option<BindingEvent> {
    let packet = Packet::decode(datagram).ok()?;
    let relay = packet
        .options
        .get(code::RELAY_AGENT_INFO)
        .map(RelayInfo::parse)
        .or_else(|| inserted.cloned());
    let mac = HwAddr(packet.chaddr().to_vec());
    let (kind, ip, lease_time) = match packet.message_type()? {
        MessageType::Ack => {
            let ip = if packet.yiaddr.is_unspecified() {
                packet.ciaddr
            } else {
                packet.yiaddr
            };
            let lease = packet
                .options
                .get(code::LEASE_TIME)
                .and_then(|v| <[u8; 4]>::try_from(v).ok())
                .map(u32::from_be_bytes)?;
            (BindingKind::Bound, ip, Some(lease))
        }
        MessageType::Nak => (BindingKind::Nak, requested?, None),
        _ => return None,
    };
    if ip.is_unspecified() {
        return None;
    }
    let hostname = packet
        .options
        .get(code::HOSTNAME)
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .or(hostname);
    Some(BindingEvent {
        kind,
        mac,
        ip,
        at: now,
        lease_time,
        expires: lease_time.map(|l| now.plus(l)),
        remote_id: relay.as_ref().and_then(|r| r.remote_id.clone()),
        circuit_id: relay.as_ref().and_then(|r| r.circuit_id.clone()),
        hostname,
        giaddr: Some(packet.giaddr).filter(|g| !g.is_unspecified()),
    })
}

/// Option 54 (server identifier) of the main option area, when it is exactly 4 bytes.
pub fn server_id(datagram: &[u8]) -> Option<Ipv4Addr> {
    let (start, len) = find_option(datagram, code::SERVER_ID)?;
    if len != 4 {
        return None;
    }
    let v = datagram.get(start..start + 4)?;
    <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from)
}

/// Replaces the value of option 54 in place (same 4 bytes, so nothing moves and nothing is
/// added: option 54 is never duplicated) when it currently is `from` (any value when `None`).
/// Returns the value it had. Used by `rewrite_server_id`: replies get the relay's address so
/// that unicast renewals, releases and declines come to the relay; requests naming the relay
/// get the real server's address back before they go upstream.
pub fn rewrite_server_id(
    datagram: &mut [u8],
    from: Option<Ipv4Addr>,
    to: Ipv4Addr,
) -> Option<Ipv4Addr> {
    let old = server_id(datagram)?;
    if from.is_some_and(|f| f != old) {
        return None;
    }
    let (start, _) = find_option(datagram, code::SERVER_ID)?;
    datagram
        .get_mut(start..start + 4)?
        .copy_from_slice(&to.octets());
    Some(old)
}

/// Where the value of the first instance of `code` in the main area starts, and its length.
fn find_option(buf: &[u8], wanted: u8) -> Option<(usize, usize)> {
    let mut i = OPTIONS_AT;
    while let Some(&c) = buf.get(i) {
        match c {
            code::PAD => i += 1,
            code::END => return None,
            _ => {
                let len = usize::from(*buf.get(i + 1)?);
                if c == wanted {
                    return Some((i + 2, len)).filter(|(s, l)| buf.len() >= s + l);
                }
                i += 2 + len;
            }
        }
    }
    None
}

/// The address a REQUEST asks for (option 50, else ciaddr), for the NAK's end-of-binding.
pub fn requested_address(datagram: &[u8]) -> Option<Ipv4Addr> {
    let p = Packet::decode(datagram).ok()?;
    p.options
        .get(code::REQUESTED_IP)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(Ipv4Addr::from)
        .or_else(|| (!p.ciaddr.is_unspecified()).then_some(p.ciaddr))
}

/// What to do with an Option 82 a client-side agent already put in a request (RFC 3046
/// §2.1.1; the same choices as ISC dhcrelay's `-m forward|replace|discard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingOption82 {
    /// Forward the request with the option as received and add none of ours (RFC 3046 §2.1.1:
    /// an agent SHALL NOT add a second one).
    Keep,
    /// Remove the received option and insert ours.
    Replace,
    /// Discard the request (an untrusted circuit must not send Option 82, RFC 3046 §2.1).
    Drop,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use leased_wire::Options;

    const LINK_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    fn link() -> AgentLink<'static> {
        AgentLink {
            address: LINK_ADDR,
            circuit_id: b"eth1",
            remote_id: &[2, 0, 0, 0, 0, 0xaa],
            signature: None,
        }
    }

    fn policy(existing: ExistingOption82) -> AgentPolicy {
        AgentPolicy {
            max_hops: 4,
            option82: true,
            existing: Some(existing),
            link_selection: false,
            server_id_override: false,
            relay_port: false,
        }
    }

    fn packet(op: u8, msg: MessageType, extra: &[(u8, &[u8])]) -> Packet {
        let mut options = Options::new();
        options.set(code::MESSAGE_TYPE, vec![msg.code()]);
        for (c, v) in extra {
            options.set(*c, v.to_vec());
        }
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        Packet {
            op,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0x1234_5678,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            sname: vec![],
            file: vec![],
            options,
            option82_in_overload: false,
        }
    }

    fn bytes(p: &Packet) -> Vec<u8> {
        let mut out = Vec::new();
        p.encode(1500, &mut out);
        out
    }

    fn discover(extra: &[(u8, &[u8])]) -> Vec<u8> {
        bytes(&packet(BOOTREQUEST, MessageType::Discover, extra))
    }

    /// Every option code as it appears on the wire, in order, in the main area.
    fn codes(buf: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = OPTIONS_AT;
        while let Some(&c) = buf.get(i) {
            match c {
                0 => i += 1,
                255 => {
                    out.push(255);
                    break;
                }
                _ => {
                    out.push(c);
                    i += 2 + usize::from(buf[i + 1]);
                }
            }
        }
        out
    }

    #[test]
    fn inserts_82_last_sets_giaddr_and_hops() {
        let req = discover(&[
            (code::HOSTNAME, b"cam"),
            (code::PARAM_REQUEST_LIST, &[1, 3]),
        ]);
        let f = relay_request(&req, &link(), &policy(ExistingOption82::Keep)).unwrap();
        assert!(f.inserted && !f.did_not_fit);
        assert_eq!(f.hostname.as_deref(), Some("cam"));
        assert_eq!(f.message_type, Some(MessageType::Discover));
        let p = Packet::decode(&f.bytes).unwrap();
        assert_eq!(p.giaddr, LINK_ADDR);
        assert_eq!(p.hops, 1);
        assert_eq!(codes(&f.bytes), vec![53, 12, 55, 82, 255]);
        let info = RelayInfo::parse(p.options.get(82).unwrap());
        assert_eq!(info.circuit_id.as_deref(), Some(&b"eth1"[..]));
        assert_eq!(info.remote_id.as_deref(), Some(&[2, 0, 0, 0, 0, 0xaa][..]));
        assert_eq!(info.link_selection, None);
        // The rest of the packet is the client's, byte for byte.
        assert_eq!(f.bytes[..3], req[..3]);
        assert_eq!(f.bytes[4..24], req[4..24]);
        assert_eq!(f.bytes[28..240], req[28..240]);
        assert!(f.bytes.len() >= req.len());
    }

    #[test]
    fn link_selection_and_server_id_override() {
        let mut pol = policy(ExistingOption82::Keep);
        pol.link_selection = true;
        pol.server_id_override = true;
        let f = relay_request(&discover(&[]), &link(), &pol).unwrap();
        let p = Packet::decode(&f.bytes).unwrap();
        let info = RelayInfo::parse(p.options.get(82).unwrap());
        assert_eq!(info.link_selection, Some(LINK_ADDR));
        assert_eq!(info.server_id_override, Some(LINK_ADDR));
    }

    #[test]
    fn downstream_giaddr_is_kept() {
        let mut p = packet(BOOTREQUEST, MessageType::Request, &[]);
        p.giaddr = Ipv4Addr::new(198, 18, 9, 1);
        p.hops = 2;
        let f = relay_request(&bytes(&p), &link(), &policy(ExistingOption82::Keep)).unwrap();
        let out = Packet::decode(&f.bytes).unwrap();
        assert_eq!(out.giaddr, Ipv4Addr::new(198, 18, 9, 1));
        assert_eq!(out.hops, 3);
    }

    #[test]
    fn existing_82_keep_replace_drop() {
        let theirs: &[u8] = &[1, 3, b's', b'w', b'1'];
        let req = discover(&[(code::HOSTNAME, b"h"), (82, theirs)]);
        // keep: forwarded with theirs, ours not added (RFC 3046 §2.1.1), bytes unchanged.
        let f = relay_request(&req, &link(), &policy(ExistingOption82::Keep)).unwrap();
        assert!(!f.inserted);
        assert_eq!(
            Packet::decode(&f.bytes).unwrap().options.get(82),
            Some(theirs)
        );
        assert_eq!(f.bytes[240..], req[240..]);
        // replace: theirs out, ours in, exactly one 82.
        let f = relay_request(&req, &link(), &policy(ExistingOption82::Replace)).unwrap();
        assert!(f.inserted);
        assert_eq!(codes(&f.bytes).iter().filter(|c| **c == 82).count(), 1);
        let info = RelayInfo::parse(Packet::decode(&f.bytes).unwrap().options.get(82).unwrap());
        assert_eq!(info.circuit_id.as_deref(), Some(&b"eth1"[..]));
        // replace with insertion off: theirs removed, none added.
        let mut pol = policy(ExistingOption82::Replace);
        pol.option82 = false;
        let f = relay_request(&req, &link(), &pol).unwrap();
        assert!(!codes(&f.bytes).contains(&82));
        // drop: not forwarded.
        assert_eq!(
            relay_request(&req, &link(), &policy(ExistingOption82::Drop)),
            Err(RelayDrop::ExistingOption82)
        );
        // drop applies only when one is present.
        assert!(relay_request(&discover(&[]), &link(), &policy(ExistingOption82::Drop)).is_ok());
    }

    #[test]
    fn split_82_is_replaced_whole() {
        // Two instances of 82 (RFC 3396), not adjacent.
        let mut req = discover(&[]);
        let end = req.iter().skip(OPTIONS_AT).position(|b| *b == 255).unwrap() + OPTIONS_AT;
        req.truncate(end);
        req.extend_from_slice(&[82, 2, 1, 1, 12, 1, b'x', 82, 2, 2, 0, 255]);
        let f = relay_request(&req, &link(), &policy(ExistingOption82::Replace)).unwrap();
        assert_eq!(codes(&f.bytes), vec![53, 12, 82, 255]);
    }

    #[test]
    fn insertion_off_forwards_unchanged_options() {
        let mut pol = policy(ExistingOption82::Keep);
        pol.option82 = false;
        let req = discover(&[(code::HOSTNAME, b"h")]);
        let f = relay_request(&req, &link(), &pol).unwrap();
        assert!(!f.inserted);
        assert_eq!(f.bytes[240..], req[240..]);
    }

    #[test]
    fn hops_limit() {
        let mut p = packet(BOOTREQUEST, MessageType::Discover, &[]);
        p.hops = 4;
        let f = relay_request(&bytes(&p), &link(), &policy(ExistingOption82::Keep)).unwrap();
        assert_eq!(Packet::decode(&f.bytes).unwrap().hops, 5);
        p.hops = 5;
        assert_eq!(
            relay_request(&bytes(&p), &link(), &policy(ExistingOption82::Keep)),
            Err(RelayDrop::HopLimit)
        );
        p.hops = 255;
        let mut pol = policy(ExistingOption82::Keep);
        pol.max_hops = 16;
        assert_eq!(
            relay_request(&bytes(&p), &link(), &pol),
            Err(RelayDrop::HopLimit)
        );
        p.hops = 0;
        pol.max_hops = 0;
        assert!(relay_request(&bytes(&p), &link(), &pol).is_ok());
    }

    #[test]
    fn does_not_fit_is_forwarded_without_82() {
        // Options filling the packet up to 548 bytes, END last, no padding left.
        let big = vec![b'a'; 255];
        let mid = vec![b'b'; 548 - 240 - 3 - 257 - 2 - 1];
        let req = discover(&[(43, &big), (60, &mid)]);
        assert_eq!(req.len(), 548);
        let f = relay_request(&req, &link(), &policy(ExistingOption82::Keep)).unwrap();
        assert!(f.did_not_fit && !f.inserted);
        assert!(!codes(&f.bytes).contains(&82));
        assert_eq!(f.bytes.len(), 548);
        assert_eq!(Packet::decode(&f.bytes).unwrap().giaddr, LINK_ADDR);
        // The same with room to spare (a small packet): it fits.
        let f = relay_request(
            &discover(&[(43, &big)]),
            &link(),
            &policy(ExistingOption82::Keep),
        )
        .unwrap();
        assert!(f.inserted);
        assert!(f.bytes.len() <= 548);
    }

    #[test]
    fn malformed_and_wrong_direction() {
        assert_eq!(
            relay_request(&[1; 100], &link(), &policy(ExistingOption82::Keep)),
            Err(RelayDrop::Malformed)
        );
        let mut req = discover(&[]);
        req.truncate(OPTIONS_AT);
        req.extend_from_slice(&[12, 200, 1]);
        assert_eq!(
            relay_request(&req, &link(), &policy(ExistingOption82::Keep)),
            Err(RelayDrop::Malformed)
        );
        let offer = bytes(&packet(BOOTREPLY, MessageType::Offer, &[]));
        assert_eq!(
            relay_request(&offer, &link(), &policy(ExistingOption82::Keep)),
            Err(RelayDrop::WrongDirection)
        );
        assert_eq!(
            relay_reply(&discover(&[]), |_| true),
            Err(RelayDrop::WrongDirection)
        );
    }

    fn reply(msg: MessageType, flags: u16, ciaddr: Ipv4Addr, extra: &[(u8, &[u8])]) -> Vec<u8> {
        let mut p = packet(BOOTREPLY, msg, extra);
        p.giaddr = LINK_ADDR;
        p.yiaddr = Ipv4Addr::new(198, 18, 0, 10);
        p.ciaddr = ciaddr;
        p.flags = flags;
        bytes(&p)
    }

    #[test]
    fn reply_strips_82_keeps_single_54_and_routes() {
        let sid: &[u8] = &[198, 18, 1, 1];
        let ours = option82_value(&link(), &policy(ExistingOption82::Keep));
        let r = reply(
            MessageType::Offer,
            0,
            Ipv4Addr::UNSPECIFIED,
            &[(54, sid), (51, &[0, 0, 14, 16]), (82, &ours)],
        );
        let d = relay_reply(&r, |g| g == LINK_ADDR).unwrap();
        assert!(!codes(&d.bytes).contains(&82));
        assert_eq!(codes(&d.bytes).iter().filter(|c| **c == 54).count(), 1);
        let p = Packet::decode(&d.bytes).unwrap();
        assert_eq!(p.options.get(54), Some(sid));
        assert_eq!(d.echoed.unwrap().circuit_id.as_deref(), Some(&b"eth1"[..]));
        assert_eq!(
            d.route,
            Route::Hardware {
                yiaddr: Ipv4Addr::new(198, 18, 0, 10),
                chaddr: HwAddr(vec![2, 0, 0, 0, 0, 1]),
                htype: 1
            }
        );
        assert_eq!(d.bytes.len(), r.len());
        // Broadcast bit.
        let d = relay_reply(
            &reply(MessageType::Ack, 0x8000, Ipv4Addr::UNSPECIFIED, &[]),
            |_| true,
        )
        .unwrap();
        assert_eq!(d.route, Route::Broadcast);
        // ciaddr (renewal through us).
        let c = Ipv4Addr::new(198, 18, 0, 10);
        let d = relay_reply(&reply(MessageType::Ack, 0, c, &[]), |_| true).unwrap();
        assert_eq!(d.route, Route::Unicast(c));
        // NAK: broadcast even with ciaddr.
        let d = relay_reply(&reply(MessageType::Nak, 0, c, &[]), |_| true).unwrap();
        assert_eq!(d.route, Route::Broadcast);
        // Not our giaddr.
        assert_eq!(relay_reply(&r, |_| false), Err(RelayDrop::NotOurs));
    }

    #[test]
    fn binding_from_ack_and_nak() {
        let ours = option82_value(&link(), &policy(ExistingOption82::Keep));
        let ack = reply(
            MessageType::Ack,
            0,
            Ipv4Addr::UNSPECIFIED,
            &[(51, &[0, 0, 14, 16]), (82, &ours)],
        );
        let b = binding_from_reply(&ack, Timestamp(100), Some("cam".into()), None, None).unwrap();
        assert_eq!(b.kind, BindingKind::Bound);
        assert_eq!(b.ip, Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(b.lease_time, Some(3600));
        assert_eq!(b.expires, Some(Timestamp(3700)));
        assert_eq!(b.circuit_id.as_deref(), Some(&b"eth1"[..]));
        assert_eq!(b.hostname.as_deref(), Some("cam"));
        assert_eq!(b.giaddr, Some(LINK_ADDR));
        // No option 51: no binding.
        let ack = reply(MessageType::Ack, 0, Ipv4Addr::UNSPECIFIED, &[]);
        assert!(binding_from_reply(&ack, Timestamp(100), None, None, None).is_none());
        // Without an echo, our inserted data is used.
        let ack = reply(
            MessageType::Ack,
            0,
            Ipv4Addr::UNSPECIFIED,
            &[(51, &[0, 0, 0, 60])],
        );
        let info = RelayInfo::parse(&ours);
        let b = binding_from_reply(&ack, Timestamp(1), None, None, Some(&info)).unwrap();
        assert_eq!(b.remote_id.as_deref(), Some(&[2, 0, 0, 0, 0, 0xaa][..]));
        let nak = reply(MessageType::Nak, 0, Ipv4Addr::UNSPECIFIED, &[]);
        let want = Ipv4Addr::new(198, 18, 0, 77);
        let b = binding_from_reply(&nak, Timestamp(5), None, Some(want), None).unwrap();
        assert_eq!((b.kind, b.ip), (BindingKind::Nak, want));
        assert!(binding_from_reply(&nak, Timestamp(5), None, None, None).is_none());
        let offer = reply(
            MessageType::Offer,
            0,
            Ipv4Addr::UNSPECIFIED,
            &[(51, &[0, 0, 0, 60])],
        );
        assert!(binding_from_reply(&offer, Timestamp(5), None, None, None).is_none());
    }

    #[test]
    fn requested_address_from_50_or_ciaddr() {
        let req = bytes(&packet(
            BOOTREQUEST,
            MessageType::Request,
            &[(50, &[198, 18, 0, 9])],
        ));
        assert_eq!(requested_address(&req), Some(Ipv4Addr::new(198, 18, 0, 9)));
        let mut p = packet(BOOTREQUEST, MessageType::Request, &[]);
        p.ciaddr = Ipv4Addr::new(198, 18, 0, 8);
        assert_eq!(
            requested_address(&bytes(&p)),
            Some(Ipv4Addr::new(198, 18, 0, 8))
        );
    }

    #[test]
    fn server_id_rewrite_in_place_never_duplicated() {
        let real = Ipv4Addr::new(198, 19, 0, 2);
        let r = reply(
            MessageType::Offer,
            0,
            Ipv4Addr::UNSPECIFIED,
            &[(54, &real.octets()), (51, &[0, 0, 0, 60])],
        );
        let mut d = relay_reply(&r, |_| true).unwrap().bytes;
        let len = d.len();
        assert_eq!(rewrite_server_id(&mut d, None, LINK_ADDR), Some(real));
        assert_eq!(d.len(), len);
        assert_eq!(server_id(&d), Some(LINK_ADDR));
        assert_eq!(codes(&d).iter().filter(|c| **c == 54).count(), 1);
        // A request naming the relay gets the real server back; one naming another, nothing.
        let mut req = bytes(&packet(
            BOOTREQUEST,
            MessageType::Request,
            &[(54, &LINK_ADDR.octets())],
        ));
        assert_eq!(
            rewrite_server_id(&mut req, Some(LINK_ADDR), real),
            Some(LINK_ADDR)
        );
        assert_eq!(server_id(&req), Some(real));
        assert_eq!(rewrite_server_id(&mut req, Some(LINK_ADDR), real), None);
        // No option 54 (a RENEWING request): nothing to do.
        let mut renew = bytes(&packet(BOOTREQUEST, MessageType::Request, &[]));
        assert_eq!(rewrite_server_id(&mut renew, None, real), None);
        assert_eq!(server_id(&renew), None);
        // A 54 of the wrong length is left alone.
        let mut odd = bytes(&packet(
            BOOTREQUEST,
            MessageType::Request,
            &[(54, &[1, 2, 3])],
        ));
        assert_eq!(rewrite_server_id(&mut odd, None, real), None);
        for n in 0..req.len() {
            let mut cut = req[..n].to_vec();
            let _ = rewrite_server_id(&mut cut, None, real);
        }
    }

    #[test]
    fn templates() {
        let mac = Some([2, 0, 0, 0, 0, 0xaa]);
        assert_eq!(
            expand_template("{interface}", "eth0.100", 7, mac),
            b"eth0.100"
        );
        assert_eq!(
            expand_template("sw1/{vlan}/{ifindex}", "eth0.100", 7, mac),
            b"sw1/100/7"
        );
        assert_eq!(expand_template("{vlan}", "eth0", 7, mac), b"");
        assert_eq!(
            expand_template("{mac}", "eth0", 7, mac),
            vec![2, 0, 0, 0, 0, 0xaa]
        );
        assert_eq!(
            expand_template("olt-7 é", "eth0", 7, mac),
            "olt-7 é".as_bytes()
        );
        assert_eq!(expand_template(&"x".repeat(100), "e", 1, None).len(), 64);
        assert_eq!(expand_template("{unknown}", "e", 1, None), b"{unknown}");
    }

    #[test]
    fn no_panic_on_arbitrary_bytes() {
        // Every prefix of a valid packet with garbage options: errors, never panics.
        let mut req = discover(&[(12, b"abc")]);
        req.extend_from_slice(&[82, 9, 1]);
        for n in 0..req.len() {
            let _ = relay_request(&req[..n], &link(), &policy(ExistingOption82::Replace));
            let _ = relay_reply(&req[..n], |_| true);
            let _ = binding_from_reply(&req[..n], Timestamp(0), None, None, None);
        }
    }

    #[test]
    fn relay_port_suboption_is_empty_and_before_the_signature() {
        let mut p = policy(ExistingOption82::Keep);
        let plain = option82_value(&link(), &p);
        assert!(!plain.windows(2).any(|w| w == [sub::RELAY_PORT, 0]));
        p.relay_port = true;
        let v = option82_value(&link(), &p);
        assert_eq!(v.get(..plain.len()), Some(&plain[..]));
        assert_eq!(v.get(plain.len()..), Some(&[sub::RELAY_PORT, 0][..]));
        let parsed = RelayInfo::parse(&v);
        assert!(parsed.well_formed && parsed.relay_port);
        let signed = AgentLink {
            signature: Some(7),
            ..link()
        };
        let v = option82_value(&signed, &p);
        let subs = leased_wire::relay_suboptions(&v).unwrap();
        let codes: Vec<u8> = subs.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            codes,
            [
                sub::CIRCUIT_ID,
                sub::REMOTE_ID,
                sub::RELAY_PORT,
                crate::relay_auth::SUBOPTION
            ]
        );
    }

    fn default_policy() -> AgentPolicy {
        AgentPolicy {
            existing: None,
            ..policy(ExistingOption82::Keep)
        }
    }

    #[test]
    fn by_default_a_first_hop_option82_is_dropped_and_a_relays_is_kept() {
        // giaddr 0: the client wrote it (RFC 3046 §2.1.1).
        let forged = discover(&[(code::RELAY_AGENT_INFO, &[1, 3, b'v', b'i', b'c'])]);
        assert_eq!(
            relay_request(&forged, &link(), &default_policy()),
            Err(RelayDrop::ExistingOption82)
        );
        // From a downstream relay (giaddr set): forwarded as it is, none of ours added.
        let mut p = packet(
            BOOTREQUEST,
            MessageType::Discover,
            &[(code::RELAY_AGENT_INFO, &[1, 3, b'd', b'o', b'w'])],
        );
        p.giaddr = Ipv4Addr::new(198, 18, 9, 1);
        let f = relay_request(&bytes(&p), &link(), &default_policy()).unwrap();
        assert!(!f.inserted);
        let out = Packet::decode(&f.bytes).unwrap();
        assert_eq!(out.options.get(82), Some(&[1, 3, b'd', b'o', b'w'][..]));
        assert_eq!(out.giaddr, Ipv4Addr::new(198, 18, 9, 1));
        // An explicit policy applies to both.
        let kept = relay_request(&forged, &link(), &policy(ExistingOption82::Keep)).unwrap();
        assert!(!kept.inserted);
    }

    /// `discover` with option 52 = 1 and `hidden` as the options of the `file` field.
    fn with_hidden_in_file(hidden: &[u8]) -> Vec<u8> {
        let mut b = discover(&[]);
        b.splice(OPTIONS_AT..OPTIONS_AT, [code::OVERLOAD, 1, 1]);
        b[108..108 + hidden.len()].copy_from_slice(hidden);
        b
    }

    #[test]
    fn an_option82_hidden_in_file_is_blanked_or_the_request_dropped() {
        // Sub-options 5 (link selection) and 6 (subscriber-id) in `file`, then a host name.
        let hidden = [
            82, 10, 5, 4, 198, 18, 9, 0, 6, 2, b'v', b'1', 12, 1, b'h', 255,
        ];
        let req = with_hidden_in_file(&hidden);
        // First hop, default policy: discarded, like a main-area one.
        assert_eq!(
            relay_request(&req, &link(), &default_policy()),
            Err(RelayDrop::ExistingOption82)
        );
        for existing in [ExistingOption82::Keep, ExistingOption82::Replace] {
            let f = relay_request(&req, &link(), &policy(existing)).unwrap();
            assert!(f.scrubbed_overload && f.inserted, "{existing:?}");
            // The bytes of the hidden option are PAD now; the host name after it survives.
            assert!(f.bytes[108..120].iter().all(|b| *b == 0), "{existing:?}");
            let p = Packet::decode(&f.bytes).unwrap();
            assert!(!p.option82_in_overload);
            assert_eq!(p.options.get(12), Some(&b"h"[..]));
            let info = RelayInfo::parse(p.options.get(82).unwrap());
            assert_eq!(
                info.circuit_id.as_deref(),
                Some(&b"eth1"[..]),
                "ours, not the client's"
            );
            assert_eq!(info.link_selection, None);
            assert_eq!(info.subscriber_id, None);
        }
        assert_eq!(
            relay_request(&req, &link(), &policy(ExistingOption82::Drop)),
            Err(RelayDrop::ExistingOption82)
        );
        // Without option 52 the same bytes are a boot file name and stay as they are.
        let mut plain = discover(&[]);
        plain[108..108 + hidden.len()].copy_from_slice(&hidden);
        let f = relay_request(&plain, &link(), &default_policy()).unwrap();
        assert!(!f.scrubbed_overload);
        assert_eq!(f.bytes[108..108 + hidden.len()], hidden);
    }

    #[test]
    fn a_signed_request_carries_a_verifiable_authentication_suboption() {
        let key = b"relay-key-0123456789";
        let mut l = link();
        l.signature = Some(7);
        let mut f = relay_request(&discover(&[]), &l, &default_policy()).unwrap();
        assert!(f.inserted);
        assert!(crate::relay_auth::sign(&mut f.bytes, key));
        assert_eq!(crate::relay_auth::verify(&f.bytes, key), Ok(7));
        let p = Packet::decode(&f.bytes).unwrap();
        let info = RelayInfo::parse(p.options.get(82).unwrap());
        assert!(info.well_formed);
        assert_eq!(info.circuit_id.as_deref(), Some(&b"eth1"[..]));
    }
}
