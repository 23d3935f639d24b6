//! Config errors that point at file:line:col and name the key.

/// One problem in a config file.
///
/// Displayed as `origin:line:col: key: message`, the form editors and CI logs can jump to;
/// the position is left out when unknown (line 0) and the key when there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File path (or other origin) of the text.
    pub origin: String,
    /// 1-based line; 0 when no position is known.
    pub line: usize,
    /// 1-based column; 0 when no position is known.
    pub col: usize,
    /// Dotted key path, e.g. `subnets[0].pools[1].start`.
    pub key: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.origin)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one load, in file order, so one `leased check` run shows them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
