//! Where every key and value of a config document sits, so that any error can name
//! `line:col` and the dotted key — for TOML (from the parser's [`toml::Spanned`] tree) and for
//! JSON (from a small scanner, since serde_json keeps no positions).
//!
//! Paths are rendered the same way for both formats: `subnets[0].pools[1]`, with keys that are
//! not bare TOML keys quoted: `banned_macs."dc:ed:83:f3:68:5b"`.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Deepest nesting the JSON scanner follows (serde_json stops at 128 as well).
const MAX_DEPTH: usize = 128;

/// One key/value of the document.
#[derive(Debug, Clone)]
struct Entry {
    path: String,
    /// The key's span, for table entries.
    key: Option<Range<usize>>,
    /// The value's span (for a TOML `[table]` or `[[array]]` element, its header).
    value: Range<usize>,
}

/// Position index over one document: key path → span, and span → key path.
#[derive(Debug)]
pub(crate) struct Positions<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    entries: Vec<Entry>,
    by_path: HashMap<String, usize>,
}

impl<'a> Positions<'a> {
    fn new(text: &'a str, entries: Vec<Entry>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut by_path = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_path.entry(e.path.clone()).or_insert(i);
        }
        Self {
            text,
            line_starts,
            entries,
            by_path,
        }
    }

    /// Index of a parsed TOML document.
    pub(crate) fn from_toml(text: &'a str, doc: &Spanned<DeTable<'_>>) -> Self {
        let mut entries = vec![Entry {
            path: String::new(),
            key: None,
            value: 0..text.len(),
        }];
        toml_table(doc.get_ref(), "", &mut entries);
        Self::new(text, entries)
    }

    /// Index of a JSON document; best effort on malformed text (indexes what precedes the fault).
    pub(crate) fn from_json(text: &'a str) -> Self {
        let mut scanner = JsonScanner {
            text,
            bytes: text.as_bytes(),
            at: 0,
            entries: Vec::new(),
        };
        scanner.skip_ws();
        let _ = scanner.value(String::new(), None, 0);
        Self::new(text, scanner.entries)
    }

    /// 1-based `(line, col)` of a byte offset; the column counts characters.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|s| *s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = match self.text.get(start..offset) {
            Some(s) => s.chars().count(),
            None => offset - start,
        };
        (line, col + 1)
    }

    /// Byte offset of a 1-based `(line, col)` whose column counts bytes (serde_json's).
    pub(crate) fn offset_of(&self, line: usize, col: usize) -> usize {
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(self.text.len());
        start
            .saturating_add(col.saturating_sub(1))
            .min(self.text.len())
    }

    /// Position of the value at `path`, or of its nearest indexed ancestor.
    pub(crate) fn value_pos(&self, path: &str) -> (usize, usize) {
        self.find(path)
            .map_or((1, 1), |e| self.line_col(e.value.start))
    }

    /// Position of the key of `path` (falls back to the value, then the ancestors).
    pub(crate) fn key_pos(&self, path: &str) -> (usize, usize) {
        self.find(path).map_or((1, 1), |e| {
            self.line_col(e.key.as_ref().map_or(e.value.start, |k| k.start))
        })
    }

    /// Byte offset of the value at `path` (for ordering entries by position).
    pub(crate) fn value_offset(&self, path: &str) -> usize {
        self.find(path).map_or(0, |e| e.value.start)
    }

    fn find(&self, path: &str) -> Option<&Entry> {
        let mut p = path;
        loop {
            if let Some(e) = self.by_path.get(p).and_then(|i| self.entries.get(*i)) {
                return Some(e);
            }
            if p.is_empty() {
                return None;
            }
            p = parent(p);
        }
    }

    /// The most specific key path whose key or value covers `offset`; empty if none does.
    pub(crate) fn path_at(&self, offset: usize) -> String {
        let mut best: Option<(usize, &Entry)> = None;
        for e in &self.entries {
            if e.path.is_empty() {
                continue;
            }
            let spans = [e.key.clone(), Some(e.value.clone())];
            for span in spans.into_iter().flatten() {
                let covers = span.start <= offset && (offset < span.end || span.is_empty());
                if covers {
                    let len = span.end - span.start;
                    // Later entries are deeper (pre-order), so ties go to them.
                    if best.is_none_or(|(l, _)| len <= l) {
                        best = Some((len, e));
                    }
                }
            }
        }
        best.map(|(_, e)| e.path.clone()).unwrap_or_default()
    }
}

/// `parent("a.b[2]")` = `"a.b"`, `parent("a.\"x.y\"")` = `"a"`, `parent("a")` = `""`.
fn parent(path: &str) -> &str {
    let bytes = path.as_bytes();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut cut = 0;
    for (i, b) in bytes.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if *b == b'\\' {
                escaped = true;
            } else if *b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b'"' => in_quotes = true,
            b'.' | b'[' => cut = i,
            _ => {}
        }
    }
    path.get(..cut).unwrap_or("")
}

/// Appends `key` to `path` as a dotted-key segment, quoting keys that are not bare TOML keys.
pub(crate) fn join_key(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let seg = if bare {
        key.to_string()
    } else {
        let mut s = String::from("\"");
        for c in key.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => s.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => s.push(c),
            }
        }
        s.push('"');
        s
    };
    if path.is_empty() {
        seg
    } else {
        format!("{path}.{seg}")
    }
}

/// Appends an array index to `path`.
pub(crate) fn join_index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn toml_table(table: &DeTable<'_>, path: &str, out: &mut Vec<Entry>) {
    for (k, v) in table.iter() {
        let p = join_key(path, k.get_ref());
        toml_value(v, p, Some(k.span()), out);
    }
}

fn toml_value(
    v: &Spanned<DeValue<'_>>,
    path: String,
    key: Option<Range<usize>>,
    out: &mut Vec<Entry>,
) {
    out.push(Entry {
        path: path.clone(),
        key,
        value: v.span(),
    });
    match v.get_ref() {
        DeValue::Table(t) => toml_table(t, &path, out),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                toml_value(item, join_index(&path, i), None, out);
            }
        }
        _ => {}
    }
}

/// Just enough of a JSON parser to record where each key and value is.
struct JsonScanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    entries: Vec<Entry>,
}

impl JsonScanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Scans one value starting at `self.at` (whitespace already skipped). `None` on a fault.
    fn value(&mut self, path: String, key: Option<Range<usize>>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.at;
        let index = self.entries.len();
        self.entries.push(Entry {
            path: path.clone(),
            key,
            value: start..start,
        });
        match self.peek()? {
            b'{' => self.object(&path, depth)?,
            b'[' => self.array(&path, depth)?,
            b'"' => {
                self.string()?;
            }
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.at += 1;
                }
                if self.at == start {
                    return None;
                }
            }
        }
        if let Some(e) = self.entries.get_mut(index) {
            e.value.end = self.at;
        }
        Some(())
    }

    fn object(&mut self, path: &str, depth: usize) -> Option<()> {
        self.at += 1; // '{'
        self.skip_ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.skip_ws();
            let key_start = self.at;
            let key = self.string()?;
            let key_span = key_start..self.at;
            self.skip_ws();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            self.skip_ws();
            self.value(join_key(path, &key), Some(key_span), depth + 1)?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, path: &str, depth: usize) -> Option<()> {
        self.at += 1; // '['
        self.skip_ws();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        let mut i = 0;
        loop {
            self.skip_ws();
            self.value(join_index(path, i), None, depth + 1)?;
            i += 1;
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Scans a string literal and returns its decoded text.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    break;
                }
                _ => self.at += 1,
            }
        }
        let literal = self.text.get(start..self.at)?;
        serde_json::from_str::<String>(literal).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_paths() {
        assert_eq!(parent("a.b[2]"), "a.b");
        assert_eq!(parent("a.b"), "a");
        assert_eq!(parent("a.\"x.y\""), "a");
        assert_eq!(parent("a.\"x[y\".z"), "a.\"x[y\"");
        assert_eq!(parent("a"), "");
    }

    #[test]
    fn json_positions() {
        let text = "{\n  \"a\": 1,\n  \"b\": [ {\"c\": \"x\"}, 2 ],\n  \"d:e\": {}\n}";
        let p = Positions::from_json(text);
        assert_eq!(p.value_pos("a"), (2, 8));
        assert_eq!(p.key_pos("a"), (2, 3));
        assert_eq!(p.value_pos("b[0].c"), (3, 16));
        assert_eq!(p.value_pos("b[1]"), (3, 22));
        assert_eq!(p.key_pos("\"d:e\""), (4, 3));
        assert_eq!(p.path_at(p.offset_of(3, 18)), "b[0].c");
        assert_eq!(p.path_at(p.offset_of(3, 19)), "b[0]");
        assert_eq!(p.value_pos("b[0].missing"), (3, 10));
    }

    #[test]
    fn json_scanner_never_panics_on_garbage() {
        for text in [
            "",
            "{",
            "{\"a\"",
            "[1,",
            "\"\\",
            "{\"a\":}",
            "]]]",
            "{\"\\u12\": 1}",
        ] {
            let p = Positions::from_json(text);
            let _ = p.path_at(3);
            let _ = p.value_pos("a");
            let _ = p.line_col(100);
        }
        let deep = "[".repeat(10_000);
        let _ = Positions::from_json(&deep);
    }
}
