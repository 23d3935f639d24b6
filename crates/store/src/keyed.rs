//! A small durable map in one append-only file: each change one line, synced before the
//! caller goes on, the whole file rewritten (to a temporary file, synced, renamed) when dead
//! lines outnumber live ones. The DNS update queue keeps its jobs and names here, so an
//! update accepted before a crash or a restart is still made after it.
//!
//! Lines: `P<TAB>key<TAB>value` puts, `R<TAB>key` removes; keys and values hold no tab or
//! newline (the caller's JSON escapes them). A last line cut short by a crash is ignored.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Lines beyond the live entries before a rewrite, at least.
const COMPACT_FLOOR: usize = 1024;

/// The open map.
#[derive(Debug)]
pub struct KeyedFile {
    path: PathBuf,
    file: File,
    live: BTreeMap<String, String>,
    lines: usize,
    /// Written since the last sync.
    pending: Vec<u8>,
    /// At most this many entries (puts of new keys beyond it are refused).
    limit: usize,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum KeyedError {
    /// The file could not be read, written or synced.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key or value with a tab or a newline, or an empty key.
    #[error("key or value not storable")]
    Unstorable,
    /// The map holds its limit of entries.
    #[error("full ({0} entries)")]
    Full(usize),
}

impl KeyedFile {
    /// Opens (or creates) the map at `path`, holding at most `limit` entries.
    pub fn open(path: &Path, limit: usize) -> Result<Self, KeyedError> {
        let io = |source| KeyedError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut live = BTreeMap::new();
        let mut lines = 0;
        let mut good_len = 0u64;
        if let Ok(f) = File::open(path) {
            let mut r = BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                let n = r.read_line(&mut line).map_err(io)?;
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                good_len += n as u64;
                lines += 1;
                let body = line.trim_end_matches('\n');
                let mut parts = body.splitn(3, '\t');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("P"), Some(k), Some(v)) => {
                        live.insert(k.to_string(), v.to_string());
                    }
                    (Some("R"), Some(k), None) => {
                        live.remove(k);
                    }
                    _ => {}
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        // Drop a torn last line so the next append starts on a line of its own.
        if file.metadata().map_err(io)?.len() != good_len {
            file.set_len(good_len).map_err(io)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            live,
            lines,
            pending: Vec::new(),
            limit: limit.max(1),
        })
    }

    /// The entries, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &String)> {
        self.live.iter()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Sets `key` to `value` (durable after [`KeyedFile::sync`]).
    pub fn put(&mut self, key: &str, value: &str) -> Result<(), KeyedError> {
        let bad = |s: &str| s.contains(['\t', '\n']);
        if key.is_empty() || bad(key) || bad(value) {
            return Err(KeyedError::Unstorable);
        }
        if !self.live.contains_key(key) && self.live.len() >= self.limit {
            return Err(KeyedError::Full(self.limit));
        }
        self.pending
            .extend_from_slice(format!("P\t{key}\t{value}\n").as_bytes());
        self.live.insert(key.to_string(), value.to_string());
        self.lines += 1;
        Ok(())
    }

    /// Removes `key` (durable after [`KeyedFile::sync`]).
    pub fn remove(&mut self, key: &str) {
        if self.live.remove(key).is_some() {
            self.pending
                .extend_from_slice(format!("R\t{key}\n").as_bytes());
            self.lines += 1;
        }
    }

    /// Writes and syncs what changed; rewrites the file when it is mostly dead lines.
    pub fn sync(&mut self) -> Result<(), KeyedError> {
        let io = |path: &Path, source| KeyedError::Io {
            path: path.display().to_string(),
            source,
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.lines > 2 * self.live.len() + COMPACT_FLOOR {
            return self.rewrite();
        }
        self.file
            .write_all(&self.pending)
            .map_err(|e| io(&self.path, e))?;
        self.file.sync_data().map_err(|e| io(&self.path, e))?;
        self.pending.clear();
        Ok(())
    }

    fn rewrite(&mut self) -> Result<(), KeyedError> {
        let io = |path: &Path, source| KeyedError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut buf = Vec::new();
        for (k, v) in &self.live {
            buf.extend_from_slice(format!("P\t{k}\t{v}\n").as_bytes());
        }
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(&buf).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io(&self.path, e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| io(&self.path, e))?;
        self.lines = self.live.len();
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Write;

    use super::KeyedFile;

    #[test]
    fn survives_reopen_torn_lines_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q");
        let mut m = KeyedFile::open(&p, 3).unwrap();
        m.put("a", "{\"x\":1}").unwrap();
        m.put("b", "2").unwrap();
        m.remove("a");
        m.sync().unwrap();
        assert!(m.put("bad\tkey", "v").is_err());
        drop(m);
        // A crash in the middle of a line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"P\tc\tpart")
            .unwrap();
        let mut m = KeyedFile::open(&p, 3).unwrap();
        let got: Vec<_> = m.entries().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(got, vec![("b".to_string(), "2".to_string())]);
        m.put("c", "3").unwrap();
        m.put("d", "4").unwrap();
        assert!(m.put("e", "5").is_err(), "bounded");
        for i in 0..3000 {
            m.put("c", &i.to_string()).unwrap();
        }
        m.sync().unwrap();
        let lines = std::fs::read_to_string(&p).unwrap().lines().count();
        assert_eq!(lines, 3, "rewritten to its live entries");
        let m = KeyedFile::open(&p, 3).unwrap();
        assert_eq!(m.entries().nth(1).unwrap().1, "2999");
    }
}
