//! `[server] trusted_relays` and `trusted_option82_interfaces`: whose Option 82 leased believes.
//!
//! Option 82 is written by relay agents (RFC 3046 §2.1) and by L2 switches that snoop DHCP;
//! a client can write one too, and then names any subscriber it likes. The keys live in
//! `[server]`; the settings are their own struct, like the conflict check's.

use ipnet::Ipv4Net;

use crate::file::RawServer;
use crate::span::join_index;
use leased_core::trust::RelayTrust;

use crate::ctx::{Ctx, check_interface};

/// Checks the trust keys of `[server]`: each relay an address or CIDR, each interface a name.
pub(crate) fn relay_trust(ctx: &mut Ctx<'_>, raw: &RawServer) -> RelayTrust {
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
