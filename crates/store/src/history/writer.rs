//! The history writer thread: group writes and group fsyncs, off the DHCP path.
//!
//! One OS thread owns the [`HistoryFile`]. It blocks until records arrive, appends everything
//! queued in one write, and fsyncs when the previous fsync is at least
//! [`HISTORY_SYNC_INTERVAL`] old — at once after a quiet spell, so an idle server's record is
//! durable within milliseconds, and under load every interval, so the records an fsync covers
//! grow with the load while the fsync rate stays bounded. A power cut loses at most the
//! records of the last interval (plus one fsync's duration).
//!
//! A failed write (a full disk) keeps its records and tries them again every
//! [`HISTORY_RETRY_EVERY`], up to [`HISTORY_RETRY_CAP`] of them; beyond that, new records are
//! dropped and counted. A failed fsync is counted and its records are never reported durable.
//! When the file is moved away (a log rotation), its last records are synced where they are
//! and the next ones go to a new file at the same path, created with the same mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{HistoryFile, HistoryRecord};

/// The longest a written record waits for its fsync while the writer is busy (an idle writer
/// fsyncs at once). Bounds what a power cut takes from the audit trail: well inside a second.
pub const HISTORY_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// How often records whose write failed are tried again.
pub const HISTORY_RETRY_EVERY: Duration = Duration::from_secs(1);

/// Records held for another try after failed writes (about 16 MiB); newer ones are dropped.
pub const HISTORY_RETRY_CAP: usize = 65_536;

/// Batches the writer's queue holds before [`HistoryWriter::try_submit`] reports it full.
pub const HISTORY_QUEUE_BATCHES: usize = 64;

/// What the history has done since start (shared with the metrics, which read it any time).
#[derive(Debug, Default)]
pub struct HistoryCounters {
    written: AtomicU64,
    durable: AtomicU64,
    fsyncs: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

/// A copy of [`HistoryCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Records written (to the file's page cache, or to the database).
    pub written: u64,
    /// Records known durable: covered by a completed fsync (or a committed SQL insert).
    pub durable: u64,
    /// Completed fsyncs of the history file.
    pub fsyncs: u64,
    /// Records lost before they could be written (a queue or the retry buffer full).
    pub dropped: u64,
    /// Failed writes and fsyncs.
    pub errors: u64,
}

impl HistoryCounters {
    /// The counts now.
    pub fn stats(&self) -> HistoryStats {
        HistoryStats {
            written: self.written.load(Ordering::Relaxed),
            durable: self.durable.load(Ordering::Relaxed),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// `n` records were dropped (by a caller's full queue, or here); returns the new total.
    pub fn add_dropped(&self, n: u64) -> u64 {
        self.dropped.fetch_add(n, Ordering::Relaxed) + n
    }

    /// `n` records were written and are durable at once (a committed database insert).
    pub fn add_durable(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
        self.durable.fetch_add(n, Ordering::Relaxed);
    }

    /// A write or sync failed (also for sinks other than the file).
    pub fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// The writer thread has stopped; nothing more can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the lease history writer has stopped")]
pub struct WriterClosed;

/// Why [`HistoryWriter::try_submit`] did not queue a batch.
#[derive(Debug)]
pub enum TrySubmitError {
    /// The queue is full; here is the batch back (try [`HistoryWriter::submit`], which waits).
    Full(Vec<HistoryRecord>),
    /// The thread has stopped.
    Closed,
}

/// A handle for queueing records to the writer thread. The thread writes and syncs what is
/// queued and exits once every handle is dropped.
#[derive(Debug, Clone)]
pub struct HistoryWriter {
    tx: SyncSender<Vec<HistoryRecord>>,
}

impl HistoryWriter {
    /// Starts the writer thread, which owns `file` from now on and counts into `counters`.
    /// Join the returned handle after dropping every `HistoryWriter` to know that everything
    /// queued is written and synced.
    pub fn spawn(
        file: HistoryFile,
        counters: Arc<HistoryCounters>,
    ) -> std::io::Result<(HistoryWriter, JoinHandle<()>)> {
        let (tx, rx) = mpsc::sync_channel(HISTORY_QUEUE_BATCHES);
        let join = std::thread::Builder::new()
            .name("lease-history".into())
            .spawn(move || run(file, &rx, &counters))?;
        Ok((HistoryWriter { tx }, join))
    }

    /// Queues `records` without waiting.
    pub fn try_submit(&self, records: Vec<HistoryRecord>) -> Result<(), TrySubmitError> {
        self.tx.try_send(records).map_err(|e| match e {
            TrySendError::Full(r) => TrySubmitError::Full(r),
            TrySendError::Disconnected(_) => TrySubmitError::Closed,
        })
    }

    /// Queues `records`, waiting while the queue is full (never call it where a reply waits).
    pub fn submit(&self, records: Vec<HistoryRecord>) -> Result<(), WriterClosed> {
        self.tx.send(records).map_err(|_| WriterClosed)
    }
}

/// The thread's state between wake-ups.
struct Writer<'a> {
    file: HistoryFile,
    counters: &'a HistoryCounters,
    /// Records received but not yet in the file (a failed write keeps them here).
    pending: Vec<HistoryRecord>,
    /// When the last write failed: the next try waits [`HISTORY_RETRY_EVERY`].
    failed_at: Option<Instant>,
    /// Records in the file that no fsync covers yet.
    unsynced: u64,
    last_sync: Option<Instant>,
    last_log: Option<Instant>,
}

fn run(file: HistoryFile, rx: &Receiver<Vec<HistoryRecord>>, counters: &HistoryCounters) {
    let mut w = Writer {
        file,
        counters,
        pending: Vec::new(),
        failed_at: None,
        unsynced: 0,
        last_sync: None,
        last_log: None,
    };
    let mut open = true;
    while open {
        let got = match w.deadline() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        match got {
            Ok(batch) => {
                w.take(batch);
                // Everything else already queued joins this write.
                while w.pending.len() < HISTORY_RETRY_CAP {
                    match rx.try_recv() {
                        Ok(more) => w.take(more),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        w.write(!open);
        w.sync(!open);
    }
    if !w.pending.is_empty() {
        let n = w.pending.len() as u64;
        counters.add_dropped(n);
        tracing::error!(records = n, path = %w.file.path().display(), "lease history records could not be written before shutdown");
    }
}

impl Writer<'_> {
    /// When the thread must wake up even if no record arrives: for the fsync due, or for the
    /// retry of a failed write.
    fn deadline(&self) -> Option<Instant> {
        let sync = (self.unsynced > 0).then(|| {
            self.last_sync
                .map_or_else(Instant::now, |t| t + HISTORY_SYNC_INTERVAL)
        });
        let retry = (!self.pending.is_empty()).then(|| {
            self.failed_at
                .map_or_else(Instant::now, |t| t + HISTORY_RETRY_EVERY)
        });
        match (sync, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn take(&mut self, batch: Vec<HistoryRecord>) {
        let room = HISTORY_RETRY_CAP.saturating_sub(self.pending.len());
        if batch.len() > room {
            let n = self.counters.add_dropped((batch.len() - room) as u64);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "lease history cannot be written: records dropped"
                );
            }
        }
        self.pending.extend(batch.into_iter().take(room));
    }

    /// Appends the pending records, unless a failed write is still waiting for its retry time
    /// (`now`: try anyway, at shutdown). A file moved away since the last write (a log
    /// rotation) gets its last records synced and is followed by a new one first.
    fn write(&mut self, now: bool) {
        if self.pending.is_empty()
            || (!now
                && self
                    .failed_at
                    .is_some_and(|t| t.elapsed() < HISTORY_RETRY_EVERY))
        {
            return;
        }
        if self.file.replaced() {
            match self.file.successor() {
                Ok(next) => {
                    self.sync(true);
                    self.file = next;
                    tracing::info!(
                        path = %self.file.path().display(),
                        "lease history file was moved away: writing a new one"
                    );
                }
                Err(e) => self.log_error(&e, "cannot open the new lease history file"),
            }
        }
        match self.file.append(&self.pending) {
            Ok(()) => {
                let n = self.pending.len() as u64;
                self.counters.written.fetch_add(n, Ordering::Relaxed);
                self.unsynced += n;
                self.pending.clear();
                if self.failed_at.take().is_some() {
                    tracing::info!(path = %self.file.path().display(), "lease history written again");
                }
            }
            Err(e) => {
                self.counters.add_error();
                self.failed_at = Some(Instant::now());
                self.log_error(&e, "lease history write failed; records kept for a retry");
            }
        }
    }

    /// Fsyncs if records wait for it and the last fsync is old enough (`now`: regardless).
    fn sync(&mut self, now: bool) {
        if self.unsynced == 0
            || (!now
                && self
                    .last_sync
                    .is_some_and(|t| t.elapsed() < HISTORY_SYNC_INTERVAL))
        {
            return;
        }
        self.last_sync = Some(Instant::now());
        let n = std::mem::take(&mut self.unsynced);
        match self.file.sync() {
            Ok(()) => {
                self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.counters.durable.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                // The kernel may have dropped the pages: never claim those records durable.
                self.counters.add_error();
                self.log_error(
                    &e,
                    "lease history fsync failed; the last records may be lost",
                );
            }
        }
    }

    /// Logs at most every 30 s while the trouble lasts.
    fn log_error(&mut self, e: &crate::StoreError, what: &str) {
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(30))
        {
            tracing::error!(error = %e, "{what}");
            self.last_log = Some(Instant::now());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::FileMode;
    use crate::history::{HistoryFilter, read_history};

    fn rec(n: u64) -> HistoryRecord {
        HistoryRecord {
            at: n,
            event: "release".into(),
            mac: "02:00:00:00:00:01".into(),
            client_id: "01".into(),
            ip: "198.18.0.1".into(),
            hostname: None,
            giaddr: None,
            circuit_id: None,
            remote_id: None,
        }
    }

    fn wait_for(mut f: impl FnMut() -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn an_idle_writers_record_is_synced_without_waiting_for_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        let file = HistoryFile::open(&path, FileMode::PRIVATE).unwrap();
        let counters = Arc::new(HistoryCounters::default());
        let (w, join) = HistoryWriter::spawn(file, Arc::clone(&counters)).unwrap();
        w.submit(vec![rec(1)]).unwrap();
        assert!(wait_for(|| counters.stats().durable == 1));
        assert_eq!(counters.stats().fsyncs, 1);
        // A second record, long after: synced on its own too.
        std::thread::sleep(HISTORY_SYNC_INTERVAL * 2);
        w.submit(vec![rec(2), rec(3)]).unwrap();
        assert!(wait_for(|| counters.stats().durable == 3));
        drop(w);
        join.join().unwrap();
        let s = counters.stats();
        assert_eq!((s.written, s.durable, s.fsyncs, s.dropped), (3, 3, 2, 0));
        let all = HistoryFilter {
            limit: 10,
            ..Default::default()
        };
        assert_eq!(read_history(&path, &all).unwrap().len(), 3);
    }

    #[test]
    fn a_rotated_file_is_followed_by_a_new_private_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        let file = HistoryFile::open(&path, FileMode::PRIVATE).unwrap();
        let counters = Arc::new(HistoryCounters::default());
        let (w, join) = HistoryWriter::spawn(file, Arc::clone(&counters)).unwrap();
        w.submit(vec![rec(1)]).unwrap();
        assert!(wait_for(|| counters.stats().durable == 1));
        std::fs::rename(&path, dir.path().join("h.1")).unwrap();
        w.submit(vec![rec(2)]).unwrap();
        drop(w);
        join.join().unwrap();
        let all = HistoryFilter {
            limit: 10,
            ..Default::default()
        };
        let at = |p: &std::path::Path| -> Vec<u64> {
            read_history(p, &all)
                .unwrap()
                .iter()
                .map(|r| r.at)
                .collect()
        };
        assert_eq!(at(&dir.path().join("h.1")), vec![1]);
        assert_eq!(at(&path), vec![2]);
        assert_eq!(crate::mode_of(&path).unwrap(), 0o600);
        assert_eq!(counters.stats().durable, 2);
    }

    #[test]
    fn everything_queued_is_synced_when_the_last_handle_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        let file = HistoryFile::open(&path, FileMode::PRIVATE).unwrap();
        let counters = Arc::new(HistoryCounters::default());
        let (w, join) = HistoryWriter::spawn(file, Arc::clone(&counters)).unwrap();
        for n in 0..2_000 {
            w.submit(vec![rec(n), rec(n)]).unwrap();
        }
        drop(w);
        join.join().unwrap();
        let s = counters.stats();
        assert_eq!((s.written, s.durable, s.dropped), (4_000, 4_000, 0));
        // Grouped: far fewer fsyncs than batches.
        assert!(s.fsyncs < 2_000, "{s:?}");
        let all = HistoryFilter {
            limit: usize::MAX,
            ..Default::default()
        };
        assert_eq!(read_history(&path, &all).unwrap().len(), 4_000);
    }
}
