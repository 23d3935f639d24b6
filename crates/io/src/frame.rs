//! IPv4 + UDP headers for the AF_PACKET unicast path.
//!
//! Why we build them ourselves: a client with no address yet cannot be reached through the
//! kernel's UDP stack without ARP (RFC 2131 §4.1), so the reply goes out an `AF_PACKET`
//! `SOCK_DGRAM` socket, where the kernel adds only the Ethernet header. Pure byte work, no
//! syscalls, so it is unit-tested against fixed vectors.

use std::net::SocketAddrV4;

/// Length of an IPv4 header without options.
pub(crate) const IPV4_HEADER_LEN: usize = 20;
/// Length of a UDP header.
pub(crate) const UDP_HEADER_LEN: usize = 8;
/// Time to live of our datagrams (the Linux default).
const TTL: u8 = 64;
/// IP protocol number of UDP.
const PROTO_UDP: u8 = 17;
/// "Don't fragment": a DHCP reply always fits the link MTU, and the kernel sets it too.
const FLAG_DF: u16 = 0x4000;

/// The payload does not fit one IPv4 datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payload of {0} bytes does not fit an IPv4/UDP datagram")]
pub(crate) struct TooLong(pub usize);

/// Writes an IPv4 header, a UDP header and `payload` into `out` (cleared first), with both
/// checksums filled in. `src` and `dst` are the IP addresses and UDP ports.
pub(crate) fn ipv4_udp(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), TooLong> {
    let udp_len =
        u16::try_from(UDP_HEADER_LEN + payload.len()).map_err(|_| TooLong(payload.len()))?;
    let total_len = u16::try_from(IPV4_HEADER_LEN + usize::from(udp_len))
        .map_err(|_| TooLong(payload.len()))?;

    out.clear();
    out.reserve(usize::from(total_len));

    // IPv4 header (RFC 791 §3.1): version 4, IHL 5, no TOS, id 0 with DF set.
    out.extend_from_slice(&[0x45, 0x00]);
    out.extend_from_slice(&total_len.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&FLAG_DF.to_be_bytes());
    out.extend_from_slice(&[TTL, PROTO_UDP, 0, 0]);
    out.extend_from_slice(&src.ip().octets());
    out.extend_from_slice(&dst.ip().octets());
    let ip_sum = checksum(&[out.as_slice()]);
    if let Some(field) = out.get_mut(10..12) {
        field.copy_from_slice(&ip_sum.to_be_bytes());
    }

    // UDP header (RFC 768) with the checksum over the pseudo-header.
    let udp_start = out.len();
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);

    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.ip().octets());
    pseudo[4..8].copy_from_slice(&dst.ip().octets());
    pseudo[9] = PROTO_UDP;
    pseudo[10..].copy_from_slice(&udp_len.to_be_bytes());
    let udp = out.get(udp_start..).unwrap_or_default();
    let mut udp_sum = checksum(&[&pseudo, udp]);
    // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
    if udp_sum == 0 {
        udp_sum = 0xffff;
    }
    if let Some(field) = out.get_mut(udp_start + 6..udp_start + 8) {
        field.copy_from_slice(&udp_sum.to_be_bytes());
    }
    Ok(())
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`.
///
/// Each part is summed as if it started on an even offset, which holds for the uses here (the
/// pseudo-header and the IPv4 header have even lengths).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut words = part.chunks_exact(2);
        for w in words.by_ref() {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The fold above leaves at most 16 bits.
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A straightforward, independent one's-complement sum for cross-checking: byte pairs
    /// taken from one flat buffer, folded at the end.
    fn reference_sum(bytes: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        let mut i = 0;
        while i < bytes.len() {
            let hi = u64::from(bytes[i]);
            let lo = if i + 1 < bytes.len() {
                u64::from(bytes[i + 1])
            } else {
                0
            };
            sum += (hi << 8) | lo;
            i += 2;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    fn build(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        ipv4_udp(
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 67),
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 100), 68),
            payload,
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn fixed_vector() {
        // Expected bytes computed independently (Python, RFC 1071 sum) for this exact packet.
        let out = build(b"hello dhcp");
        let expected: [u8; 38] = [
            0x45, 0x00, 0x00, 0x26, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xae, 0x3d, 198, 18, 0, 1,
            198, 18, 0, 100, //
            0x00, 0x43, 0x00, 0x44, 0x00, 0x12, 0x66, 0xee, //
            b'h', b'e', b'l', b'l', b'o', b' ', b'd', b'h', b'c', b'p',
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn checksums_verify_with_reference_sum() {
        for len in [0usize, 1, 2, 7, 300, 301, 576, 1400] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let out = build(&payload);
            assert_eq!(out.len(), IPV4_HEADER_LEN + UDP_HEADER_LEN + len);
            // A header with a correct checksum sums to all ones.
            assert_eq!(
                reference_sum(&out[..IPV4_HEADER_LEN]),
                0xffff,
                "ip, len {len}"
            );
            let udp = &out[IPV4_HEADER_LEN..];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&out[12..20]);
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            pseudo.extend_from_slice(udp);
            assert_eq!(reference_sum(&pseudo), 0xffff, "udp, len {len}");
            assert_ne!(&udp[6..8], &[0, 0]);
        }
    }

    #[test]
    fn rejects_oversized_payload() {
        let mut out = Vec::new();
        let big = vec![0u8; 65_535];
        let src = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 67);
        assert_eq!(ipv4_udp(src, src, &big, &mut out), Err(TooLong(65_535)));
    }
}
