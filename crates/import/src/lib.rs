//! Migration to leased from Kea, dnsmasq and dhcplane.
//!
//! Each source module reads that server's files as text and gives back what leased needs:
//!
//! - its configuration as a [`LeasedConfig`] plus the list of every construct that does not
//!   map ([`Unmapped`]), never silently dropping one;
//! - its leases as a stream of [`LeaseRecord`]s read line by line (or, for dhcplane's JSON,
//!   entry by entry), so a file of a million leases needs no more memory than a thousand.
//!
//! [`finish`] renders the config as TOML and loads it with leased's own loader: whatever the
//! loader refuses is taken out and listed with the loader's reason, so the text returned is one
//! `leased check` accepts. [`LeaseConverter`] turns records into lease-store entries (later
//! records for an address replace earlier ones, as in the sources' files).
//!
//! The crate is pure: text in, values out. It opens no file and reads no clock; the binary
//! does both (`leased import kea|dnsmasq|dhcplane`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dhcplane;
pub mod dnsmasq;
mod jsonc;
pub mod kea;
mod leases;
mod model;
mod options;
mod prune;

pub use jsonc::strip_comments;
pub use leases::{
    AddrSet, ConvertStats, Expiry, LeaseConverter, LeaseError, LeaseRecord, MAX_LINE, RecordState,
};
pub use model::*;

use std::fmt;
use std::path::Path;

use leased_config::{Config, ConfigErrors, Format, load_str};

/// One construct of the source that leased's config does not carry (or carries only in part),
/// with where it was and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// Where in the source, e.g. `Dhcp4.subnet4[0].pools[1].option-data` or `dnsmasq.conf:12`.
    pub at: String,
    /// What was left out and why.
    pub what: String,
}

impl Unmapped {
    /// A new entry.
    pub fn new(at: impl Into<String>, what: impl Into<String>) -> Self {
        Self {
            at: at.into(),
            what: what.into(),
        }
    }
}

impl fmt::Display for Unmapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.what)
    }
}

/// What a source module made of a config file.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// The leased config (its `[store] path` is set by [`finish`]).
    pub config: LeasedConfig,
    /// Everything that did not map.
    pub unmapped: Vec<Unmapped>,
}

/// Why an import produced nothing to write.
#[derive(Debug)]
pub enum ImportError {
    /// The source file itself does not parse (with its position when known).
    Source(String),
    /// The result does not load even after every refused construct was taken out.
    Config(ConfigErrors),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Source(s) => f.write_str(s),
            Self::Config(e) => write!(f, "the imported configuration does not validate:\n{e}"),
        }
    }
}

impl std::error::Error for ImportError {}

/// A config ready to write: its text, the validated config it loads to, and the final list of
/// what did not map (the source module's, plus whatever leased's loader refused).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// TOML, starting with comments that list what did not map.
    pub text: String,
    /// `text` as leased loads it.
    pub config: Config,
    /// Everything left out.
    pub unmapped: Vec<Unmapped>,
}

/// Most rounds of "load, take out what the loader refused, load again" before giving up; each
/// round takes at least one construct out, and a refusal usually names one construct.
const MAX_ROUNDS: usize = 64;

/// Renders `imported` as a leased config whose store is `store`, checked by leased's loader.
/// `source` names the server in the header comment (e.g. `"Kea"`), `origin` names the file
/// to be written in loader errors.
pub fn finish(
    mut imported: Imported,
    store: &Path,
    source: &str,
    origin: &str,
) -> Result<Rendered, ImportError> {
    imported.config.store.path = store.to_string_lossy().into_owned();
    let mut last_errors = None;
    for _ in 0..MAX_ROUNDS {
        let body = toml::to_string(&imported.config)
            .map_err(|e| ImportError::Source(format!("cannot render the config: {e}")))?;
        match load_str(&body, origin, Format::Toml) {
            Ok(_) => {
                // The header is comments only; the text returned is the one loaded.
                let text = format!("{}{body}", header(source, &imported.unmapped));
                let config = load_str(&text, origin, Format::Toml).map_err(ImportError::Config)?;
                return Ok(Rendered {
                    text,
                    config,
                    unmapped: imported.unmapped,
                });
            }
            Err(errors) => {
                if !prune::apply(&mut imported, &errors) {
                    return Err(ImportError::Config(errors));
                }
                last_errors = Some(errors);
            }
        }
    }
    Err(ImportError::Config(
        last_errors.unwrap_or_else(|| ConfigErrors(Vec::new())),
    ))
}

/// The comment block at the top of an imported config.
fn header(source: &str, unmapped: &[Unmapped]) -> String {
    let mut h = format!(
        "# Imported from {source} by `leased import`; check it with `leased check -c FILE`.\n"
    );
    if unmapped.is_empty() {
        h.push_str("# Every construct of the source was mapped.\n\n");
        return h;
    }
    h.push_str(&format!("# Not mapped ({}):\n", unmapped.len()));
    for u in unmapped {
        let line: String = u
            .to_string()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        h.push_str("#   - ");
        h.push_str(&line);
        h.push('\n');
    }
    h.push('\n');
    h
}
