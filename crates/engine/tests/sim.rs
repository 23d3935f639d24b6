//! Deterministic simulation of a server, on a virtual clock: seeded clients (DORA, renew,
//! rebind, release, decline, inform, reboot; direct and relayed) against the engine, a store
//! that fails, stalls or reports conflicts, a second server writing the same shared store, and
//! conflict probes that answer or time out. Each client is `leased_testkit::Client`, the client
//! `leased probe` runs: it builds the packets, takes only the replies meant for its exchange,
//! retransmits on its timers and knows what it holds; the seeded generator decides what each
//! client does next and when its queued message leaves. After every step the invariants are
//! checked:
//! - an ACK leaves only when its lease is durable in the store;
//! - no address is held by two clients at once (ours or the other server's);
//! - no ACK leaves for a commit that failed;
//! - every OFFER is held in the table for its client;
//! - the lease timers fire;
//! - every drop has a reason (never "no reply needed").
//!
//! `SIM_SEEDS=N` runs N seeds (default 10,000 under CI, 500 otherwise); a failure prints the one
//! command that replays its seed (`SIM_SEED=S`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use leased_config::{Format, load_str};
use leased_core::{ClientId, HwAddr, Lease, LeaseState, LeaseTable, Plan, Request, Timestamp};
use leased_engine::{
    CommitId, CommitOutcome, Effect, Engine, EngineSettings, Inbound, Now, Origin, ProbeAnswer,
    ProbeId, ProbeVia,
};
use leased_testkit::{Client, ClientConfig, Destination, State, Transmit};
use leased_wire::{MessageType, Packet, code};

/// xorshift64*: enough randomness, no dependency, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const LEASE: u32 = 300;
/// The other server's clients have ids with this first byte.
const OTHER: u8 = 0xee;

/// A shared lease store: our commits and the other server's writes.
#[derive(Default)]
struct Store {
    rows: BTreeMap<Ipv4Addr, Lease>,
    failing: bool,
}

impl Store {
    /// Writes `leases` unless another client's active lease holds the address; `Err` when
    /// failing.
    fn commit(&mut self, leases: &[Lease], now: Timestamp) -> CommitOutcome {
        if self.failing {
            return CommitOutcome::Failed {
                error: "injected".into(),
                retried: false,
            };
        }
        let mut conflicts = Vec::new();
        for l in leases {
            match self.rows.get(&l.ip) {
                Some(r)
                    if r.client_id != l.client_id
                        && r.state == LeaseState::Bound
                        && r.is_active(now) =>
                {
                    conflicts.push(l.ip);
                }
                _ => {
                    self.rows.insert(l.ip, l.clone());
                }
            }
        }
        if conflicts.is_empty() {
            CommitOutcome::Durable
        } else {
            CommitOutcome::Conflicts(conflicts)
        }
    }
}

struct Sim {
    seed: u64,
    rng: Rng,
    engine: Engine,
    now: Now,
    store: Store,
    /// Commits in the store's queue, in order (a stalled store lets them wait).
    commits: VecDeque<(CommitId, Vec<Lease>)>,
    probes: Vec<(ProbeId, Ipv4Addr)>,
    clients: Vec<Client>,
    /// The other server's leases not yet synced to us.
    unsynced: Vec<Lease>,
    next_xid: u32,
    steps: u64,
    acks: u64,
    /// Print every message and commit (`SIM_TRACE=1` with `SIM_SEED`).
    trace: bool,
}

fn config(conflict_check: bool) -> (Plan, EngineSettings) {
    let check = if conflict_check {
        "conflict_check = \"ping\""
    } else {
        ""
    };
    let text = format!(
        r#"
[server]
lease_time = {LEASE}
offer_hold = 60
decline_quarantine = 120
sticky_window = 600
server_id = "198.18.0.1"
{check}

[[subnets]]
network = "198.18.0.0/24"
interface = "eth0"
pools = ["198.18.0.10-198.18.0.29"]

[[subnets]]
network = "198.18.1.0/24"
pools = ["198.18.1.10-198.18.1.19"]
"#
    );
    let config = load_str(&text, "sim.toml", Format::Toml).unwrap();
    (Plan::new(config.network.clone()), config.engine_settings())
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let (plan, settings) = config(rng.chance(30));
        let (plan, settings) = (Arc::new(plan), Arc::new(settings));
        let n = 8 + rng.below(30) as usize;
        let clients = (0..n)
            .map(|i| {
                let mut c = ClientConfig::new([2, 0, 0, 0, (i >> 8) as u8, i as u8]);
                if rng.chance(40) {
                    c.giaddr = Some(RELAY);
                    c.option82 = Some(vec![1, 2, b'c', i as u8]);
                }
                Client::new(c)
            })
            .collect();
        Self {
            seed,
            rng,
            engine: Engine::new(plan, settings, LeaseTable::default()),
            now: Now {
                wall: Timestamp(1_000_000),
                mono: Duration::from_secs(1),
            },
            store: Store::default(),
            commits: VecDeque::new(),
            probes: Vec::new(),
            clients,
            unsynced: Vec::new(),
            next_xid: 1,
            steps: 0,
            acks: 0,
            trace: std::env::var("SIM_TRACE").is_ok(),
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {} step {}: {what}\nreplay: SIM_SEED={} cargo test -p leased-engine --test sim -- --nocapture",
            self.seed, self.steps, self.seed
        )
    }

    /// The clients' clock: the wall clock's seconds, so that what a client believes it holds
    /// compares with the store's leases.
    fn client_now(&self) -> Duration {
        Duration::from_secs(self.now.wall.0)
    }

    fn xid(&mut self) -> u32 {
        self.next_xid += 1;
        self.next_xid
    }

    fn relayed(&self, i: usize) -> bool {
        self.clients[i].config().giaddr.is_some()
    }

    fn send(&mut self, i: usize, t: Transmit) {
        let p = t.packet;
        if self.trace {
            println!(
                "t={} step {} client {i} sends {:?} xid={} attempt={} ciaddr={} opt50={:?}",
                self.now.wall.0,
                self.steps,
                p.message_type(),
                p.xid,
                t.attempt,
                p.ciaddr,
                p.options.get(code::REQUESTED_IP)
            );
        }
        let relayed = self.relayed(i);
        let broadcast = !relayed && t.to == Destination::Broadcast;
        let mut req = Request::new(p, Some("eth0".into()), Some(SERVER), broadcast);
        if relayed {
            req.src_addr = Some(RELAY);
        }
        self.engine.handle_packet(
            self.now,
            Inbound {
                req,
                origin: Origin {
                    link: 0,
                    src: None,
                    local: Some(SERVER),
                },
                received: self.now.mono,
            },
        );
    }

    /// One client acts: its queued message (a REQUEST after an OFFER, a retransmission)
    /// leaves, or it does what its state and the generator call for.
    fn client_step(&mut self, i: usize) {
        let now = self.client_now();
        if let Some(t) = self.clients[i].poll_transmit(now) {
            self.send(i, t);
            return;
        }
        match self.clients[i].state() {
            State::Bound(b) => {
                let xid = self.xid();
                let c = &mut self.clients[i];
                if self.rng.chance(8) {
                    c.release(now, xid).unwrap();
                } else if self.rng.chance(3) {
                    c.decline(now, xid).unwrap();
                } else if self.rng.chance(3) {
                    c.start_inform(now, xid, b.ip, None);
                } else if now >= b.t2 {
                    c.start_rebind(now, xid, b.ip);
                } else if now >= b.t1 {
                    // It still holds its address while it renews.
                    c.start_renew(now, xid, b.ip, b.server);
                }
            }
            State::Requesting { .. }
            | State::Rebooting { .. }
            | State::Renewing { .. }
            | State::Rebinding { .. }
            | State::Informing { .. } => {
                // No answer (yet): start over now and then (a renewing client keeps its lease
                // until it runs out).
                if self.rng.chance(30) {
                    self.clients[i].abandon(now);
                }
            }
            // Init, Selecting without an OFFER yet (ask again), or an exchange that ended.
            _ => {
                let xid = self.xid();
                if self.rng.chance(10) && self.clients[i].binding().is_none() {
                    // INIT-REBOOT for an address it never had.
                    let ip = Ipv4Addr::new(198, 18, 0, 10 + self.rng.below(20) as u8);
                    self.clients[i].start_reboot(now, xid, ip);
                } else {
                    self.clients[i].start_dora(now, xid);
                }
            }
        }
        if let Some(t) = self.clients[i].poll_transmit(now) {
            self.send(i, t);
        }
    }

    /// Reads client `i`'s events (only to trace them: its state says the rest).
    fn client_events(&mut self, i: usize) {
        while let Some(e) = self.clients[i].poll_event() {
            if self.trace {
                println!("t={} client {i}: {e:?}", self.now.wall.0);
            }
        }
    }

    fn client_of(&self, p: &Packet) -> Option<usize> {
        self.clients
            .iter()
            .position(|c| p.chaddr.get(..6) == Some(&c.config().mac[..]))
    }

    /// Carries out everything the engine asked, checking the invariants as replies leave.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(c) = self.engine.poll_commit() {
                self.commits.push_back((c.id, c.leases));
                progressed = true;
            }
            while let Some(p) = self.engine.poll_probe() {
                self.probes.push((p.id, p.ip));
                progressed = true;
            }
            while let Some(e) = self.engine.poll_effect() {
                self.check_effect(&e);
                progressed = true;
            }
            while let Some(t) = self.engine.poll_transmit() {
                self.deliver(&t.reply.packet);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    fn check_effect(&mut self, e: &Effect) {
        if let Effect::Dropped { reason, .. } = e
            && (reason.label().is_empty()
                || *reason
                    == leased_engine::DropReason::Decision(leased_core::DropReason::NoReplyNeeded))
        {
            self.fail(&format!("a drop without a reason: {e:?}"));
        }
    }

    fn deliver(&mut self, p: &Packet) {
        let Some(i) = self.client_of(p) else {
            self.fail("a reply to no client")
        };
        if self.trace {
            println!(
                "t={} step {} client {i} gets {:?} yiaddr={}",
                self.now.wall.0,
                self.steps,
                p.message_type(),
                p.yiaddr
            );
        }
        let now = self.now.wall;
        match p.message_type() {
            Some(MessageType::Offer) => {
                // Held for this client: offered to it, or already its binding (a bound client
                // that starts over is offered its own address).
                let held = self.engine.table().by_ip(p.yiaddr).is_some_and(|l| {
                    matches!(l.state, LeaseState::Offered | LeaseState::Bound)
                        && l.is_active(now)
                        && l.hwaddr.0 == self.clients[i].config().mac
                });
                if !held {
                    self.fail(&format!("OFFER of {} not held for its client", p.yiaddr));
                }
            }
            Some(MessageType::Ack) if !p.yiaddr.is_unspecified() => {
                let ip = p.yiaddr;
                let durable = self.store.rows.get(&ip).is_some_and(|r| {
                    r.hwaddr.0 == self.clients[i].config().mac && r.state == LeaseState::Bound
                });
                if !durable {
                    self.fail(&format!("ACK of {ip} before its lease was durable"));
                }
                // Nobody else may hold it now: not our other clients (each counts its lease
                // from its REQUEST, never later than the server does), not the other server's.
                let at = self.client_now();
                for (j, c) in self.clients.iter().enumerate() {
                    if j != i && c.binding().is_some_and(|b| b.ip == ip && b.expires() > at) {
                        self.fail(&format!(
                            "{ip} ACKed to client {i} while client {j} holds it"
                        ));
                    }
                }
                if let Some(r) = self.store.rows.get(&ip)
                    && r.client_id.0.first() == Some(&OTHER)
                    && r.is_active(now)
                {
                    self.fail(&format!(
                        "{ip} ACKed while the other server's client holds it"
                    ));
                }
                self.acks += 1;
            }
            Some(MessageType::Ack | MessageType::Nak) => {} // an INFORM's answer, a refusal
            other => self.fail(&format!("unexpected reply {other:?}")),
        }
        // The client takes the reply if it answers its exchange (a late one, for an xid it
        // has given up, it ignores).
        let at = self.client_now();
        let took = self.clients[i].handle_reply(at, p, SERVER);
        if self.trace {
            println!(
                "  client {i} took it: {took}, now {:?}",
                self.clients[i].state()
            );
        }
        self.client_events(i);
    }

    /// The store completes some commits, in order (all of them unless it stalls).
    fn store_step(&mut self) {
        let n = if self.rng.chance(20) {
            0
        } else {
            self.commits.len()
        };
        for _ in 0..n {
            let Some((id, leases)) = self.commits.pop_front() else {
                break;
            };
            let outcome = self.store.commit(&leases, self.now.wall);
            if self.trace {
                let l: Vec<_> = leases
                    .iter()
                    .map(|l| (l.ip, l.hwaddr.0[5], l.state))
                    .collect();
                println!("t={} commit {id:?} {l:?}: {outcome:?}", self.now.wall.0);
            }
            if let CommitOutcome::Conflicts(ips) = &outcome {
                // What beat us: learned at once, as the driver's conflict recovery does.
                let rows: Vec<Lease> = ips
                    .iter()
                    .filter_map(|ip| self.store.rows.get(ip).cloned())
                    .collect();
                self.engine.handle_commit(id, outcome.clone());
                self.engine.handle_external(self.now, rows, true);
            } else {
                self.engine.handle_commit(id, outcome);
            }
            self.drain();
        }
    }

    /// The other server binds a free address of the shared store for one of its clients.
    fn other_server_step(&mut self) {
        let ip = if self.rng.chance(50) {
            Ipv4Addr::new(198, 18, 0, 10 + self.rng.below(20) as u8)
        } else {
            Ipv4Addr::new(198, 18, 1, 10 + self.rng.below(10) as u8)
        };
        let now = self.now.wall;
        if self.store.rows.get(&ip).is_some_and(|r| r.is_active(now)) {
            return;
        }
        let who = self.rng.below(200) as u8;
        let lease = Lease {
            ip,
            client_id: ClientId(vec![OTHER, who]),
            hwaddr: HwAddr(vec![2, OTHER, 0, 0, 0, who]),
            hostname: None,
            state: LeaseState::Bound,
            starts: now,
            expires: now.plus(LEASE),
            first_seen: now,
            circuit_id: None,
            remote_id: None,
            subscriber_id: None,
        };
        self.store.rows.insert(ip, lease.clone());
        self.unsynced.push(lease);
    }

    fn step(&mut self) {
        self.steps += 1;
        match self.rng.below(100) {
            0..=54 => {
                let i = self.rng.below(self.clients.len() as u64) as usize;
                self.client_step(i);
            }
            55..=69 => self.store_step(),
            70..=74 => {
                if !self.probes.is_empty() {
                    let k = self.rng.below(self.probes.len() as u64) as usize;
                    let (id, _) = self.probes.swap_remove(k);
                    let answer = self.rng.chance(15).then_some(ProbeAnswer {
                        via: ProbeVia::Ping,
                        mac: None,
                    });
                    self.engine.handle_probe(id, answer, self.now);
                }
            }
            75..=77 => self.store.failing = !self.store.failing,
            78..=80 => self.other_server_step(),
            81..=84 => {
                // The sync loop.
                let rows = std::mem::take(&mut self.unsynced);
                self.engine.handle_external(self.now, rows, false);
            }
            _ => {
                let long = self.rng.chance(10);
                let secs = 1 + self.rng.below(if long { 400 } else { 20 });
                self.now.wall = Timestamp(self.now.wall.0 + secs);
                self.now.mono += Duration::from_secs(secs);
                self.engine.handle_timeout(self.now);
                // The clients' timers: leases that ran out, retransmissions (they leave at the
                // client's next step), exchanges given up.
                let at = self.client_now();
                for i in 0..self.clients.len() {
                    self.clients[i].handle_timeout(at);
                    self.client_events(i);
                }
                if self
                    .engine
                    .poll_timeout()
                    .is_some_and(|d| d <= self.now.wall)
                {
                    self.fail("a lease timer did not fire");
                }
            }
        }
        self.drain();
    }
}

fn run_seed(seed: u64, steps: u64) -> Sim {
    let mut sim = Sim::new(seed);
    for _ in 0..steps {
        sim.step();
    }
    sim
}

#[test]
fn invariants_hold_for_every_seed() {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        let sim = run_seed(seed, 400);
        println!("seed {seed}: {} steps, {} ACKs", sim.steps, sim.acks);
        return;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if ci { 10_000 } else { 500 });
    // Seeds are independent: spread them over the cores (a failing one still panics with its
    // replay line).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let acks: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..seeds)
                        .step_by(threads as usize)
                        .map(|seed| run_seed(seed, 400).acks)
                        .sum::<u64>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    println!("{seeds} seeds × 400 steps: {acks} ACKs, every invariant held");
    assert!(
        acks > seeds,
        "the simulation hardly served anyone: {acks} ACKs"
    );
}

/// A day of a network far larger than the pool-sized runs above, on one seed.
#[test]
fn a_day_of_a_busy_network_in_seconds() {
    let mut sim = Sim::new(424_242);
    let start = sim.now.wall.0;
    let mut served: HashMap<usize, u64> = HashMap::new();
    while sim.now.wall.0 < start + 86_400 {
        sim.step();
        for (i, c) in sim.clients.iter().enumerate() {
            if c.binding().is_some() {
                *served.entry(i).or_default() += 1;
            }
        }
    }
    println!("a simulated day: {} steps, {} ACKs", sim.steps, sim.acks);
    assert!(sim.acks > 100);
    assert!(
        served.len() > sim.clients.len() / 2,
        "most clients got an address at some point"
    );
}
