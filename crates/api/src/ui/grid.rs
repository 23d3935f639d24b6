//! The address grid of the dashboard: `leased stats --grid` in the browser, one cell per
//! address of a subnet, as one character each so that a /15 (131,072 addresses) travels as a
//! 128 KiB string and is painted by the page in a few milliseconds.
//!
//! The classification follows `leased stats --grid`'s rule, in the same order, with a few of
//! its kinds split so the operator sees more on hover:
//!
//! | cell | meaning | `--grid` |
//! |---|---|---|
//! | `L` | bound to a client, not past its end | `L` leased |
//! | `O` | offered, held for a client | `L` leased |
//! | `M` | held by a banned MAC | `M` banned-mac |
//! | `D` | declined, in quarantine | `X` banned-ip |
//! | `R` | reserved, not currently held | `R` reserved |
//! | `X` | never handed out: network, broadcast, router, server, excluded | `X` banned-ip |
//! | `E` | in a pool, free, with an ended lease record (expired or released) | `.` unused |
//! | `.` | in a pool, free, never handed out | `.` unused |
//! | ` ` | in the subnet, outside its pools | ` ` outside |
//!
//! A pure function of (network, subnet, leases, now); O(addresses + leases) with the leases in
//! address order (the engine's snapshot is).

use std::net::Ipv4Addr;

use leased_core::model::{Network, Subnet};
use leased_core::{Lease, LeaseState, Timestamp};
use serde::Serialize;

/// Most cells in one answer: a /15. A larger subnet is paged with `from`.
pub const MAX_CELLS: u64 = 1 << 17;

/// Every cell character, in legend order, with its name.
pub const KINDS: [(char, &str); 9] = [
    ('L', "bound"),
    ('O', "offered"),
    ('M', "banned-mac"),
    ('D', "declined"),
    ('R', "reserved"),
    ('X', "banned-ip"),
    ('E', "ended"),
    ('.', "unused"),
    (' ', "outside"),
];

/// The `leased stats --grid` letter a cell stands for (see the module docs).
pub fn cli_glyph(cell: char) -> char {
    match cell {
        'L' | 'O' => 'L',
        'D' | 'X' => 'X',
        'E' => '.',
        other => other,
    }
}

/// Why an address of `s` is never handed out, if it is not (`leased stats`' rule).
pub fn banned_reason(s: &Subnet, ip: Ipv4Addr) -> Option<&'static str> {
    if s.network.prefix_len() < 31 && ip == s.network.network() {
        return Some("network");
    }
    if s.network.prefix_len() < 31 && ip == s.network.broadcast() {
        return Some("broadcast");
    }
    if s.routers.contains(&ip) {
        return Some("router");
    }
    if s.server_id == Some(ip) {
        return Some("server");
    }
    if s.exclusions.iter().any(|r| r.contains(ip)) {
        return Some("excluded");
    }
    None
}

/// One page of a subnet's grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grid {
    /// The subnet's CIDR.
    pub subnet: String,
    /// The address of the first cell.
    pub first: String,
    /// Addresses in the whole subnet.
    pub size: u64,
    /// One character per address from `first` (see the module docs).
    pub cells: String,
    /// The first address of the next page, when the subnet is larger than one page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// How many cells of each kind this page has, in [`KINDS`] order, as `(cell, name, count)`.
    pub counts: Vec<(char, &'static str, u64)>,
}

/// The cell of one address (see the module docs); `lease` is the address's record, if any.
fn cell(
    network: &Network,
    s: &Subnet,
    ip: Ipv4Addr,
    lease: Option<&Lease>,
    reserved: bool,
    now: Timestamp,
) -> char {
    let live = lease.filter(|l| l.is_active(now));
    match live {
        Some(l) if l.state == LeaseState::Declined => 'D',
        Some(l) if network.banned_macs.contains_key(&l.hwaddr) => 'M',
        Some(l) if l.state == LeaseState::Offered => 'O',
        Some(_) => 'L',
        None if reserved => 'R',
        None => {
            if banned_reason(s, ip).is_some() {
                'X'
            } else if s.pools.iter().any(|p| p.contains(ip)) {
                if lease.is_some() { 'E' } else { '.' }
            } else {
                ' '
            }
        }
    }
}

/// The grid of `s` from `from` (its network address when `None` or outside it), at most
/// [`MAX_CELLS`] cells. `leases` must be in address order.
pub fn grid(
    network: &Network,
    s: &Subnet,
    leases: &[Lease],
    now: Timestamp,
    from: Option<Ipv4Addr>,
) -> Grid {
    page(network, s, leases, now, from, MAX_CELLS)
}

fn page(
    network: &Network,
    s: &Subnet,
    leases: &[Lease],
    now: Timestamp,
    from: Option<Ipv4Addr>,
    max: u64,
) -> Grid {
    let lo = u32::from(s.network.network());
    let hi = u32::from(s.network.broadcast());
    let start = from
        .map(u32::from)
        .filter(|f| (lo..=hi).contains(f))
        .unwrap_or(lo);
    let last = u64::from(start) + max.max(1) - 1;
    let end = u32::try_from(last.min(u64::from(hi))).unwrap_or(hi);
    let mut reserved: Vec<u32> = s.reservations.iter().map(|r| u32::from(r.ip)).collect();
    reserved.sort_unstable();
    let records = crate::stats::leases_in(leases, Ipv4Addr::from(start), Ipv4Addr::from(end));
    let mut li = records.iter().peekable();
    let mut ri = reserved.iter().peekable();
    let mut cells = String::with_capacity(usize::try_from(end - start + 1).unwrap_or(0));
    for n in start..=end {
        let ip = Ipv4Addr::from(n);
        while li.peek().is_some_and(|l| u32::from(l.ip) < n) {
            li.next();
        }
        let lease = li.peek().filter(|l| u32::from(l.ip) == n).copied();
        while ri.peek().is_some_and(|r| **r < n) {
            ri.next();
        }
        let is_reserved = ri.peek().is_some_and(|r| **r == n);
        cells.push(cell(network, s, ip, lease, is_reserved, now));
    }
    let counts = KINDS
        .iter()
        .map(|(c, name)| (*c, *name, cells.chars().filter(|x| x == c).count() as u64))
        .collect();
    Grid {
        subnet: s.network.to_string(),
        first: Ipv4Addr::from(start).to_string(),
        size: u64::from(hi - lo) + 1,
        cells,
        next: (end < hi).then(|| Ipv4Addr::from(end + 1).to_string()),
        counts,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use leased_core::{ClientId, HwAddr};

    const CONFIG: &str = r#"
[banned_macs]
"02:00:00:00:00:bb" = { note = "stolen" }

[[subnets]]
network = "198.18.0.0/28"
routers = ["198.18.0.1"]
pools = ["198.18.0.2-198.18.0.12"]
exclusions = ["198.18.0.12-198.18.0.12"]

[[reservations]]
mac = "02:00:00:00:00:aa"
ip = "198.18.0.9"
"#;

    fn lease(last: u8, mac: u8, state: LeaseState, expires: u64) -> Lease {
        let hw = vec![2, 0, 0, 0, 0, mac];
        Lease {
            ip: Ipv4Addr::new(198, 18, 0, last),
            client_id: ClientId(std::iter::once(1).chain(hw.iter().copied()).collect()),
            hwaddr: HwAddr(hw),
            hostname: None,
            state,
            starts: Timestamp(0),
            expires: Timestamp(expires),
            first_seen: Timestamp(0),
            circuit_id: None,
            remote_id: None,
            subscriber_id: None,
        }
    }

    #[test]
    fn every_kind_in_place() {
        let c = leased_config::load_str(CONFIG, "t", leased_config::Format::Toml)
            .unwrap()
            .network;
        let now = Timestamp(1000);
        let leases = vec![
            lease(2, 4, LeaseState::Released, 500),
            lease(3, 1, LeaseState::Bound, 2000),
            lease(4, 0xbb, LeaseState::Bound, 2000),
            lease(5, 3, LeaseState::Expired, 900),
            lease(6, 5, LeaseState::Declined, 2000),
            lease(7, 6, LeaseState::Offered, 2000),
            lease(8, 7, LeaseState::Bound, 999),
        ];
        let g = grid(&c, &c.subnets[0], &leases, now, None);
        // .0 network, .1 router, .2 released, .3 bound, .4 banned MAC, .5 expired, .6 declined,
        // .7 offered, .8 bound but past its end, .9 reserved, .10-.11 unused, .12 excluded,
        // .13-.14 outside the pool, .15 broadcast.
        assert_eq!(g.cells, "XXELMEDOER..X  X");
        assert_eq!(g.first, "198.18.0.0");
        assert_eq!((g.size, g.next.as_deref()), (16, None));
        let count = |k: char| g.counts.iter().find(|(c, _, _)| *c == k).unwrap().2;
        assert_eq!(
            (count('X'), count('E'), count('.'), count(' ')),
            (4, 3, 2, 2)
        );
        let cli: String = g.cells.chars().map(cli_glyph).collect();
        assert_eq!(cli, "XX.LM.XL.R..X  X");
    }

    #[test]
    fn pages_of_a_large_subnet() {
        let text =
            "[[subnets]]\nnetwork = \"198.18.0.0/15\"\npools = [\"198.18.0.10-198.19.0.10\"]\n";
        let c = leased_config::load_str(text, "t", leased_config::Format::Toml)
            .unwrap()
            .network;
        let s = &c.subnets[0];
        let g = grid(&c, s, &[], Timestamp(0), None);
        assert_eq!(
            (g.cells.len() as u64, g.size, g.next),
            (MAX_CELLS, MAX_CELLS, None)
        );
        let p = page(&c, s, &[], Timestamp(0), None, 100_000);
        assert_eq!(p.next.as_deref(), Some("198.19.134.160"));
        let p2 = page(
            &c,
            s,
            &[],
            Timestamp(0),
            Some(Ipv4Addr::new(198, 19, 255, 0)),
            100_000,
        );
        assert_eq!((p2.cells.len(), p2.next), (256, None));
        // `from` outside the subnet starts at its beginning.
        let p3 = page(
            &c,
            s,
            &[],
            Timestamp(0),
            Some(Ipv4Addr::new(198, 30, 0, 0)),
            10,
        );
        assert_eq!(p3.first, "198.18.0.0");
    }
}
