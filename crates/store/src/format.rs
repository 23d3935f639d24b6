//! The on-disk journal format (version 1) and its replay.
//!
//! ```text
//! file   := header frame*
//! header := "LEASEDJ\n" version:u32le reserved:u32le          (16 bytes, version = 1)
//! frame  := len:u32le kind:u32le crc:u32le payload[len]
//!           crc = CRC-32 (crc32fast) of len ++ kind ++ payload
//!           kind 1 = last frame of a commit, 2 = a commit continues in the next frame
//! payload := (JSON(Lease) "\n")+                              (JSON Lines, one lease each)
//! ```
//!
//! A commit is one or more frames ending with a kind-1 frame; replay applies a commit only once
//! its last frame has been read, so a crash mid-write can never surface half a commit. The
//! payload is JSON so that `strings journal | less` is a debugging tool; the header version lets
//! a later build migrate to another payload encoding.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::net::Ipv4Addr;
use std::os::unix::fs::FileExt;
use std::path::Path;

use leased_core::Lease;

use crate::StoreError;

/// The first eight bytes of every journal.
pub(crate) const MAGIC: &[u8; 8] = b"LEASEDJ\n";
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Header length: magic, version, reserved.
pub(crate) const HEADER_LEN: u64 = 16;
/// Frame header length: len, kind, crc.
const FRAME_HEADER_LEN: usize = 12;
/// Frame kind: the last (often only) frame of a commit.
const KIND_FINAL: u32 = 1;
/// Frame kind: more frames of the same commit follow.
const KIND_CONTINUED: u32 = 2;
/// Frames are cut once their payload reaches this size, so a huge commit never needs a huge
/// frame (a single lease is a few hundred bytes, at most a few KiB).
const FRAME_TARGET: usize = 1 << 20;
/// A length field above this is not something this build wrote: treat the frame as damaged.
const MAX_FRAME_PAYLOAD: u32 = 8 << 20;

/// The 16-byte header of a version-1 journal.
pub(crate) fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Appends the frames of one commit of `leases` to `out`. Nothing is appended for no leases.
pub(crate) fn encode_commit<'a>(
    leases: impl IntoIterator<Item = &'a Lease>,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let mut payload = Vec::with_capacity(4096);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for lease in leases {
        serde_json::to_writer(&mut payload, lease)?;
        payload.push(b'\n');
        if payload.len() >= FRAME_TARGET {
            frames.push(std::mem::take(&mut payload));
        }
    }
    if !payload.is_empty() {
        frames.push(payload);
    }
    let last = frames.len().saturating_sub(1);
    for (i, p) in frames.iter().enumerate() {
        let kind = if i == last {
            KIND_FINAL
        } else {
            KIND_CONTINUED
        };
        push_frame(kind, p, out);
    }
    Ok(())
}

fn push_frame(kind: u32, payload: &[u8], out: &mut Vec<u8>) {
    // FRAME_TARGET plus one lease stays far below u32::MAX; saturate rather than wrap.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let len_b = len.to_le_bytes();
    let kind_b = kind.to_le_bytes();
    out.extend_from_slice(&len_b);
    out.extend_from_slice(&kind_b);
    out.extend_from_slice(&frame_crc(&len_b, &kind_b, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn frame_crc(len: &[u8], kind: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(kind);
    h.update(payload);
    h.finalize()
}

/// What replaying a journal found.
#[derive(Debug)]
pub(crate) struct Replay {
    /// Latest lease per address, over every complete commit.
    pub map: HashMap<Ipv4Addr, Lease>,
    /// Lease records in the complete commits (the journal's size in records).
    pub records: usize,
    /// The file has no (complete) header yet: a fresh or interrupted creation, holding no data.
    pub needs_header: bool,
    /// End of the last complete commit; bytes after it are a torn tail.
    pub good_len: u64,
    /// The file's length when replay started.
    pub file_len: u64,
}

/// Replays `file` (opened for reading) from the start. A torn tail — anything after the last
/// complete commit that does not contain a valid frame — is reported through `good_len`, not
/// repaired; damage followed by a valid frame is [`StoreError::Corrupt`].
pub(crate) fn replay(file: &File, path: &Path) -> Result<Replay, StoreError> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let corrupt = |offset: u64, why: String| StoreError::Corrupt {
        path: path.display().to_string(),
        offset,
        why,
    };
    let file_len = file.metadata().map_err(io)?.len();
    let mut out = Replay {
        map: HashMap::new(),
        records: 0,
        needs_header: false,
        good_len: HEADER_LEN,
        file_len,
    };

    let mut reader = BufReader::with_capacity(256 * 1024, file);
    // Reads through `&File` start at the file's current offset; callers pass a fresh handle.
    let head_len = usize::try_from(file_len.min(HEADER_LEN)).unwrap_or(0);
    let mut head = [0u8; HEADER_LEN as usize];
    let head = head.get_mut(..head_len).unwrap_or_default();
    reader.read_exact(head).map_err(io)?;
    if file_len < HEADER_LEN {
        // Creation writes the header and syncs it before any commit, so a short header means an
        // interrupted creation: no data can be lost by starting over.
        let expected = header();
        let prefix_of_header = expected.get(..head.len()) == Some(&*head);
        if prefix_of_header || head.iter().all(|b| *b == 0) {
            out.needs_header = true;
            out.good_len = 0;
            return Ok(out);
        }
        return Err(corrupt(0, "not a leased journal (short header)".into()));
    }
    if head.get(..8) != Some(&MAGIC[..]) {
        if head.iter().all(|b| *b == 0) && all_zero_from(file, HEADER_LEN, file_len).map_err(io)? {
            // A filesystem that exposed the created size but not the data: still no commit.
            out.needs_header = true;
            out.good_len = 0;
            return Ok(out);
        }
        return Err(corrupt(0, "not a leased journal (bad magic)".into()));
    }
    let version = read_u32(head, 8);
    if version != VERSION {
        return Err(corrupt(
            8,
            format!(
                "journal format version {version} is not supported (this build reads {VERSION})"
            ),
        ));
    }

    let mut pos = HEADER_LEN;
    let mut commit_start = HEADER_LEN;
    let mut pending: Vec<Lease> = Vec::new();
    let mut frame_header = [0u8; FRAME_HEADER_LEN];
    let mut payload = Vec::new();
    'frames: loop {
        if pos == file_len {
            break;
        }
        let damage: String = 'frame: {
            let remaining = file_len - pos;
            if remaining < FRAME_HEADER_LEN as u64 {
                break 'frame format!("short frame header ({remaining} bytes)");
            }
            reader.read_exact(&mut frame_header).map_err(io)?;
            let len = read_u32(&frame_header, 0);
            let kind = read_u32(&frame_header, 4);
            let crc = read_u32(&frame_header, 8);
            if len == 0 || len > MAX_FRAME_PAYLOAD {
                break 'frame format!("implausible frame length {len}");
            }
            if u64::from(len) > remaining - FRAME_HEADER_LEN as u64 {
                break 'frame format!("frame of {len} bytes runs past the end of the file");
            }
            payload.resize(len as usize, 0);
            reader.read_exact(&mut payload).map_err(io)?;
            let (len_b, rest) = frame_header.split_at(4);
            let kind_b = rest.get(..4).unwrap_or_default();
            if frame_crc(len_b, kind_b, &payload) != crc {
                break 'frame "checksum mismatch".into();
            }
            // From here the frame is exactly what some build wrote: refusing it is not repair.
            if kind != KIND_FINAL && kind != KIND_CONTINUED {
                return Err(corrupt(
                    pos,
                    format!("unknown frame kind {kind} (written by a newer build?)"),
                ));
            }
            decode_payload(&payload, &mut pending).map_err(|e| corrupt(pos, e))?;
            pos += FRAME_HEADER_LEN as u64 + u64::from(len);
            if kind == KIND_FINAL {
                out.records += pending.len();
                for lease in pending.drain(..) {
                    out.map.insert(lease.ip, lease);
                }
                commit_start = pos;
            }
            continue 'frames;
        };
        // Damage at `pos`. If no valid frame follows, it is the unsynced tail of the last write
        // (a crash); otherwise good data follows it and dropping that would lose commits.
        if let Some(at) = find_valid_frame(file, pos + 1, file_len).map_err(io)? {
            return Err(corrupt(
                pos,
                format!("{damage}, but a valid frame follows at byte {at}"),
            ));
        }
        break;
    }
    // An unfinished commit (its last frame missing or damaged) is part of the torn tail.
    out.good_len = commit_start;
    Ok(out)
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn decode_payload(payload: &[u8], into: &mut Vec<Lease>) -> Result<(), String> {
    for line in payload.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let lease: Lease =
            serde_json::from_slice(line).map_err(|e| format!("undecodable lease record: {e}"))?;
        into.push(lease);
    }
    Ok(())
}

/// Whether bytes `from..to` of `file` are all zero.
fn all_zero_from(file: &File, from: u64, to: u64) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = usize::try_from((to - at).min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_exact_at(chunk, at)?;
        if chunk.iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// The offset of the first complete, checksum-valid frame starting in `from..to`, if any.
///
/// Only runs after damage was found, so it may read the whole rest of the file. JSON payloads
/// never contain a NUL byte, and a plausible length needs one in its top byte, so the text of a
/// torn frame cannot pass for a frame header.
fn find_valid_frame(file: &File, from: u64, to: u64) -> std::io::Result<Option<u64>> {
    if from >= to {
        return Ok(None);
    }
    let size = usize::try_from(to - from).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; size];
    file.read_exact_at(&mut buf, from)?;
    let mut i = 0usize;
    while i + FRAME_HEADER_LEN <= buf.len() {
        let len = read_u32(&buf, i);
        let kind = read_u32(&buf, i + 4);
        let plausible = len != 0
            && len <= MAX_FRAME_PAYLOAD
            && (kind == KIND_FINAL || kind == KIND_CONTINUED)
            && i + FRAME_HEADER_LEN + len as usize <= buf.len();
        if plausible {
            let crc = read_u32(&buf, i + 8);
            let len_b = buf.get(i..i + 4).unwrap_or_default();
            let kind_b = buf.get(i + 4..i + 8).unwrap_or_default();
            let payload = buf
                .get(i + FRAME_HEADER_LEN..i + FRAME_HEADER_LEN + len as usize)
                .unwrap_or_default();
            if frame_crc(len_b, kind_b, payload) == crc {
                return Ok(Some(from + i as u64));
            }
        }
        i += 1;
    }
    Ok(None)
}
