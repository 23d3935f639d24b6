//! `[server] trusted_relays` and `trusted_option82_interfaces`: whose Option 82 leased believes.
//!
//! Option 82 is written by relay agents (RFC 3046 §2.1) and by L2 switches that snoop DHCP;
//! a client can write one too, and then names any subscriber it likes. The keys live in
//! `[server]`; the settings are their own struct, like the conflict check's.

use ipnet::Ipv4Net;

use super::file::RawServer;
use super::span::join_index;
use super::validate::{Ctx, check_interface};

/// Who may speak for a client in Option 82.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayTrust {
    /// Relays whose Option 82 is honoured, matched against giaddr and the packet's source.
    /// Empty: every relay (a request with giaddr set) is believed, as most networks run; then
    /// `leased check` warns if relay data picks reservations, caps or classes.
    pub trusted_relays: Vec<Ipv4Net>,
    /// Interfaces where an Option 82 with giaddr 0 is honoured: links behind a switch doing
    /// DHCP snooping that inserts it (RFC 3046 §2.1 allows such an agent to leave giaddr 0).
    /// Anywhere else a direct client's Option 82 is ignored.
    pub trusted_option82_interfaces: Vec<String>,
    /// Relays that sign their requests (RFC 4030, `[[relay_auth]]`): a relayed request whose
    /// giaddr is one of them counts only with a valid signature and a fresh counter, wherever
    /// it came from; `trusted_relays` is not consulted for them.
    pub authenticated: Vec<super::relay_auth::RelayAuthKey>,
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

/// Checks the trust keys of `[server]`: each relay an address or CIDR, each interface a name.
pub(super) fn relay_trust(ctx: &mut Ctx<'_>, raw: &RawServer) -> RelayTrust {
    let mut t = RelayTrust::default();
    for (i, v) in raw.trusted_relays.iter().flatten().enumerate() {
        let path = join_index("server.trusted_relays", i);
        let parsed = v
            .parse::<Ipv4Net>()
            .or_else(|_| v.parse::<std::net::Ipv4Addr>().map(Ipv4Net::from));
        match parsed {
            Ok(n) if n.addr().is_unspecified() => {
                ctx.err(
                    &path,
                    "0.0.0.0 would trust every relay: leave the list empty instead",
                );
            }
            Ok(n) => t.trusted_relays.push(n.trunc()),
            Err(_) => ctx.err(
                &path,
                format!(
                    "{v:?} is not an IPv4 address or CIDR (e.g. \"198.18.0.1\", \"198.18.0.0/24\")"
                ),
            ),
        }
    }
    for (i, v) in raw.trusted_option82_interfaces.iter().flatten().enumerate() {
        let before = ctx.error_count();
        check_interface(ctx, &join_index("server.trusted_option82_interfaces", i), v);
        if ctx.error_count() == before {
            t.trusted_option82_interfaces.push(v.clone());
        }
    }
    t
}
