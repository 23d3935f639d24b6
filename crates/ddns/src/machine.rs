//! [`Ddns`]: the DNS update state machine, driven like the engine. Binding changes come in
//! ([`Ddns::handle_binding`]), responses and timeouts too; the driver polls what to send, what
//! to persist and what to log. Jobs run one at a time in the order the bindings changed, so a
//! removal never overtakes the add it undoes, and while the server is down the first job
//! waits with back-off and every later one waits behind it: nothing is lost, nothing reordered.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};

use hashlink::LinkedHashMap;
use hickory_proto::op::ResponseCode;
use leased_core::fqdn::{ClientFqdn, FqdnPolicy};
use serde::{Deserialize, Serialize};

use crate::dhcid::dhcid;
use crate::message::{self, Answer, Key, Signed, Update, reverse_name};

/// Persisted keys of jobs waiting to be done.
const JOB_PREFIX: &str = "job:";
/// Persisted keys of names leased put in DNS (what a later removal must undo).
const NAME_PREFIX: &str = "name:";

/// How the machine runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The DNS servers, tried in turn after a failed try.
    pub servers: Vec<SocketAddr>,
    /// The TSIG key every update is signed with and every response checked against.
    pub key: Key,
    /// TTL of the records added.
    pub ttl: u32,
    /// How long one try waits for its answer, milliseconds.
    pub timeout_ms: u64,
    /// The longest wait between tries, milliseconds.
    pub max_backoff_ms: u64,
    /// Jobs waiting at most; beyond it the oldest waiting one is dropped (and reported).
    pub queue_limit: usize,
    /// Names remembered at most (one per address with a name in DNS); the oldest goes first.
    pub names_limit: usize,
}

/// A subnet's DDNS settings: its zones and its option 81 policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zones {
    /// Where A and DHCID records go; `None`: no forward updates.
    pub forward_zone: Option<String>,
    /// Where PTR records go; `None`: no reverse updates.
    pub reverse_zone: Option<String>,
    /// Who updates what and how names are qualified.
    pub policy: FqdnPolicy,
}

/// What happened to a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new binding (an ACK to a new client, or a new address).
    Bound,
    /// The same binding renewed.
    Renewed,
    /// The client released it.
    Released,
    /// It lapsed.
    Expired,
}

/// One binding change, as the lease events tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// What happened.
    pub kind: ChangeKind,
    /// The address.
    pub ip: Ipv4Addr,
    /// The lease's client key (option 61, else htype and chaddr).
    pub client_id: Vec<u8>,
    /// The hardware address.
    pub hwaddr: Vec<u8>,
    /// Option 12 (or the reservation's host name), the fallback name.
    pub hostname: Option<String>,
    /// Option 81 as received, when the request had one.
    pub client_fqdn: Option<Vec<u8>>,
}

/// Add or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Put the name (A, DHCID) and the PTR in DNS.
    Add,
    /// Take them out again, if the name is still this client's.
    Remove,
}

/// One unit of work, persisted until it is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Order of creation.
    pub id: u64,
    /// Add or remove.
    pub op: Op,
    /// The client's name (no final dot).
    pub fqdn: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its DHCID RDATA.
    pub dhcid: Vec<u8>,
    /// The forward zone when leased does the A record.
    pub forward_zone: Option<String>,
    /// The reverse zone when leased does the PTR record.
    pub reverse_zone: Option<String>,
}

/// A name leased put in DNS for an address, kept to undo it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    /// See [`Job::fqdn`].
    pub fqdn: String,
    /// See [`Job::dhcid`].
    pub dhcid: Vec<u8>,
    /// See [`Job::forward_zone`].
    pub forward_zone: Option<String>,
    /// See [`Job::reverse_zone`].
    pub reverse_zone: Option<String>,
}

/// A record of the durable queue to write (the driver writes it before it sends anything
/// that depends on it, and syncs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// Write `value` under `key`.
    Put {
        /// The key.
        key: String,
        /// The value (JSON).
        value: String,
    },
    /// Forget `key`.
    Remove {
        /// The key.
        key: String,
    },
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The DNS server.
    pub to: SocketAddr,
    /// The message.
    pub bytes: Vec<u8>,
    /// Over TCP (after a truncated answer), else UDP.
    pub tcp: bool,
}

/// Something for the log and the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A job is done: the records are in (or out of) DNS.
    Done {
        /// Add or remove.
        op: Op,
        /// The name.
        fqdn: String,
        /// The address.
        ip: Ipv4Addr,
    },
    /// RFC 4703: the name belongs to another client (its DHCID differs): not touched.
    Conflict {
        /// Add or remove.
        op: Op,
        /// See [`Report::Done`].
        fqdn: String,
        /// See [`Report::Done`].
        ip: Ipv4Addr,
    },
    /// The server refused the update for good (REFUSED, NOTAUTH, NOTZONE, …): given up.
    Failed {
        /// See [`Report::Done`].
        op: Op,
        /// See [`Report::Done`].
        fqdn: String,
        /// See [`Report::Done`].
        ip: Ipv4Addr,
        /// The server's answer.
        rcode: String,
    },
    /// No answer (or SERVFAIL): tried again after `wait_ms`.
    Retry {
        /// See [`Report::Done`].
        fqdn: String,
        /// Tries so far.
        attempt: u32,
        /// Until the next.
        wait_ms: u64,
    },
    /// The queue was full: the oldest waiting job was dropped.
    Dropped {
        /// See [`Report::Done`].
        fqdn: String,
        /// See [`Report::Done`].
        ip: Ipv4Addr,
    },
    /// A datagram that was not a believable answer (malformed, another id or source, not
    /// signed with our key, out of time): ignored, the real answer may still come.
    Ignored {
        /// Why.
        why: String,
    },
}

/// One RFC 4703 step of the head job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    AddForward,
    ReplaceForward,
    AddReverse,
    RemoveA,
    RemoveDhcid,
    RemoveReverse,
}

/// The message in flight.
#[derive(Debug)]
struct Inflight {
    step: Step,
    sent: Signed,
    to: SocketAddr,
    tcp: bool,
    deadline_ms: u64,
}

/// The DNS update state machine (see the module docs).
#[derive(Debug)]
pub struct Ddns {
    settings: Settings,
    rng: u64,
    queue: VecDeque<Job>,
    names: LinkedHashMap<Ipv4Addr, Named>,
    next_id: u64,
    step: Option<Step>,
    inflight: Option<Inflight>,
    attempt: u32,
    server: usize,
    wait_until_ms: u64,
    persists: VecDeque<Persist>,
    transmits: VecDeque<Transmit>,
    reports: VecDeque<Report>,
}

impl Ddns {
    /// A machine with nothing queued; `seed` makes message ids unpredictable (the driver
    /// passes randomness, this crate reads none).
    pub fn new(settings: Settings, seed: u64) -> Self {
        Self {
            settings,
            rng: seed | 1,
            queue: VecDeque::new(),
            names: LinkedHashMap::new(),
            next_id: 1,
            step: None,
            inflight: None,
            attempt: 0,
            server: 0,
            wait_until_ms: 0,
            persists: VecDeque::new(),
            transmits: VecDeque::new(),
            reports: VecDeque::new(),
        }
    }

    /// Takes back what the durable queue held at start: jobs to finish and names to undo
    /// later. Returns how many entries were not understood (skipped).
    pub fn restore(&mut self, entries: impl IntoIterator<Item = (String, String)>) -> usize {
        let mut bad = 0;
        let mut jobs = Vec::new();
        for (k, v) in entries {
            if k.starts_with(JOB_PREFIX) {
                match serde_json::from_str::<Job>(&v) {
                    Ok(j) => jobs.push(j),
                    Err(_) => bad += 1,
                }
            } else if let Some(ip) = k.strip_prefix(NAME_PREFIX) {
                match (ip.parse::<Ipv4Addr>(), serde_json::from_str::<Named>(&v)) {
                    (Ok(ip), Ok(n)) => {
                        self.remember(ip, n, false);
                    }
                    _ => bad += 1,
                }
            } else {
                bad += 1;
            }
        }
        jobs.sort_by_key(|j| j.id);
        for j in jobs {
            self.next_id = self.next_id.max(j.id.saturating_add(1));
            self.enqueue(j, false);
        }
        bad
    }

    /// Jobs waiting (the one in flight included).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// A binding changed: queue what DNS needs for it at `now_ms` (Unix milliseconds).
    pub fn handle_binding(&mut self, b: &Binding, zones: &Zones, now_ms: u64) {
        match b.kind {
            ChangeKind::Bound | ChangeKind::Renewed => self.bound(b, zones),
            ChangeKind::Released | ChangeKind::Expired => self.ended(b.ip),
        }
        self.pump(now_ms);
    }

    fn bound(&mut self, b: &Binding, zones: &Zones) {
        let fqdn = b.client_fqdn.as_deref().and_then(ClientFqdn::parse);
        let d = zones.policy.decide(fqdn.as_ref().map(|f| f.flags));
        let Some(name) = zones.policy.name_for(fqdn.as_ref(), b.hostname.as_deref()) else {
            return;
        };
        let forward_zone = zones
            .forward_zone
            .clone()
            .filter(|z| d.forward && in_zone(&name, z));
        let reverse_zone = zones
            .reverse_zone
            .clone()
            .filter(|z| d.reverse && in_zone(&reverse_name(b.ip), z));
        if forward_zone.is_none() && reverse_zone.is_none() {
            return;
        }
        let want = Named {
            dhcid: dhcid(&b.client_id, &b.hwaddr, &name),
            fqdn: name,
            forward_zone,
            reverse_zone,
        };
        // What DNS will hold for this address once the queue is done.
        match self.expected(b.ip) {
            Some(have) if have == want => return,
            Some(have) => self.push_job(Op::Remove, b.ip, have),
            None => {}
        }
        self.push_job(Op::Add, b.ip, want);
    }

    fn ended(&mut self, ip: Ipv4Addr) {
        if let Some(have) = self.expected(ip) {
            self.push_job(Op::Remove, ip, have);
        }
    }

    /// The name DNS will hold for `ip` after every queued job: the last queued job's, else
    /// the remembered one.
    fn expected(&self, ip: Ipv4Addr) -> Option<Named> {
        match self.queue.iter().rev().find(|j| j.ip == ip) {
            Some(j) if j.op == Op::Add => Some(Named {
                fqdn: j.fqdn.clone(),
                dhcid: j.dhcid.clone(),
                forward_zone: j.forward_zone.clone(),
                reverse_zone: j.reverse_zone.clone(),
            }),
            Some(_) => None,
            None => self.names.get(&ip).cloned(),
        }
    }

    fn push_job(&mut self, op: Op, ip: Ipv4Addr, n: Named) {
        let job = Job {
            id: self.next_id,
            op,
            fqdn: n.fqdn,
            ip,
            dhcid: n.dhcid,
            forward_zone: n.forward_zone,
            reverse_zone: n.reverse_zone,
        };
        self.next_id += 1;
        self.enqueue(job, true);
    }

    fn enqueue(&mut self, job: Job, persist: bool) {
        if self.queue.len() >= self.settings.queue_limit.max(1) {
            // The head may be in flight: drop the oldest one behind it (or the head if alone).
            let at = usize::from(self.queue.len() > 1 && self.step.is_some());
            if let Some(old) = self.queue.remove(at) {
                if at == 0 {
                    self.step = None;
                    self.inflight = None;
                }
                self.persists.push_back(Persist::Remove {
                    key: job_key(old.id),
                });
                self.reports.push_back(Report::Dropped {
                    fqdn: old.fqdn,
                    ip: old.ip,
                });
            }
        }
        if persist {
            self.persists.push_back(Persist::Put {
                key: job_key(job.id),
                value: serde_json::to_string(&job).unwrap_or_default(),
            });
        }
        self.queue.push_back(job);
    }

    fn remember(&mut self, ip: Ipv4Addr, n: Named, persist: bool) {
        if persist {
            self.persists.push_back(Persist::Put {
                key: name_key(ip),
                value: serde_json::to_string(&n).unwrap_or_default(),
            });
        }
        self.names.remove(&ip);
        self.names.insert(ip, n);
        while self.names.len() > self.settings.names_limit.max(1) {
            if let Some((old, _)) = self.names.pop_front() {
                self.persists
                    .push_back(Persist::Remove { key: name_key(old) });
            }
        }
    }

    /// A datagram (or TCP answer) from `from`.
    pub fn handle_response(&mut self, from: SocketAddr, bytes: &[u8], now_ms: u64) {
        let Some(f) = &self.inflight else {
            self.ignored("no update in flight".into());
            return;
        };
        if from != f.to {
            self.ignored(format!("answer from {from}, not {}", f.to));
            return;
        }
        match message::check_response(bytes, &f.sent, &self.settings.key, now_ms / 1000) {
            Err(e) => self.ignored(e.to_string()),
            Ok(Answer::Truncated) if !f.tcp => {
                let t = Transmit {
                    to: f.to,
                    bytes: f.sent.bytes.clone(),
                    tcp: true,
                };
                if let Some(f) = self.inflight.as_mut() {
                    f.tcp = true;
                    f.deadline_ms = now_ms + self.settings.timeout_ms;
                }
                self.transmits.push_back(t);
            }
            Ok(Answer::Truncated) => self.ignored("truncated over TCP".into()),
            Ok(Answer::Code(rc)) => {
                let step = f.step;
                self.inflight = None;
                self.answered(step, rc, now_ms);
            }
        }
        self.pump(now_ms);
    }

    fn ignored(&mut self, why: String) {
        self.reports.push_back(Report::Ignored { why });
    }

    /// Sending failed at once (no route, connection refused): as a timeout, now.
    pub fn handle_send_error(&mut self, now_ms: u64) {
        if self.inflight.take().is_some() {
            self.retry(now_ms);
        }
        self.pump(now_ms);
    }

    /// Call at [`Ddns::poll_timeout`] (or later).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self
            .inflight
            .as_ref()
            .is_some_and(|f| now_ms >= f.deadline_ms)
        {
            self.inflight = None;
            self.retry(now_ms);
        }
        self.pump(now_ms);
    }

    fn retry(&mut self, now_ms: u64) {
        self.attempt = self.attempt.saturating_add(1);
        self.server = self.server.wrapping_add(1);
        let wait = 1000u64
            .saturating_mul(1 << self.attempt.saturating_sub(1).min(20))
            .min(self.settings.max_backoff_ms.max(1));
        self.wait_until_ms = now_ms + wait;
        if let Some(j) = self.queue.front() {
            self.reports.push_back(Report::Retry {
                fqdn: j.fqdn.clone(),
                attempt: self.attempt,
                wait_ms: wait,
            });
        }
    }

    /// RFC 4703's decisions on an answer.
    fn answered(&mut self, step: Step, rc: ResponseCode, now_ms: u64) {
        if rc == ResponseCode::ServFail {
            self.retry(now_ms);
            return;
        }
        self.attempt = 0;
        self.wait_until_ms = 0;
        let Some(job) = self.queue.front() else {
            return;
        };
        let reverse = job.reverse_zone.is_some();
        let next = match (step, rc) {
            (Step::AddForward, ResponseCode::NoError)
            | (Step::ReplaceForward, ResponseCode::NoError) => reverse.then_some(Step::AddReverse),
            // §5.3.2: the name is in use; ours only if its DHCID is ours.
            (Step::AddForward, ResponseCode::YXDomain) => Some(Step::ReplaceForward),
            // §5.3.2: another client's name: no A, no PTR for us.
            (Step::ReplaceForward, ResponseCode::NXRRSet) => {
                return self.finish(Outcome::Conflict);
            }
            (Step::AddReverse, ResponseCode::NoError) => None,
            (Step::RemoveA, ResponseCode::NoError) => Some(Step::RemoveDhcid),
            // §5.5: the name is no longer this client's: leave it and its PTR alone.
            (Step::RemoveA, ResponseCode::NXRRSet) => return self.finish(Outcome::Conflict),
            // The DHCID stays while other address records are left (another server's AAAA).
            (Step::RemoveDhcid, _) => reverse.then_some(Step::RemoveReverse),
            (Step::RemoveReverse, ResponseCode::NoError) => None,
            (_, rc) => return self.finish(Outcome::Failed(rc.to_string())),
        };
        match next {
            Some(s) => self.step = Some(s),
            None => self.finish(Outcome::Done),
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.step = None;
        self.inflight = None;
        let Some(job) = self.queue.pop_front() else {
            return;
        };
        self.persists.push_back(Persist::Remove {
            key: job_key(job.id),
        });
        let (op, fqdn, ip) = (job.op, job.fqdn.clone(), job.ip);
        match outcome {
            Outcome::Done => {
                match op {
                    Op::Add => self.remember(
                        ip,
                        Named {
                            fqdn: job.fqdn,
                            dhcid: job.dhcid,
                            forward_zone: job.forward_zone,
                            reverse_zone: job.reverse_zone,
                        },
                        true,
                    ),
                    Op::Remove => self.forget(ip, &fqdn),
                }
                self.reports.push_back(Report::Done { op, fqdn, ip });
            }
            Outcome::Conflict => {
                if op == Op::Remove {
                    self.forget(ip, &fqdn);
                }
                self.reports.push_back(Report::Conflict { op, fqdn, ip });
            }
            Outcome::Failed(rcode) => {
                if op == Op::Remove {
                    self.forget(ip, &fqdn);
                }
                self.reports.push_back(Report::Failed {
                    op,
                    fqdn,
                    ip,
                    rcode,
                });
            }
        }
    }

    fn forget(&mut self, ip: Ipv4Addr, fqdn: &str) {
        if self.names.get(&ip).is_some_and(|n| n.fqdn == fqdn) {
            self.names.remove(&ip);
            self.persists
                .push_back(Persist::Remove { key: name_key(ip) });
        }
    }

    /// Starts the head job's next step when nothing is in flight and no back-off holds it.
    fn pump(&mut self, now_ms: u64) {
        while self.inflight.is_none() && now_ms >= self.wait_until_ms {
            let id = self.next_message_id();
            let Some(job) = self.queue.front() else {
                return;
            };
            let step = match self.step {
                Some(s) => s,
                None => {
                    let first = match (job.op, &job.forward_zone, &job.reverse_zone) {
                        (Op::Add, Some(_), _) => Some(Step::AddForward),
                        (Op::Add, None, Some(_)) => Some(Step::AddReverse),
                        (Op::Remove, Some(_), _) => Some(Step::RemoveA),
                        (Op::Remove, None, Some(_)) => Some(Step::RemoveReverse),
                        (_, None, None) => None,
                    };
                    match first {
                        Some(s) => s,
                        None => {
                            self.finish(Outcome::Done);
                            continue;
                        }
                    }
                }
            };
            self.step = Some(step);
            let rev = reverse_name(job.ip);
            let ttl = self.settings.ttl;
            let (update, zone) = match step {
                Step::AddForward => (
                    Update::AddForward {
                        fqdn: &job.fqdn,
                        ip: job.ip,
                        dhcid: &job.dhcid,
                        ttl,
                    },
                    &job.forward_zone,
                ),
                Step::ReplaceForward => (
                    Update::ReplaceForward {
                        fqdn: &job.fqdn,
                        ip: job.ip,
                        dhcid: &job.dhcid,
                        ttl,
                    },
                    &job.forward_zone,
                ),
                Step::AddReverse => (
                    Update::AddReverse {
                        rev: &rev,
                        fqdn: &job.fqdn,
                        ttl,
                    },
                    &job.reverse_zone,
                ),
                Step::RemoveA => (
                    Update::RemoveA {
                        fqdn: &job.fqdn,
                        ip: job.ip,
                        dhcid: &job.dhcid,
                    },
                    &job.forward_zone,
                ),
                Step::RemoveDhcid => (
                    Update::RemoveDhcid {
                        fqdn: &job.fqdn,
                        dhcid: &job.dhcid,
                    },
                    &job.forward_zone,
                ),
                Step::RemoveReverse => (Update::RemoveReverse { rev: &rev }, &job.reverse_zone),
            };
            let Some(zone) = zone.clone() else {
                self.finish(Outcome::Failed("no zone".into()));
                continue;
            };
            let Some(&to) = self
                .settings
                .servers
                .get(self.server % self.settings.servers.len().max(1))
            else {
                return;
            };
            match message::build(&update, &zone, id, &self.settings.key, now_ms / 1000) {
                Ok(sent) => {
                    self.transmits.push_back(Transmit {
                        to,
                        bytes: sent.bytes.clone(),
                        tcp: false,
                    });
                    self.inflight = Some(Inflight {
                        step,
                        sent,
                        to,
                        tcp: false,
                        deadline_ms: now_ms + self.settings.timeout_ms,
                    });
                }
                Err(e) => self.finish(Outcome::Failed(e.to_string())),
            }
        }
    }

    /// xorshift64*: unpredictable enough with a random seed (TSIG is what authenticates).
    fn next_message_id(&mut self) -> u16 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        // The top 16 bits of the product.
        u16::try_from(x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 48).unwrap_or(0)
    }

    /// The next record to persist; write it (and sync) before sending what follows.
    pub fn poll_persist(&mut self) -> Option<Persist> {
        self.persists.pop_front()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing to log.
    pub fn poll_report(&mut self) -> Option<Report> {
        self.reports.pop_front()
    }

    /// When to call [`Ddns::handle_timeout`] (Unix milliseconds), if anything waits.
    pub fn poll_timeout(&self) -> Option<u64> {
        match &self.inflight {
            Some(f) => Some(f.deadline_ms),
            None => (!self.queue.is_empty()).then_some(self.wait_until_ms),
        }
    }
}

enum Outcome {
    Done,
    Conflict,
    Failed(String),
}

fn job_key(id: u64) -> String {
    format!("{JOB_PREFIX}{id:020}")
}

fn name_key(ip: Ipv4Addr) -> String {
    format!("{NAME_PREFIX}{ip}")
}

/// True when `name` is `zone` or below it.
fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|head| head.ends_with('.'))
}
