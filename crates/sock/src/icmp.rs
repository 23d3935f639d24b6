//! A raw ICMP socket (`AF_INET`/`SOCK_RAW`/`IPPROTO_ICMP`, needs `CAP_NET_RAW`): the conflict
//! check's echo for clients behind a relay, where ARP cannot reach. All safe `socket2` calls;
//! the echo bytes and the matching of replies are the caller's.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::Open;

/// A non-blocking raw ICMP socket. It receives every ICMP packet the host gets (IPv4 header
/// included), so callers recognise their own replies.
#[derive(Debug)]
pub struct IcmpSocket {
    sock: Socket,
}

impl IcmpSocket {
    /// Opens the socket through `open` (EPERM without `CAP_NET_RAW`).
    pub fn open(open: impl Open) -> io::Result<Self> {
        let sock = open(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
        sock.set_nonblocking(true)?;
        Ok(Self { sock })
    }

    /// Sends one ICMP message (header onwards; the kernel adds the IPv4 header) to `ip`.
    pub fn send_to(&self, ip: Ipv4Addr, icmp: &[u8]) -> io::Result<()> {
        let sent = self
            .sock
            .send_to(icmp, &SockAddr::from(SocketAddrV4::new(ip, 0)))?;
        if sent != icmp.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short ICMP send"));
        }
        Ok(())
    }

    /// Reads one received packet (IPv4 header onwards) into `buf`; `WouldBlock` when none is
    /// queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.sock).read(buf)
    }
}

impl AsRawFd for IcmpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsFd for IcmpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
