//! RFC 4030 relay-agent authentication: an HMAC-SHA1 over the relayed request, keyed by a
//! secret the relay and the server share, with a 64-bit counter against replays. It lets a
//! server believe a relay's Option 82 across a network where anyone could write giaddr.
//!
//! The sub-option (8) inside Option 82, as written and checked here:
//!
//! ```text
//! code 8 | len 30 | algorithm 1 (HMAC-SHA1) | RDM 0 (counter) | replay counter (8) | MAC (20)
//! ```
//!
//! The MAC covers the whole DHCP message as the relay sends it (header, options, Option 82
//! with this sub-option), computed with `hops` and the MAC field set to zero: a relay further
//! upstream increments hops, nothing else may change. Byte-level, like the rest of the relay
//! path, so the MAC covers exactly the bytes on the wire.
//!
//! Pure: the replay memory (the last counter accepted per relay) is the caller's.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use leased_wire::code;

/// The authentication sub-option's code in Option 82.
pub const SUBOPTION: u8 = 8;
/// Algorithm 1: HMAC-SHA1.
pub const HMAC_SHA1: u8 = 1;
/// Replay detection method 0: a monotonically increasing counter.
pub const RDM_COUNTER: u8 = 0;
/// Length of an HMAC-SHA1.
const MAC_LEN: usize = 20;
/// The sub-option's value: algorithm, RDM, counter, MAC.
pub const VALUE_LEN: usize = 2 + 8 + MAC_LEN;
/// Where the BOOTP `hops` byte is.
const HOPS_AT: usize = 3;
/// Where the main option area starts (after the magic cookie).
const OPTIONS_AT: usize = 240;

/// Why an authenticated request was not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// The relay has a key but the request carries no authentication sub-option.
    Missing,
    /// An algorithm or replay method other than HMAC-SHA1 with a counter, or a wrong length.
    Unsupported,
    /// The MAC does not match: another key, or the message was changed on the way.
    BadMac,
    /// A counter not above the last one accepted from this relay: a replayed message.
    Replayed,
}

impl AuthFailure {
    /// Metric label and log word.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "auth_missing",
            Self::Unsupported => "auth_unsupported",
            Self::BadMac => "auth_bad_mac",
            Self::Replayed => "auth_replayed",
        }
    }
}

/// A sub-option 8 value with `counter` and a zero MAC, to be placed in Option 82 before
/// [`sign`] fills the MAC in.
pub fn placeholder(counter: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(VALUE_LEN);
    v.push(HMAC_SHA1);
    v.push(RDM_COUNTER);
    v.extend_from_slice(&counter.to_be_bytes());
    v.resize(VALUE_LEN, 0);
    v
}

/// Where the value of sub-option 8 of the main-area Option 82 is in `datagram`: its start and
/// length. `None` when there is no Option 82, it is split (RFC 3396), or it has no sub-option 8.
fn find(datagram: &[u8]) -> Option<(usize, usize)> {
    let mut i = OPTIONS_AT;
    let (start, len) = loop {
        match *datagram.get(i)? {
            code::PAD => i += 1,
            code::END => return None,
            c => {
                let len = usize::from(*datagram.get(i + 1)?);
                if c == code::RELAY_AGENT_INFO {
                    break (i + 2, len);
                }
                i += 2 + len;
            }
        }
    };
    let value = datagram.get(start..start + len)?;
    let mut j = 0;
    while let (Some(&sub), Some(&l)) = (value.get(j), value.get(j + 1)) {
        let l = usize::from(l);
        if sub == SUBOPTION {
            value.get(j + 2..j + 2 + l)?;
            return Some((start + j + 2, l));
        }
        j += 2 + l;
    }
    None
}

fn mac_of(datagram: &[u8], mac_at: usize, key: &[u8]) -> Option<Hmac<Sha1>> {
    let mut h = <Hmac<Sha1> as KeyInit>::new_from_slice(key).ok()?;
    let hops = datagram.get(..HOPS_AT)?;
    h.update(hops);
    h.update(&[0]);
    h.update(datagram.get(HOPS_AT + 1..mac_at)?);
    h.update(&[0; MAC_LEN]);
    h.update(datagram.get(mac_at + MAC_LEN..)?);
    Some(h)
}

/// Fills in the MAC of the sub-option 8 placed by [`placeholder`]. False when `datagram` has
/// none (nothing is changed then).
pub fn sign(datagram: &mut [u8], key: &[u8]) -> bool {
    let Some((at, len)) = find(datagram).filter(|(_, l)| *l == VALUE_LEN) else {
        return false;
    };
    let mac_at = at + len - MAC_LEN;
    let Some(h) = mac_of(datagram, mac_at, key) else {
        return false;
    };
    let tag = h.finalize().into_bytes();
    match datagram.get_mut(mac_at..mac_at + MAC_LEN) {
        Some(field) => {
            field.copy_from_slice(&tag);
            true
        }
        None => false,
    }
}

/// Checks the authentication sub-option of a relayed request against `key`; on success the
/// counter it carries, which the caller must find above the last one accepted from this relay
/// (then [`AuthFailure::Replayed`] otherwise). The comparison is constant-time.
pub fn verify(datagram: &[u8], key: &[u8]) -> Result<u64, AuthFailure> {
    let (at, len) = find(datagram).ok_or(AuthFailure::Missing)?;
    let value = datagram.get(at..at + len).ok_or(AuthFailure::Missing)?;
    let [alg, rdm, c0, c1, c2, c3, c4, c5, c6, c7, ..] = *value else {
        return Err(AuthFailure::Unsupported);
    };
    if len != VALUE_LEN || alg != HMAC_SHA1 || rdm != RDM_COUNTER {
        return Err(AuthFailure::Unsupported);
    }
    let mac_at = at + len - MAC_LEN;
    let tag = datagram
        .get(mac_at..mac_at + MAC_LEN)
        .ok_or(AuthFailure::Unsupported)?;
    mac_of(datagram, mac_at, key)
        .ok_or(AuthFailure::Unsupported)?
        .verify_slice(tag)
        .map_err(|_| AuthFailure::BadMac)?;
    Ok(u64::from_be_bytes([c0, c1, c2, c3, c4, c5, c6, c7]))
}

/// The key of one relay agent, by the giaddr it writes.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayAuthKey {
    /// giaddr of the relay's requests.
    pub relay: std::net::Ipv4Addr,
    /// The shared secret (its bytes are the HMAC key).
    pub key: Vec<u8>,
}

impl std::fmt::Debug for RelayAuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayAuthKey")
            .field("relay", &self.relay)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use leased_wire::{BOOTREQUEST, MessageType, Options, Packet};
    use std::net::Ipv4Addr;

    fn relayed(o82: &[u8]) -> Vec<u8> {
        let mut options = Options::new();
        options.set(code::MESSAGE_TYPE, vec![MessageType::Discover.code()]);
        options.set(code::RELAY_AGENT_INFO, o82.to_vec());
        let p = Packet {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 1,
            xid: 7,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::new(198, 18, 1, 1),
            chaddr: [2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            sname: vec![],
            file: vec![],
            options,
            option82_in_overload: false,
        };
        let mut out = Vec::new();
        p.encode(576, &mut out);
        out
    }

    fn signed(key: &[u8], counter: u64) -> Vec<u8> {
        let mut o82 = vec![1, 3, b'c', b'-', b'1', SUBOPTION, VALUE_LEN as u8];
        o82.extend(placeholder(counter));
        let mut d = relayed(&o82);
        assert!(sign(&mut d, key));
        d
    }

    #[test]
    fn a_signed_request_verifies_with_its_key_only() {
        let d = signed(b"a shared secret!", 42);
        assert_eq!(verify(&d, b"a shared secret!"), Ok(42));
        assert_eq!(verify(&d, b"another secret!!"), Err(AuthFailure::BadMac));
    }

    #[test]
    fn hops_may_change_nothing_else_may() {
        let key = b"a shared secret!";
        let mut d = signed(key, 1);
        d[HOPS_AT] = 3;
        assert_eq!(verify(&d, key), Ok(1), "an upstream relay increments hops");
        // Every other byte of the message is covered.
        for i in (0..d.len()).filter(|i| *i != HOPS_AT) {
            let mut t = d.clone();
            t[i] ^= 0x01;
            assert!(verify(&t, key).is_err(), "byte {i} is not covered");
        }
    }

    #[test]
    fn missing_and_unsupported_suboptions() {
        let key = b"a shared secret!";
        assert_eq!(
            verify(&relayed(&[1, 1, b'x']), key),
            Err(AuthFailure::Missing)
        );
        let mut o82 = vec![SUBOPTION, VALUE_LEN as u8];
        let mut v = placeholder(1);
        v[0] = 2; // not HMAC-SHA1
        o82.extend(v);
        assert_eq!(verify(&relayed(&o82), key), Err(AuthFailure::Unsupported));
        let short = [SUBOPTION, 4, HMAC_SHA1, RDM_COUNTER, 0, 0];
        assert_eq!(verify(&relayed(&short), key), Err(AuthFailure::Unsupported));
        // Truncated anywhere: an error, never a panic.
        let d = signed(key, 9);
        for n in 0..d.len() {
            let _ = verify(&d[..n], key);
        }
    }
}
