//! The tokio shell around the core: receive, decide, persist, send.
//!
//! Rooms, one concern each: `sock` (every syscall: IP_PKTINFO, SO_BINDTODEVICE, AF_PACKET
//! send), `frame` (IPv4/UDP headers for the AF_PACKET path), `iface` (which interfaces to
//! serve), `server` (receive tasks and the engine task that owns the lease table and calls
//! [`leased_core::decide`]), `commit` (the door to the store's group commit: an ACK leaves only
//! after its lease is durable), `send` (carrying out a [`leased_core::Route`]), `events` (one log
//! line per event), [`Metrics`], `reload` (SIGHUP: validate, swap or keep the old config), and
//! `run` (start-up and graceful shutdown).
//!
//! Test mode: with ports other than 67/68 the server replies to each request's source address
//! and port instead of the RFC 2131 §4.1 route, so tests can run unprivileged on loopback.

mod commit;
mod events;
mod frame;
mod iface;
mod metrics;
mod reload;
mod run;
mod send;
mod server;
mod sock;
#[cfg(test)]
mod testutil;

pub use metrics::Metrics;

/// Where the configuration comes from; a file can be reloaded on SIGHUP.
// Built once per process, so the size of the inline variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A TOML or JSON file, read at start and on every SIGHUP.
    File(std::path::PathBuf),
    /// An already validated configuration (tests, embedding); SIGHUP cannot reload it, and
    /// `LEASED_BANNED_MACS` is not merged into it.
    Inline(leased_core::config::Config),
}

/// Everything `leased serve` needs.
#[derive(Debug, Clone)]
pub struct ServeParams {
    /// The configuration to serve.
    pub source: ConfigSource,
    /// Port requests arrive on: 67. Any other value (with `client_port`) selects test mode.
    pub server_port: u16,
    /// Port clients listen on: 68.
    pub client_port: u16,
}

/// Loads a config file exactly as serve and reload do (file → validate → merge
/// LEASED_BANNED_MACS from the environment), so `leased check` accepts exactly what the server
/// will run.
pub fn load_config(
    path: &std::path::Path,
) -> Result<leased_core::config::Config, leased_core::config::ConfigErrors> {
    reload::load_config(path)
}

/// Runs the server until SIGTERM/SIGINT (graceful: stops receiving, flushes pending commits,
/// removes the PID file). SIGHUP reloads.
pub async fn serve(params: ServeParams) -> anyhow::Result<()> {
    run::serve(params).await
}
