//! Whether a request's Option 82 may be believed (RFC 3046 §2.1.1, §2.2).
//!
//! Relay data picks reservations, classes, per-circuit caps, rate-limit keys, the subnet (link
//! selection), the reply port (RFC 8357) and the identity billed. Only a relay agent or a
//! snooping switch may write it; a client that writes its own names whichever subscriber it
//! likes. So an Option 82 counts only when:
//! - the request is relayed (giaddr set) by a relay the operator trusts (`trusted_relays`, every
//!   relay when that list is empty), or
//! - giaddr is 0 and it arrived on an interface listed in `trusted_option82_interfaces`;
//! - for a relay that signs its requests (RFC 4030, `[[relay_auth]]`): only with a valid,
//!   fresh signature, checked by io ([`crate::request::RelayAuthCheck`]);
//!
//! and only from the main options area (the wire decoder never merges one from `file`/`sname`).
//! An Option 82 that does not count is removed from the request before anything reads it, so
//! every later rule sees a client without relay data; it is not echoed either.

use std::net::Ipv4Addr;

use leased_wire::code;

use crate::relay_auth::AuthFailure;
use crate::request::{RelayAuthCheck, Request};

/// Why relay data in a request was not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrusted {
    /// giaddr 0 on an interface not listed as trusted: the client wrote it (RFC 3046 §2.1.1).
    Direct,
    /// Relayed, but giaddr or the packet's source is not in `trusted_relays`.
    UnlistedRelay,
    /// Found in the overloaded `file`/`sname` fields, where no relay writes it.
    Overloaded,
    /// From a relay that signs its requests (RFC 4030), without a valid, fresh signature.
    Auth(AuthFailure),
}

impl Untrusted {
    /// Metric label and log word.
    pub fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::UnlistedRelay => "unlisted_relay",
            Self::Overloaded => "overloaded",
            Self::Auth(f) => f.label(),
        }
    }
}

/// Whether the main-area Option 82 of `req`, if it has one, may be believed.
pub fn judge(req: &Request, trust: &RelayTrust) -> Result<(), Untrusted> {
    if req.packet.options.get(code::RELAY_AGENT_INFO).is_none() {
        return Ok(());
    }
    let giaddr = req.packet.giaddr;
    if giaddr.is_unspecified() {
        let on_trusted_link = req
            .interface
            .as_ref()
            .is_some_and(|i| trust.trusted_option82_interfaces.contains(i));
        return if on_trusted_link {
            Ok(())
        } else {
            Err(Untrusted::Direct)
        };
    }
    if trust.key_of(giaddr).is_some() {
        return match req.relay_auth {
            RelayAuthCheck::Valid => Ok(()),
            RelayAuthCheck::Failed(f) => Err(Untrusted::Auth(f)),
            RelayAuthCheck::NotChecked => Err(Untrusted::Auth(AuthFailure::Missing)),
        };
    }
    if trust.trusted_relays.is_empty() {
        return Ok(());
    }
    let source_ok = req.src_addr.is_none_or(|s| trust.relay_listed(s));
    if trust.relay_listed(giaddr) && source_ok {
        Ok(())
    } else {
        Err(Untrusted::UnlistedRelay)
    }
}

/// Removes relay data that may not be believed from `req` and says why, if any was there: an
/// untrusted main-area Option 82 first, else one the decoder found in `file`/`sname`. Call it
/// once, where a request enters the server, before limits, the SQL chain or [`crate::decide`]
/// read it ([`crate::decide`] judges again, so a caller that skips this is still safe).
pub fn screen(req: &mut Request, trust: &RelayTrust) -> Option<Untrusted> {
    let verdict = judge(req, trust);
    if verdict.is_err() {
        req.packet.options.remove(code::RELAY_AGENT_INFO);
    }
    verdict.err().or(req
        .packet
        .option82_in_overload
        .then_some(Untrusted::Overloaded))
}

/// Whether a reply may go to the relay's own source port (RFC 8357 sub-option 19) rather than
/// 67: only when the relay is trusted by address (`trusted_relays` lists it) or the packet
/// came from giaddr itself. Otherwise anyone who can set giaddr and sub-option 19 could aim
/// our replies at any port of any host.
pub fn relay_port_allowed(req: &Request, trust: &RelayTrust, giaddr: Ipv4Addr) -> bool {
    if !trust.trusted_relays.is_empty() {
        return trust.relay_listed(giaddr);
    }
    req.src_addr == Some(giaddr)
}

/// Who may speak for a client in Option 82.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayTrust {
    /// Relays whose Option 82 is honoured, matched against giaddr and the packet's source.
    /// Empty: every relay (a request with giaddr set) is believed, as most networks run; then
    /// `leased check` warns if relay data picks reservations, caps or classes.
    pub trusted_relays: Vec<ipnet::Ipv4Net>,
    /// Interfaces where an Option 82 with giaddr 0 is honoured: links behind a switch doing
    /// DHCP snooping that inserts it (RFC 3046 §2.1 allows such an agent to leave giaddr 0).
    /// Anywhere else a direct client's Option 82 is ignored.
    pub trusted_option82_interfaces: Vec<String>,
    /// Relays that sign their requests (RFC 4030, `[[relay_auth]]`): a relayed request whose
    /// giaddr is one of them counts only with a valid signature and a fresh counter, wherever
    /// it came from; `trusted_relays` is not consulted for them.
    pub authenticated: Vec<crate::relay_auth::RelayAuthKey>,
}

impl RelayTrust {
    /// True when `addr` is in [`RelayTrust::trusted_relays`].
    pub fn relay_listed(&self, addr: std::net::Ipv4Addr) -> bool {
        self.trusted_relays.iter().any(|n| n.contains(&addr))
    }

    /// The RFC 4030 key of the relay writing `giaddr`, if it signs its requests.
    pub fn key_of(&self, giaddr: std::net::Ipv4Addr) -> Option<&[u8]> {
        self.authenticated
            .iter()
            .find(|k| k.relay == giaddr)
            .map(|k| k.key.as_slice())
    }
}
