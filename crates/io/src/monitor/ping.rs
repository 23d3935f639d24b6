//! One ICMP echo on a raw socket (needs CAP_NET_RAW): does anything answer at this address?
//! Used by the conflict check for clients behind a relay, where ARP cannot reach.
//!
//! Each check opens its own socket and recognises its reply by the echo identifier and the
//! source address, so concurrent checks never see each other's answers. The socket is
//! leased-sock's; here are the echo bytes and the wait.

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use leased_sock::Async;
use leased_sock::icmp::IcmpSocket;

/// Echo identifiers, one per check.
static NEXT_ID: AtomicU16 = AtomicU16::new(0x4c44);

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let hi = pair.first().copied().unwrap_or(0);
        let lo = pair.get(1).copied().unwrap_or(0);
        sum += u32::from(u16::from_be_bytes([hi, lo]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request with identifier `id` (sequence 1, 16 bytes of payload).
pub(crate) fn echo_request(id: u16) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(b"leased-conflict!");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// True when `datagram` (an IPv4 packet as a raw ICMP socket delivers it) is the echo reply
/// from `from` to our request `id`. Malformed input is simply not a match.
pub(crate) fn is_reply(datagram: &[u8], from: Ipv4Addr, id: u16) -> bool {
    let Some(first) = datagram.first() else {
        return false;
    };
    let ihl = usize::from(first & 0x0f) * 4;
    let src = datagram
        .get(12..16)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(Ipv4Addr::from);
    let icmp = datagram.get(ihl..).unwrap_or_default();
    first >> 4 == 4
        && src == Some(from)
        && icmp.first() == Some(&0)
        && icmp.get(4..6) == Some(&id.to_be_bytes()[..])
}

/// Sends one echo request to `ip` and waits up to `timeout` for its reply: `Ok(true)` when
/// something answered.
pub(crate) async fn answers(ip: Ipv4Addr, timeout: Duration) -> io::Result<bool> {
    // Through the helper that keeps CAP_NET_RAW once root is dropped.
    let sock = IcmpSocket::open(crate::privileges::socket)?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    sock.send_to(ip, &echo_request(id))?;
    let sock = Async::new(sock)?;
    let wait = async {
        let mut buf = [0u8; 1500];
        loop {
            let n = sock.read_with(|s| s.recv(&mut buf)).await?;
            if is_reply(buf.get(..n).unwrap_or_default(), ip, id) {
                return Ok::<bool, io::Error>(true);
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn request_checksums_and_replies_are_matched_by_source_and_id() {
        let req = echo_request(7);
        assert_eq!(checksum(&req), 0, "a correct checksum sums to zero");
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 9, 198, 18, 0, 1,
        ];
        let mut reply = req.clone();
        reply[0] = 0;
        ip.extend_from_slice(&reply);
        let from = Ipv4Addr::new(198, 18, 0, 9);
        assert!(is_reply(&ip, from, 7));
        assert!(!is_reply(&ip, from, 8), "another check's id");
        assert!(
            !is_reply(&ip, Ipv4Addr::new(198, 18, 0, 10), 7),
            "another host"
        );
        for cut in 0..ip.len() - 10 {
            let _ = is_reply(&ip[..cut], from, 7);
        }
        assert!(!is_reply(&[], from, 7));
    }

    #[tokio::test]
    async fn loopback_answers() {
        match answers(Ipv4Addr::LOCALHOST, Duration::from_secs(1)).await {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                println!("SKIP: ICMP echo test needs CAP_NET_RAW ({e})");
            }
            r => {
                // Loopback only (the network rule): 127.0.0.1 answers.
                assert!(r.unwrap(), "127.0.0.1 must answer");
            }
        }
    }
}
