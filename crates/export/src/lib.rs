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
//!
//! The async workers that run the exporter also serve DHCP, so none of them waits on a disk:
//! the tracker and the outboxes are touched only on tokio's blocking threads, behind
//! std mutexes that are never held across an `.await`. Files are created with [`Perms`]
//! (owner-only by default).
#![forbid(unsafe_code)]

pub mod auth;
pub mod files;
pub mod format;
pub mod outbox;
pub mod router;
pub mod sink;
pub mod tracker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use leased_config::ExportSettings;
use leased_core::{BindingEvent, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};

pub use files::Perms;
pub use sink::{SinkConfig, SinkMetrics, SinkMetricsSnapshot, Status};

/// Runs `f` (blocking file IO) on tokio's blocking pool, so that the async workers serving
/// DHCP never wait on a disk.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("export: a file task failed: {e}"))
}

/// Locks `m`; a panic elsewhere while it was held leaves the data as it was, which every user
/// here can take (each change is made durable or reported as failed before the lock drops).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
    /// Locked only on blocking threads (its saves fsync).
    tracker: Arc<std::sync::Mutex<tracker::Tracker>>,
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
    /// Opens the outboxes and the tracker under `settings.outbox`, owner-only (blocking IO:
    /// call it at start-up or on a blocking thread).
    pub fn open(settings: &ExportSettings) -> anyhow::Result<Self> {
        Self::open_with(settings, Perms::PRIVATE)
    }

    /// [`Exporter::open`] with the given modes for its files.
    pub fn open_with(settings: &ExportSettings, perms: Perms) -> anyhow::Result<Self> {
        let root = settings.outbox.clone();
        let mut sinks = Vec::new();
        for c in sink_configs(settings)? {
            sinks.push(Arc::new(sink::Sink::open_with(c, &root, perms)?));
        }
        let tracker = tracker::Tracker::open_with(&root, perms).map_err(|e| {
            anyhow::anyhow!("cannot open {}: {e}", root.join("bindings.json").display())
        })?;
        let (router_tx, router_rx) = mpsc::channel(1024);
        Ok(Self {
            sinks,
            tracker: Arc::new(std::sync::Mutex::new(tracker)),
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

    /// Passes `input` through the tracker, appends what is to be reported to every outbox and
    /// saves the tracker, all on a blocking thread; the loop awaits it before taking more
    /// input, so the tracker's lock is never contended.
    async fn persist(&self, input: Input) -> Result<(), String> {
        let tracker = Arc::clone(&self.tracker);
        let outboxes: Vec<(
            Arc<std::sync::Mutex<outbox::Outbox>>,
            Arc<SinkMetrics>,
            PathBuf,
        )> = self
            .sinks
            .iter()
            .map(|s| (Arc::clone(&s.outbox), Arc::clone(&s.metrics), s.dir.clone()))
            .collect();
        blocking(move || {
            let mut t = lock(&tracker);
            let mut report: Vec<BindingEvent> = Vec::new();
            if let Some(now) = input.tick {
                report.extend(t.tick(now));
            }
            for ev in input.events {
                report.extend(t.on_event(ev));
            }
            for ev in input.router {
                // A router is the source of truth for its own bindings: its entry is reported
                // whatever the tracker knew, and the tracker follows it.
                let _ = t.on_event(ev.clone());
                report.push(ev);
            }
            let res = (|| {
                if !report.is_empty() {
                    for (o, metrics, dir) in &outboxes {
                        let mut o = lock(o);
                        o.append(&report)
                            .map_err(|e| format!("outbox {}: {e}", dir.display()))?;
                        metrics.set_depth(o.pending_records());
                    }
                }
                t.save().map_err(|e| format!("bindings.json: {e}"))
            })();
            if let Err(e) = &res {
                tracing::error!(error = %e, lost = report.len(), "export: cannot make events durable");
            }
            res
        })
        .await?
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
            let mut input = Input::default();
            let mut waiting: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
            tokio::select! {
                () = &mut stop => break,
                _ = tick.tick() => input.tick = Some(unix_now()),
                ev = events.recv(), if events_open => match ev {
                    Some(ev) => {
                        input.events.push(ev);
                        // Take whatever else is queued: one fsync for the lot.
                        while input.events.len() < 10_000 {
                            match events.try_recv() {
                                Ok(ev) => input.events.push(ev),
                                Err(_) => break,
                            }
                        }
                    }
                    None => events_open = false,
                },
                item = self.router_rx.recv() => {
                    if let Some((ev, done)) = item {
                        input.router.push(ev);
                        waiting.push(done);
                    }
                }
            }
            if input.is_empty() {
                continue;
            }
            let res = self.persist(input).await;
            for w in waiting {
                let _ = w.send(res.clone());
            }
        }
        // What io sent before stopping is kept, not dropped.
        let mut rest = Input::default();
        while let Ok(ev) = events.try_recv() {
            rest.events.push(ev);
        }
        if !rest.is_empty() {
            let _ = self.persist(rest).await;
        }
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }
}

/// What one turn of the exporter's loop hands the tracker.
#[derive(Debug, Default)]
struct Input {
    /// Expire what is due at this time.
    tick: Option<Timestamp>,
    /// Events from io.
    events: Vec<BindingEvent>,
    /// Entries from router scripts (reported whatever the tracker knew).
    router: Vec<BindingEvent>,
}

impl Input {
    fn is_empty(&self) -> bool {
        self.tick.is_none() && self.events.is_empty() && self.router.is_empty()
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
        let depth = outbox::Outbox::count_pending(&dir)
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
/// Each destination is opened as `leased serve` would, with its scratch outbox under
/// `scratch`, a directory the caller made private (nothing of the real outbox is touched).
pub async fn test(
    settings: &ExportSettings,
    scratch: &std::path::Path,
) -> anyhow::Result<Vec<(String, Result<String, String>)>> {
    let mut out = Vec::new();
    for c in sink_configs(settings)? {
        let name = c.name.to_string();
        let s = sink::Sink::open(c, scratch)?;
        out.push((name, s.test().await));
    }
    Ok(out)
}
