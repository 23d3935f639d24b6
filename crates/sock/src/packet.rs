//! `AF_PACKET` sockets (all need `CAP_NET_RAW`):
//! - [`LinkSender`]: an IPv4 packet to a MAC out of an interface, the kernel adding the
//!   Ethernet header (`SOCK_DGRAM`, as systemd's sd-dhcp-server does) — the reply to a client
//!   that has no address yet, and the rogue-server probe;
//! - [`ArpSocket`]: every ARP frame on one interface in, broadcast ARP out;
//! - [`SnoopSocket`]: the IPv4 frames on one interface a classic BPF filter lets through, each
//!   with its `PACKET_AUXDATA`, because on veth, containers and VMs the checksum of a locally
//!   generated frame is not finished yet (`TP_STATUS_CSUMNOTREADY`) and must not be validated.
//!
//! Receiving sockets are opened with protocol 0, which queues nothing, and start receiving only
//! when bound to their interface and EtherType (after the filter is attached): no frame of
//! another interface or protocol is ever queued on them.

use std::io::{self, IoSliceMut};
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::sys::socket::{
    ControlMessageOwned, LinkAddr, MsgFlags, SockaddrLike, bind, recvfrom, recvmsg, sendto,
};
use socket2::{Domain, SockFilter, Socket, Type};

use crate::Open;

/// `ETH_P_IP`.
const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_ARP`.
const ETH_P_ARP: u16 = 0x0806;
/// `sll_pkttype` of frames this host sent.
const PACKET_OUTGOING: u8 = 4;
/// `SOL_PACKET` option: deliver a `tpacket_auxdata` control message with every frame.
const PACKET_AUXDATA: libc::c_int = 8;
/// `tpacket_auxdata.tp_status` bit: the checksum has not been computed yet (offload).
pub const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;

// The SAFETY note of `link_addr` relies on this layout: 2+2+4+2+1+1+8 bytes, no padding.
const _: () = assert!(size_of::<libc::sockaddr_ll>() == 20);

/// An `AF_PACKET` address: interface `ifindex`, EtherType `ethertype`, and for a send the
/// destination `mac`.
#[allow(unsafe_code)]
fn link_addr(ifindex: u32, ethertype: u16, mac: Option<[u8; 6]>) -> io::Result<LinkAddr> {
    let sll_ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))?;
    let mut sll_addr = [0u8; 8];
    let mut sll_halen = 0;
    if let Some(mac) = mac {
        sll_addr[..6].copy_from_slice(&mac);
        sll_halen = 6;
    }
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ethertype.to_be(),
        sll_ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen,
        sll_addr,
    };
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `from_raw` reads `len` bytes at the pointer. It points at `sll`, a local that
    // lives across the call and is fully initialised (every field given by value above, and
    // `sockaddr_ll` has no padding, asserted at compile time above), and `len` is
    // exactly its size. `from_raw` copies the bytes into the `LinkAddr` it returns (an
    // unaligned read, so alignment does not matter) and keeps no pointer to `sll`.
    let addr = unsafe { LinkAddr::from_raw((&raw const sll).cast(), Some(len)) };
    addr.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an AF_PACKET address"))
}

/// `setsockopt(fd, level, name, &value, sizeof(int))`, for integer options `nix` does not know.
#[allow(unsafe_code)]
fn set_int_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is a borrowed, hence open, descriptor for the whole call. The option value
    // pointer points at `value`, an initialised c_int local that outlives the call, and the
    // length passed is exactly its size; the kernel only reads that many bytes from it during
    // the call and keeps no pointer. The return value is checked below.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One received frame's facts besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// This host sent the frame (`PACKET_OUTGOING`). A socket bound to one EtherType is
    /// normally handed received frames only; callers still skip these, on the kernel's word.
    pub outgoing: bool,
    /// `tp_status` of the frame's `PACKET_AUXDATA` ([`TP_STATUS_CSUMNOTREADY`]); `None` when
    /// the kernel sent none (always for [`ArpSocket`]).
    pub status: Option<u32>,
}

fn is_outgoing(from: Option<LinkAddr>) -> bool {
    from.is_some_and(|a| a.pkttype() == PACKET_OUTGOING)
}

/// A send-only `AF_PACKET`/`SOCK_DGRAM` socket: we hand it an IPv4 packet and a destination
/// MAC, the kernel adds the Ethernet header. Never bound, so it receives nothing.
#[derive(Debug)]
pub struct LinkSender {
    sock: Socket,
}

impl LinkSender {
    /// Opens the socket through `open` (EPERM without `CAP_NET_RAW`).
    pub fn open(open: impl Open) -> io::Result<Self> {
        let sock = open(Domain::PACKET, Type::DGRAM, None)?;
        sock.set_nonblocking(true)?;
        Ok(Self { sock })
    }

    /// Sends `ip_packet` (IPv4 header onwards) to `mac` out of interface `ifindex`.
    pub fn send(&self, ifindex: u32, mac: [u8; 6], ip_packet: &[u8]) -> io::Result<()> {
        let to = link_addr(ifindex, ETH_P_IP, Some(mac))?;
        let sent = sendto(self.sock.as_raw_fd(), ip_packet, &to, MsgFlags::empty())?;
        if sent != ip_packet.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short AF_PACKET send",
            ));
        }
        Ok(())
    }
}

/// An `AF_PACKET`/`SOCK_DGRAM` socket bound to one interface for `ETH_P_ARP`: reads every ARP
/// payload other hosts send on the link, sends broadcast ARP.
#[derive(Debug)]
pub struct ArpSocket {
    sock: Socket,
    ifindex: u32,
}

impl ArpSocket {
    /// Opens the socket through `open` and binds it to interface `ifindex`.
    pub fn open(open: impl Open, ifindex: u32) -> io::Result<Self> {
        let sock = open(Domain::PACKET, Type::DGRAM, None)?;
        sock.set_nonblocking(true)?;
        bind(sock.as_raw_fd(), &link_addr(ifindex, ETH_P_ARP, None)?)?;
        Ok(Self { sock, ifindex })
    }

    /// Broadcasts one ARP payload (from the hardware type on) on the interface. Does not wait:
    /// a full queue is an error.
    pub fn broadcast(&self, payload: &[u8]) -> io::Result<()> {
        let to = link_addr(self.ifindex, ETH_P_ARP, Some([0xff; 6]))?;
        sendto(self.sock.as_raw_fd(), payload, &to, MsgFlags::empty())?;
        Ok(())
    }

    /// Reads one ARP payload into `buf` (cut to its length); `WouldBlock` when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Frame> {
        let cap = buf.len();
        let (n, from) = recvfrom::<LinkAddr>(self.sock.as_raw_fd(), buf)?;
        Ok(Frame {
            len: n.min(cap),
            outgoing: is_outgoing(from),
            status: None,
        })
    }
}

/// An `AF_PACKET`/`SOCK_RAW` socket bound to one interface for `ETH_P_IP`, behind a classic BPF
/// filter: whole Ethernet frames in, each with its `PACKET_AUXDATA` status.
#[derive(Debug)]
pub struct SnoopSocket {
    sock: Socket,
}

impl SnoopSocket {
    /// Opens the socket through `open`, attaches `filter` (a program as `tcpdump -dd` prints
    /// it, run on the Ethernet frame), asks for `PACKET_AUXDATA`, then binds to `ifindex`.
    pub fn open(open: impl Open, ifindex: u32, filter: &[SockFilter]) -> io::Result<Self> {
        let sock = open(Domain::PACKET, Type::RAW, None)?;
        sock.set_nonblocking(true)?;
        sock.attach_filter(filter)?;
        set_int_option(sock.as_fd(), libc::SOL_PACKET, PACKET_AUXDATA, 1)?;
        bind(sock.as_raw_fd(), &link_addr(ifindex, ETH_P_IP, None)?)?;
        Ok(Self { sock })
    }

    /// Reads one frame into `buf` (cut to its length); `WouldBlock` when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Frame> {
        let cap = buf.len();
        let mut cmsg = nix::cmsg_space!(libc::tpacket_auxdata);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<LinkAddr>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )?;
        let mut status = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::Unknown(u) = c
                    && u.cmsg_header.cmsg_level == libc::SOL_PACKET
                    && u.cmsg_header.cmsg_type == PACKET_AUXDATA
                {
                    // `tp_status` is the first field of `struct tpacket_auxdata`.
                    status = u
                        .data_bytes
                        .get(..4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(u32::from_ne_bytes);
                }
            }
        }
        Ok(Frame {
            len: msg.bytes.min(cap),
            outgoing: is_outgoing(msg.address),
            status,
        })
    }
}

macro_rules! fd_of {
    ($($t:ty),*) => {$(
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.sock.as_raw_fd()
            }
        }
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.sock.as_fd()
            }
        }
    )*};
}

fd_of!(LinkSender, ArpSocket, SnoopSocket);
