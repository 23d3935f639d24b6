//! `leased relay`: the relay agent's sockets and tasks around the pure rewrite in
//! [`leased_core::relay_agent`].
//!
//! Sockets: one UDP socket on port 67 per client-facing interface (SO_BINDTODEVICE, so each
//! sees only its link's broadcasts and knows the link implicitly), and one unbound socket on
//! port 67 towards the upstream servers: requests leave from source port 67 as RFC 1542 wants,
//! and server replies (unicast to giaddr) arrive there, or on a client socket when a server
//! sits on a client link. Replies are delivered with the server's own send path
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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hashlink::LruCache;
use leased_config::RelaySettings;
use leased_core::relay_agent::{
    AgentLink, AgentPolicy, Delivery, binding_from_reply, expand_template, relay_reply,
    relay_request, requested_address, rewrite_server_id, server_id,
};
use leased_core::{BindingEvent, BindingKind, HwAddr, RelayInfo, Timestamp};
use leased_wire::{BOOTREPLY, BOOTREQUEST, MessageType, Packet};
use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::sync::mpsc;

use crate::send::{Link, Origin, Outbound};
use crate::sock::{self, recv_pktinfo};

/// The server port relays listen on and send to (RFC 2131 §4.1).
const SERVER_PORT: u16 = 67;
/// The client port replies go to.
const CLIENT_PORT: u16 = 68;
/// Clients (and requests in flight) remembered between request and reply. The least recently
/// used entry makes room for a new one, so a flood of new clients costs O(1) per packet and
/// evicts the oldest memories, never the whole table.
const MEMO_CAP: usize = 100_000;
/// How long after a request a reply to it (same xid and chaddr) is accepted. Servers answer in
/// milliseconds; several upstreams may answer one request, so the entry is not removed on the
/// first reply.
const REPLY_WINDOW: Duration = Duration::from_secs(30);

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

/// One client-facing link, resolved at start.
struct ClientLink {
    name: String,
    address: Ipv4Addr,
    circuit_id: Vec<u8>,
    remote_id: Vec<u8>,
}

/// What the relay remembers of a client between its request and the server's reply.
#[derive(Default, Clone)]
struct Memo {
    hostname: Option<String>,
    requested: Option<Ipv4Addr>,
}

struct Relay {
    links: Vec<ClientLink>,
    policy: AgentPolicy,
    upstreams: Vec<Ipv4Addr>,
    upstream_sock: std::net::UdpSocket,
    out: Outbound,
    memo: Mutex<LruCache<Vec<u8>, Memo>>,
    /// Requests forwarded, by (xid, chaddr): when each was last seen.
    in_flight: Mutex<LruCache<(u32, [u8; 16]), Instant>>,
    /// `rewrite_server_id`: the real server behind each (chaddr, address) we answered for.
    rewrite_sid: bool,
    /// RFC 4030: the key our requests are signed with, and the last replay counter used.
    auth_key: Option<Vec<u8>>,
    auth_counter: AtomicU64,
    server_ids: Mutex<LruCache<(Vec<u8>, Ipv4Addr), Ipv4Addr>>,
    bindings: Option<mpsc::UnboundedSender<BindingEvent>>,
    counters: Arc<RelayCounters>,
}

fn unix_now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The interface's MAC from sysfs (`{mac}` in remote-id templates); `None` if it has none.
fn iface_mac(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mac = HwAddr::parse_mac(text.trim())?;
    <[u8; 6]>::try_from(mac.0.as_slice()).ok()
}

/// The unbound upstream-side socket on 0.0.0.0:67.
fn bind_upstream() -> io::Result<(tokio::net::UdpSocket, std::net::UdpSocket)> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    setsockopt(&sock, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
    sock.set_nonblocking(true)?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT));
    sock.bind(&SockAddr::from(addr))?;
    let std_sock: std::net::UdpSocket = sock.into();
    let send = std_sock.try_clone()?;
    Ok((tokio::net::UdpSocket::from_std(std_sock)?, send))
}

/// Runs the relay agent until SIGTERM/SIGINT or the stop hook.
pub async fn relay(settings: &RelaySettings, hooks: RelayHooks) -> anyhow::Result<()> {
    let addrs = sock::system_addrs().context("cannot list interface addresses")?;
    let mut links = Vec::new();
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
        links.push(ClientLink {
            name: iface.name.clone(),
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
    let (up_recv, up_send) =
        bind_upstream().context("cannot open the upstream socket on port 67")?;
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
    let relay = Arc::new(Relay {
        links,
        policy: AgentPolicy {
            max_hops: settings.max_hops,
            option82: settings.option82,
            existing: settings.existing_option82,
            link_selection: settings.link_selection,
            server_id_override: settings.server_id_override,
        },
        upstreams: settings.upstreams.clone(),
        upstream_sock: up_send,
        out,
        memo: Mutex::new(LruCache::new(MEMO_CAP)),
        in_flight: Mutex::new(LruCache::new(MEMO_CAP)),
        rewrite_sid: settings.rewrite_server_id,
        auth_key: settings.auth_key.as_ref().map(|k| k.0.clone()),
        auth_counter: AtomicU64::new(0),
        server_ids: Mutex::new(LruCache::new(MEMO_CAP)),
        bindings: hooks.bindings,
        counters: Arc::default(),
    });
    let ups: Vec<String> = settings.upstreams.iter().map(ToString::to_string).collect();
    tracing::info!(upstreams = %ups.join(","), max_hops = settings.max_hops, "relay started");

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
    let names: Vec<&str> = relay.links.iter().map(|l| l.name.as_str()).collect();
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
    fn emit(&self, ev: BindingEvent) {
        tracing::info!(kind = ?ev.kind, mac = %ev.mac, ip = %ev.ip, "binding");
        if let Some(tx) = &self.bindings {
            let _ = tx.send(ev);
        }
    }

    fn drop_count(&self, what: &str, link: &str) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(iface = %link, reason = %what, "relay: datagram dropped");
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
            let Some(data) = buf.get(..rx.len) else {
                continue;
            };
            match data.first() {
                Some(&BOOTREQUEST) => self.on_request(i, data),
                // A server on a client link: only the configured upstreams are believed, so
                // a client cannot forge replies to its neighbours through us.
                Some(&BOOTREPLY) if rx.src.is_some_and(|s| self.upstreams.contains(s.ip())) => {
                    self.on_reply(data);
                }
                Some(&BOOTREPLY) => self.unsolicited(data, rx.src, "not from an upstream"),
                _ => {}
            }
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
            // Client broadcasts reach this unbound socket too; the link's own socket handles
            // them. Only replies count here, and only unicast ones (to our giaddr).
            let Some(data) = buf.get(..rx.len) else {
                continue;
            };
            if data.first() != Some(&BOOTREPLY) || rx.dst == Some(Ipv4Addr::BROADCAST) {
                continue;
            }
            // Anyone can send to port 67: only the servers we forward to are believed.
            if rx.src.is_some_and(|s| self.upstreams.contains(s.ip())) {
                self.on_reply(data);
            } else {
                self.unsolicited(data, rx.src, "not from an upstream");
            }
        }
    }

    /// Counts and logs a reply that is not delivered because nobody we trust sent it, or it
    /// answers no request of ours.
    fn unsolicited(&self, data: &[u8], src: Option<SocketAddrV4>, why: &str) {
        self.counters
            .unsolicited_replies
            .fetch_add(1, Ordering::Relaxed);
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        let xid = data
            .get(4..8)
            .and_then(|x| <[u8; 4]>::try_from(x).ok())
            .map(|x| format!("{:08x}", u32::from_be_bytes(x)));
        tracing::debug!(src = ?src, xid = ?xid, reason = why, "relay: reply dropped");
    }

    /// The next RFC 4030 replay counter: the wall clock in nanoseconds, and always above the
    /// previous one, so that it keeps rising across restarts (the server remembers the last
    /// one it accepted) as long as the clock does not go back.
    fn next_counter(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let prev = self
            .auth_counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(now.max(p.saturating_add(1)))
            })
            .unwrap_or(0);
        now.max(prev.saturating_add(1))
    }

    /// Remembers a forwarded request so that its replies are recognised.
    fn note_in_flight(&self, p: &Packet) {
        if let Ok(mut m) = self.in_flight.lock() {
            m.insert((p.xid, p.chaddr), Instant::now());
        }
    }

    /// True when `p` answers a request forwarded within [`REPLY_WINDOW`].
    fn answers_in_flight(&self, p: &Packet) -> bool {
        self.in_flight
            .lock()
            .ok()
            .and_then(|mut m| m.get(&(p.xid, p.chaddr)).copied())
            .is_some_and(|at| at.elapsed() <= REPLY_WINDOW)
    }

    fn on_request(&self, i: usize, data: &[u8]) {
        let Some(link) = self.links.get(i) else {
            return;
        };
        let agent = AgentLink {
            address: link.address,
            circuit_id: &link.circuit_id,
            remote_id: &link.remote_id,
            signature: self.auth_key.as_ref().map(|_| self.next_counter()),
        };
        let mut fwd = match relay_request(data, &agent, &self.policy) {
            Ok(f) => f,
            Err(why) => return self.drop_count(why.label(), &link.name),
        };
        if fwd.scrubbed_overload {
            self.counters
                .hidden_option82
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(iface = %link.name, "relay: Option 82 hidden in file/sname blanked");
        }
        if fwd.did_not_fit {
            self.counters
                .option82_did_not_fit
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(iface = %link.name, "Option 82 did not fit; forwarded without it");
        }
        if let Ok(p) = Packet::decode(data) {
            self.note_in_flight(&p);
            let key = p.chaddr().to_vec();
            if let Ok(mut memo) = self.memo.lock() {
                let mut m = memo.remove(&key).unwrap_or_default();
                if fwd.hostname.is_some() {
                    m.hostname.clone_from(&fwd.hostname);
                }
                if let Some(r) = requested_address(data) {
                    m.requested = Some(r);
                }
                memo.insert(key, m);
            }
            if fwd.message_type == Some(MessageType::Release) && !p.ciaddr.is_unspecified() {
                self.emit(BindingEvent {
                    kind: BindingKind::Released,
                    mac: HwAddr(p.chaddr().to_vec()),
                    ip: p.ciaddr,
                    at: unix_now(),
                    lease_time: None,
                    expires: None,
                    remote_id: None,
                    circuit_id: None,
                    hostname: None,
                    giaddr: Some(link.address),
                });
            }
        }
        // A request naming us as its server (we rewrote option 54) gets the real one back.
        if self.rewrite_sid && server_id(&fwd.bytes) == Some(link.address) {
            let chaddr = Packet::decode(data)
                .map(|p| p.chaddr().to_vec())
                .unwrap_or_default();
            let key = (
                chaddr,
                requested_address(data).unwrap_or(Ipv4Addr::UNSPECIFIED),
            );
            let real = self
                .server_ids
                .lock()
                .ok()
                .and_then(|m| m.peek(&key).copied());
            if let Some(real) = real {
                rewrite_server_id(&mut fwd.bytes, Some(link.address), real);
            }
        }
        // Signed last: nothing may change the bytes after the MAC (option 54 above did).
        if let Some(key) = &self.auth_key
            && !(fwd.inserted && leased_core::relay_auth::sign(&mut fwd.bytes, key))
        {
            self.counters.unsigned.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(iface = %link.name, "relay: request forwarded unsigned (no Option 82 of ours in it)");
        }
        let mut sent = false;
        for up in &self.upstreams {
            match self
                .upstream_sock
                .send_to(&fwd.bytes, SocketAddrV4::new(*up, SERVER_PORT))
            {
                Ok(_) => sent = true,
                Err(e) => {
                    self.counters
                        .upstream_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(upstream = %up, error = %e, "relay: cannot forward to upstream");
                }
            }
        }
        if sent {
            self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(iface = %link.name, msg = ?fwd.message_type, "relay: forwarded");
        }
    }

    fn on_reply(&self, data: &[u8]) {
        match Packet::decode(data) {
            Ok(p) if self.answers_in_flight(&p) => {}
            Ok(_) => return self.unsolicited(data, None, "answers no request we forwarded"),
            Err(_) => return self.drop_count("malformed", "upstream"),
        }
        let ours = |g: Ipv4Addr| self.links.iter().any(|l| l.address == g);
        let mut d: Delivery = match relay_reply(data, ours) {
            Ok(d) => d,
            Err(why) => return self.drop_count(why.label(), "upstream"),
        };
        let Some(i) = self.links.iter().position(|l| l.address == d.giaddr) else {
            return;
        };
        let Some(link) = self.links.get(i) else {
            return;
        };
        if matches!(d.message_type, Some(MessageType::Ack | MessageType::Nak)) {
            let chaddr = Packet::decode(data)
                .map(|p| p.chaddr().to_vec())
                .unwrap_or_default();
            let memo = self
                .memo
                .lock()
                .ok()
                .and_then(|m| m.peek(&chaddr).cloned())
                .unwrap_or_default();
            let ours = self.policy.option82.then(|| {
                let agent = AgentLink {
                    address: link.address,
                    circuit_id: &link.circuit_id,
                    remote_id: &link.remote_id,
                    signature: None,
                };
                RelayInfo::parse(&leased_core::relay_agent::option82_value(
                    &agent,
                    &self.policy,
                ))
            });
            if let Some(ev) = binding_from_reply(
                data,
                unix_now(),
                memo.hostname,
                memo.requested,
                ours.as_ref(),
            ) {
                self.emit(ev);
            }
        }
        if self.rewrite_sid
            && let Some(real) = rewrite_server_id(&mut d.bytes, None, link.address)
            && real != link.address
            && let Ok(p) = Packet::decode(data)
        {
            let ip = if p.yiaddr.is_unspecified() {
                p.ciaddr
            } else {
                p.yiaddr
            };
            if let Ok(mut m) = self.server_ids.lock() {
                m.insert((p.chaddr().to_vec(), ip), real);
            }
        }
        let origin = Origin {
            link: i,
            src: None,
            local: Some(link.address),
        };
        match self.out.send_encoded(&d.bytes, &d.route, &origin) {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(iface = %link.name, msg = ?d.message_type, route = ?d.route, "relay: delivered");
            }
            Err(e) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(iface = %link.name, error = %e, "relay: cannot deliver reply");
            }
        }
    }
}
