//! What runs unprivileged: the IP_PKTINFO socket on 127.0.0.1, and the contract of [`Open`]
//! for the sockets that need CAP_NET_RAW (what they ask for, and that a refusal comes back as
//! the caller's error). Traffic stays on loopback; every wait is bounded.
#![allow(clippy::unwrap_used)]

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use leased_sock::icmp::IcmpSocket;
use leased_sock::packet::{ArpSocket, LinkSender, SnoopSocket};
use leased_sock::udp::{Received, bind_pktinfo, recv_pktinfo};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

/// Retries a non-blocking receive until it has something, for at most 5 s.
fn recv_within(sock: &UdpSocket, buf: &mut [u8]) -> Received {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match recv_pktinfo(sock, buf) {
            Ok(rx) => return rx,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("no datagram within 5 s: {e}"),
        }
    }
}

/// A serving socket holds a boot storm's burst: as root (CI) the full 4 MiB; otherwise at least
/// what the system allows without privilege.
#[test]
fn a_serving_socket_gets_a_large_receive_buffer() {
    let sock = socket2::Socket::from(bind_pktinfo("lo", 0).unwrap());
    let got = sock.recv_buffer_size().unwrap();
    if nix::unistd::geteuid().is_root() {
        // The kernel reports twice the size asked for (its bookkeeping share).
        assert!(got >= leased_sock::udp::RECV_BUFFER, "receive buffer {got}");
    } else {
        assert!(got > 0);
    }
}

#[test]
fn pktinfo_names_destination_and_local_address() {
    let sock = bind_pktinfo("lo", 0).unwrap();
    let port = sock.local_addr().unwrap().port();
    assert!(
        sock.local_addr().unwrap().ip().is_unspecified(),
        "bound to 0.0.0.0"
    );
    let mut buf = [0u8; 64];
    let empty = recv_pktinfo(&sock, &mut buf).unwrap_err();
    assert_eq!(
        empty.kind(),
        io::ErrorKind::WouldBlock,
        "non-blocking: {empty}"
    );

    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    peer.send_to(b"hello pktinfo", to).unwrap();
    let rx = recv_within(&sock, &mut buf);
    assert_eq!(&buf[..rx.len], b"hello pktinfo");
    assert!(!rx.truncated);
    assert_eq!(
        rx.src.map(std::net::SocketAddr::V4),
        Some(peer.local_addr().unwrap())
    );
    assert_eq!(rx.dst, Some(Ipv4Addr::LOCALHOST));
    assert_eq!(rx.local, Some(Ipv4Addr::LOCALHOST));

    // Longer than the buffer: the envelope says so, and what fits is kept.
    let long = [0x5au8; 100];
    peer.send_to(&long, to).unwrap();
    let mut small = [0u8; 10];
    let rx = recv_within(&sock, &mut small);
    assert!(rx.truncated);
    assert_eq!(rx.len, 10);
    assert_eq!(small, [0x5a; 10]);
}

#[test]
fn pktinfo_socket_is_limited_to_its_interface() {
    // SO_BINDTODEVICE: a socket on a missing interface cannot exist.
    let e = bind_pktinfo("no-such-if0", 0).unwrap_err();
    assert!(e.to_string().contains("SO_BINDTODEVICE no-such-if0"), "{e}");
}

#[test]
fn raw_sockets_are_opened_through_the_callers_opener() {
    let asked = Mutex::new(Vec::new());
    let refuse = |d: Domain, t: Type, p: Option<Protocol>| -> io::Result<Socket> {
        asked.lock().unwrap().push((d, t, p));
        Err(io::Error::from_raw_os_error(libc::EPERM))
    };
    let kinds = [
        LinkSender::open(refuse).unwrap_err().kind(),
        ArpSocket::open(refuse, 1).unwrap_err().kind(),
        SnoopSocket::open(refuse, 1, &[SockFilter::new(0x6, 0, 0, 0)])
            .unwrap_err()
            .kind(),
        IcmpSocket::open(refuse).unwrap_err().kind(),
    ];
    assert_eq!(kinds, [io::ErrorKind::PermissionDenied; 4]);
    // Receiving packet sockets are opened with protocol 0 (nothing queued before the bind).
    assert_eq!(
        *asked.lock().unwrap(),
        vec![
            (Domain::PACKET, Type::DGRAM, None),
            (Domain::PACKET, Type::DGRAM, None),
            (Domain::PACKET, Type::RAW, None),
            (Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)),
        ]
    );
}
