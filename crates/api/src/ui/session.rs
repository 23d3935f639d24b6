//! The dashboard's login sessions.
//!
//! Why sessions and not the key in the browser: an API key is a long-lived secret shared with
//! scripts; a page that kept it in JavaScript-readable storage would hand it to any script
//! injection, forever. The key is typed once into the login form and checked like an
//! `X-Api-Key`; the browser then holds only a random session token in an `HttpOnly`,
//! `SameSite=Strict` cookie, which expires, is dropped at logout and dies with the process.
//!
//! Bounds: at most [`MAX_SESSIONS`] sessions, in an LRU table keyed by the SHA-256 of the
//! token (a lookup, a touch and the eviction of the least recently used session are each
//! O(1)); a session ends after [`IDLE`] without a request or [`LIFETIME`] after its login,
//! whichever comes first, checked on every use. The clock is passed in, so tests need not
//! wait.
//!
//! CSRF: every session has its own random token, which the page reads from
//! `GET /ui/api/session` and sends as [`CSRF_HEADER`] on every write; the check is in
//! [`super::guard`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hashlink::LruCache;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Most sessions at once; a new login beyond it ends the least recently used one.
pub const MAX_SESSIONS: usize = 256;
/// A session unused this long has ended (the dashboard polls while it is open).
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after its login, however busy.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The session cookie's name.
pub const COOKIE: &str = "leased_ui";
/// The header a write carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Random bytes per token (a session token and a CSRF token alike): 256 bits.
const TOKEN_BYTES: usize = 32;

/// The system's random source failed (no entropy yet, a broken sandbox): no session is made.
#[derive(Debug, thiserror::Error)]
#[error("no random bytes for a session token: {0}")]
pub struct NoRandom(String);

/// One login.
#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    created: Instant,
    seen: Instant,
}

/// What a valid session token opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// The session's CSRF token.
    pub csrf: String,
    /// How long until the session ends at the latest (its lifetime, not its idle clock).
    pub remaining: Duration,
}

/// The session table. Shared behind an `Arc`; every method takes the lock briefly.
#[derive(Debug)]
pub struct Sessions {
    table: Mutex<LruCache<[u8; 32], Session>>,
    idle: Duration,
    lifetime: Duration,
}

fn random_hex() -> Result<String, NoRandom> {
    let mut b = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut b).map_err(|e| NoRandom(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn key_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// True when `text` has the shape of a token this module makes (64 lowercase hex digits), so a
/// cookie of any other shape is refused before it is hashed.
pub fn well_formed(text: &str) -> bool {
    text.len() == TOKEN_BYTES * 2 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// True when the presented CSRF token is the session's (constant time in its content).
pub fn csrf_matches(expected: &str, presented: &[u8]) -> bool {
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented))
}

impl Sessions {
    /// An empty table of at most `capacity` sessions with these clocks.
    pub fn new(capacity: usize, idle: Duration, lifetime: Duration) -> Self {
        Self {
            table: Mutex::new(LruCache::new(capacity.max(1))),
            idle,
            lifetime,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<[u8; 32], Session>> {
        // A poisoned lock means a panic elsewhere mid-update; the table itself stays valid.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session at `now`: returns (session token, CSRF token). The token is never
    /// stored, only its digest.
    pub fn create(&self, now: Instant) -> Result<(String, String), NoRandom> {
        let token = random_hex()?;
        let csrf = random_hex()?;
        self.lock().insert(
            key_of(&token),
            Session {
                csrf: csrf.clone(),
                created: now,
                seen: now,
            },
        );
        Ok((token, csrf))
    }

    /// The session of `token` at `now`, marked used; `None` (and the session forgotten) when
    /// it has ended.
    pub fn check(&self, token: &str, now: Instant) -> Option<Active> {
        if !well_formed(token) {
            return None;
        }
        let key = key_of(token);
        let mut t = self.lock();
        let s = t.get_mut(&key)?;
        let age = now.saturating_duration_since(s.created);
        if age >= self.lifetime || now.saturating_duration_since(s.seen) >= self.idle {
            t.remove(&key);
            return None;
        }
        s.seen = now;
        Some(Active {
            csrf: s.csrf.clone(),
            remaining: self.lifetime.saturating_sub(age),
        })
    }

    /// Ends the session of `token` (logout). True when there was one.
    pub fn end(&self, token: &str) -> bool {
        well_formed(token) && self.lock().remove(&key_of(token)).is_some()
    }

    /// Sessions held (ended ones included until they are next looked up or evicted).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_with_its_token_only() {
        let s = Sessions::new(4, IDLE, LIFETIME);
        let t0 = Instant::now();
        let (token, csrf) = s.create(t0).unwrap();
        assert!(well_formed(&token) && well_formed(&csrf) && token != csrf);
        let a = s.check(&token, t0).unwrap();
        assert_eq!(a.csrf, csrf);
        assert_eq!(a.remaining, LIFETIME);
        assert!(
            s.check(&csrf, t0).is_none(),
            "the CSRF token is no session token"
        );
        assert!(s.check("nonsense", t0).is_none());
        assert!(s.check(&token.to_uppercase(), t0).is_none());
    }

    #[test]
    fn idle_and_lifetime_end_a_session() {
        let idle = Duration::from_secs(10);
        let life = Duration::from_secs(25);
        let s = Sessions::new(4, idle, life);
        let t0 = Instant::now();
        let (a, _) = s.create(t0).unwrap();
        // Used every 9 s, it lives until its lifetime runs out.
        for k in 1..=2u64 {
            assert!(s.check(&a, t0 + Duration::from_secs(9 * k)).is_some());
        }
        assert!(s.check(&a, t0 + Duration::from_secs(25)).is_none());
        assert_eq!(s.len(), 0, "an ended session is forgotten when seen");
        let (b, _) = s.create(t0).unwrap();
        assert!(s.check(&b, t0 + Duration::from_secs(10)).is_none(), "idle");
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_least_recently_used() {
        let s = Sessions::new(3, IDLE, LIFETIME);
        let t0 = Instant::now();
        let tokens: Vec<String> = (0..3).map(|_| s.create(t0).unwrap().0).collect();
        // Touch the first: the second is now the least recently used.
        assert!(s.check(&tokens[0], t0).is_some());
        let (d, _) = s.create(t0).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.check(&tokens[1], t0).is_none(), "evicted");
        for t in [&tokens[0], &tokens[2], &d] {
            assert!(s.check(t, t0).is_some());
        }
        // Many logins never grow it.
        for _ in 0..1000 {
            s.create(t0).unwrap();
        }
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn logout_ends_it() {
        let s = Sessions::new(4, IDLE, LIFETIME);
        let t0 = Instant::now();
        let (a, _) = s.create(t0).unwrap();
        assert!(s.end(&a));
        assert!(!s.end(&a));
        assert!(s.check(&a, t0).is_none());
    }

    #[test]
    fn csrf_compare() {
        assert!(csrf_matches("abc", b"abc"));
        assert!(!csrf_matches("abc", b"abd"));
        assert!(!csrf_matches("abc", b"ab"));
        assert!(!csrf_matches("abc", b""));
    }
}
