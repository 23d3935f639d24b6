//! High availability in `leased serve`: the sans-IO [`leased_ha::Ha`] runs on the engine's
//! task, beside the engine (it reads the lease table and its actions call the engine), and the
//! partner link's transport ([`link`]) runs on its own tasks.
//!
//! What the driver does with the machine, in order, after every handler: lease changes the
//! engine queued go to the machine as well as to the store (`lease_changed`); the machine's
//! actions are carried out on the engine (partner leases merged and committed, ACKs released
//! or dropped, the gate, the pool half); its frames go to the link; its events become log
//! lines and counters; a status snapshot is published for `GET /ha` and `leased ha status`.

mod frames;
mod link;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use leased_config::HaSettings;
use leased_core::{Plan, Request};
use leased_engine::{Commit, Engine, EngineSettings, Now};
use leased_ha::{Ha, HaAction, HaEvent, HaState, PartnerMessage, PoolScope, Role};
use tokio::sync::{mpsc, oneshot};

use crate::commit::Committer;

pub(crate) use link::LinkEvent;

/// What an operator can ask of the HA side (`leased ha …`, `POST /ha/…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaCommand {
    /// Stop serving on purpose; the partner takes over at once.
    Maintenance,
    /// End a maintenance.
    Resume,
    /// Fetch the partner's table again before serving.
    Sync,
}

/// The HA side as an operator sees it, published by the engine task.
#[derive(Debug, Clone, PartialEq)]
pub struct HaStatus {
    /// `hot-standby` or `load-balancing`.
    pub mode: &'static str,
    /// This server's peer name and role.
    pub this_server: String,
    /// `primary`, `standby` or `secondary`.
    pub role: &'static str,
    /// The partner's peer name and `url`.
    pub partner: String,
    /// Where the partner's link listens.
    pub partner_url: SocketAddr,
    /// This server's state (`hot-standby`, `partner-down`, …).
    pub state: &'static str,
    /// When this server entered it.
    pub state_since: Instant,
    /// The partner's state as it last said.
    pub partner_state: Option<&'static str>,
    /// A link is connected and authenticated.
    pub link_up: bool,
    /// The partner answers in time (ACKs then wait for its copy).
    pub partner_reachable: bool,
    /// When the partner was last heard from.
    pub last_contact: Option<Instant>,
    /// Lease changes queued or unacknowledged for the partner.
    pub unsent_updates: usize,
    /// Lease changes sent to the partner since start.
    pub updates_sent: u64,
    /// Commits the partner acknowledged as durable since start.
    pub updates_acked: u64,
    /// Commits whose partner copy was refused or dropped since start (their replies never left).
    pub updates_failed: u64,
    /// Lease changes received from the partner since start.
    pub updates_received: u64,
    /// State changes since start.
    pub state_changes: u64,
    /// Bulk syncs completed since start.
    pub syncs: u64,
    /// How long the last completed sync took, and how many leases it brought.
    pub last_sync: Option<(Duration, u64)>,
    /// Why the partner was last refused, if it was.
    pub last_refusal: Option<String>,
}

/// An operator command with the channel its answer goes back on.
type CommandRequest = (HaCommand, oneshot::Sender<Result<String, String>>);

/// The HA side's window for the API: its status, and a door for commands.
#[derive(Debug, Clone)]
pub(crate) struct HaView {
    pub(crate) status: Arc<ArcSwap<HaStatus>>,
    pub(crate) commands: mpsc::Sender<CommandRequest>,
}

impl HaView {
    /// Carries out `cmd` on the engine task; `None` when the server is shutting down.
    pub(crate) async fn command(&self, cmd: HaCommand) -> Option<Result<String, String>> {
        let (tx, rx) = oneshot::channel();
        self.commands.send((cmd, tx)).await.ok()?;
        rx.await.ok()
    }
}

/// How often the status is published at least (its counters move with every update).
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// The HA side of the engine's driver.
pub(crate) struct HaSide {
    machine: Ha,
    /// The connection the machine believes is up, and its send queue.
    link: Option<(u64, mpsc::Sender<Vec<u8>>)>,
    link_rx: mpsc::Receiver<LinkEvent>,
    _transport: link::Link,
    /// Acknowledgements owed to the partner, sent back by the commit thread once durable.
    stored_tx: mpsc::UnboundedSender<leased_ha::StoreAck>,
    stored_rx: mpsc::UnboundedReceiver<leased_ha::StoreAck>,
    commands: mpsc::Receiver<CommandRequest>,
    view: HaView,
    /// The loaded plan the halves were cut from, and this server's half of it.
    whole: Arc<Plan>,
    half: Arc<Plan>,
    status: HaStatus,
    published: Instant,
    /// The status changed since it was last published (it goes out within [`PUBLISH_EVERY`]).
    unpublished: bool,
    sync_started: Option<Instant>,
    /// Origin of the driver's monotonic clock (to turn the machine's deadlines into instants).
    started: Instant,
}

/// Label of a state, as the status shows it.
fn state_label(s: HaState) -> &'static str {
    s.label()
}

impl HaSide {
    /// Starts the partner link for `settings` (binding its listener now) and a machine in
    /// `waiting`. `plan` is the loaded plan; `started` the driver's clock origin.
    pub(crate) fn start(
        settings: &HaSettings,
        plan: Arc<Plan>,
        started: Instant,
        now: Now,
    ) -> anyhow::Result<Self> {
        let cfg = Arc::new(settings.machine.clone());
        let machine = Ha::new(Arc::clone(&cfg), now).map_err(|e| anyhow::anyhow!("{e}"))?;
        let me = cfg
            .me()
            .ok_or_else(|| anyhow::anyhow!("[ha] this_server names no peer"))?
            .clone();
        let partner = cfg
            .partner()
            .ok_or_else(|| anyhow::anyhow!("[ha] has no partner"))?
            .clone();
        let tls = settings
            .tls
            .as_ref()
            .map(|t| tls::load(t, &partner.name))
            .transpose()?;
        let (events_tx, link_rx) = mpsc::channel(1024);
        let transport = link::start(
            link::LinkParams {
                me: me.address,
                partner: partner.address,
                dial: me.role == Role::Primary,
                tls,
                key: settings
                    .shared_key
                    .as_ref()
                    .map(|k| k.0.as_bytes().to_vec()),
            },
            events_tx,
        )?;
        let (stored_tx, stored_rx) = mpsc::unbounded_channel();
        let (commands_tx, commands) = mpsc::channel(8);
        let status = HaStatus {
            mode: cfg.mode.label(),
            this_server: me.name.clone(),
            role: me.role.label(),
            partner: partner.name.clone(),
            partner_url: partner.address,
            state: state_label(machine.state()),
            state_since: Instant::now(),
            partner_state: None,
            link_up: false,
            partner_reachable: false,
            last_contact: None,
            unsent_updates: 0,
            updates_sent: 0,
            updates_acked: 0,
            updates_failed: 0,
            updates_received: 0,
            state_changes: 0,
            syncs: 0,
            last_sync: None,
            last_refusal: None,
        };
        let view = HaView {
            status: Arc::new(ArcSwap::from_pointee(status.clone())),
            commands: commands_tx,
        };
        tracing::info!(
            mode = cfg.mode.label(),
            this_server = %me.name,
            role = me.role.label(),
            partner = %partner.name,
            partner_url = %partner.address,
            "HA: {} as {}; {} the partner link",
            cfg.mode.label(),
            me.role.label(),
            if me.role == Role::Primary { "dialing" } else { "listening for" }
        );
        let half = Arc::new(Plan::new(leased_ha::own_half(&plan.network, me.role)));
        Ok(Self {
            machine,
            link: None,
            link_rx,
            _transport: transport,
            stored_tx,
            stored_rx,
            commands,
            view,
            whole: plan,
            half,
            status,
            published: Instant::now(),
            unpublished: false,
            sync_started: None,
            started,
        })
    }

    /// The window the API reads.
    pub(crate) fn view(&self) -> HaView {
        self.view.clone()
    }

    /// The next thing the HA side must react to, for the driver's `select!`.
    pub(crate) async fn next(&mut self) -> HaInput {
        let deadline = self
            .machine
            .poll_timeout()
            .map(|d| tokio::time::Instant::from_std(self.started + d));
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let publish_at = self
            .unpublished
            .then(|| tokio::time::Instant::from_std(self.published + PUBLISH_EVERY));
        let publish = async {
            match publish_at {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(ev) = self.link_rx.recv() => HaInput::Link(ev),
            Some(ack) = self.stored_rx.recv() => HaInput::Stored(ack),
            Some(cmd) = self.commands.recv() => HaInput::Command(cmd),
            () = timer => HaInput::Timeout,
            () = publish => HaInput::Publish,
        }
    }

    /// Handles one input; the driver then calls [`HaSide::drive`].
    pub(crate) fn handle(&mut self, input: HaInput, now: Now, engine: &Engine) {
        match input {
            HaInput::Link(LinkEvent::Up { id, tx, peer }) => {
                if self.link.is_some() {
                    // A newer link replaced the old one (the partner restarted).
                    self.machine.handle_link_down(now);
                }
                tracing::info!(peer = %peer, "HA partner link up");
                self.link = Some((id, tx));
                self.machine.handle_link_up(now);
            }
            HaInput::Link(LinkEvent::Down { id, why }) => {
                if self.link.as_ref().is_some_and(|(c, _)| *c == id) {
                    tracing::warn!("HA partner link down: {why}");
                    self.link = None;
                    self.machine.handle_link_down(now);
                }
            }
            HaInput::Link(LinkEvent::Message { id, msg }) => {
                if self.link.as_ref().is_some_and(|(c, _)| *c == id) {
                    if let PartnerMessage::LeaseUpdates { leases, .. } = &msg {
                        self.status.updates_received += leases.len() as u64;
                    }
                    self.machine.handle_message(now, msg, engine.table());
                }
            }
            HaInput::Link(LinkEvent::Undecodable { id, error }) => {
                if self.link.as_ref().is_some_and(|(c, _)| *c == id) {
                    self.link = None;
                    self.machine.handle_decode_error(now, &error);
                }
            }
            HaInput::Stored(ack) => self.machine.handle_stored(ack),
            HaInput::Command((cmd, answer)) => {
                let r = match cmd {
                    HaCommand::Maintenance => self
                        .machine
                        .start_maintenance(now)
                        .map(|()| "in maintenance: the partner serves every client".to_owned()),
                    HaCommand::Resume => self
                        .machine
                        .resume(now)
                        .map(|()| "maintenance ended: waiting for the partner".to_owned()),
                    HaCommand::Sync => self
                        .machine
                        .request_sync(now)
                        .map(|()| "syncing from the partner".to_owned()),
                };
                let r = r.map_err(|e| e.to_string());
                match &r {
                    Ok(m) => tracing::info!(command = ?cmd, "HA: {m}"),
                    Err(e) => tracing::warn!(command = ?cmd, "HA command refused: {e}"),
                }
                let _ = answer.send(r);
            }
            HaInput::Timeout => self.machine.handle_timeout(now),
            HaInput::Publish => self.publish(true),
        }
    }

    /// A client request arrived: the machine watches it for failure evidence, and says whether
    /// this server answers it now.
    pub(crate) fn admit(&mut self, now: Now, req: &Request) -> bool {
        self.machine.handle_client_request(now, req);
        self.machine.serves(req)
    }

    /// The engine queued `c`: the partner gets it too.
    pub(crate) fn lease_changed(&mut self, c: &Commit) {
        self.machine.lease_changed(c.id, c.leases.clone());
    }

    /// Carries out everything the machine asks, until it has nothing more (what it does can
    /// ask for more: a full send queue or a refusal takes the link down, which changes the gate).
    pub(crate) fn drive(
        &mut self,
        now: Now,
        engine: &mut Engine,
        committer: &Committer,
        settings: &Arc<EngineSettings>,
    ) {
        for _ in 0..8 {
            let mut busy = false;
            while let Some(a) = self.machine.poll_action() {
                busy = true;
                self.act(a, now, engine, committer, settings);
            }
            while let Some(m) = self.machine.poll_message() {
                busy = true;
                if let PartnerMessage::LeaseUpdates { leases, .. } = &m {
                    self.status.updates_sent += leases.len() as u64;
                }
                self.send(&m, now);
            }
            let mut refused = false;
            while let Some(e) = self.machine.poll_event() {
                busy = true;
                refused |= matches!(e, HaEvent::PartnerRefused { .. });
                self.event(e);
            }
            if refused && self.link.take().is_some() {
                // Dropping the send queue closes the connection; the machine sees it gone
                // now (the transport's own "down" for it is then ignored, its id no longer
                // current).
                self.machine.handle_link_down(now);
            }
            if !busy {
                break;
            }
        }
        self.publish(false);
    }

    fn act(
        &mut self,
        a: HaAction,
        now: Now,
        engine: &mut Engine,
        committer: &Committer,
        settings: &Arc<EngineSettings>,
    ) {
        match a {
            HaAction::Store {
                ack,
                leases,
                forced,
            } => {
                let mut taken = engine.handle_external(now, leases, false);
                taken.extend(engine.handle_external(now, forced, true));
                if taken.is_empty() {
                    if let Some(ack) = ack {
                        self.machine.handle_stored(ack);
                    }
                    return;
                }
                let tx = self.stored_tx.clone();
                let queued = committer.submit(
                    taken,
                    Box::new(move |res| match (res, ack) {
                        (Ok(()), Some(ack)) => {
                            let _ = tx.send(ack);
                        }
                        (Ok(()), None) => {}
                        (Err(e), _) => tracing::error!(
                            error = %e,
                            "HA: the partner's leases could not be stored; not acknowledged"
                        ),
                    }),
                );
                if !queued {
                    tracing::error!("HA: the commit thread has stopped; partner leases not stored");
                }
            }
            HaAction::PartnerAcked(ids) => {
                self.status.updates_acked += ids.len() as u64;
                for id in ids {
                    engine.handle_partner_ack(id);
                }
            }
            HaAction::PartnerLost(ids) => {
                self.status.updates_failed += ids.len() as u64;
                for id in ids {
                    engine.handle_partner_lost(id);
                }
            }
            HaAction::Gate(on) => engine.set_partner_gate(on),
            HaAction::Scope(scope) => {
                tracing::info!(
                    "HA: allocating from {}",
                    match scope {
                        PoolScope::Whole => "the whole of every pool",
                        PoolScope::OwnHalf => "this server's half of every pool",
                    }
                );
                engine.set_plan(self.plan_now(), Arc::clone(settings));
            }
        }
    }

    /// The plan the engine should decide with: the loaded one, or this server's half of it
    /// while the pool scope says so.
    pub(crate) fn plan_now(&self) -> Arc<Plan> {
        match self.machine.pool_scope() {
            PoolScope::Whole => Arc::clone(&self.whole),
            PoolScope::OwnHalf => Arc::clone(&self.half),
        }
    }

    /// A reload put `plan` in place: cut the halves again.
    pub(crate) fn set_loaded_plan(&mut self, plan: Arc<Plan>) {
        let role = self.machine.config().me().map_or(Role::Primary, |p| p.role);
        self.half = Arc::new(Plan::new(leased_ha::own_half(&plan.network, role)));
        self.whole = plan;
    }

    fn send(&mut self, m: &PartnerMessage, now: Now) {
        let Some((_, tx)) = &self.link else { return };
        match tx.try_send(m.encode()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    "HA: the partner reads too slowly ({} frames queued); closing the link",
                    link::SEND_QUEUE
                );
                self.link = None;
                self.machine.handle_link_down(now);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.link = None;
                self.machine.handle_link_down(now);
            }
        }
    }

    fn event(&mut self, e: HaEvent) {
        match e {
            HaEvent::StateChanged { from, to } => {
                self.status.state_changes += 1;
                self.status.state = state_label(to);
                self.status.state_since = Instant::now();
                if to == HaState::Syncing {
                    self.sync_started = Some(Instant::now());
                }
                let level_warn = matches!(to, HaState::PartnerDown | HaState::Terminated);
                if level_warn {
                    tracing::warn!(
                        from = from.label(),
                        to = to.label(),
                        "HA state {} -> {}",
                        from.label(),
                        to.label()
                    );
                } else {
                    tracing::info!(
                        from = from.label(),
                        to = to.label(),
                        "HA state {} -> {}",
                        from.label(),
                        to.label()
                    );
                }
                self.publish(true);
            }
            HaEvent::CommunicationInterrupted => {
                tracing::warn!(
                    "HA: communication with the partner interrupted; ACKs no longer wait for it"
                );
            }
            HaEvent::CommunicationRestored => tracing::info!("HA: the partner answers again"),
            HaEvent::PartnerRefused { reason } => {
                tracing::error!("HA partner refused: {reason}");
                self.status.last_refusal = Some(reason);
            }
            HaEvent::UpdatesRejected { ips } => tracing::warn!(
                count = ips.len(),
                "HA: the partner holds {} of our addresses bound to other clients, more recently; \
                 those replies are not sent",
                ips.len()
            ),
            HaEvent::UpdatesDropped { leases } => {
                self.status.updates_failed += leases as u64;
                tracing::error!(
                    leases,
                    "HA: the update queue for the partner overflowed; dropped, the partner will sync"
                );
            }
            HaEvent::ClockSkew { secs } => tracing::error!(
                secs,
                "HA: the partner's clock differs by {secs} s (more than {} s): replication \
                 stops until restart (fix NTP)",
                leased_ha::MAX_CLOCK_SKEW
            ),
            HaEvent::SyncDone { leases } => {
                let took = self
                    .sync_started
                    .take()
                    .map_or(Duration::ZERO, |t| t.elapsed());
                self.status.syncs += 1;
                self.status.last_sync = Some((took, leases));
                tracing::info!(
                    leases,
                    ms = took.as_millis() as u64,
                    "HA: sync from the partner done ({leases} leases in {} ms)",
                    took.as_millis()
                );
            }
        }
    }

    /// Publishes the status when something an operator sees changed, or at least every
    /// [`PUBLISH_EVERY`].
    fn publish(&mut self, force: bool) {
        let s = &mut self.status;
        let partner_state = self.machine.partner_state().map(HaState::label);
        let reachable = self.machine.partner_reachable();
        let link_up = self.link.is_some();
        let changed = s.partner_state != partner_state
            || s.partner_reachable != reachable
            || s.link_up != link_up;
        s.partner_state = partner_state;
        s.partner_reachable = reachable;
        s.link_up = link_up;
        s.unsent_updates = self.machine.unacked_updates();
        s.last_contact = self.machine.last_contact().map(|d| self.started + d);
        if **self.view.status.load() == *s {
            self.unpublished = false;
            return;
        }
        if force || changed || self.published.elapsed() >= PUBLISH_EVERY {
            self.view.status.store(Arc::new(s.clone()));
            self.published = Instant::now();
            self.unpublished = false;
        } else {
            self.unpublished = true;
        }
    }
}

/// One thing the HA side reacts to.
pub(crate) enum HaInput {
    /// The transport.
    Link(LinkEvent),
    /// A partner batch is durable here.
    Stored(leased_ha::StoreAck),
    /// An operator command.
    Command(CommandRequest),
    /// The machine's timer.
    Timeout,
    /// The status has changes not yet published.
    Publish,
}
