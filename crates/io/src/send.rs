//! Carries out a [`Route`] decided by core (RFC 2131 §4.1): to the relay, unicast to ciaddr,
//! broadcast on the receiving link, or unicast at layer 2 to a client with no address yet.
//!
//! Sends are non-blocking syscalls on plain sockets, callable from any thread: the engine sends
//! OFFERs and NAKs itself, the store's commit thread sends ACKs once they are durable. A full
//! socket buffer drops the reply (the client retransmits), it never stalls the caller.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};

use leased_core::{Reply, Route};

use crate::frame;
use crate::sock::RawSender;

/// Ports of RFC 2131; any other pair puts the server in test mode.
pub(crate) const DEFAULT_SERVER_PORT: u16 = 67;
/// See [`DEFAULT_SERVER_PORT`].
pub(crate) const DEFAULT_CLIENT_PORT: u16 = 68;

/// One served interface's send side.
#[derive(Debug)]
pub(crate) struct Link {
    pub name: String,
    /// Kernel interface index (for AF_PACKET); 0 when unknown.
    pub index: u32,
    /// Our address there, when it has one.
    pub addr: Option<Ipv4Addr>,
    /// A non-blocking clone of the interface's UDP socket.
    pub udp: std::net::UdpSocket,
}

/// How a request arrived, which is where its reply starts from (`link` indexes
/// [`Outbound::links`]); carried through the engine untouched.
pub(crate) use leased_engine::Origin;

/// Every way out of the server.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub links: Vec<Link>,
    raw: Option<RawSender>,
    server_port: u16,
    client_port: u16,
    /// Non-default ports: reply to the request's source address and port, whatever the route.
    /// This lets tests run unprivileged on loopback, where broadcast and AF_PACKET make no
    /// sense; dora has the same rule.
    test_mode: bool,
    /// The broadcast fallback for layer-2 unicast has been logged already.
    fallback_logged: AtomicBool,
}

impl Outbound {
    /// Assembles the send side. In production (ports 67/68) it tries to open the AF_PACKET
    /// socket; without CAP_NET_RAW it says once that such replies will be broadcast.
    pub(crate) fn new(links: Vec<Link>, server_port: u16, client_port: u16) -> Self {
        let test_mode = server_port != DEFAULT_SERVER_PORT || client_port != DEFAULT_CLIENT_PORT;
        let raw = if test_mode {
            None
        } else {
            match RawSender::open() {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "cannot open an AF_PACKET socket (needs CAP_NET_RAW): replies to clients \
                         without an address will be broadcast instead of unicast"
                    );
                    None
                }
            }
        };
        // Without the socket, the start-up warning already told the operator.
        let fallback_logged = AtomicBool::new(raw.is_none());
        Self {
            links,
            raw,
            server_port,
            client_port,
            test_mode,
            fallback_logged,
        }
    }

    /// True when replies go back to the request's source (non-default ports).
    pub(crate) fn test_mode(&self) -> bool {
        self.test_mode
    }

    /// Encodes `reply` and sends it along its route, from the link the request came in on.
    pub(crate) fn send(&self, reply: &Reply, origin: &Origin) -> io::Result<()> {
        let mut buf = Vec::with_capacity(reply.max_len.max(576));
        reply.packet.encode(reply.max_len, &mut buf);
        self.send_encoded(&buf, &reply.route, origin)
    }

    /// Sends an already encoded reply along `route` (the relay agent forwards server replies
    /// byte for byte, so it cannot hand over a [`Reply`] to re-encode).
    pub(crate) fn send_encoded(
        &self,
        buf: &[u8],
        route: &Route,
        origin: &Origin,
    ) -> io::Result<()> {
        let link = self
            .links
            .get(origin.link)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "unknown link"))?;
        if self.test_mode
            && let Some(src) = origin.src.filter(|s| !s.ip().is_unspecified())
        {
            return link.udp.send_to(buf, src).map(drop);
        }

        let broadcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, self.client_port);
        match route {
            Route::Relay { giaddr, port } => link
                .udp
                .send_to(buf, SocketAddrV4::new(*giaddr, *port))
                .map(drop),
            Route::Unicast(ip) => link
                .udp
                .send_to(buf, SocketAddrV4::new(*ip, self.client_port))
                .map(drop),
            Route::Broadcast => link.udp.send_to(buf, broadcast).map(drop),
            Route::Hardware {
                yiaddr,
                chaddr,
                htype,
            } => match self.send_l2(link, origin, *yiaddr, &chaddr.0, *htype, buf) {
                Ok(()) => Ok(()),
                Err(why) => {
                    if !self.fallback_logged.swap(true, Ordering::Relaxed) {
                        tracing::info!(
                            iface = %link.name,
                            reason = %why,
                            "layer-2 unicast not possible; broadcasting such replies instead \
                             (logged once)"
                        );
                    }
                    link.udp.send_to(buf, broadcast).map(drop)
                }
            },
        }
    }

    /// Unicast to `yiaddr` at `chaddr` without ARP: our own IPv4/UDP headers through AF_PACKET.
    fn send_l2(
        &self,
        link: &Link,
        origin: &Origin,
        yiaddr: Ipv4Addr,
        chaddr: &[u8],
        htype: u8,
        payload: &[u8],
    ) -> Result<(), String> {
        let raw = self
            .raw
            .as_ref()
            .ok_or("no AF_PACKET socket (CAP_NET_RAW)")?;
        let mac: [u8; 6] = match (htype, <[u8; 6]>::try_from(chaddr)) {
            (1, Ok(mac)) => mac,
            _ => {
                return Err(format!(
                    "htype {htype} / hlen {} is not Ethernet",
                    chaddr.len()
                ));
            }
        };
        let src_ip = origin
            .local
            .or(link.addr)
            .ok_or("no IPv4 address on the interface")?;
        if link.index == 0 {
            return Err("interface index unknown".into());
        }
        let mut packet = Vec::with_capacity(payload.len() + 28);
        frame::ipv4_udp(
            SocketAddrV4::new(src_ip, self.server_port),
            SocketAddrV4::new(yiaddr, self.client_port),
            payload,
            &mut packet,
        )
        .map_err(|e| e.to_string())?;
        raw.send(link.index, mac, &packet)
            .map_err(|e| format!("AF_PACKET send: {e}"))
    }
}
