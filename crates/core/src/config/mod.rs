//! Configuration: the validated model ([`Config`]) and its loader.
//!
//! Two stages, as hickory and dora do it: a serde *file* stage that is strict about keys and
//! types (every error carries file:line:col and the key), then a pure *model* stage that checks
//! meaning (pools inside subnets, unique reservations, …) and pre-encodes every option so that
//! decisions only copy bytes. `leased check`, `serve` and reload all call [`load_file`].

mod account;
mod api;
mod arp;
mod conflict;
mod console;
mod error;
mod export;
mod file;
mod limits;
mod model;
mod options;
mod relay;
mod relay_auth;
mod rogue;
mod span;
mod sql;
#[cfg(test)]
mod tests;
mod trust;
mod validate;

pub use account::AccountName;
pub use api::{
    ApiSettings, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT, MIN_KEY_LEN, TlsSettings, api_key_problem,
};
pub use arp::ArpWatchSettings;
pub use conflict::{ConflictCheckMode, ConflictCheckSettings};
pub use console::ConsoleSettings;
pub use error::{ConfigError, ConfigErrors};
pub use export::{ExportSettings, RouterCredential, Secret, SonarSettings, WebhookSettings};
pub use limits::{Limits, RateLimit};
pub use model::*;
pub use relay::{AuthKey, ExistingOption82, RelayInterface, RelaySettings};
pub use relay_auth::{MIN_AUTH_KEY_LEN, RelayAuthKey};
pub use rogue::RogueSettings;
pub use sql::{
    AllocationSlot, SqlAssignment, SqlBackend, SqlFallback, SqlOwner, SqlQuery, SqlStoreSettings,
};
pub use trust::RelayTrust;

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

/// Config file syntax; both carry the same schema (see `docs/config.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML, the documented and recommended form.
    Toml,
    /// JSON, for generated configs: the same keys and nesting as the TOML form.
    Json,
}

/// Merges the `LEASED_BANNED_MACS` environment variable's value into `config.banned_macs`.
///
/// Operators ban devices in a hurry (a rogue or compromised client) without editing the file,
/// so the value is forgiving in form: MACs in any spelling `HwAddr::parse_mac` accepts,
/// separated by commas, semicolons, spaces, tabs or newlines. It is strict in content: every
/// token that is not a MAC is reported (naming the token), and then nothing is merged, so a typo
/// never silently leaves a device unbanned. MACs already in the file keep their metadata; new
/// ones get empty metadata.
pub fn merge_banned_env(config: &mut Config, value: &str) -> Result<(), Vec<String>> {
    let mut macs = Vec::new();
    let mut errors = Vec::new();
    let tokens = value
        .split(|c: char| matches!(c, ',' | ';') || c.is_whitespace())
        .filter(|t| !t.is_empty());
    for token in tokens {
        match crate::lease::HwAddr::parse_mac(token) {
            Some(mac) => macs.push(mac),
            None => errors.push(format!(
                "LEASED_BANNED_MACS: invalid MAC address {token:?}: expected aa:bb:cc:dd:ee:ff, \
                 aa-bb-cc-dd-ee-ff or aabbccddeeff"
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for mac in macs {
        config.banned_macs.entry(mac).or_default();
    }
    Ok(())
}
