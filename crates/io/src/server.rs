//! The engine: one task owns the lease table and calls the pure core, packet by packet.
//!
//! Receive tasks (one per interface) decode and hand requests over a bounded channel; a full
//! channel drops the newest packet and counts it (`dropped.overload`) rather than queueing
//! without bound. The engine never awaits the store: changes that must be durable before the
//! reply go to the commit thread with a callback that sends the reply on success; lazy changes
//! go the same way, fire-and-forget. Later decisions see the applied changes at once, so an
//! address is never offered twice while its commit is in flight.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use leased_core::{
    Decision, Durability, Event, Lease, LeaseChange, LeaseTable, Outcome, Plan, Reply, Request,
    Timestamp, decide,
};
use leased_wire::Packet;
use tokio::sync::mpsc;

use leased_store::CommitDone;

use crate::commit::Committer;
use crate::events;
use crate::guard::{self, DropLog, Guard};
use crate::metrics::Metrics;
use crate::send::{Origin, Outbound};
use crate::shared::{LeaseSnapshot, PUBLISH_EVERY, SharedState};
use crate::sock;

mod conflict;

/// Capacity of the receive → engine queue. About a second of traffic at the rates one engine
/// sustains: enough to ride out a burst (a power-cycled building), small enough that a request
/// is not answered after its client has given up (dhclient retries after ~4 s).
pub(crate) const QUEUE_CAP: usize = 4096;

/// Requests handled per wake-up before the engine goes back to `select!`, so the expiry timer
/// and shutdown are never starved by a flood.
const BATCH: usize = 64;

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
    tx: mpsc::Sender<Inbound>,
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
        let plan = door.plan.load();
        let trust = &plan.config.relay_trust;
        if let Some(key) = trust.key_of(req.packet.giaddr) {
            req.relay_auth = door.check_signature(data, req.packet.giaddr, key);
        }
        if let Some(why) = leased_core::trust::screen(&mut req, trust) {
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
        match tx.try_send(inbound) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.dropped("overload");
                tracing::debug!(iface = %iface, reason = "overload", "engine queue full: dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// What the receive tasks share to judge relay data: the current plan (trust settings, RFC 4030
/// keys) and the last RFC 4030 counter accepted from each signing relay.
#[derive(Debug)]
pub(crate) struct Door {
    pub(crate) plan: Arc<ArcSwap<Plan>>,
    /// By giaddr; holds only relays with a configured key, so it is bounded by the config.
    counters: std::sync::Mutex<std::collections::HashMap<Ipv4Addr, u64>>,
}

impl Door {
    pub(crate) fn new(plan: Arc<ArcSwap<Plan>>) -> Self {
        Self {
            plan,
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

/// Seconds since the Unix epoch (0 if the clock is before 1970).
fn unix_now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The task that owns the lease table.
pub(crate) struct Engine {
    plan: Arc<ArcSwap<Plan>>,
    table: LeaseTable,
    committer: Committer,
    out: Arc<Outbound>,
    metrics: Arc<Metrics>,
    /// The last `now` handed to core: core requires time never to go backwards.
    last_now: Timestamp,
    /// Where to publish lease-table snapshots for readers (the HTTP API), if anyone reads.
    shared: Option<Arc<SharedState>>,
    /// The table changed since the last published snapshot.
    dirty: bool,
    /// When the next snapshot may be published (backs off when copying gets expensive).
    next_publish: Instant,
    /// `[limits]` state: rate buckets and offers in flight (starvation defence).
    guard: Guard,
    /// Rate-limits the guard's drop log lines.
    guard_log: DropLog,
    /// Origin of the guard's monotonic clock.
    started: Instant,
    /// The SQL side's channels (leases other servers wrote, lease history).
    sql: crate::sqlio::EngineSql,
    /// Offers held back while their address is checked (`[server] conflict_check`).
    conflict: conflict::ConflictCheck,
}

impl Engine {
    /// An engine over `table`, reading the current plan from `plan` on every packet.
    pub(crate) fn new(
        plan: Arc<ArcSwap<Plan>>,
        table: LeaseTable,
        committer: Committer,
        out: Arc<Outbound>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            plan,
            table,
            committer,
            out,
            metrics,
            last_now: Timestamp(0),
            shared: None,
            dirty: true,
            next_publish: Instant::now(),
            guard: Guard::default(),
            guard_log: DropLog::default(),
            started: Instant::now(),
            sql: crate::sqlio::EngineSql::default(),
            conflict: conflict::ConflictCheck::default(),
        }
    }

    /// Takes leases learned from the database and sends lease events to the history writer.
    pub(crate) fn with_sql(mut self, sql: crate::sqlio::EngineSql) -> Self {
        self.sql = sql;
        self
    }

    /// Applies leases another server wrote (or a conflict revealed) where they are news.
    fn apply_external(&mut self, ext: crate::sqlio::External) {
        let now = self.now();
        let changes = crate::sqlio::external_changes(&self.table, ext.leases, now, ext.force);
        if !changes.is_empty() {
            tracing::debug!(leases = changes.len(), "applying leases from the database");
            self.table.apply(&changes);
            self.dirty = true;
        }
    }

    /// Publishes lease-table snapshots to `shared` (at once, then when changed, at most every
    /// [`PUBLISH_EVERY`]).
    pub(crate) fn with_shared(mut self, shared: Arc<SharedState>) -> Self {
        self.shared = Some(shared);
        self.dirty = true;
        self.publish(true);
        self
    }

    /// Copies the table into the shared snapshot when it changed and the interval has passed
    /// (`force`: now). The copy runs on the engine task, so its interval grows to ten times
    /// the copy's own duration: publishing never takes more than ~10% of the engine's time,
    /// even with millions of leases.
    fn publish(&mut self, force: bool) {
        let Some(shared) = &self.shared else { return };
        if !self.dirty || (!force && Instant::now() < self.next_publish) {
            return;
        }
        let started = Instant::now();
        let taken_at = self.last_now.max(unix_now());
        let snapshot = LeaseSnapshot {
            leases: self.table.iter().cloned().collect(),
            taken_at,
        };
        shared.leases.store(Arc::new(snapshot));
        self.dirty = false;
        self.next_publish = Instant::now() + PUBLISH_EVERY.max(started.elapsed() * 10);
    }

    /// Runs until every receive task has dropped its sender and the queue is drained, then
    /// returns the committer so the caller can flush and join it.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Inbound>) -> Committer {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut publish_tick = tokio::time::interval(PUBLISH_EVERY);
        publish_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(first) = msg else { break };
                    self.handle(first);
                    for _ in 1..BATCH {
                        match rx.try_recv() {
                            Ok(m) => self.handle(m),
                            Err(_) => break,
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = self.now();
                    self.expire(now);
                }
                _ = publish_tick.tick(), if self.shared.is_some() => self.publish(false),
                Some(leases) = self.sql.next_external() => self.apply_external(leases),
                Some(done) = self.conflict.next_done() => self.conflict_done(done),
            }
        }
        self.committer
    }

    /// The clock, sampled once per packet or timer tick, never going backwards.
    fn now(&mut self) -> Timestamp {
        self.last_now = self.last_now.max(unix_now());
        self.last_now
    }

    /// Decides one request and carries the decision out.
    ///
    /// Changes are applied to the table before they are durable, so later decisions see them.
    /// If their commit then fails, the reply is dropped but the table keeps them: the address
    /// stays held for that client (its retry gets the same one), and since nothing reached the
    /// disk a restart forgets it, exactly as it forgets the unsent ACK.
    pub(crate) fn handle(&mut self, inbound: Inbound) {
        let Inbound {
            req,
            origin,
            received,
        } = inbound;
        let now = self.now();
        let plan = self.plan.load_full();
        let limits = &plan.config.limits;
        if !limits.is_empty() {
            let mono = self.started.elapsed().as_secs_f64();
            let iface = req.interface.as_deref();
            if let Err(why) = self.guard.check(limits, &req.packet, iface, mono, now) {
                self.metrics.dropped(why.label());
                if let Some(drops) = self.guard_log.note(mono) {
                    tracing::warn!(
                        reason = why.label(),
                        mac = %leased_core::HwAddr(req.packet.chaddr().to_vec()),
                        giaddr = %req.packet.giaddr,
                        iface = iface.unwrap_or("-"),
                        drops,
                        "LIMIT request dropped (drops: since the previous line)"
                    );
                }
                return;
            }
        }
        let Decision {
            outcome,
            changes,
            event,
        } = decide(&req, &plan, &self.table, now);
        self.sql
            .decision(&plan, &req, &self.table, &changes, &event, now);
        self.table.apply(&changes);
        self.dirty |= !changes.is_empty();
        if limits.max_offers_in_flight.is_some() || limits.max_offers_in_flight_per_relay.is_some()
        {
            let relay = guard::relay_key(&req.packet, req.interface.as_deref());
            self.guard.track(&changes, &relay);
        }
        events::received(&event, req.interface.as_deref());
        // Releases and NAKs are reported now; the bindings an ACK makes only once durable.
        let acked = crate::capture::decision(
            self.shared.as_deref(),
            &changes,
            &event,
            req.packet.giaddr,
            now,
        );

        let must_wait = changes
            .iter()
            .any(|c| c.durability == Durability::BeforeReply);
        let persist = to_persist(&changes);

        match outcome {
            Outcome::Reply(reply) => {
                if must_wait {
                    let out = Arc::clone(&self.out);
                    let metrics = Arc::clone(&self.metrics);
                    self.submit(
                        persist,
                        Box::new(move |res| match res {
                            Ok(()) => {
                                acked.committed();
                                deliver(&out, &metrics, &reply, &origin, &event, received);
                            }
                            // A shared SQL store committed the group except addresses another
                            // server's client holds: ours is durable unless it is among them.
                            Err(e)
                                if matches!(&*e, leased_store::StoreError::Conflict { ips }
                                if !ips.contains(&reply.packet.yiaddr)) =>
                            {
                                acked.committed();
                                deliver(&out, &metrics, &reply, &origin, &event, received);
                            }
                            // Not durable: the ACK is not sent and the binding not reported.
                            Err(e) => {
                                metrics.store_error();
                                metrics.dropped("store_error");
                                events::commit_failed(&event, reply.packet.message_type(), &e);
                            }
                        }),
                    );
                } else {
                    // No ACK waits for a commit (offers, INFORM): nothing is held back.
                    acked.committed();
                    if !persist.is_empty() {
                        self.submit(persist, lazy_done(Arc::clone(&self.metrics)));
                    }
                    if !self.conflict_hold(&plan, &req, &reply, &origin, &event, received) {
                        deliver(&self.out, &self.metrics, &reply, &origin, &event, received);
                    }
                }
            }
            Outcome::Drop(reason) => {
                acked.committed();
                if reason != leased_core::DropReason::NoReplyNeeded {
                    self.metrics.dropped(reason.label());
                }
                let subnet = matches!(reason, leased_core::DropReason::PoolExhausted)
                    .then(|| subnet_hint(&plan, &req))
                    .flatten();
                let relay = (reason == leased_core::DropReason::CircuitLimit)
                    .then(|| req.packet.options.get(leased_wire::code::RELAY_AGENT_INFO))
                    .flatten()
                    .map(leased_core::RelayInfo::parse);
                events::dropped(&event, reason, subnet.as_deref(), relay.as_ref());
                if !persist.is_empty() {
                    self.submit(persist, lazy_done(Arc::clone(&self.metrics)));
                }
            }
        }
    }

    /// Hands leases to the commit thread; if it has died, says so (the callback, and any reply
    /// it carries, is dropped: the client retries, and the operator must restart).
    fn submit(&self, leases: Vec<Lease>, done: CommitDone) {
        let done = self.sql.wrap_done(done);
        if !self.committer.submit(leases, done) {
            self.metrics.store_error();
            tracing::error!("lease store commit thread has stopped: changes not persisted");
        }
    }

    /// Ends offers, leases and quarantines whose time has come, persisting the changes.
    pub(crate) fn expire(&mut self, now: Timestamp) {
        if self.table.next_deadline().is_none_or(|d| d > now) {
            return;
        }
        let changes = self.table.expire(now);
        if changes.is_empty() {
            return;
        }
        self.dirty = true;
        let mut n = 0;
        for c in &changes {
            events::expired(&c.lease);
            if c.lease.state == leased_core::LeaseState::Expired {
                n += 1;
            }
        }
        self.metrics.expired(n);
        crate::capture::expiries(self.shared.as_deref(), &changes, now);
        // Their history is written once the commit below makes them durable.
        self.sql.expiries(&changes, now);
        let persist = to_persist(&changes);
        if !persist.is_empty() {
            self.submit(persist, lazy_done(Arc::clone(&self.metrics)));
        }
    }
}

/// The leases of `changes` that must reach the store (all but the volatile ones).
fn to_persist(changes: &[LeaseChange]) -> Vec<Lease> {
    changes
        .iter()
        .filter(|c| c.durability != Durability::Volatile)
        .map(|c| c.lease.clone())
        .collect()
}

/// The callback of a commit nobody waits for: only a failure is worth a line.
fn lazy_done(metrics: Arc<Metrics>) -> CommitDone {
    Box::new(move |res| {
        if let Err(e) = res {
            metrics.store_error();
            tracing::error!(error = %e, "lease store commit failed (lazy changes)");
        }
    })
}

/// Sends `reply` and logs and counts the outcome (and its latency since `received`).
fn deliver(
    out: &Outbound,
    metrics: &Metrics,
    reply: &Reply,
    origin: &Origin,
    event: &Event,
    received: Instant,
) {
    let t = reply.packet.message_type();
    match out.send(reply, origin) {
        Ok(()) => {
            metrics.sent(t);
            metrics.reply_latency(received.elapsed());
            events::sent(event, t, reply.packet.yiaddr);
        }
        Err(e) => {
            metrics.send_error();
            tracing::warn!(
                target: events::TARGET,
                mac = %event.hwaddr,
                xid = %events::Xid(event.xid),
                route = ?reply.route,
                src = ?origin.src,
                error = %e,
                "send failed"
            );
        }
    }
}

/// The subnet a request was being served from, for messages (giaddr, then the interface, then
/// our local address).
fn subnet_hint(plan: &Plan, req: &Request) -> Option<String> {
    let subnets = &plan.config.subnets;
    let giaddr = req.packet.giaddr;
    let found = if !giaddr.is_unspecified() {
        subnets.iter().find(|s| s.network.contains(&giaddr))
    } else {
        subnets
            .iter()
            .find(|s| s.interface.is_some() && s.interface == req.interface)
            .or_else(|| {
                req.local_addr
                    .and_then(|ip| subnets.iter().find(|s| s.network.contains(&ip)))
            })
    };
    found.map(|s| s.network.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::mpsc as std_mpsc;

    use leased_core::LeaseState;
    use leased_core::config::{Format, load_str};
    use leased_store::{LeaseStore, StoreError};
    use leased_wire::{MessageType, code};

    use crate::send::Link;
    use crate::testutil::client_packet;

    /// A store whose every commit waits for the test to say how it ends.
    struct GatedStore {
        gate: std_mpsc::Receiver<bool>,
        committed: Arc<Mutex<Vec<Lease>>>,
    }

    impl LeaseStore for GatedStore {
        fn load(&mut self) -> Result<Vec<Lease>, StoreError> {
            Ok(vec![])
        }
        fn commit(&mut self, leases: &[Lease]) -> Result<(), StoreError> {
            if self.gate.recv().unwrap_or(false) {
                self.committed.lock().unwrap().extend_from_slice(leases);
                Ok(())
            } else {
                Err(StoreError::Io {
                    path: "gated".into(),
                    source: std::io::Error::other("injected failure"),
                })
            }
        }
    }

    struct Rig {
        engine: Engine,
        gate: std_mpsc::Sender<bool>,
        committed: Arc<Mutex<Vec<Lease>>>,
        client: std::net::UdpSocket,
        metrics: Arc<Metrics>,
    }

    fn rig() -> Rig {
        let config = load_str(
            r#"
[server]
lease_time = 2
[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
pools = ["198.18.0.10-198.18.0.20"]
"#,
            "test",
            Format::Toml,
        )
        .unwrap();
        let (gate, rx) = std_mpsc::channel();
        let committed = Arc::new(Mutex::new(Vec::new()));
        let store = GatedStore {
            gate: rx,
            committed: Arc::clone(&committed),
        };
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let link = Link {
            name: "lo".into(),
            index: 0,
            addr: Some(Ipv4Addr::LOCALHOST),
            udp: server,
        };
        // Non-default ports: test mode, replies go to the request's source (our client).
        let out = Arc::new(Outbound::new(vec![link], 10067, 10068));
        let metrics = Arc::new(Metrics::default());
        let engine = Engine::new(
            Arc::new(ArcSwap::from_pointee(Plan::new(config))),
            LeaseTable::default(),
            Committer::spawn(Box::new(store)),
            out,
            Arc::clone(&metrics),
        );
        Rig {
            engine,
            gate,
            committed,
            client,
            metrics,
        }
    }

    impl Rig {
        fn feed(&mut self, p: Packet) {
            let std::net::SocketAddr::V4(src) = self.client.local_addr().unwrap() else {
                unreachable!()
            };
            let req = Request::new(p, Some("lo".into()), Some(Ipv4Addr::LOCALHOST), true);
            self.engine.handle(Inbound {
                req,
                origin: Origin {
                    link: 0,
                    src: Some(src),
                    local: Some(Ipv4Addr::LOCALHOST),
                },
                received: Instant::now(),
            });
        }

        fn reply(&self) -> Option<Packet> {
            let mut buf = [0u8; 1500];
            let (n, _) = self.client.recv_from(&mut buf).ok()?;
            Some(Packet::decode(&buf[..n]).unwrap())
        }

        /// DISCOVER → OFFER (sent at once, nothing to persist), then REQUEST queued for commit.
        fn discover_request(&mut self, mac: [u8; 6], xid: u32) -> Ipv4Addr {
            self.feed(client_packet(MessageType::Discover, mac, xid, &[]));
            let offer = self
                .reply()
                .expect("OFFER is sent without waiting for the store");
            assert_eq!(offer.message_type(), Some(MessageType::Offer));
            self.feed(client_packet(
                MessageType::Request,
                mac,
                xid,
                &[
                    (code::REQUESTED_IP, offer.yiaddr.octets().to_vec()),
                    (code::SERVER_ID, vec![198, 18, 0, 1]),
                ],
            ));
            offer.yiaddr
        }
    }

    #[test]
    fn ack_leaves_only_after_commit_and_never_on_store_error() {
        let mut rig = rig();

        // Durable before reply: nothing while the commit is held...
        let ip = rig.discover_request([2, 0, 0, 0, 0, 1], 1);
        assert!(
            rig.reply().is_none(),
            "ACK sent before its lease was durable"
        );
        // ...the ACK as soon as it succeeds.
        rig.gate.send(true).unwrap();
        let ack = rig.reply().expect("ACK after a successful commit");
        assert_eq!(ack.message_type(), Some(MessageType::Ack));
        assert_eq!(ack.yiaddr, ip);
        assert!(rig.committed.lock().unwrap().iter().any(|l| l.ip == ip));

        // A failed commit: no ACK at all (the client will retry), counted.
        rig.discover_request([2, 0, 0, 0, 0, 2], 2);
        rig.gate.send(false).unwrap();
        assert!(rig.reply().is_none(), "ACK sent although the commit failed");
        assert_eq!(rig.metrics.get("store_errors"), 1);
        assert_eq!(rig.metrics.get("dropped.store_error"), 1);
        assert_eq!(rig.metrics.get("sent.ACK"), 1);
        assert_eq!(rig.metrics.get("sent.OFFER"), 2);

        // Expiry: bound leases end after lease_time (2 s) and are persisted lazily. The one
        // whose commit failed is still held in memory (see `Engine::handle`), so it expires too.
        let later = Timestamp(rig.engine.last_now.0 + 10);
        rig.engine.expire(later);
        assert_eq!(rig.metrics.get("expired"), 2);
        rig.gate.send(true).unwrap();
        let Rig {
            engine,
            gate,
            committed,
            ..
        } = rig;
        drop(gate);
        engine.committer.finish();
        let committed = committed.lock().unwrap();
        let last = committed.iter().rev().find(|l| l.ip == ip).unwrap();
        assert_eq!(last.state, LeaseState::Expired);
    }

    /// Issue 7: an ACK's binding reaches the export only once its commit succeeded; a failed
    /// commit (no ACK sent) reports nothing, while a RELEASE is reported at once.
    #[test]
    fn binding_reported_only_after_a_durable_commit() {
        let rig = rig();
        let plan = Arc::clone(&rig.engine.plan);
        let config = plan.load().config.clone();
        let (reload_tx, _reload_rx) = mpsc::channel(1);
        let shared = Arc::new(SharedState {
            plan,
            leases: ArcSwap::from_pointee(LeaseSnapshot::default()),
            metrics: Arc::clone(&rig.metrics),
            source: crate::ConfigSource::Inline(config),
            reload_tx,
            started: Instant::now(),
            bindings: std::sync::OnceLock::new(),
            export_metrics: std::sync::OnceLock::new(),
            monitors: Default::default(),
        });
        let (tx, mut bindings) = mpsc::unbounded_channel();
        assert!(shared.set_binding_sink(tx));
        let Rig {
            engine,
            gate,
            committed,
            client,
            metrics,
        } = rig;
        let mut rig = Rig {
            engine: engine.with_shared(shared),
            gate,
            committed,
            client,
            metrics,
        };

        // Held commit: no ACK yet, and no binding either.
        let ip = rig.discover_request([2, 0, 0, 0, 1, 1], 11);
        assert!(rig.reply().is_none());
        assert!(
            bindings.try_recv().is_err(),
            "binding reported before its commit"
        );
        rig.gate.send(true).unwrap();
        assert_eq!(
            rig.reply().map(|p| p.message_type()),
            Some(Some(MessageType::Ack))
        );
        let b = bindings.try_recv().expect("binding after the commit");
        assert_eq!((b.kind, b.ip), (leased_core::BindingKind::Bound, ip));

        // Failed commit: no ACK, no binding, ever.
        rig.discover_request([2, 0, 0, 0, 1, 2], 12);
        rig.gate.send(false).unwrap();
        assert!(rig.reply().is_none(), "ACK sent although the commit failed");
        assert_eq!(rig.metrics.get("dropped.store_error"), 1);
        assert!(
            bindings.try_recv().is_err(),
            "a binding whose commit failed was reported"
        );

        // RELEASE: reported when decided, as before (its commit is lazy).
        let mut release = client_packet(
            MessageType::Release,
            [2, 0, 0, 0, 1, 1],
            13,
            &[(code::SERVER_ID, vec![198, 18, 0, 1])],
        );
        release.ciaddr = ip;
        rig.feed(release);
        let r = bindings.try_recv();
        let Rig { engine, gate, .. } = rig;
        // Let the lazy RELEASE commit through, then stop the commit thread.
        let _ = gate.send(true);
        drop(gate);
        engine.committer.finish();
        let r = r.expect("RELEASE reported when decided");
        assert_eq!(r.kind, leased_core::BindingKind::Released);
    }

    #[test]
    fn full_queue_counts_overload() {
        let metrics = Arc::new(Metrics::default());
        let (tx, _rx) = mpsc::channel::<Inbound>(1);
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

    fn lo_plan() -> Arc<ArcSwap<Plan>> {
        let c = crate::testutil::config_with(&["198.18.0.0/24"], &["lo"], &[Some("lo")]);
        Arc::new(ArcSwap::from_pointee(Plan::new(c)))
    }

    /// The receive loop is the trust boundary: a direct client's own Option 82 never reaches
    /// the engine (nor the limits or the SQL chain before it), and is counted.
    #[test]
    fn a_direct_clients_option82_is_removed_at_the_door() {
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = mpsc::channel::<Inbound>(8);
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
