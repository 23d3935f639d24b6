//! leased's configuration: the file stage, its positions, the checks of meaning, the
//! environment merge, the reservation editor, and every room's settings.
//!
//! Two stages, as hickory and dora do it: a serde *file* stage (`file` types,
//! assembled in `schema`) that is strict about keys and types (every error carries
//! file:line:col and the key), then a *model* stage (`validate`) that checks meaning (pools
//! inside subnets, unique reservations, …) and pre-encodes every option so that decisions only
//! copy bytes. The result is a [`Config`]: core's protocol model ([`Network`], all a decision
//! may read) beside each room's settings (API keys, export credentials and database URLs stay
//! here, out of the plan). `leased check`, `serve` and reload all call [`load`].
#![forbid(unsafe_code)]

mod account;
mod api;
mod arp;
mod conflict;
mod console;
mod ctx;
mod ddns;
pub mod edit;
mod error;
mod export;
mod file;
mod ha;
mod ipv6_only;
mod leasequery;
mod limits;
mod load;
mod lookup;
mod model;
mod options;
mod relay;
mod relay_auth;
mod rogue;
mod schema;
mod span;
mod sql;
#[cfg(test)]
mod tests;
mod trust;
mod validate;
mod warnings;

pub use account::AccountName;
pub use api::{
    ApiSettings, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT, MIN_KEY_LEN, TlsSettings, api_key_problem,
};
pub use arp::ArpWatchSettings;
pub use console::ConsoleSettings;
pub use ddns::{DdnsSettings, DdnsZones, TsigAlgorithm};
pub use error::{ConfigError, ConfigErrors};
pub use export::{ExportSettings, RouterCredential, Secret, SonarSettings, WebhookSettings};
pub use ha::{HaKey, HaSettings, HaTls, MIN_HA_KEY_LEN};
pub use leased_core::model::*;
pub use leased_engine::{ConflictCheckMode, ConflictCheckSettings, Limits, RateLimit};
pub use leasequery::LeasequerySettings;
pub use load::{BANNED_ENV, Format, load, load_file, load_str, merge_banned_env};
pub use lookup::{RunAs, resolve_accounts};
pub use model::{Config, LogFormat, LogSettings, ProcessSettings, StoreSettings};
pub use relay::{AuthKey, RelayInterface, RelaySettings};
pub use relay_auth::MIN_AUTH_KEY_LEN;
pub use rogue::RogueSettings;
pub use sql::{SqlAssignment, SqlBackend, SqlFallback, SqlQuery, SqlStoreSettings};
pub use warnings::{rapid_commit_warnings, relay_trust_warnings};
