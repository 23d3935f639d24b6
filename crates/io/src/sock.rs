//! The server's sockets as io uses them: interface discovery (getifaddrs, if_nametoindex), the
//! per-interface UDP socket on tokio, and the `AF_PACKET` sender opened with the kept
//! capability. The syscalls themselves are leased-sock's, the one crate with `unsafe` code.

use std::io;
use std::net::Ipv4Addr;

use leased_sock::packet::LinkSender;
use leased_sock::udp::Received;

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

/// Opens the UDP socket that serves one interface (SO_BINDTODEVICE, broadcast, IP_PKTINFO: see
/// [`leased_sock::udp::bind_pktinfo`]) on `0.0.0.0:port`.
///
/// Returns the async receive half and a plain non-blocking clone of the same socket for sends
/// (sends never wait and may come from the store's commit thread).
pub(crate) fn bind_udp(
    iface: &str,
    port: u16,
) -> io::Result<(tokio::net::UdpSocket, std::net::UdpSocket)> {
    let std_sock = leased_sock::udp::bind_pktinfo(iface, port)?;
    let send = std_sock.try_clone()?;
    let recv = tokio::net::UdpSocket::from_std(std_sock)?;
    Ok((recv, send))
}

/// Waits for one datagram on `sock` and reads it with its IP_PKTINFO.
pub(crate) async fn recv_pktinfo(
    sock: &tokio::net::UdpSocket,
    buf: &mut [u8],
) -> io::Result<Received> {
    sock.async_io(tokio::io::Interest::READABLE, || {
        leased_sock::udp::recv_pktinfo(sock, buf)
    })
    .await
}

/// The send-only `AF_PACKET` socket for replies to clients that have no address yet
/// ([`leased_sock::packet::LinkSender`]), opened through the helper that keeps CAP_NET_RAW
/// once root is dropped.
#[derive(Debug)]
pub(crate) struct RawSender(LinkSender);

impl RawSender {
    /// Opens the socket; fails with EPERM without CAP_NET_RAW.
    pub(crate) fn open() -> io::Result<Self> {
        LinkSender::open(crate::privileges::socket).map(Self)
    }

    /// Sends `ip_packet` (IPv4 header onwards) to `mac` out of interface `ifindex`.
    pub(crate) fn send(&self, ifindex: u32, mac: [u8; 6], ip_packet: &[u8]) -> io::Result<()> {
        self.0.send(ifindex, mac, ip_packet)
    }
}
