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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Format, load_str};

    const HEAD: &str =
        "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.20\"]\n";

    fn load(text: &str) -> Result<crate::Config, String> {
        load_str(text, "t.toml", Format::Toml).map_err(|e| {
            e.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn subnet_and_class_settings() {
        let c = load(&format!(
            "{HEAD}rapid_commit = true\nipv6_only_wait = \"30m\"\n\
             [[classes]]\nname = \"tv\"\nipv6_only_wait = 300\nipv6_only_address = \"lease\"\n\
             [[classes]]\nname = \"plain\"\n"
        ))
        .unwrap();
        let s = &c.network.subnets[0];
        assert!(s.rapid_commit);
        assert_eq!(
            s.ipv6_only,
            Some(Ipv6Only {
                wait: 1800,
                address: Ipv6OnlyAddress::None
            })
        );
        assert_eq!(
            c.network.classes[0].ipv6_only,
            Some(Ipv6Only {
                wait: 300,
                address: Ipv6OnlyAddress::Lease
            })
        );
        assert_eq!(c.network.classes[1].ipv6_only, None);
        // Off unless written.
        let c = load(HEAD).unwrap();
        assert!(!c.network.subnets[0].rapid_commit);
        assert_eq!(c.network.subnets[0].ipv6_only, None);
    }

    #[test]
    fn a_wait_below_the_rfc_minimum_is_refused_with_its_position() {
        let e = load(&format!("{HEAD}ipv6_only_wait = \"4m59s\"\n")).unwrap_err();
        assert!(
            e.contains("t.toml:4:18: subnets[0].ipv6_only_wait") && e.contains("299s"),
            "{e}"
        );
        let e = load(&format!(
            "{HEAD}[[classes]]\nname = \"x\"\nipv6_only_wait = 60\n"
        ))
        .unwrap_err();
        assert!(e.contains("t.toml:6:18: classes[0].ipv6_only_wait"), "{e}");
        let e = load(&format!("{HEAD}ipv6_only_wait = \"soon\"\n")).unwrap_err();
        assert!(e.contains("subnets[0].ipv6_only_wait"), "{e}");
    }

    #[test]
    fn the_address_policy_is_checked() {
        let e = load(&format!(
            "{HEAD}ipv6_only_wait = 600\nipv6_only_address = \"some\"\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("t.toml:5:21: subnets[0].ipv6_only_address"),
            "{e}"
        );
        let e = load(&format!("{HEAD}ipv6_only_address = \"lease\"\n")).unwrap_err();
        assert!(e.contains("needs ipv6_only_wait"), "{e}");
        let e = load(&format!("{HEAD}rapid_commit = \"yes\"\n")).unwrap_err();
        assert!(e.contains("rapid_commit"), "{e}");
    }

    #[test]
    fn options_80_and_108_cannot_be_configured_raw() {
        for c in [80, 108] {
            let e = load(&format!(
                "{HEAD}[[subnets.options.extra]]\ncode = {c}\ntype = \"hex\"\nvalue = \"00\"\n"
            ))
            .unwrap_err();
            assert!(e.contains("only to clients that ask"), "{c}: {e}");
        }
    }

    #[test]
    fn rapid_commit_without_a_port_cap_is_warned_about() {
        let c = load(&format!("{HEAD}rapid_commit = true\n")).unwrap();
        let w = crate::rapid_commit_warnings(&c);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("198.18.0.0/24") && w[0].contains("max_leases_per_circuit_id"));
        let c = load(&format!(
            "{HEAD}rapid_commit = true\nmax_leases_per_circuit_id = 2\n"
        ))
        .unwrap();
        assert!(crate::rapid_commit_warnings(&c).is_empty());
        let c = load(&format!(
            "[server]\nmax_leases_per_remote_id = 4\n{HEAD}rapid_commit = true\n"
        ))
        .unwrap();
        assert!(crate::rapid_commit_warnings(&c).is_empty());
        assert!(crate::rapid_commit_warnings(&load(HEAD).unwrap()).is_empty());
    }
}
