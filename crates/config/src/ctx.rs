//! The error collector every checker writes to: each error carries the file, line, column and
//! key of the value it is about, so `leased check` reports every bad value in file order.

use crate::error::{ConfigError, ConfigErrors};
use crate::span::Positions;

/// Collects errors with their positions.
pub(crate) struct Ctx<'a> {
    pos: &'a Positions<'a>,
    origin: &'a str,
    errors: Vec<ConfigError>,
    /// No subnet is wanted: `[relay]` and no `[[subnets]]` (a relay agent's config), or
    /// `subnets = []` written out.
    pub(crate) relay_only: bool,
}

impl<'a> Ctx<'a> {
    /// A collector for the file `origin`, whose positions are `pos`.
    pub(crate) fn new(pos: &'a Positions<'a>, origin: &'a str, relay_only: bool) -> Self {
        Self {
            pos,
            origin,
            errors: Vec::new(),
            relay_only,
        }
    }

    /// The errors in file order, or `Ok` when there were none.
    pub(crate) fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let mut errors = self.errors;
        errors.sort_by_key(|e| (e.line, e.col));
        Err(ConfigErrors(errors))
    }

    /// An error about the value at `path`.
    pub(crate) fn err(&mut self, path: &str, message: impl Into<String>) {
        let (line, col) = self.pos.value_pos(path);
        self.push(path, line, col, message.into());
    }

    /// An error about the key at `path` itself (e.g. a malformed MAC used as a key).
    pub(crate) fn err_key(&mut self, path: &str, message: impl Into<String>) {
        let (line, col) = self.pos.key_pos(path);
        self.push(path, line, col, message.into());
    }

    /// Line and column of the value at `path` (for settings io checks later).
    pub(crate) fn value_pos(&self, path: &str) -> (usize, usize) {
        self.pos.value_pos(path)
    }

    /// Where in the text the value at `path` starts (to order a table's entries as written).
    pub(crate) fn value_offset(&self, path: &str) -> usize {
        self.pos.value_offset(path)
    }

    /// Errors recorded so far (a section checker compares before and after).
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    fn push(&mut self, path: &str, line: usize, col: usize, message: String) {
        self.errors.push(ConfigError {
            origin: self.origin.to_string(),
            line,
            col,
            key: path.to_string(),
            message,
        });
    }
}

/// Interface names as the kernel takes them: 1 to 15 bytes, no '/', ':' or whitespace.
pub(crate) fn check_interface(ctx: &mut Ctx<'_>, path: &str, name: &str) {
    if name.is_empty() || name.len() > 15 {
        ctx.err(
            path,
            format!("interface name {name:?} must be 1 to 15 bytes long"),
        );
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        ctx.err(
            path,
            format!("interface name {name:?} contains '/', ':' or whitespace"),
        );
    }
}
