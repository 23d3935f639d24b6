//! Tokeniser and statement-tree builder shared by the `dhcpd.conf` and `dhcpd.leases` readers.
//!
//! Both files use the same surface syntax: statements end with `;`, or with a `{ … }` block;
//! `#` starts a comment outside strings; strings are double-quoted with C-like escapes. Building
//! a generic tree first (instead of a line-based state machine, as DHCPStats did) is
//! what makes the readers independent of layout, brace placement and unknown nested blocks.

use std::fmt;

/// Blocks nested deeper than this are refused: real files nest three or four levels, and a
/// bound keeps hostile input from exhausting the stack in the recursive walkers and drops.
pub(crate) const MAX_DEPTH: usize = 64;

/// A position in a file, 1-based; the column counts characters (UTF-8 sequences), not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One token's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An unquoted word: keywords, addresses, numbers, dates, `a:b:c` hex strings.
    Word(String),
    /// A quoted string with escapes decoded; bytes, because `uid` and agent options are binary.
    Str(Vec<u8>),
    /// `,` separating list items.
    Comma,
    /// `=` in `set name = value;` and in expressions.
    Eq,
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: Pos,
    /// Byte range of the token in the source (a string's quotes included), so a reader can
    /// give a value back exactly as the file wrote it.
    pub span: (usize, usize),
}

impl Token {
    /// The word, if this token is an unquoted word.
    pub fn word(&self) -> Option<&str> {
        match &self.tok {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }

    /// A word or a string as text (strings decoded lossily), for names that may be quoted or not.
    pub fn text(&self) -> Option<String> {
        match &self.tok {
            Tok::Word(w) => Some(w.clone()),
            Tok::Str(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// How the token is shown in messages.
    pub fn describe(&self) -> String {
        match &self.tok {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(b) => format!("\"{}\"", String::from_utf8_lossy(b)),
            Tok::Comma => "','".into(),
            Tok::Eq => "'='".into(),
        }
    }
}

/// A statement: its words up to `;` or `{`, and the block when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stmt {
    pub words: Vec<Token>,
    pub block: Option<Vec<Stmt>>,
    /// Where the statement starts.
    pub pos: Pos,
    /// The file ended inside this statement or its block (lenient mode only).
    pub truncated: bool,
    /// Where the block's closing `}` is (`None` without a block, or when it never closes).
    pub close: Option<Pos>,
}

impl Stmt {
    /// The first word, lower-cased (ISC keywords are case-insensitive).
    pub fn keyword(&self) -> Option<String> {
        self.words
            .first()
            .and_then(Token::word)
            .map(str::to_ascii_lowercase)
    }

    /// The word at `i`, lower-cased.
    pub fn word_lc(&self, i: usize) -> Option<String> {
        self.words
            .get(i)
            .and_then(Token::word)
            .map(str::to_ascii_lowercase)
    }
}

/// A syntax problem: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

enum Lexed {
    Token(Token),
    Semi,
    Open(Pos),
    Close(Pos),
}

/// A DHCPStats annotation: a comment line starting with `#$` (a subnet's description) or `#!`
/// (its description, and "do not monitor"), the first thing on its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Annotation {
    pub pos: Pos,
    /// `#!` rather than `#$`.
    pub unmonitored: bool,
    /// The words after the marker, joined by single spaces (a trailing `;` dropped).
    pub text: String,
}

struct Lexer<'a> {
    src: &'a [u8],
    i: usize,
    line: u32,
    col: u32,
    annotations: Vec<Annotation>,
}

fn is_special(b: u8) -> bool {
    matches!(b, b';' | b'{' | b'}' | b',' | b'=' | b'"' | b'#')
}

impl<'a> Lexer<'a> {
    /// A lexer whose first byte is at `start` in its file (a piece cut out of a longer file
    /// keeps the file's own line and column numbers).
    fn new(src: &'a [u8], start: Pos) -> Self {
        Lexer {
            src,
            i: 0,
            line: start.line,
            col: start.col,
            annotations: Vec::new(),
        }
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        if b == b'\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else if b & 0xC0 != 0x80 {
            self.col = self.col.saturating_add(1);
        }
        Some(b)
    }

    /// The next token, `Ok(None)` at the end, or an error for an unterminated string.
    fn next(&mut self) -> Result<Option<Lexed>, SyntaxError> {
        loop {
            let Some(b) = self.peek() else {
                return Ok(None);
            };
            if b.is_ascii_whitespace() {
                self.bump();
            } else if b == b'#' {
                let pos = self.pos();
                let first_on_line = self
                    .src
                    .get(..self.i)
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .take_while(|&&c| c != b'\n')
                    .all(u8::is_ascii_whitespace);
                let start = self.i;
                while let Some(c) = self.bump() {
                    if c == b'\n' {
                        break;
                    }
                }
                let comment = self.src.get(start..self.i).unwrap_or_default();
                if let (true, Some(&m @ (b'$' | b'!'))) = (first_on_line, comment.get(1)) {
                    let text = String::from_utf8_lossy(comment.get(2..).unwrap_or_default());
                    let text = text.trim_end();
                    let text = text.strip_suffix(';').unwrap_or(text);
                    self.annotations.push(Annotation {
                        pos,
                        unmonitored: m == b'!',
                        text: text.split_whitespace().collect::<Vec<_>>().join(" "),
                    });
                }
            } else {
                break;
            }
        }
        let pos = self.pos();
        let start = self.i;
        let Some(b) = self.bump() else {
            return Ok(None);
        };
        let tok = match b {
            b';' => return Ok(Some(Lexed::Semi)),
            b'{' => return Ok(Some(Lexed::Open(pos))),
            b'}' => return Ok(Some(Lexed::Close(pos))),
            b',' => Tok::Comma,
            b'=' => Tok::Eq,
            b'"' => Tok::Str(self.string(pos)?),
            _ => {
                while let Some(c) = self.peek() {
                    if c.is_ascii_whitespace() || is_special(c) {
                        break;
                    }
                    self.bump();
                }
                let raw = self.src.get(start..self.i).unwrap_or_default();
                Tok::Word(String::from_utf8_lossy(raw).into_owned())
            }
        };
        Ok(Some(Lexed::Token(Token {
            tok,
            pos,
            span: (start, self.i),
        })))
    }

    /// The rest of a string after its opening quote, escapes decoded the way ISC writes them:
    /// `\NNN` octal, `\xHH` hex, `\n` `\t` `\r`, and `\c` for any other character.
    fn string(&mut self, open: Pos) -> Result<Vec<u8>, SyntaxError> {
        let unterminated = || SyntaxError {
            pos: open,
            message: "unterminated string (missing closing '\"')".into(),
        };
        let mut out = Vec::new();
        loop {
            let b = self.bump().ok_or_else(unterminated)?;
            match b {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = self.bump().ok_or_else(unterminated)?;
                    match e {
                        b'0'..=b'7' => {
                            let mut v: u32 = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        self.bump();
                                        v = v * 8 + u32::from(d - b'0');
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xFF) as u8);
                        }
                        b'x' => {
                            let mut v: u32 = 0;
                            let mut n = 0;
                            while n < 2 {
                                match self.peek().and_then(|d| (d as char).to_digit(16)) {
                                    Some(d) => {
                                        self.bump();
                                        v = v * 16 + d;
                                        n += 1;
                                    }
                                    None => break,
                                }
                            }
                            if n == 0 {
                                out.push(b'x');
                            } else {
                                out.push((v & 0xFF) as u8);
                            }
                        }
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }
}

/// How the tree builder treats malformed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Configuration: the first syntax error is returned, since dhcpd itself would refuse it.
    Strict,
    /// Lease database: dhcpd may be appending while we read, so problems are recorded and the
    /// reader recovers; an incomplete last statement is returned with `truncated` set.
    Lenient,
}

/// The statement tree of one file, plus the problems recovered from in lenient mode.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub stmts: Vec<Stmt>,
    pub problems: Vec<SyntaxError>,
    /// DHCPStats' `#$` / `#!` comment lines, in file order.
    pub annotations: Vec<Annotation>,
}

struct Frame {
    stmts: Vec<Stmt>,
    header: Vec<Token>,
    header_pos: Pos,
    open: Pos,
}

/// Builds the statement tree of `src` without recursion (so depth only matters for the walkers).
pub(crate) fn parse_tree(src: &[u8], mode: Mode) -> Result<Tree, SyntaxError> {
    parse_tree_at(src, mode, Pos { line: 1, col: 1 })
}

/// [`parse_tree`] of a piece of a file whose first byte is at `start`, so positions in the tree
/// and its problems are the file's. Token spans stay offsets into `src`.
pub(crate) fn parse_tree_at(src: &[u8], mode: Mode, start: Pos) -> Result<Tree, SyntaxError> {
    let mut lx = Lexer::new(src, start);
    let mut problems = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut top: Vec<Stmt> = Vec::new();
    let mut words: Vec<Token> = Vec::new();
    // Lenient mode: inside a block that is too deep, count braces and drop everything.
    let mut skip_depth: usize = 0;

    macro_rules! fail {
        ($pos:expr, $($arg:tt)*) => {{
            let e = SyntaxError { pos: $pos, message: format!($($arg)*) };
            if mode == Mode::Strict {
                return Err(e);
            }
            problems.push(e);
        }};
    }

    loop {
        let lexed = match lx.next() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                if mode == Mode::Strict {
                    return Err(e);
                }
                problems.push(e);
                break;
            }
        };
        if skip_depth > 0 {
            match lexed {
                Lexed::Open(_) => skip_depth += 1,
                Lexed::Close(_) => skip_depth -= 1,
                _ => {}
            }
            continue;
        }
        match lexed {
            Lexed::Token(t) => words.push(t),
            Lexed::Semi => {
                if let Some(first) = words.first() {
                    let pos = first.pos;
                    let stmt = Stmt {
                        words: std::mem::take(&mut words),
                        block: None,
                        pos,
                        truncated: false,
                        close: None,
                    };
                    match stack.last_mut() {
                        Some(f) => f.stmts.push(stmt),
                        None => top.push(stmt),
                    }
                }
            }
            Lexed::Open(pos) => {
                if stack.len() >= MAX_DEPTH {
                    fail!(pos, "blocks nested deeper than {MAX_DEPTH} levels");
                    skip_depth = 1;
                    words.clear();
                    continue;
                }
                let header_pos = words.first().map_or(pos, |t| t.pos);
                stack.push(Frame {
                    stmts: Vec::new(),
                    header: std::mem::take(&mut words),
                    header_pos,
                    open: pos,
                });
            }
            Lexed::Close(pos) => {
                if let Some(first) = words.first() {
                    let wpos = first.pos;
                    fail!(wpos, "missing ';' before '}}' at {pos}");
                    // Lenient: keep the statement as if the ';' were there.
                    let stmt = Stmt {
                        words: std::mem::take(&mut words),
                        block: None,
                        pos: wpos,
                        truncated: false,
                        close: None,
                    };
                    if let Some(f) = stack.last_mut() {
                        f.stmts.push(stmt);
                    }
                }
                match stack.pop() {
                    Some(f) => {
                        let stmt = Stmt {
                            words: f.header,
                            block: Some(f.stmts),
                            pos: f.header_pos,
                            truncated: false,
                            close: Some(pos),
                        };
                        match stack.last_mut() {
                            Some(p) => p.stmts.push(stmt),
                            None => top.push(stmt),
                        }
                    }
                    None => fail!(pos, "unexpected '}}' with no open block"),
                }
            }
        }
    }

    // End of input.
    if let Some(first) = words.first() {
        let pos = first.pos;
        fail!(pos, "unexpected end of file: statement not ended by ';'");
        let stmt = Stmt {
            words: std::mem::take(&mut words),
            block: None,
            pos,
            truncated: true,
            close: None,
        };
        match stack.last_mut() {
            Some(f) => f.stmts.push(stmt),
            None => top.push(stmt),
        }
    }
    if let Some(f) = stack.last() {
        let open = f.open;
        fail!(
            open,
            "unexpected end of file: '{{' opened here is never closed"
        );
    }
    while let Some(f) = stack.pop() {
        let stmt = Stmt {
            words: f.header,
            block: Some(f.stmts),
            pos: f.header_pos,
            truncated: true,
            close: None,
        };
        match stack.last_mut() {
            Some(p) => p.stmts.push(stmt),
            None => top.push(stmt),
        }
    }
    Ok(Tree {
        stmts: top,
        problems,
        annotations: lx.annotations,
    })
}

/// Parses `aa:bb:cc` / `a:b:c` colon-separated hex (ISC's unquoted binary form) into bytes.
pub(crate) fn parse_colon_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return None;
    }
    s.split(':')
        .map(|p| {
            if p.is_empty() || p.len() > 2 {
                None
            } else {
                u8::from_str_radix(p, 16).ok()
            }
        })
        .collect()
}

/// The text of `t` as written in `src`: a word as it is, a string without its quotes but with
/// its escapes (`\001`, `\"`) kept, the way dhcpd wrote it.
pub(crate) fn as_written(src: &[u8], t: &Token) -> Option<String> {
    let raw = src.get(t.span.0..t.span.1)?;
    let inner = match &t.tok {
        Tok::Str(_) => raw
            .strip_prefix(b"\"")
            .and_then(|r| r.strip_suffix(b"\""))
            .unwrap_or(raw),
        Tok::Word(_) => raw,
        Tok::Comma | Tok::Eq => return None,
    };
    Some(String::from_utf8_lossy(inner).into_owned())
}

/// Bytes of a binary value written either as a quoted string or as colon-separated hex.
pub(crate) fn binary_value(t: &Token) -> Option<Vec<u8>> {
    match &t.tok {
        Tok::Str(b) => Some(b.clone()),
        Tok::Word(w) => parse_colon_hex(w),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &Stmt) -> Vec<String> {
        s.words.iter().filter_map(Token::text).collect()
    }

    #[test]
    fn statements_blocks_comments_strings() {
        let t = parse_tree(
            b"# c\nfoo bar; # trailing\nblk x { a \"s;{}#\" ; b;\n }\n",
            Mode::Strict,
        )
        .unwrap();
        assert_eq!(t.stmts.len(), 2);
        assert_eq!(words(&t.stmts[0]), ["foo", "bar"]);
        assert_eq!(t.stmts[0].pos, Pos { line: 2, col: 1 });
        let blk = &t.stmts[1];
        assert_eq!(words(blk), ["blk", "x"]);
        let inner = blk.block.as_ref().unwrap();
        assert_eq!(words(&inner[0]), ["a", "s;{}#"]);
    }

    #[test]
    fn escapes_decode_to_bytes() {
        let t = parse_tree(br#"uid "\377\000a\"\\\x41\n";"#, Mode::Strict).unwrap();
        assert_eq!(
            t.stmts[0].words[1].tok,
            Tok::Str(vec![0xFF, 0, b'a', b'"', b'\\', b'A', b'\n'])
        );
    }

    #[test]
    fn strict_errors_have_positions() {
        let e = parse_tree(b"a {\n b;\n", Mode::Strict).unwrap_err();
        assert_eq!(e.pos, Pos { line: 1, col: 3 });
        let e = parse_tree(b"a;\n}\n", Mode::Strict).unwrap_err();
        assert_eq!(e.pos, Pos { line: 2, col: 1 });
        let e = parse_tree(b"x \"abc\n", Mode::Strict).unwrap_err();
        assert_eq!(e.pos, Pos { line: 1, col: 3 });
        assert!(e.message.contains("unterminated"));
        let e = parse_tree(b"a { b }", Mode::Strict).unwrap_err();
        assert!(e.message.contains("missing ';'"), "{}", e.message);
        let e = parse_tree(b"a b", Mode::Strict).unwrap_err();
        assert!(e.message.contains("end of file"));
    }

    #[test]
    fn lenient_marks_truncation() {
        let t = parse_tree(b"a { b; c {", Mode::Lenient).unwrap();
        assert!(t.stmts[0].truncated);
        assert!(!t.problems.is_empty());
        let t = parse_tree(b"}}} a;", Mode::Lenient).unwrap();
        assert_eq!(t.stmts.len(), 1);
        assert_eq!(t.problems.len(), 3);
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "{".repeat(10_000) + &"}".repeat(10_000) + " a;";
        assert!(parse_tree(deep.as_bytes(), Mode::Strict).is_err());
        let t = parse_tree(deep.as_bytes(), Mode::Lenient).unwrap();
        assert_eq!(words(t.stmts.last().unwrap()), ["a"]);
    }

    #[test]
    fn colon_hex() {
        assert_eq!(parse_colon_hex("1:2:ff"), Some(vec![1, 2, 255]));
        assert_eq!(parse_colon_hex("1::2"), None);
        assert_eq!(parse_colon_hex("zz"), None);
        assert_eq!(parse_colon_hex("123"), None);
    }

    #[test]
    fn columns_count_characters() {
        let e = parse_tree("é \"x".as_bytes(), Mode::Strict).unwrap_err();
        assert_eq!(e.pos, Pos { line: 1, col: 3 });
    }
}
