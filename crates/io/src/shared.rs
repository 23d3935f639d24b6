//! A read-only window on the running server for the HTTP API (and anything else beside it).
//!
//! Why a published snapshot rather than a lock on the lease table: the engine must never wait
//! for a reader. The engine owns the table and, when it changed, publishes a copy at most every
//! [`PUBLISH_EVERY`] (longer when copying gets expensive, see `Engine::publish`), through an
//! [`ArcSwap`]; readers load the latest copy without blocking anyone. The plan is the very
//! `ArcSwap` the engine reads, so a reload is visible here the moment it is in place.
//!
//! Reloads requested here go through the serve loop, the same code path as SIGHUP, and the
//! answer comes back only after the new plan is in place (or the old one was kept).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use leased_core::Plan;
use tokio::sync::{mpsc, oneshot};

use crate::ConfigSource;
use crate::loaded::{Current, Loaded};
use crate::metrics::Metrics;
pub use crate::snapshot::LeaseSnapshot;

/// How often, at most, the engine publishes a changed lease table.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// What a reload requested through [`SharedState::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new plan is in place: the next packet is decided with it.
    Swapped,
    /// The file was invalid; the old plan keeps serving. The errors, one per line, as
    /// `file:line:col: key: message`.
    Kept(Vec<String>),
    /// The configuration was given inline; there is no file to re-read.
    NotAFile,
}

/// One billing-export destination's upload counters, as the export sidecar reports them, for
/// the HTTP API's `/metrics` (io knows nothing of the export; it only carries the numbers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportSinkMetrics {
    /// `sonar` or `webhook`.
    pub destination: String,
    /// Uploads answered with a 2xx since start.
    pub uploads_ok: u64,
    /// Uploads that failed since start.
    pub uploads_failed: u64,
    /// Items delivered since start.
    pub entries_sent: u64,
    /// Records waiting in the outbox.
    pub outbox_depth: u64,
    /// Unix seconds of the last 2xx since start.
    pub last_success: Option<u64>,
    /// Summed duration of all uploads (ok + failed), in seconds.
    pub upload_seconds_sum: f64,
}

/// Reads the export's counters at scrape time (set once by the export sidecar).
pub type ExportMetricsSource = Box<dyn Fn() -> Vec<ExportSinkMetrics> + Send + Sync>;

/// The server's state as seen from outside the engine. Shared as `Arc<SharedState>`.
pub struct SharedState {
    pub(crate) current: Current,
    pub(crate) leases: ArcSwap<LeaseSnapshot>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) source: ConfigSource,
    pub(crate) reload_tx: mpsc::Sender<oneshot::Sender<ReloadOutcome>>,
    pub(crate) started: Instant,
    /// Where the engine sends binding events (ACK, RELEASE, NAK, expiry) for the billing
    /// export; unset: nobody listens.
    pub(crate) bindings: std::sync::OnceLock<mpsc::UnboundedSender<leased_core::BindingEvent>>,
    /// What the network monitors found (foreign DHCP servers, ARP anomalies).
    pub(crate) monitors: crate::monitor::Monitors,
    /// The billing export's counters; unset: no export runs.
    pub(crate) export_metrics: std::sync::OnceLock<ExportMetricsSource>,
    /// The HA side's status and command door, with `[ha]`.
    pub(crate) ha: Option<crate::ha::HaView>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("source", &self.source)
            .field("started", &self.started)
            .field("export_metrics", &self.export_metrics.get().is_some())
            .finish_non_exhaustive()
    }
}

impl SharedState {
    /// Asks the engine to send every binding event to `sink` from now on (the export
    /// sidecar calls this once at start). False if a sink was already set.
    pub fn set_binding_sink(&self, sink: mpsc::UnboundedSender<leased_core::BindingEvent>) -> bool {
        self.bindings.set(sink).is_ok()
    }

    /// Lets the export sidecar publish its upload counters on `/metrics` (called once at
    /// start). False if a source was already set.
    pub fn set_export_metrics(&self, source: ExportMetricsSource) -> bool {
        self.export_metrics.set(source).is_ok()
    }

    /// Every export destination's counters now (empty when no export runs).
    pub fn export_metrics(&self) -> Vec<ExportSinkMetrics> {
        self.export_metrics.get().map_or_else(Vec::new, |f| f())
    }

    /// The foreign DHCP servers the rogue-server monitor has seen, in (address, MAC) order
    /// (empty when `[rogue_servers]` is off).
    pub fn foreign_servers(&self) -> Vec<crate::ForeignServer> {
        let t = self
            .monitors
            .foreign
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        t.list()
    }

    /// The ARP anomalies present at the latest scan, in (address, MAC) order (empty when
    /// `[arp_watch]` is off).
    pub fn arp_findings(&self) -> Vec<crate::ArpFinding> {
        let t = self.monitors.arp.lock().unwrap_or_else(|p| p.into_inner());
        t.list()
    }

    /// The HA side's state, counters and partner, with `[ha]` (published by the engine task,
    /// at most a quarter second old).
    pub fn ha_status(&self) -> Option<crate::HaStatus> {
        self.ha.as_ref().map(|h| (**h.status.load()).clone())
    }

    /// Asks the HA side to enter maintenance, resume or sync. `None` without `[ha]` or while
    /// shutting down; else what it did, or why it refused.
    pub async fn ha_command(&self, cmd: crate::HaCommand) -> Option<Result<String, String>> {
        self.ha.as_ref()?.command(cmd).await
    }

    /// The plan the engine decides with right now.
    pub fn plan(&self) -> Arc<Plan> {
        Arc::clone(&self.current.load().plan)
    }

    /// The configuration in force right now (the rooms' settings; the plan is built from it).
    pub fn loaded(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// The latest published copy of the lease table (at most ~[`PUBLISH_EVERY`] old while the
    /// engine keeps up).
    pub fn leases(&self) -> Arc<LeaseSnapshot> {
        self.leases.load_full()
    }

    /// The server's counters and reply-latency histogram.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Where the configuration comes from (a file can be edited and reloaded).
    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    /// How long the server has been running.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Re-reads the configuration exactly as SIGHUP does and returns once the serve loop has
    /// swapped the plan in (or kept the old one). `None` when the server is shutting down.
    pub async fn reload(&self) -> Option<ReloadOutcome> {
        let (tx, rx) = oneshot::channel();
        self.reload_tx.send(tx).await.ok()?;
        rx.await.ok()
    }
}
