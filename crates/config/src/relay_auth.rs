//! `[[relay_auth]]` (on the server) and `[relay] auth_key` (on `leased relay`): the shared keys
//! of RFC 4030 relay-agent authentication (see [`crate::relay_auth`]).

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::options::parse_ip;
use crate::span::{join_index, join_key};
use leased_core::relay_auth::RelayAuthKey;

use crate::ctx::Ctx;

/// Shorter keys are refused: an HMAC is only as strong as its key.
pub const MIN_AUTH_KEY_LEN: usize = 16;

/// `[[relay_auth]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelayAuth {
    pub relay: Option<String>,
    pub key: Option<String>,
}

/// Checks one key's text (for `[relay] auth_key` too).
pub(crate) fn check_key(ctx: &mut Ctx<'_>, path: &str, key: Option<&String>) -> Option<Vec<u8>> {
    match key {
        None => {
            ctx.err(path, "a key is required");
            None
        }
        Some(k) if k.len() < MIN_AUTH_KEY_LEN => {
            ctx.err(
                path,
                format!("must be at least {MIN_AUTH_KEY_LEN} bytes (it keys an HMAC-SHA1)"),
            );
            None
        }
        Some(k) => Some(k.as_bytes().to_vec()),
    }
}

/// Checks `[[relay_auth]]`: each entry a relay address and a key, no relay twice.
pub(crate) fn relay_auth(ctx: &mut Ctx<'_>, raw: Option<&Vec<RawRelayAuth>>) -> Vec<RelayAuthKey> {
    let mut out: Vec<RelayAuthKey> = Vec::new();
    let mut seen: Vec<Ipv4Addr> = Vec::new();
    for (i, r) in raw.into_iter().flatten().enumerate() {
        let at = join_index("relay_auth", i);
        let key_path = join_key(&at, "key");
        let relay = match r.relay.as_deref().map(parse_ip) {
            None => {
                ctx.err(
                    &at,
                    "relay (the giaddr of the relay's requests) is required",
                );
                None
            }
            Some(Ok(ip)) if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() => {
                ctx.err(
                    &join_key(&at, "relay"),
                    format!("{ip} cannot be a relay address"),
                );
                None
            }
            Some(Ok(ip)) if seen.contains(&ip) => {
                ctx.err(&join_key(&at, "relay"), format!("{ip} is listed twice"));
                None
            }
            Some(Ok(ip)) => {
                seen.push(ip);
                Some(ip)
            }
            Some(Err(e)) => {
                ctx.err(&join_key(&at, "relay"), e);
                None
            }
        };
        let key = check_key(ctx, &key_path, r.key.as_ref());
        if let (Some(relay), Some(key)) = (relay, key) {
            out.push(RelayAuthKey { relay, key });
        }
    }
    out
}
