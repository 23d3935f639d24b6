//! A full day of a 10,000-client network, on a virtual clock, in seconds of real time.
//!
//! The randomised simulation (`sim.rs`) hunts for rare interleavings with a few dozen clients
//! fighting over a small pool; this one shows the engine carrying a network of realistic size
//! for a whole day: 10,000 leased-testkit clients (a third behind a relay) boot over the first
//! hour, renew at T1, some release and come back later, some reboot and ask for their old
//! address. Every client wakes exactly when its own timers say (an event queue, not polling),
//! the store makes every commit durable, and after every reply:
//! - an ACK a client took is durable in the store, for that client;
//! - no address is held by two clients at once;
//! - the engine's lease timers have fired when due;
//! - every drop has a reason.
//!
//! `DAY_CLIENTS=N` changes the network's size.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leased_config::{Format, load_str};
use leased_core::{Lease, LeaseState, LeaseTable, Plan, Request, Timestamp};
use leased_engine::{CommitOutcome, Effect, Engine, Inbound, Now, Origin};
use leased_testkit::{Client, ClientConfig, Destination, State, Transmit};
use leased_wire::Packet;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 64, 1);
const DAY: u64 = 86_400;
const LEASE: u64 = 4 * 3600;
/// The engine's wall clock at the start of the day.
const T0: u64 = 1_000_000;

/// xorshift64*: the same on every machine.
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

/// A /18 served directly on eth0 and a /20 behind a relay: room for every client.
fn config() -> leased_config::Config {
    let text = format!(
        r#"
[server]
lease_time = {LEASE}
server_id = "198.18.0.1"

[[subnets]]
network = "198.18.0.0/18"
interface = "eth0"
pools = ["198.18.0.10-198.18.63.250"]

[[subnets]]
network = "198.18.64.0/20"
routers = ["198.18.64.1"]
pools = ["198.18.64.10-198.18.79.250"]
"#
    );
    load_str(&text, "day.toml", Format::Toml).unwrap()
}

struct Day {
    rng: Rng,
    engine: Engine,
    clients: Vec<Client>,
    /// A client that released its address comes back at this second.
    away_until: Vec<Option<u64>>,
    /// Client wake-ups, earliest first: (second, client).
    wake: BinaryHeap<Reverse<(u64, usize)>>,
    /// The store: every committed lease by address.
    store: BTreeMap<Ipv4Addr, Lease>,
    /// Which client took an ACK for each address last.
    holder: HashMap<Ipv4Addr, usize>,
    /// Clients by MAC, to deliver replies.
    by_mac: HashMap<[u8; 6], usize>,
    now: u64,
    next_xid: u32,
    acks: u64,
    renewals: u64,
    releases: u64,
    reboots: u64,
}

impl Day {
    fn new(n: usize, seed: u64) -> Self {
        let config = config();
        let plan = Arc::new(Plan::new(config.network.clone()));
        let settings = Arc::new(config.engine_settings());
        let mut rng = Rng(seed | 1);
        let mut clients = Vec::with_capacity(n);
        let mut by_mac = HashMap::with_capacity(n);
        let mut wake = BinaryHeap::with_capacity(n);
        for i in 0..n {
            let mac = [2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            let mut c = ClientConfig::new(mac);
            if i % 3 == 0 {
                c.giaddr = Some(RELAY);
                c.option82 = Some(vec![1, 4, b'p', (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            }
            clients.push(Client::new(c));
            by_mac.insert(mac, i);
            // Power comes back: every client boots within the first hour.
            wake.push(Reverse((rng.below(3600), i)));
        }
        Self {
            rng,
            engine: Engine::new(plan, settings, LeaseTable::default()),
            clients,
            away_until: vec![None; n],
            wake,
            store: BTreeMap::new(),
            holder: HashMap::new(),
            by_mac,
            now: 0,
            next_xid: 0,
            acks: 0,
            renewals: 0,
            releases: 0,
            reboots: 0,
        }
    }

    fn engine_now(&self) -> Now {
        Now {
            wall: Timestamp(T0 + self.now),
            mono: Duration::from_secs(self.now),
        }
    }

    fn client_now(&self) -> Duration {
        Duration::from_secs(self.now)
    }

    fn xid(&mut self) -> u32 {
        self.next_xid = self.next_xid.wrapping_add(1);
        self.next_xid
    }

    fn fail(&self, what: &str) -> ! {
        panic!("second {} of the day: {what}", self.now)
    }

    /// Runs the day: wake the earliest client, let it act, schedule its next wake-up.
    fn run(&mut self) {
        while let Some(Reverse((at, i))) = self.wake.pop() {
            if at >= DAY {
                break;
            }
            self.now = self.now.max(at);
            let now = self.engine_now();
            if self.engine.poll_timeout().is_some_and(|d| d <= now.wall) {
                self.engine.handle_timeout(now);
                self.drain();
                if self.engine.poll_timeout().is_some_and(|d| d <= now.wall) {
                    self.fail("a lease timer did not fire");
                }
            }
            self.act(i);
            self.schedule(i);
        }
    }

    /// Client `i` does what its timers and state call for.
    fn act(&mut self, i: usize) {
        let now = self.client_now();
        self.clients[i].handle_timeout(now);
        while self.clients[i].poll_event().is_some() {}
        if !self.clients[i].busy() {
            let xid = self.xid();
            match self.clients[i].state() {
                State::Bound(b) if now >= b.t1 => {
                    if self.rng.chance(2) {
                        // Switched off for a while: gives its address back first.
                        self.clients[i].release(now, xid).unwrap();
                        self.away_until[i] = Some(self.now + 600 + self.rng.below(7200));
                        self.releases += 1;
                    } else if self.rng.chance(2) {
                        // Rebooted: INIT-REBOOT for the address it had.
                        self.clients[i].start_reboot(now, xid, b.ip);
                        self.reboots += 1;
                    } else if now >= b.t2 {
                        self.clients[i].start_rebind(now, xid, b.ip);
                    } else {
                        self.clients[i].start_renew(now, xid, b.ip, b.server);
                        self.renewals += 1;
                    }
                }
                State::Bound(_) => {}
                _ => {
                    if self.away_until[i].is_none_or(|t| self.now >= t) {
                        self.away_until[i] = None;
                        self.clients[i].start_dora(now, xid);
                    }
                }
            }
        }
        self.send_queued(i);
    }

    /// Sends everything client `i` has queued, and what follows from the replies.
    fn send_queued(&mut self, i: usize) {
        let now = self.client_now();
        while let Some(t) = self.clients[i].poll_transmit(now) {
            self.send(i, t);
        }
    }

    /// When client `i` must act next: its own timer, T1, or its return.
    fn schedule(&mut self, i: usize) {
        let c = &self.clients[i];
        let mut next = c.poll_timeout().map(|d| d.as_secs());
        if !c.busy() {
            let planned = match c.state() {
                State::Bound(b) => Some(b.t1.as_secs()),
                _ => Some(self.away_until[i].unwrap_or(self.now + 1)),
            };
            next = match (next, planned) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if let Some(at) = next {
            self.wake.push(Reverse((at.max(self.now + 1), i)));
        }
    }

    fn send(&mut self, i: usize, t: Transmit) {
        let relayed = self.clients[i].config().giaddr.is_some();
        let broadcast = !relayed && t.to == Destination::Broadcast;
        let mut req = Request::new(t.packet, Some("eth0".into()), Some(SERVER), broadcast);
        if relayed {
            req.src_addr = Some(RELAY);
        }
        let now = self.engine_now();
        self.engine.handle_packet(
            now,
            Inbound {
                req,
                origin: Origin {
                    link: 0,
                    src: None,
                    local: Some(SERVER),
                },
                received: now.mono,
            },
        );
        self.drain();
    }

    /// Carries out what the engine asked: the store makes every commit durable at once.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(c) = self.engine.poll_commit() {
                for l in &c.leases {
                    self.store.insert(l.ip, l.clone());
                }
                self.engine.handle_commit(c.id, CommitOutcome::Durable);
                progressed = true;
            }
            if self.engine.poll_probe().is_some() {
                self.fail("a probe without a conflict check configured");
            }
            while let Some(e) = self.engine.poll_effect() {
                if let Effect::Dropped { reason, .. } = &e
                    && reason.label().is_empty()
                {
                    self.fail(&format!("a drop without a reason: {e:?}"));
                }
                progressed = true;
            }
            while let Some(t) = self.engine.poll_transmit() {
                self.deliver(t.reply.packet);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    /// Hands a reply to its client and checks what it took.
    fn deliver(&mut self, p: Packet) {
        let Some(i) = p
            .chaddr
            .get(..6)
            .and_then(|m| <[u8; 6]>::try_from(m).ok())
            .and_then(|m| self.by_mac.get(&m).copied())
        else {
            self.fail("a reply for nobody");
        };
        let now = self.client_now();
        let before = self.clients[i].binding().copied();
        if !self.clients[i].handle_reply(now, &p, SERVER) {
            return;
        }
        let Some(b) = self.clients[i].binding().copied() else {
            return;
        };
        if before == Some(b) {
            return;
        }
        // A new lease (or a renewal) was taken: it must be in the store, for this client.
        self.acks += 1;
        let mac = self.clients[i].config().mac;
        match self.store.get(&b.ip) {
            Some(l)
                if l.state == LeaseState::Bound
                    && l.hwaddr.0 == mac
                    && l.expires.0 >= T0 + self.now => {}
            other => self.fail(&format!(
                "client {i} took {} but the store has {other:?}",
                b.ip
            )),
        }
        if let Some(j) = self.holder.insert(b.ip, i)
            && j != i
            && self.clients[j]
                .binding()
                .is_some_and(|o| o.ip == b.ip && o.expires() > now)
        {
            self.fail(&format!("{} held by clients {j} and {i}", b.ip));
        }
        // Its REQUEST after an OFFER leaves at once.
        self.send_queued(i);
    }
}

#[test]
fn a_day_of_a_ten_thousand_client_network() {
    let n: usize = std::env::var("DAY_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    #[allow(clippy::disallowed_methods)]
    // reports the test's own duration; the engine never reads it
    let started = Instant::now();
    let mut day = Day::new(n, 20_261_207);
    day.run();
    let bound = day
        .clients
        .iter()
        .filter(|c| c.binding().is_some_and(|b| b.expires() > day.client_now()))
        .count();
    let away = day.away_until.iter().filter(|a| a.is_some()).count();
    println!(
        "a day of {n} clients in {:.1} s: {} ACKs taken ({} renewals, {} reboots, {} releases), \
         {} leases in the engine, {bound} clients bound at the end, {away} away",
        started.elapsed().as_secs_f64(),
        day.acks,
        day.renewals,
        day.reboots,
        day.releases,
        day.engine.table().len(),
    );
    assert!(
        day.acks >= n as u64 * 10,
        "every client renews through the day: {} ACKs",
        day.acks
    );
    assert!(
        bound + away + n / 100 >= n,
        "every client that is not away holds an address: {bound} bound, {away} away of {n}"
    );
}
