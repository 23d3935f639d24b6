//! The embedded journal store: append-only, checksummed records, fsync per group, snapshot
//! compaction. Nothing to install.
//!
//! The file format is described in `format.rs`: a 16-byte versioned header, then frames of
//! JSON-Lines leases, each frame length-prefixed and CRC-32-checked, one commit per frame (or a
//! run of frames ending with a "last" frame, for very large commits).
//!
//! Durability: a commit is one `write_all` and one `fdatasync`. Only after both succeed does
//! `commit` return `Ok` and update the in-memory map. A failed write is cut back off the file;
//! a failed fsync poisons the store, because after one the kernel may have dropped the dirty
//! pages and a later fsync could "succeed" without them.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use leased_core::{Lease, LeaseState};

use crate::format::{self, HEADER_LEN};
use crate::{FileMode, LeaseStore, StoreError};

/// The journal is compacted once it holds more than this many times as many records as there
/// are live leases (so it stays within a small constant factor of the live set)…
pub const COMPACT_RATIO: usize = 4;
/// …and more than this many records (so small tables are not rewritten every few commits).
pub const DEFAULT_COMPACT_FLOOR: usize = 10_000;

/// The default store: one journal file (plus a temporary file during compaction).
#[derive(Debug)]
pub struct EmbeddedStore {
    path: PathBuf,
    /// Open for append at `len`, exclusively `flock`ed (the lock lives as long as the handle).
    file: File,
    /// End of the last durable commit; the file cursor sits here.
    len: u64,
    /// Latest lease per address: what `load` returns and what compaction writes.
    map: HashMap<Ipv4Addr, Lease>,
    /// Lease records in the journal (snapshot records plus everything appended since).
    records: usize,
    compact_floor: usize,
    /// Set after a failed fsync; every later commit fails until the store is reopened.
    poisoned: bool,
    /// A compaction renamed the new file into place but could not sync the directory: every
    /// commit must sync it before it may claim durability.
    dir_sync_pending: bool,
    /// After a failed compaction, do not retry before the journal holds this many records
    /// (a full disk should not turn every commit into a failed snapshot write).
    compact_retry_at: usize,
    /// The mode of the journal and of the compaction file that replaces it.
    mode: FileMode,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the journal at `path`, recovering from a torn tail, and takes
    /// an exclusive lock so that two servers never share one file. The journal is readable by
    /// its owner only ([`FileMode::PRIVATE`]).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_mode(path, FileMode::default())
    }

    /// [`EmbeddedStore::open`] with the journal (and every compacted replacement) given `mode`;
    /// an existing journal with another mode is changed to it.
    pub fn open_with_mode(path: &Path, mode: FileMode) -> Result<Self, StoreError> {
        let file = lock_current_file(path, mode)?;
        // Only the lock holder may touch the compaction file: an unlocked opener could delete
        // the snapshot a running server is writing.
        remove_if_exists(&tmp_path(path)).map_err(|e| io_err(path, e))?;

        let replay = format::replay(&file, path)?;
        let mut store = Self {
            path: path.to_path_buf(),
            file,
            len: replay.good_len,
            map: replay.map,
            records: replay.records,
            compact_floor: DEFAULT_COMPACT_FLOOR,
            poisoned: false,
            dir_sync_pending: false,
            compact_retry_at: 0,
            mode,
        };
        if replay.needs_header {
            store.write_header()?;
        } else if replay.good_len < replay.file_len {
            tracing::warn!(
                path = %path.display(),
                torn_bytes = replay.file_len - replay.good_len,
                kept_bytes = replay.good_len,
                "lease journal ends in an incomplete commit (crash while writing); truncating it",
            );
            store
                .file
                .set_len(replay.good_len)
                .and_then(|()| store.file.sync_data())
                .map_err(|e| io_err(path, e))?;
        }
        store
            .file
            .seek(SeekFrom::Start(store.len))
            .map_err(|e| io_err(path, e))?;
        tracing::debug!(
            path = %path.display(),
            leases = store.map.len(),
            records = store.records,
            bytes = store.len,
            "lease journal opened",
        );
        Ok(store)
    }

    /// Reads the leases in a journal without locking or repairing it (for `leased leases` while
    /// a server is running). A torn tail is ignored.
    ///
    /// A missing file is an `Io` error (`NotFound`), so a mistyped path is not mistaken for an
    /// empty server. Leases are sorted by address.
    pub fn read_only(path: &Path) -> Result<Vec<Lease>, StoreError> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let replay = format::replay(&file, path)?;
        Ok(sorted(replay.map.into_values()))
    }

    /// Rewrites the journal as a snapshot of the live leases (dropping superseded records and
    /// `Offered` leases, which are never worth keeping), crash-safely: the snapshot is written
    /// to `<path>.tmp` and synced, then renamed over the journal, then the directory is synced.
    /// Until the rename the old journal is untouched, and a stale `.tmp` is removed by `open`.
    ///
    /// [`LeaseStore::commit`] calls this on its own when the journal holds more than
    /// `max(COMPACT_RATIO × live leases, compaction floor)` records; it is public for tools
    /// and tests.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.check_usable()?;
        let tmp = tmp_path(&self.path);
        let (file, len, records) = match self.write_snapshot(&tmp) {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&self.path, e));
        }
        // The path now names the new file, already locked by `file`; the old handle (and its
        // lock on the now-unlinked old file) goes away here.
        let before = self.len;
        self.file = file;
        self.len = len;
        self.records = records;
        self.map.retain(|_, l| l.state != LeaseState::Offered);
        if let Err(e) = sync_parent_dir(&self.path) {
            self.dir_sync_pending = true;
            return Err(io_err(&self.path, e));
        }
        tracing::info!(
            path = %self.path.display(),
            leases = records,
            bytes_before = before,
            bytes_after = len,
            "lease journal compacted",
        );
        Ok(())
    }

    /// Sets how many records the journal may hold before the ratio rule can trigger compaction
    /// (default [`DEFAULT_COMPACT_FLOOR`]). Mostly for tests and benchmarks.
    pub fn set_compact_floor(&mut self, floor: usize) {
        self.compact_floor = floor;
    }

    /// Lease records currently in the journal, superseded ones included (what compaction
    /// shrinks).
    pub fn journal_records(&self) -> usize {
        self.records
    }

    /// Distinct addresses with a lease (the live set).
    pub fn live_leases(&self) -> usize {
        self.map.len()
    }

    /// The journal's size in bytes (header plus durable commits).
    pub fn journal_bytes(&self) -> u64 {
        self.len
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Turns the open (locked, recovered) store into an appender that keeps no lease in
    /// memory, for bulk imports; the leases loaded so far are dropped.
    pub fn into_appender(self) -> Result<crate::JournalAppender, StoreError> {
        self.check_usable()?;
        if self.dir_sync_pending {
            sync_parent_dir(&self.path).map_err(|e| io_err(&self.path, e))?;
        }
        Ok(crate::JournalAppender {
            path: self.path,
            file: self.file,
            len: self.len,
            records: self.records,
            poisoned: false,
        })
    }

    fn check_usable(&self) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(io_err(
                &self.path,
                io::Error::other("an earlier fsync failed; reopen the store"),
            ));
        }
        Ok(())
    }

    /// Gives a fresh (or interrupted-creation) file its header, durably, before any commit.
    fn write_header(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let header = format::header();
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| self.file.write_all(&header))
            .and_then(|()| self.file.sync_all())
            .and_then(|()| sync_parent_dir(&path))
            .map_err(|e| io_err(&path, e))?;
        self.len = HEADER_LEN;
        Ok(())
    }

    /// Writes the live leases to `tmp`, synced and locked. Returns the file, its length and the
    /// number of records in it.
    fn write_snapshot(&self, tmp: &Path) -> Result<(File, u64, usize), StoreError> {
        let err = |e| io_err(tmp, e);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(true);
        self.mode.on_create(&mut opts);
        let file = opts.open(tmp).map_err(err)?;
        // Before a byte of lease data is in it: the rename makes this file the journal.
        self.mode.apply(&file, tmp);
        // Lock before the rename so that no other process can ever lock the file at `path`.
        file.try_lock().map_err(|e| match e {
            TryLockError::WouldBlock => StoreError::Locked {
                path: tmp.display().to_string(),
            },
            TryLockError::Error(e) => io_err(tmp, e),
        })?;
        let live = sorted(
            self.map
                .values()
                .filter(|l| l.state != LeaseState::Offered)
                .cloned(),
        );
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        out.write_all(&format::header()).map_err(err)?;
        let mut buf = Vec::new();
        let mut len = HEADER_LEN;
        // Chunks of independent commits keep the encoding buffer small; the snapshot is only
        // used once fully synced, so commit boundaries inside it do not matter.
        for chunk in live.chunks(4096) {
            buf.clear();
            format::encode_commit(chunk, &mut buf).map_err(|e| err(io::Error::other(e)))?;
            out.write_all(&buf).map_err(err)?;
            len += buf.len() as u64;
        }
        out.flush().map_err(err)?;
        drop(out);
        file.sync_all().map_err(err)?;
        Ok((file, len, live.len()))
    }

    fn needs_compaction(&self) -> bool {
        self.records >= self.compact_retry_at
            && self.records
                > self
                    .compact_floor
                    .max(COMPACT_RATIO.saturating_mul(self.map.len()))
    }
}

impl LeaseStore for EmbeddedStore {
    fn load(&mut self) -> Result<Vec<Lease>, StoreError> {
        Ok(sorted(self.map.values().cloned()))
    }

    fn commit(&mut self, leases: &[Lease]) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        self.check_usable()?;
        let mut buf = Vec::with_capacity(leases.len() * 256);
        format::encode_commit(leases, &mut buf)
            .map_err(|e| io_err(&self.path, io::Error::other(e)))?;

        if let Err(e) = self.file.write_all(&buf) {
            // Cut the partial frame off, or the next commit would follow damage and the journal
            // would no longer open.
            let restored = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop));
            if restored.is_err() {
                self.poisoned = true;
            }
            return Err(io_err(&self.path, e));
        }
        if let Err(e) = self.file.sync_data() {
            self.poisoned = true;
            return Err(io_err(&self.path, e));
        }
        // Durable in the file: replay would return these from now on, so the map must too.
        self.len += buf.len() as u64;
        self.records += leases.len();
        for lease in leases {
            self.map.insert(lease.ip, lease.clone());
        }
        if self.dir_sync_pending {
            sync_parent_dir(&self.path).map_err(|e| io_err(&self.path, e))?;
            self.dir_sync_pending = false;
        }

        if self.needs_compaction() {
            // The commit is already durable; a failed compaction only costs disk space.
            if let Err(e) = self.compact() {
                tracing::warn!(path = %self.path.display(), error = %e, "lease journal compaction failed");
                self.compact_retry_at = self
                    .records
                    .saturating_add(self.compact_floor.max(self.map.len()));
                if self.dir_sync_pending {
                    // The new file may not be reachable after power loss: nothing is durable
                    // until the directory sync succeeds.
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Opens and locks the file currently at `path`. Retries if a compaction by the previous holder
/// replaced the file between our open and our lock, so we never hold a lock on an unlinked file.
fn lock_current_file(path: &Path, mode: FileMode) -> Result<File, StoreError> {
    for _ in 0..16 {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        mode.on_create(&mut opts);
        let file = opts.open(path).map_err(|e| io_err(path, e))?;
        file.try_lock().map_err(|e| match e {
            TryLockError::WouldBlock => StoreError::Locked {
                path: path.display().to_string(),
            },
            TryLockError::Error(e) => io_err(path, e),
        })?;
        let ours = file.metadata().map_err(|e| io_err(path, e))?;
        match fs::metadata(path) {
            Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {
                mode.apply(&file, path);
                return Ok(file);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, e)),
        }
    }
    Err(io_err(
        path,
        io::Error::other("the journal kept being replaced while opening it"),
    ))
}

fn sorted(leases: impl Iterator<Item = Lease>) -> Vec<Lease> {
    let mut v: Vec<Lease> = leases.collect();
    v.sort_unstable_by_key(|l| l.ip);
    v
}

/// `<path>.tmp`, next to the journal so that the rename stays within one filesystem.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes a create or rename in `path`'s directory durable.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn io_err(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mode_of;
    use std::os::unix::fs::PermissionsExt;

    /// The compaction file holds the whole lease table before it becomes the journal: it is
    /// created with the journal's mode, and a leftover one with a wider mode is narrowed
    /// before a lease is written to it.
    #[test]
    fn the_compaction_file_has_the_journals_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.journal");
        for mode in [FileMode::PRIVATE, FileMode::GROUP_READ] {
            let store = EmbeddedStore::open_with_mode(&path, mode).unwrap();
            let tmp = tmp_path(&path);
            drop(store.write_snapshot(&tmp).unwrap());
            assert_eq!(mode_of(&tmp).unwrap(), mode.bits(), "created");
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o666)).unwrap();
            drop(store.write_snapshot(&tmp).unwrap());
            assert_eq!(mode_of(&tmp).unwrap(), mode.bits(), "a leftover narrowed");
            fs::remove_file(&tmp).unwrap();
        }
    }
}
