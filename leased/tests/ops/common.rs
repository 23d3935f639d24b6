//! Helpers of the operator-surface tests: free ports, plain HTTP, DHCP exchanges on loopback,
//! running `leased` and waiting with bounds.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use leased_wire::{MessageType, Options, Packet, code};

pub const BIN: &str = env!("CARGO_BIN_EXE_leased");

pub fn free_tcp() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 GET; (status, body).
pub fn get(port: u16, path: &str, key: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let key = key.map_or(String::new(), |k| format!("X-Api-Key: {k}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{key}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub fn leased(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("LEASED_API_KEYS")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).output().unwrap()
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The wall clock in Unix seconds, for fixtures placed around the time a command under test
/// will read itself.
pub fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Unix seconds as dhcpd writes them in a leases file (`W YYYY/MM/DD HH:MM:SS`, UTC).
pub fn isc_time(secs: u64) -> String {
    leased_api::stats::isc_time(leased_core::Timestamp(secs))
}

/// A child we started; killed by PID when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Proc {
    pub fn spawn(args: &[&str], log: &Path) -> Proc {
        let out = std::fs::File::create(log).unwrap();
        Proc(
            Command::new(BIN)
                .args(args)
                .env_remove("LEASED_API_KEYS")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap(),
        )
    }

    /// SIGTERM and a bounded wait.
    pub fn term(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let done = wait_for(Duration::from_secs(10), || {
            matches!(self.0.try_wait(), Ok(Some(_)))
        });
        assert!(done, "process did not stop on SIGTERM");
    }
}

fn packet(t: MessageType, mac: [u8; 6], xid: u32, extra: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![t.code()]);
    for (c, v) in extra {
        options.set(*c, v.clone());
    }
    let p = Packet {
        op: leased_wire::BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid,
        secs: 0,
        flags: 0x8000,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr,
        sname: vec![],
        file: vec![],
        options,
        option82_in_overload: false,
    };
    let mut out = Vec::new();
    p.encode(576, &mut out);
    out
}

fn exchange(sock: &UdpSocket, server: SocketAddr, msg: &[u8], xid: u32) -> Packet {
    let mut buf = [0u8; 2048];
    for _ in 0..30 {
        sock.send_to(msg, server).unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let p = Packet::decode(&buf[..n]).unwrap();
                if p.xid == xid {
                    return p;
                }
            }
        }
    }
    panic!("no reply to xid {xid:#x}");
}

/// DISCOVER/OFFER/REQUEST/ACK against a test-mode server on loopback; the address.
pub fn dora(port: u16, mac: [u8; 6], xid: u32, host: &str) -> Ipv4Addr {
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let h = (code::HOSTNAME, host.as_bytes().to_vec());
    let offer = exchange(
        &sock,
        server,
        &packet(MessageType::Discover, mac, xid, std::slice::from_ref(&h)),
        xid,
    );
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    let req = packet(
        MessageType::Request,
        mac,
        xid,
        &[
            (code::REQUESTED_IP, offer.yiaddr.octets().to_vec()),
            (code::SERVER_ID, vec![198, 18, 0, 1]),
            h,
        ],
    );
    let ack = exchange(&sock, server, &req, xid);
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    ack.yiaddr
}
