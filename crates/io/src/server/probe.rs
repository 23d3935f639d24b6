//! The conflict check's IO (`[server] conflict_check`): the engine holds an OFFER and asks for
//! its address to be probed; here the probe runs — on-link an RFC 5227 ARP probe, behind a relay
//! (or with `ping`) an ICMP echo, each with a short timeout — in a task of its own, so the
//! server never waits for it, and the answer goes back to the engine through the driver.
//!
//! Without CAP_NET_RAW a check cannot be made: the OFFER leaves unchecked and that is logged.

use std::net::Ipv4Addr;
use std::time::Duration;

use leased_config::ConflictCheckMode;
use leased_engine::{Probe, ProbeAnswer, ProbeId, ProbeVia};
use tokio::sync::mpsc;

use crate::monitor::{arp_sock, iface_mac, ping};
use crate::send::Outbound;

/// A finished check, for `Engine::handle_probe`.
pub(crate) type Done = (ProbeId, Option<ProbeAnswer>);

/// Runs `probe` in a task; its answer goes to `done`.
pub(crate) fn run(probe: Probe, out: &Outbound, done: mpsc::UnboundedSender<Done>) {
    let Probe {
        id,
        ip,
        link,
        on_link,
        mode,
        timeout,
    } = probe;
    let arp_via = out
        .links
        .get(link)
        .filter(|_| on_link && mode == ConflictCheckMode::Arp)
        .filter(|l| l.index != 0)
        .and_then(|l| Some((l.index, iface_mac(&l.name)?)));
    tokio::spawn(async move {
        let result = match arp_via {
            Some((ifindex, mac)) => arp_answer(ifindex, mac, ip, timeout).await.map(|m| {
                m.map(|mac| ProbeAnswer {
                    via: ProbeVia::Arp,
                    mac: Some(mac),
                })
            }),
            None => ping::answers(ip, timeout).await.map(|yes| {
                yes.then_some(ProbeAnswer {
                    via: ProbeVia::Ping,
                    mac: None,
                })
            }),
        };
        let answer = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%ip, error = %e, "conflict check failed (needs CAP_NET_RAW); offering unchecked");
                None
            }
        };
        // The server may be shutting down; then nobody needs the verdict.
        let _ = done.send((id, answer));
    });
}

/// ARP-probes `ip` on interface `ifindex` (two probes, the second halfway through `timeout`);
/// the MAC that answered, if any.
async fn arp_answer(
    ifindex: u32,
    our_mac: [u8; 6],
    ip: Ipv4Addr,
    timeout: Duration,
) -> std::io::Result<Option<[u8; 6]>> {
    let sock = arp_sock::ArpSocket::open(ifindex)?;
    let probe = arp_sock::probe_payload(our_mac, ip);
    sock.send(&probe)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut resent = false;
    loop {
        let half = deadline - timeout / 2;
        let until = if resent { deadline } else { half };
        match tokio::time::timeout_at(until, sock.recv()).await {
            Ok(Ok(s)) if s.ip == ip => return Ok(Some(s.mac)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) if !resent => {
                resent = true;
                // A lost probe is not a free address: ask once more.
                let _ = sock.send(&probe);
            }
            Err(_) => return Ok(None),
        }
    }
}
