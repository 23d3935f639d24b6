//! The tokio shell around the core: receive, decide, persist, send.
//!
//! Rooms, one concern each: `sock` (the server's sockets on tokio, over leased-sock's safe
//! syscalls), `frame` (IPv4/UDP headers for the AF_PACKET path), `iface` (which interfaces to
//! serve), `server` (receive tasks and the engine task that owns the lease table and calls
//! [`leased_core::decide`]), `commit` (the door to the store's group commit: an ACK leaves only
//! after its lease is durable), `send` (carrying out a [`leased_core::Route`]), `events` (one log
//! line per event), [`Metrics`], `reload` (SIGHUP: validate, swap or keep the old config),
//! `shared` ([`SharedState`]: the read-only view and reload door for a sidecar such as the HTTP
//! API, see [`serve_with`]), `run` (start-up and graceful shutdown), [`privileges`] (dropping
//! root to `[server] user` once sockets are bound) and `notify` (the service manager: ready,
//! reloading, stopping, status and the watchdog fed from the engine task).
//!
//! No `unsafe` here: every syscall that needs it (AF_PACKET addresses, PACKET_AUXDATA,
//! registering raw sockets with tokio) is behind leased-sock's safe API, and the monitors'
//! ARP, ICMP and packet sockets and the neighbour table read are leased-sock's too; io keeps
//! the protocol bytes, the waiting and the capability helper that opens raw sockets after root
//! is dropped ([`privileges`]).
//!
//! Test mode: with ports other than 67/68 the server replies to each request's source address
//! and port instead of the RFC 2131 §4.1 route, so tests can run unprivileged on loopback.
#![forbid(unsafe_code)]

mod capture;
mod commit;
mod ddns;
mod events;
mod frame;
mod ha;
mod iface;
mod leasequery;
mod loaded;
mod metrics;
mod monitor;
mod notify;
pub mod privileges;
mod recv;
mod relay;
mod reload;
mod run;
mod send;
mod server;
mod shared;
mod snapshot;
mod sock;
mod sqlio;
#[cfg(test)]
mod testutil;

pub use ha::{HaCommand, HaStatus};
pub use loaded::Loaded;
pub use metrics::{LATENCY_BUCKETS, LatencySnapshot, Metrics};
pub use monitor::arp::{ArpFinding, ArpKind};
pub use monitor::rogue::ForeignServer;
pub use relay::{RelayCounters, RelayHooks, relay};
pub use shared::{
    ExportMetricsSource, ExportSinkMetrics, LeaseSnapshot, PUBLISH_EVERY, ReloadOutcome,
    SharedState,
};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Where the configuration comes from; a file can be reloaded on SIGHUP.
// Built once per process, so the size of the inline variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A TOML or JSON file, read at start and on every SIGHUP.
    File(std::path::PathBuf),
    /// An already validated configuration (tests, embedding); SIGHUP cannot reload it, and
    /// `LEASED_BANNED_MACS` is not merged into it.
    Inline(leased_config::Config),
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

/// Runs the server until SIGTERM/SIGINT (graceful: stops receiving, flushes pending commits,
/// removes the PID file). SIGHUP reloads.
pub async fn serve(params: ServeParams) -> anyhow::Result<()> {
    run::serve(params, ServeHooks::default()).await
}

/// A task that runs beside the server on its runtime (the HTTP API), until [`Shutdown`].
pub type Sidecar = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Starts a [`Sidecar`] once the server is ready (config loaded, store loaded, sockets bound),
/// before the first packet is handled. An error stops start-up (e.g. the API's port is taken).
pub type SidecarStart =
    Box<dyn FnOnce(Arc<SharedState>, Shutdown) -> anyhow::Result<Sidecar> + Send>;

/// What [`serve_with`] adds to [`serve`]. io knows nothing of HTTP: the binary hands in the API
/// as a sidecar, so the same serve loop runs with or without it.
#[derive(Default)]
pub struct ServeHooks {
    /// Run beside the server with a read-only view of it and a way to request reloads.
    pub sidecar: Option<SidecarStart>,
    /// Stop gracefully (like SIGTERM) when this completes: for tests and embedding.
    pub stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl std::fmt::Debug for ServeHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeHooks")
            .field("sidecar", &self.sidecar.is_some())
            .field("stop", &self.stop.is_some())
            .finish()
    }
}

/// Resolves when the server starts shutting down; a sidecar waits on it to stop in time.
#[derive(Debug, Clone)]
pub struct Shutdown(pub(crate) tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// Waits until shutdown begins (or the server is gone).
    pub async fn wait(mut self) {
        // An error means the sender is gone: the server has stopped, which is shutdown too.
        let _ = self.0.wait_for(|down| *down).await;
    }
}

/// [`serve`] with hooks: a sidecar task (the HTTP API) and a programmatic stop.
pub async fn serve_with(params: ServeParams, hooks: ServeHooks) -> anyhow::Result<()> {
    run::serve(params, hooks).await
}
