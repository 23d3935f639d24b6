//! End to end: the real `leased serve` binary with `[api]` enabled, DHCP in test mode on
//! loopback (high ports; replies go to the request's source), clients driven with leased_wire
//! packets, the API read with plain HTTP/1.1 over a TCP socket. Unprivileged; 127.0.0.1 only;
//! leased addresses in 198.18.0.0/15; every wait is bounded; the server is stopped by its PID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leased_wire::{MessageType, Options, Packet, code};
use serde_json::Value;

const KEY: &str = "e2e-key-0123456789";

fn free_port(udp: bool) -> u16 {
    if udp {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// One HTTP/1.1 request; returns (status, body). `Connection: close` so the body ends at EOF.
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Api-Key: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn json(port: u16, path: &str) -> Value {
    let (st, body) = http(port, "GET", path, None);
    assert_eq!(st, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
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

fn dora(server: SocketAddr, mac: [u8; 6], xid: u32, host: &str) -> Ipv4Addr {
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

/// Kills the server by PID if a test fails midway.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn leased_serve_with_the_api_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port(false);
    let dhcp = free_port(true);
    let config = dir.path().join("leased.toml");
    std::fs::write(
        &config,
        format!(
            r#"# e2e
[server]
interfaces = ["lo"]
lease_time = "2h"
pid_file = "{pid}"

[store]
path = "{store}"

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
routers = ["198.18.0.1"]
pools = ["198.18.0.100-198.18.0.119"]

[api]
listen = "127.0.0.1:{api}"
keys = ["{KEY}"]
"#,
            pid = dir.path().join("leased.pid").display(),
            store = dir.path().join("leases.db").display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_leased"))
        .args(["serve", "-c"])
        .arg(&config)
        .args([
            "--port",
            &dhcp.to_string(),
            "--client-port",
            &(dhcp + 1).to_string(),
        ])
        .env_remove("LEASED_API_KEYS")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, dhcp));

    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", api)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "API never listened");
        std::thread::sleep(Duration::from_millis(50));
    }

    let a = dora(server, [2, 0, 0, 0, 2, 1], 0x7001, "one");
    let b = dora(server, [2, 0, 0, 0, 2, 2], 0x7002, "two");
    let t0 = Instant::now();
    let page = loop {
        let v = json(api, "/leases?state=bound");
        if v["total"] == 2 {
            break v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "leases never published: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let ips: Vec<&str> = page["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ip"].as_str().unwrap())
        .collect();
    let mut want = vec![a.to_string(), b.to_string()];
    want.sort_by_key(|s| s.parse::<Ipv4Addr>().unwrap());
    assert_eq!(ips, want);
    assert_eq!(page["leases"][0]["mac"], "02:00:00:00:02:01");

    let subnets = json(api, "/subnets");
    let s0 = &subnets["198.18.0.0/24"];
    assert_eq!(s0["ips"]["total"], 20);
    assert_eq!(s0["ips"]["active"], 2);
    assert_eq!(s0["ips"]["unused"], 18);
    assert_eq!(s0["leases"][a.to_string()]["binding-state"], "active");
    assert_eq!(s0["leases"][b.to_string()]["client-hostname"], "two");

    // A reservation over the API moves client one to its reserved address at its next DORA.
    let (st, body) = http(
        api,
        "POST",
        "/reservations",
        Some(r#"{"mac": "02:00:00:00:02:01", "ip": "198.18.0.50", "hostname": "one"}"#),
    );
    assert_eq!(st, 201, "{body}");
    assert_eq!(
        dora(server, [2, 0, 0, 0, 2, 1], 0x7003, "one"),
        Ipv4Addr::new(198, 18, 0, 50)
    );
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .starts_with("# e2e\n")
    );

    // SIGTERM stops DHCP and the API together, cleanly.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(guard.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "server did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(status.success(), "exit {status}: {log}");
    assert!(log.contains("HTTP API listening"), "{log}");
    assert!(
        TcpStream::connect(("127.0.0.1", api)).is_err(),
        "API port closed"
    );
}

/// A fake Sonar on 127.0.0.1: answers the first `fail_first` requests with 500, then 200;
/// counts the requests it accepted. Stops after 100 requests or 60 s.
fn fake_sonar(fail_first: usize) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let acc = std::sync::Arc::clone(&accepted);
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut n = 0usize;
        while n < 100 && t0.elapsed() < Duration::from_secs(60) {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            // Read the head, then Content-Length bytes of body.
            let mut buf = Vec::new();
            let mut byte = [0u8; 1];
            while !buf.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                buf.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&buf).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = s.read_exact(&mut body);
            n += 1;
            let ok = n > fail_first;
            if ok {
                acc.fetch_add(1, Ordering::SeqCst);
            }
            let (status, text) = if ok {
                ("200 OK", "{}")
            } else {
                ("500 Internal Server Error", "down")
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (port, accepted)
}

/// The value of `name{labels}` in a Prometheus text exposition (`None`: absent).
fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Issue 7: the export's upload counters appear on the API's `/metrics` — a refused upload,
/// then the ACKed binding delivered, the outbox drained and the success time set.
#[test]
fn export_uploads_show_on_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port(false);
    let dhcp = free_port(true);
    let (sonar, accepted) = fake_sonar(1);
    let config = dir.path().join("leased.toml");
    std::fs::write(
        &config,
        format!(
            r#"# e2e export metrics
[server]
interfaces = ["lo"]
lease_time = "2h"
pid_file = "{pid}"

[store]
path = "{store}"

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
routers = ["198.18.0.1"]
pools = ["198.18.0.100-198.18.0.119"]

[api]
listen = "127.0.0.1:{api}"
keys = ["{KEY}"]

[export]
outbox = "{outbox}"
[export.sonar]
url = "http://127.0.0.1:{sonar}"
username = "sonar-user"
password = "sonar-pass"
interval = 1
timeout = 2
"#,
            pid = dir.path().join("leased.pid").display(),
            store = dir.path().join("leases.db").display(),
            outbox = dir.path().join("outbox").display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_leased"))
        .args(["serve", "-c"])
        .arg(&config)
        .args([
            "--port",
            &dhcp.to_string(),
            "--client-port",
            &(dhcp + 1).to_string(),
        ])
        .env_remove("LEASED_API_KEYS")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, dhcp));
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", api)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "API never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    dora(server, [2, 0, 0, 0, 3, 1], 0x7101, "metered");
    let sonar_ok = r#"{destination="sonar",result="ok"}"#;
    let t0 = Instant::now();
    let text = loop {
        let (st, text) = http(api, "GET", "/metrics", None);
        assert_eq!(st, 200, "{text}");
        if metric(&text, &format!("leased_export_uploads_total{sonar_ok}")) >= Some(1.0) {
            break text;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no successful upload on /metrics: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let d = r#"{destination="sonar"}"#;
    let get = |name: &str| metric(&text, name).unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(get(&format!("leased_export_uploads_total{sonar_ok}")), 1.0);
    assert_eq!(
        get(r#"leased_export_uploads_total{destination="sonar",result="failed"}"#),
        1.0,
        "the first upload was refused"
    );
    assert_eq!(get(&format!("leased_export_entries_sent_total{d}")), 1.0);
    assert_eq!(get(&format!("leased_export_outbox_depth{d}")), 0.0);
    let last = get(&format!("leased_export_last_success_timestamp_seconds{d}"));
    assert!(
        last >= started as f64,
        "last success {last} before {started}"
    );
    assert_eq!(
        get(&format!("leased_export_upload_duration_seconds_count{d}")),
        2.0
    );
    assert!(get(&format!("leased_export_upload_duration_seconds_sum{d}")) > 0.0);
    let _ = guard.0.kill();
    let _ = guard.0.wait();
}
