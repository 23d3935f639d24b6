//! ARP on one interface through `AF_PACKET`/`SOCK_DGRAM` (`ETH_P_ARP`): RFC 5227 probes out
//! (sender address 0.0.0.0, so no host's cache learns anything from us), every ARP frame in.
//!
//! Why our own socket: the kernel keeps an ARP reply to a request it did not send only when
//! `arp_accept` is set, so the answers to our probes are read here, not from the neighbour
//! table. Any ARP frame a host sends (request, reply, announcement) names its sender's IPv4
//! and MAC; all of them are evidence of who uses an address. Every `unsafe` block carries its
//! `SAFETY:` note.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

const ETH_P_ARP: u16 = 0x0806;
/// `sll_pkttype` of frames this host sent.
const PACKET_OUTGOING: u8 = 4;

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

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An ARP socket bound to one interface, registered with tokio.
pub(crate) struct ArpSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: i32,
}

impl ArpSocket {
    /// Opens the socket on interface `ifindex` (needs CAP_NET_RAW).
    pub(crate) fn open(ifindex: u32) -> io::Result<Self> {
        let proto = ETH_P_ARP.to_be();
        // Through the helper that keeps CAP_NET_RAW once root is dropped.
        let fd = crate::privileges::raw_socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
            libc::c_int::from(proto),
        )?;
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index"))?;
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll of the size given.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        // SAFETY: `fd` is open and owned by the AsyncFd from here on.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { fd, ifindex })
    }

    /// Broadcasts one ARP payload on the interface (non-blocking; a full queue is an error the
    /// caller may ignore: the next cycle probes again).
    pub(crate) fn send(&self, payload: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ARP.to_be();
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: `payload` and `sll` are live for the call, with the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.get_ref().as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for the next ARP packet another host sent and returns its sender (packets that
    /// name none are skipped).
    pub(crate) async fn recv(&self) -> io::Result<ArpSender> {
        let mut buf = [0u8; 256];
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|fd| {
                // SAFETY: sockaddr_ll is plain data; zeroed is valid.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: `buf`, `from` and `len` are live and sized as given.
                let n = unsafe {
                    libc::recvfrom(
                        fd.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&raw mut from).cast(),
                        &raw mut len,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok((usize::try_from(n).unwrap_or(0), from.sll_pkttype))
            });
            match got {
                Ok(Ok((n, kind))) => {
                    if kind == PACKET_OUTGOING {
                        continue;
                    }
                    if let Some(s) = parse_sender(buf.get(..n).unwrap_or_default()) {
                        return Ok(s);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
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
