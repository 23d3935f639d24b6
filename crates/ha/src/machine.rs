//! [`Ha`]: one server's side of an HA pair, as a sans-IO state machine.

use std::collections::{HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use hashlink::LruCache;
use leased_core::{Lease, LeaseState, LeaseTable, Request, Timestamp};
use leased_engine::{CommitId, Now};

use crate::hash::{client_key, primary_bucket, request_bucket};
use crate::message::{DecodeError, MAX_FRAME, PartnerMessage};
use crate::scope::PoolScope;
use crate::settings::{HaConfig, HaMode, Role};
use crate::state::HaState;

/// Batches of lease updates sent and not yet acknowledged at once: while they are in flight
/// the next batch fills, so batch size follows the partner's commit latency (as group commit
/// follows fsync latency) with no knob to tune.
pub const MAX_BATCHES_IN_FLIGHT: usize = 2;
/// Most leases in one update batch (a frame stays far below [`crate::MAX_FRAME`]).
pub const MAX_BATCH_LEASES: usize = 4_096;
/// An upper bound of a lease's bytes in a frame (see `message.rs`).
fn encoded_size(l: &Lease) -> usize {
    let opt = |b: Option<usize>| 3 + b.unwrap_or(0);
    4 + 2
        + l.client_id.0.len()
        + 2
        + l.hwaddr.0.len()
        + opt(l.hostname.as_ref().map(String::len))
        + 1
        + 24
        + opt(l.circuit_id.as_ref().map(Vec::len))
        + opt(l.remote_id.as_ref().map(Vec::len))
        + opt(l.subscriber_id.as_ref().map(Vec::len))
}

/// Clients of the partner's scope watched at once for unanswered retries.
pub const MAX_WATCHED_CLIENTS: usize = 4_096;
/// Wall clocks further apart than this (seconds) end the pair's cooperation (Kea's limit):
/// lease times written by one server would be wrong on the other.
pub const MAX_CLOCK_SKEW: u64 = 60;

/// What happened, for the log line and the metrics of every state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaEvent {
    /// This server changed state.
    StateChanged {
        /// Before.
        from: HaState,
        /// After.
        to: HaState,
    },
    /// The partner stopped answering (link down, silent, or an update unacknowledged): ACKs
    /// no longer wait for it, and failure detection watches clients.
    CommunicationInterrupted,
    /// The partner answers again.
    CommunicationRestored,
    /// The partner was refused (another pair config, another name, another protocol): the
    /// driver should close the link; this server behaves as for a lost partner.
    PartnerRefused {
        /// Why, for the operator.
        reason: String,
    },
    /// The partner refused our updates of these addresses (it holds them bound to other
    /// clients, more recently): their replies never leave.
    UpdatesRejected {
        /// The addresses.
        ips: Vec<Ipv4Addr>,
    },
    /// Updates for the partner were dropped (the queue was full): the partner must sync.
    UpdatesDropped {
        /// How many lease changes.
        leases: usize,
    },
    /// The clocks are too far apart (seconds).
    ClockSkew {
        /// The difference seen.
        secs: u64,
    },
    /// A bulk sync from the partner ended.
    SyncDone {
        /// Leases received.
        leases: u64,
    },
}

/// What the driver must do with the engine and the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "every HA action must be carried out"]
pub enum HaAction {
    /// Merge these partner leases into the table (`Engine::handle_external(now, leases,
    /// false)` and `Engine::handle_external(now, forced, true)`, which return those taken),
    /// make those durable, then call [`Ha::handle_stored`] with `ack` when it is set.
    Store {
        /// What to acknowledge once durable (`None`: a sync page).
        ack: Option<StoreAck>,
        /// The leases, merged where they are news.
        leases: Vec<Lease>,
        /// Leases that replace one of our own clients' older bindings (our reply for that
        /// address then never leaves: the engine finds the lease no longer its client's).
        forced: Vec<Lease>,
    },
    /// The partner holds these commits durably: `Engine::handle_partner_ack` for each.
    PartnerAcked(Vec<CommitId>),
    /// The partner will never acknowledge these commits (its queue was dropped):
    /// `Engine::handle_partner_lost` for each, so their replies never leave.
    PartnerLost(Vec<CommitId>),
    /// Whether ACKs must wait for the partner from now on: `Engine::set_partner_gate`.
    Gate(bool),
    /// Which part of the pools to allocate from from now on: serve the plan built from
    /// [`crate::own_half`] of the network, or the whole one (`Engine::set_plan`).
    Scope(PoolScope),
}

/// The acknowledgement owed for one partner batch, handed back through
/// [`Ha::handle_stored`] once the batch is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAck {
    /// The partner's batch.
    pub batch: u64,
    /// Addresses refused: this server holds them bound to another client, more recently.
    pub rejected: Vec<Ipv4Addr>,
}

/// Why an operator's command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaError {
    /// `this_server` names no peer, or there is no partner.
    BadConfig(&'static str),
    /// The command does not fit the current state.
    NotNow(&'static str),
}

impl std::fmt::Display for HaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadConfig(m) => write!(f, "HA config: {m}"),
            Self::NotNow(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for HaError {}

/// A client of the partner's scope seen retrying while the partner is silent.
#[derive(Debug, Clone, Copy)]
struct Sighting {
    /// When first seen (monotonic).
    first: Duration,
    /// Its `secs` when last counted: a retry has a larger one (a duplicate does not count).
    last_secs: u16,
    /// Retries seen after the first sighting.
    count: u8,
}

/// One batch of lease updates on its way to the partner.
#[derive(Debug)]
struct Batch {
    id: u64,
    commits: Vec<(Option<CommitId>, Vec<Ipv4Addr>)>,
    leases: Vec<Lease>,
    sent: Duration,
}

/// One server's side of an HA pair, sans IO, as quinn-proto's `Connection`:
/// - getters ([`Ha::state`], [`Ha::partner_state`], [`Ha::serves`], …);
/// - handlers, named `handle_*`: what the transport saw ([`Ha::handle_link_up`],
///   [`Ha::handle_link_down`], [`Ha::handle_message`], [`Ha::handle_decode_error`]), what the
///   server saw ([`Ha::handle_client_request`], [`Ha::lease_changed`], [`Ha::handle_stored`]),
///   and time ([`Ha::handle_timeout`]);
/// - operator mutators ([`Ha::start_maintenance`], [`Ha::resume`]);
/// - polls, named `poll_*`: [`Ha::poll_message`] (frames for the partner link),
///   [`Ha::poll_action`] (work for the engine and store), [`Ha::poll_event`] (log lines and
///   metrics), [`Ha::poll_timeout`] (when to call `handle_timeout`, monotonic).
///
/// After every handler, drain every poll. Time is a parameter ([`Now`]): its monotonic part
/// drives the timers, its wall part the clock-skew check.
#[derive(Debug)]
pub struct Ha {
    cfg: Arc<HaConfig>,
    role: Role,
    partner_name: String,
    state: HaState,
    partner_state: Option<HaState>,
    mono: Duration,
    wall: Timestamp,
    link_up: bool,
    hello_ok: bool,
    last_heard: Option<Duration>,
    last_sent: Duration,
    reachable: bool,
    /// This server must fetch the partner's table before it serves (true at start).
    must_sync: bool,
    /// The partner must fetch ours (we served alone or dropped its updates); said in the hello.
    partner_behind: bool,
    sync_leases: u64,
    /// The last address of the previous sync page.
    sync_after: Option<Ipv4Addr>,
    /// Lease changes waiting for a batch: the engine's commit (none for our table pushed back
    /// after a sync), and its leases.
    queue: VecDeque<(Option<CommitId>, Vec<Lease>)>,
    queued_leases: usize,
    in_flight: VecDeque<Batch>,
    in_flight_leases: usize,
    next_batch: u64,
    /// Clients of the partner's scope first seen waiting too long while the partner is silent,
    /// and when (bounded, least recently seen evicted in O(1)).
    waiting: LruCache<Vec<u8>, Sighting>,
    /// Of those, the ones seen still retrying `max_ack_delay` later; bounded by
    /// `max_unacked_clients + 1` (reaching that ends the count in partner-down).
    unacked: HashSet<Vec<u8>>,
    gate: bool,
    scope: PoolScope,
    out: VecDeque<PartnerMessage>,
    actions: VecDeque<HaAction>,
    events: VecDeque<HaEvent>,
}

impl Ha {
    /// This server's side of the pair `cfg` describes, in `waiting`, with no link yet.
    pub fn new(cfg: Arc<HaConfig>, now: Now) -> Result<Self, HaError> {
        let role = cfg
            .me()
            .ok_or(HaError::BadConfig("this_server names no peer"))?
            .role;
        let partner_name = cfg
            .partner()
            .ok_or(HaError::BadConfig("there is no partner"))?
            .name
            .clone();
        Ok(Self {
            cfg,
            role,
            partner_name,
            state: HaState::Waiting,
            partner_state: None,
            mono: now.mono,
            wall: now.wall,
            link_up: false,
            hello_ok: false,
            last_heard: None,
            last_sent: now.mono,
            reachable: false,
            must_sync: true,
            partner_behind: false,
            sync_leases: 0,
            sync_after: None,
            queue: VecDeque::new(),
            queued_leases: 0,
            in_flight: VecDeque::new(),
            in_flight_leases: 0,
            next_batch: 0,
            waiting: LruCache::new(MAX_WATCHED_CLIENTS),
            unacked: HashSet::new(),
            gate: false,
            scope: PoolScope::Whole,
            out: VecDeque::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    // ----- getters ---------------------------------------------------------------------------

    /// This server's state.
    pub fn state(&self) -> HaState {
        self.state
    }

    /// The partner's state as it last said, when it said one on the current or a past link.
    pub fn partner_state(&self) -> Option<HaState> {
        self.partner_state
    }

    /// True while the partner answers (link up, hello accepted, heard recently, updates
    /// acknowledged in time): then ACKs wait for its copy.
    pub fn partner_reachable(&self) -> bool {
        self.reachable
    }

    /// Whether ACKs must wait for the partner's acknowledgement now (the last
    /// [`HaAction::Gate`]).
    pub fn partner_gate(&self) -> bool {
        self.gate
    }

    /// The part of the pools this server allocates from now (the last [`HaAction::Scope`]).
    pub fn pool_scope(&self) -> PoolScope {
        self.scope
    }

    /// Lease changes queued or in flight for the partner (the status output's "unsent").
    pub fn unacked_updates(&self) -> usize {
        self.queued_leases + self.in_flight_leases
    }

    /// When the partner was last heard from (monotonic).
    pub fn last_contact(&self) -> Option<Duration> {
        self.last_heard
    }

    /// The settings this machine runs on.
    pub fn config(&self) -> &HaConfig {
        &self.cfg
    }

    /// May this server answer `req` now? Hot-standby: the primary all, the standby none;
    /// load-balancing: the clients of its RFC 3074 buckets; partner-down and
    /// partner-in-maintenance: all; waiting, syncing, ready and in-maintenance: none.
    pub fn serves(&self, req: &Request) -> bool {
        match self.state {
            HaState::PartnerDown | HaState::PartnerInMaintenance => true,
            HaState::HotStandby | HaState::LoadBalancing | HaState::Terminated => {
                self.normal_scope(req)
            }
            HaState::Waiting | HaState::Syncing | HaState::Ready | HaState::InMaintenance => false,
        }
    }

    /// The clients this server serves in normal operation.
    fn normal_scope(&self, req: &Request) -> bool {
        match (self.cfg.mode, self.role) {
            (HaMode::HotStandby, role) => role == Role::Primary,
            (HaMode::LoadBalancing, role) => {
                request_bucket(req).is_some_and(|b| primary_bucket(b) == (role == Role::Primary))
            }
        }
    }

    /// The clients whose unanswered retries show the partner is gone: those it serves in
    /// normal operation, or every client when that is none (a standby partner, which would
    /// answer them all had it taken over).
    fn partner_scope(&self, req: &Request) -> bool {
        match self.cfg.mode {
            HaMode::HotStandby => true,
            HaMode::LoadBalancing => request_bucket(req)
                .is_some_and(|b| primary_bucket(b) == (self.role != Role::Primary)),
        }
    }

    // ----- handlers --------------------------------------------------------------------------

    /// The transport connected (or accepted) the partner link: the hello goes first.
    pub fn handle_link_up(&mut self, now: Now) {
        self.clock(now);
        self.link_up = true;
        self.hello_ok = false;
        self.out.clear();
        let behind = self.partner_behind
            || matches!(
                self.state,
                HaState::PartnerDown | HaState::PartnerInMaintenance
            );
        self.out.push_back(PartnerMessage::Hello {
            server: self.cfg.this_server.clone(),
            config_version: self.cfg.config_version(),
            state: self.state,
            behind,
        });
        self.refresh();
    }

    /// The partner link is gone (closed, reset, refused by the transport).
    pub fn handle_link_down(&mut self, now: Now) {
        self.clock(now);
        self.link_up = false;
        self.hello_ok = false;
        self.out.clear();
        self.refresh();
    }

    /// The partner sent bytes that are no message (another protocol version, garbage): it is
    /// refused and the link counts as down; the driver should close it.
    pub fn handle_decode_error(&mut self, now: Now, error: &DecodeError) {
        self.events.push_back(HaEvent::PartnerRefused {
            reason: error.to_string(),
        });
        self.handle_link_down(now);
    }

    /// A message from the partner. `table` is this server's lease table
    /// (`Engine::table`), read to answer a sync request: the machine keeps no copy of it.
    pub fn handle_message(&mut self, now: Now, msg: PartnerMessage, table: &LeaseTable) {
        self.clock(now);
        if !self.link_up {
            return;
        }
        match msg {
            PartnerMessage::Hello {
                server,
                config_version,
                state,
                behind,
            } => {
                if server != self.partner_name {
                    self.refuse(format!(
                        "the partner calls itself {server:?}; this server's partner is {:?}",
                        self.partner_name
                    ));
                    return;
                }
                let ours = self.cfg.config_version();
                if config_version != ours {
                    self.refuse(format!(
                        "the partner runs another [ha] pair config (version {config_version:08x}, \
                         this server {ours:08x}): mode and peers must match on both servers"
                    ));
                    return;
                }
                self.hello_ok = true;
                self.last_heard = Some(self.mono);
                self.partner_state = Some(state);
                // Batches sent on the old link may be lost: send them again, same names.
                for b in &mut self.in_flight {
                    b.sent = self.mono;
                    self.out.push_back(PartnerMessage::LeaseUpdates {
                        batch: b.id,
                        leases: b.leases.clone(),
                    });
                }
                if behind {
                    self.mark_behind();
                }
            }
            _ if !self.hello_ok => {}
            PartnerMessage::Heartbeat { state, wall } => {
                self.last_heard = Some(self.mono);
                self.partner_state = Some(state);
                let skew = wall.0.abs_diff(self.wall.0);
                if skew > MAX_CLOCK_SKEW && self.state != HaState::Terminated {
                    self.events.push_back(HaEvent::ClockSkew { secs: skew });
                    self.set_state(HaState::Terminated);
                }
            }
            PartnerMessage::LeaseUpdates { batch, leases } => {
                self.last_heard = Some(self.mono);
                if self.state != HaState::Terminated {
                    self.receive_updates(batch, leases, table);
                }
            }
            PartnerMessage::LeaseAck { batch, rejected } => {
                self.last_heard = Some(self.mono);
                if let Some(pos) = self.in_flight.iter().position(|b| b.id == batch)
                    && let Some(b) = self.in_flight.remove(pos)
                {
                    self.in_flight_leases = self.in_flight_leases.saturating_sub(b.leases.len());
                    let (lost, acked): (Vec<_>, Vec<_>) = b
                        .commits
                        .into_iter()
                        .partition(|(_, ips)| ips.iter().any(|ip| rejected.contains(ip)));
                    if !lost.is_empty() {
                        self.actions.push_back(HaAction::PartnerLost(
                            lost.into_iter().filter_map(|(c, _)| c).collect(),
                        ));
                        self.events
                            .push_back(HaEvent::UpdatesRejected { ips: rejected });
                    }
                    self.actions.push_back(HaAction::PartnerAcked(
                        acked.into_iter().filter_map(|(c, _)| c).collect(),
                    ));
                }
            }
            PartnerMessage::SyncRequest { after, limit } => {
                self.last_heard = Some(self.mono);
                if after.is_none() {
                    // The partner fetches everything from here on.
                    self.partner_behind = false;
                }
                let limit = limit.clamp(1, self.cfg.sync_page_limit.max(1)) as usize;
                let floor = after.map_or(0, |ip| u64::from(u32::from(ip)) + 1);
                let mut leases = Vec::new();
                let mut more = false;
                let mut bytes = 0usize;
                for l in table
                    .iter()
                    .skip_while(|l| u64::from(u32::from(l.ip)) < floor)
                {
                    // A page also stays within half a frame, whatever its leases carry.
                    let size = encoded_size(l);
                    if leases.len() == limit || (bytes + size > MAX_FRAME / 2 && !leases.is_empty())
                    {
                        more = true;
                        break;
                    }
                    bytes += size;
                    leases.push(l.clone());
                }
                self.out
                    .push_back(PartnerMessage::SyncPage { leases, more });
            }
            PartnerMessage::SyncPage { leases, more } => {
                self.last_heard = Some(self.mono);
                if self.state != HaState::Syncing {
                    return self.refresh();
                }
                let last = leases.last().map(|l| l.ip);
                self.sync_leases += leases.len() as u64;
                self.push_back_news(table, &leases, more.then_some(last).flatten());
                if !leases.is_empty() {
                    self.actions.push_back(HaAction::Store {
                        ack: None,
                        leases,
                        forced: Vec::new(),
                    });
                }
                match (more, last) {
                    (true, Some(after)) => {
                        self.sync_after = Some(after);
                        self.request_page(Some(after));
                    }
                    _ => {
                        self.must_sync = false;
                        self.events.push_back(HaEvent::SyncDone {
                            leases: self.sync_leases,
                        });
                        self.set_state(HaState::Ready);
                    }
                }
            }
            PartnerMessage::Maintenance { start } => {
                self.last_heard = Some(self.mono);
                if start
                    && matches!(
                        self.state,
                        HaState::HotStandby | HaState::LoadBalancing | HaState::PartnerDown
                    )
                {
                    self.set_state(HaState::PartnerInMaintenance);
                }
            }
            PartnerMessage::Resync => {
                self.last_heard = Some(self.mono);
                self.mark_behind();
            }
        }
        self.refresh();
    }

    /// A client request reached this server (call it for every request, served or not, before
    /// [`Ha::serves`]). While the partner is silent, a DHCPDISCOVER of a client of the partner's
    /// scope whose `secs` exceeds `max_ack_delay` is a sighting; a client seen retrying (its
    /// `secs` grown) two more times, the last at least `max_ack_delay` after the first, is
    /// unanswered (the primary waits for one retry more). More than `max_unacked_clients`
    /// distinct unanswered clients mean the partner is gone.
    ///
    /// Why DISCOVERs only: a REQUEST follows an OFFER, so some server answers. Why repeated
    /// sightings: clients that a live partner delayed while it noticed the same silence (its
    /// ACKs waited for us) are answered right after and never retry again. Why one more for the
    /// primary: when both servers are waiting for evidence (a restarted primary, a standby whose
    /// partner was down), the other one takes over first and answers the retry the primary
    /// would have needed, so the two never take over together.
    pub fn handle_client_request(&mut self, now: Now, req: &Request) {
        self.clock(now);
        if self.reachable || req.packet.message_type() != Some(leased_wire::MessageType::Discover) {
            return;
        }
        let watching = match self.state {
            HaState::Waiting | HaState::LoadBalancing => true,
            HaState::HotStandby => self.role != Role::Primary,
            _ => false,
        };
        let secs = req.packet.secs;
        if !watching
            || !self.partner_scope(req)
            || Duration::from_secs(u64::from(secs)) <= self.cfg.max_ack_delay
        {
            return;
        }
        let Some(key) = client_key(req) else {
            return;
        };
        let needed = if self.role == Role::Primary { 3 } else { 2 };
        let (first, count) = match self.waiting.get_mut(key) {
            Some(w) if secs > w.last_secs => {
                w.last_secs = secs;
                w.count = w.count.saturating_add(1);
                (w.first, w.count)
            }
            Some(_) => return,
            None => {
                self.waiting.insert(
                    key.to_vec(),
                    Sighting {
                        first: self.mono,
                        last_secs: secs,
                        count: 0,
                    },
                );
                return;
            }
        };
        if count < needed || self.mono.saturating_sub(first) < self.cfg.max_ack_delay {
            return;
        }
        let limit = self.cfg.max_unacked_clients as usize;
        if self.unacked.len() <= limit {
            self.unacked.insert(key.to_vec());
        }
        if self.unacked.len() > limit {
            self.unacked.clear();
            self.waiting.clear();
            self.set_state(HaState::PartnerDown);
            self.refresh();
        }
    }

    /// The engine queued `leases` as commit `commit` (from `Engine::poll_commit`): they go to
    /// the partner, and the commit's reply waits for the partner's ack while the gate is on.
    pub fn lease_changed(&mut self, commit: CommitId, leases: Vec<Lease>) {
        if leases.is_empty() {
            self.actions.push_back(HaAction::PartnerAcked(vec![commit]));
            return;
        }
        if self.state == HaState::Terminated
            || (!self.reachable
                && matches!(
                    self.state,
                    HaState::PartnerDown | HaState::PartnerInMaintenance
                ))
        {
            // Serving alone: the partner will fetch the whole table when it is back.
            self.partner_behind = true;
            return;
        }
        self.enqueue(Some(commit), leases);
    }

    fn enqueue(&mut self, commit: Option<CommitId>, leases: Vec<Lease>) {
        self.queued_leases += leases.len();
        self.queue.push_back((commit, leases));
        if self.unacked_updates() > self.cfg.update_queue_limit as usize {
            self.drop_updates();
        }
    }

    /// The partner's batch (from [`HaAction::Store`]) is durable here: acknowledge it.
    pub fn handle_stored(&mut self, ack: StoreAck) {
        if self.link_up && self.hello_ok {
            self.out.push_back(PartnerMessage::LeaseAck {
                batch: ack.batch,
                rejected: ack.rejected,
            });
        }
    }

    /// Time passed: heartbeats leave, a silent partner is noticed.
    pub fn handle_timeout(&mut self, now: Now) {
        self.clock(now);
        if self.link_up
            && self.hello_ok
            && self.mono >= self.last_sent.saturating_add(self.cfg.heartbeat_delay)
            && self.out.is_empty()
        {
            self.out.push_back(self.heartbeat());
        }
        self.refresh();
    }

    // ----- operator mutators -----------------------------------------------------------------

    /// Takes this server out of service on purpose: it stops serving at once and tells the
    /// partner, which serves every client from then on with no takeover delay.
    pub fn start_maintenance(&mut self, now: Now) -> Result<(), HaError> {
        self.clock(now);
        if !self.reachable
            || !self.state.is_normal()
            || !self.partner_state.is_some_and(HaState::is_normal)
        {
            return Err(HaError::NotNow(
                "maintenance needs both servers in their normal state and able to talk",
            ));
        }
        self.set_state(HaState::InMaintenance);
        self.out
            .push_back(PartnerMessage::Maintenance { start: true });
        self.refresh();
        Ok(())
    }

    /// Ends a maintenance: the server waits for its partner, syncs when it must, then takes up
    /// its role again.
    pub fn resume(&mut self, now: Now) -> Result<(), HaError> {
        self.clock(now);
        if self.state != HaState::InMaintenance {
            return Err(HaError::NotNow("this server is not in maintenance"));
        }
        if self.link_up && self.hello_ok {
            self.out
                .push_back(PartnerMessage::Maintenance { start: false });
        }
        self.set_state(HaState::Waiting);
        self.refresh();
        Ok(())
    }

    /// Fetches the partner's whole table again (an operator who suspects this server missed
    /// updates): the server stops serving, syncs page by page, then takes up its role.
    pub fn request_sync(&mut self, now: Now) -> Result<(), HaError> {
        self.clock(now);
        if !self.reachable {
            return Err(HaError::NotNow(
                "a sync needs the partner reachable (it serves the pages)",
            ));
        }
        if matches!(self.state, HaState::InMaintenance | HaState::Terminated) {
            return Err(HaError::NotNow(
                "this server is in maintenance or terminated",
            ));
        }
        if self.state == HaState::Syncing {
            return Err(HaError::NotNow("a sync is already running"));
        }
        self.mark_behind();
        self.refresh();
        Ok(())
    }

    // ----- polls -----------------------------------------------------------------------------

    /// The next frame for the partner link (encode it with [`PartnerMessage::encode`]). Lease
    /// updates are cut into batches here, as late as possible, so one batch carries every
    /// change queued since the last one.
    pub fn poll_message(&mut self) -> Option<PartnerMessage> {
        if !self.link_up {
            return None;
        }
        if let Some(m) = self.out.pop_front() {
            self.last_sent = self.mono;
            return Some(m);
        }
        if !self.hello_ok || self.in_flight.len() >= MAX_BATCHES_IN_FLIGHT || self.queue.is_empty()
        {
            return None;
        }
        let mut commits = Vec::new();
        let mut leases = Vec::new();
        while let Some((_, l)) = self.queue.front() {
            if !leases.is_empty() && leases.len() + l.len() > MAX_BATCH_LEASES {
                break;
            }
            let Some((c, l)) = self.queue.pop_front() else {
                break;
            };
            self.queued_leases = self.queued_leases.saturating_sub(l.len());
            commits.push((c, l.iter().map(|x| x.ip).collect()));
            leases.extend(l);
        }
        self.next_batch += 1;
        let id = self.next_batch;
        self.in_flight_leases += leases.len();
        self.in_flight.push_back(Batch {
            id,
            commits,
            leases: leases.clone(),
            sent: self.mono,
        });
        self.last_sent = self.mono;
        Some(PartnerMessage::LeaseUpdates { batch: id, leases })
    }

    /// The next piece of work for the engine or the store.
    pub fn poll_action(&mut self) -> Option<HaAction> {
        self.actions.pop_front()
    }

    /// The next log line or metric.
    pub fn poll_event(&mut self) -> Option<HaEvent> {
        self.events.pop_front()
    }

    /// When [`Ha::handle_timeout`] next has work (monotonic).
    pub fn poll_timeout(&self) -> Option<Duration> {
        let mut next: Option<Duration> = None;
        let mut at = |t: Duration| next = Some(next.map_or(t, |n| n.min(t)));
        if self.link_up && self.hello_ok {
            at(self.last_sent.saturating_add(self.cfg.heartbeat_delay));
        }
        if self.reachable {
            if let Some(h) = self.last_heard {
                at(h.saturating_add(self.cfg.max_response_delay));
            }
            if let Some(b) = self.in_flight.front() {
                at(b.sent.saturating_add(self.cfg.max_response_delay));
            }
        }
        next
    }

    // ----- the work --------------------------------------------------------------------------

    /// Splits a partner batch. A binding at an address our table holds bound and active for
    /// another client is a conflict: both servers bound it, and at most one of the two
    /// bindings was ACKed (an ACK waits for the partner, which then knows the address is
    /// taken). The newer binding wins (`starts`, then `expires`, then the primary's), the same
    /// way on both servers: an older one is either a race both saw (neither ACKed yet) or a
    /// binding whose reply was dropped when the partner became unreachable, while the newer
    /// one was made by a server that could not know it. We refuse a losing binding (its
    /// sender's reply never leaves) and take a winning one over our own client's (whose reply,
    /// if still waiting, then never leaves: the engine finds the lease no longer its client's).
    /// A binding over one of our offers is always taken.
    fn receive_updates(&mut self, batch: u64, leases: Vec<Lease>, table: &LeaseTable) {
        let partner_primary = self.role != Role::Primary;
        let mut rejected = Vec::new();
        let mut forced = Vec::new();
        let mut merged = Vec::with_capacity(leases.len());
        for l in leases {
            let bound = l.state == LeaseState::Bound && l.is_active(self.wall);
            let ours = table
                .by_ip(l.ip)
                .filter(|t| t.client_id != l.client_id && t.is_active(self.wall));
            match ours {
                Some(t) if t.state == LeaseState::Bound && bound => {
                    let theirs_newer = (l.starts, l.expires) > (t.starts, t.expires)
                        || ((l.starts, l.expires) == (t.starts, t.expires) && partner_primary);
                    if theirs_newer {
                        forced.push(l);
                    } else {
                        rejected.push(l.ip);
                    }
                }
                Some(t) if t.state == LeaseState::Offered && bound => forced.push(l),
                _ => merged.push(l),
            }
        }
        self.actions.push_back(HaAction::Store {
            ack: Some(StoreAck { batch, rejected }),
            leases: merged,
            forced,
        });
    }

    /// Ours go back the other way, for the address range one sync page covers: what we bound
    /// alone (before a crash, in partner-down) the partner may never have heard of. Only
    /// leases missing from the page or later than its are queued; the partner takes what is
    /// news to it and refuses what it bound more recently.
    fn push_back_news(&mut self, table: &LeaseTable, page: &[Lease], until: Option<Ipv4Addr>) {
        let floor = self.sync_after.map_or(0, |ip| u64::from(u32::from(ip)) + 1);
        let ceiling = until.map_or(u64::from(u32::MAX), |ip| u64::from(u32::from(ip)));
        let theirs: std::collections::HashMap<Ipv4Addr, &Lease> =
            page.iter().map(|l| (l.ip, l)).collect();
        let news: Vec<Lease> = table
            .iter()
            .skip_while(|l| u64::from(u32::from(l.ip)) < floor)
            .take_while(|l| u64::from(u32::from(l.ip)) <= ceiling)
            .filter(|l| l.state != LeaseState::Offered)
            .filter(|l| {
                theirs.get(&l.ip).is_none_or(|p| {
                    *l != *p
                        && (l.starts > p.starts || (l.starts == p.starts && l.expires != p.expires))
                })
            })
            .cloned()
            .collect();
        for chunk in news.chunks(MAX_BATCH_LEASES) {
            self.enqueue(None, chunk.to_vec());
        }
    }

    fn clock(&mut self, now: Now) {
        self.mono = self.mono.max(now.mono);
        self.wall = self.wall.max(now.wall);
    }

    fn heartbeat(&self) -> PartnerMessage {
        PartnerMessage::Heartbeat {
            state: self.state,
            wall: self.wall,
        }
    }

    fn refuse(&mut self, reason: String) {
        self.events.push_back(HaEvent::PartnerRefused { reason });
        self.hello_ok = false;
        self.out.clear();
        self.refresh();
    }

    /// The partner is ahead of us: fetch its table before serving again.
    fn mark_behind(&mut self) {
        self.must_sync = true;
        if !matches!(
            self.state,
            HaState::InMaintenance | HaState::Terminated | HaState::Syncing
        ) {
            self.set_state(HaState::Waiting);
        }
    }

    /// The queue outgrew its cap: drop it, the replies waiting on it never leave, and the
    /// partner is told to sync from us.
    fn drop_updates(&mut self) {
        let leases = self.unacked_updates();
        let mut lost: Vec<CommitId> = self.queue.drain(..).filter_map(|(c, _)| c).collect();
        lost.extend(
            self.in_flight
                .drain(..)
                .flat_map(|b| b.commits.into_iter().filter_map(|(c, _)| c)),
        );
        self.queued_leases = 0;
        self.in_flight_leases = 0;
        self.actions.push_back(HaAction::PartnerLost(lost));
        self.events.push_back(HaEvent::UpdatesDropped { leases });
        // Said now if the partner can hear it, and again in every hello until the partner
        // starts its sync (the link may be cut without either side knowing yet).
        self.partner_behind = true;
        if self.reachable {
            self.out.push_back(PartnerMessage::Resync);
        }
    }

    fn request_page(&mut self, after: Option<Ipv4Addr>) {
        self.out.push_back(PartnerMessage::SyncRequest {
            after,
            limit: self.cfg.sync_page_limit,
        });
    }

    fn set_state(&mut self, to: HaState) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.events.push_back(HaEvent::StateChanged { from, to });
        if self.link_up && self.hello_ok {
            self.out.push_back(self.heartbeat());
        }
        self.update_gate();
    }

    fn normal_state(&self) -> HaState {
        match self.cfg.mode {
            HaMode::HotStandby => HaState::HotStandby,
            HaMode::LoadBalancing => HaState::LoadBalancing,
        }
    }

    fn partner_is(&self, states: &[HaState]) -> bool {
        self.partner_state.is_some_and(|s| states.contains(&s))
    }

    /// Recomputes reachability, takes the transitions it and the partner's state allow, and
    /// the gate. Runs at the end of every handler.
    fn refresh(&mut self) {
        let silent =
            |since: Duration| self.mono.saturating_sub(since) >= self.cfg.max_response_delay;
        let reachable = self.link_up
            && self.hello_ok
            && self.last_heard.is_some_and(|h| !silent(h))
            && self.in_flight.front().is_none_or(|b| !silent(b.sent));
        if reachable != self.reachable {
            self.reachable = reachable;
            self.unacked.clear();
            self.waiting.clear();
            self.events.push_back(if reachable {
                HaEvent::CommunicationRestored
            } else {
                HaEvent::CommunicationInterrupted
            });
            if reachable && self.partner_behind {
                self.out.push_back(PartnerMessage::Resync);
            }
        }
        match self.state {
            HaState::Waiting if reachable => {
                if self.must_sync {
                    self.sync_leases = 0;
                    self.sync_after = None;
                    self.set_state(HaState::Syncing);
                    self.request_page(None);
                } else {
                    self.set_state(HaState::Ready);
                }
            }
            HaState::Syncing | HaState::Ready if !reachable => self.set_state(HaState::Waiting),
            HaState::Ready
                if self.partner_is(&[
                    HaState::Ready,
                    HaState::HotStandby,
                    HaState::LoadBalancing,
                ]) =>
            {
                self.set_state(self.normal_state());
            }
            HaState::PartnerInMaintenance if !reachable => self.set_state(HaState::PartnerDown),
            HaState::PartnerDown | HaState::PartnerInMaintenance
                if reachable && self.partner_is(&[HaState::Ready]) =>
            {
                self.set_state(self.normal_state());
            }
            _ => {}
        }
        self.update_gate();
    }

    fn update_gate(&mut self) {
        let gate = self.reachable && self.state.is_normal();
        if gate != self.gate {
            self.gate = gate;
            self.actions.push_back(HaAction::Gate(gate));
        }
        let scope = if self.cfg.mode == HaMode::LoadBalancing
            && !self.reachable
            && matches!(self.state, HaState::LoadBalancing | HaState::Terminated)
        {
            PoolScope::OwnHalf
        } else {
            PoolScope::Whole
        };
        if scope != self.scope {
            self.scope = scope;
            self.actions.push_back(HaAction::Scope(scope));
        }
    }
}
