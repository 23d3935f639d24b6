//! The history file itself: opened once, its torn tail cut, appended to in whole lines.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{HistoryRecord, MAX_LINE, encode_line, io_err};
use crate::{FileMode, StoreError};

/// Bytes read at a time while looking backwards for the last complete record.
const SCAN_CHUNK: u64 = 64 * 1024;

/// The open history file. One process appends to it (the one holding the journal's lock);
/// readers may read it at any time.
#[derive(Debug)]
pub struct HistoryFile {
    path: PathBuf,
    file: File,
    mode: FileMode,
    /// `(dev, inode)` of the open file, to notice when `path` names another one (rotated).
    id: (u64, u64),
    /// A failed write left part of a record that could not be cut off: the next append starts
    /// with a newline so that its first record is a line of its own.
    dirty_tail: bool,
}

impl HistoryFile {
    /// Opens (creating with `mode`) the history at `path` for appending, gives an existing file
    /// `mode`, and cuts whatever follows the last complete record: a record torn by a crash,
    /// or the zeros a filesystem may leave where unsynced data was. Records before it are
    /// untouched.
    pub fn open(path: &Path, mode: FileMode) -> Result<Self, StoreError> {
        let err = |e| io_err(path, e);
        let mut opts = OpenOptions::new();
        opts.read(true).append(true).create(true);
        mode.on_create(&mut opts);
        let file = opts.open(path).map_err(err)?;
        mode.apply(&file, path);
        let meta = file.metadata().map_err(err)?;
        let len = meta.len();
        let good = complete_len(&file, len).map_err(err)?;
        if good < len {
            tracing::warn!(
                path = %path.display(),
                torn_bytes = len - good,
                kept_bytes = good,
                "lease history ends in an incomplete record (crash while writing); cutting it",
            );
            file.set_len(good)
                .and_then(|()| file.sync_data())
                .map_err(err)?;
        }
        if good == 0 {
            // A new (or emptied) file: its name must survive a power cut as well as its data.
            sync_parent_dir(path).map_err(err)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            mode,
            id: (meta.dev(), meta.ino()),
            dirty_tail: false,
        })
    }

    /// Appends `records` in one write. On failure (a full disk) nothing of them stays in the
    /// file, so the caller may try them again later.
    pub fn append(&mut self, records: &[HistoryRecord]) -> Result<(), StoreError> {
        let err = |e| io_err(&self.path, e);
        let mut buf = Vec::with_capacity(records.len() * 256 + 1);
        if self.dirty_tail {
            buf.push(b'\n');
        }
        for r in records {
            encode_line(r, &mut buf).map_err(|e| err(e.into()))?;
        }
        let start = self.file.metadata().map_err(err)?.len();
        if let Err(e) = self.file.write_all(&buf) {
            // Cut the partial write off, or the next record would be glued to it.
            match self.file.set_len(start) {
                Ok(()) => {}
                Err(_) => self.dirty_tail = true,
            }
            return Err(err(e));
        }
        self.dirty_tail = false;
        Ok(())
    }

    /// Makes everything appended so far durable (`fdatasync`).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(|e| io_err(&self.path, e))
    }

    /// True when `path` no longer names the open file (moved away by a log rotation, or
    /// deleted): appends would go where nobody looks.
    pub fn replaced(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != self.id,
            Err(_) => true,
        }
    }

    /// Opens the file now at `path` (a new one if there is none) with the same mode and rules
    /// as [`HistoryFile::open`], to take this one's place once it is synced: the records
    /// already written stay in the file they were written to.
    pub fn successor(&self) -> Result<HistoryFile, StoreError> {
        Self::open(&self.path, self.mode)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The length of the file up to and including the last complete record: the last line that
/// ends in a newline and holds a record. Anything after it is a torn record or garbage.
fn complete_len(file: &File, len: u64) -> io::Result<u64> {
    let mut end = len;
    while let Some(nl) = rfind_newline(file, end)? {
        let start = rfind_newline(file, nl)?.map_or(0, |p| p + 1);
        let line_len = nl - start;
        if line_len > 0 && line_len <= MAX_LINE as u64 {
            let mut line = vec![0u8; usize::try_from(line_len).unwrap_or(MAX_LINE)];
            file.read_exact_at(&mut line, start)?;
            if serde_json::from_slice::<HistoryRecord>(&line).is_ok() {
                return Ok(nl + 1);
            }
        }
        end = nl;
    }
    Ok(0)
}

/// The offset of the last newline before `before`, reading backwards in chunks.
fn rfind_newline(file: &File, before: u64) -> io::Result<Option<u64>> {
    let mut hi = before;
    let mut buf = Vec::new();
    while hi > 0 {
        let lo = hi.saturating_sub(SCAN_CHUNK);
        buf.resize(usize::try_from(hi - lo).unwrap_or(0), 0);
        file.read_exact_at(&mut buf, lo)?;
        if let Some(i) = buf.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(lo + i as u64));
        }
        hi = lo;
    }
    Ok(None)
}

/// Makes a file's creation in `path`'s directory durable.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::history::{HistoryFilter, read_history};
    use crate::mode::mode_of;
    use proptest::prelude::*;

    fn rec(n: u64, hostname: Option<String>) -> HistoryRecord {
        HistoryRecord {
            at: 1_000 + n,
            event: ["ack_new", "renew", "release", "decline", "expire", "nak"][n as usize % 6]
                .into(),
            mac: format!("02:00:00:00:{:02x}:{:02x}", n / 256 % 256, n % 256),
            client_id: format!("0102{n:08x}"),
            ip: format!("198.18.{}.{}", n / 256 % 256, n % 256),
            hostname,
            giaddr: n.is_multiple_of(2).then(|| "198.18.1.1".into()),
            circuit_id: n.is_multiple_of(3).then(|| "0a0b".into()),
            remote_id: None,
        }
    }

    fn all() -> HistoryFilter {
        HistoryFilter {
            limit: usize::MAX,
            ..Default::default()
        }
    }

    /// The byte offset where each record's line ends in a file made of `records`.
    fn line_ends(records: &[HistoryRecord]) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut buf = Vec::new();
        for r in records {
            encode_line(r, &mut buf).unwrap();
            ends.push(buf.len());
        }
        ends
    }

    /// Writes `records` through a `HistoryFile` (one append each, synced), then for every
    /// byte offset inside the last `torn` records cuts a copy there (a crash in the middle of
    /// a write) and checks: reading it shows exactly the records wholly before the cut;
    /// reopening cuts the torn tail and keeps them; appending after the reopen gives a file
    /// whose every line is a record, the new one last. `reopen_every`: the reopen (which
    /// fsyncs) runs at every that many cuts and next to every record boundary; the tail rule
    /// itself is checked at every cut.
    fn survives_every_cut(records: &[HistoryRecord], torn: usize, reopen_every: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.history");
        let mut f = HistoryFile::open(&path, FileMode::PRIVATE).unwrap();
        for r in records {
            f.append(std::slice::from_ref(r)).unwrap();
        }
        f.sync().unwrap();
        drop(f);
        let bytes = std::fs::read(&path).unwrap();
        let ends = line_ends(records);
        assert_eq!(ends.last().copied(), Some(bytes.len()));
        let first_torn = records.len().saturating_sub(torn);
        let from = if first_torn == 0 {
            0
        } else {
            ends[first_torn - 1]
        };
        let extra = rec(99_999, Some("after the crash".into()));
        let copy = dir.path().join("copy.history");
        for cut in from..=bytes.len() {
            std::fs::write(&copy, &bytes[..cut]).unwrap();
            let whole = ends.iter().take_while(|e| **e <= cut).count();
            let want = &records[..whole];
            assert_eq!(
                read_history(&copy, &all()).unwrap(),
                want,
                "read, cut at {cut}"
            );
            let kept = if whole == 0 { 0 } else { ends[whole - 1] };
            let file = File::open(&copy).unwrap();
            assert_eq!(complete_len(&file, cut as u64).unwrap(), kept as u64);
            let near_boundary = ends.iter().any(|e| e.abs_diff(cut) <= 1);
            if !near_boundary && cut % reopen_every != 0 {
                continue;
            }
            let mut f = HistoryFile::open(&copy, FileMode::PRIVATE).unwrap();
            assert_eq!(
                std::fs::metadata(&copy).unwrap().len(),
                kept as u64,
                "reopen cuts the torn tail at {cut}"
            );
            f.append(std::slice::from_ref(&extra)).unwrap();
            drop(f);
            let mut want = want.to_vec();
            want.push(extra.clone());
            assert_eq!(
                read_history(&copy, &all()).unwrap(),
                want,
                "append, cut at {cut}"
            );
            let text = std::fs::read(&copy).unwrap();
            assert!(text.ends_with(b"\n"));
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                serde_json::from_slice::<HistoryRecord>(line).unwrap();
            }
        }
    }

    #[test]
    fn a_crash_at_any_byte_of_the_last_records_loses_only_them() {
        let records: Vec<_> = (0..40)
            .map(|n| rec(n, (n % 4 == 1).then(|| format!("host-{n}"))))
            .collect();
        survives_every_cut(&records, 3, 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// Any host names (quotes, backslashes, control characters, newlines, non-ASCII), any
        /// number of records, any of them torn.
        #[test]
        fn torn_tails_of_any_records(
            names in prop::collection::vec(prop::option::of("(?s).{0,40}"), 1..12),
            torn in 1usize..4,
        ) {
            let records: Vec<_> = names
                .into_iter()
                .enumerate()
                .map(|(i, h)| rec(i as u64, h))
                .collect();
            survives_every_cut(&records, torn, 41);
        }
    }

    #[test]
    fn a_power_cut_tail_of_zeros_or_garbage_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        let mut bytes = Vec::new();
        for n in 0..3 {
            encode_line(&rec(n, None), &mut bytes).unwrap();
        }
        let good = bytes.len() as u64;
        // What a filesystem may show after power loss: the size grew, the data did not land
        // (zeros), or a later page landed before an earlier one (a line that is not a record).
        bytes.extend(std::iter::repeat_n(0u8, 3 * SCAN_CHUNK as usize + 17));
        bytes.extend_from_slice(b"\n\0\0\0\"ip\":\"198.18.0.9\"}\n\n");
        std::fs::write(&path, &bytes).unwrap();
        let mut f = HistoryFile::open(&path, FileMode::PRIVATE).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        f.append(&[rec(7, None)]).unwrap();
        let got: Vec<u64> = read_history(&path, &all())
            .unwrap()
            .iter()
            .map(|r| r.at)
            .collect();
        assert_eq!(got, vec![1000, 1001, 1002, 1007]);
        // Nothing complete at all: the file is emptied.
        std::fs::write(&path, [0u8; 100]).unwrap();
        drop(HistoryFile::open(&path, FileMode::PRIVATE).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn created_private_and_an_existing_file_is_narrowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        drop(HistoryFile::open(&path, FileMode::PRIVATE).unwrap());
        assert_eq!(mode_of(&path).unwrap(), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(HistoryFile::open(&path, FileMode::PRIVATE).unwrap());
        assert_eq!(mode_of(&path).unwrap(), 0o600);
        drop(HistoryFile::open(&path, FileMode::GROUP_READ).unwrap());
        assert_eq!(mode_of(&path).unwrap(), 0o640);
    }

    #[test]
    fn a_rotated_file_is_noticed_and_its_successor_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        let mut f = HistoryFile::open(&path, FileMode::PRIVATE).unwrap();
        f.append(&[rec(1, None)]).unwrap();
        assert!(!f.replaced());
        std::fs::rename(&path, dir.path().join("h.1")).unwrap();
        assert!(f.replaced());
        f.sync().unwrap();
        let mut f = f.successor().unwrap();
        assert!(!f.replaced());
        f.append(&[rec(2, None)]).unwrap();
        assert_eq!(mode_of(&path).unwrap(), 0o600);
        assert_eq!(read_history(&path, &all()).unwrap(), vec![rec(2, None)]);
        assert_eq!(
            read_history(&dir.path().join("h.1"), &all()).unwrap(),
            vec![rec(1, None)]
        );
    }
}
