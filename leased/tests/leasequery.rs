//! System test of leasequery against `leased serve` in network namespaces: Kea's `perfdhcp`
//! (as a relay adding Option 82) makes the leases; the test kit's requestor asks over UDP by
//! address, MAC and client-id (RFC 4388), runs a bulk query by remote-id (RFC 6926) after
//! DHCPTLS (RFC 7724 §5.2), and follows an active query (RFC 7724, TLS from the first byte)
//! while perfdhcp makes more leases: every new binding arrives once, after the catch-up, in
//! time order. A requestor outside `[leasequery] allow` gets nothing over UDP and a closed
//! TCP connection. tshark decodes every message the server sent (the UDP capture, and the TCP
//! messages as read after TLS) with no malformed-packet mark.
//!
//! Root, perfdhcp, tcpdump and tshark are required (`SKIP: …` otherwise, a failure under
//! `CI=true`). Addresses in 198.18.0.0/15 only, every wait bounded, processes stopped by PID,
//! namespaces deleted by the lab's `Drop`.

#![allow(
    clippy::useless_vec,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use leased_api::tls::rustls;
use leased_testkit::leasequery::{
    Answer, AnswerStream, Requestor, encode, encode_framed, parse_answer,
};
use leased_wire::leasequery::{Status, msg};
use support::lab::{CLI_IF, SRV_IF};
use support::proc::{Proc, bin, must, run};
use support::{Cfg, Lab};

/// Runs `f` on a thread inside network namespace `ns` (`setns` changes only that thread).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// One UDP query from `from`:67 to the server; the answer, if one comes within `wait`. Every
/// datagram received is kept in `raw`.
fn udp_query(
    from: Ipv4Addr,
    server: Ipv4Addr,
    q: &leased_wire::Packet,
    wait: Duration,
) -> Option<Answer> {
    let s = UdpSocket::bind(SocketAddrV4::new(from, 67)).expect("bind requestor :67");
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(&encode(q), SocketAddrV4::new(server, 67))
        .unwrap();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match s.recv_from(&mut buf) {
            Ok((n, _)) => {
                let a = parse_answer(&buf[..n]).expect("answer decodes");
                if a.xid == q.xid {
                    return Some(a);
                }
            }
            Err(_) => return None,
        }
    }
    None
}

/// A TLS client trusting `ca` for the server at `ip`.
fn tls_client(ca: &std::path::Path, ip: Ipv4Addr) -> rustls::ClientConnection {
    let config = leased_api::tls::client_config(Some(ca)).unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::V4(ip).into());
    rustls::ClientConnection::new(config, name).unwrap()
}

/// Reads answers from `s` until `stop` says so or `wait` passes; every raw message is
/// appended to `raw`.
fn read_until(
    s: &mut impl Read,
    wait: Duration,
    raw: &mut Vec<Vec<u8>>,
    mut stop: impl FnMut(&Answer) -> bool,
) -> Vec<Answer> {
    let mut stream = AnswerStream::default();
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => panic!("read: {e}"),
        };
        stream.push(&buf[..n]).unwrap();
        let mut done = false;
        while let Some(a) = stream.next_answer().unwrap() {
            done |= stop(&a);
            out.push(a);
        }
        raw.append(&mut stream.raw);
        if done {
            break;
        }
    }
    out
}

/// Writes `msgs` into a pcap (raw IPv4) as UDP datagrams from 67 to 68, so tshark's DHCP
/// dissector reads them (it has no DHCPv4-over-TCP dissector).
fn write_pcap(path: &std::path::Path, msgs: &[Vec<u8>], src: Ipv4Addr, dst: Ipv4Addr) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    for (i, m) in msgs.iter().enumerate() {
        let udp_len = 8 + m.len();
        let total = 20 + udp_len;
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        let sum = {
            let mut s: u32 = 0;
            for c in p.chunks(2) {
                s += u32::from(u16::from_be_bytes([c[0], c[1]]));
            }
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            !(s as u16)
        };
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&67u16.to_be_bytes());
        p.extend_from_slice(&68u16.to_be_bytes());
        p.extend_from_slice(&(udp_len as u16).to_be_bytes());
        p.extend_from_slice(&0u16.to_be_bytes());
        p.extend_from_slice(m);
        f.extend_from_slice(&(i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&p);
    }
    std::fs::write(path, f).unwrap();
}

/// tshark's verdict on a capture: the DHCP message types it decoded, and any malformed mark.
fn tshark(path: &std::path::Path) -> (Vec<String>, String) {
    let out = run(
        None,
        &argv![
            bin("tshark"),
            "-n",
            "-r",
            path.display(),
            "-T",
            "fields",
            "-e",
            "dhcp.option.dhcp",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity"
        ],
        Duration::from_secs(60),
    );
    assert!(out.ok(), "tshark failed: {}", out.all());
    let types = out
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect();
    let bad = run(
        None,
        &argv![
            bin("tshark"),
            "-n",
            "-r",
            path.display(),
            "-Y",
            "_ws.malformed || _ws.expert.severity >= 6291456"
        ],
        Duration::from_secs(60),
    );
    assert!(bad.ok(), "tshark filter failed: {}", bad.all());
    (types, bad.stdout)
}

/// perfdhcp as a relay at `giaddr`, adding Option 82 (circuit-id `port1`, remote-id `olt-a`):
/// `n` DORA exchanges from MACs based on `base`.
fn perfdhcp(lab: &Lab, giaddr: Ipv4Addr, base: &str, n: u32) -> support::proc::RunOutput {
    // 82: sub 1 "port1", sub 2 "olt-a".
    let o82 = "82,0105706f72743102056f6c742d61";
    let a = argv![
        bin("perfdhcp"),
        "-4",
        "-l",
        giaddr,
        "-r",
        "10",
        "-R",
        n,
        "-n",
        n,
        "-p",
        "10",
        "-W",
        "2000000",
        "-o",
        o82,
        "-b",
        format!("mac={base}"),
        lab.srv_ip
    ];
    run(Some(&lab.cli_ns), &a, Duration::from_secs(40))
}

#[test]
fn leasequery_udp_bulk_and_active_against_perfdhcp_leases() {
    if !gate!("perfdhcp", "tcpdump", "tshark") {
        return;
    }
    let lab = Lab::new();
    let req_ip = lab.ip(2);
    let outsider = lab.ip(3);
    lab.add_client_addr(&format!("{req_ip}/24"));
    must(
        Some(&lab.cli_ns),
        &argv!["ip", "addr", "add", format!("{outsider}/24"), "dev", CLI_IF],
    );
    // The server's certificate names its address.
    let cert = rcgen::generate_simple_self_signed(vec![lab.srv_ip.to_string()]).unwrap();
    let cert_path = lab.path("lq.crt");
    let key_path = lab.path("lq.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut cfg = Cfg::for_lab(&lab);
    cfg.lease_time = 600;
    cfg.extra = format!(
        "\n[leasequery]\nallow = [\"{req_ip}/32\"]\ntcp_listen = \"{}:67\"\nmax_connections = 4\n\
         [leasequery.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        lab.srv_ip,
        cert_path.display(),
        key_path.display()
    );
    let srv = lab.start_server(&cfg.render());
    let pcap = lab.path("udp.pcap");
    let mut dump = Proc::spawn(
        "tcpdump",
        Some(&lab.srv_ns),
        &argv![
            "tcpdump",
            "-n",
            "-U",
            "-i",
            SRV_IF,
            "-w",
            pcap.display(),
            "udp port 67"
        ],
        &lab.path("tcpdump.log"),
        &[],
    );
    std::thread::sleep(Duration::from_secs(1));

    // Leases through a relay with Option 82.
    let out = perfdhcp(&lab, req_ip, "02:1c:aa:00:00:00", 5);
    let first: Vec<_> = srv
        .leases()
        .into_iter()
        .filter(|l| l.state == "bound" && l.mac.starts_with("02:1c:aa"))
        .collect();
    assert!(
        first.len() >= 3,
        "perfdhcp made too few leases: {first:?}\n{}\n--- server\n{}",
        out.all(),
        srv.log()
    );
    let probe = first[0].clone();
    let probe_mac: [u8; 6] = probe
        .mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();

    let server = lab.srv_ip;
    let wait = Duration::from_secs(3);
    let (by_ip, by_mac, by_cid, unassigned, refused) = in_netns(&lab.cli_ns, || {
        let mut r = Requestor::new(req_ip, 1000);
        let by_ip = udp_query(req_ip, server, &r.by_ip(probe.ip), wait);
        let by_mac = udp_query(req_ip, server, &r.by_mac(probe_mac), wait);
        let mut cid = vec![1u8];
        cid.extend_from_slice(&probe_mac);
        let by_cid = udp_query(req_ip, server, &r.by_client_id(&cid), wait);
        let unassigned = udp_query(req_ip, server, &r.by_ip(lab.ip(199)), wait);
        let mut o = Requestor::new(outsider, 2000);
        let refused = udp_query(outsider, server, &o.by_ip(probe.ip), wait);
        (by_ip, by_mac, by_cid, unassigned, refused)
    });
    let log = || srv.log();
    let by_ip = by_ip.unwrap_or_else(|| panic!("no answer by IP\n{}", log()));
    assert_eq!((by_ip.kind, by_ip.ip), (msg::LEASEACTIVE, probe.ip));
    assert_eq!(by_ip.chaddr, probe_mac.to_vec());
    assert!(by_ip.lease_time.is_some_and(|t| t > 0 && t <= 600));
    assert!(by_ip.last_transaction.is_some());
    assert_eq!(by_ip.remote_id.as_deref(), Some(&b"olt-a"[..]));
    for a in [by_mac, by_cid] {
        let a = a.unwrap_or_else(|| panic!("no answer by MAC / client-id\n{}", log()));
        assert_eq!((a.kind, a.ip), (msg::LEASEACTIVE, probe.ip));
        assert_eq!(a.associated, vec![probe.ip]);
    }
    assert_eq!(unassigned.map(|a| a.kind), Some(msg::LEASEUNASSIGNED));
    assert!(
        refused.is_none(),
        "a requestor outside the ACL was answered"
    );

    // Bulk by remote-id, after DHCPTLS; and an outsider's TCP connection is closed unanswered.
    let mut tcp_raw = Vec::new();
    let bulk = in_netns(&lab.cli_ns, || {
        let mut r = Requestor::new(req_ip, 3000);
        let tcp = std::net::TcpStream::connect((server, 67)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut tcp = tcp;
        tcp.write_all(&encode_framed(&r.starttls()).unwrap())
            .unwrap();
        let tls_answer = read_until(&mut tcp, Duration::from_secs(5), &mut tcp_raw, |_| true);
        assert_eq!(
            tls_answer.first().map(|a| (a.kind, a.status.clone())),
            Some((msg::DHCPTLS, None))
        );
        let mut s = rustls::StreamOwned::new(tls_client(&cert_path, server), tcp);
        let q = r.bulk_by_remote_id(b"olt-a", None);
        s.write_all(&encode_framed(&q).unwrap()).unwrap();
        read_until(&mut s, Duration::from_secs(10), &mut tcp_raw, |a| {
            a.kind == msg::LEASEQUERYDONE || a.kind == msg::LEASEQUERYSTATUS
        })
    });
    assert_eq!(
        bulk.last().map(|a| a.kind),
        Some(msg::LEASEQUERYDONE),
        "{bulk:?}"
    );
    let mut got: Vec<Ipv4Addr> = bulk
        .iter()
        .filter(|a| a.kind == msg::LEASEACTIVE)
        .map(|a| a.ip)
        .collect();
    got.sort();
    let mut want: Vec<Ipv4Addr> = first.iter().map(|l| l.ip).collect();
    want.sort();
    assert_eq!(got, want, "bulk by remote-id");

    // An outsider over TCP, from its own address: closed with nothing said.
    let outsider_read = in_netns(&lab.cli_ns, || {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddrV4::new(outsider, 0).into()).unwrap();
        sock.connect(&SocketAddrV4::new(server, 67).into()).unwrap();
        let mut t: TcpStream = sock.into();
        t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut r = Requestor::new(outsider, 4000);
        let _ = t.write_all(&encode_framed(&r.bulk_all(None, None)).unwrap());
        let mut b = Vec::new();
        let res = t.read_to_end(&mut b);
        let _ = res;
        b
    });
    assert!(
        outsider_read.is_empty(),
        "the outsider read {outsider_read:?}"
    );

    // Active query, TLS from the first byte: catch-up since an hour ago, then the stream
    // while perfdhcp makes five more leases.
    let start = unix_now().saturating_sub(3600);
    let (stream_answers, perf_out) = in_netns(&lab.cli_ns, || {
        let mut r = Requestor::new(req_ip, 5000);
        let tcp = std::net::TcpStream::connect((server, 67)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut s = rustls::StreamOwned::new(tls_client(&cert_path, server), tcp);
        s.write_all(&encode_framed(&r.active(Some(start))).unwrap())
            .unwrap();
        let mut all = read_until(&mut s, Duration::from_secs(10), &mut tcp_raw, |a| {
            a.kind == msg::LEASEQUERYSTATUS
        });
        let perf = std::thread::scope(|sc| {
            let h = sc.spawn(|| {
                let file = std::fs::File::open(format!("/run/netns/{}", lab.cli_ns)).unwrap();
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                perfdhcp(&lab, req_ip, "02:1c:bb:00:00:00", 5)
            });
            let mut seen = 0;
            let more = read_until(&mut s, Duration::from_secs(40), &mut tcp_raw, |a| {
                if a.kind == msg::LEASEACTIVE && a.chaddr.starts_with(&[2, 0x1c, 0xbb]) {
                    seen += 1;
                }
                seen >= 5
            });
            all.extend(more);
            h.join().unwrap()
        });
        (all, perf)
    });
    dump.stop(Duration::from_secs(3));
    let catchup_end = stream_answers
        .iter()
        .position(|a| a.kind == msg::LEASEQUERYSTATUS)
        .unwrap_or_else(|| panic!("no catch-up status: {stream_answers:?}\n{}", srv.log()));
    assert_eq!(
        stream_answers[catchup_end].status.as_ref().map(|s| s.0),
        Some(Status::CatchUpComplete.code())
    );
    let mut caught: Vec<Ipv4Addr> = stream_answers[..catchup_end].iter().map(|a| a.ip).collect();
    caught.sort();
    assert_eq!(caught, want, "catch-up: the first run's bindings");
    let live: Vec<&Answer> = stream_answers[catchup_end + 1..].iter().collect();
    let second: Vec<_> = srv
        .leases()
        .into_iter()
        .filter(|l| l.state == "bound" && l.mac.starts_with("02:1c:bb"))
        .collect();
    assert!(
        second.len() >= 3,
        "second perfdhcp run: {second:?}\n{}",
        perf_out.all()
    );
    let mut per_ip: HashMap<Ipv4Addr, usize> = HashMap::new();
    for a in &live {
        assert!(
            a.chaddr.starts_with(&[2, 0x1c, 0xbb]),
            "a change nobody made: {a:?}"
        );
        *per_ip.entry(a.ip).or_default() += 1;
    }
    for l in &second {
        assert_eq!(
            per_ip.get(&l.ip),
            Some(&1),
            "{} once in the stream: {live:?}",
            l.ip
        );
    }
    // In time order: each change's state began no earlier than the one before.
    let began: Vec<u32> = live
        .iter()
        .map(|a| a.base_time.unwrap() - a.start_time_of_state.unwrap())
        .collect();
    assert!(
        began.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {began:?}"
    );

    // tshark decodes every message the server sent, UDP and TCP.
    let (types, bad) = tshark(&pcap);
    let sent_udp: Vec<&String> = types
        .iter()
        .filter(|t| ["11", "12", "13"].contains(&t.as_str()))
        .collect();
    assert!(sent_udp.len() >= 4, "tshark saw the UDP answers: {types:?}");
    assert!(
        bad.trim().is_empty(),
        "tshark marks UDP answers malformed:\n{bad}"
    );
    let tcp_pcap = lab.path("tcp.pcap");
    write_pcap(&tcp_pcap, &tcp_raw, server, req_ip);
    let (types, bad) = tshark(&tcp_pcap);
    assert_eq!(types.len(), tcp_raw.len());
    for t in ["13", "15", "17", "18"] {
        assert!(
            types.iter().any(|x| x == t),
            "tshark saw type {t}: {types:?}"
        );
    }
    assert!(
        bad.trim().is_empty(),
        "tshark marks TCP answers malformed:\n{bad}"
    );
}
