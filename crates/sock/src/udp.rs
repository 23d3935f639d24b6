//! The UDP socket that serves one interface, and its receive: every datagram with its
//! IP_PKTINFO, which says whether it was a broadcast and which of our addresses the kernel
//! would answer from. A DHCP server needs both (a client without an address broadcasts; the
//! reply's server identifier is the receiving link's address). All safe `nix`/`socket2` calls.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::with_context;

/// The kernel receive buffer asked for on a serving socket. The default (about 200 KB, a few
/// hundred requests) overflows in a few milliseconds of a boot storm whenever the server's
/// task is briefly busy (a commit, a partner batch, a reload): the kernel then drops requests
/// before the server can put REQUESTs ahead of DISCOVERs. 4 MiB holds thousands; it is kernel
/// memory, used only while full.
pub const RECV_BUFFER: usize = 4 << 20;

/// Opens the UDP socket that serves one interface: bound to `0.0.0.0:port`, limited to `iface`
/// by SO_BINDTODEVICE (so each socket sees only its link's broadcasts), allowed to broadcast,
/// SO_REUSEADDR, non-blocking, a [`RECV_BUFFER`] receive buffer (SO_RCVBUFFORCE while the
/// process may, else SO_RCVBUF within `net.core.rmem_max`), and asking for IP_PKTINFO so
/// [`recv_pktinfo`] can tell each datagram's destination and our local address.
pub fn bind_pktinfo(iface: &str, port: u16) -> io::Result<std::net::UdpSocket> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    if setsockopt(&sock, sockopt::RcvBufForce, &RECV_BUFFER).is_err() {
        // Without CAP_NET_ADMIN: as much as the system allows; the default is no error.
        let _ = sock.set_recv_buffer_size(RECV_BUFFER);
    }
    sock.bind_device(Some(iface.as_bytes()))
        .map_err(|e| with_context(e, format_args!("SO_BINDTODEVICE {iface}")))?;
    sock.set_broadcast(true)?;
    setsockopt(&sock, sockopt::Ipv4PacketInfo, &true)
        .map_err(|e| with_context(e.into(), "IP_PKTINFO"))?;
    sock.set_nonblocking(true)?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    sock.bind(&SockAddr::from(addr))
        .map_err(|e| with_context(e, format_args!("bind 0.0.0.0:{port} on {iface}")))?;
    Ok(sock.into())
}

/// One datagram's envelope, from `recvmsg` and its IP_PKTINFO control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer (the rest is lost).
    pub truncated: bool,
    /// Sender address and port.
    pub src: Option<SocketAddrV4>,
    /// IP destination of the datagram (`ipi_addr`): 255.255.255.255 for a broadcast.
    pub dst: Option<Ipv4Addr>,
    /// Our address the kernel would answer from (`ipi_spec_dst`); `None` when it has none.
    pub local: Option<Ipv4Addr>,
}

/// Reads one datagram from `sock` (an IPv4 UDP socket with IP_PKTINFO on, e.g. from
/// [`bind_pktinfo`]) into `buf`, with its envelope. Does not wait on a non-blocking socket:
/// no datagram is a `WouldBlock` error. A control buffer too short for the pktinfo only loses
/// `dst` and `local`; the datagram is still returned.
pub fn recv_pktinfo(sock: &impl AsFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn>(
        sock.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let mut rx = Received {
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        src: msg.address.map(|a| SocketAddrV4::new(a.ip(), a.port())),
        dst: None,
        local: None,
    };
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                rx.dst = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
                let spec = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
                rx.local = (!spec.is_unspecified()).then_some(spec);
            }
        }
    }
    Ok(rx)
}
