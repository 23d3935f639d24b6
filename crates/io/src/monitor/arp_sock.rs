//! ARP on one interface through `AF_PACKET`/`SOCK_DGRAM` (`ETH_P_ARP`): RFC 5227 probes out
//! (sender address 0.0.0.0, so no host's cache learns anything from us), every ARP frame in.
//!
//! Why our own socket: the kernel keeps an ARP reply to a request it did not send only when
//! `arp_accept` is set, so the answers to our probes are read here, not from the neighbour
//! table. Any ARP frame a host sends (request, reply, announcement) names its sender's IPv4
//! and MAC; all of them are evidence of who uses an address. The socket itself is
//! leased-sock's; here are the ARP payloads and the wait.

use std::io;
use std::net::Ipv4Addr;

use leased_sock::{Async, packet};

/// An ARP packet's sender: who claims an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArpSender {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// The RFC 5227 probe for `target` from `our_mac`: a request with sender IP 0.0.0.0.
pub(crate) fn probe_payload(our_mac: [u8; 6], target: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    p[8..14].copy_from_slice(&our_mac);
    // sender IP 0.0.0.0 (bytes 14..18), target MAC zero (18..24)
    p[24..28].copy_from_slice(&target.octets());
    p
}

/// The sender of an Ethernet/IPv4 ARP packet (request or reply); `None` for anything else,
/// for probes (sender 0.0.0.0) and for malformed input.
pub(crate) fn parse_sender(p: &[u8]) -> Option<ArpSender> {
    if p.get(..6)? != [0, 1, 8, 0, 6, 4] || !matches!(p.get(6..8)?, [0, 1] | [0, 2]) {
        return None;
    }
    let mac: [u8; 6] = p.get(8..14)?.try_into().ok()?;
    let ip: [u8; 4] = p.get(14..18)?.try_into().ok()?;
    let ip = Ipv4Addr::from(ip);
    if ip.is_unspecified() || mac == [0; 6] || mac[0] & 1 == 1 {
        return None;
    }
    Some(ArpSender { ip, mac })
}

/// An ARP socket bound to one interface ([`leased_sock::packet::ArpSocket`]), registered with
/// tokio.
pub(crate) struct ArpSocket {
    sock: Async<packet::ArpSocket>,
}

impl ArpSocket {
    /// Opens the socket on interface `ifindex` (needs CAP_NET_RAW), through the helper that
    /// keeps CAP_NET_RAW once root is dropped.
    pub(crate) fn open(ifindex: u32) -> io::Result<Self> {
        let sock = packet::ArpSocket::open(crate::privileges::socket, ifindex)?;
        Ok(Self {
            sock: Async::new(sock)?,
        })
    }

    /// Broadcasts one ARP payload on the interface (non-blocking; a full queue is an error the
    /// caller may ignore: the next cycle probes again).
    pub(crate) fn send(&self, payload: &[u8]) -> io::Result<()> {
        self.sock.get_ref().broadcast(payload)
    }

    /// Waits for the next ARP packet another host sent and returns its sender (packets that
    /// name none are skipped).
    pub(crate) async fn recv(&self) -> io::Result<ArpSender> {
        let mut buf = [0u8; 256];
        loop {
            let frame = self.sock.read_with(|s| s.recv(&mut buf)).await?;
            if frame.outgoing {
                continue;
            }
            if let Some(s) = parse_sender(buf.get(..frame.len).unwrap_or_default()) {
                return Ok(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn probe_is_rfc5227_and_replies_name_their_sender() {
        let me = [2, 0, 0, 0, 0, 1];
        let p = probe_payload(me, Ipv4Addr::new(198, 18, 0, 9));
        assert_eq!(&p[14..18], &[0, 0, 0, 0]);
        assert_eq!(parse_sender(&p), None, "a probe names no sender");
        let mut reply = p;
        reply[7] = 2;
        reply[8..14].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        reply[14..18].copy_from_slice(&[198, 18, 0, 9]);
        assert_eq!(
            parse_sender(&reply),
            Some(ArpSender {
                ip: Ipv4Addr::new(198, 18, 0, 9),
                mac: [2, 0, 0, 0, 0, 9]
            })
        );
        // The sender ends at byte 18; anything shorter names nobody.
        for cut in 0..18 {
            assert_eq!(parse_sender(&reply[..cut]), None);
        }
        let mut other = reply;
        other[7] = 3;
        assert_eq!(parse_sender(&other), None);
    }
}
