//! The passive receive socket of the monitors: `AF_PACKET`/`SOCK_RAW` on one interface, a classic
//! BPF filter so the kernel hands us only IPv4/UDP to port 68 (server → client replies), and
//! `PACKET_AUXDATA`, because on veth, containers and VMs the checksum of a locally generated
//! frame is not finished yet (CHECKSUM_PARTIAL): such frames are marked
//! `TP_STATUS_CSUMNOTREADY` and must not be checksum-validated (rust-deps.md §2.1: 10 of 10 failed
//! validation without this). Every `unsafe` block carries its `SAFETY:` note.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// `SOL_PACKET` option: deliver a `tpacket_auxdata` control message with every frame.
const PACKET_AUXDATA: libc::c_int = 8;
/// `tpacket_auxdata.tp_status` bit: the checksum has not been computed yet (offload).
pub(crate) const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
/// `sll_pkttype` of frames this host sent (we never judge our own replies).
const PACKET_OUTGOING: u8 = 4;
/// `SO_ATTACH_FILTER` (asm-generic).
const SO_ATTACH_FILTER: libc::c_int = 26;
const ETH_P_IP: u16 = 0x0800;

/// `tcpdump -dd 'ip and udp dst port 68'`: IPv4, UDP, not a later fragment, destination 68.
const FILTER: [(u16, u8, u8, u32); 11] = [
    (0x28, 0, 0, 0x0000000c),
    (0x15, 0, 8, 0x00000800),
    (0x30, 0, 0, 0x00000017),
    (0x15, 0, 6, 0x00000011),
    (0x28, 0, 0, 0x00000014),
    (0x45, 4, 0, 0x00001fff),
    (0xb1, 0, 0, 0x0000000e),
    (0x48, 0, 0, 0x00000010),
    (0x15, 0, 1, 0x00000044),
    (0x6, 0, 0, 0x00040000),
    (0x6, 0, 0, 0x00000000),
];

/// `struct tpacket_auxdata` (linux/if_packet.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct AuxData {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

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
    fd: AsyncFd<OwnedFd>,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl PacketSocket {
    /// Opens the socket on interface `ifindex` (needs CAP_NET_RAW), filter attached before bind
    /// so no unfiltered frame is ever queued.
    pub(crate) fn open(ifindex: u32) -> io::Result<Self> {
        let proto = ETH_P_IP.to_be();
        // Through the helper that keeps CAP_NET_RAW once root is dropped.
        let fd = crate::privileges::raw_socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            libc::c_int::from(proto),
        )?;

        let mut prog: Vec<libc::sock_filter> = FILTER
            .iter()
            .map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
            .collect();
        let fprog = libc::sock_fprog {
            len: FILTER.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies it.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_ATTACH_FILTER,
                (&raw const fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        })?;
        let one: libc::c_int = 1;
        // SAFETY: a c_int option value of the size given.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_AUXDATA,
                (&raw const one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = i32::try_from(ifindex).unwrap_or(0);
        // SAFETY: `sll` is a valid sockaddr_ll of the size given.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        // SAFETY: `fd` is an open descriptor owned by the AsyncFd from here on; OwnedFd always
        // returns that same descriptor from `as_raw_fd`.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// Waits for the next frame and copies it into `buf`.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<FrameMeta> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_frame(fd.get_ref().as_raw_fd(), buf)) {
                Ok(res) => return res,
                Err(_would_block) => continue,
            }
        }
    }
}

fn recv_frame(fd: libc::c_int, buf: &mut [u8]) -> io::Result<FrameMeta> {
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: sockaddr_ll is plain data; zeroed is valid.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is valid, the pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut from).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` refers to a live buffer of the length given.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: walking the control messages the kernel wrote into `control`, within
    // `msg_controllen`, with the libc macros made for it; the aux data is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                let aux: AuxData = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                status = aux.tp_status;
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok(FrameMeta {
        len: usize::try_from(n).unwrap_or(0).min(buf.len()),
        status,
        outgoing: from.sll_pkttype == PACKET_OUTGOING,
    })
}
