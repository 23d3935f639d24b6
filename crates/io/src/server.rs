//! The engine's driver: receive tasks feed one task that owns the sans-IO
//! [`leased_engine::Engine`] — the only reader of the clock for it, the only `select!` around
//! it — and carries out what it asks: replies to send, leases to commit, addresses to probe,
//! lease events to log, record and bill.
//!
//! Receive tasks (one per interface) decode, screen relay data and hand requests over a bounded
//! channel; a full channel drops the newest packet and counts it (`dropped.overload`) rather
//! than queueing without bound. The driver never awaits the store: commits go to the commit
//! thread, whose outcomes come back through a channel to `Engine::handle_commit`, which releases
//! the replies waiting for them. Later decisions see applied changes at once, so an address is
//! never offered twice while its commit is in flight.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use leased_core::{Event, LeaseState, LeaseTable, Reply, Timestamp};
use leased_engine::{CommitId, CommitOutcome, Effect, Engine, Now, Transmit};
use leased_store::StoreError;
use tokio::sync::mpsc;

use crate::commit::Committer;
use crate::events;
use crate::loaded::Current;
use crate::metrics::Metrics;
use crate::recv::{Inbound, LaneRx};
use crate::send::{Origin, Outbound};
use crate::shared::{LeaseSnapshot, PUBLISH_EVERY, SharedState};

mod leasequery;
mod probe;

/// Requests handled per wake-up before the engine goes back to `select!`, so the expiry timer
/// and shutdown are never starved by a flood.
const BATCH: usize = 64;

/// Seconds since the Unix epoch (0 if the clock is before 1970).
fn unix_now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The task that drives the engine.
pub(crate) struct Driver {
    engine: Engine,
    /// The current load; its plan and settings go to the engine when a reload swapped them.
    current: Current,
    committer: Committer,
    /// Commit outcomes, from the commit thread back to the engine.
    commit_tx: mpsc::UnboundedSender<(CommitId, CommitOutcome)>,
    commit_rx: mpsc::UnboundedReceiver<(CommitId, CommitOutcome)>,
    /// Finished conflict checks.
    probe_tx: mpsc::UnboundedSender<probe::Done>,
    probe_rx: mpsc::UnboundedReceiver<probe::Done>,
    out: Arc<Outbound>,
    metrics: Arc<Metrics>,
    /// Where to publish lease-table snapshots for readers (the HTTP API), if anyone reads.
    shared: Option<Arc<SharedState>>,
    /// When the next snapshot may be published (backs off when copying gets expensive).
    next_publish: Instant,
    /// The table changed since the last published snapshot.
    dirty: bool,
    /// Origin of the engine's monotonic clock.
    started: Instant,
    /// The SQL side's channels (leases other servers wrote, lease history).
    sql: crate::sqlio::EngineSql,
    /// The HA partner side, with `[ha]`.
    ha: Option<crate::ha::HaSide>,
    /// The loaded plan last handed to the engine (with HA the engine may decide with a half
    /// of it).
    applied: Arc<leased_core::Plan>,
    /// Where binding changes go for DNS updates (`[ddns]`), if configured.
    ddns: Option<crate::ddns::DdnsSink>,
    /// Leasequery: TCP connections' requests and active queries' streams.
    lq: leasequery::LqSide,
}

/// Commit outcomes handled per wake-up: the outcomes of one group at full load.
const COMMIT_BATCH: usize = 256;

/// How long shutdown waits for the outcomes of commits in flight (their replies may still
/// leave).
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

impl Driver {
    /// A driver over `table`, reading the current plan from `current`.
    pub(crate) fn new(
        current: Current,
        table: LeaseTable,
        committer: Committer,
        out: Arc<Outbound>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (commit_tx, commit_rx) = mpsc::unbounded_channel();
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let applied = Arc::clone(&current.load().plan);
        Self {
            engine: {
                let loaded = current.load();
                Engine::new(Arc::clone(&loaded.plan), Arc::clone(&loaded.engine), table)
            },
            ha: None,
            lq: leasequery::LqSide::default(),
            applied,
            current,
            committer,
            commit_tx,
            commit_rx,
            probe_tx,
            probe_rx,
            out,
            metrics,
            shared: None,
            next_publish: Instant::now(),
            dirty: true,
            started: Instant::now(),
            sql: crate::sqlio::EngineSql::default(),
            ddns: None,
        }
    }

    /// Takes leases learned from the database and sends lease events to the history writer.
    pub(crate) fn with_sql(mut self, sql: crate::sqlio::EngineSql) -> Self {
        self.sql = sql;
        self
    }

    /// Runs the HA partner side beside the engine.
    pub(crate) fn with_ha(mut self, ha: crate::ha::HaSide) -> Self {
        self.ha = Some(ha);
        self
    }

    /// Answers bulk and active leasequery requests from TCP connections.
    pub(crate) fn with_leasequery(
        mut self,
        rx: mpsc::Receiver<crate::leasequery::LqRequest>,
    ) -> Self {
        self.lq.rx = Some(rx);
        self
    }

    /// The clock origin the engine's monotonic time counts from.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Sends binding changes to the DNS update task.
    pub(crate) fn with_ddns(mut self, sink: Option<crate::ddns::DdnsSink>) -> Self {
        self.ddns = sink;
        self
    }

    /// Publishes lease-table snapshots to `shared` (at once, then when changed, at most every
    /// [`PUBLISH_EVERY`]).
    pub(crate) fn with_shared(mut self, shared: Arc<SharedState>) -> Self {
        self.shared = Some(shared);
        self.dirty = true;
        self.publish(true);
        self
    }

    /// The clock, read once per handler call: the only clock the engine sees.
    fn now(&self) -> Now {
        Now {
            wall: unix_now(),
            mono: self.started.elapsed(),
        }
    }

    /// Copies the table into the shared snapshot when it changed and the interval has passed
    /// (`force`: now). The copy runs on the driver's task, so its interval grows to ten times
    /// the copy's own duration: publishing never takes more than ~10% of the task's time,
    /// even with millions of leases.
    fn publish(&mut self, force: bool) {
        self.dirty |= self.engine.take_changed();
        let Some(shared) = &self.shared else { return };
        if !self.dirty || (!force && Instant::now() < self.next_publish) {
            return;
        }
        let started = Instant::now();
        let snapshot = LeaseSnapshot {
            leases: self.engine.table().iter().cloned().collect(),
            taken_at: unix_now(),
        };
        shared.leases.store(Arc::new(snapshot));
        self.dirty = false;
        self.next_publish = Instant::now() + PUBLISH_EVERY.max(started.elapsed() * 10);
    }

    /// Runs until every receive task has dropped its sender and the queue is drained, then
    /// waits (bounded) for the commits in flight, and returns the committer so the caller can
    /// flush and join it.
    pub(crate) async fn run(mut self, mut rx: LaneRx) -> Committer {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut publish_tick = tokio::time::interval(PUBLISH_EVERY);
        publish_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // In order: what releases replies, the rare events, then requests, REQUESTs (and
            // renewals) ahead of DISCOVERs (see `recv::Lanes`).
            tokio::select! {
                biased;
                Some((id, outcome)) = self.commit_rx.recv() => self.committed(id, outcome),
                _ = tick.tick() => {
                    let now = self.now();
                    self.engine.handle_timeout(now);
                }
                _ = publish_tick.tick(), if self.shared.is_some() => self.publish(false),
                Some(ext) = self.sql.next_external() => {
                    let now = self.now();
                    self.engine.handle_external(now, ext.leases, ext.force);
                }
                Some((id, answer)) = self.probe_rx.recv() => {
                    let now = self.now();
                    self.engine.handle_probe(id, answer, now);
                }
                Some(req) = self.lq.next() => self.lq_request(req),
                input = next_ha(self.ha.as_mut()) => {
                    let now = self.now();
                    if let Some(ha) = &mut self.ha {
                        ha.handle(input, now, &self.engine);
                    }
                }
                msg = rx.recv() => {
                    let Some(first) = msg else { break };
                    self.handle(first);
                    for _ in 1..BATCH {
                        match rx.try_recv() {
                            Some(m) => self.handle(m),
                            None => break,
                        }
                    }
                }
            }
            self.carry_out();
        }
        // Shutdown: the receive side is gone; replies whose commits are in flight may still
        // leave once the commit thread answers.
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        while self.engine.commits_in_flight() > 0 {
            match tokio::time::timeout_at(deadline, self.commit_rx.recv()).await {
                Ok(Some((id, outcome))) => self.committed(id, outcome),
                _ => break,
            }
            self.carry_out();
        }
        self.committer
    }

    /// One commit outcome, and the others already waiting.
    fn committed(&mut self, id: CommitId, outcome: CommitOutcome) {
        self.engine.handle_commit(id, outcome);
        for _ in 1..COMMIT_BATCH {
            match self.commit_rx.try_recv() {
                Ok((id, outcome)) => self.engine.handle_commit(id, outcome),
                Err(_) => break,
            }
        }
    }

    /// Hands one request to the engine (with the plan a reload may have swapped in).
    pub(crate) fn handle(&mut self, inbound: Inbound) {
        let loaded = self.current.load();
        if !Arc::ptr_eq(&loaded.plan, &self.applied) {
            self.applied = Arc::clone(&loaded.plan);
            let plan = match &mut self.ha {
                Some(ha) => {
                    ha.set_loaded_plan(Arc::clone(&loaded.plan));
                    ha.plan_now()
                }
                None => Arc::clone(&loaded.plan),
            };
            self.engine.set_plan(plan, Arc::clone(&loaded.engine));
        }
        if leasequery::is_leasequery(&inbound.req.packet) {
            self.udp_leasequery(inbound);
            return;
        }
        let now = self.now();
        if let Some(ha) = &mut self.ha
            && !ha.admit(now, &inbound.req)
        {
            // The partner's client (or none of ours in this state): not answered here.
            self.metrics.dropped("ha_partner_scope");
            return;
        }
        let received = inbound.received.saturating_duration_since(self.started);
        self.engine.handle_packet(
            now,
            leased_engine::Inbound {
                req: inbound.req,
                origin: inbound.origin,
                received,
            },
        );
    }

    /// Does what the engine asked: commits and probes first (they take the longest), then log,
    /// history and billing, then replies.
    fn carry_out(&mut self) {
        while let Some(c) = self.engine.poll_commit() {
            if let Some(ha) = &mut self.ha {
                ha.lease_changed(&c);
            }
            let tx = self.commit_tx.clone();
            let id = c.id;
            let queued = self.committer.submit(
                c.leases,
                Box::new(move |res| {
                    // The driver may be gone at shutdown; then nobody waits for the outcome.
                    let _ = tx.send((id, outcome_of(&res)));
                }),
            );
            if !queued {
                tracing::error!("lease store commit thread has stopped: changes not persisted");
                let error = "the lease store commit thread has stopped".to_owned();
                self.engine.handle_commit(
                    id,
                    CommitOutcome::Failed {
                        error,
                        retried: false,
                    },
                );
            }
        }
        if self.ha.is_some() {
            let now = self.now();
            let settings = Arc::clone(&self.current.load().engine);
            if let Some(ha) = &mut self.ha {
                ha.drive(now, &mut self.engine, &self.committer, &settings);
            }
        }
        while let Some(p) = self.engine.poll_probe() {
            probe::run(p, &self.out, self.probe_tx.clone());
        }
        // Facts first: a request's line comes before its reply's.
        while let Some(e) = self.engine.poll_effect() {
            self.effect(e);
        }
        while let Some(t) = self.engine.poll_transmit() {
            self.deliver(&t);
        }
        self.dirty |= self.engine.take_changed();
    }

    /// Sends `t` and logs and counts the outcome (and its latency since it was received).
    fn deliver(&self, t: &Transmit) {
        let latency = self.started.elapsed().saturating_sub(t.received);
        deliver(
            &self.out,
            &self.metrics,
            &t.reply,
            &t.origin,
            &t.event,
            latency,
        );
    }

    /// The log line, counter, history record or billing event of one fact.
    fn effect(&mut self, e: Effect) {
        match e {
            Effect::Received { event, iface } => events::received(&event, iface.as_deref()),
            Effect::Dropped {
                reason,
                event,
                subnet,
                relay,
                report,
                via,
            } => {
                self.metrics.dropped(reason.label());
                match (reason, via) {
                    (leased_engine::DropReason::Limit(_), Some((giaddr, iface))) => {
                        if let Some(drops) = report {
                            tracing::warn!(
                                reason = reason.label(),
                                mac = %event.hwaddr,
                                giaddr = %giaddr,
                                iface = iface.as_deref().unwrap_or("-"),
                                drops,
                                "LIMIT request dropped (drops: since the previous line)"
                            );
                        }
                    }
                    (leased_engine::DropReason::Decision(r), _) => {
                        events::dropped(&event, r, subnet.as_deref(), relay.as_ref());
                    }
                    _ => {}
                }
            }
            Effect::CommitFailed { event, sent, error } => {
                self.metrics.store_error();
                self.metrics
                    .dropped(leased_engine::DropReason::StoreError.label());
                events::commit_failed(&event, sent, &error);
            }
            Effect::Stale { event } => {
                self.metrics
                    .dropped(leased_engine::DropReason::StaleReply.label());
                tracing::warn!(
                    target: events::TARGET,
                    mac = %event.hwaddr,
                    xid = %events::Xid(event.xid),
                    ip = ?event.ip,
                    reason = "stale_reply",
                    "reply not sent: its lease lapsed while the store was committing it"
                );
            }
            Effect::LazyCommitFailed { error } => {
                self.metrics.store_error();
                tracing::error!(error = %error, "lease store commit failed (lazy changes)");
            }
            Effect::Lease(ev) => {
                self.lq_event(&ev);
                crate::capture::lease_event(self.shared.as_deref(), &ev);
                self.sql.lease_event(&ev);
                if let Some(d) = &self.ddns {
                    d.lease_event(&ev);
                }
            }
            Effect::Parked(ev) => self.sql.parked_event(&ev),
            Effect::Expired(changes) => {
                let mut n = 0;
                for c in &changes {
                    events::expired(&c.lease);
                    if c.lease.state == LeaseState::Expired {
                        n += 1;
                    }
                }
                self.metrics.expired(n);
            }
            Effect::Conflict {
                ip,
                answered_by,
                via,
                client,
                attempt,
                quarantine,
            } => tracing::warn!(
                "CONFLICT ip={ip} answered_by={} via={} client={client} attempt={attempt}: quarantined for {quarantine}s, choosing another address",
                answered_by
                    .as_ref()
                    .map_or_else(|| "-".to_string(), mac_text),
                via.name(),
            ),
            Effect::ConflictGaveUp { client } => tracing::warn!(
                client = %client,
                "{} addresses in a row answered; no offer now (the client's retry starts over)",
                leased_engine::MAX_ATTEMPTS
            ),
            Effect::AssignmentSkipped { ip, client, reason } => {
                self.metrics.sql_assignment_skipped(reason);
                tracing::warn!(
                    target: events::TARGET,
                    %ip, mac = %client, reason,
                    "SQL assignment row not served: {}",
                    match reason {
                        "held" => "another client's lease holds the address (owner = \"lease\")",
                        "outside" => "the address lies outside every subnet of the link",
                        _ => "the address may never be handed out",
                    }
                );
            }
            Effect::ProbeOutdated { ip } => {
                tracing::debug!(%ip, "offer changed while its conflict check ran; not sent");
            }
            Effect::ProbeSkipped { ip } => {
                tracing::debug!(%ip, "conflict checks at their limit: offering unchecked");
            }
        }
    }
}

/// The HA side's next input, or never without HA.
async fn next_ha(ha: Option<&mut crate::ha::HaSide>) -> crate::ha::HaInput {
    match ha {
        Some(ha) => ha.next().await,
        None => std::future::pending().await,
    }
}

/// A commit's result as the engine reads it: an SQL outage's failure is retried by the store
/// (see `sqlio::ConflictTap`), a conflict is partial success.
fn outcome_of(res: &Result<(), Arc<StoreError>>) -> CommitOutcome {
    match res {
        Ok(()) => CommitOutcome::Durable,
        Err(e) => match &**e {
            StoreError::Conflict { ips } => CommitOutcome::Conflicts(ips.clone()),
            other => CommitOutcome::Failed {
                error: other.to_string(),
                retried: matches!(other, StoreError::Sql { .. }),
            },
        },
    }
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Sends `reply` and logs and counts the outcome and its latency.
fn deliver(
    out: &Outbound,
    metrics: &Metrics,
    reply: &Reply,
    origin: &Origin,
    event: &Event,
    latency: Duration,
) {
    let t = reply.packet.message_type();
    match out.send(reply, origin) {
        Ok(()) => {
            metrics.sent(t);
            metrics.reply_latency(latency);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::mpsc as std_mpsc;

    use std::net::Ipv4Addr;

    use leased_config::{Format, load_str};
    use leased_core::{Lease, Request};
    use leased_store::LeaseStore;
    use leased_wire::Packet;
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

    /// A driver running on its own runtime over a gated store, fed from the test's thread.
    struct Rig {
        rt: tokio::runtime::Runtime,
        tx: Option<crate::recv::Lanes>,
        task: Option<tokio::task::JoinHandle<Committer>>,
        gate: std_mpsc::Sender<bool>,
        committed: Arc<Mutex<Vec<Lease>>>,
        client: std::net::UdpSocket,
        metrics: Arc<Metrics>,
    }

    fn rig(shared: Option<Arc<SharedState>>) -> Rig {
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
        let plan = shared.as_ref().map_or_else(
            || crate::loaded::current(config),
            |s| Arc::clone(&s.current),
        );
        let mut driver = Driver::new(
            plan,
            LeaseTable::default(),
            Committer::spawn(Box::new(store)),
            out,
            Arc::clone(&metrics),
        );
        if let Some(s) = shared {
            driver = driver.with_shared(s);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = crate::recv::lanes();
        let task = rt.spawn(driver.run(rx));
        Rig {
            rt,
            tx: Some(tx),
            task: Some(task),
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
            let mut req = Request::new(p, Some("lo".into()), Some(Ipv4Addr::LOCALHOST), true);
            req.src_addr = Some(*src.ip());
            let inbound = Inbound {
                req,
                origin: Origin {
                    link: 0,
                    src: Some(src),
                    local: Some(Ipv4Addr::LOCALHOST),
                },
                received: Instant::now(),
            };
            let lanes = self.tx.as_ref().unwrap();
            let lane = if inbound.req.packet.message_type() == Some(MessageType::Discover) {
                &lanes.discover
            } else {
                &lanes.ahead
            };
            lane.blocking_send(inbound).unwrap();
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

        /// Stops the driver (its queue closes), lets the commit thread finish.
        fn finish(mut self) {
            drop(self.tx.take());
            let _ = self.gate.send(true);
            let committer = self.rt.block_on(self.task.take().unwrap()).unwrap();
            drop(self.gate);
            committer.finish();
        }
    }

    #[test]
    fn ack_leaves_only_after_commit_and_never_on_store_error() {
        let mut rig = rig(None);

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
        rig.finish();
    }

    /// An ACK's binding reaches the export only once its commit succeeded; a failed commit
    /// (no ACK sent) reports nothing; a RELEASE once its (lazy) change is durable.
    #[test]
    fn binding_reported_only_after_a_durable_commit() {
        let config = crate::testutil::config_with(&["198.18.0.0/24"], &["lo"], &[Some("lo")]);
        let mut config = config;
        config.network.subnets[0].server_id = Some(Ipv4Addr::new(198, 18, 0, 1));
        config.network.subnets[0].pools = vec![leased_config::AddrRange {
            start: Ipv4Addr::new(198, 18, 0, 10),
            end: Ipv4Addr::new(198, 18, 0, 20),
        }];
        let (reload_tx, _reload_rx) = mpsc::channel(1);
        let shared = Arc::new(SharedState {
            current: crate::loaded::current(config.clone()),
            leases: arc_swap::ArcSwap::from_pointee(LeaseSnapshot::default()),
            metrics: Arc::default(),
            source: crate::ConfigSource::Inline(config),
            reload_tx,
            started: Instant::now(),
            bindings: std::sync::OnceLock::new(),
            export_metrics: std::sync::OnceLock::new(),
            monitors: Default::default(),
            ha: None,
        });
        let (tx, mut bindings) = mpsc::unbounded_channel();
        assert!(shared.set_binding_sink(tx));
        let mut rig = rig(Some(shared));
        let next = |b: &mut mpsc::UnboundedReceiver<leased_core::BindingEvent>| {
            let t0 = Instant::now();
            loop {
                if let Ok(e) = b.try_recv() {
                    return Some(e);
                }
                if t0.elapsed() > Duration::from_millis(500) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };

        // Held commit: no ACK yet, and no binding either.
        let ip = rig.discover_request([2, 0, 0, 0, 1, 1], 11);
        assert!(rig.reply().is_none());
        assert!(
            next(&mut bindings).is_none(),
            "binding reported before its commit"
        );
        rig.gate.send(true).unwrap();
        assert_eq!(
            rig.reply().map(|p| p.message_type()),
            Some(Some(MessageType::Ack))
        );
        let b = next(&mut bindings).expect("binding after the commit");
        assert_eq!((b.kind, b.ip), (leased_core::BindingKind::Bound, ip));

        // Failed commit: no ACK, no binding, ever.
        rig.discover_request([2, 0, 0, 0, 1, 2], 12);
        rig.gate.send(false).unwrap();
        assert!(rig.reply().is_none(), "ACK sent although the commit failed");
        assert_eq!(rig.metrics.get("dropped.store_error"), 1);
        assert!(
            next(&mut bindings).is_none(),
            "a binding whose commit failed was reported"
        );

        // RELEASE: reported once its change is durable.
        let mut release = client_packet(
            MessageType::Release,
            [2, 0, 0, 0, 1, 1],
            13,
            &[(code::SERVER_ID, vec![198, 18, 0, 1])],
        );
        release.ciaddr = ip;
        rig.feed(release);
        assert!(
            next(&mut bindings).is_none(),
            "released before it was durable"
        );
        rig.gate.send(true).unwrap();
        let r = next(&mut bindings).expect("RELEASE reported once durable");
        assert_eq!(r.kind, leased_core::BindingKind::Released);
        rig.finish();
    }
}
