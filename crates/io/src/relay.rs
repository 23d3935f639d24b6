//! `leased relay`: the driver of the sans-IO [`RelayAgent`] in [`leased_core::relay_agent`].
//! The agent decides (what is forwarded, which reply is believed, which binding billing sees);
//! this file owns the sockets, the clock, the tasks and the hooks, and carries out what the
//! agent polls.
//!
//! Sockets: one UDP socket on port 67 per client-facing interface (SO_BINDTODEVICE, so each
//! sees only its link's broadcasts and knows the link implicitly), and one unbound socket on
//! port 67 towards the upstream servers: requests leave from source port 67 as RFC 1542 wants,
//! and server replies (unicast to giaddr) arrive there, or on a client socket when a server
//! sits on a client link. With `source_port` set (RFC 8357) that socket is on the configured
//! port instead, every Option 82 we insert carries the relay-port sub-option, and servers that
//! honour it answer on that port, so several relays can share a host whose port 67 is taken. Replies are delivered with the server's own send path
//! ([`Outbound::send_encoded`]): broadcast, unicast to ciaddr, or layer-2 unicast to yiaddr at
//! chaddr with broadcast as the fallback.
//!
//! Each upstream gets its own send; one that is down (ICMP unreachable, no route) costs a log
//! line and a counter, never the others' copies.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context;
use leased_config::RelaySettings;
use leased_core::relay_agent::{
    AgentConfig, AgentPolicy, DEFAULT_CAPACITY, LinkConfig, Now, Received, RelayAgent, RelayDrop,
    RelayEvent, Transmit, expand_template,
};
use leased_core::{BindingEvent, HwAddr};
use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::sync::mpsc;

use crate::send::{Link, Origin, Outbound};
use crate::sock::{self, recv_pktinfo};

/// The server port relays listen on and send to (RFC 2131 §4.1).
const SERVER_PORT: u16 = 67;
/// The client port replies go to.
const CLIENT_PORT: u16 = 68;

/// What `leased relay` needs besides its settings.
#[derive(Default)]
pub struct RelayHooks {
    /// Binding events (ACK, NAK, RELEASE seen in relayed traffic) go here, for export.
    pub bindings: Option<mpsc::UnboundedSender<BindingEvent>>,
    /// Stop gracefully when this completes (tests, embedding); SIGTERM/SIGINT always stop.
    pub stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// `[server] user` / `group`: become this account once every socket is bound, keeping no
    /// capability (the relay opens nothing later).
    pub run_as: Option<leased_config::RunAs>,
    /// Directories the relay (its exporter) still writes in after dropping root: handed over
    /// to the user when the user owns them, and start-up fails clearly when it cannot write.
    pub writable_dirs: Vec<std::path::PathBuf>,
}

impl std::fmt::Debug for RelayHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHooks")
            .field("bindings", &self.bindings.is_some())
            .field("stop", &self.stop.is_some())
            .field("run_as", &self.run_as)
            .field("writable_dirs", &self.writable_dirs)
            .finish()
    }
}

/// Counters of the relay, logged at shutdown and readable by embedders.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Requests forwarded (counted once, whatever the number of upstreams).
    pub forwarded: AtomicU64,
    /// Copies that could not be sent to one upstream.
    pub upstream_errors: AtomicU64,
    /// Replies delivered to clients.
    pub delivered: AtomicU64,
    /// Datagrams dropped (malformed, hop limit, policy, not ours).
    pub dropped: AtomicU64,
    /// Requests forwarded without our Option 82 because it did not fit.
    pub option82_did_not_fit: AtomicU64,
    /// Replies dropped because they came from no configured upstream, or answer no request we
    /// forwarded (a forged OFFER/ACK must not reach a client, nor become a billing binding).
    pub unsolicited_replies: AtomicU64,
    /// Requests from which an Option 82 hidden in `file`/`sname` was blanked.
    pub hidden_option82: AtomicU64,
    /// With `auth_key`: requests forwarded without our signature (our Option 82 did not fit,
    /// or a downstream relay's was kept).
    pub unsigned: AtomicU64,
}

/// The driver's state: the sockets it sends on, the agent it carries out, the hooks.
struct Relay {
    /// Interface names, by link index: for logs.
    names: Vec<String>,
    /// Our address on each link, by link index: the local address of deliveries.
    addresses: Vec<Ipv4Addr>,
    /// Every decision; locked only around a handler and its polls, never across a send.
    agent: Mutex<RelayAgent>,
    /// The origin of the agent's monotonic clock.
    started: Instant,
    upstream_sock: std::net::UdpSocket,
    out: Outbound,
    bindings: Option<mpsc::UnboundedSender<BindingEvent>>,
    counters: Arc<RelayCounters>,
}

/// The interface's MAC from sysfs (`{mac}` in remote-id templates); `None` if it has none.
fn iface_mac(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mac = HwAddr::parse_mac(text.trim())?;
    <[u8; 6]>::try_from(mac.0.as_slice()).ok()
}

/// The unbound upstream-side socket on 0.0.0.0:`port` (67, or the RFC 8357 relay port).
fn bind_upstream(port: u16) -> io::Result<(tokio::net::UdpSocket, std::net::UdpSocket)> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    setsockopt(&sock, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
    sock.set_nonblocking(true)?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    sock.bind(&SockAddr::from(addr))?;
    let std_sock: std::net::UdpSocket = sock.into();
    let send = std_sock.try_clone()?;
    Ok((tokio::net::UdpSocket::from_std(std_sock)?, send))
}

/// Runs the relay agent until SIGTERM/SIGINT or the stop hook.
pub async fn relay(settings: &RelaySettings, hooks: RelayHooks) -> anyhow::Result<()> {
    let addrs = sock::system_addrs().context("cannot list interface addresses")?;
    let mut links = Vec::new();
    let mut names = Vec::new();
    let mut out_links = Vec::new();
    let mut receivers = Vec::new();
    for iface in &settings.interfaces {
        let address = match iface.address {
            Some(a) => a,
            None => addrs
                .iter()
                .find(|a| a.name == iface.name)
                .map(|a| a.addr)
                .with_context(|| {
                    format!(
                        "interface {} has no IPv4 address to use as giaddr",
                        iface.name
                    )
                })?,
        };
        let index = sock::if_index(&iface.name)
            .with_context(|| format!("interface {} not found", iface.name))?;
        let mac = iface_mac(&iface.name);
        let (recv, send) = sock::bind_udp(&iface.name, SERVER_PORT)
            .with_context(|| format!("cannot listen on {} port {SERVER_PORT}", iface.name))?;
        names.push(iface.name.clone());
        links.push(LinkConfig {
            address,
            circuit_id: expand_template(&iface.circuit_id, &iface.name, index, mac),
            remote_id: expand_template(&iface.remote_id, &iface.name, index, mac),
        });
        out_links.push(Link {
            name: iface.name.clone(),
            index,
            addr: Some(address),
            udp: send,
        });
        receivers.push(recv);
        tracing::info!(iface = %iface.name, giaddr = %address, "relaying clients on this link");
    }
    let up_port = settings.source_port;
    let (up_recv, up_send) = bind_upstream(up_port)
        .with_context(|| format!("cannot open the upstream socket on port {up_port}"))?;
    let out = Outbound::new(out_links, SERVER_PORT, CLIENT_PORT);
    if let Some(run_as) = &hooks.run_as {
        for dir in &hooks.writable_dirs {
            crate::privileges::hand_over_tree(dir, run_as);
        }
        crate::privileges::drop_to(run_as, crate::privileges::RELAY_CAPS)?;
        for dir in &hooks.writable_dirs {
            crate::privileges::require_writable_tree(dir, "the export outbox", run_as)?;
        }
    }
    let addresses = links.iter().map(|l| l.address).collect();
    let agent = RelayAgent::new(AgentConfig {
        links,
        upstreams: settings.upstreams.clone(),
        policy: AgentPolicy {
            max_hops: settings.max_hops,
            option82: settings.option82,
            existing: settings.existing_option82,
            link_selection: settings.link_selection,
            server_id_override: settings.server_id_override,
            relay_port: settings.source_port != SERVER_PORT,
        },
        rewrite_server_id: settings.rewrite_server_id,
        auth_key: settings.auth_key.as_ref().map(|k| k.0.clone()),
        capacity: DEFAULT_CAPACITY,
    });
    let relay = Arc::new(Relay {
        names,
        addresses,
        agent: Mutex::new(agent),
        started: Instant::now(),
        upstream_sock: up_send,
        out,
        bindings: hooks.bindings,
        counters: Arc::default(),
    });
    let ups: Vec<String> = settings.upstreams.iter().map(ToString::to_string).collect();
    tracing::info!(
        upstreams = %ups.join(","),
        max_hops = settings.max_hops,
        source_port = up_port,
        "relay started"
    );

    // Every receive loop beats; the watchdog is fed only while all of them do.
    let beats = crate::notify::Heartbeats::new(receivers.len() + 1);
    let upstream_beat = receivers.len();
    let mut tasks = Vec::new();
    for (i, sock) in receivers.into_iter().enumerate() {
        let r = Arc::clone(&relay);
        let b = Arc::clone(&beats);
        tasks.push(tokio::spawn(async move { r.client_loop(i, sock, b).await }));
    }
    let r = Arc::clone(&relay);
    let b = Arc::clone(&beats);
    tasks.push(tokio::spawn(async move {
        r.upstream_loop(up_recv, b, upstream_beat).await
    }));

    let mut stop = hooks.stop;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // The relay reads its config only at start. Without a handler SIGHUP would end it.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let names: Vec<&str> = relay.names.iter().map(String::as_str).collect();
    crate::notify::ready(&format!(
        "relaying on {} to {}",
        names.join(", "),
        ups.join(", ")
    ));
    let _status = crate::notify::StatusTask::spawn(relay_status(Arc::clone(&relay.counters)));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => tracing::warn!(
                "SIGHUP ignored: leased relay reads its config only at start; restart it to \
                 apply a change"
            ),
            () = async { match &mut stop { Some(s) => s.await, None => std::future::pending().await } } => break,
        }
    }
    crate::notify::stopping();
    for t in &tasks {
        t.abort();
    }
    let c = &relay.counters;
    tracing::info!(
        forwarded = c.forwarded.load(Ordering::Relaxed),
        delivered = c.delivered.load(Ordering::Relaxed),
        dropped = c.dropped.load(Ordering::Relaxed),
        upstream_errors = c.upstream_errors.load(Ordering::Relaxed),
        unsolicited_replies = c.unsolicited_replies.load(Ordering::Relaxed),
        hidden_option82 = c.hidden_option82.load(Ordering::Relaxed),
        unsigned = c.unsigned.load(Ordering::Relaxed),
        "relay stopped"
    );
    Ok(())
}

/// The relay's one-line status: requests forwarded and replies delivered, per second since the
/// previous line and in all.
fn relay_status(c: Arc<RelayCounters>) -> impl FnMut(f64) -> String + Send + 'static {
    let totals = move || {
        (
            c.forwarded.load(Ordering::Relaxed),
            c.delivered.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
        )
    };
    let mut before = totals();
    move |secs| {
        let now = totals();
        // Counts far below 2^52: exact enough for a status line.
        #[allow(clippy::cast_precision_loss)]
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        let line = format!(
            "{:.1} requests/s forwarded, {:.1} replies/s delivered; {} forwarded, {} delivered, \
             {} dropped since start",
            rate(now.0, before.0),
            rate(now.1, before.1),
            now.0,
            now.1,
            now.2
        );
        before = now;
        line
    }
}

impl Relay {
    /// The time for the agent: the only clock reads of `leased relay`.
    fn now(&self) -> Now {
        Now {
            wall: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
            mono: self.started.elapsed(),
        }
    }

    /// Runs one handler on the agent, then carries out everything it polls: events first
    /// (billing, counters, logs), then sends, with the lock released.
    fn drive(&self, handle: impl FnOnce(&mut RelayAgent, Now)) {
        let now = self.now();
        let (events, transmits) = {
            let mut agent = self.agent.lock().unwrap_or_else(PoisonError::into_inner);
            handle(&mut agent, now);
            let events: Vec<RelayEvent> = std::iter::from_fn(|| agent.poll_event()).collect();
            let transmits: Vec<Transmit> = std::iter::from_fn(|| agent.poll_transmit()).collect();
            (events, transmits)
        };
        for ev in events {
            self.event(ev);
        }
        for t in transmits {
            self.transmit(t);
        }
    }

    fn name(&self, link: usize) -> &str {
        self.names.get(link).map_or("?", String::as_str)
    }

    fn event(&self, ev: RelayEvent) {
        let c = &self.counters;
        match ev {
            RelayEvent::Binding(ev) => {
                tracing::info!(kind = ?ev.kind, mac = %ev.mac, ip = %ev.ip, "binding");
                if let Some(tx) = &self.bindings {
                    let _ = tx.send(ev);
                }
            }
            RelayEvent::Dropped {
                reason: reason @ (RelayDrop::NotFromUpstream | RelayDrop::Unsolicited),
                src,
                xid,
                ..
            } => {
                c.unsolicited_replies.fetch_add(1, Ordering::Relaxed);
                c.dropped.fetch_add(1, Ordering::Relaxed);
                let xid = xid.map(|x| format!("{x:08x}"));
                tracing::debug!(src = ?src, xid = ?xid, reason = reason.label(), "relay: reply dropped");
            }
            RelayEvent::Dropped { reason, link, .. } => {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                let iface = link.map_or("upstream", |l| self.name(l));
                tracing::debug!(iface = %iface, reason = %reason.label(), "relay: datagram dropped");
            }
            RelayEvent::HiddenOption82Blanked { link } => {
                c.hidden_option82.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(iface = %self.name(link), "relay: Option 82 hidden in file/sname blanked");
            }
            RelayEvent::Option82DidNotFit { link } => {
                c.option82_did_not_fit.fetch_add(1, Ordering::Relaxed);
                tracing::info!(iface = %self.name(link), "Option 82 did not fit; forwarded without it");
            }
            RelayEvent::Unsigned { link } => {
                c.unsigned.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(iface = %self.name(link), "relay: request forwarded unsigned (no Option 82 of ours in it)");
            }
        }
    }

    fn transmit(&self, t: Transmit) {
        let c = &self.counters;
        match t {
            Transmit::Upstream {
                link,
                to,
                bytes,
                message_type,
            } => {
                let mut sent = false;
                for up in to.iter() {
                    match self
                        .upstream_sock
                        .send_to(&bytes, SocketAddrV4::new(*up, SERVER_PORT))
                    {
                        Ok(_) => sent = true,
                        Err(e) => {
                            c.upstream_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(upstream = %up, error = %e, "relay: cannot forward to upstream");
                        }
                    }
                }
                if sent {
                    c.forwarded.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(iface = %self.name(link), msg = ?message_type, "relay: forwarded");
                }
            }
            Transmit::Client {
                link,
                route,
                bytes,
                message_type,
            } => {
                let origin = Origin {
                    link,
                    src: None,
                    local: self.addresses.get(link).copied(),
                };
                match self.out.send_encoded(&bytes, &route, &origin) {
                    Ok(()) => {
                        c.delivered.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(iface = %self.name(link), msg = ?message_type, route = ?route, "relay: delivered");
                    }
                    Err(e) => {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(iface = %self.name(link), error = %e, "relay: cannot deliver reply");
                    }
                }
            }
        }
    }

    async fn client_loop(
        self: Arc<Self>,
        i: usize,
        sock: tokio::net::UdpSocket,
        beats: Arc<crate::notify::Heartbeats>,
    ) {
        let mut buf = vec![0u8; 4096];
        let mut beat = tokio::time::interval(crate::notify::BEAT_EVERY);
        loop {
            let received = tokio::select! {
                r = recv_pktinfo(&sock, &mut buf) => r,
                _ = beat.tick() => {
                    beats.beat(i);
                    continue;
                }
            };
            let rx = match received {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(bytes) = buf.get(..rx.len) else {
                continue;
            };
            let rx = Received {
                src: rx.src,
                dst: rx.dst,
                bytes,
            };
            self.drive(|agent, now| agent.handle_client(now, i, rx));
        }
    }

    async fn upstream_loop(
        self: Arc<Self>,
        sock: tokio::net::UdpSocket,
        beats: Arc<crate::notify::Heartbeats>,
        me: usize,
    ) {
        let mut buf = vec![0u8; 4096];
        let mut beat = tokio::time::interval(crate::notify::BEAT_EVERY);
        loop {
            let received = tokio::select! {
                r = recv_pktinfo(&sock, &mut buf) => r,
                _ = beat.tick() => {
                    beats.beat(me);
                    continue;
                }
            };
            let rx = match received {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: upstream receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(bytes) = buf.get(..rx.len) else {
                continue;
            };
            let rx = Received {
                src: rx.src,
                dst: rx.dst,
                bytes,
            };
            self.drive(|agent, now| agent.handle_upstream(now, rx));
        }
    }
}
