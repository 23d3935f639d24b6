//! Config errors that point at file:line:col and name the key.

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{col}: {key}: {message}")]
pub struct ConfigError {
    /// File path (or other origin) of the text.
    pub origin: String,
    /// 1-based line; 0 when no position is known.
    pub line: usize,
    /// 1-based column; 0 when no position is known.
    pub col: usize,
    /// Dotted key path, e.g. `subnets[0].pools[1].start`.
    pub key: String,
    pub message: String,
}

/// Every problem found in one load, in file order.
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
