//! [`Engine`]: the lease table and everything the server decides around [`decide`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use hashlink::LinkedHashMap;

use crate::settings::{ConflictCheckMode, EngineSettings};
use leased_core::{
    ClientId, Decision, Durability, Event, HwAddr, Lease, LeaseChange, LeaseState, LeaseTable,
    Outcome, Plan, RelayInfo, Reply, Request, Timestamp, decide,
};
use leased_wire::{MessageType, code};

use crate::effect::{DropReason, Effect, LeaseEvent, LeaseEventKind};
use crate::limits::{DropLog, Guard, relay_key};
use crate::probe::{Held, MAX_ATTEMPTS, Probe, ProbeAnswer, ProbeId, Probes};
use crate::{Now, Origin};

/// A request handed to the engine, and where it came from.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The decoded request, its relay data already screened (`leased_core::trust::screen`).
    pub req: Request,
    /// Where it came in, for the reply.
    pub origin: Origin,
    /// When it was read (the driver's monotonic clock), for the reply latency.
    pub received: Duration,
}

/// A reply that may leave now.
#[derive(Debug, Clone)]
#[must_use = "a reply the engine released must be sent"]
pub struct Transmit {
    /// The reply and its RFC 2131 route.
    pub reply: Reply,
    /// Where its request came in.
    pub origin: Origin,
    /// When its request was read.
    pub received: Duration,
    /// The decision's facts, for the sent line.
    pub event: Event,
}

/// Names one commit, from [`Engine::poll_commit`] to [`Engine::handle_commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(pub u64);

/// Leases to make durable, in order.
#[derive(Debug, Clone)]
#[must_use = "every commit must be answered with Engine::handle_commit"]
pub struct Commit {
    /// Its name, for the outcome.
    pub id: CommitId,
    /// What to write.
    pub leases: Vec<Lease>,
}

/// How a commit ended. Data, not an error: a shared store commits a group except the addresses
/// another server's client holds, which is partial success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Every lease is durable.
    Durable,
    /// Every lease is durable except these addresses, which another server's client holds.
    Conflicts(Vec<Ipv4Addr>),
    /// Nothing is durable.
    Failed {
        /// The store's error.
        error: String,
        /// The store keeps lazy changes of an outage and retries them once it is back.
        retried: bool,
    },
}

impl CommitOutcome {
    /// True when the lease of `ip` is durable.
    fn durable(&self, ip: Ipv4Addr) -> bool {
        match self {
            Self::Durable => true,
            Self::Conflicts(ips) => !ips.contains(&ip),
            Self::Failed { .. } => false,
        }
    }
}

/// What waits for a commit: the reply that may leave once it is durable, and the lease events.
#[derive(Debug)]
struct Pending {
    reply: Option<Transmit>,
    events: Vec<LeaseEvent>,
    /// The reply also waits for the HA partner's acknowledgement (the gate was on when the
    /// commit was made).
    partner: bool,
    /// The partner acknowledged before the local store did.
    partner_acked: bool,
}

impl Pending {
    fn new(reply: Option<Transmit>, events: Vec<LeaseEvent>) -> Self {
        Self {
            reply,
            events,
            partner: false,
            partner_acked: false,
        }
    }
}

/// Most replies kept durable here and waiting for the HA partner's acknowledgement; beyond it
/// the oldest is dropped unsent (its client retries), never sent without the partner's copy.
pub const MAX_AWAITING_PARTNER: usize = 65_536;

/// The server's behaviour, without IO. See the crate documentation for the calling order.
pub struct Engine {
    plan: Arc<Plan>,
    settings: Arc<EngineSettings>,
    table: LeaseTable,
    /// The last wall-clock `now`: it never goes backwards for the table.
    last_now: Timestamp,
    limits: Guard,
    limit_log: DropLog,
    probes: Probes,
    pending: HashMap<CommitId, Pending>,
    next_commit: u64,
    transmits: VecDeque<Transmit>,
    /// With HA: replies durable here, waiting for the partner's acknowledgement, oldest first.
    awaiting_partner: LinkedHashMap<CommitId, Transmit>,
    /// With HA, while the partner is up: a reply waits for the partner's copy too.
    partner_gate: bool,
    commits: VecDeque<Commit>,
    probe_out: VecDeque<Probe>,
    effects: VecDeque<Effect>,
    changed: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("leases", &self.table.len())
            .field("pending_commits", &self.pending.len())
            .field("held_offers", &self.probes.held.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine serving `plan` with `settings` over `table` (the leases loaded from the
    /// store).
    pub fn new(plan: Arc<Plan>, settings: Arc<EngineSettings>, table: LeaseTable) -> Self {
        Self {
            plan,
            settings,
            table,
            last_now: Timestamp(0),
            limits: Guard::default(),
            limit_log: DropLog::default(),
            probes: Probes::default(),
            pending: HashMap::new(),
            next_commit: 0,
            transmits: VecDeque::new(),
            awaiting_partner: LinkedHashMap::new(),
            partner_gate: false,
            commits: VecDeque::new(),
            probe_out: VecDeque::new(),
            effects: VecDeque::new(),
            changed: true,
        }
    }

    // ----- getters ---------------------------------------------------------------------------

    /// The lease table as it stands (changes not yet durable included).
    pub fn table(&self) -> &LeaseTable {
        &self.table
    }

    /// The plan being served.
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// True once since the table last changed (for publishing snapshots to readers).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Commits not yet answered.
    pub fn commits_in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Addresses whose lease change waits for a commit: a reader of the table (an active
    /// leasequery's catch-up) leaves them to the lease event that follows the commit, so each
    /// change reaches it once.
    pub fn pending_addresses(&self) -> std::collections::HashSet<Ipv4Addr> {
        self.pending
            .values()
            .flat_map(|p| p.events.iter().map(|e| e.ip))
            .collect()
    }

    // ----- mutators --------------------------------------------------------------------------

    /// Serves `plan` with `settings` from the next request on (a reload).
    pub fn set_plan(&mut self, plan: Arc<Plan>, settings: Arc<EngineSettings>) {
        self.plan = plan;
        self.settings = settings;
    }

    // ----- handlers --------------------------------------------------------------------------

    /// Decides one request and queues what follows: a reply (now, or once its lease is durable,
    /// or once its address is checked), commits, lease events, log facts.
    pub fn handle_packet(&mut self, now: Now, inbound: Inbound) {
        self.handle_attempt(now, inbound, 0);
    }

    /// A commit from [`Engine::poll_commit`] ended: replies waiting for it leave (or not), and
    /// its lease events are emitted where their change is durable.
    pub fn handle_commit(&mut self, id: CommitId, outcome: CommitOutcome) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        let retried = matches!(outcome, CommitOutcome::Failed { retried: true, .. });
        for ev in pending.events {
            if outcome.durable(ev.ip) {
                self.effects.push_back(Effect::Lease(ev));
            } else if retried
                && matches!(
                    ev.kind,
                    LeaseEventKind::Release | LeaseEventKind::Decline | LeaseEventKind::Expire
                )
            {
                self.effects.push_back(Effect::Parked(ev));
            }
        }
        let error = match &outcome {
            CommitOutcome::Failed { error, .. } => error.clone(),
            _ => "another server's client holds the address".to_owned(),
        };
        match pending.reply {
            Some(t)
                if outcome.durable(t.reply.packet.yiaddr)
                    && pending.partner
                    && !pending.partner_acked =>
            {
                self.await_partner(id, t);
            }
            Some(t) if outcome.durable(t.reply.packet.yiaddr) => self.release(t),
            Some(t) => self.effects.push_back(Effect::CommitFailed {
                sent: t.reply.packet.message_type(),
                event: t.event,
                error,
            }),
            None if matches!(outcome, CommitOutcome::Failed { .. }) => {
                self.effects.push_back(Effect::LazyCommitFailed { error });
            }
            None => {}
        }
    }

    /// True when the table still holds the address of the reply `t` for its client, active at
    /// the latest time the engine has seen (an ACK's lease may lapse while a stalled commit
    /// runs; a NAK or an INFORM answer holds nothing and always may leave).
    fn still_holds(&self, t: &Transmit) -> bool {
        let p = &t.reply.packet;
        if p.message_type() != Some(MessageType::Ack) || p.yiaddr.is_unspecified() {
            return true;
        }
        self.table.by_ip(p.yiaddr).is_some_and(|l| {
            l.state == LeaseState::Bound && l.is_active(self.last_now) && l.hwaddr.0 == p.chaddr()
        })
    }

    /// Leases learned from a shared store (the sync loop), that just beat one of our commits
    /// (`force`), or that the HA partner sent, merged where they are news. Returns the leases
    /// taken: an HA server makes exactly those durable in its own store before acknowledging
    /// them (a shared store already holds them).
    pub fn handle_external(&mut self, now: Now, leases: Vec<Lease>, force: bool) -> Vec<Lease> {
        let now = self.clock(now);
        let changes = crate::merge::external_changes(&self.table, leases, now, force);
        if !changes.is_empty() {
            self.table.apply(&changes);
            self.changed = true;
        }
        changes.into_iter().map(|c| c.lease).collect()
    }

    /// With HA: the partner holds the leases of commit `id` durably. Its reply leaves once the
    /// local commit is durable too (at once when it already is).
    pub fn handle_partner_ack(&mut self, id: CommitId) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.partner_acked = true;
        } else if let Some(t) = self.awaiting_partner.remove(&id) {
            self.release(t);
        }
    }

    /// With HA: the partner will never hold commit `id` (its update queue was dropped). Its
    /// reply never leaves; the client retries and its next commit is replicated.
    pub fn handle_partner_lost(&mut self, id: CommitId) {
        let t = match self.pending.get_mut(&id) {
            Some(p) if p.partner && !p.partner_acked => p.reply.take(),
            Some(_) => None,
            None => self.awaiting_partner.remove(&id),
        };
        if let Some(t) = t {
            self.partner_failed(t, "the HA partner's copy of the lease was dropped");
        }
    }

    // ----- mutators (HA) ---------------------------------------------------------------------

    /// With HA: whether replies must wait for the partner's acknowledgement from now on (on
    /// while the partner is up in a normal state). Turning it off drops every reply still
    /// waiting for the partner, unsent, whether durable here yet or not: it was decided while
    /// the partner could have been binding the same address, and its client's retry is decided
    /// again under the new state (at once, without waiting). Replies of commits made with the
    /// gate off never wait.
    pub fn set_partner_gate(&mut self, on: bool) {
        self.partner_gate = on;
        if on {
            return;
        }
        let mut dropped = Vec::new();
        for p in self.pending.values_mut() {
            if p.partner && !p.partner_acked {
                dropped.extend(p.reply.take());
            }
            p.partner = false;
        }
        while let Some((_, t)) = self.awaiting_partner.pop_front() {
            dropped.push(t);
        }
        for t in dropped {
            self.partner_failed(
                t,
                "the HA partner became unreachable before it acknowledged",
            );
        }
    }

    /// True while replies wait for the HA partner's acknowledgement.
    pub fn partner_gate(&self) -> bool {
        self.partner_gate
    }

    /// Replies durable here and waiting for the HA partner.
    pub fn awaiting_partner(&self) -> usize {
        self.awaiting_partner.len()
    }

    /// A durable reply leaves, unless its lease is no longer the client's.
    fn release(&mut self, t: Transmit) {
        if self.still_holds(&t) {
            self.transmits.push_back(t);
        } else {
            self.effects.push_back(Effect::Stale { event: t.event });
        }
    }

    /// Parks a durable reply until the partner acknowledges its commit (bounded: the oldest
    /// is dropped unsent beyond [`MAX_AWAITING_PARTNER`]).
    fn await_partner(&mut self, id: CommitId, t: Transmit) {
        if self.awaiting_partner.len() >= MAX_AWAITING_PARTNER
            && let Some((_, old)) = self.awaiting_partner.pop_front()
        {
            self.partner_failed(old, "too many replies waiting for the HA partner");
        }
        self.awaiting_partner.insert(id, t);
    }

    fn partner_failed(&mut self, t: Transmit, error: &str) {
        self.effects.push_back(Effect::CommitFailed {
            sent: t.reply.packet.message_type(),
            event: t.event,
            error: error.to_owned(),
        });
    }

    /// A conflict check from [`Engine::poll_probe`] ended: `None` when nobody answered (the
    /// held OFFER leaves), else the address is quarantined and the request decided again.
    pub fn handle_probe(&mut self, id: ProbeId, answer: Option<ProbeAnswer>, now: Now) {
        let Some(held) = self.probes.held.remove(&id) else {
            return;
        };
        let ip = held.reply.packet.yiaddr;
        let wall = self.clock(now);
        // The offer must still be this client's (it is held far longer than any check).
        let lease = self
            .table
            .by_ip(ip)
            .filter(|l| {
                l.state == LeaseState::Offered
                    && l.is_active(wall)
                    && l.hwaddr.0 == held.req.packet.chaddr()
            })
            .cloned();
        let Some(lease) = lease else {
            self.effects.push_back(Effect::ProbeOutdated { ip });
            return;
        };
        let Some(answer) = answer else {
            let secs = self.settings.conflict_check.cache_secs;
            self.probes.remember_free(ip, now.mono, secs);
            self.transmits.push_back(Transmit {
                reply: held.reply,
                origin: held.origin,
                received: held.received,
                event: held.event,
            });
            return;
        };
        let quarantine = self.plan.network.server.decline_quarantine;
        self.effects.push_back(Effect::Conflict {
            ip,
            answered_by: answer.mac,
            via: answer.via,
            client: held.event.hwaddr.clone(),
            attempt: held.attempt + 1,
            quarantine,
        });
        let change = LeaseChange {
            lease: Lease {
                state: LeaseState::Declined,
                starts: wall,
                expires: wall.plus(quarantine),
                ..lease
            },
            durability: Durability::Lazy,
        };
        self.table.apply(std::slice::from_ref(&change));
        self.changed = true;
        self.commit(vec![change.lease], Pending::new(None, Vec::new()));
        if held.attempt + 1 >= MAX_ATTEMPTS {
            self.effects.push_back(Effect::ConflictGaveUp {
                client: held.event.hwaddr,
            });
            return;
        }
        let inbound = Inbound {
            req: held.req,
            origin: held.origin,
            received: held.received,
        };
        self.handle_attempt(now, inbound, held.attempt + 1);
    }

    /// Ends offers, leases and quarantines whose time has come (call it at
    /// [`Engine::poll_timeout`], or more often: it does nothing before then).
    pub fn handle_timeout(&mut self, now: Now) {
        let now = self.clock(now);
        if self.table.next_deadline().is_none_or(|d| d > now) {
            return;
        }
        let changes = self.table.expire(now);
        if changes.is_empty() {
            return;
        }
        self.changed = true;
        let history_vars = self.settings.history_slices.is_some();
        let events = changes
            .iter()
            .filter(|c| c.durability != Durability::Volatile)
            .filter(|c| c.lease.state == LeaseState::Expired)
            .map(|c| {
                let l = &c.lease;
                let vars = history_vars.then(|| {
                    let mut v = BTreeMap::new();
                    v.insert("ClientMacAddress".into(), hex(&l.hwaddr.0));
                    v.insert("chaddr".into(), hex(&l.hwaddr.0));
                    // Absent is NULL to the SQL, never '' (a row with an empty value must not
                    // match every lease without a name).
                    if let Some(h) = &l.hostname {
                        v.insert("HostName".into(), h.clone());
                    }
                    v
                });
                LeaseEvent {
                    kind: LeaseEventKind::Expire,
                    at: now,
                    giaddr: None,
                    vars,
                    ..event_of(l)
                }
            })
            .collect();
        let persist = to_persist(&changes);
        self.effects.push_back(Effect::Expired(changes));
        if !persist.is_empty() {
            self.commit(persist, Pending::new(None, events));
        }
    }

    // ----- polls -----------------------------------------------------------------------------

    /// The next reply to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next leases to make durable; answer with [`Engine::handle_commit`].
    pub fn poll_commit(&mut self) -> Option<Commit> {
        self.commits.pop_front()
    }

    /// The next conflict check to run; answer with [`Engine::handle_probe`].
    pub fn poll_probe(&mut self) -> Option<Probe> {
        self.probe_out.pop_front()
    }

    /// The next lease event or log fact.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`Engine::handle_timeout`] next has something to do (wall clock).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.table.next_deadline()
    }

    // ----- the work --------------------------------------------------------------------------

    /// The table's clock: `now`, never going backwards.
    fn clock(&mut self, now: Now) -> Timestamp {
        self.last_now = self.last_now.max(now.wall);
        self.last_now
    }

    fn handle_attempt(&mut self, now: Now, inbound: Inbound, attempt: u8) {
        let Inbound {
            req,
            origin,
            received,
        } = inbound;
        let wall = self.clock(now);
        let plan = Arc::clone(&self.plan);
        let settings = Arc::clone(&self.settings);
        let limits = &settings.limits;
        if !limits.is_empty() {
            let mono = now.mono.as_secs_f64();
            let iface = req.interface.as_deref();
            if let Err(why) = self.limits.check(limits, &req.packet, iface, mono, wall) {
                let report = self.limit_log.note(mono);
                self.effects.push_back(Effect::Dropped {
                    reason: DropReason::Limit(why),
                    event: packet_event(&req),
                    subnet: None,
                    relay: None,
                    report,
                    via: Some((req.packet.giaddr, req.interface.clone())),
                });
                return;
            }
        }
        let mut decision = decide(&req, &plan, &self.table, wall);
        if self.needs_probe_first(&decision, now) {
            // Rapid commit would bind an address nobody checked: this DISCOVER goes the
            // four-message way instead, its OFFER held while the address is checked (RFC 4039
            // lets a server answer option 80 with an OFFER). Nothing was applied yet, so the
            // second decision sees the same table.
            let mut plain = req.clone();
            plain.packet.options.remove(code::RAPID_COMMIT);
            decision = decide(&plain, &plan, &self.table, wall);
        }
        let Decision {
            outcome,
            changes,
            event,
        } = decision;
        if let (Some(a), Outcome::Reply(r)) = (&req.assignment, &outcome)
            && matches!(
                r.packet.message_type(),
                Some(MessageType::Offer | MessageType::Ack)
            )
            && !r.packet.yiaddr.is_unspecified()
            && r.packet.yiaddr != a.ip
        {
            let held = self
                .table
                .by_ip(a.ip)
                .is_some_and(|l| l.hwaddr.0 != req.packet.chaddr() && l.is_active(wall));
            let reason = if plan.subnet_index_containing(a.ip).is_none() {
                "outside"
            } else if held {
                "held"
            } else {
                "unusable"
            };
            self.effects.push_back(Effect::AssignmentSkipped {
                ip: a.ip,
                client: HwAddr(req.packet.chaddr().to_vec()),
                reason,
            });
        }
        // Derived before the changes are applied: a binding the client already held is a
        // renewal.
        let events = self.lease_events(&req, &changes, wall);
        self.table.apply(&changes);
        self.changed |= !changes.is_empty();
        if limits.max_offers_in_flight.is_some() || limits.max_offers_in_flight_per_relay.is_some()
        {
            let relay = relay_key(&req.packet, req.interface.as_deref());
            self.limits.track(&changes, &relay);
        }
        self.effects.push_back(Effect::Received {
            event: event.clone(),
            iface: req.interface.clone(),
        });
        if event.nak.is_some() {
            let nak = self.nak_event(&req, &event, wall);
            self.effects.push_back(Effect::Lease(nak));
        }
        let must_wait = changes
            .iter()
            .any(|c| c.durability == Durability::BeforeReply);
        let persist = to_persist(&changes);
        match outcome {
            Outcome::Reply(reply) => {
                let t = Transmit {
                    reply,
                    origin,
                    received,
                    event,
                };
                if must_wait {
                    self.commit(persist, Pending::new(Some(t), events));
                    return;
                }
                if !persist.is_empty() {
                    self.commit(persist, Pending::new(None, events));
                }
                if let Some(t) = self.hold_for_probe(now, &req, t, attempt) {
                    self.transmits.push_back(t);
                }
            }
            Outcome::Drop(reason) => {
                if reason != leased_core::DropReason::NoReplyNeeded {
                    let subnet = (reason == leased_core::DropReason::PoolExhausted)
                        .then(|| subnet_hint(&plan, &req))
                        .flatten();
                    let relay = (reason == leased_core::DropReason::CircuitLimit)
                        .then(|| req.packet.options.get(code::RELAY_AGENT_INFO))
                        .flatten()
                        .map(RelayInfo::parse);
                    self.effects.push_back(Effect::Dropped {
                        reason: DropReason::Decision(reason),
                        event,
                        subnet,
                        relay,
                        report: None,
                        via: None,
                    });
                }
                if !persist.is_empty() {
                    self.commit(persist, Pending::new(None, events));
                }
            }
        }
    }

    /// True when `d` is a rapid-commit ACK (RFC 4039) for an address the conflict check has
    /// not found free recently: a binding must not skip the check an offer would get.
    fn needs_probe_first(&mut self, d: &Decision, now: Now) -> bool {
        if self.settings.conflict_check.mode == ConflictCheckMode::Off {
            return false;
        }
        let Outcome::Reply(r) = &d.outcome else {
            return false;
        };
        let p = &r.packet;
        p.message_type() == Some(MessageType::Ack)
            && p.options.get(code::RAPID_COMMIT).is_some()
            && !p.yiaddr.is_unspecified()
            && !self.probes.cached_free(p.yiaddr, now.mono)
    }

    /// Queues `leases` for the store, with what waits for them.
    fn commit(&mut self, leases: Vec<Lease>, mut pending: Pending) {
        pending.partner = self.partner_gate && pending.reply.is_some();
        self.next_commit += 1;
        let id = CommitId(self.next_commit);
        self.pending.insert(id, pending);
        self.commits.push_back(Commit { id, leases });
    }

    /// Holds an OFFER while its address is checked; gives the reply back when it may leave now.
    fn hold_for_probe(
        &mut self,
        now: Now,
        req: &Request,
        t: Transmit,
        attempt: u8,
    ) -> Option<Transmit> {
        let settings = &self.settings.conflict_check;
        let ip = t.reply.packet.yiaddr;
        if settings.mode == ConflictCheckMode::Off
            || t.reply.packet.message_type() != Some(MessageType::Offer)
            || ip.is_unspecified()
            || self.probes.cached_free(ip, now.mono)
        {
            return Some(t);
        }
        let (mode, timeout) = (
            settings.mode,
            Duration::from_millis(u64::from(settings.timeout_ms)),
        );
        let link = t.origin.link;
        let held = Held {
            req: req.clone(),
            origin: t.origin,
            reply: t.reply.clone(),
            event: t.event.clone(),
            received: t.received,
            attempt,
        };
        let Some(id) = self.probes.hold(held) else {
            self.effects.push_back(Effect::ProbeSkipped { ip });
            return Some(t);
        };
        self.probe_out.push_back(Probe {
            id,
            ip,
            link,
            on_link: req.packet.giaddr.is_unspecified(),
            mode,
            timeout,
        });
        None
    }

    /// The request's variables for `history_sql`, when one is configured.
    fn request_vars(&self, req: &Request) -> Option<BTreeMap<String, String>> {
        let slices = self.settings.history_slices.as_ref()?;
        Some(leased_core::sql::packet_variables(&req.packet, slices))
    }

    /// The lease events of one decision's stored changes, computed before they are applied.
    fn lease_events(
        &self,
        req: &Request,
        changes: &[LeaseChange],
        now: Timestamp,
    ) -> Vec<LeaseEvent> {
        let giaddr = Some(req.packet.giaddr).filter(|g| !g.is_unspecified());
        let mut vars = None;
        let mut out = Vec::new();
        for c in changes
            .iter()
            .filter(|c| c.durability != Durability::Volatile)
        {
            let l = &c.lease;
            let kind = match l.state {
                LeaseState::Bound => {
                    let renewal = self.table.by_ip(l.ip).is_some_and(|t| {
                        t.client_id == l.client_id && t.state == LeaseState::Bound
                    });
                    if renewal {
                        LeaseEventKind::Renew
                    } else {
                        LeaseEventKind::AckNew
                    }
                }
                LeaseState::Released => LeaseEventKind::Release,
                LeaseState::Declined => LeaseEventKind::Decline,
                LeaseState::Expired => LeaseEventKind::Expire,
                LeaseState::Offered => continue,
            };
            if vars.is_none() {
                vars = Some(self.request_vars(req));
            }
            out.push(LeaseEvent {
                kind,
                at: now,
                giaddr,
                vars: vars.clone().flatten(),
                client_fqdn: req
                    .packet
                    .options
                    .get(code::CLIENT_FQDN)
                    .map(<[u8]>::to_vec),
                ..event_of(l)
            });
        }
        out
    }

    /// The history event of a NAK: what the client asked for, nothing changed.
    fn nak_event(&self, req: &Request, event: &Event, now: Timestamp) -> LeaseEvent {
        let pkt = &req.packet;
        let keys = pkt
            .options
            .get(code::RELAY_AGENT_INFO)
            .map(|r| RelayInfo::parse(r).keys())
            .unwrap_or_default();
        let client_id = pkt
            .options
            .get(code::CLIENT_ID)
            .map(|v| ClientId(v.to_vec()))
            .unwrap_or_else(|| {
                let mut v = vec![pkt.htype];
                v.extend_from_slice(pkt.chaddr());
                ClientId(v)
            });
        LeaseEvent {
            kind: LeaseEventKind::Nak,
            at: now,
            ip: event.ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            client_id,
            hwaddr: event.hwaddr.clone(),
            hostname: event.hostname.clone(),
            circuit_id: keys.circuit_id,
            remote_id: keys.remote_id,
            giaddr: Some(pkt.giaddr).filter(|g| !g.is_unspecified()),
            lease: None,
            vars: self.request_vars(req),
            client_fqdn: None,
        }
    }
}

/// A lease event's fields from the lease itself (kind, time and giaddr to be set).
fn event_of(l: &Lease) -> LeaseEvent {
    LeaseEvent {
        kind: LeaseEventKind::Expire,
        at: l.starts,
        ip: l.ip,
        client_id: l.client_id.clone(),
        hwaddr: l.hwaddr.clone(),
        hostname: l.hostname.clone(),
        circuit_id: l.circuit_id.clone(),
        remote_id: l.remote_id.clone(),
        giaddr: None,
        lease: Some(l.clone()),
        vars: None,
        client_fqdn: None,
    }
}

/// The facts of a packet no decision was made for (a limit dropped it).
fn packet_event(req: &Request) -> Event {
    Event {
        received: req.packet.message_type(),
        sent: None,
        xid: req.packet.xid,
        hwaddr: HwAddr(req.packet.chaddr().to_vec()),
        ip: None,
        hostname: None,
        nak: None,
        drop: None,
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

/// The subnet a request was being served from, for messages (giaddr, then the interface, then
/// our local address).
fn subnet_hint(plan: &Plan, req: &Request) -> Option<String> {
    let subnets = &plan.network.subnets;
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
