//! `dhcpd.leases` read one top-level statement at a time, for files too large to hold whole
//! (a million leases is a few hundred MB of text and several GB as a statement tree).
//!
//! A [`Splitter`] reads the file in chunks and cuts it where a top-level statement ends, with
//! the lexical rules of the tree builder (strings with their escapes, `#` comments, `{ … }`
//! depth), so each piece holds exactly the statement the whole-file tree would have had at that
//! place. Each piece is then parsed by the same tree builder and the same statement reader as
//! [`crate::parse_leases`], starting at the piece's own line and column: the leases, their
//! fields and the warnings' places are the same. What differs is only what a whole-file reader
//! alone can do: entries come in file order (every entry, superseded or not), syntax warnings
//! come next to their statement rather than all first, and a single statement longer than
//! [`MAX_STATEMENT_BYTES`] (no dhcpd writes one; an unclosed `{` makes the rest of the file
//! one) is skipped with a warning instead of being held in memory.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::IscError;
use crate::leases::{Latest, Reader, Top};
use crate::model::{FailoverPeerState, IscHost, IscLease, IscLeases, Warning};
use crate::syntax::{Mode, Pos, parse_tree_at};

/// The longest top-level statement the streaming reader holds in memory. A lease entry dhcpd
/// writes is well under 2 KiB; past this size a statement is skipped with a warning, so a
/// damaged file (an unclosed `{`) cannot make the reader hold the rest of the file.
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// One thing a leases file says, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEntry {
    /// A complete `lease` entry. Every entry is given, superseded ones too: the last one for
    /// an address is its current state, as dhcpd reads the file.
    Lease {
        /// The entry; its `line` is that of its `lease` keyword.
        lease: IscLease,
        /// The column of its `lease` keyword, for a warning about it later.
        col: u32,
    },
    /// `server-duid` (its value, when it could be read).
    ServerDuid(Option<Vec<u8>>),
    /// A `failover peer … state` record (the last one per name is current).
    FailoverPeer(FailoverPeerState),
    /// A `host` entry written through OMAPI; `deleted` ones remove an earlier one of the name.
    Host {
        /// The host.
        host: IscHost,
        /// The entry says `deleted;`.
        deleted: bool,
    },
    /// Something skipped, with its place, as the whole-file reader words it.
    Warning(Warning),
}

/// Reads a leases file one statement at a time; memory is one statement, not the file.
///
/// As an iterator it yields [`LeaseEntry`]s and, on a read failure, one [`IscError::Io`] (and
/// nothing after it). Content never fails, as with [`crate::parse_leases`].
pub struct LeaseReader<R> {
    split: Splitter<R>,
    origin: String,
    queue: VecDeque<LeaseEntry>,
    failed: bool,
}

impl LeaseReader<BufReader<File>> {
    /// Opens `path` for streaming; warnings name the file as given.
    pub fn open(path: &Path) -> Result<Self, IscError> {
        let file = File::open(path).map_err(|e| IscError::io(path, e))?;
        Ok(LeaseReader::new(
            BufReader::with_capacity(1 << 16, file),
            &path.display().to_string(),
        ))
    }
}

impl<R: BufRead> LeaseReader<R> {
    /// Streams the leases file read from `reader`; `origin` names it in warnings and errors.
    pub fn new(reader: R, origin: &str) -> Self {
        LeaseReader {
            split: Splitter::new(reader),
            origin: origin.to_string(),
            queue: VecDeque::new(),
            failed: false,
        }
    }

    /// The file's name as warnings give it.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Bytes read from the file so far, for a progress report on a large file.
    pub fn bytes_read(&self) -> u64 {
        self.split.consumed
    }

    /// The whole file folded the way [`crate::parse_leases`] folds it (last entry per address,
    /// failover peers and hosts by name, one warning per current entry without a binding
    /// state at the end), for callers that want the model and can hold one entry per address.
    pub fn into_leases(mut self) -> Result<IscLeases, IscError> {
        let mut acc = Latest::default();
        let mut warnings = Vec::new();
        for entry in self.by_ref() {
            match entry? {
                LeaseEntry::Lease { lease, col } => {
                    let pos = Pos {
                        line: lease.line,
                        col,
                    };
                    acc.apply(Top::Lease(lease, pos));
                }
                LeaseEntry::ServerDuid(d) => acc.apply(Top::ServerDuid(d)),
                LeaseEntry::FailoverPeer(p) => acc.apply(Top::Failover(p)),
                LeaseEntry::Host { host, deleted } => acc.apply(Top::Host(host, deleted)),
                LeaseEntry::Warning(w) => warnings.push(w),
            }
        }
        Ok(acc.finish(&self.origin, warnings))
    }

    /// Parses the next piece into the queue; false at the end of the file.
    fn fill(&mut self) -> Result<bool, IscError> {
        let piece = match self.split.next_piece() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(false),
            Err(e) => return Err(IscError::io(&PathBuf::from(&self.origin), e)),
        };
        match piece {
            Piece::Overlong(pos) => {
                self.queue.push_back(LeaseEntry::Warning(Warning {
                    file: self.origin.clone(),
                    line: pos.line,
                    col: pos.col,
                    message: format!(
                        "statement longer than {} KiB skipped (an unclosed '{{'?)",
                        MAX_STATEMENT_BYTES / 1024
                    ),
                }));
            }
            Piece::Statement(start) => {
                let bytes = &self.split.piece;
                // Lenient mode never returns an error; keep a fallback rather than panicking.
                let tree = parse_tree_at(bytes, Mode::Lenient, start).unwrap_or_default();
                let mut r = Reader::new(&self.origin, bytes);
                let mut tops = Vec::new();
                for p in &tree.problems {
                    r.warn(p.pos, p.message.clone());
                }
                for s in &tree.stmts {
                    if let Some(top) = r.top(s) {
                        tops.push(top);
                    }
                }
                // A statement's warnings come before what it yields, as they were said first.
                self.queue
                    .extend(r.take_warnings().into_iter().map(LeaseEntry::Warning));
                self.queue.extend(tops.into_iter().map(|t| match t {
                    Top::Lease(lease, pos) => LeaseEntry::Lease {
                        lease,
                        col: pos.col,
                    },
                    Top::ServerDuid(d) => LeaseEntry::ServerDuid(d),
                    Top::Failover(p) => LeaseEntry::FailoverPeer(p),
                    Top::Host(host, deleted) => LeaseEntry::Host { host, deleted },
                }));
            }
        }
        Ok(true)
    }
}

impl<R: BufRead> Iterator for LeaseReader<R> {
    type Item = Result<LeaseEntry, IscError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some(Ok(e));
            }
            if self.failed {
                return None;
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Where the splitter is in the surface syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Normal,
    /// Inside a quoted string.
    Str,
    /// Right after a `\` in a string: the next byte is taken as it is.
    StrEscape,
    /// From `#` to the end of the line.
    Comment,
}

/// What [`Splitter::next_piece`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// A top-level statement (with the blanks and comments before it) is in `piece`, its
    /// first byte at this place.
    Statement(Pos),
    /// A statement starting at this place grew past [`MAX_STATEMENT_BYTES`]; it was dropped.
    Overlong(Pos),
}

/// Cuts a leases file into top-level statements as it reads it.
///
/// A piece ends after a `;` at depth 0, after the `}` that brings the depth back to 0, after a
/// stray `}` at depth 0 (the tree builder drops what came before it there and starts afresh),
/// or at the end of the file. Strings and comments are skipped with the tree builder's rules,
/// so a `;`, `{` or `}` inside them cuts nothing. Lines and columns are counted as the lexer
/// counts them (a column is a UTF-8 character).
struct Splitter<R> {
    r: R,
    scan: Scan,
    /// Where the piece being read starts.
    start: Pos,
    /// The piece being read (empty while `overlong`).
    piece: Vec<u8>,
    /// The piece grew past the limit: its bytes are dropped until it ends.
    overlong: bool,
    /// Bytes consumed from `r`.
    consumed: u64,
    eof: bool,
}

impl<R: BufRead> Splitter<R> {
    fn new(r: R) -> Self {
        Splitter {
            r,
            scan: Scan {
                state: Lex::Normal,
                depth: 0,
                line: 1,
                col: 1,
            },
            start: Pos { line: 1, col: 1 },
            piece: Vec::new(),
            overlong: false,
            consumed: 0,
            eof: false,
        }
    }

    /// The next piece: `Ok(None)` once the file is read.
    fn next_piece(&mut self) -> io::Result<Option<Piece>> {
        if !self.overlong {
            self.piece.clear();
        }
        loop {
            let avail = match self.r.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if self.eof {
                    return Ok(None);
                }
                self.eof = true;
                let start = self.start;
                if self.overlong {
                    self.overlong = false;
                    return Ok(Some(Piece::Overlong(start)));
                }
                if self.piece.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                return Ok(Some(Piece::Statement(start)));
            }
            let mut n = 0;
            let mut ended = false;
            for &b in avail {
                n += 1;
                if self.scan.step(b) {
                    ended = true;
                    break;
                }
            }
            if !self.overlong {
                self.piece
                    .extend_from_slice(avail.get(..n).unwrap_or_default());
                if self.piece.len() > MAX_STATEMENT_BYTES {
                    self.overlong = true;
                    self.piece = Vec::new();
                }
            }
            self.r.consume(n);
            self.consumed += n as u64;
            if ended {
                let start = self.start;
                self.start = Pos {
                    line: self.scan.line,
                    col: self.scan.col,
                };
                if self.overlong {
                    self.overlong = false;
                    return Ok(Some(Piece::Overlong(start)));
                }
                return Ok(Some(Piece::Statement(start)));
            }
        }
    }
}

/// The splitter's lexical state, apart from its reader so that it can step through the
/// reader's buffer while that is borrowed.
struct Scan {
    state: Lex,
    depth: usize,
    /// The place of the next byte.
    line: u32,
    col: u32,
}

impl Scan {
    /// True when byte `b` ends the current piece.
    fn step(&mut self, b: u8) -> bool {
        let ends = match self.state {
            Lex::Normal => match b {
                b'"' => {
                    self.state = Lex::Str;
                    false
                }
                b'#' => {
                    self.state = Lex::Comment;
                    false
                }
                b'{' => {
                    self.depth = self.depth.saturating_add(1);
                    false
                }
                b'}' => match self.depth {
                    0 => true,
                    d => {
                        self.depth = d - 1;
                        self.depth == 0
                    }
                },
                b';' => self.depth == 0,
                _ => false,
            },
            Lex::Str => {
                match b {
                    b'"' => self.state = Lex::Normal,
                    b'\\' => self.state = Lex::StrEscape,
                    _ => {}
                }
                false
            }
            Lex::StrEscape => {
                self.state = Lex::Str;
                false
            }
            Lex::Comment => {
                if b == b'\n' {
                    self.state = Lex::Normal;
                }
                false
            }
        };
        if b == b'\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else if b & 0xC0 != 0x80 {
            self.col = self.col.saturating_add(1);
        }
        ends
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn pieces(text: &[u8], cap: usize) -> Vec<(Piece, String)> {
        let mut s = Splitter::new(BufReader::with_capacity(cap, text));
        let mut out = Vec::new();
        while let Some(p) = s.next_piece().unwrap() {
            out.push((p, String::from_utf8_lossy(&s.piece).into_owned()));
        }
        out
    }

    #[test]
    fn cuts_at_top_level_ends_only() {
        let text = b"a b;\nlease 1 { x \"};{\\\"\"; # };\n y { z; } }\n  # tail }\n c;";
        for cap in [1, 2, 3, 7, 64] {
            let p = pieces(text, cap);
            let texts: Vec<&str> = p.iter().map(|(_, t)| t.as_str()).collect();
            assert_eq!(
                texts,
                [
                    "a b;",
                    "\nlease 1 { x \"};{\\\"\"; # };\n y { z; } }",
                    "\n  # tail }\n c;"
                ],
                "buffer {cap}"
            );
            assert_eq!(p[1].0, Piece::Statement(Pos { line: 1, col: 5 }));
            assert_eq!(p[2].0, Piece::Statement(Pos { line: 3, col: 12 }));
        }
    }

    #[test]
    fn stray_close_ends_a_piece_and_blank_tail_is_nothing() {
        let p = pieces(b"x } y;\n\n  ", 4);
        let texts: Vec<&str> = p.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["x }", " y;"]);
    }

    #[test]
    fn columns_count_characters() {
        let p = pieces("é; x;".as_bytes(), 1);
        assert_eq!(p[1].0, Piece::Statement(Pos { line: 1, col: 3 }));
    }

    #[test]
    fn an_overlong_statement_is_dropped_and_reading_goes_on() {
        let mut text = b"lease 198.18.0.1 {\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_STATEMENT_BYTES + 10));
        text.extend(b"; }\nlease 198.18.0.2 { binding state active; }\n");
        let got: Vec<LeaseEntry> = LeaseReader::new(&text[..], "f")
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            matches!(&got[0], LeaseEntry::Warning(w) if w.line == 1 && w.message.contains("longer than")),
            "{:?}",
            got[0]
        );
        assert!(
            matches!(&got[1], LeaseEntry::Lease { lease, col: 1 } if lease.ip == Ipv4Addr::new(198, 18, 0, 2) && lease.line == 3),
            "{:?}",
            got[1]
        );
        assert_eq!(got.len(), 2);
    }
}
