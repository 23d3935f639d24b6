//! `X-Api-Key` authentication.
//!
//! Why hashes: keys are kept and compared as SHA-256 digests with a constant-time compare
//! (`subtle`), so neither the key's content nor its length leaks through response timing, and
//! every configured key is compared on every request (no early exit on the first match).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The environment variable with extra API keys, comma separated.
pub const KEYS_ENV: &str = "LEASED_API_KEYS";

/// The header clients authenticate with (DHCPStats' header).
pub const HEADER: &str = "x-api-key";

/// The 401 body, byte for byte what DHCPStats answers.
pub const FAILED: &str = "X-Api-Key authentication failed.";

/// The accepted keys and which routes need none.
#[derive(Debug, Clone)]
pub struct Auth {
    digests: Vec<[u8; 32]>,
    public_health: bool,
    public_metrics: bool,
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// Splits `LEASED_API_KEYS`-style text into keys (comma separated, blanks ignored).
pub fn split_keys(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

impl Auth {
    /// Accepts any of `keys`; `/health` and `/metrics` without a key when so configured.
    pub fn new(keys: &[String], public_health: bool, public_metrics: bool) -> Self {
        Self {
            digests: keys.iter().map(|k| digest(k.as_bytes())).collect(),
            public_health,
            public_metrics,
        }
    }

    /// How many keys are accepted.
    pub fn key_count(&self) -> usize {
        self.digests.len()
    }

    /// True when `presented` is one of the keys (constant time in the key's content).
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let d = digest(presented);
        let mut ok = subtle::Choice::from(0);
        for k in &self.digests {
            ok |= k.ct_eq(&d);
        }
        ok.into()
    }

    /// True when `path` may be read without a key.
    pub fn is_public(&self, path: &str) -> bool {
        (self.public_health && path == "/health") || (self.public_metrics && path == "/metrics")
    }
}

/// The 401 answer.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({ "message": FAILED })),
    )
        .into_response()
}

/// Middleware: lets the request through with a valid `X-Api-Key`, or to a public route.
pub async fn require_key(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    if auth.is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let ok = req
        .headers()
        .get(HEADER)
        .is_some_and(|v| auth.accepts(v.as_bytes()));
    if ok {
        next.run(req).await
    } else {
        unauthorized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let a = Auth::new(&split_keys(" k1, ,k2,"), true, false);
        assert_eq!(a.key_count(), 2);
        assert!(a.accepts(b"k1"));
        assert!(a.accepts(b"k2"));
        assert!(!a.accepts(b"k3"));
        assert!(!a.accepts(b""));
        assert!(a.is_public("/health"));
        assert!(!a.is_public("/metrics"));
    }
}
