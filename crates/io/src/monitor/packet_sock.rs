//! The passive receive socket of the monitors: `AF_PACKET`/`SOCK_RAW` on one interface
//! ([`leased_sock::packet::SnoopSocket`]) behind a classic BPF filter, so the kernel hands us
//! only IPv4/UDP to port 68 (server → client replies), each frame with its `PACKET_AUXDATA`
//! status: on veth, containers and VMs the checksum of a locally generated frame is not
//! finished yet (CHECKSUM_PARTIAL), such frames are marked `TP_STATUS_CSUMNOTREADY` and must
//! not be checksum-validated (rust-deps.md §2.1: 10 of 10 failed validation without this).

use std::io;

use leased_sock::{Async, packet};
use socket2::SockFilter;

pub(crate) use leased_sock::packet::TP_STATUS_CSUMNOTREADY;

/// `tcpdump -dd 'ip and udp dst port 68'`: IPv4, UDP, not a later fragment, destination 68.
const FILTER: [SockFilter; 11] = [
    SockFilter::new(0x28, 0, 0, 0x0000000c),
    SockFilter::new(0x15, 0, 8, 0x00000800),
    SockFilter::new(0x30, 0, 0, 0x00000017),
    SockFilter::new(0x15, 0, 6, 0x00000011),
    SockFilter::new(0x28, 0, 0, 0x00000014),
    SockFilter::new(0x45, 4, 0, 0x00001fff),
    SockFilter::new(0xb1, 0, 0, 0x0000000e),
    SockFilter::new(0x48, 0, 0, 0x00000010),
    SockFilter::new(0x15, 0, 1, 0x00000044),
    SockFilter::new(0x6, 0, 0, 0x00040000),
    SockFilter::new(0x6, 0, 0, 0x00000000),
];

/// One received frame's facts besides its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameMeta {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// `tp_status` from `PACKET_AUXDATA` (0 when the kernel sent none).
    pub status: u32,
    /// This host sent the frame.
    pub outgoing: bool,
}

/// A packet socket bound to one interface, registered with tokio.
pub(crate) struct PacketSocket {
    sock: Async<packet::SnoopSocket>,
}

impl PacketSocket {
    /// Opens the socket on interface `ifindex` (needs CAP_NET_RAW, kept by the privileges
    /// helper once root is dropped), the filter attached before it receives anything.
    pub(crate) fn open(ifindex: u32) -> io::Result<Self> {
        let sock = packet::SnoopSocket::open(crate::privileges::socket, ifindex, &FILTER)?;
        Ok(Self {
            sock: Async::new(sock)?,
        })
    }

    /// Waits for the next frame and copies it into `buf`.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<FrameMeta> {
        let frame = self.sock.read_with(|s| s.recv(buf)).await?;
        Ok(FrameMeta {
            len: frame.len,
            status: frame.status.unwrap_or(0),
            outgoing: frame.outgoing,
        })
    }
}
