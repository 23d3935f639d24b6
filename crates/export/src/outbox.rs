//! The durable outbox: an append-only file of CRC'd records plus an acknowledged offset.
//!
//! Why: dhcp-batcher cleared its batch table before uploading, so a failed upload lost data, and
//! the original re-sent nothing it had confirmed only because PostgreSQL rows were deleted
//! after a 2xx. Here a record leaves only when the destination answered 2xx for it, survives
//! restarts and power loss (fsync before an append returns), and is never sent again after
//! its 2xx (the offset is fsync'ed before the next upload).
//!
//! A backlog can be large (a destination down for days), so nothing here reads it whole: open
//! scans it record by record, and uploads read it through a [`ChunkReader`], one chunk at a
//! time. Every call does blocking file IO: callers on an async runtime run them on a blocking
//! thread.
//!
//! Layout of `dir/`:
//! - `log`: 8-byte header (`LXOB` + epoch, u32 LE), then records `len u32 LE | crc32 u32 LE |
//!   payload (JSON)`. A torn tail (short or bad CRC) from a crash is cut off at open.
//! - `ack`: `epoch u32 LE | offset u64 LE`, replaced atomically (write, fsync, rename).
//!
//! Both are created with [`Perms::file`] (owner-only by default; a wider existing file is
//! narrowed at open).
//!
//! Compaction, once everything is acknowledged: a fresh `log` with epoch + 1 is renamed into
//! place, then `ack` is rewritten. A crash between the two leaves an `ack` with the old epoch,
//! which open reads as "nothing of the new log acknowledged" — right, as it holds only
//! unacknowledged records.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};

use crate::files::{self, Perms};

const MAGIC: &[u8; 4] = b"LXOB";
const HEADER: u64 = 8;
/// A record larger than this is corruption, not data.
const MAX_RECORD: u32 = 1 << 20;
/// Read-ahead of a scan: all that a reader holds besides the chunk it returns.
pub const READ_BUFFER: usize = 64 * 1024;

/// One destination's durable queue.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    file: File,
    epoch: u32,
    acked: u64,
    len: u64,
    /// Unacknowledged records, kept so the depth gauge costs nothing to read.
    pending_records: usize,
    perms: Perms,
}

fn le_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?))
}

/// A file that counts what was read from it (so a test can see a reader's footprint).
#[derive(Debug)]
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counted<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// What a scan found next.
enum Step {
    /// A whole record; the payload is in the scanner's buffer (unless skipped).
    Record { crc_ok: bool },
    /// The end of the range, or a torn/oversized record (nothing more can be framed).
    End,
}

/// Walks records from a record boundary up to `end`, one at a time, reusing one buffer.
#[derive(Debug)]
struct Scanner<R> {
    r: BufReader<Counted<R>>,
    /// Offset of the next record.
    pos: u64,
    end: u64,
    payload: Vec<u8>,
}

impl<R: Read + Seek> Scanner<R> {
    /// `inner` must already be positioned at `pos`.
    fn new(inner: R, pos: u64, end: u64) -> Self {
        Self {
            r: BufReader::with_capacity(READ_BUFFER, Counted { inner, read: 0 }),
            pos,
            end,
            payload: Vec::new(),
        }
    }

    /// Reads the next record; with `skip`, seeks over its payload instead (no CRC check).
    fn step(&mut self, skip: bool) -> io::Result<Step> {
        if self.pos.saturating_add(8) > self.end {
            return Ok(Step::End);
        }
        let mut head = [0u8; 8];
        match self.r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Step::End),
            Err(e) => return Err(e),
        }
        let (Some(len), Some(crc)) = (le_u32(&head), le_u32(head.get(4..).unwrap_or_default()))
        else {
            return Ok(Step::End);
        };
        let next = self.pos + 8 + u64::from(len);
        if len > MAX_RECORD || next > self.end {
            return Ok(Step::End);
        }
        if skip {
            self.r.seek_relative(i64::from(len))?;
            self.pos = next;
            return Ok(Step::Record { crc_ok: true });
        }
        self.payload.resize(len as usize, 0);
        match self.r.read_exact(&mut self.payload) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Step::End),
            Err(e) => return Err(e),
        }
        self.pos = next;
        Ok(Step::Record {
            crc_ok: crc32fast::hash(&self.payload) == crc,
        })
    }
}

/// Header epoch and acknowledged offset of an outbox's files, read without changing them;
/// `None` when `log` is missing or not an outbox.
fn read_state(dir: &Path) -> io::Result<Option<(File, u32, u64, u64)>> {
    let mut file = match File::open(dir.join("log")) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut head = [0u8; 8];
    if len < HEADER || file.read_exact(&mut head).is_err() || head.get(..4) != Some(MAGIC) {
        return Ok(None);
    }
    let epoch = le_u32(head.get(4..).unwrap_or_default()).unwrap_or(1);
    let acked = read_ack(dir, epoch)?.clamp(HEADER, len);
    Ok(Some((file, epoch, acked, len)))
}

/// The acknowledged offset in `dir/ack` for `epoch` (the start when absent or of another epoch).
fn read_ack(dir: &Path, epoch: u32) -> io::Result<u64> {
    match std::fs::read(dir.join("ack")) {
        Ok(b) if b.len() == 12 && le_u32(&b) == Some(epoch) => Ok(u64::from_le_bytes(
            b.get(4..12)
                .and_then(|s| s.try_into().ok())
                .unwrap_or([0; 8]),
        )),
        Ok(_) => Ok(HEADER),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HEADER),
        Err(e) => Err(e),
    }
}

/// One chunk of unacknowledged records.
#[derive(Debug)]
pub struct Chunk<T> {
    /// The readable records, oldest first, each with the offset just after it.
    pub items: Vec<(u64, T)>,
    /// Offset just after the last record taken (unreadable ones included): what to
    /// acknowledge once the chunk is delivered.
    pub end: u64,
    /// Records taken, unreadable ones included.
    pub records: usize,
}

/// Reads an outbox's unacknowledged records a chunk at a time, through its own file handle
/// (the outbox may be appended to meanwhile; what was appended after the reader was made is
/// left for the next one). Holds one chunk and [`READ_BUFFER`] bytes of read-ahead, whatever
/// the backlog.
#[derive(Debug)]
pub struct ChunkReader {
    scan: Scanner<File>,
    epoch: u32,
    start: u64,
}

impl ChunkReader {
    /// Up to `max_records` records, stopping once their payloads reach `max_bytes` (so at most
    /// one record beyond it); `None` when nothing is left. Unreadable payloads are skipped
    /// (logged) but counted in [`Chunk::end`], so that acknowledging moves past them.
    pub fn next_chunk<T: DeserializeOwned>(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> io::Result<Option<Chunk<T>>> {
        let mut chunk = Chunk {
            items: Vec::new(),
            end: self.scan.pos,
            records: 0,
        };
        let mut bytes = 0usize;
        while chunk.records < max_records.max(1) && bytes < max_bytes.max(1) {
            match self.scan.step(false)? {
                Step::End => break,
                Step::Record { crc_ok } => {
                    chunk.records += 1;
                    chunk.end = self.scan.pos;
                    bytes = bytes.saturating_add(self.scan.payload.len());
                    if !crc_ok {
                        tracing::warn!("outbox: record with a bad checksum skipped");
                        continue;
                    }
                    match serde_json::from_slice(&self.scan.payload) {
                        Ok(v) => chunk.items.push((chunk.end, v)),
                        Err(e) => tracing::warn!(error = %e, "outbox: unreadable record skipped"),
                    }
                }
            }
        }
        Ok((chunk.records > 0).then_some(chunk))
    }

    /// The outbox epoch the offsets belong to (see [`Outbox::ack_read`]).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Bytes read from the file so far: at most what was returned plus [`READ_BUFFER`].
    pub fn bytes_read(&self) -> u64 {
        self.scan.r.get_ref().read
    }

    /// Bytes of records returned so far.
    pub fn bytes_consumed(&self) -> u64 {
        self.scan.pos - self.start
    }
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, owner-only, cutting off a torn tail.
    pub fn open(dir: &Path) -> io::Result<Self> {
        Self::open_with(dir, Perms::PRIVATE)
    }

    /// [`Outbox::open`] with the given modes for what it creates.
    pub fn open_with(dir: &Path, perms: Perms) -> io::Result<Self> {
        files::create_dir_all(dir, perms)?;
        let path = dir.join("log");
        let mut file = files::open_append(&path, perms)?;
        let flen = file.metadata()?.len();
        let epoch = if flen == 0 {
            let mut h = MAGIC.to_vec();
            h.extend_from_slice(&1u32.to_le_bytes());
            file.write_all(&h)?;
            file.sync_all()?;
            files::sync_dir(dir)?;
            1
        } else {
            let mut head = [0u8; 8];
            file.seek(SeekFrom::Start(0))?;
            if flen < HEADER || file.read_exact(&mut head).is_err() || head.get(..4) != Some(MAGIC)
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a leased outbox", path.display()),
                ));
            }
            le_u32(head.get(4..).unwrap_or_default()).unwrap_or(1)
        };
        let flen = flen.max(HEADER);
        let ack = read_ack(dir, epoch)?;
        // Find the end of the last whole record, counting those not yet acknowledged.
        let mut f = File::open(&path)?;
        f.seek(SeekFrom::Start(HEADER))?;
        let mut scan = Scanner::new(f, HEADER, flen);
        let mut pending_records = 0usize;
        loop {
            let start = scan.pos;
            match scan.step(false)? {
                Step::Record { crc_ok: true } => {
                    if start >= ack {
                        pending_records += 1;
                    }
                }
                Step::Record { crc_ok: false } => {
                    scan.pos = start;
                    break;
                }
                Step::End => break,
            }
        }
        let end = scan.pos;
        if end < flen {
            tracing::warn!(dir = %dir.display(), kept = end, dropped = flen - end, "outbox: cut a torn tail");
            file.set_len(end)?;
            file.sync_all()?;
        }
        let acked = ack.clamp(HEADER, end);
        if ack > end {
            pending_records = 0;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            epoch,
            acked,
            len: end,
            pending_records,
            perms,
        })
    }

    /// A reader of the records not yet acknowledged, as of now.
    pub fn reader(&self) -> io::Result<ChunkReader> {
        let mut f = File::open(self.dir.join("log"))?;
        f.seek(SeekFrom::Start(self.acked))?;
        Ok(ChunkReader {
            scan: Scanner::new(f, self.acked, self.len),
            epoch: self.epoch,
            start: self.acked,
        })
    }

    /// How many unacknowledged records the outbox in `dir` holds, read record by record
    /// without changing anything (for `leased export status` while the exporter runs: a
    /// record being appended right now is simply not counted yet). A missing outbox is empty.
    pub fn count_pending(dir: &Path) -> io::Result<usize> {
        let Some((mut file, _, acked, len)) = read_state(dir)? else {
            return Ok(0);
        };
        file.seek(SeekFrom::Start(acked))?;
        let mut scan = Scanner::new(file, acked, len);
        let mut n = 0usize;
        while let Step::Record { crc_ok: true } = scan.step(false)? {
            n += 1;
        }
        Ok(n)
    }

    /// Every unacknowledged record of the outbox in `dir`, read without changing anything.
    /// Holds the whole backlog: for tests and tools, never the upload path.
    pub fn read_pending<T: DeserializeOwned>(dir: &Path) -> io::Result<Vec<T>> {
        let Some((mut file, epoch, acked, len)) = read_state(dir)? else {
            return Ok(Vec::new());
        };
        file.seek(SeekFrom::Start(acked))?;
        let mut r = ChunkReader {
            scan: Scanner::new(file, acked, len),
            epoch,
            start: acked,
        };
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk::<T>(usize::MAX, usize::MAX)? {
            out.extend(c.items.into_iter().map(|(_, v)| v));
        }
        Ok(out)
    }

    /// Appends `items` and makes them durable before returning.
    pub fn append<T: Serialize>(&mut self, items: &[T]) -> io::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for it in items {
            let payload = serde_json::to_vec(it).map_err(io::Error::other)?;
            let len = u32::try_from(payload.len())
                .ok()
                .filter(|l| *l <= MAX_RECORD)
                .ok_or_else(|| io::Error::other("an outbox record is larger than 1 MiB"))?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            buf.extend_from_slice(&payload);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.len += buf.len() as u64;
        self.pending_records += items.len();
        Ok(())
    }

    /// Up to `max` unacknowledged records, oldest first, each with the offset just after it
    /// (what to [`Outbox::ack`] once it is delivered). Reads only those records.
    pub fn pending<T: DeserializeOwned>(&self, max: usize) -> io::Result<Vec<(u64, T)>> {
        Ok(self
            .reader()?
            .next_chunk(max, usize::MAX)?
            .map(|c| c.items)
            .unwrap_or_default())
    }

    /// Number of unacknowledged records, from memory (for the outbox-depth gauge, read after
    /// every append and upload, so it must not re-read the file).
    pub fn pending_records(&self) -> usize {
        self.pending_records
    }

    /// [`Outbox::ack`] of an offset from a [`ChunkReader`] of `epoch`; an offset of an epoch
    /// since compacted away acknowledges nothing (returns false).
    pub fn ack_read(&mut self, epoch: u32, offset: u64) -> io::Result<bool> {
        if epoch != self.epoch {
            return Ok(false);
        }
        self.ack(offset)?;
        Ok(true)
    }

    /// Marks everything before `offset` delivered (durably), compacting when all is.
    pub fn ack(&mut self, offset: u64) -> io::Result<()> {
        let offset = offset.clamp(HEADER, self.len);
        if offset <= self.acked {
            return Ok(());
        }
        if offset == self.len {
            // Everything delivered: start a fresh log with the next epoch.
            let epoch = self.epoch.wrapping_add(1).max(1);
            let mut h = MAGIC.to_vec();
            h.extend_from_slice(&epoch.to_le_bytes());
            files::write_atomic(&self.dir, "log", &h, self.perms)?;
            self.file = files::open_append(&self.dir.join("log"), self.perms)?;
            self.epoch = epoch;
            self.len = HEADER;
            self.acked = HEADER;
            self.pending_records = 0;
        } else {
            // Records delivered by this acknowledgement, for the in-memory depth.
            let mut f = File::open(self.dir.join("log"))?;
            f.seek(SeekFrom::Start(self.acked))?;
            let mut scan = Scanner::new(f, self.acked, offset);
            let mut delivered = 0usize;
            while let Step::Record { .. } = scan.step(true)? {
                delivered += 1;
            }
            self.acked = offset;
            self.pending_records = self.pending_records.saturating_sub(delivered);
        }
        let mut a = self.epoch.to_le_bytes().to_vec();
        a.extend_from_slice(&self.acked.to_le_bytes());
        files::write_atomic(&self.dir, "ack", &a, self.perms)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn append_ack_reopen_compact() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(d.path()).unwrap();
        o.append(&[1u32, 2, 3]).unwrap();
        assert_eq!(o.pending_records(), 3);
        let p: Vec<(u64, u32)> = o.pending(2).unwrap();
        assert_eq!(p.iter().map(|x| x.1).collect::<Vec<_>>(), vec![1, 2]);
        o.ack(p[1].0).unwrap();
        assert_eq!(o.pending_records(), 1);
        drop(o);
        let mut o = Outbox::open(d.path()).unwrap();
        assert_eq!(o.pending_records(), 1, "counted again at open");
        let p: Vec<(u64, u32)> = o.pending(10).unwrap();
        assert_eq!(p.iter().map(|x| x.1).collect::<Vec<_>>(), vec![3]);
        o.ack(p[0].0).unwrap();
        assert_eq!(Outbox::count_pending(d.path()).unwrap(), 0);
        assert_eq!(o.pending_records(), 0);
        assert_eq!(
            std::fs::metadata(d.path().join("log")).unwrap().len(),
            HEADER
        );
        o.append(&[4u32]).unwrap();
        drop(o);
        let o = Outbox::open(d.path()).unwrap();
        assert_eq!(
            o.pending::<u32>(10)
                .unwrap()
                .iter()
                .map(|x| x.1)
                .collect::<Vec<_>>(),
            vec![4]
        );
    }

    #[test]
    fn torn_tail_is_cut_and_old_epoch_ack_ignored() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(d.path()).unwrap();
        o.append(&[7u32, 8]).unwrap();
        drop(o);
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join("log"))
            .unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        let mut o = Outbox::open(d.path()).unwrap();
        assert_eq!(o.pending_records(), 2);
        assert_eq!(Outbox::count_pending(d.path()).unwrap(), 2);
        // An ack file from another epoch (crash during compaction) acknowledges nothing.
        let mut a = 99u32.to_le_bytes().to_vec();
        a.extend_from_slice(&1000u64.to_le_bytes());
        std::fs::write(d.path().join("ack"), a).unwrap();
        let o2 = Outbox::open(d.path()).unwrap();
        assert_eq!(o2.pending_records(), 2);
        o.append(&[1u32]).unwrap();
        // Not an outbox at all.
        let e = tempfile::tempdir().unwrap();
        std::fs::write(e.path().join("log"), b"hello world").unwrap();
        assert!(Outbox::open(e.path()).is_err());
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// A record of about 200 bytes, as a binding event is.
    fn record(i: usize) -> String {
        format!("{i:08}-{}", "x".repeat(190))
    }

    #[test]
    fn the_reader_holds_one_chunk_whatever_the_backlog() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(d.path()).unwrap();
        let all: Vec<String> = (0..20_000).map(record).collect();
        for part in all.chunks(1000) {
            o.append(part).unwrap();
        }
        let backlog = std::fs::metadata(d.path().join("log")).unwrap().len();
        assert!(backlog > 4_000_000, "a backlog of {backlog} bytes");
        let mut r = o.reader().unwrap();
        let mut seen = 0usize;
        let mut most_read_ahead = 0u64;
        while let Some(c) = r.next_chunk::<String>(500, usize::MAX).unwrap() {
            assert!(c.items.len() <= 500 && c.records == c.items.len());
            for (k, (_, v)) in c.items.iter().enumerate() {
                assert_eq!(*v, all[seen + k]);
            }
            seen += c.items.len();
            assert_eq!(c.end, c.items.last().unwrap().0);
            // What was read from the file is the chunk plus the fixed read-ahead, never more.
            let ahead = r.bytes_read() - r.bytes_consumed();
            assert!(ahead <= READ_BUFFER as u64, "read {ahead} bytes ahead");
            most_read_ahead = most_read_ahead.max(ahead);
            // Acknowledging as the sink does: the next reader starts after it.
            o.ack_read(r.epoch(), c.end).unwrap();
            assert_eq!(o.pending_records(), 20_000 - seen);
        }
        assert_eq!(seen, 20_000);
        assert!(most_read_ahead > 0);
        // Everything acknowledged: compacted to an empty log.
        assert_eq!(
            std::fs::metadata(d.path().join("log")).unwrap().len(),
            HEADER
        );
        // A stale offset from the old epoch acknowledges nothing in the new one.
        o.append(&[record(1)]).unwrap();
        assert!(!o.ack_read(r.epoch(), 1000).unwrap());
        assert_eq!(o.pending_records(), 1);
    }

    #[test]
    fn a_chunk_stops_at_its_byte_budget() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(d.path()).unwrap();
        o.append(&(0..100).map(record).collect::<Vec<_>>()).unwrap();
        let mut r = o.reader().unwrap();
        let c = r.next_chunk::<String>(1000, 1000).unwrap().unwrap();
        // 200-byte payloads: the fifth reaches 1000 bytes and ends the chunk.
        assert_eq!(c.items.len(), 5);
        let c = r.next_chunk::<String>(1000, usize::MAX).unwrap().unwrap();
        assert_eq!(c.items.len(), 95);
        assert!(r.next_chunk::<String>(1000, usize::MAX).unwrap().is_none());
    }

    #[test]
    fn files_are_owner_only_and_stay_so() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("sonar");
        let mut o = Outbox::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("log")), 0o600);
        o.append(&[1u32, 2]).unwrap();
        let p: Vec<(u64, u32)> = o.pending(1).unwrap();
        o.ack(p[0].0).unwrap();
        assert_eq!(mode(&dir.join("ack")), 0o600);
        // Compaction writes a new log: still 0600.
        o.ack(u64::MAX).unwrap();
        assert_eq!(mode(&dir.join("log")), 0o600);
        assert_eq!(mode(&dir.join("ack")), 0o600);
        drop(o);
        // A log left world-readable (by hand, or an older leased) is narrowed at open.
        std::fs::set_permissions(dir.join("log"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let _o = Outbox::open(&dir).unwrap();
        assert_eq!(mode(&dir.join("log")), 0o600);
    }
}
