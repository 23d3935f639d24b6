//! Network monitors beside the server: rogue DHCP server detection and ARP anomaly
//! detection ([`arp`]). Their findings live in [`Monitors`], shared with the API through
//! io's `SharedState`.
//!
//! One task per served interface reads an `AF_PACKET` socket ([`packet_sock`]) that only sees
//! IPv4/UDP frames to port 68, i.e. server replies to clients, and judges each OFFER/ACK with
//! [`rogue`]. The tracker is shared by all links, so a server seen on two links is one server.
//! Settings are read from the current plan on every frame: a reload that whitelists a server
//! takes effect at once. Without CAP_NET_RAW the monitor logs why and stays off; serving is not
//! affected.

pub mod arp;
pub(crate) mod arp_sock;
mod packet_sock;
pub(crate) mod ping;
pub mod rogue;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use crate::loaded::Current;
use crate::metrics::Metrics;
use packet_sock::{PacketSocket, TP_STATUS_CSUMNOTREADY};
use rogue::{Tracker, Verdict, mac_string, parse_frame};

/// The foreign servers seen so far, shared with readers (an API listing, tests).
pub type ForeignServers = Arc<Mutex<Tracker>>;

/// What the monitors found, shared by the monitor tasks (writers) and the API (reader), so an
/// HTTP request reads the same tables the log lines come from.
#[derive(Debug, Clone, Default)]
pub struct Monitors {
    /// Foreign DHCP servers (`[rogue_servers]`).
    pub(crate) foreign: ForeignServers,
    /// Current ARP findings (`[arp_watch]`).
    pub(crate) arp: arp::ArpFindings,
}

/// A served interface the monitor watches.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    pub name: String,
    pub index: u32,
}

/// The interface's MAC from sysfs (`None` when it has none, e.g. loopback, or is unreadable).
pub(crate) fn iface_mac(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mut out = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Starts one rogue-server watch task per interface when `[rogue_servers]` is enabled.
pub(crate) fn spawn_rogue(
    links: &[Watched],
    plan: &Current,
    metrics: &Arc<Metrics>,
    tracker: &ForeignServers,
) -> Vec<JoinHandle<()>> {
    if !plan.load().config.rogue_servers.enabled {
        return Vec::new();
    }
    let own: Arc<Vec<[u8; 6]>> =
        Arc::new(links.iter().filter_map(|l| iface_mac(&l.name)).collect());
    let mut tasks = Vec::new();
    for link in links.iter().filter(|l| l.index != 0) {
        match PacketSocket::open(link.index) {
            Ok(sock) => {
                tracing::info!(iface = %link.name, "watching for foreign DHCP servers");
                tasks.push(tokio::spawn(watch(
                    sock,
                    link.name.clone(),
                    Arc::clone(plan),
                    Arc::clone(metrics),
                    Arc::clone(&own),
                    Arc::clone(tracker),
                )));
            }
            Err(e) => tracing::warn!(
                iface = %link.name, error = %e,
                "rogue DHCP server detection off on this interface (needs CAP_NET_RAW)"
            ),
        }
    }
    if !tasks.is_empty() {
        let probed: Vec<Watched> = links.iter().filter(|l| l.index != 0).cloned().collect();
        tasks.push(tokio::spawn(probe(probed, Arc::clone(plan))));
    }
    tasks
}

/// The active probe's DISCOVER from `mac`, as an IPv4/UDP datagram 0.0.0.0:68 →
/// 255.255.255.255:67 (broadcast flag set, so answers come back as broadcasts the passive
/// watch sees).
fn probe_datagram(mac: &[u8], xid: u32) -> Option<Vec<u8>> {
    use std::net::{Ipv4Addr, SocketAddrV4};
    let mut chaddr = [0u8; 16];
    chaddr.get_mut(..mac.len())?.copy_from_slice(mac);
    let mut p = leased_wire::Packet {
        op: leased_wire::BOOTREQUEST,
        htype: 1,
        hlen: u8::try_from(mac.len()).ok()?,
        hops: 0,
        xid,
        secs: 0,
        flags: 0x8000,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr,
        sname: Vec::new(),
        file: Vec::new(),
        options: leased_wire::Options::new(),
        option82_in_overload: false,
    };
    p.options.set(leased_wire::code::MESSAGE_TYPE, vec![1]);
    p.options
        .set(leased_wire::code::PARAM_REQUEST_LIST, vec![1, 3, 6, 54]);
    let mut payload = Vec::new();
    p.encode(576, &mut payload);
    let mut out = Vec::new();
    crate::frame::ipv4_udp(
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
        &payload,
        &mut out,
    )
    .ok()?;
    Some(out)
}

/// Sends the active probe on every link each `probe_interval` (re-read from the plan, so a
/// reload can turn it on, off or change it). The frames leave through an AF_PACKET socket:
/// our own UDP socket never sees them, so leased does not answer its own probe.
async fn probe(links: Vec<Watched>, plan: Current) {
    let sender = match crate::sock::RawSender::open() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "active rogue-server probe off (needs CAP_NET_RAW)");
            return;
        }
    };
    let mut xid: u32 = std::process::id().wrapping_mul(0x9e37_79b9);
    loop {
        let settings = plan.load().config.rogue_servers.clone();
        let Some(every) = settings.probe_interval.filter(|_| settings.enabled) else {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            continue;
        };
        xid = xid.wrapping_add(1);
        if let Some(datagram) = probe_datagram(&settings.probe_mac.0, xid) {
            for l in &links {
                if let Err(e) = sender.send(l.index, [0xff; 6], &datagram) {
                    tracing::debug!(iface = %l.name, error = %e, "rogue-server probe not sent");
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(every))).await;
    }
}

async fn watch(
    sock: PacketSocket,
    iface: String,
    plan: Current,
    metrics: Arc<Metrics>,
    own: Arc<Vec<[u8; 6]>>,
    tracker: ForeignServers,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let meta = match sock.recv(&mut buf).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(iface = %iface, error = %e, "monitor receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        if meta.outgoing {
            continue;
        }
        let frame = buf.get(..meta.len).unwrap_or_default();
        let Ok(reply) = parse_frame(frame, meta.status & TP_STATUS_CSUMNOTREADY != 0) else {
            continue;
        };
        let plan = plan.load();
        let settings = &plan.config.rogue_servers;
        if !settings.enabled {
            continue;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let verdict = {
            let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
            let v = t.observe(&reply, &iface, settings, &own, now);
            if v != Verdict::Ignored {
                metrics.foreign_reply();
                metrics.set_foreign_servers(t.len() as u64);
            }
            v
        };
        if let Verdict::Announce { suppressed } = verdict {
            let held = if suppressed > 0 {
                format!(" (held back by the rate limit before this: {suppressed})")
            } else {
                String::new()
            };
            tracing::warn!(
                "FOREIGN-DHCP-SERVER server_ip={} mac={} iface={} msg={}{held}",
                reply.server_ip,
                mac_string(&reply.mac),
                iface,
                reply.msg.name(),
            );
        }
    }
}
