//! Loading a configuration: text → file stage → model, then what only this system can tell
//! (the accounts of `[server] user` / `group`) and the `LEASED_BANNED_MACS` merge. One loader
//! for `serve`, reload and `leased check`, so what `check` accepts is exactly what runs.

use std::path::Path;

use leased_core::HwAddr;
use serde::Deserialize;

use crate::error::{ConfigError, ConfigErrors};
use crate::model::Config;
use crate::schema::RawConfig;
use crate::span::Positions;
use crate::validate;

/// The environment variable with extra banned MACs (comma or whitespace separated).
pub const BANNED_ENV: &str = "LEASED_BANNED_MACS";

/// Loads `path` as `serve`, reload and `leased check` do: the file, then the accounts of
/// `[server] user` / `group` looked up on this system, then [`BANNED_ENV`] merged in. Every
/// error carries its origin and position.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut config = load_file(path)?;
    crate::lookup::resolve_accounts(&config.process, &path.display().to_string())
        .map_err(ConfigErrors)?;
    if let Ok(value) = std::env::var(BANNED_ENV) {
        merge_banned_env(&mut config, &value).map_err(|errs| {
            ConfigErrors(
                errs.into_iter()
                    .map(|message| ConfigError {
                        origin: format!("environment {BANNED_ENV}"),
                        line: 0,
                        col: 0,
                        key: BANNED_ENV.to_string(),
                        message,
                    })
                    .collect(),
            )
        })?;
    }
    Ok(config)
}

/// Loads and validates a config file; TOML, or JSON when the name ends in `.json` (or the text
/// starts with `{`). Returns every error found, not just the first. No system lookups and no
/// environment: for tests and tools reading a file that will run elsewhere.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            origin: origin.clone(),
            line: 0,
            col: 0,
            key: String::new(),
            message: format!("cannot read config file: {e}"),
        }])
    })?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{');
    let format = if is_json { Format::Json } else { Format::Toml };
    load_str(&text, &origin, format)
}

/// Loads from text; `origin` names the source in error messages.
pub fn load_str(text: &str, origin: &str, format: Format) -> Result<Config, ConfigErrors> {
    match format {
        Format::Toml => load_toml(text, origin),
        Format::Json => load_json(text, origin),
    }
}

fn error_at(pos: &Positions<'_>, origin: &str, offset: usize, message: &str) -> ConfigError {
    let (line, col) = pos.line_col(offset);
    ConfigError {
        origin: origin.to_string(),
        line,
        col,
        key: pos.path_at(offset),
        message: message.to_string(),
    }
}

fn load_toml(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let (doc, syntax) = toml::de::DeTable::parse_recoverable(text);
    let pos = Positions::from_toml(text, &doc);
    if !syntax.is_empty() {
        let mut errors: Vec<ConfigError> = syntax
            .iter()
            .map(|e| {
                let offset = e.span().map_or(0, |s| s.start);
                error_at(&pos, origin, offset, e.message())
            })
            .collect();
        errors.sort_by_key(|e| (e.line, e.col));
        return Err(ConfigErrors(errors));
    }
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        ConfigErrors(vec![error_at(&pos, origin, offset, e.message())])
    })?;
    validate::validate(raw, &pos, origin)
}

fn load_json(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let pos = Positions::from_json(text);
    let raw: RawConfig = serde_json::from_str(text).map_err(|e| {
        let (line, col) = (e.line(), e.column());
        let full = e.to_string();
        let suffix = format!(" at line {line} column {col}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        ConfigErrors(vec![ConfigError {
            origin: origin.to_string(),
            line,
            col,
            key: pos.path_at(pos.offset_of(line, col)),
            message,
        }])
    })?;
    validate::validate(raw, &pos, origin)
}

/// Config file syntax; both carry the same schema (see `docs/config.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML, the documented and recommended form.
    Toml,
    /// JSON, for generated configs: the same keys and nesting as the TOML form.
    Json,
}

/// Merges the `LEASED_BANNED_MACS` environment variable's value into `config.network.banned_macs`.
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
        match HwAddr::parse_mac(token) {
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
        config.network.banned_macs.entry(mac).or_default();
    }
    Ok(())
}
