//! `leased leases`: show what a lease store holds, as a table or JSON. Reads the journal without
//! locking it, so it works beside a running server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use leased_core::{Lease, LeaseState, Timestamp};
use leased_store::EmbeddedStore;
use serde_json::{Value, json};

use crate::cli::LeasesArgs;
use crate::timefmt::iso8601;

/// Prints the leases of `--store PATH`, or of the store named by the config's `[store] path`.
pub fn run(args: &LeasesArgs) -> anyhow::Result<ExitCode> {
    let path: PathBuf = match (&args.store, &args.config) {
        (Some(store), _) => store.clone(),
        (None, Some(config)) => leased_config::load(config)?.store.path,
        (None, None) => anyhow::bail!("give -c FILE or --store PATH"),
    };
    let mut leases = EmbeddedStore::read_only(&path)
        .with_context(|| format!("cannot read lease store {}", path.display()))?;
    sort_leases(&mut leases);
    if args.json {
        let text = serde_json::to_string_pretty(&leases_json(&leases))
            .context("cannot encode leases as JSON")?;
        crate::emit(&format!("{text}\n"))?;
    } else {
        crate::emit(&render_table(&leases))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Sorts numerically by address (so `.9` comes before `.10`).
pub fn sort_leases(leases: &mut [Lease]) {
    leases.sort_by_key(|l| u32::from(l.ip));
}

/// The lowercase state name used in tables and JSON (`bound`, `released`, …).
pub fn state_name(state: LeaseState) -> &'static str {
    match state {
        LeaseState::Offered => "offered",
        LeaseState::Bound => "bound",
        LeaseState::Released => "released",
        LeaseState::Expired => "expired",
        LeaseState::Declined => "declined",
    }
}

/// A timestamp for the table: ISO-8601 UTC, or `-` when unset (0).
fn when(t: Timestamp) -> String {
    if t.0 == 0 {
        "-".to_string()
    } else {
        iso8601(t.0)
    }
}

/// Lowercase hex without separators (client ids in JSON).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Renders the lease table, columns padded to their widest cell, one lease per line.
pub fn render_table(leases: &[Lease]) -> String {
    const HEADER: [&str; 7] = [
        "IP",
        "MAC",
        "Hostname",
        "State",
        "AllocatedAt",
        "Expiry",
        "FirstSeen",
    ];
    let rows: Vec<[String; 7]> = leases
        .iter()
        .map(|l| {
            [
                l.ip.to_string(),
                l.hwaddr.to_string(),
                l.hostname
                    .as_deref()
                    .map(sanitize)
                    .unwrap_or_else(|| "-".to_string()),
                state_name(l.state).to_string(),
                when(l.starts),
                when(l.expires),
                when(l.first_seen),
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
    if leases.is_empty() {
        out.push_str("(no leases)\n");
    }
    out
}

/// Keeps a client-supplied host name from breaking the table (control characters, newlines).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The JSON form: an array of objects with unix seconds and ISO strings side by side.
pub fn leases_json(leases: &[Lease]) -> Value {
    Value::Array(
        leases
            .iter()
            .map(|l| {
                json!({
                    "ip": l.ip.to_string(),
                    "mac": l.hwaddr.to_string(),
                    "client_id": hex(&l.client_id.0),
                    "hostname": l.hostname,
                    "state": state_name(l.state),
                    "starts": l.starts.0,
                    "starts_iso": iso8601(l.starts.0),
                    "expires": l.expires.0,
                    "expires_iso": iso8601(l.expires.0),
                    "first_seen": l.first_seen.0,
                    "first_seen_iso": iso8601(l.first_seen.0),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use leased_core::{ClientId, HwAddr};
    use std::net::Ipv4Addr;

    fn lease(ip: [u8; 4], last: u8, host: Option<&str>, state: LeaseState) -> Lease {
        Lease {
            ip: Ipv4Addr::from(ip),
            client_id: ClientId(vec![1, 2, 0, 0, 0, 0, last]),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, last]),
            hostname: host.map(String::from),
            state,
            starts: Timestamp(1_795_428_000),
            expires: Timestamp(1_795_431_600),
            first_seen: Timestamp(0),
            circuit_id: None,
            remote_id: None,
            subscriber_id: None,
        }
    }

    #[test]
    fn sorted_numerically() {
        let mut v = vec![
            lease([198, 18, 0, 100], 1, None, LeaseState::Bound),
            lease([198, 18, 0, 9], 2, None, LeaseState::Bound),
            lease([10, 0, 0, 1], 3, None, LeaseState::Bound),
        ];
        sort_leases(&mut v);
        let ips: Vec<String> = v.iter().map(|l| l.ip.to_string()).collect();
        assert_eq!(ips, ["10.0.0.1", "198.18.0.9", "198.18.0.100"]);
    }

    #[test]
    fn table_has_header_and_aligned_rows() {
        let v = vec![
            lease([198, 18, 0, 9], 16, Some("printer"), LeaseState::Bound),
            lease(
                [198, 18, 0, 100],
                17,
                Some("bad\nname"),
                LeaseState::Released,
            ),
        ];
        let t = render_table(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("IP "));
        for col in [
            "MAC",
            "Hostname",
            "State",
            "AllocatedAt",
            "Expiry",
            "FirstSeen",
        ] {
            assert!(lines[0].contains(col), "{col} missing");
        }
        assert!(lines[1].starts_with("198.18.0.9 "));
        assert!(lines[1].contains("02:00:00:00:00:10"));
        assert!(lines[1].contains("2026-11-23T10:00:00Z"));
        assert!(lines[1].contains("2026-11-23T11:00:00Z"));
        assert!(lines[1].ends_with('-'), "first_seen 0 shows as -");
        assert!(lines[2].contains("bad?name"));
        assert!(lines[2].contains("released"));
        // Columns line up: the MAC starts at the same offset on every row.
        let off = lines[0].find("MAC").unwrap();
        assert_eq!(lines[1].find("02:"), Some(off));
        assert_eq!(lines[2].find("02:"), Some(off));
    }

    #[test]
    fn empty_table_says_so() {
        assert!(render_table(&[]).contains("(no leases)"));
    }

    #[test]
    fn json_fields() {
        let v = leases_json(&[lease([198, 18, 0, 10], 16, Some("pc"), LeaseState::Bound)]);
        let o = &v[0];
        assert_eq!(o["ip"], "198.18.0.10");
        assert_eq!(o["mac"], "02:00:00:00:00:10");
        assert_eq!(o["client_id"], "01020000000010");
        assert_eq!(o["hostname"], "pc");
        assert_eq!(o["state"], "bound");
        assert_eq!(o["starts"], 1_795_428_000u64);
        assert_eq!(o["starts_iso"], "2026-11-23T10:00:00Z");
        assert_eq!(o["expires_iso"], "2026-11-23T11:00:00Z");
        assert_eq!(o["first_seen"], 0);
        let none = leases_json(&[lease([1, 1, 1, 1], 1, None, LeaseState::Declined)]);
        assert!(none[0]["hostname"].is_null());
        assert_eq!(none[0]["state"], "declined");
    }
}
