//! `leased history`: the lease events (ACK of a new lease, renewal, RELEASE, DECLINE, expiry,
//! NAK) the server recorded, from the embedded history file or from `leased_history` when the
//! store is an SQL database.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use clap::Args;
use leased_store::history::{HistoryFilter, HistoryRecord, history_path, read_history};

/// `leased history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Config file (its `[store]` says where the history is).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Only this client MAC (any of aa:bb:cc:dd:ee:ff, aa-bb-…, aabbccddeeff).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Only this address.
    #[arg(long, value_name = "IP")]
    pub ip: Option<Ipv4Addr>,
    /// Only events at or after T: Unix seconds, `YYYY-MM-DD[THH:MM:SS[Z]]` (UTC), or a
    /// duration ago (`90s`, `30m`, `12h`, `7d`).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// At most this many events (the oldest matching first).
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Normalises a MAC to the stored `aa:bb:cc:dd:ee:ff` form.
fn norm_mac(text: &str) -> anyhow::Result<String> {
    let hex: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Err(anyhow!("--mac {text:?} is not a MAC address"));
    }
    let lower = hex.to_ascii_lowercase();
    let parts: Vec<&str> = (0..lower.len())
        .step_by(2)
        .filter_map(|i| lower.get(i..i + 2))
        .collect();
    Ok(parts.join(":"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `--since`: Unix seconds, an ISO date(-time) in UTC, or a duration before `now`.
pub(crate) fn parse_since(text: &str, now: u64) -> anyhow::Result<u64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    if let Ok(d) = crate::timefmt::parse_duration(t) {
        return Ok(now.saturating_sub(u64::from(d)));
    }
    let bad = || {
        anyhow!(
            "--since {text:?}: expected Unix seconds, YYYY-MM-DD[THH:MM:SS] or a duration such as 12h"
        )
    };
    let t = t.trim_end_matches('Z');
    let (date, time) = t.split_once(['T', ' ']).unwrap_or((t, "00:00:00"));
    let num = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok()).ok_or_else(bad);
    let mut d = date.split('-');
    let (y, m, dd) = (num(d.next())?, num(d.next())?, num(d.next())?);
    let mut h = time.split(':');
    let (hh, mm) = (num(h.next())?, num(h.next().or(Some("0")))?);
    let ss = num(h.next().or(Some("0")))?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    let secs = days_from_civil(y, m, dd) * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs).map_err(|_| bad())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The table form: one line per event.
fn table(records: &[HistoryRecord]) -> String {
    let mut out = format!(
        "{:<20} {:<8} {:<17} {:<15} {:<15} {:<16} {:<12} {:<12} {}\n",
        "TIME", "EVENT", "MAC", "IP", "GIADDR", "HOSTNAME", "CIRCUIT", "REMOTE", "CLIENT-ID"
    );
    for r in records {
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<20} {:<8} {:<17} {:<15} {:<15} {:<16} {:<12} {:<12} {}\n",
            crate::timefmt::iso8601(r.at),
            r.event,
            r.mac,
            r.ip,
            dash(&r.giaddr),
            dash(&r.hostname),
            dash(&r.circuit_id),
            dash(&r.remote_id),
            r.client_id
        ));
    }
    out
}

/// Runs `leased history`.
pub fn run(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let cfg = leased_config::load(&args.config)?;
    let filter = HistoryFilter {
        mac: args.mac.as_deref().map(norm_mac).transpose()?,
        ip: args.ip,
        since: args
            .since
            .as_deref()
            .map(|s| parse_since(s, unix_now()))
            .transpose()?,
        limit: args.limit.max(1),
    };
    let records = match &cfg.store.sql {
        Some(sql) => {
            let url = leased_store::sql::expand_env(&sql.url).map_err(|e| anyhow!(e))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime")?;
            rt.block_on(async {
                let db = leased_store::sql::Db::connect_lazy(&url, 1)?;
                leased_store::sql::query_history(&db, &filter).await
            })
            .context("reading leased_history")?
        }
        None => {
            let path = history_path(&cfg.store.path);
            if !path.exists() {
                Vec::new()
            } else {
                read_history(&path, &filter).context("reading the history file")?
            }
        }
    };
    if args.json {
        let mut out = String::new();
        for r in &records {
            out.push_str(&serde_json::to_string(r).context("encoding JSON")?);
            out.push('\n');
        }
        crate::emit(&out)?;
    } else {
        crate::emit(&table(&records))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("1700000000", 0).unwrap(), 1_700_000_000);
        assert_eq!(parse_since("1h", 10_000).unwrap(), 6_400);
        assert_eq!(parse_since("1970-01-02", 0).unwrap(), 86_400);
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z", 0).unwrap(),
            1_700_000_000
        );
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("2023-13-01", 0).is_err());
    }

    #[test]
    fn macs_normalise() {
        assert_eq!(norm_mac("AA-BB-CC-00-11-22").unwrap(), "aa:bb:cc:00:11:22");
        assert_eq!(norm_mac("aabbcc001122").unwrap(), "aa:bb:cc:00:11:22");
        assert!(norm_mac("zz").is_err());
        assert!(norm_mac("abc").is_err());
    }
}
