//! The lease history: one record per lease event (ACK of a new lease, renewal, RELEASE,
//! DECLINE, expiry, NAK), kept apart from the lease table because it only grows.
//!
//! Embedded: an append-only JSON-lines file next to the journal (`<store.path>.history`),
//! kept open by one writer thread ([`HistoryWriter`]) that appends records in groups and
//! fsyncs at least every [`HISTORY_SYNC_INTERVAL`], so a power cut costs at most the last
//! fraction of a second of the audit trail and never a lease (a record is written after the
//! lease change it tells of is durable, never before). A record is a line, and its newline is
//! what makes it complete: a record torn by a crash is cut when the file is next opened
//! ([`HistoryFile::open`]) and never shown by [`read_history`]. With an SQL store the records
//! go to `leased_history` instead (see `sql/history.rs`).

use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::StoreError;

mod file;
mod writer;

pub use file::HistoryFile;
pub use writer::{
    HISTORY_QUEUE_BATCHES, HISTORY_RETRY_CAP, HISTORY_RETRY_EVERY, HISTORY_SYNC_INTERVAL,
    HistoryCounters, HistoryStats, HistoryWriter, TrySubmitError, WriterClosed,
};

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

/// The longest line a record can take. Real records stay far below it (every field is bounded
/// by a DHCP option's 255 bytes); a longer "line" is damage, skipped without being held in
/// memory.
pub(crate) const MAX_LINE: usize = 64 * 1024;

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads the records of the file at `path` that pass `filter` (a missing file has none).
/// A last line without its newline (a record being written right now, or torn by a crash) is
/// not a record; a damaged line elsewhere is skipped.
pub fn read_history(path: &Path, filter: &HistoryFilter) -> Result<Vec<HistoryRecord>, StoreError> {
    if filter.limit == 0 {
        return Ok(Vec::new());
    }
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path, e)),
    };
    let mut out = Vec::new();
    for_each_line(&mut BufReader::new(f), |line| {
        if let Ok(r) = serde_json::from_slice::<HistoryRecord>(line)
            && filter.matches(&r)
        {
            out.push(r);
        }
        out.len() < filter.limit
    })
    .map_err(|e| io_err(path, e))?;
    Ok(out)
}

/// Calls `f` with every complete line of `r` (newline-terminated, at most [`MAX_LINE`] bytes),
/// without its newline, until `f` returns false.
pub(crate) fn for_each_line(
    r: &mut impl BufRead,
    mut f: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<()> {
    let cap = MAX_LINE as u64 + 1;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut *r).take(cap).read_until(b'\n', &mut line)?;
        if line.last() == Some(&b'\n') {
            line.pop();
            if !f(&line) {
                return Ok(());
            }
            continue;
        }
        if (n as u64) < cap {
            // The end of the file, inside a record that was never finished.
            return Ok(());
        }
        // Too long to be a record: skip to the next newline.
        loop {
            line.clear();
            let n = (&mut *r).take(cap).read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(());
            }
            if line.last() == Some(&b'\n') {
                break;
            }
        }
    }
}

/// One record as its line in the file (newline included).
pub(crate) fn encode_line(r: &HistoryRecord, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, r)?;
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(at: u64, mac: &str, ip: &str) -> HistoryRecord {
        HistoryRecord {
            at,
            event: "ack_new".into(),
            mac: mac.into(),
            client_id: "01".into(),
            ip: ip.into(),
            hostname: Some("x'); DROP TABLE users; --".into()),
            giaddr: None,
            circuit_id: None,
            remote_id: None,
        }
    }

    #[test]
    fn the_reader_skips_damage_and_an_unfinished_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        let mut bytes = Vec::new();
        encode_line(&rec(1, "02:00:00:00:00:01", "198.18.0.1"), &mut bytes).unwrap();
        bytes.extend_from_slice(b"\xff\xfe not json\n");
        bytes.extend(std::iter::repeat_n(b'x', MAX_LINE * 2));
        bytes.push(b'\n');
        encode_line(&rec(2, "02:00:00:00:00:02", "198.18.0.2"), &mut bytes).unwrap();
        let mut whole = Vec::new();
        encode_line(&rec(3, "02:00:00:00:00:03", "198.18.0.3"), &mut whole).unwrap();
        // The third record, complete but for its newline.
        bytes.extend_from_slice(&whole[..whole.len() - 1]);
        std::fs::write(&path, &bytes).unwrap();
        let all = HistoryFilter {
            limit: 100,
            ..Default::default()
        };
        let got: Vec<u64> = read_history(&path, &all)
            .unwrap()
            .iter()
            .map(|r| r.at)
            .collect();
        assert_eq!(got, vec![1, 2]);
    }
}
