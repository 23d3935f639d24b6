//! Configuration: the validated model ([`Config`]) and its loader.
//!
//! Two stages, as hickory and dora do it: a serde *file* stage that is strict about keys and
//! types (every error carries file:line:col and the key), then a pure *model* stage that checks
//! meaning (pools inside subnets, unique reservations, …) and pre-encodes every option so that
//! decisions only copy bytes. `leased check`, `serve` and reload all call [`load_file`].

mod error;
mod file;
mod model;

pub use error::{ConfigError, ConfigErrors};
pub use model::*;

use std::path::Path;

/// Loads and validates a config file; TOML, or JSON when the name ends in `.json` (or the text
/// starts with `{`). Returns every error found, not just the first.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    file::load_file(path)
}

/// Loads from text; `origin` names the source in error messages.
pub fn load_str(text: &str, origin: &str, format: Format) -> Result<Config, ConfigErrors> {
    file::load_str(text, origin, format)
}

/// Config file syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}
