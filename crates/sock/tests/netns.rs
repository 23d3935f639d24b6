//! The sockets that need root, on a real link: two network namespaces this test creates
//! (`ls-<pid>-<n>-a` ⇄ `ls-<pid>-<n>-b`) joined by a veth pair, addressed in 198.19.77.0/24,
//! deleted when the test ends. Sockets are opened on a thread that has entered the namespace
//! (`setns`), which is where a socket lives; they are used from the test thread after that.
//!
//! Without root a test prints `SKIP: reason` and passes; with `CI=true` it fails instead.
//! Every wait is bounded (5 s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use leased_sock::Async;
use leased_sock::icmp::IcmpSocket;
use leased_sock::neigh::{self, NUD_PERMANENT};
use leased_sock::packet::{ArpSocket, LinkSender, SnoopSocket, TP_STATUS_CSUMNOTREADY};
use leased_sock::udp::{bind_pktinfo, recv_pktinfo};
use nix::sched::{CloneFlags, setns};
use socket2::{SockFilter, Socket};

const A_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 77, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 77, 2);
const A_MAC: [u8; 6] = [0x02, 0x53, 0x4f, 0x43, 0x4b, 0x01];
const B_MAC: [u8; 6] = [0x02, 0x53, 0x4f, 0x43, 0x4b, 0x02];
const WAIT: Duration = Duration::from_secs(5);

/// `tcpdump -dd 'ip and udp dst port 68'` (what leased's rogue-server monitor attaches).
const UDP_DST_68: [SockFilter; 11] = [
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

static PAIRS: AtomicU32 = AtomicU32::new(0);

/// True when the test may run; otherwise prints `SKIP: …`, or panics under `CI=true`.
fn may_run(test: &str) -> bool {
    let mut why = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        why.push("not running as root (network namespaces and AF_PACKET need root)");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        why.push("no `ip` binary (iproute2)");
    }
    if why.is_empty() {
        return true;
    }
    let reason = why.join("; ");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: prerequisites missing under CI=true: {reason}");
    }
    eprintln!("SKIP: {test}: {reason}");
    false
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Two namespaces joined by `sa0` (A, 198.19.77.1) ⇄ `sb0` (B, 198.19.77.2); deleted on drop.
struct Pair {
    a: String,
    b: String,
    /// Index of `sa0` inside A.
    a_index: u32,
    /// Index of `sb0` inside B.
    b_index: u32,
}

impl Pair {
    fn new() -> Pair {
        sweep_stale();
        let n = PAIRS.fetch_add(1, Ordering::SeqCst);
        let base = format!("ls-{}-{n}", std::process::id());
        let mut pair = Pair {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
            a_index: 0,
            b_index: 0,
        };
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "link", "add", "sa0", "netns", &pair.a, "type", "veth", "peer", "name", "sb0", "netns",
            &pair.b,
        ]);
        for (ns, dev, mac, addr) in [(&pair.a, "sa0", A_MAC, A_IP), (&pair.b, "sb0", B_MAC, B_IP)] {
            ip(&["-n", ns, "link", "set", dev, "address", &mac_text(mac)]);
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        pair.wait_carrier();
        pair.a_index = in_ns(&pair.a, || nix::net::if_::if_nametoindex("sa0")).unwrap();
        pair.b_index = in_ns(&pair.b, || nix::net::if_::if_nametoindex("sb0")).unwrap();
        pair
    }

    fn wait_carrier(&self) {
        let deadline = Instant::now() + WAIT;
        for (ns, dev) in [(&self.a, "sa0"), (&self.b, "sb0")] {
            loop {
                let out = Command::new("ip")
                    .args(["-n", ns, "link", "show", dev])
                    .output()
                    .expect("ip link show");
                if String::from_utf8_lossy(&out.stdout).contains("LOWER_UP") {
                    break;
                }
                assert!(Instant::now() < deadline, "{dev} in {ns} never came up");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Deletes `ls-<pid>-…` namespaces of test processes that died before cleaning up.
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = ns
            .strip_prefix("ls-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread inside namespace `ns`; what it opens lives there.
fn in_ns<R: Send>(ns: &str, f: impl FnOnce() -> R + Send) -> R {
    let handle = File::open(format!("/run/netns/{ns}")).expect("namespace handle");
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(&handle, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP datagram (UDP checksum 0: none, allowed over IPv4).
fn ipv4_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

#[test]
fn pktinfo_tells_a_broadcast_from_a_unicast() {
    if !may_run("pktinfo_tells_a_broadcast_from_a_unicast") {
        return;
    }
    let pair = Pair::new();
    let server = in_ns(&pair.a, || bind_pktinfo("sa0", 6767)).unwrap();
    let client = in_ns(&pair.b, || {
        let s = UdpSocket::bind(SocketAddrV4::new(B_IP, 6868))?;
        s.set_broadcast(true)?;
        io::Result::Ok(s)
    })
    .unwrap();
    client
        .send_to(b"broadcast", SocketAddrV4::new(Ipv4Addr::BROADCAST, 6767))
        .unwrap();
    client
        .send_to(b"unicast", SocketAddrV4::new(A_IP, 6767))
        .unwrap();

    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + WAIT;
    while got.len() < 2 {
        match recv_pktinfo(&server, &mut buf) {
            Ok(rx) => got.push((buf[..rx.len].to_vec(), rx)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "only {} datagrams", got.len());
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
    for (_, rx) in &got {
        assert_eq!(rx.src, Some(SocketAddrV4::new(B_IP, 6868)));
        assert_eq!(rx.local, Some(A_IP), "the link's address answers");
    }
    assert_eq!(got[0].0, b"broadcast");
    assert_eq!(got[0].1.dst, Some(Ipv4Addr::BROADCAST));
    assert_eq!(got[1].0, b"unicast");
    assert_eq!(got[1].1.dst, Some(A_IP));
}

#[test]
fn link_sender_delivers_to_the_mac_it_is_given() {
    if !may_run("link_sender_delivers_to_the_mac_it_is_given") {
        return;
    }
    let pair = Pair::new();
    let sender = in_ns(&pair.a, || LinkSender::open(Socket::new)).unwrap();
    let rx = in_ns(&pair.b, || UdpSocket::bind(SocketAddrV4::new(B_IP, 6800))).unwrap();
    rx.set_read_timeout(Some(WAIT)).unwrap();
    let src = SocketAddrV4::new(A_IP, 6700);
    let dst = SocketAddrV4::new(B_IP, 6800);
    // No ARP anywhere: the MAC is ours to give. A frame to another MAC is not B's to take.
    sender
        .send(
            pair.a_index,
            [0x02, 0, 0, 0, 0, 0x99],
            &ipv4_udp(src, dst, b"wrong"),
        )
        .unwrap();
    sender
        .send(pair.a_index, B_MAC, &ipv4_udp(src, dst, b"right"))
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"right");
    assert_eq!(from, std::net::SocketAddr::V4(src));

    let e = sender.send(u32::MAX, B_MAC, b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
}

#[test]
fn arp_probe_is_answered_and_never_heard_as_someone_elses() {
    if !may_run("arp_probe_is_answered_and_never_heard_as_someone_elses") {
        return;
    }
    let pair = Pair::new();
    let rt = runtime();
    rt.block_on(async {
        let sock = in_ns(&pair.a, || ArpSocket::open(Socket::new, pair.a_index)).unwrap();
        let sock = Async::new(sock).unwrap();
        // RFC 5227 probe for B's address: sender IP 0.0.0.0, target MAC zero.
        let mut probe = vec![0, 1, 8, 0, 6, 4, 0, 1];
        probe.extend_from_slice(&A_MAC);
        probe.extend_from_slice(&[0; 10]);
        probe.extend_from_slice(&B_IP.octets());
        sock.get_ref().broadcast(&probe).unwrap();

        let mut buf = [0u8; 256];
        let deadline = tokio::time::Instant::now() + WAIT;
        let reply = loop {
            let frame = tokio::time::timeout_at(deadline, sock.read_with(|s| s.recv(&mut buf)))
                .await
                .expect("an ARP reply within 5 s")
                .unwrap();
            assert_eq!(frame.status, None);
            let p = &buf[..frame.len];
            if frame.outgoing {
                assert_eq!(p, &probe[..], "the only frame we sent");
                continue;
            }
            // What is handed over as received is B's, never our own probe.
            assert_eq!(&p[8..14], &B_MAC, "sender MAC of {p:02x?}");
            if p[6..8] == [0, 2] {
                break p.to_vec();
            }
        };
        assert_eq!(&reply[14..18], &B_IP.octets(), "sender IP");
        assert_eq!(&reply[18..24], &A_MAC, "to us");
    });
}

#[test]
fn snoop_sees_what_its_filter_passes_with_auxdata() {
    if !may_run("snoop_sees_what_its_filter_passes_with_auxdata") {
        return;
    }
    let pair = Pair::new();
    let rt = runtime();
    rt.block_on(async {
        let snoop = in_ns(&pair.a, || {
            SnoopSocket::open(Socket::new, pair.a_index, &UDP_DST_68)
        })
        .unwrap();
        let snoop = Async::new(snoop).unwrap();
        let (a_udp, b_udp) = (
            in_ns(&pair.a, || UdpSocket::bind(SocketAddrV4::new(A_IP, 67))).unwrap(),
            in_ns(&pair.b, || UdpSocket::bind(SocketAddrV4::new(B_IP, 68))).unwrap(),
        );
        let mut buf = [0u8; 2048];
        let deadline = tokio::time::Instant::now() + WAIT;
        // The next frame handed over as received, after any of our own (marked outgoing).
        let mut next_received = async || loop {
            let f = tokio::time::timeout_at(deadline, snoop.read_with(|s| s.recv(&mut buf)))
                .await
                .expect("a frame within 5 s")
                .unwrap();
            let bytes = &buf[..f.len];
            // Ethernet (14) + IPv4 (20) + UDP (8) + payload.
            assert_eq!(&bytes[12..14], &[0x08, 0x00], "IPv4 only");
            assert_eq!(bytes[14 + 9], 17, "UDP only");
            assert_eq!(
                &bytes[14 + 22..14 + 24],
                &68u16.to_be_bytes(),
                "port 68 only"
            );
            let ulen = usize::from(u16::from_be_bytes([bytes[14 + 24], bytes[14 + 25]]));
            let udp = &bytes[14 + 20..14 + 20 + ulen];
            let status = f.status.expect("PACKET_AUXDATA with every frame");
            if status & TP_STATUS_CSUMNOTREADY == 0 {
                // The kernel says the checksum is final: then it must verify.
                let mut pseudo = bytes[14 + 12..14 + 20].to_vec();
                pseudo.extend_from_slice(&[0, 17]);
                pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
                pseudo.extend_from_slice(udp);
                assert_eq!(checksum(&pseudo), 0, "a finished UDP checksum verifies");
            }
            if f.outgoing {
                assert_eq!(&udp[8..], b"from-a", "the only datagram A sends");
                continue;
            }
            assert_eq!(&bytes[6..12], &B_MAC, "received frames are B's");
            break udp[8..].to_vec();
        };
        // To port 67 first: the filter drops it (and B's ARP for A), so the first frame the
        // socket hands over is the one to port 68.
        b_udp
            .send_to(b"to-67", SocketAddrV4::new(A_IP, 67))
            .unwrap();
        b_udp
            .send_to(b"to-68", SocketAddrV4::new(A_IP, 68))
            .unwrap();
        assert_eq!(next_received().await, b"to-68");
        // One A sends itself to B's port 68 is never handed over as received.
        a_udp
            .send_to(b"from-a", SocketAddrV4::new(B_IP, 68))
            .unwrap();
        b_udp
            .send_to(b"to-68-again", SocketAddrV4::new(A_IP, 68))
            .unwrap();
        assert_eq!(next_received().await, b"to-68-again");
    });
}

#[test]
fn icmp_echo_is_answered() {
    if !may_run("icmp_echo_is_answered") {
        return;
    }
    let pair = Pair::new();
    let rt = runtime();
    rt.block_on(async {
        let sock = in_ns(&pair.a, || IcmpSocket::open(Socket::new)).unwrap();
        let id: u16 = 0x5eed;
        let mut req = vec![8, 0, 0, 0];
        req.extend_from_slice(&id.to_be_bytes());
        req.extend_from_slice(&[0, 1]);
        req.extend_from_slice(b"leased-sock-test");
        let c = checksum(&req);
        req[2..4].copy_from_slice(&c.to_be_bytes());
        sock.send_to(B_IP, &req).unwrap();
        let sock = Async::new(sock).unwrap();

        let mut buf = [0u8; 1500];
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let n = tokio::time::timeout_at(deadline, sock.read_with(|s| s.recv(&mut buf)))
                .await
                .expect("an echo reply within 5 s")
                .unwrap();
            let p = &buf[..n];
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let icmp = &p[ihl..];
            // A raw socket sees every ICMP packet the namespace receives; ours is the echo reply
            // with our identifier.
            if icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() {
                assert_eq!(&p[12..16], &B_IP.octets(), "from B");
                assert_eq!(&icmp[8..], b"leased-sock-test", "our payload echoed");
                break;
            }
        }
    });
}

#[test]
fn neighbour_dump_reads_this_namespaces_table() {
    if !may_run("neighbour_dump_reads_this_namespaces_table") {
        return;
    }
    let pair = Pair::new();
    let peer = Ipv4Addr::new(198, 19, 77, 9);
    let peer_mac = [0x02, 0, 0x5e, 0, 0, 0x09];
    ip(&[
        "-n",
        &pair.a,
        "neigh",
        "add",
        &peer.to_string(),
        "lladdr",
        &mac_text(peer_mac),
        "dev",
        "sa0",
        "nud",
        "permanent",
    ]);
    let in_a = in_ns(&pair.a, neigh::dump).unwrap();
    let entry = in_a
        .iter()
        .find(|n| n.ip == peer)
        .unwrap_or_else(|| panic!("{peer} missing from {in_a:?}"));
    assert_eq!(entry.mac, peer_mac);
    assert_eq!(entry.ifindex, pair.a_index);
    assert_ne!(entry.state & NUD_PERMANENT, 0);
    // Per namespace: B's table does not have A's entry.
    let in_b = in_ns(&pair.b, neigh::dump).unwrap();
    assert!(in_b.iter().all(|n| n.ip != peer), "{in_b:?}");
}
