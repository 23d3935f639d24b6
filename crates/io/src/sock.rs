//! Every syscall of the server: the per-interface UDP sockets (SO_BINDTODEVICE, IP_PKTINFO),
//! interface discovery, and the send-only `AF_PACKET` socket for replies to clients that have
//! no address yet. The one `unsafe` block lives here, with its `SAFETY:` note.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// One IPv4 address configured on a system interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SysAddr {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    pub addr: Ipv4Addr,
    /// Prefix length of the address's network.
    pub prefix: u8,
}

/// Lists the IPv4 addresses of every interface (getifaddrs), in system order.
pub(crate) fn system_addrs() -> io::Result<Vec<SysAddr>> {
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(io::Error::from)? {
        let Some(addr) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) else {
            continue;
        };
        let prefix = ifa
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in())
            .map_or(32, |m| {
                // A valid netmask is contiguous ones; count them.
                u8::try_from(m.ip().to_bits().count_ones()).unwrap_or(32)
            });
        out.push(SysAddr {
            name: ifa.interface_name.clone(),
            addr: addr.ip(),
            prefix,
        });
    }
    Ok(out)
}

/// The kernel index of interface `name` (for `AF_PACKET` sends).
pub(crate) fn if_index(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
}

/// Opens the UDP socket that serves one interface: bound to `0.0.0.0:port`, limited to `iface`
/// by SO_BINDTODEVICE (so each socket sees only its link's broadcasts), allowed to broadcast,
/// and asking for IP_PKTINFO so each datagram tells its destination and our local address.
///
/// Returns the async receive half and a plain non-blocking clone of the same socket for sends
/// (sends never wait and may come from the store's commit thread).
pub(crate) fn bind_udp(
    iface: &str,
    port: u16,
) -> io::Result<(tokio::net::UdpSocket, std::net::UdpSocket)> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    sock.bind_device(Some(iface.as_bytes()))
        .map_err(|e| with_context(e, format!("SO_BINDTODEVICE {iface}")))?;
    sock.set_broadcast(true)?;
    setsockopt(&sock, sockopt::Ipv4PacketInfo, &true)
        .map_err(|e| with_context(e.into(), "IP_PKTINFO".to_string()))?;
    sock.set_nonblocking(true)?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    sock.bind(&SockAddr::from(addr))
        .map_err(|e| with_context(e, format!("bind 0.0.0.0:{port} on {iface}")))?;
    let std_sock: std::net::UdpSocket = sock.into();
    let send = std_sock.try_clone()?;
    let recv = tokio::net::UdpSocket::from_std(std_sock)?;
    Ok((recv, send))
}

/// Adds what we were doing to an OS error, keeping its kind (so EACCES stays recognisable).
fn with_context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// One datagram's envelope, from `recvmsg` and its IP_PKTINFO control message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer.
    pub truncated: bool,
    /// Sender address and port.
    pub src: Option<SocketAddrV4>,
    /// IP destination of the datagram (`ipi_addr`): 255.255.255.255 for a broadcast.
    pub dst: Option<Ipv4Addr>,
    /// Our address the kernel would answer from (`ipi_spec_dst`).
    pub local: Option<Ipv4Addr>,
}

/// Waits for one datagram on `sock` and reads it with its IP_PKTINFO.
pub(crate) async fn recv_pktinfo(
    sock: &tokio::net::UdpSocket,
    buf: &mut [u8],
) -> io::Result<Received> {
    let fd = sock.as_raw_fd();
    sock.async_io(tokio::io::Interest::READABLE, || {
        let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
            .map_err(io::Error::from)?;
        let mut rx = Received {
            len: msg.bytes,
            truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
            src: msg.address.map(|a| SocketAddrV4::new(a.ip(), a.port())),
            dst: None,
            local: None,
        };
        // A truncated control buffer only loses the pktinfo; the datagram is still usable.
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
    })
    .await
}

/// `ETH_P_IP` in network byte order, as `sockaddr_ll.sll_protocol` wants it.
const ETH_P_IP_BE: u16 = (libc::ETH_P_IP as u16).to_be();

/// A send-only `AF_PACKET`/`SOCK_DGRAM` socket (as systemd's sd-dhcp-server does): we hand it
/// an IPv4 packet and a destination MAC, the kernel adds the Ethernet header. Needs
/// CAP_NET_RAW. Never bound, so it receives nothing.
#[derive(Debug)]
pub(crate) struct RawSender {
    fd: OwnedFd,
}

impl RawSender {
    /// Opens the socket; fails with EPERM without CAP_NET_RAW.
    pub(crate) fn open() -> io::Result<Self> {
        // Through the helper that keeps CAP_NET_RAW once root is dropped.
        let sock = crate::privileges::socket(Domain::PACKET, Type::DGRAM, None)?;
        sock.set_nonblocking(true)?;
        Ok(Self { fd: sock.into() })
    }

    /// Sends `ip_packet` (IPv4 header onwards) to `mac` out of interface `ifindex`.
    pub(crate) fn send(&self, ifindex: u32, mac: [u8; 6], ip_packet: &[u8]) -> io::Result<()> {
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
        let mut sll_addr = [0u8; 8];
        sll_addr[..6].copy_from_slice(&mac);
        let addr = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: ETH_P_IP_BE,
            sll_ifindex: ifindex,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 6,
            sll_addr,
        };
        // SAFETY: `self.fd` is an open socket we own for the whole call; `ip_packet` is a live
        // slice whose pointer and length are passed together; `addr` is a fully initialised
        // `sockaddr_ll` on our stack, and the length passed is exactly its size. sendto reads
        // these buffers only for the duration of the call and keeps no pointer to them.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                ip_packet.as_ptr().cast(),
                ip_packet.len(),
                0,
                (&raw const addr).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if usize::try_from(n).ok() != Some(ip_packet.len()) {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short AF_PACKET send",
            ));
        }
        Ok(())
    }
}
