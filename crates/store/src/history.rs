//! The lease history: one record per lease event (ACK of a new lease, renewal, RELEASE,
//! DECLINE, expiry, NAK), kept apart from the lease table because it only grows.
//!
//! Embedded: an append-only JSON-lines file next to the journal (`<store.path>.history`).
//! History is an audit trail, not a promise to a client, so it is written after the fact in
//! batches (no fsync per event; a crash may lose the last batch, never a lease). With an SQL
//! store the records go to `leased_history` instead (see `sql/history.rs`).

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// One lease event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Unix seconds.
    pub at: u64,
    /// `ack_new`, `renew`, `release`, `decline`, `expire` or `nak`.
    pub event: String,
    /// chaddr as `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The client identifier (option 61, else htype + chaddr) as hex.
    pub client_id: String,
    /// The lease's address (for a NAK: the address asked for, or 0.0.0.0).
    pub ip: String,
    /// Option 12 or the reservation's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The relay address when relayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub giaddr: Option<String>,
    /// Option 82 circuit-id, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    /// Option 82 remote-id, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
}

/// Which records `leased history` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only this MAC (`aa:bb:cc:dd:ee:ff` form).
    pub mac: Option<String>,
    /// Only this address.
    pub ip: Option<Ipv4Addr>,
    /// Only records at or after this Unix time.
    pub since: Option<u64>,
    /// At most this many (the oldest matching first).
    pub limit: usize,
}

impl HistoryFilter {
    /// True when `r` passes.
    pub fn matches(&self, r: &HistoryRecord) -> bool {
        self.mac
            .as_ref()
            .is_none_or(|m| m.eq_ignore_ascii_case(&r.mac))
            && self.ip.is_none_or(|ip| ip.to_string() == r.ip)
            && self.since.is_none_or(|s| r.at >= s)
    }
}

/// The history file beside an embedded journal.
pub fn history_path(journal: &Path) -> PathBuf {
    let mut p = journal.as_os_str().to_owned();
    p.push(".history");
    PathBuf::from(p)
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Appends `records` to the file at `path` (created when missing) in one write.
pub fn append_history(path: &Path, records: &[HistoryRecord]) -> Result<(), StoreError> {
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r).map_err(|e| io_err(path, e.into()))?;
        buf.push(b'\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.write_all(&buf).map_err(|e| io_err(path, e))
}

/// Reads the records of the file at `path` that pass `filter` (a missing file has none; a
/// torn last line from a crash is skipped).
pub fn read_history(path: &Path, filter: &HistoryFilter) -> Result<Vec<HistoryRecord>, StoreError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path, e)),
    };
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|e| io_err(path, e))?;
        if let Ok(r) = serde_json::from_str::<HistoryRecord>(&line)
            && filter.matches(&r)
        {
            out.push(r);
            if out.len() >= filter.limit {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn append_then_filter() {
        let dir = tempfile::tempdir().unwrap();
        let path = history_path(&dir.path().join("l.leases"));
        let rec = |at, mac: &str, ip: &str| HistoryRecord {
            at,
            event: "ack_new".into(),
            mac: mac.into(),
            client_id: "01".into(),
            ip: ip.into(),
            hostname: Some("x'); DROP TABLE users; --".into()),
            giaddr: None,
            circuit_id: None,
            remote_id: None,
        };
        append_history(&path, &[rec(1, "02:00:00:00:00:01", "198.18.0.10")]).unwrap();
        append_history(&path, &[rec(5, "02:00:00:00:00:02", "198.18.0.11")]).unwrap();
        let all = HistoryFilter {
            limit: 100,
            ..Default::default()
        };
        assert_eq!(read_history(&path, &all).unwrap().len(), 2);
        let by_mac = HistoryFilter {
            mac: Some("02:00:00:00:00:02".into()),
            ..all.clone()
        };
        assert_eq!(read_history(&path, &by_mac).unwrap()[0].ip, "198.18.0.11");
        let since = HistoryFilter {
            since: Some(2),
            ..all.clone()
        };
        assert_eq!(read_history(&path, &since).unwrap().len(), 1);
        let by_ip = HistoryFilter {
            ip: Some(Ipv4Addr::new(198, 18, 0, 10)),
            ..all
        };
        assert_eq!(read_history(&path, &by_ip).unwrap()[0].at, 1);
    }
}
