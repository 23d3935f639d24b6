//! The whole validated configuration: the protocol model decisions read (core's
//! [`Network`]) and each room's settings beside it. Built only by the loader, so every value
//! has passed its checks.

use std::path::PathBuf;

use leased_core::model::Network;

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// What decisions read; the plan is built from this alone.
    pub network: Network,
    /// How the process runs: which interfaces, PID file, reload, the account it drops to.
    pub process: ProcessSettings,
    pub store: StoreSettings,
    pub logging: LogSettings,
    /// The HTTP API (`[api]`); `None`: no API.
    pub api: Option<crate::api::ApiSettings>,
    /// `leased relay` settings (`[relay]`); `None`: not configured.
    pub relay: Option<crate::relay::RelaySettings>,
    /// Billing export (`[export]`); `None`: no export.
    pub export: Option<crate::export::ExportSettings>,
    /// Starvation defence (`[limits]`): rate limits and offer caps the engine enforces before
    /// `decide`; all off by default.
    pub limits: leased_engine::Limits,
    /// Rogue DHCP server detection (`[rogue_servers]`); off by default.
    pub rogue_servers: crate::rogue::RogueSettings,
    /// ARP anomaly detection (`[arp_watch]`); off by default.
    pub arp_watch: crate::arp::ArpWatchSettings,
    /// Check an address is free before offering it (`[server] conflict_check`); off by default.
    pub conflict_check: leased_engine::ConflictCheckSettings,
    /// The live log console (`[console]`); `None`: no console.
    pub console: Option<crate::console::ConsoleSettings>,
    /// The SQL assignment chain (`[sql_assignment]`); `None`: none.
    pub sql_assignment: Option<crate::sql::SqlAssignment>,
    /// High availability with a partner server (`[ha]`); `None`: standalone.
    pub ha: Option<crate::ha::HaSettings>,
    /// Dynamic DNS updates (`[ddns]`); `None`: none.
    pub ddns: Option<crate::ddns::DdnsSettings>,
    /// Leasequery (`[leasequery]`); `None`: no query is answered.
    pub leasequery: Option<crate::leasequery::LeasequerySettings>,
}

impl Config {
    /// What the engine enforces around decisions, from this config.
    pub fn engine_settings(&self) -> leased_engine::EngineSettings {
        leased_engine::EngineSettings {
            limits: self.limits.clone(),
            conflict_check: self.conflict_check.clone(),
            history_slices: self
                .sql_assignment
                .as_ref()
                .filter(|s| s.history_sql.is_some())
                .map(|s| s.slices.clone()),
        }
    }
}

/// The `[server]` keys that are about the process, not the protocol.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSettings {
    /// Interfaces to serve; empty means every interface with an address in a subnet.
    pub interfaces: Vec<String>,
    pub pid_file: Option<PathBuf>,
    /// Reload when the config file changes (validated like SIGHUP). Default false.
    pub auto_reload: bool,
    /// Run as this user once sockets are bound and files are open (`[server] user`); `None`:
    /// stay as started. io resolves the name and drops root to it.
    pub user: Option<crate::account::AccountName>,
    /// Run as this group (`[server] group`); `None`: the user's primary group. With it set,
    /// files leased creates are meant for that group to read (0640).
    pub group: Option<crate::account::AccountName>,
}

/// Where leases are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Embedded store file. Default `leased.leases` in the working directory.
    pub path: PathBuf,
    /// A shared SQL lease store instead of the embedded one (`backend`, `url`, …).
    pub sql: Option<crate::sql::SqlStoreSettings>,
}

/// How events are logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// tracing filter, e.g. `info` or `leased=debug`. Default `info`.
    pub level: String,
    /// Append the log to this file instead of stderr (reopened on SIGUSR1, for logrotate).
    pub file: Option<PathBuf>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}
