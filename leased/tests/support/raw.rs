//! Raw UDP from inside a namespace without `unsafe` (no setns in-process): the test binary
//! re-runs itself under `ip netns exec`, filtered to the helper test [`HELPER_TEST`], with the
//! datagrams to send in an environment variable.

use std::net::{SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use super::proc::{RunOutput, run_env};
use crate::argv;

/// Environment variable carrying `src;dst1,dst2;hex1,hex2,…`.
pub const HELPER_ENV: &str = "LEASED_SYSTEM_UDP_SEND";
/// Name of the helper test in the root of the test binary.
pub const HELPER_TEST: &str = "udp_send_helper";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| s.get(2 * i..2 * i + 2))
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect()
}

/// Sends each payload to each destination from `src`, inside `ns`; the output lists what was
/// sent and any replies received within a second after the last send.
pub fn send_from_ns(
    ns: &str,
    src: SocketAddrV4,
    dsts: &[SocketAddrV4],
    payloads: &[Vec<u8>],
) -> RunOutput {
    let spec = format!(
        "{src};{};{}",
        dsts.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(","),
        payloads
            .iter()
            .map(|p| if p.is_empty() {
                "-".to_string()
            } else {
                hex(p)
            })
            .collect::<Vec<_>>()
            .join(",")
    );
    let exe = std::env::current_exe().expect("current_exe");
    let a = argv![
        exe.display(),
        "--exact",
        HELPER_TEST,
        "--nocapture",
        "--test-threads=1"
    ];
    run_env(Some(ns), &a, Duration::from_secs(30), &[(HELPER_ENV, spec)])
}

/// Body of the helper test: does nothing unless [`HELPER_ENV`] is set.
pub fn helper_main() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let mut parts = spec.split(';');
    let src: SocketAddrV4 = parts.next().and_then(|s| s.parse().ok()).expect("src");
    let dsts: Vec<SocketAddrV4> = parts
        .next()
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let payloads: Vec<Vec<u8>> = parts
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|p| if p == "-" { Vec::new() } else { unhex(p) })
        .collect();
    let sock = UdpSocket::bind(src).expect("bind helper socket");
    sock.set_broadcast(true).expect("SO_BROADCAST");
    for p in &payloads {
        for d in &dsts {
            match sock.send_to(p, d) {
                Ok(n) => println!("SENT {n} bytes to {d}"),
                Err(e) => println!("SEND-ERROR {d}: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let end = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            println!(
                "REPLY {n} bytes from {from} type={:?}",
                dhcp_type(&buf[..n])
            );
        }
    }
}

/// Option 53 of a DHCP packet, if well-formed enough to find.
pub fn dhcp_type(p: &[u8]) -> Option<u8> {
    if p.get(236..240)? != [99, 130, 83, 99] {
        return None;
    }
    let mut i = 240;
    while let Some(&code) = p.get(i) {
        match code {
            0 => i += 1,
            255 => return None,
            _ => {
                let len = usize::from(*p.get(i + 1)?);
                if code == 53 {
                    return p.get(i + 2).copied();
                }
                i += 2 + len;
            }
        }
    }
    None
}
