//! The durable outbox: an append-only file of CRC'd records plus an acknowledged offset.
//!
//! Why: the seed cleared its batch table before uploading, so a failed upload lost data, and
//! the original re-sent nothing it had confirmed only because PostgreSQL rows were deleted
//! after a 2xx. Here a record leaves only when the destination answered 2xx for it, survives
//! restarts and power loss (fsync before an append returns), and is never sent again after
//! its 2xx (the offset is fsync'ed before the next upload).
//!
//! Layout of `dir/`:
//! - `log`: 8-byte header (`LXOB` + epoch, u32 LE), then records `len u32 LE | crc32 u32 LE |
//!   payload (JSON)`. A torn tail (short or bad CRC) from a crash is cut off at open.
//! - `ack`: `epoch u32 LE | offset u64 LE`, replaced atomically (write, fsync, rename).
//!
//! Compaction, once everything is acknowledged: a fresh `log` with epoch + 1 is renamed into
//! place, then `ack` is rewritten. A crash between the two leaves an `ack` with the old epoch,
//! which open reads as "nothing of the new log acknowledged" — right, as it holds only
//! unacknowledged records.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};

const MAGIC: &[u8; 4] = b"LXOB";
const HEADER: u64 = 8;
/// A record larger than this is corruption, not data.
const MAX_RECORD: u32 = 1 << 20;

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
}

/// How many whole records `data` (a run of records) holds.
fn count_records(data: &[u8]) -> usize {
    let mut n = 0usize;
    let mut pos = 0usize;
    while let Some(len) = data.get(pos..).and_then(le_u32) {
        let next = pos.saturating_add(8).saturating_add(len as usize);
        if next > data.len() {
            break;
        }
        pos = next;
        n += 1;
    }
    n
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn le_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?))
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let epoch = if data.len() < 8 || data.get(..4) != Some(MAGIC.as_slice()) {
            if !data.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a leased outbox", path.display()),
                ));
            }
            let mut h = MAGIC.to_vec();
            h.extend_from_slice(&1u32.to_le_bytes());
            file.write_all(&h)?;
            file.sync_all()?;
            sync_dir(dir)?;
            data = h;
            1
        } else {
            le_u32(data.get(4..).unwrap_or_default()).unwrap_or(1)
        };
        // Find the end of the last whole record.
        let mut end = HEADER as usize;
        while let Some(rec) = data.get(end..) {
            let (Some(len), Some(crc)) = (le_u32(rec), le_u32(rec.get(4..).unwrap_or_default()))
            else {
                break;
            };
            if len > MAX_RECORD {
                break;
            }
            let Some(payload) = rec.get(8..8 + len as usize) else {
                break;
            };
            if crc32fast::hash(payload) != crc {
                break;
            }
            end += 8 + len as usize;
        }
        if end < data.len() {
            tracing::warn!(dir = %dir.display(), kept = end, dropped = data.len() - end, "outbox: cut a torn tail");
            file.set_len(end as u64)?;
            file.sync_all()?;
        }
        let len = end as u64;
        let acked = match std::fs::read(dir.join("ack")) {
            Ok(b) if b.len() == 12 => {
                let e = le_u32(&b).unwrap_or(0);
                let off = u64::from_le_bytes(
                    b.get(4..12)
                        .and_then(|s| s.try_into().ok())
                        .unwrap_or([0; 8]),
                );
                if e == epoch {
                    off.clamp(HEADER, len)
                } else {
                    HEADER
                }
            }
            Ok(_) => HEADER,
            Err(e) if e.kind() == io::ErrorKind::NotFound => HEADER,
            Err(e) => return Err(e),
        };
        let pending_records = data
            .get(acked as usize..len as usize)
            .map_or(0, count_records);
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            epoch,
            acked,
            len,
            pending_records,
        })
    }

    /// The unacknowledged records of the outbox in `dir`, read without changing anything (for
    /// `leased export status` while the exporter runs: a record being appended right now is
    /// simply not counted yet). A missing outbox is empty.
    pub fn read_pending<T: DeserializeOwned>(dir: &Path) -> io::Result<Vec<T>> {
        let data = match std::fs::read(dir.join("log")) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if data.get(..4) != Some(MAGIC.as_slice()) {
            return Ok(Vec::new());
        }
        let epoch = le_u32(data.get(4..).unwrap_or_default()).unwrap_or(1);
        let acked = match std::fs::read(dir.join("ack")) {
            Ok(b) if b.len() == 12 && le_u32(&b) == Some(epoch) => u64::from_le_bytes(
                b.get(4..12)
                    .and_then(|s| s.try_into().ok())
                    .unwrap_or([0; 8]),
            ),
            _ => HEADER,
        };
        let mut pos = usize::try_from(acked.max(HEADER)).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while let Some(rec) = data.get(pos..) {
            let (Some(len), Some(crc)) = (le_u32(rec), le_u32(rec.get(4..).unwrap_or_default()))
            else {
                break;
            };
            let Some(payload) = rec.get(8..8 + len as usize) else {
                break;
            };
            if crc32fast::hash(payload) != crc {
                break;
            }
            if let Ok(v) = serde_json::from_slice(payload) {
                out.push(v);
            }
            pos += 8 + len as usize;
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
            let len = u32::try_from(payload.len()).map_err(io::Error::other)?;
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
    /// (what to [`Outbox::ack`] once it is delivered). Unreadable payloads are skipped.
    pub fn pending<T: DeserializeOwned>(&mut self, max: usize) -> io::Result<Vec<(u64, T)>> {
        let mut out = Vec::new();
        if self.acked >= self.len {
            return Ok(out);
        }
        self.file.seek(SeekFrom::Start(self.acked))?;
        let mut data = Vec::new();
        (&self.file)
            .take(self.len - self.acked)
            .read_to_end(&mut data)?;
        let mut pos = 0usize;
        while out.len() < max {
            let Some(rec) = data.get(pos..) else { break };
            let Some(len) = le_u32(rec) else { break };
            let Some(payload) = rec.get(8..8 + len as usize) else {
                break;
            };
            pos += 8 + len as usize;
            let end = self.acked + pos as u64;
            match serde_json::from_slice(payload) {
                Ok(v) => out.push((end, v)),
                Err(e) => tracing::warn!(error = %e, "outbox: unreadable record skipped"),
            }
        }
        Ok(out)
    }

    /// Number of unacknowledged records.
    pub fn depth(&mut self) -> io::Result<usize> {
        Ok(self.pending::<serde_json::Value>(usize::MAX)?.len())
    }

    /// Number of unacknowledged records, from memory (for the outbox-depth gauge, read after
    /// every append and upload, so it must not re-read the file).
    pub fn pending_records(&self) -> usize {
        self.pending_records
    }

    /// Marks everything before `offset` delivered (durably), compacting when all is.
    pub fn ack(&mut self, offset: u64) -> io::Result<()> {
        let offset = offset.clamp(HEADER, self.len);
        if offset <= self.acked {
            return Ok(());
        }
        // Records delivered by this acknowledgement, for the in-memory depth.
        let delivered = {
            self.file.seek(SeekFrom::Start(self.acked))?;
            let mut data = Vec::new();
            (&self.file)
                .take(offset - self.acked)
                .read_to_end(&mut data)?;
            count_records(&data)
        };
        if offset == self.len {
            // Everything delivered: start a fresh log with the next epoch.
            let epoch = self.epoch.wrapping_add(1).max(1);
            let mut h = MAGIC.to_vec();
            h.extend_from_slice(&epoch.to_le_bytes());
            write_atomic(&self.dir, "log", &h)?;
            self.file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(self.dir.join("log"))?;
            self.epoch = epoch;
            self.len = HEADER;
            self.acked = HEADER;
            self.pending_records = 0;
        } else {
            self.acked = offset;
            self.pending_records = self.pending_records.saturating_sub(delivered);
        }
        let mut a = self.epoch.to_le_bytes().to_vec();
        a.extend_from_slice(&self.acked.to_le_bytes());
        write_atomic(&self.dir, "ack", &a)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        assert_eq!(o.depth().unwrap(), 0);
        assert_eq!(o.pending_records(), 0);
        assert_eq!(
            std::fs::metadata(d.path().join("log")).unwrap().len(),
            HEADER
        );
        o.append(&[4u32]).unwrap();
        drop(o);
        let mut o = Outbox::open(d.path()).unwrap();
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
        assert_eq!(o.depth().unwrap(), 2);
        // An ack file from another epoch (crash during compaction) acknowledges nothing.
        let mut a = 99u32.to_le_bytes().to_vec();
        a.extend_from_slice(&1000u64.to_le_bytes());
        std::fs::write(d.path().join("ack"), a).unwrap();
        let mut o2 = Outbox::open(d.path()).unwrap();
        assert_eq!(o2.depth().unwrap(), 2);
        o.append(&[1u32]).unwrap();
        // Not an outbox at all.
        let e = tempfile::tempdir().unwrap();
        std::fs::write(e.path().join("log"), b"hello world").unwrap();
        assert!(Outbox::open(e.path()).is_err());
    }
}
