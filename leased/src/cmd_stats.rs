//! `leased stats`: allocation counts, a per-address table (`--details`) and a block grid of
//! every subnet (`--grid`), over the running server's API or the lease store.
//!
//! Rendering is a pure function of (config, leases, now), so tests compare whole tables: the
//! clock can be pinned with the hidden `--now`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::Ipv4Addr;
use std::process::ExitCode;

use leased_config::{Config, ReservationKey, Subnet};
use leased_core::{Lease, LeaseState, Timestamp};

use crate::cli::StatsArgs;
use crate::timefmt::{human_secs, iso8601};

/// The allocation windows of the summary.
const WINDOWS: [(&str, u64); 5] = [
    ("1m", 60),
    ("1h", 3600),
    ("24h", 86_400),
    ("7d", 7 * 86_400),
    ("30d", 30 * 86_400),
];

/// Runs `leased stats`.
pub fn run(args: &StatsArgs) -> anyhow::Result<ExitCode> {
    let config = leased_config::load(&args.config)?;
    let table = crate::view::load(&config, args.store.as_deref(), args.from)?;
    eprintln!("(leases from the {})", table.source);
    let now = args.now.map_or_else(crate::cmd_manage::unix_now, Timestamp);
    let text = if args.details {
        render_details(&config, &table.leases, now)
    } else if args.grid {
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(80);
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = !no_color && std::io::stdout().is_terminal();
        render_grid(&config, &table.leases, now, columns, color)
    } else {
        render_summary(&table.leases, now, args.expiring)
    };
    crate::emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// A bound lease that has not run out.
fn is_current(l: &Lease, now: Timestamp) -> bool {
    l.state == LeaseState::Bound && l.expires > now
}

/// The allocation summary: new bindings per window, then current / expiring / expired.
///
/// An allocation is a client getting an address it did not hold before: its `first_seen`
/// (renewals do not count again). "Expiring" is a current lease ending within `expiring`
/// seconds; "expired" is a lease record past its end (or marked expired or released).
pub fn render_summary(leases: &[Lease], now: Timestamp, expiring: u64) -> String {
    let allocated = |l: &Lease| {
        if l.first_seen.0 != 0 {
            l.first_seen
        } else {
            l.starts
        }
    };
    let held = |l: &Lease| !matches!(l.state, LeaseState::Offered | LeaseState::Declined);
    let mut out = String::from("Allocations in the last\n");
    let mut head = String::new();
    let mut vals = String::new();
    for (name, secs) in WINDOWS {
        let n = leases
            .iter()
            .filter(|l| held(l) && allocated(l).0 <= now.0 && now.0 - allocated(l).0 < secs)
            .count();
        let w = name.len().max(n.to_string().len()) + 2;
        head.push_str(&format!("{name:<w$}"));
        vals.push_str(&format!("{n:<w$}"));
    }
    out.push_str(&format!("  {}\n  {}\n\n", head.trim_end(), vals.trim_end()));
    let current = leases.iter().filter(|l| is_current(l, now)).count();
    let soon = leases
        .iter()
        .filter(|l| is_current(l, now) && l.expires.0 - now.0 <= expiring)
        .count();
    let expired = leases
        .iter()
        .filter(|l| {
            matches!(l.state, LeaseState::Expired | LeaseState::Released)
                || (l.state == LeaseState::Bound && l.expires <= now)
        })
        .count();
    out.push_str("Leases\n");
    out.push_str(&format!("  current   {current}\n"));
    out.push_str(&format!(
        "  expiring  {soon}   (ending within {})\n",
        human_secs(expiring)
    ));
    out.push_str(&format!("  expired   {expired}\n"));
    out
}

/// What an address is, for `--details` and `--grid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Held by a client (bound or offered, not past its end).
    Leased,
    /// Reserved in the config and not currently leased.
    Reserved,
    /// Held by a banned MAC.
    BannedMac,
    /// Never handed out: network, broadcast, router, server id, exclusion, or quarantined
    /// after a DECLINE.
    BannedIp,
    /// In a pool and free.
    Unused,
    /// In the subnet but outside its pools (grid only).
    Outside,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Leased => "leased",
            Kind::Reserved => "reserved",
            Kind::BannedMac => "banned-mac",
            Kind::BannedIp => "banned-ip",
            Kind::Unused => "unused",
            Kind::Outside => "outside",
        }
    }

    /// The grid's character without colours.
    fn glyph(self) -> char {
        match self {
            Kind::Leased => 'L',
            Kind::Reserved => 'R',
            Kind::BannedMac => 'M',
            Kind::BannedIp => 'X',
            Kind::Unused => '.',
            Kind::Outside => ' ',
        }
    }

    /// ANSI colour of the grid block (green free, red leased, brown reserved, light grey
    /// banned MAC, dark grey banned address: dhcplane's palette).
    fn ansi(self) -> &'static str {
        match self {
            Kind::Leased => "31",
            Kind::Reserved => "33",
            Kind::BannedMac => "37",
            Kind::BannedIp => "90",
            Kind::Unused => "32",
            Kind::Outside => "2",
        }
    }
}

/// One address classified, with what is known about it.
#[derive(Debug, Clone)]
struct Row<'a> {
    ip: Ipv4Addr,
    kind: Kind,
    lease: Option<&'a Lease>,
    mac: Option<String>,
    note: Option<String>,
}

/// Why an address is never handed out, if it is not.
fn banned_reason(s: &Subnet, ip: Ipv4Addr) -> Option<&'static str> {
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

/// Classifies every address of `subnet`.
fn classify<'a>(config: &Config, s: &Subnet, leases: &'a [Lease], now: Timestamp) -> Vec<Row<'a>> {
    let by_ip: BTreeMap<Ipv4Addr, &Lease> = leases
        .iter()
        .filter(|l| s.network.contains(&l.ip))
        .map(|l| (l.ip, l))
        .collect();
    let lo = u32::from(s.network.network());
    let hi = u32::from(s.network.broadcast());
    let mut rows = Vec::new();
    for n in lo..=hi {
        let ip = Ipv4Addr::from(n);
        let lease = by_ip.get(&ip).copied();
        let live = lease.filter(|l| l.is_active(now));
        let reservation = s.reservations.iter().find(|r| r.ip == ip);
        let in_pool = s.pools.iter().any(|p| p.contains(ip));
        let res_mac = reservation.and_then(|r| match &r.key {
            ReservationKey::Mac(m) => Some(m.to_string()),
            _ => None,
        });
        let (kind, note, mac) = match (live, reservation) {
            (Some(l), _) if l.state == LeaseState::Declined => {
                (Kind::BannedIp, Some("declined".to_string()), None)
            }
            (Some(l), _) if config.network.banned_macs.contains_key(&l.hwaddr) => (
                Kind::BannedMac,
                l.hostname.clone(),
                Some(l.hwaddr.to_string()),
            ),
            (Some(l), _) => (Kind::Leased, l.hostname.clone(), Some(l.hwaddr.to_string())),
            (None, Some(r)) => (
                Kind::Reserved,
                r.hostname.clone().or_else(|| r.metadata.note.clone()),
                res_mac,
            ),
            (None, None) => match banned_reason(s, ip) {
                Some(why) => (Kind::BannedIp, Some(why.to_string()), None),
                None if in_pool => (Kind::Unused, None, None),
                None => (Kind::Outside, None, None),
            },
        };
        rows.push(Row {
            ip,
            kind,
            lease: live.or(lease.filter(|_| kind == Kind::Unused)),
            mac,
            note,
        });
    }
    rows
}

/// The `--details` table: IP Type MAC AllocatedAt Elapsed Remaining Hostname, every address
/// that is leased, reserved, banned or unused, sorted numerically.
pub fn render_details(config: &Config, leases: &[Lease], now: Timestamp) -> String {
    const HEADER: [&str; 7] = [
        "IP",
        "Type",
        "MAC",
        "AllocatedAt",
        "Elapsed",
        "Remaining",
        "Hostname",
    ];
    let mut all: Vec<Row<'_>> = config
        .network
        .subnets
        .iter()
        .flat_map(|s| classify(config, s, leases, now))
        .filter(|r| r.kind != Kind::Outside)
        .collect();
    all.sort_by_key(|r| u32::from(r.ip));
    all.dedup_by_key(|r| r.ip);
    let dash = || "-".to_string();
    let rows: Vec<[String; 7]> = all
        .iter()
        .map(|r| {
            let live = r.lease.filter(|l| l.is_active(now));
            [
                r.ip.to_string(),
                r.kind.name().to_string(),
                r.mac.clone().unwrap_or_else(dash),
                live.map_or_else(dash, |l| iso8601(l.starts.0)),
                live.map_or_else(dash, |l| human_secs(now.0.saturating_sub(l.starts.0))),
                live.map_or_else(dash, |l| human_secs(l.expires.0.saturating_sub(now.0))),
                r.note
                    .as_deref()
                    .map(|h| {
                        h.chars()
                            .map(|c| if c.is_control() { '?' } else { c })
                            .collect()
                    })
                    .unwrap_or_else(dash),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&HEADER.map(String::from));
    for row in &rows {
        line(row);
    }
    out
}

/// Cells per grid row: the largest power of two that fits beside the 16-column address label
/// (so every row starts at an aligned address), between 8 and 128.
fn cells_per_row(columns: usize) -> usize {
    let room = columns.saturating_sub(16).max(8);
    let mut n = 8;
    while n * 2 <= room && n < 128 {
        n *= 2;
    }
    n
}

/// The `--grid`: one block per address of each subnet, a row label with the row's first
/// address, and a legend with the count of each kind. Without colour, letters stand in.
pub fn render_grid(
    config: &Config,
    leases: &[Lease],
    now: Timestamp,
    columns: usize,
    color: bool,
) -> String {
    let per_row = cells_per_row(columns);
    let order = [
        Kind::Leased,
        Kind::Reserved,
        Kind::BannedMac,
        Kind::BannedIp,
        Kind::Unused,
        Kind::Outside,
    ];
    let cell = |k: Kind| {
        if color {
            format!("\x1b[{}m\u{2588}\x1b[0m", k.ansi())
        } else {
            k.glyph().to_string()
        }
    };
    let mut out = String::new();
    for s in &config.network.subnets {
        let rows = classify(config, s, leases, now);
        out.push_str(&format!("{}\n", s.network));
        for chunk in rows.chunks(per_row) {
            let Some(first) = chunk.first() else { continue };
            let mut line = format!("{:<16}", first.ip.to_string());
            for r in chunk {
                line.push_str(&cell(r.kind));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let mut legend = Vec::new();
        for k in order {
            let n = rows.iter().filter(|r| r.kind == k).count();
            let sample = if k == Kind::Outside && !color {
                "' '".to_string()
            } else {
                cell(k)
            };
            legend.push(format!("{sample} {} {n}", k.name()));
        }
        out.push_str(&format!("  {}\n\n", legend.join("   ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_widths() {
        assert_eq!(cells_per_row(80), 64);
        assert_eq!(cells_per_row(0), 8);
        assert_eq!(cells_per_row(500), 128);
        assert_eq!(cells_per_row(47), 16);
    }

    #[test]
    fn colour_cells_are_ansi() {
        let c = leased_config::load_str(
            "[[subnets]]\nnetwork = \"198.18.0.0/29\"\npools = [\"198.18.0.2-198.18.0.5\"]\n",
            "t",
            leased_config::Format::Toml,
        )
        .unwrap();
        let g = render_grid(&c, &[], Timestamp(0), 80, true);
        assert!(g.contains("\x1b[32m\u{2588}\x1b[0m"), "{g:?}");
        let plain = render_grid(&c, &[], Timestamp(0), 80, false);
        assert!(plain.contains("198.18.0.0      X .... X"), "{plain}");
    }
}
