//! A deterministic simulation of an HA pair: two engines, two [`Ha`] machines, the drivers
//! between them as io will be, a virtual clock, and a virtual network whose partner link can be
//! cut (noticed or silently) and whose client paths can be cut, servers that crash and restart
//! from their durable store, operators who put one in maintenance, and seeded DHCP clients.
//!
//! Invariants, checked after every step:
//! - no address is held by two clients at once (the ACKs clients received);
//! - an ACK whose commit was made while the gate was on, and released with the gate on since,
//!   has its lease durable in the partner's store;
//! - at the end, with every fault healed and the pair settled, both servers are in their normal
//!   state and their tables agree on every active binding.
//!
//! Faults are those the design promises to survive: a cut partner link with clients reaching
//! both servers, a crash of one server while the pair was in step, a client path cut while the
//! partner link is up, maintenance, each begun while the pair is in step; a partner link cut
//! while one server is down. Not simulated, because the design does not promise them (see
//! docs/ha.md, "Limits"): a cut partner link *and* a cut client path to a server that is alive
//! (no heartbeat/secs scheme tells that from a dead partner), and both servers out of step and
//! cut off from each other at once (a primary restarting while its standby leaves maintenance
//! with the link cut), where both may take over together.
//!
//! `HA_SIM_SEEDS=n` runs n seeds (default 1000) from `HA_SIM_FIRST` (default 0);
//! `HA_SIM_SEED=s` runs one, with its trace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use leased_config::{Format, load_str};
use leased_core::sql::AllocationSlot;
use leased_core::{ClientId, Lease, LeaseState, LeaseTable, Plan, Request, Timestamp};
use leased_engine::{CommitOutcome, Engine, EngineSettings, Inbound, Now, Origin};
use leased_ha::{
    Ha, HaAction, HaConfig, HaMode, HaState, PartnerMessage, Peer, PoolScope, Role, StoreAck,
    own_half,
};
use leased_wire::{BOOTREQUEST, MessageType, Options, Packet, code};

const BASE_WALL: u64 = 2_000_000_000;
const LEASE: u64 = 120;
const RUN_MS: u64 = 330_000;
const SETTLE_MS: u64 = 60_000;
const LINK_MS: u64 = 2;
const CLIENT_MS: u64 = 1;
const RETRY_MS: u64 = 2_000;

/// SplitMix64: small, seedable, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn now_of(t: u64) -> Now {
    Now {
        wall: Timestamp(BASE_WALL + t / 1000),
        mono: Duration::from_millis(t),
    }
}

fn server_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 1 + i as u8)
}

struct Server {
    idx: usize,
    alive: bool,
    plan: Arc<Plan>,
    /// The plan of this server's half of the pools (load-balancing with the partner cut off).
    half: Arc<Plan>,
    settings: Arc<EngineSettings>,
    cfg: Arc<HaConfig>,
    engine: Engine,
    ha: Ha,
    /// What survives a crash.
    store: BTreeMap<Ipv4Addr, Lease>,
    commits: VecDeque<(u64, leased_engine::Commit)>,
    stores: VecDeque<(u64, Option<StoreAck>, Vec<Lease>)>,
    /// ACKs that must find the partner's copy: (ip, client) → the lease's expiry, recorded
    /// when the commit was made with the gate on; cleared when the gate goes off.
    gated: HashMap<(Ipv4Addr, ClientId), Timestamp>,
    /// The latest commit time, so that commits end in order.
    last_due: u64,
}

impl Server {
    fn start(
        idx: usize,
        plan: Arc<Plan>,
        settings: Arc<EngineSettings>,
        cfg: Arc<HaConfig>,
        t: u64,
    ) -> Self {
        let role = cfg.me().unwrap().role;
        let half = Arc::new(Plan::new(own_half(&plan.network, role)));
        let engine = Engine::new(
            Arc::clone(&plan),
            Arc::clone(&settings),
            LeaseTable::default(),
        );
        let ha = Ha::new(Arc::clone(&cfg), now_of(t)).unwrap();
        Self {
            idx,
            alive: true,
            plan,
            half,
            settings,
            cfg,
            engine,
            ha,
            store: BTreeMap::new(),
            commits: VecDeque::new(),
            stores: VecDeque::new(),
            gated: HashMap::new(),
            last_due: 0,
        }
    }

    fn crash(&mut self) {
        self.alive = false;
        self.commits.clear();
        self.stores.clear();
        self.gated.clear();
    }

    fn restart(&mut self, t: u64) {
        let table = LeaseTable::from_leases(self.store.values().cloned());
        self.engine = Engine::new(Arc::clone(&self.plan), Arc::clone(&self.settings), table);
        self.ha = Ha::new(Arc::clone(&self.cfg), now_of(t)).unwrap();
        self.alive = true;
        self.last_due = t;
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CState {
    Init,
    Selecting,
    Requesting,
    Bound,
}

struct Client {
    mac: [u8; 6],
    state: CState,
    /// When this acquisition began (the `secs` field counts from here).
    start: u64,
    next: u64,
    xid: u32,
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    tries: u32,
    /// The address this client may use, until when (ms).
    held: Option<(Ipv4Addr, u64)>,
}

enum Fault {
    CutLink,
    HealLink,
    Crash(usize),
    Restart(usize),
    CutClients(usize),
    HealClients(usize),
    Maintenance(usize),
    Resume(usize),
}

struct Sim {
    seed: u64,
    rng: Rng,
    t: u64,
    servers: [Server; 2],
    clients: Vec<Client>,
    link_cut: bool,
    /// Frames on the partner link, per direction (to server 0, to server 1).
    link: [VecDeque<(u64, Vec<u8>)>; 2],
    /// The transport's view of each side: connected or not.
    connected: [bool; 2],
    client_cut: [bool; 2],
    to_servers: VecDeque<(u64, usize, Packet)>,
    to_clients: VecDeque<(u64, usize, Packet)>,
    faults: Vec<(u64, Fault)>,
    trace: VecDeque<String>,
    acks: usize,
    gated_acks: usize,
    next_mac: u16,
}

fn config(
    mode: HaMode,
    me: usize,
    rng: &mut Rng,
) -> (Arc<Plan>, Arc<EngineSettings>, Arc<HaConfig>) {
    let text = format!(
        "[server]\nlease_time = {LEASE}\nserver_id = \"{}\"\n\
         [[subnets]]\nnetwork = \"198.18.0.0/24\"\ninterface = \"eth0\"\n\
         pools = [\"198.18.0.10-198.18.0.45\"]\n",
        server_ip(me)
    );
    let config = load_str(&text, "t.toml", Format::Toml).unwrap();
    let mut network = config.network.clone();
    let roles = match mode {
        HaMode::HotStandby => [Role::Primary, Role::Standby],
        HaMode::LoadBalancing => [Role::Primary, Role::Secondary],
    };
    if mode == HaMode::LoadBalancing {
        network.allocation_slot = Some(AllocationSlot {
            index: me as u32,
            count: 2,
        });
    }
    let ha = HaConfig {
        mode,
        this_server: ["a", "b"][me].into(),
        peers: (0..2)
            .map(|i| Peer {
                name: ["a", "b"][i].into(),
                address: std::net::SocketAddr::from((server_ip(i), 8647)),
                role: roles[i],
            })
            .collect(),
        heartbeat_delay: Duration::from_secs(1),
        max_response_delay: Duration::from_secs(4),
        max_ack_delay: Duration::from_secs(2),
        max_unacked_clients: 2,
        sync_page_limit: 7,
        update_queue_limit: if rng.chance(30) { 6 } else { 1_000 },
    };
    (
        Arc::new(Plan::new(network)),
        Arc::new(config.engine_settings()),
        Arc::new(ha),
    )
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let mode = if rng.chance(50) {
            HaMode::HotStandby
        } else {
            HaMode::LoadBalancing
        };
        let mk = |i: usize, rng: &mut Rng| {
            let (p, s, c) = config(mode, i, rng);
            Server::start(i, p, s, c, 0)
        };
        let servers = [mk(0, &mut rng), mk(1, &mut rng)];
        let n = rng.range(6, 16) as usize;
        let clients = (0..n)
            .map(|i| Client {
                mac: [2, 0, 0, 0, 0, i as u8],
                state: CState::Init,
                start: 0,
                next: rng.range(0, 20_000),
                xid: 0,
                offer: None,
                tries: 0,
                held: None,
            })
            .collect();
        let mut sim = Self {
            seed,
            rng,
            t: 0,
            servers,
            clients,
            link_cut: false,
            link: [VecDeque::new(), VecDeque::new()],
            connected: [false, false],
            client_cut: [false, false],
            to_servers: VecDeque::new(),
            to_clients: VecDeque::new(),
            faults: Vec::new(),
            trace: VecDeque::new(),
            acks: 0,
            gated_acks: 0,
            next_mac: 0x100,
        };
        sim.log(format!("seed {seed}: {} with {n} clients", mode.label()));
        sim.connect();
        let mut at = sim.rng.range(20_000, 60_000);
        while at < RUN_MS {
            sim.faults.push((at, Fault::CutLink));
            at += sim.rng.range(10_000, 50_000);
        }
        sim
    }

    fn log(&mut self, line: String) {
        if self.trace.len() == 2_000 {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>7} {line}", self.t));
    }

    fn fail(&self, why: &str) -> ! {
        let mut out = String::new();
        for l in &self.trace {
            let _ = writeln!(out, "{l}");
        }
        panic!(
            "{out}\nseed {}: {why}\nreplay: HA_SIM_SEED={} cargo test -p leased-ha --test pair -- --nocapture",
            self.seed, self.seed
        );
    }

    /// Both sides connect when both are alive and the link is whole.
    fn connect(&mut self) {
        if self.link_cut || !self.servers[0].alive || !self.servers[1].alive {
            return;
        }
        for i in 0..2 {
            if self.connected[i] {
                self.servers[i].ha.handle_link_down(now_of(self.t));
            }
            self.connected[i] = true;
            self.servers[i].ha.handle_link_up(now_of(self.t));
        }
        self.link = [VecDeque::new(), VecDeque::new()];
        self.drain_all();
    }

    fn disconnect(&mut self, i: usize) {
        if self.connected[i] && self.servers[i].alive {
            self.connected[i] = false;
            self.servers[i].ha.handle_link_down(now_of(self.t));
        }
        self.connected[i] = false;
    }

    fn drain_all(&mut self) {
        for i in 0..2 {
            self.drain(i);
        }
    }

    /// The driver: after every handler, every poll of both machines is carried out.
    fn drain(&mut self, i: usize) {
        if !self.servers[i].alive {
            return;
        }
        let now = now_of(self.t);
        loop {
            let mut busy = false;
            let s = &mut self.servers[i];
            while let Some(c) = s.engine.poll_commit() {
                busy = true;
                if s.ha.partner_gate() {
                    for l in &c.leases {
                        if l.state == LeaseState::Bound {
                            s.gated.insert((l.ip, l.client_id.clone()), l.expires);
                        }
                    }
                }
                s.ha.lease_changed(c.id, c.leases.clone());
                let due = s.last_due.max(self.t + self.rng.range(1, 30));
                s.last_due = due;
                s.commits.push_back((due, c));
            }
            while let Some(a) = s.ha.poll_action() {
                busy = true;
                match a {
                    HaAction::Store {
                        ack,
                        leases,
                        forced,
                    } => {
                        let mut taken = s.engine.handle_external(now, leases, false);
                        taken.extend(s.engine.handle_external(now, forced, true));
                        let due = s.last_due.max(self.t + self.rng.range(1, 30));
                        s.last_due = due;
                        s.stores.push_back((due, ack, taken));
                    }
                    HaAction::PartnerAcked(ids) => {
                        for id in ids {
                            s.engine.handle_partner_ack(id);
                        }
                    }
                    HaAction::PartnerLost(ids) => {
                        for id in ids {
                            s.engine.handle_partner_lost(id);
                        }
                    }
                    HaAction::Scope(scope) => {
                        let plan = match scope {
                            PoolScope::Whole => Arc::clone(&s.plan),
                            PoolScope::OwnHalf => Arc::clone(&s.half),
                        };
                        s.engine.set_plan(plan, Arc::clone(&s.settings));
                    }
                    HaAction::Gate(on) => {
                        s.engine.set_partner_gate(on);
                        if !on {
                            s.gated.clear();
                        }
                    }
                }
            }
            let mut frames = Vec::new();
            while let Some(m) = s.ha.poll_message() {
                busy = true;
                frames.push(m);
            }
            let mut sent = Vec::new();
            while let Some(tx) = s.engine.poll_transmit() {
                busy = true;
                sent.push(tx);
            }
            while s.engine.poll_effect().is_some() {}
            let mut events = Vec::new();
            while let Some(e) = s.ha.poll_event() {
                events.push(e);
            }
            for e in events {
                self.log(format!("{} {e:?}", ["a", "b"][i]));
            }
            for m in frames {
                if !matches!(m, PartnerMessage::Heartbeat { .. }) {
                    self.log(format!("{} -> {}", ["a", "b"][i], m.kind()));
                }
                if self.connected[i] && !self.link_cut {
                    self.link[1 - i].push_back((self.t + LINK_MS, m.encode()));
                }
            }
            for tx in sent {
                self.transmit(i, tx);
            }
            if !busy {
                break;
            }
        }
    }

    fn transmit(&mut self, i: usize, tx: leased_engine::Transmit) {
        let p = tx.reply.packet;
        if p.message_type() == Some(MessageType::Ack) && !p.yiaddr.is_unspecified() {
            self.acks += 1;
            let s = &mut self.servers[i];
            let lease = s.engine.table().by_ip(p.yiaddr).cloned();
            if let Some(l) = lease
                && let Some(exp) = s.gated.remove(&(l.ip, l.client_id.clone()))
                && s.ha.partner_gate()
            {
                self.gated_acks += 1;
                let partner = &self.servers[1 - i];
                let ok = partner
                    .store
                    .get(&l.ip)
                    .is_some_and(|p| p.client_id == l.client_id && p.expires >= exp);
                if !ok {
                    self.fail(&format!(
                        "{} ACKed {} to {:?} while the partner was up, but the partner's store has {:?}",
                        ["a", "b"][i],
                        l.ip,
                        l.client_id,
                        partner.store.get(&l.ip)
                    ));
                }
            }
        }
        let Some(c) = self
            .clients
            .iter()
            .position(|c| c.mac[..] == p.chaddr()[..6])
        else {
            return;
        };
        self.to_clients.push_back((self.t + CLIENT_MS, c, p));
    }

    fn packet(&self, c: usize, t: MessageType, extra: &[(u8, Vec<u8>)]) -> Packet {
        let cl = &self.clients[c];
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&cl.mac);
        let mut options = Options::new();
        options.set(code::MESSAGE_TYPE, vec![t.code()]);
        for (k, v) in extra {
            options.set(*k, v.clone());
        }
        Packet {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: cl.xid,
            secs: u16::try_from(self.t.saturating_sub(cl.start) / 1000).unwrap_or(u16::MAX),
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            sname: vec![],
            file: vec![],
            options,
            option82_in_overload: false,
        }
    }

    fn broadcast(&mut self, p: Packet) {
        for i in 0..2 {
            if !self.client_cut[i] {
                self.to_servers
                    .push_back((self.t + CLIENT_MS, i, p.clone()));
            }
        }
    }

    fn client_timer(&mut self, c: usize) {
        let t = self.t;
        if let Some((_, until)) = self.clients[c].held
            && until <= t
        {
            self.clients[c].held = None;
        }
        let cl = &mut self.clients[c];
        match cl.state {
            CState::Init | CState::Selecting => {
                if cl.state == CState::Init {
                    cl.xid = cl.xid.wrapping_add(1);
                }
                cl.state = CState::Selecting;
                cl.next = t + RETRY_MS;
                let p = self.packet(c, MessageType::Discover, &[]);
                self.broadcast(p);
            }
            CState::Requesting => {
                cl.tries += 1;
                if cl.tries > 3 {
                    cl.state = CState::Init;
                    cl.next = t;
                    return;
                }
                cl.next = t + RETRY_MS;
                let Some((ip, sid)) = cl.offer else {
                    cl.state = CState::Init;
                    return;
                };
                let p = self.packet(
                    c,
                    MessageType::Request,
                    &[
                        (code::REQUESTED_IP, ip.octets().to_vec()),
                        (code::SERVER_ID, sid.octets().to_vec()),
                    ],
                );
                self.broadcast(p);
            }
            CState::Bound => {
                if self.rng.chance(20) {
                    // The device leaves (releasing its address half the time) and a new one
                    // arrives: addresses are reused, fresh ones allocated.
                    let release = cl.held.filter(|_| self.rng.chance(50)).zip(cl.offer);
                    self.next_mac += 1;
                    let [hi, lo] = self.next_mac.to_be_bytes();
                    let next = t + self.rng.range(0, 5_000);
                    let cl = &mut self.clients[c];
                    cl.held = None;
                    if let Some(((ip, _), (_, sid))) = release {
                        let mut p = self.packet(
                            c,
                            MessageType::Release,
                            &[(code::SERVER_ID, sid.octets().to_vec())],
                        );
                        p.ciaddr = ip;
                        self.broadcast(p);
                    }
                    self.log(format!(
                        "client {c} leaves (released: {})",
                        release.is_some()
                    ));
                    let cl = &mut self.clients[c];
                    cl.mac = [2, 0, 0, 0, hi, lo];
                    cl.state = CState::Init;
                    cl.start = next;
                    cl.next = next;
                    cl.offer = None;
                    return;
                }
                // Renew by a new exchange (the address stays sticky); keep using the old one
                // until it ends or another is ACKed.
                cl.state = CState::Init;
                cl.start = t;
                cl.next = t;
            }
        }
    }

    fn client_receive(&mut self, c: usize, p: Packet) {
        let t = self.t;
        let cl = &mut self.clients[c];
        if p.xid != cl.xid {
            return;
        }
        match (cl.state, p.message_type()) {
            (CState::Selecting, Some(MessageType::Offer)) => {
                let sid = p
                    .options
                    .get(code::SERVER_ID)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(Ipv4Addr::from)
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                cl.offer = Some((p.yiaddr, sid));
                cl.state = CState::Requesting;
                cl.tries = 0;
                cl.next = t;
            }
            (CState::Requesting, Some(MessageType::Ack))
                if cl.offer.is_some_and(|(ip, _)| ip == p.yiaddr) =>
            {
                // A second of slack: the server's clock counts whole seconds.
                cl.held = Some((p.yiaddr, t + LEASE * 1000 - 1_000));
                cl.state = CState::Bound;
                cl.next = t + LEASE * 500;
                let line = format!("client {c} {:02x?} ACKed {}", cl.mac, p.yiaddr);
                self.log(line);
                self.check_clients();
            }
            (CState::Requesting, Some(MessageType::Nak)) => {
                cl.state = CState::Init;
                cl.next = t + 100;
                cl.held = None;
            }
            _ => {}
        }
    }

    fn check_clients(&self) {
        let mut by_ip: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (i, c) in self.clients.iter().enumerate() {
            if let Some((ip, until)) = c.held
                && until > self.t
                && let Some(other) = by_ip.insert(ip, i)
            {
                self.fail(&format!("{ip} is held by clients {other} and {i} at once"));
            }
        }
    }

    fn server_receive(&mut self, i: usize, p: Packet) {
        if !self.servers[i].alive {
            return;
        }
        let now = now_of(self.t);
        let req = Request::new(p, Some("eth0".into()), Some(server_ip(i)), true);
        let s = &mut self.servers[i];
        s.ha.handle_client_request(now, &req);
        if s.ha.serves(&req) {
            s.engine.handle_packet(
                now,
                Inbound {
                    req,
                    origin: Origin {
                        link: 0,
                        src: None,
                        local: None,
                    },
                    received: now.mono,
                },
            );
        }
        self.drain(i);
    }

    fn next_time(&self) -> u64 {
        let mut next = u64::MAX;
        let mut at = |t: u64| next = next.min(t);
        for q in &self.link {
            if let Some((t, _)) = q.front() {
                at(*t);
            }
        }
        if let Some((t, _, _)) = self.to_servers.front() {
            at(*t);
        }
        if let Some((t, _, _)) = self.to_clients.front() {
            at(*t);
        }
        for s in self.servers.iter().filter(|s| s.alive) {
            if let Some((t, _)) = s.commits.front() {
                at(*t);
            }
            if let Some((t, _, _)) = s.stores.front() {
                at(*t);
            }
            if let Some(d) = s.ha.poll_timeout() {
                at(d.as_millis() as u64);
            }
            if let Some(w) = s.engine.poll_timeout() {
                at(w.0.saturating_sub(BASE_WALL) * 1000);
            }
        }
        for c in &self.clients {
            at(c.next);
        }
        for (t, _) in &self.faults {
            at(*t);
        }
        next.max(self.t)
    }

    fn step(&mut self) {
        self.t = self.next_time();
        let t = self.t;
        let now = now_of(t);
        // Faults.
        let due: Vec<Fault> = {
            let mut keep = Vec::new();
            let mut due = Vec::new();
            for (at, f) in self.faults.drain(..) {
                if at <= t {
                    due.push(f);
                } else {
                    keep.push((at, f));
                }
            }
            self.faults = keep;
            due
        };
        for f in due {
            self.fault(f);
        }
        // The partner link.
        for to in 0..2 {
            while self.link[to].front().is_some_and(|(d, _)| *d <= t) {
                let Some((_, bytes)) = self.link[to].pop_front() else {
                    break;
                };
                if !self.servers[to].alive || !self.connected[to] {
                    continue;
                }
                let s = &mut self.servers[to];
                match PartnerMessage::decode(&bytes) {
                    Ok(m) => s.ha.handle_message(now, m, s.engine.table()),
                    Err(e) => self.fail(&format!("a frame did not decode: {e}")),
                }
                self.drain(to);
            }
        }
        // Clients to servers and back.
        while self.to_servers.front().is_some_and(|(d, _, _)| *d <= t) {
            let Some((_, i, p)) = self.to_servers.pop_front() else {
                break;
            };
            self.server_receive(i, p);
        }
        while self.to_clients.front().is_some_and(|(d, _, _)| *d <= t) {
            let Some((_, c, p)) = self.to_clients.pop_front() else {
                break;
            };
            self.client_receive(c, p);
        }
        // Stores.
        for i in 0..2 {
            if !self.servers[i].alive {
                continue;
            }
            while self.servers[i]
                .commits
                .front()
                .is_some_and(|(d, _)| *d <= t)
            {
                let s = &mut self.servers[i];
                let Some((_, c)) = s.commits.pop_front() else {
                    break;
                };
                for l in &c.leases {
                    s.store.insert(l.ip, l.clone());
                }
                s.engine.handle_commit(c.id, CommitOutcome::Durable);
                self.drain(i);
            }
            while self.servers[i]
                .stores
                .front()
                .is_some_and(|(d, _, _)| *d <= t)
            {
                let s = &mut self.servers[i];
                let Some((_, ack, leases)) = s.stores.pop_front() else {
                    break;
                };
                for l in leases {
                    s.store.insert(l.ip, l);
                }
                if let Some(a) = ack {
                    s.ha.handle_stored(a);
                }
                self.drain(i);
            }
            let s = &mut self.servers[i];
            if s.ha
                .poll_timeout()
                .is_some_and(|d| d.as_millis() as u64 <= t)
            {
                s.ha.handle_timeout(now);
            }
            if s.engine
                .poll_timeout()
                .is_some_and(|w| w.0.saturating_sub(BASE_WALL) * 1000 <= t)
            {
                s.engine.handle_timeout(now);
            }
            self.drain(i);
        }
        for c in 0..self.clients.len() {
            if self.clients[c].next <= t {
                self.client_timer(c);
            }
        }
        self.check_clients();
    }

    fn fault(&mut self, f: Fault) {
        let t = self.t;
        let both = self.servers[0].alive && self.servers[1].alive;
        let clients_whole = !self.client_cut[0] && !self.client_cut[1];
        match f {
            Fault::CutLink if self.link_cut => {}
            Fault::CutLink => {
                // One fault at a time, chosen here.
                let roll = self.rng.range(0, 99);
                let in_step = both
                    && clients_whole
                    && self.servers.iter().all(|s| {
                        s.ha.partner_reachable()
                            && matches!(s.ha.state(), HaState::HotStandby | HaState::LoadBalancing)
                    });
                if roll < 45 || !in_step {
                    if !clients_whole {
                        return;
                    }
                    let silent = self.rng.chance(50);
                    self.log(format!(
                        "fault: partner link cut ({})",
                        if silent { "silent" } else { "noticed" }
                    ));
                    self.link_cut = true;
                    self.link = [VecDeque::new(), VecDeque::new()];
                    if !silent {
                        self.disconnect(0);
                        self.disconnect(1);
                        self.drain_all();
                    }
                    // Shorter than half a lease: see docs/ha.md on load-balancing.
                    let heal = t + self.rng.range(2_000, 50_000);
                    self.faults.push((heal, Fault::HealLink));
                } else if roll < 75 {
                    let i = self.rng.range(0, 1) as usize;
                    self.faults.push((t, Fault::Crash(i)));
                } else if roll < 88 {
                    let i = self.rng.range(0, 1) as usize;
                    self.faults.push((t, Fault::CutClients(i)));
                } else {
                    let i = self.rng.range(0, 1) as usize;
                    self.faults.push((t, Fault::Maintenance(i)));
                }
            }
            Fault::HealLink => {
                self.log("fault healed: partner link".into());
                self.link_cut = false;
                self.connect();
            }
            Fault::Crash(i) => {
                let silent = self.rng.chance(50);
                self.log(format!(
                    "fault: {} crashes ({})",
                    ["a", "b"][i],
                    if silent { "silent" } else { "noticed" }
                ));
                self.servers[i].crash();
                self.connected[i] = false;
                self.link = [VecDeque::new(), VecDeque::new()];
                if !silent {
                    self.disconnect(1 - i);
                    self.drain(1 - i);
                }
                let back = t + self.rng.range(5_000, 60_000);
                self.faults.push((back, Fault::Restart(i)));
            }
            Fault::Restart(i) => {
                self.log(format!("{} restarts", ["a", "b"][i]));
                self.servers[i].restart(t);
                self.connect();
            }
            Fault::CutClients(i) => {
                self.log(format!("fault: clients cannot reach {}", ["a", "b"][i]));
                self.client_cut[i] = true;
                let heal = t + self.rng.range(2_000, 30_000);
                self.faults.push((heal, Fault::HealClients(i)));
            }
            Fault::HealClients(i) => {
                self.log(format!("fault healed: clients reach {}", ["a", "b"][i]));
                self.client_cut[i] = false;
            }
            Fault::Maintenance(i) => {
                if self.servers[i].ha.start_maintenance(now_of(t)).is_ok() {
                    self.log(format!("operator: {} into maintenance", ["a", "b"][i]));
                    let back = t + self.rng.range(5_000, 40_000);
                    self.faults.push((back, Fault::Resume(i)));
                }
                self.drain(i);
            }
            Fault::Resume(i) => {
                if self.servers[i].alive {
                    let _ = self.servers[i].ha.resume(now_of(t));
                    self.log(format!("operator: {} resumes", ["a", "b"][i]));
                    self.drain(i);
                }
            }
        }
    }

    fn run(&mut self) {
        let mut steps = 0u64;
        while self.t < RUN_MS + SETTLE_MS {
            if self.t >= RUN_MS && !self.faults.is_empty() {
                // Settling: only heals and restarts stay scheduled.
                self.faults.retain(|(_, f)| {
                    !matches!(
                        f,
                        Fault::CutLink
                            | Fault::Crash(_)
                            | Fault::CutClients(_)
                            | Fault::Maintenance(_)
                    )
                });
            }
            self.step();
            steps += 1;
            if steps > 2_000_000 {
                self.fail("the simulation does not advance");
            }
        }
        // Quiet: clients stop asking, what is in flight lands.
        for c in &mut self.clients {
            c.next = u64::MAX;
        }
        while self.t < RUN_MS + SETTLE_MS + 5_000 {
            self.step();
        }
        self.settled();
    }

    fn settled(&self) {
        let normal = match self.servers[0].cfg.mode {
            HaMode::HotStandby => HaState::HotStandby,
            HaMode::LoadBalancing => HaState::LoadBalancing,
        };
        for s in &self.servers {
            if s.ha.state() != normal {
                self.fail(&format!(
                    "{} is {} after the faults healed",
                    ["a", "b"][s.idx],
                    s.ha.state().label()
                ));
            }
        }
        let wall = now_of(self.t).wall;
        let active = |s: &Server| -> BTreeMap<Ipv4Addr, ClientId> {
            s.engine
                .table()
                .iter()
                .filter(|l| l.state == LeaseState::Bound && l.is_active(wall))
                .map(|l| (l.ip, l.client_id.clone()))
                .collect()
        };
        let (a, b) = (active(&self.servers[0]), active(&self.servers[1]));
        if a != b {
            self.fail(&format!(
                "the tables disagree after sync:\n a {a:?}\n b {b:?}"
            ));
        }
        if self.acks == 0 {
            self.fail("no client was ever served");
        }
    }
}

#[test]
fn pair_survives_partitions_crashes_and_maintenance() {
    if let Ok(seed) = std::env::var("HA_SIM_SEED") {
        let seed: u64 = seed.parse().expect("HA_SIM_SEED is a number");
        let mut sim = Sim::new(seed);
        sim.run();
        for l in &sim.trace {
            println!("{l}");
        }
        println!(
            "seed {seed}: {} ACKs, {} checked against the partner",
            sim.acks, sim.gated_acks
        );
        return;
    }
    let seeds: u64 = std::env::var("HA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let first: u64 = std::env::var("HA_SIM_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut acks, mut gated) = (0, 0);
    for seed in first..first + seeds {
        let mut sim = Sim::new(seed);
        sim.run();
        acks += sim.acks;
        gated += sim.gated_acks;
    }
    assert!(gated > 0, "no ACK was ever checked against the partner");
    println!("{seeds} seeds: {acks} ACKs, {gated} checked against the partner's store");
}
