//! Who may spend the server's Argon2 time: the router endpoint's credential checks.
//!
//! Why: an Argon2 check costs what its hash says (`leased export hash-password`'s: 19 MiB and
//! two passes, tens of milliseconds of a core), and anyone who can reach the API can ask for
//! one. Unbounded, 256 concurrent bad passwords took gigabytes and starved DHCP. So:
//! - at most `max_concurrent` checks run at once, on as many threads of their own (never on
//!   the async workers that serve DHCP) at a lower CPU priority ([`AUTH_NICE`]: when the cores
//!   are busy, DHCP goes first), each thread reusing one buffer: their memory is at most
//!   `max_concurrent × m` KiB, `m` the largest `m=` of the configured hashes, capped at
//!   [`MAX_HASH_KIB`]. A few more requests may wait briefly for a turn ([`QUEUE_PER_CHECK`] per
//!   check, [`QUEUE_WAIT`] at most); beyond that the answer is an immediate 503 with
//!   `Retry-After`;
//! - an unknown user name is checked against a dummy hash with the parameters of a configured
//!   one, so a miss costs what a wrong password costs and user names cannot be told apart;
//! - a source that keeps failing is refused with 429 and `Retry-After` before any check, for
//!   an interval that doubles with each further failure, up to [`BackoffPolicy::max`]. Sources
//!   are kept in a bounded LRU table (O(1) lookup, update and eviction).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version};
use hashlink::LruCache;
use leased_config::RouterCredential;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::lock;

/// Largest Argon2 memory cost accepted in a configured hash (256 MiB, in KiB): one check must
/// not be able to take the machine's memory.
pub const MAX_HASH_KIB: u32 = 256 * 1024;
/// Requests that may wait for a turn, per concurrent check.
pub const QUEUE_PER_CHECK: usize = 4;
/// Longest a request waits for a turn before it is answered 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Niceness of the Argon2 threads: under CPU contention they yield to DHCP.
pub const AUTH_NICE: i32 = 10;

/// A check handed to an Argon2 thread, with that thread's reusable memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The Argon2 threads: `n` of them, each with its own memory, taking jobs from one queue
/// (which never holds more than `n`: a job is sent only with a running permit). They stop
/// when the pool is dropped.
#[derive(Debug)]
struct Pool {
    tx: std::sync::mpsc::SyncSender<Job>,
}

impl Pool {
    fn start(n: usize) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(n);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..n {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("leased-auth-{i}"))
                .spawn(move || {
                    if let Err(e) = rustix::process::setpriority_process(
                        Some(rustix::thread::gettid()),
                        AUTH_NICE,
                    ) {
                        tracing::debug!(error = %e, "router endpoint: cannot lower the Argon2 thread's priority");
                    }
                    let mut memory = Vec::new();
                    loop {
                        let job = lock(&rx).recv();
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Self { tx })
    }
}

/// Concurrent checks when `[export] max_concurrent_auth` is not set: half the cores (at least
/// one, at most four), so that DHCP always keeps the other half.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() / 2)
        .clamp(1, 4)
}

/// One parsed Argon2 PHC string, ready to check a password against.
#[derive(Debug, Clone)]
struct Check {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    expected: Vec<u8>,
}

impl Check {
    fn parse(phc: &str) -> Result<Self, String> {
        let h = PasswordHash::new(phc).map_err(|e| e.to_string())?;
        let algorithm = Algorithm::try_from(h.algorithm).map_err(|e| e.to_string())?;
        let version = h
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let params = Params::try_from(&h).map_err(|e| e.to_string())?;
        if params.m_cost() > MAX_HASH_KIB {
            return Err(format!(
                "m={} KiB is more than the {MAX_HASH_KIB} KiB a check may take",
                params.m_cost()
            ));
        }
        let salt = h.salt.ok_or("the hash has no salt")?;
        let mut buf = [0u8; 64];
        let salt = salt
            .decode_b64(&mut buf)
            .map_err(|e| e.to_string())?
            .to_vec();
        let expected = h.hash.ok_or("the hash has no output")?.as_bytes().to_vec();
        Ok(Self {
            algorithm,
            version,
            params,
            salt,
            expected,
        })
    }

    /// The same cost as `self`, matching no password: random salt and output.
    fn dummy_like(&self) -> anyhow::Result<Self> {
        let mut salt = vec![0u8; self.salt.len()];
        getrandom_fill(&mut salt)?;
        let mut expected = vec![0u8; self.expected.len()];
        getrandom_fill(&mut expected)?;
        Ok(Self {
            salt,
            expected,
            ..self.clone()
        })
    }

    /// Argon2 of `password` in `memory` (grown to this hash's size if smaller), compared in
    /// constant time. Blocking: tens of milliseconds.
    fn verify(&self, password: &[u8], memory: &mut Vec<Block>) -> bool {
        let need = self.params.block_count();
        if memory.len() < need {
            *memory = vec![Block::default(); need];
        }
        let mut out = vec![0u8; self.expected.len()];
        let hashed = Argon2::new(self.algorithm, self.version, self.params.clone())
            .hash_password_into_with_memory(password, &self.salt, &mut out, &mut memory[..]);
        hashed.is_ok() && bool::from(out.ct_eq(&self.expected))
    }
}

/// The back-off key of a source: an IPv4 address, or the /64 of an IPv6 one (a host has a
/// whole /64 to pick addresses from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// One IPv4 address (IPv4-mapped IPv6 included).
    V4([u8; 4]),
    /// An IPv6 /64.
    V6([u8; 8]),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Source::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let o = a.octets();
                    let mut net = [0u8; 8];
                    net.copy_from_slice(o.get(..8).unwrap_or(&[0; 8]));
                    Source::V6(net)
                }
            },
        }
    }
}

/// How failures turn into refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Consecutive failures a source may make before it is refused (a mistyped secret).
    pub free_failures: u32,
    /// The first refusal's length; each further failure doubles it.
    pub base: Duration,
    /// The longest refusal.
    pub max: Duration,
    /// A source that has not failed for this long starts afresh.
    pub forget: Duration,
    /// Most sources remembered; the least recently seen is evicted beyond it.
    pub capacity: usize,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            forget: Duration::from_secs(600),
            capacity: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Recent failures per source, bounded: an LRU map (hash index + linked order), so a lookup,
/// an update and the eviction of the least recently seen source are each O(1) — no scan, however
/// many sources an attacker uses. An attacker with more addresses than `capacity` can push
/// its own blocked entries out; the concurrency bound still holds for them.
#[derive(Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    table: LruCache<Source, Failures>,
}

impl Backoff {
    /// An empty table.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            table: LruCache::new(policy.capacity.max(1)),
            policy,
        }
    }

    /// How long `src` is still refused at `now`, if it is (marks it recently seen).
    pub fn blocked(&mut self, src: Source, now: Instant) -> Option<Duration> {
        let until = self.table.get(&src)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a failed check from `src` at `now`; returns the refusal it earns, if any.
    pub fn failure(&mut self, src: Source, now: Instant) -> Option<Duration> {
        let p = self.policy;
        let mut f = match self.table.get(&src) {
            Some(f) if now.saturating_duration_since(f.last) < p.forget => *f,
            _ => Failures {
                count: 0,
                last: now,
                blocked_until: None,
            },
        };
        f.count = f.count.saturating_add(1);
        f.last = now;
        let over = f.count.saturating_sub(p.free_failures);
        let block =
            (over > 0).then(|| p.base.saturating_mul(1u32 << (over - 1).min(20)).min(p.max));
        f.blocked_until = block.map(|b| now + b);
        self.table.insert(src, f);
        block
    }

    /// A successful check from `src`: its failures are forgotten.
    pub fn success(&mut self, src: Source) {
        self.table.remove(&src);
    }

    /// Sources remembered.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// What a credential check came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are a configured router's.
    Ok,
    /// Wrong user name or secret (401).
    Denied,
    /// Too many checks at once (503, retry after this many seconds).
    Busy(u64),
    /// This source failed too often (429, retry after this many seconds).
    Refused(u64),
}

/// The router endpoint's credential checks: known hashes, the dummy, the bounds.
#[derive(Debug)]
pub struct AuthGate {
    users: HashMap<String, Arc<Check>>,
    dummy: Arc<Check>,
    /// One permit per running check.
    running: Arc<Semaphore>,
    /// One permit per running or waiting request.
    admitted: Arc<Semaphore>,
    /// The Argon2 threads.
    pool: Pool,
    backoff: std::sync::Mutex<Backoff>,
    max_concurrent: usize,
    peak_kib: u64,
}

/// Whole seconds to wait, at least one.
fn retry_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl AuthGate {
    /// Parses every router's hash (an unusable one is an error naming it) and sets the bounds.
    pub fn new(
        routers: &[RouterCredential],
        max_concurrent: usize,
        policy: BackoffPolicy,
    ) -> anyhow::Result<Self> {
        let mut users = HashMap::new();
        for (i, r) in routers.iter().enumerate() {
            let check = Check::parse(&r.password_hash).map_err(|e| {
                anyhow::anyhow!("export.routers[{i}].password_hash ({}): {e}", r.username)
            })?;
            users.insert(r.username.clone(), Arc::new(check));
        }
        let model = match routers.first().and_then(|r| users.get(&r.username)) {
            Some(c) => (**c).clone(),
            None => Check::parse(&hash_password("unused")?)
                .map_err(|e| anyhow::anyhow!("dummy hash: {e}"))?,
        };
        let dummy = Arc::new(model.dummy_like()?);
        let max_concurrent = max_concurrent.max(1);
        let largest = users
            .values()
            .map(|c| c.params.m_cost())
            .chain([dummy.params.m_cost()])
            .max()
            .unwrap_or(0);
        Ok(Self {
            users,
            dummy,
            running: Arc::new(Semaphore::new(max_concurrent)),
            admitted: Arc::new(Semaphore::new(max_concurrent * (1 + QUEUE_PER_CHECK))),
            pool: Pool::start(max_concurrent)?,
            backoff: std::sync::Mutex::new(Backoff::new(policy)),
            max_concurrent,
            peak_kib: max_concurrent as u64 * u64::from(largest),
        })
    }

    /// Checks at once.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// The most memory the checks can hold at once, in KiB.
    pub fn peak_kib(&self) -> u64 {
        self.peak_kib
    }

    /// Checks `user`/`password` from `source` within the bounds.
    pub async fn check(&self, source: IpAddr, user: &str, password: &str) -> Verdict {
        let src = Source::from(source);
        if let Some(wait) = lock(&self.backoff).blocked(src, Instant::now()) {
            return Verdict::Refused(retry_secs(wait));
        }
        let Ok(admitted) = Arc::clone(&self.admitted).try_acquire_owned() else {
            return Verdict::Busy(1);
        };
        let running =
            match tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.running).acquire_owned()).await
            {
                Ok(Ok(p)) => p,
                _ => return Verdict::Busy(1),
            };
        let known = self.users.get(user);
        let check = Arc::clone(known.unwrap_or(&self.dummy));
        let password = password.as_bytes().to_vec();
        let (done, result) = tokio::sync::oneshot::channel();
        // The permits go with the check: a client that hangs up does not free its turn
        // before the check it started is over.
        let job: Job = Box::new(move |memory| {
            let ok = check.verify(&password, memory);
            drop((admitted, running));
            let _ = done.send(ok);
        });
        if self.pool.tx.try_send(job).is_err() {
            return Verdict::Busy(1);
        }
        let ok = result.await.unwrap_or(false);
        if ok && known.is_some() {
            lock(&self.backoff).success(src);
            Verdict::Ok
        } else {
            if let Some(block) = lock(&self.backoff).failure(src, Instant::now()) {
                tracing::warn!(
                    source = %source,
                    seconds = retry_secs(block),
                    "router endpoint: repeated failures; source refused for a while"
                );
            }
            Verdict::Denied
        }
    }
}

/// Hashes a router secret for `[[export.routers]] password_hash` (Argon2id, random salt).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom_fill(&mut salt)?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt)
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hash: {e}"))
}

/// Fills `buf` from the kernel's CSPRNG.
pub(crate) fn getrandom_fill(buf: &mut [u8]) -> anyhow::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    fn v4(a: u8, b: u8) -> Source {
        Source::from(IpAddr::from([198, 18, a, b]))
    }

    #[test]
    fn reused_memory_gives_argon2s_own_answers() {
        let h = hash_password("s3cret").unwrap();
        let c = Check::parse(&h).unwrap();
        let mut mem = Vec::new();
        let parsed = PasswordHash::new(&h).unwrap();
        for (pw, want) in [
            ("s3cret", true),
            ("wrong", false),
            ("s3cret", true),
            ("", false),
        ] {
            assert_eq!(c.verify(pw.as_bytes(), &mut mem), want, "{pw}");
            assert_eq!(
                Argon2::default()
                    .verify_password(pw.as_bytes(), &parsed)
                    .is_ok(),
                want
            );
        }
        assert_eq!(mem.len(), c.params.block_count());
        let d = c.dummy_like().unwrap();
        assert_eq!(
            (d.params.m_cost(), d.params.t_cost(), d.params.p_cost()),
            (c.params.m_cost(), c.params.t_cost(), c.params.p_cost()),
            "same cost"
        );
        assert!(!d.verify(b"s3cret", &mut mem));
        assert!(
            Check::parse("$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
                .unwrap_err()
                .contains("more than")
        );
        assert!(Check::parse("$argon2id$nonsense").is_err());
    }

    #[test]
    fn failures_earn_a_growing_capped_refusal_and_success_clears() {
        let t0 = Instant::now();
        let mut b = Backoff::new(BackoffPolicy::default());
        let s = v4(0, 1);
        for _ in 0..3 {
            assert_eq!(b.failure(s, t0), None, "free failures");
            assert_eq!(b.blocked(s, t0), None);
        }
        assert_eq!(b.failure(s, t0), Some(Duration::from_secs(1)));
        assert_eq!(b.blocked(s, t0), Some(Duration::from_secs(1)));
        assert_eq!(b.blocked(s, t0 + Duration::from_secs(1)), None, "expired");
        assert_eq!(b.failure(s, t0), Some(Duration::from_secs(2)));
        assert_eq!(b.failure(s, t0), Some(Duration::from_secs(4)));
        for _ in 0..40 {
            b.failure(s, t0);
        }
        assert_eq!(b.failure(s, t0), Some(Duration::from_secs(60)), "capped");
        assert_eq!(b.blocked(v4(0, 2), t0), None, "per source");
        // Quiet for the forget interval: a fresh start.
        assert_eq!(b.failure(s, t0 + Duration::from_secs(601)), None);
        b.failure(s, t0);
        b.success(s);
        assert!(b.is_empty());
        assert_eq!(
            Source::from("2001:db8:1:2::7".parse::<IpAddr>().unwrap()),
            Source::from("2001:db8:1:2:ffff::1".parse::<IpAddr>().unwrap()),
            "one IPv6 /64 is one source"
        );
        assert_eq!(
            Source::from("::ffff:198.18.0.1".parse::<IpAddr>().unwrap()),
            v4(0, 1)
        );
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_least_recently_seen() {
        let t0 = Instant::now();
        let policy = BackoffPolicy {
            capacity: 64,
            ..BackoffPolicy::default()
        };
        let mut b = Backoff::new(policy);
        // A blocked source that keeps knocking stays remembered ...
        let knocker = v4(9, 9);
        for _ in 0..5 {
            b.failure(knocker, t0);
        }
        // ... while an attacker walks through 10 000 addresses, one failure each.
        for i in 0..10_000u16 {
            let [hi, lo] = i.to_be_bytes();
            b.failure(v4(hi, lo), t0);
            assert!(b.len() <= 64, "bounded");
            if i % 32 == 0 {
                assert!(b.blocked(knocker, t0).is_some(), "recently seen: kept");
            }
        }
        assert_eq!(b.len(), 64);
        // The survivors are exactly the most recently seen: eviction took the oldest each
        // time, by the table's order, not by a scan.
        assert!(b.blocked(knocker, t0).is_some());
        let [hi, lo] = 9_999u16.to_be_bytes();
        assert!(b.table.peek(&v4(hi, lo)).is_some());
        let [hi, lo] = 9_937u16.to_be_bytes();
        assert!(b.table.peek(&v4(hi, lo)).is_some(), "63 newest kept");
        let [hi, lo] = 9_936u16.to_be_bytes();
        assert!(b.table.peek(&v4(hi, lo)).is_none(), "older evicted");
        assert!(b.table.peek(&v4(0, 0)).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_is_bounded_and_unknown_users_cost_a_check() {
        let creds = vec![RouterCredential {
            username: "r1".into(),
            password_hash: hash_password("good").unwrap(),
        }];
        let gate = Arc::new(AuthGate::new(&creds, 1, BackoffPolicy::default()).unwrap());
        assert_eq!(gate.peak_kib(), 19_456);
        let ip = |i: u8| IpAddr::from([198, 18, 1, i]);
        assert_eq!(gate.check(ip(1), "r1", "good").await, Verdict::Ok);
        assert_eq!(gate.check(ip(1), "r1", "bad").await, Verdict::Denied);
        assert_eq!(gate.check(ip(1), "nobody", "good").await, Verdict::Denied);
        // 1 running + 4 waiting admitted; the rest are refused at once.
        let mut tasks = Vec::new();
        for i in 0..20u8 {
            let g = Arc::clone(&gate);
            tasks.push(tokio::spawn(async move {
                g.check(ip(100 + i), "r1", "bad").await
            }));
        }
        let mut busy = 0;
        let mut denied = 0;
        for t in tasks {
            match t.await.unwrap() {
                Verdict::Busy(1) => busy += 1,
                Verdict::Denied => denied += 1,
                v => panic!("{v:?}"),
            }
        }
        assert!(busy >= 10, "busy {busy}, denied {denied}");
        assert!(denied >= 1);
        // One source failing again and again is refused before any check.
        for _ in 0..2 {
            gate.check(ip(1), "r1", "bad").await;
        }
        assert!(matches!(
            gate.check(ip(1), "r1", "good").await,
            Verdict::Refused(_)
        ));
    }
}
