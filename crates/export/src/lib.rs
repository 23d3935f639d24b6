//! Billing export of leased: binding events from served or relayed traffic and from router
//! scripts, made durable in an outbox and uploaded on a cycle to Sonar V1 and/or a webhook.
//!
//! Rooms: `tracker` (which bindings are live: each end reported once), `outbox` (the durable
//! queue, one per destination), `format` (Sonar and webhook items, the original's MAC
//! formatter), `sink` (one destination's upload loop and status), `router` (the Sonar-batcher
//! compatible `/api/dhcp_assignments` endpoint, mounted by the HTTP API).
//!
//! Flow: io sends [`BindingEvent`]s into an unbounded channel → [`Exporter::run`] passes them
//! through the tracker, appends what is to be reported to every destination's outbox (one
//! fsync per destination per batch) → each [`sink::Sink`] uploads on its cycle and
//! acknowledges only after a 2xx.
#![forbid(unsafe_code)]

pub mod format;
pub mod outbox;
pub mod router;
pub mod sink;
pub mod tracker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use leased_core::config::ExportSettings;
use leased_core::{BindingEvent, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};

pub use sink::{SinkConfig, SinkMetrics, SinkMetricsSnapshot, Status};

/// How often live bindings are checked for expiry.
const TICK: Duration = Duration::from_secs(1);

/// A router-reported entry waiting for its durable append.
type RouterItem = (BindingEvent, oneshot::Sender<Result<(), String>>);

/// A way to queue router-reported entries (the HTTP endpoint holds one). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ExportHandle {
    tx: mpsc::Sender<RouterItem>,
}

impl ExportHandle {
    /// Queues `ev` and answers once it is durable in every destination's outbox.
    pub async fn submit(&self, ev: BindingEvent) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((ev, tx))
            .await
            .map_err(|_| "the exporter has stopped".to_string())?;
        rx.await
            .map_err(|_| "the exporter has stopped".to_string())?
    }
}

/// The running export: tracker, destinations and the router queue.
#[derive(Debug)]
pub struct Exporter {
    sinks: Vec<Arc<sink::Sink>>,
    tracker: tracker::Tracker,
    router_tx: mpsc::Sender<RouterItem>,
    router_rx: mpsc::Receiver<RouterItem>,
    /// The outbox root directory.
    pub root: PathBuf,
}

fn unix_now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The configured destinations, resolved (reads `password_env`).
pub fn sink_configs(settings: &ExportSettings) -> anyhow::Result<Vec<SinkConfig>> {
    let mut out = Vec::new();
    if let Some(s) = &settings.sonar {
        out.push(SinkConfig::sonar(s)?);
    }
    if let Some(w) = &settings.webhook {
        out.push(SinkConfig::webhook(w));
    }
    Ok(out)
}

impl Exporter {
    /// Opens the outboxes and the tracker under `settings.outbox`.
    pub fn open(settings: &ExportSettings) -> anyhow::Result<Self> {
        let root = settings.outbox.clone();
        let mut sinks = Vec::new();
        for c in sink_configs(settings)? {
            sinks.push(Arc::new(sink::Sink::open(c, &root)?));
        }
        let tracker = tracker::Tracker::open(&root).map_err(|e| {
            anyhow::anyhow!("cannot open {}: {e}", root.join("bindings.json").display())
        })?;
        let (router_tx, router_rx) = mpsc::channel(1024);
        Ok(Self {
            sinks,
            tracker,
            router_tx,
            router_rx,
            root,
        })
    }

    /// A handle for the router endpoint.
    pub fn handle(&self) -> ExportHandle {
        ExportHandle {
            tx: self.router_tx.clone(),
        }
    }

    /// Every destination's name and live counters (the `/metrics` of the HTTP API reads them
    /// through io's `SharedState`, so uploads are visible where the server's counters are).
    pub fn metrics(&self) -> Vec<(&'static str, Arc<SinkMetrics>)> {
        self.sinks
            .iter()
            .map(|s| (s.config.name, Arc::clone(&s.metrics)))
            .collect()
    }

    /// Appends `events` to every outbox, then saves the tracker.
    async fn persist(&mut self, events: &[BindingEvent]) -> Result<(), String> {
        if !events.is_empty() {
            for s in &self.sinks {
                let mut o = s.outbox.lock().await;
                o.append(events)
                    .map_err(|e| format!("outbox {}: {e}", s.dir.display()))?;
                s.metrics.set_depth(o.pending_records());
            }
        }
        self.tracker
            .save()
            .map_err(|e| format!("bindings.json: {e}"))
    }

    /// Runs until `stop` resolves: takes events from `events`, uploads on each destination's
    /// cycle. What is queued stays in the outboxes across restarts.
    pub async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<BindingEvent>,
        stop: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for s in &self.sinks {
            tracing::info!(
                sink = s.config.name,
                interval_s = s.config.interval.as_secs(),
                outbox = %s.dir.display(),
                "export: destination ready"
            );
            tasks.push(tokio::spawn(Arc::clone(s).run(stop_rx.clone())));
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        let mut events_open = true;
        loop {
            let mut report: Vec<BindingEvent> = Vec::new();
            let mut waiting: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
            tokio::select! {
                () = &mut stop => break,
                _ = tick.tick() => {
                    report.extend(self.tracker.tick(unix_now()));
                }
                ev = events.recv(), if events_open => match ev {
                    Some(ev) => {
                        report.extend(self.tracker.on_event(ev));
                        // Take whatever else is queued: one fsync for the lot.
                        while report.len() < 10_000 {
                            match events.try_recv() {
                                Ok(ev) => report.extend(self.tracker.on_event(ev)),
                                Err(_) => break,
                            }
                        }
                    }
                    None => events_open = false,
                },
                item = self.router_rx.recv() => {
                    if let Some((ev, done)) = item {
                        // A router is the source of truth for its own bindings: its entry is
                        // reported whatever the tracker knew, and the tracker follows it.
                        let _ = self.tracker.on_event(ev.clone());
                        report.push(ev);
                        waiting.push(done);
                    }
                }
            }
            let res = self.persist(&report).await;
            if let Err(e) = &res {
                tracing::error!(error = %e, lost = report.len(), "export: cannot make events durable");
            }
            for w in waiting {
                let _ = w.send(res.clone());
            }
        }
        // What io sent before stopping is kept, not dropped.
        let mut rest = Vec::new();
        while let Ok(ev) = events.try_recv() {
            rest.extend(self.tracker.on_event(ev));
        }
        if let Err(e) = self.persist(&rest).await {
            tracing::error!(error = %e, lost = rest.len(), "export: cannot make events durable");
        }
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// One destination's state for `leased export status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SinkStatus {
    /// `sonar` or `webhook`.
    pub name: &'static str,
    /// Records waiting in the outbox.
    pub queue_depth: usize,
    /// Saved upload history.
    pub status: Status,
}

/// Reads every configured destination's queue depth and status (works while leased runs:
/// the outbox is only read).
pub fn status(settings: &ExportSettings) -> anyhow::Result<Vec<SinkStatus>> {
    let mut out = Vec::new();
    let names = settings
        .sonar
        .iter()
        .map(|_| "sonar")
        .chain(settings.webhook.iter().map(|_| "webhook"));
    for name in names {
        let dir = settings.outbox.join(name);
        let depth = outbox::Outbox::read_pending::<serde_json::Value>(&dir)
            .map(|v| v.len())
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        out.push(SinkStatus {
            name,
            queue_depth: depth,
            status: Status::load(&dir),
        });
    }
    Ok(out)
}

/// `leased export test`: checks every destination's credentials; one line per destination.
pub async fn test(
    settings: &ExportSettings,
) -> anyhow::Result<Vec<(String, Result<String, String>)>> {
    let mut out = Vec::new();
    let tmp = std::env::temp_dir().join(format!("leased-export-test-{}", std::process::id()));
    for c in sink_configs(settings)? {
        let name = c.name.to_string();
        let s = sink::Sink::open(c, &tmp)?;
        out.push((name, s.test().await));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(out)
}
