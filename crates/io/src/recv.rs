//! Receive: one task per served interface reads datagrams, decodes them, screens their relay
//! data at the trust boundary ([`leased_core::trust`], RFC 4030 signatures) and queues them for
//! the driver in two lanes ([`Lanes`]): exchanges that complete (REQUEST, RELEASE, DECLINE,
//! INFORM) ahead of DISCOVERs, which are shed first when the server falls behind — under
//! overload an OFFER whose REQUEST is then dropped is wasted work, and spending it is how a
//! server collapses when every CPE of a network boots at once. A full lane drops the newest
//! packet and counts it (`dropped.overload`) rather than queueing without bound.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leased_core::Request;
use leased_wire::{MessageType, Packet};
use tokio::sync::mpsc;

use crate::loaded::Current;
use crate::metrics::Metrics;
use crate::send::Origin;
use crate::sock;

/// Capacity of the lane of exchanges that complete. About a second of traffic at the rates one
/// engine sustains: enough to ride out a burst (a power-cycled building), small enough that a
/// request is not answered after its client has given up (dhclient retries after ~4 s).
pub(crate) const QUEUE_CAP: usize = 4096;

/// Capacity of the DISCOVER lane: a quarter of the other, so a deep backlog sheds DISCOVERs
/// first; a DISCOVER is also shed while the other lane is more than half full.
pub(crate) const DISCOVER_CAP: usize = QUEUE_CAP / 4;

/// The two lanes' senders (cloned per receive task).
#[derive(Debug, Clone)]
pub(crate) struct Lanes {
    /// REQUEST, RELEASE, DECLINE, INFORM and anything else that is not a DISCOVER.
    pub(crate) ahead: mpsc::Sender<Inbound>,
    /// DISCOVERs.
    pub(crate) discover: mpsc::Sender<Inbound>,
}

/// The two lanes' receivers: read `ahead` first.
#[derive(Debug)]
pub(crate) struct LaneRx {
    pub(crate) ahead: mpsc::Receiver<Inbound>,
    pub(crate) discover: mpsc::Receiver<Inbound>,
}

impl LaneRx {
    /// The next packet, from `ahead` first; `None` once both lanes are closed and empty.
    pub(crate) async fn recv(&mut self) -> Option<Inbound> {
        tokio::select! {
            biased;
            Some(m) = self.ahead.recv() => Some(m),
            Some(m) = self.discover.recv() => Some(m),
            else => None,
        }
    }

    /// A packet already queued, from `ahead` first.
    pub(crate) fn try_recv(&mut self) -> Option<Inbound> {
        self.ahead
            .try_recv()
            .ok()
            .or_else(|| self.discover.try_recv().ok())
    }
}

/// A new pair of lanes of [`QUEUE_CAP`] and [`DISCOVER_CAP`].
pub(crate) fn lanes() -> (Lanes, LaneRx) {
    lanes_with(QUEUE_CAP, DISCOVER_CAP)
}

/// A new pair of lanes of the given capacities.
pub(crate) fn lanes_with(ahead_cap: usize, discover_cap: usize) -> (Lanes, LaneRx) {
    let (ahead, ahead_rx) = mpsc::channel(ahead_cap);
    let (discover, discover_rx) = mpsc::channel(discover_cap);
    (
        Lanes { ahead, discover },
        LaneRx {
            ahead: ahead_rx,
            discover: discover_rx,
        },
    )
}

impl Lanes {
    /// Queues `inbound` in its lane; a full lane (or, for a DISCOVER, a busy `ahead` lane)
    /// drops it, counted. False when the receiving side is gone.
    pub(crate) fn send(&self, inbound: Inbound, metrics: &Metrics) -> bool {
        let discover = inbound.req.packet.message_type() == Some(MessageType::Discover);
        let lane = if discover {
            &self.discover
        } else {
            &self.ahead
        };
        if discover && self.ahead.capacity() < self.ahead.max_capacity() / 2 {
            metrics.dropped(leased_engine::DropReason::Overload.label());
            return !self.ahead.is_closed();
        }
        match lane.try_send(inbound) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.dropped(leased_engine::DropReason::Overload.label());
                tracing::debug!(reason = "overload", discover, "queue full: dropped");
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Receive buffer size: larger than any Ethernet DHCP message (option 57 tops out at the MTU).
const RECV_BUF: usize = 4096;

/// A decoded request and how it arrived.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub req: Request,
    pub origin: Origin,
    /// When the datagram was read, for the reply-latency histogram.
    pub received: Instant,
}

/// Reads datagrams on one interface, decodes them, and queues them for the engine until the
/// engine's queue closes or the task is aborted (shutdown).
pub(crate) async fn receive_loop(
    sock: tokio::net::UdpSocket,
    link: usize,
    iface: String,
    iface_addr: Option<Ipv4Addr>,
    tx: Lanes,
    metrics: Arc<Metrics>,
    door: Arc<Door>,
) {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let rx = match sock::recv_pktinfo(&sock, &mut buf).await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(iface = %iface, error = %e, "receive failed");
                // A persistent error must not become a busy loop.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let data = buf.get(..rx.len).unwrap_or_default();
        let packet = match Packet::decode(data) {
            Ok(p) => p,
            Err(m) => {
                metrics.malformed(m.label());
                tracing::debug!(
                    iface = %iface, src = ?rx.src, len = rx.len, reason = m.label(),
                    "malformed packet dropped"
                );
                continue;
            }
        };
        if rx.truncated {
            tracing::debug!(iface = %iface, src = ?rx.src, "oversized datagram truncated");
        }
        metrics.received(packet.message_type());
        let local = rx.local.or(iface_addr);
        let broadcast_dst = rx.dst == Some(Ipv4Addr::BROADCAST);
        let mut req = Request::new(packet, Some(iface.clone()), local, broadcast_dst);
        req.src_port = rx.src.map(|a| a.port());
        req.src_addr = rx.src.map(|a| *a.ip());
        // The trust boundary for relay data: limits, the SQL chain and decide never see an
        // Option 82 that a client could have written.
        let current = door.current.load();
        let trust = &current.plan.network.relay_trust;
        // A leasequery's Option 82 is its query, not relay data: the driver's ACL judges it.
        let leasequery = matches!(
            req.packet.options.get(leased_wire::code::MESSAGE_TYPE),
            Some(&[t]) if leased_wire::leasequery::msg::is_leasequery(t)
        );
        if !leasequery && let Some(key) = trust.key_of(req.packet.giaddr) {
            req.relay_auth = door.check_signature(data, req.packet.giaddr, key);
        }
        if !leasequery && let Some(why) = leased_core::trust::screen(&mut req, trust) {
            metrics.untrusted_option82(why.label());
            tracing::debug!(
                iface = %iface, src = ?rx.src, reason = why.label(),
                "Option 82 ignored: not from a trusted relay"
            );
        }
        let inbound = Inbound {
            req,
            origin: Origin {
                link,
                src: rx.src,
                local,
            },
            received: Instant::now(),
        };
        if !tx.send(inbound, &metrics) {
            return;
        }
    }
}

/// What the receive tasks share to judge relay data: the current plan (trust settings, RFC 4030
/// keys) and the last RFC 4030 counter accepted from each signing relay.
#[derive(Debug)]
pub(crate) struct Door {
    pub(crate) current: Current,
    /// By giaddr; holds only relays with a configured key, so it is bounded by the config.
    counters: std::sync::Mutex<std::collections::HashMap<Ipv4Addr, u64>>,
}

impl Door {
    pub(crate) fn new(current: Current) -> Self {
        Self {
            current,
            counters: std::sync::Mutex::default(),
        }
    }

    /// Checks a signing relay's RFC 4030 sub-option: a valid MAC whose counter is above the
    /// last accepted from `giaddr` (which it then becomes); anything else a failure.
    fn check_signature(
        &self,
        datagram: &[u8],
        giaddr: Ipv4Addr,
        key: &[u8],
    ) -> leased_core::RelayAuthCheck {
        use leased_core::RelayAuthCheck;
        use leased_core::relay_auth::{AuthFailure, verify};
        let counter = match verify(datagram, key) {
            Ok(c) => c,
            Err(f) => return RelayAuthCheck::Failed(f),
        };
        let mut last = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        match last.get(&giaddr) {
            Some(seen) if counter <= *seen => RelayAuthCheck::Failed(AuthFailure::Replayed),
            _ => {
                last.insert(giaddr, counter);
                RelayAuthCheck::Valid
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use leased_wire::{MessageType, code};

    use crate::testutil::client_packet;

    #[test]
    fn full_queue_counts_overload() {
        let metrics = Arc::new(Metrics::default());
        let (tx, _rx) = lanes_with(4, 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = sock.local_addr().unwrap();
            let task = tokio::spawn(receive_loop(
                sock,
                0,
                "lo".into(),
                Some(Ipv4Addr::LOCALHOST),
                tx,
                Arc::clone(&metrics),
                Arc::new(Door::new(lo_plan())),
            ));
            let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut buf = Vec::new();
            client_packet(MessageType::Discover, [2, 0, 0, 0, 0, 9], 9, &[]).encode(576, &mut buf);
            for _ in 0..3 {
                client.send_to(&buf, addr).await.unwrap();
            }
            client.send_to(b"junk", addr).await.unwrap();
            for _ in 0..50 {
                if metrics.get("malformed.truncated") == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            task.abort();
        });
        assert_eq!(metrics.get("received.DISCOVER"), 3);
        assert_eq!(metrics.get("dropped.overload"), 2);
        assert_eq!(metrics.get("malformed.truncated"), 1);
    }

    fn lo_plan() -> Current {
        let c = crate::testutil::config_with(&["198.18.0.0/24"], &["lo"], &[Some("lo")]);
        crate::loaded::current(c)
    }

    /// The receive loop is the trust boundary: a direct client's own Option 82 never reaches
    /// the engine (nor the limits or the SQL chain before it), and is counted.
    #[test]
    fn a_direct_clients_option82_is_removed_at_the_door() {
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = lanes();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = sock.local_addr().unwrap();
            let task = tokio::spawn(receive_loop(
                sock,
                0,
                "lo".into(),
                Some(Ipv4Addr::LOCALHOST),
                tx,
                Arc::clone(&metrics),
                Arc::new(Door::new(lo_plan())),
            ));
            let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut buf = Vec::new();
            let o82 = (code::RELAY_AGENT_INFO, vec![1, 3, b'v', b'i', b'c']);
            client_packet(MessageType::Discover, [2, 0, 0, 0, 0, 8], 8, &[o82])
                .encode(576, &mut buf);
            client.send_to(&buf, addr).await.unwrap();
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
            task.abort();
            got.unwrap().unwrap()
        });
        assert_eq!(got.req.packet.options.get(code::RELAY_AGENT_INFO), None);
        assert_eq!(got.req.src_addr, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(metrics.get("untrusted_option82.direct"), 1);
    }
}
