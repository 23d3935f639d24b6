//! `ipv6_only_wait` and `ipv6_only_address` of a `[[subnets]]` or `[[classes]]` entry: RFC 8925
//! IPv6-only preferred (option 108).
//!
//! Why its own room: the same two keys are checked in two sections, and the RFC's floor on the
//! wait belongs where `leased check` can name the line that breaks it.

use leased_core::model::{Ipv6Only, Ipv6OnlyAddress};

use crate::ctx::Ctx;
use crate::file::RawDuration;
use crate::span::join_key;

/// RFC 8925 §3.4 MIN_V6ONLY_WAIT: a client takes anything shorter as this, so a shorter
/// setting would not do what it says.
pub(crate) const MIN_V6ONLY_WAIT: u32 = 300;

/// Checks the two keys of the entry at `path`; `None` when `ipv6_only_wait` is absent (the
/// feature is off there) or either key is bad (errors recorded).
pub(crate) fn ipv6_only(
    ctx: &mut Ctx<'_>,
    path: &str,
    wait: Option<&RawDuration>,
    address: Option<&str>,
) -> Option<Ipv6Only> {
    let wp = join_key(path, "ipv6_only_wait");
    let ap = join_key(path, "ipv6_only_address");
    let written = address;
    let address = match address {
        None => Some(Ipv6OnlyAddress::None),
        Some("none") => Some(Ipv6OnlyAddress::None),
        Some("lease") => Some(Ipv6OnlyAddress::Lease),
        Some(other) => {
            ctx.err(
                &ap,
                format!("{other:?} is not one of \"none\" (offer 0.0.0.0), \"lease\""),
            );
            None
        }
    };
    let Some(raw) = wait else {
        if written.is_some() {
            ctx.err(&ap, "ipv6_only_address needs ipv6_only_wait beside it");
        }
        return None;
    };
    let wait = match crate::options::parse_duration(raw) {
        Ok(w) if w < MIN_V6ONLY_WAIT => {
            ctx.err(
                &wp,
                format!(
                    "{w}s is below RFC 8925's minimum V6ONLY_WAIT of {MIN_V6ONLY_WAIT}s (\"5m\")"
                ),
            );
            return None;
        }
        Ok(w) => w,
        Err(m) => {
            ctx.err(&wp, m);
            return None;
        }
    };
    address.map(|address| Ipv6Only { wait, address })
}
