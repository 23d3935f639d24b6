//! End to end on loopback, unprivileged ports (test mode: replies go to the request's source).
//!
//! One test per binary on purpose: it raises SIGHUP and SIGTERM in this process, which the
//! server under test handles. Traffic stays on 127.0.0.1; every wait is bounded.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use leased_core::LeaseState;
use leased_io::{ConfigSource, ServeParams, serve};
use leased_wire::{MessageType, Options, Packet, code};
use nix::sys::signal::{Signal, raise};
use tokio::net::UdpSocket;

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config_text(dir: &Path, pool: &str) -> String {
    format!(
        r#"
[server]
interfaces = ["lo"]
lease_time = "1h"
pid_file = "{pid}"

[store]
path = "{store}"

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
routers = ["198.18.0.1"]
pools = ["{pool}"]
"#,
        pid = dir.join("leased.pid").display(),
        store = dir.join("leases.db").display(),
    )
}

fn request(t: MessageType, mac: [u8; 6], xid: u32, extra: &[(u8, Vec<u8>)]) -> Vec<u8> {
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

/// Sends `msg` until a reply with `xid` arrives (the server may still be starting); at most
/// `tries` sends, 300 ms apart.
async fn exchange(
    sock: &UdpSocket,
    server: SocketAddr,
    msg: &[u8],
    xid: u32,
    tries: u32,
) -> Packet {
    let mut buf = vec![0u8; 2048];
    for _ in 0..tries {
        sock.send_to(msg, server).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await
        {
            let p = Packet::decode(&buf[..n]).unwrap();
            if p.xid == xid {
                return p;
            }
        }
    }
    panic!("no reply to xid {xid:#x}");
}

async fn dora(sock: &UdpSocket, server: SocketAddr, mac: [u8; 6], xid: u32) -> Ipv4Addr {
    let offer = exchange(
        sock,
        server,
        &request(MessageType::Discover, mac, xid, &[]),
        xid,
        30,
    )
    .await;
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    assert_eq!(offer.op, leased_wire::BOOTREPLY);
    let sid = offer.options.get(code::SERVER_ID).unwrap().to_vec();
    assert_eq!(sid, vec![198, 18, 0, 1]);
    let req = request(
        MessageType::Request,
        mac,
        xid,
        &[
            (code::REQUESTED_IP, offer.yiaddr.octets().to_vec()),
            (code::SERVER_ID, sid),
        ],
    );
    let ack = exchange(sock, server, &req, xid, 5).await;
    assert_eq!(ack.message_type(), Some(MessageType::Ack), "{ack:?}");
    assert_eq!(ack.yiaddr, offer.yiaddr);
    assert!(ack.options.get(code::LEASE_TIME).is_some());
    ack.yiaddr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dora_reload_and_graceful_shutdown_on_loopback() {
    // Shown with `--nocapture`: the event lines an operator would read.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info,leased::event=info".to_string()),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("leased.toml");
    std::fs::write(
        &cfg_path,
        config_text(dir.path(), "198.18.0.100-198.18.0.110"),
    )
    .unwrap();
    let server_port = free_udp_port();
    let params = ServeParams {
        source: ConfigSource::File(cfg_path.clone()),
        server_port,
        client_port: free_udp_port(),
    };
    let server = tokio::spawn(serve(params));
    let server_addr: SocketAddr = (Ipv4Addr::LOCALHOST, server_port).into();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // DORA.
    let mac1 = [0x02, 0, 0, 0, 0, 0x01];
    let ip1 = dora(&client, server_addr, mac1, 0x1111).await;
    assert!((100..=110).contains(&ip1.octets()[3]), "{ip1}");
    let pid = std::fs::read_to_string(dir.path().join("leased.pid")).unwrap();
    assert_eq!(pid.trim(), std::process::id().to_string());

    // Garbage is dropped without harm.
    client
        .send_to(b"not dhcp at all", server_addr)
        .await
        .unwrap();
    client.send_to(&[0u8; 239], server_addr).await.unwrap();

    // A valid reload takes effect: new clients get addresses from the new pool.
    std::fs::write(
        &cfg_path,
        config_text(dir.path(), "198.18.0.200-198.18.0.210"),
    )
    .unwrap();
    raise(Signal::SIGHUP).unwrap();
    let mut reloaded = None;
    for i in 0..20u8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let xid = 0x2200 + u32::from(i);
        let d = request(MessageType::Discover, [0x02, 0, 0, 0, 1, i], xid, &[]);
        let offer = exchange(&client, server_addr, &d, xid, 5).await;
        if offer.yiaddr.octets()[3] >= 200 {
            reloaded = Some(offer.yiaddr);
            break;
        }
    }
    assert!(reloaded.is_some(), "reload never took effect");

    // An invalid file is refused; the server keeps serving the previous plan.
    std::fs::write(&cfg_path, "[server]\nno_such_key = true\n").unwrap();
    raise(Signal::SIGHUP).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mac2 = [0x02, 0, 0, 0, 0, 0x02];
    let ip2 = dora(&client, server_addr, mac2, 0x3333).await;
    assert!(ip2.octets()[3] >= 200, "{ip2}");

    // Graceful stop: serve returns Ok, the PID file is gone, the ACKed leases are durable.
    raise(Signal::SIGTERM).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve did not stop within 10 s")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(!dir.path().join("leased.pid").exists());
    let leases = leased_store::EmbeddedStore::read_only(&dir.path().join("leases.db")).unwrap();
    for ip in [ip1, ip2] {
        let l = leases
            .iter()
            .find(|l| l.ip == ip)
            .expect("ACKed lease persisted");
        assert_eq!(l.state, LeaseState::Bound);
    }
}
