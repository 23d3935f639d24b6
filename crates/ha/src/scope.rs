//! Which addresses a load-balancing server may hand out while its partner is unreachable.
//!
//! Both servers of a load-balancing pair allocate from the same pools; while they can talk, a
//! lease update and the primary-wins tie-break keep them from binding one address twice. While
//! the partner link is cut, neither hears of the other's bindings, so each hands out only its
//! own half of every pool (the primary the lower half, the secondary the upper) until the link
//! is back or the partner is declared down.

use leased_core::model::{AddrRange, Network};

use crate::settings::Role;

/// The part of the pools a server may allocate from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolScope {
    /// Every pool, whole: the partner hears of every binding, or is gone.
    Whole,
    /// This server's half of every pool ([`own_half`]): the partner is unreachable and may be
    /// serving its own clients from the other half.
    OwnHalf,
}

/// `network` with the other server's half of every pool excluded: the primary keeps the lower
/// half (the middle address included), the secondary the upper. The halves are disjoint and
/// together the whole pool; pools keep their places (classes name them by index). A client
/// renewing an address of the other half is refused and gets one of this half.
pub fn own_half(network: &Network, role: Role) -> Network {
    let mut out = network.clone();
    for subnet in &mut out.subnets {
        let mut extra = Vec::new();
        for p in &subnet.pools {
            let (s, e) = (u32::from(p.start), u32::from(p.end));
            if e < s {
                continue;
            }
            let mid = s + (e - s) / 2;
            let other = if role == Role::Primary {
                (mid < e).then(|| (mid + 1, e))
            } else {
                Some((s, mid))
            };
            if let Some((a, b)) = other {
                extra.push(AddrRange {
                    start: a.into(),
                    end: b.into(),
                });
            }
        }
        subnet.exclusions.extend(extra);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn the_halves_are_disjoint_and_whole() {
        let text = "[[subnets]]\nnetwork = \"198.18.0.0/24\"\n\
                    pools = [\"198.18.0.10-198.18.0.19\", \"198.18.0.30-198.18.0.30\"]\n";
        let c = leased_config::load_str(text, "t.toml", leased_config::Format::Toml).unwrap();
        let a = own_half(&c.network, Role::Primary);
        let b = own_half(&c.network, Role::Secondary);
        let excluded =
            |n: &Network, ip: Ipv4Addr| n.subnets[0].exclusions.iter().any(|r| r.contains(ip));
        for last in (10..=19).chain([30]) {
            let ip = Ipv4Addr::new(198, 18, 0, last);
            assert_ne!(excluded(&a, ip), excluded(&b, ip), "{ip}");
        }
        assert!(!excluded(&a, Ipv4Addr::new(198, 18, 0, 14)));
        assert!(excluded(&a, Ipv4Addr::new(198, 18, 0, 15)));
        assert_eq!(a.subnets[0].pools, c.network.subnets[0].pools);
    }
}
