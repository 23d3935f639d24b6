//! Step one of a decision: what kind of message is this, who sent it, and which subnet and
//! server identity answer it. Reads only the packet, the request metadata and the plan.

use std::net::Ipv4Addr;

use leased_wire::{BOOTREQUEST, MessageType, Packet, code};

use crate::decision::DropReason;
use crate::lease::{ClientId, HwAddr};
use crate::plan::Plan;
use crate::relay::RelayInfo;
use crate::request::Request;

/// The facts about one packet that every branch of a decision uses.
#[derive(Debug, Clone)]
pub(crate) struct Classified {
    pub(crate) msg: MessageType,
    pub(crate) client_id: ClientId,
    pub(crate) hwaddr: HwAddr,
    /// Option 50, when it is a well-formed address.
    pub(crate) requested_ip: Option<Ipv4Addr>,
    /// Option 54: `None` absent, `Some(None)` present but malformed, `Some(Some(ip))`.
    pub(crate) server_id: Option<Option<Ipv4Addr>>,
    /// Option 12, lossy UTF-8 with whitespace and NULs trimmed; `None` when absent or empty.
    pub(crate) hostname: Option<String>,
    /// Option 82, parsed (`None` when the packet has none, or one that may not be believed:
    /// see [`crate::trust`]).
    pub(crate) relay: Option<RelayInfo>,
}

/// What io knows plus the packet, reduced to a message type and a client identity.
///
/// Drops: not a BOOTREQUEST → `NotRequest`; hlen over 16 → `BadHlen`; no or malformed
/// option 53 → `MissingMessageType`; an unknown type or one servers never receive (OFFER,
/// ACK, NAK) → `UnsupportedMessage`; an all-zero chaddr without option 61 → `ZeroChaddr`.
/// `relay_trusted`: whether the packet's Option 82 may be believed ([`crate::trust::judge`]).
pub(crate) fn classify(pkt: &Packet, relay_trusted: bool) -> Result<Classified, DropReason> {
    if pkt.op != BOOTREQUEST {
        return Err(DropReason::NotRequest);
    }
    if pkt.hlen > 16 {
        return Err(DropReason::BadHlen);
    }
    let msg = match pkt.options.get(code::MESSAGE_TYPE) {
        Some(&[c]) => MessageType::from_code(c).ok_or(DropReason::UnsupportedMessage)?,
        _ => return Err(DropReason::MissingMessageType),
    };
    if matches!(
        msg,
        MessageType::Offer | MessageType::Ack | MessageType::Nak
    ) {
        return Err(DropReason::UnsupportedMessage);
    }
    let chaddr = pkt.chaddr();
    let opt61 = pkt.options.get(code::CLIENT_ID).filter(|v| !v.is_empty());
    if opt61.is_none() && chaddr.iter().all(|b| *b == 0) {
        return Err(DropReason::ZeroChaddr);
    }
    let client_id = match opt61 {
        Some(v) => ClientId(v.to_vec()),
        None => {
            let mut id = Vec::with_capacity(chaddr.len() + 1);
            id.push(pkt.htype);
            id.extend_from_slice(chaddr);
            ClientId(id)
        }
    };
    Ok(Classified {
        msg,
        client_id,
        hwaddr: HwAddr(chaddr.to_vec()),
        requested_ip: pkt.options.get(code::REQUESTED_IP).and_then(ipv4),
        server_id: pkt.options.get(code::SERVER_ID).map(ipv4),
        hostname: pkt.options.get(code::HOSTNAME).and_then(hostname),
        relay: pkt
            .options
            .get(code::RELAY_AGENT_INFO)
            .filter(|_| relay_trusted)
            .map(RelayInfo::parse),
    })
}

/// A 4-byte option value as an address.
pub(crate) fn ipv4(v: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from)
}

/// Option 12 as text: lossy UTF-8, surrounding whitespace and NULs trimmed, empty → `None`.
pub(crate) fn hostname(v: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(v);
    let trimmed = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The subnet that answers this packet and the server identifier we speak as there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Selected {
    pub(crate) subnet: usize,
    /// Option 54 of our replies: the relay's server-id override (RFC 5107) when it sent one.
    pub(crate) server_id: Ipv4Addr,
    /// Our own identifier on this subnet (also accepted as "ours" under an override).
    pub(crate) own_server_id: Ipv4Addr,
}

/// Picks the subnet, in this order: Option 82 link selection (RFC 3527) → option 118
/// (RFC 3011) → giaddr → ciaddr → the receiving interface → the receiving address.
///
/// The first hint present decides: a relay that names a link we do not serve gets no answer
/// from a neighbouring subnet. Malformed hints (wrong length, or a malformed Option 82) are
/// ignored. The subnet returned is where the link's group ([`Plan::link_group`]) starts.
pub(crate) fn select_subnet(
    req: &Request,
    plan: &Plan,
    relay: Option<&RelayInfo>,
) -> Result<Selected, DropReason> {
    let pkt = &req.packet;
    let link = relay.and_then(|r| r.link_selection);
    let hint = link
        .or_else(|| pkt.options.get(code::SUBNET_SELECTION).and_then(ipv4))
        .or_else(|| nonzero(pkt.giaddr))
        .or_else(|| nonzero(pkt.ciaddr));
    let subnet = match hint {
        Some(ip) => plan.subnet_index_containing(ip),
        None => by_link(req, plan),
    }
    .ok_or(DropReason::NoSubnet)?;
    let server_id = plan
        .network
        .subnets
        .get(subnet)
        .and_then(|s| s.server_id)
        .or(plan.network.server.server_id)
        .or(req.local_addr)
        .ok_or(DropReason::NoSubnet)?;
    Ok(Selected {
        subnet,
        server_id: relay
            .and_then(|r| r.server_id_override)
            .unwrap_or(server_id),
        own_server_id: server_id,
    })
}

/// Direct clients: the subnet bound to the receiving interface (preferring the one holding our
/// address when several share it), else the subnet containing our address.
fn by_link(req: &Request, plan: &Plan) -> Option<usize> {
    if let Some(name) = &req.interface {
        let on_if = plan.subnet_indexes_on(name);
        let with_addr = req.local_addr.and_then(|a| {
            on_if.iter().copied().find(|i| {
                plan.network
                    .subnets
                    .get(*i)
                    .is_some_and(|s| s.network.contains(&a))
            })
        });
        if let Some(i) = with_addr.or_else(|| on_if.first().copied()) {
            return Some(i);
        }
    }
    req.local_addr.and_then(|a| plan.subnet_index_containing(a))
}

/// `Some(ip)` unless it is 0.0.0.0.
pub(crate) fn nonzero(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    (!ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_trims_and_is_lossy() {
        assert_eq!(hostname(b"  pc-1\0\0"), Some("pc-1".to_owned()));
        assert_eq!(hostname(b"\0 \0"), None);
        assert_eq!(hostname(&[0xff, b'a']), Some("\u{fffd}a".to_owned()));
    }
}
