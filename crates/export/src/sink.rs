//! One destination (Sonar V1 or a webhook): its outbox, its upload loop, its status file.
//!
//! Each cycle takes the oldest unacknowledged records in chunks of at most `chunk_size`
//! (read from the outbox one chunk at a time, on a blocking thread), keeps the last event per
//! (MAC, IP) within the chunk, POSTs it, and acknowledges the chunk only on a 2xx. A failure keeps everything and retries after a backoff (5 s, doubling, at
//! most the cycle). Later chunks carry later events, so Sonar still sees the last one last.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use leased_config::{Secret, SonarSettings, WebhookSettings};
use leased_core::BindingEvent;
use serde::{Deserialize, Serialize};

use crate::files::{self, Perms};
use crate::format::{SonarAssignment, WebhookEvent, last_per_binding_index};
use crate::outbox::Outbox;
use crate::{blocking, lock};

/// Most payload bytes read for one chunk (plus at most one record), whatever `chunk_size`:
/// bounds an upload's memory when records are large.
pub const MAX_CHUNK_BYTES: usize = 16 << 20;

/// Sonar V1's batch endpoint, below the instance URL.
pub const SONAR_PATH: &str = "/api/v1/network/ipam/batch_dynamic_ip_assignment";
/// What `leased export test` asks Sonar (as the original's `sonar:test`).
pub const SONAR_TEST_PATH: &str = "/api/v1/system/tickets/ticket_groups?limit=1";

/// Where a destination posts and how it authenticates.
#[derive(Debug, Clone)]
pub enum Target {
    /// Sonar V1 with HTTP Basic.
    Sonar {
        /// Instance base URL.
        url: String,
        /// API user.
        username: String,
        /// API password (already read from the environment when configured so).
        password: String,
    },
    /// A generic JSON endpoint.
    Webhook {
        /// Endpoint URL.
        url: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
}

/// A destination's settings, resolved.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// `sonar` or `webhook`: the outbox subdirectory and the log name.
    pub name: &'static str,
    /// Where to post.
    pub target: Target,
    /// Cycle.
    pub interval: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Most items per POST.
    pub chunk_size: usize,
}

/// Resolves `password_env`.
pub fn secret(s: &Secret) -> anyhow::Result<String> {
    match s {
        Secret::Plain(p) => Ok(p.clone()),
        Secret::Env(name) => std::env::var(name)
            .map_err(|_| anyhow::anyhow!("export.sonar.password_env: ${name} is not set")),
    }
}

impl SinkConfig {
    /// From `[export.sonar]`.
    pub fn sonar(s: &SonarSettings) -> anyhow::Result<Self> {
        Ok(Self {
            name: "sonar",
            target: Target::Sonar {
                url: s.url.clone(),
                username: s.username.clone(),
                password: secret(&s.password)?,
            },
            interval: Duration::from_secs(u64::from(s.interval)),
            timeout: Duration::from_secs(u64::from(s.timeout)),
            chunk_size: s.chunk_size,
        })
    }

    /// From `[export.webhook]`.
    pub fn webhook(w: &WebhookSettings) -> Self {
        Self {
            name: "webhook",
            target: Target::Webhook {
                url: w.url.clone(),
                headers: w.headers.clone(),
            },
            interval: Duration::from_secs(u64::from(w.interval)),
            timeout: Duration::from_secs(u64::from(w.timeout)),
            chunk_size: w.chunk_size,
        }
    }
}

/// What `leased export status` shows, kept in `status.json` next to the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Unix seconds of the last 2xx.
    pub last_success: Option<u64>,
    /// Unix seconds and text of the last failure (cleared by nothing: it is history).
    pub last_error: Option<(u64, String)>,
    /// Items delivered since the outbox was created.
    pub delivered: u64,
    /// Uploads (POSTs) that got a 2xx.
    pub uploads: u64,
    /// Uploads that failed.
    pub failures: u64,
}

impl Status {
    /// Reads `dir/status.json` (default when absent or unreadable).
    pub fn load(dir: &Path) -> Self {
        std::fs::read(dir.join("status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes `dir/status.json` atomically with `perms` (blocking IO).
    fn save(&self, dir: &Path, perms: Perms) {
        let ok = serde_json::to_vec(self)
            .ok()
            .is_some_and(|b| files::write_atomic(dir, "status.json", &b, perms).is_ok());
        if !ok {
            tracing::warn!(dir = %dir.display(), "export: cannot save status.json");
        }
    }
}

/// A destination's upload counters since leased started, for the Prometheus `/metrics` (the
/// lifetime totals stay in `status.json`). Atomics, so a scrape never waits for an upload.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    uploads_ok: AtomicU64,
    uploads_failed: AtomicU64,
    entries_sent: AtomicU64,
    /// Unix seconds of the last 2xx; 0: none since start.
    last_success: AtomicU64,
    /// Summed duration of every upload (ok or failed), in microseconds.
    upload_micros: AtomicU64,
    outbox_depth: AtomicU64,
}

/// One reading of [`SinkMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SinkMetricsSnapshot {
    /// Uploads answered with a 2xx.
    pub uploads_ok: u64,
    /// Uploads that failed (transport error, timeout or non-2xx).
    pub uploads_failed: u64,
    /// Items delivered (acknowledged by a 2xx).
    pub entries_sent: u64,
    /// Unix seconds of the last 2xx since start.
    pub last_success: Option<u64>,
    /// Summed duration of all uploads, in seconds (count: ok + failed).
    pub upload_seconds_sum: f64,
    /// Records waiting in the outbox.
    pub outbox_depth: u64,
}

impl SinkMetrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> SinkMetricsSnapshot {
        let last = self.last_success.load(Ordering::Relaxed);
        SinkMetricsSnapshot {
            uploads_ok: self.uploads_ok.load(Ordering::Relaxed),
            uploads_failed: self.uploads_failed.load(Ordering::Relaxed),
            entries_sent: self.entries_sent.load(Ordering::Relaxed),
            last_success: (last != 0).then_some(last),
            upload_seconds_sum: self.upload_micros.load(Ordering::Relaxed) as f64 / 1e6,
            outbox_depth: self.outbox_depth.load(Ordering::Relaxed),
        }
    }

    /// Sets the outbox depth (after an append or an acknowledgement).
    pub(crate) fn set_depth(&self, depth: usize) {
        self.outbox_depth.store(depth as u64, Ordering::Relaxed);
    }

    fn upload(&self, ok: Option<usize>, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.upload_micros.fetch_add(micros, Ordering::Relaxed);
        match ok {
            Some(items) => {
                self.uploads_ok.fetch_add(1, Ordering::Relaxed);
                self.entries_sent.fetch_add(items as u64, Ordering::Relaxed);
                self.last_success.store(unix_now(), Ordering::Relaxed);
            }
            None => {
                self.uploads_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A running destination.
#[derive(Debug)]
pub struct Sink {
    /// Its settings.
    pub config: SinkConfig,
    /// Its outbox directory.
    pub dir: PathBuf,
    /// The queue; shared with the ingest side, which appends. Its IO blocks, so it is locked
    /// only on blocking threads (never across an `.await`).
    pub outbox: Arc<std::sync::Mutex<Outbox>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<SinkMetrics>,
    perms: Perms,
    client: reqwest::Client,
}

impl Sink {
    /// Opens the destination's outbox under `root`, owner-only.
    pub fn open(config: SinkConfig, root: &Path) -> anyhow::Result<Self> {
        Self::open_with(config, root, Perms::PRIVATE)
    }

    /// [`Sink::open`] with the given modes for its files.
    pub fn open_with(config: SinkConfig, root: &Path, perms: Perms) -> anyhow::Result<Self> {
        let dir = root.join(config.name);
        let outbox = Outbox::open_with(&dir, perms)
            .map_err(|e| anyhow::anyhow!("cannot open the outbox {}: {e}", dir.display()))?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("leased/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let metrics = Arc::new(SinkMetrics::default());
        metrics.set_depth(outbox.pending_records());
        Ok(Self {
            config,
            dir,
            outbox: Arc::new(std::sync::Mutex::new(outbox)),
            metrics,
            perms,
            client,
        })
    }

    fn request(&self, url: &str) -> reqwest::RequestBuilder {
        match &self.config.target {
            Target::Sonar {
                username, password, ..
            } => self.client.post(url).basic_auth(username, Some(password)),
            Target::Webhook { headers, .. } => {
                let mut r = self.client.post(url);
                for (k, v) in headers {
                    r = r.header(k.as_str(), v.as_str());
                }
                r
            }
        }
    }

    /// One POST of `events`; Ok on a 2xx.
    async fn post(&self, events: &[&BindingEvent]) -> Result<(), String> {
        let (url, body) = match &self.config.target {
            Target::Sonar { url, .. } => {
                let data: Vec<SonarAssignment> = events
                    .iter()
                    .map(|e| SonarAssignment::from_event(e))
                    .collect();
                (
                    format!("{url}{SONAR_PATH}"),
                    serde_json::json!({ "data": data }),
                )
            }
            Target::Webhook { url, .. } => {
                let data: Vec<WebhookEvent> =
                    events.iter().map(|e| WebhookEvent::from_event(e)).collect();
                (url.clone(), serde_json::json!({ "events": data }))
            }
        };
        let resp = self
            .request(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            Err(format!("HTTP {status}: {text}"))
        }
    }

    /// Uploads what is pending, one chunk at a time: up to `chunk_size` records (and at most
    /// [`MAX_CHUNK_BYTES`] of them) are read, the last event per (MAC, IP) among them is
    /// POSTed, and after the 2xx the outbox is acknowledged up to the chunk's last record (the
    /// others of the chunk were superseded within it), so nothing is lost and nothing
    /// delivered is sent again; a later chunk carries later events, so the destination still
    /// sees each binding's last event last. Only one chunk is in memory, and every file access
    /// runs on a blocking thread. Returns how many items were delivered, or the first error
    /// (what was delivered before it stays acknowledged).
    pub async fn flush(&self) -> Result<usize, String> {
        let outbox = Arc::clone(&self.outbox);
        let mut reader = blocking(move || lock(&outbox).reader())
            .await?
            .map_err(|e| format!("outbox read: {e}"))?;
        let chunk_size = self.config.chunk_size.max(1);
        let mut delivered = 0usize;
        loop {
            let (r, next) = blocking(move || {
                let c = reader.next_chunk::<BindingEvent>(chunk_size, MAX_CHUNK_BYTES);
                (reader, c)
            })
            .await?;
            reader = r;
            let Some(chunk) = next.map_err(|e| format!("outbox read: {e}"))? else {
                break;
            };
            let events: Vec<BindingEvent> = chunk.items.into_iter().map(|(_, e)| e).collect();
            let items: Vec<&BindingEvent> = last_per_binding_index(&events)
                .into_iter()
                .filter_map(|i| events.get(i))
                .collect();
            let started = std::time::Instant::now();
            let posted = if items.is_empty() {
                // Only unreadable records: nothing to send, but move past them.
                Ok(())
            } else {
                self.post(&items).await
            };
            let n = items.len();
            let outbox = Arc::clone(&self.outbox);
            let metrics = Arc::clone(&self.metrics);
            let dir = self.dir.clone();
            let perms = self.perms;
            let (epoch, end) = (reader.epoch(), chunk.end);
            match posted {
                Ok(()) => {
                    // Counted on the 2xx (the depth gauge follows once the ack is durable).
                    if n > 0 {
                        self.metrics.upload(Some(n), started.elapsed());
                    }
                    blocking(move || -> std::io::Result<()> {
                        {
                            let mut o = lock(&outbox);
                            o.ack_read(epoch, end)?;
                            metrics.set_depth(o.pending_records());
                        }
                        if n > 0 {
                            let mut status = Status::load(&dir);
                            status.last_success = Some(unix_now());
                            status.delivered += n as u64;
                            status.uploads += 1;
                            status.save(&dir, perms);
                        }
                        Ok(())
                    })
                    .await?
                    .map_err(|e| format!("outbox ack: {e}"))?;
                    if n == 0 {
                        continue;
                    }
                    delivered += n;
                    tracing::info!(
                        sink = self.config.name,
                        items = n,
                        records = chunk.records,
                        ms = started.elapsed().as_millis() as u64,
                        "export: upload ok"
                    );
                }
                Err(e) => {
                    self.metrics.upload(None, started.elapsed());
                    let err = e.clone();
                    blocking(move || {
                        let mut status = Status::load(&dir);
                        status.last_error = Some((unix_now(), err));
                        status.failures += 1;
                        status.save(&dir, perms);
                    })
                    .await?;
                    tracing::warn!(
                        sink = self.config.name,
                        items = n,
                        error = %e,
                        "export: upload failed; kept for retry"
                    );
                    return Err(e);
                }
            }
        }
        Ok(delivered)
    }

    /// Uploads on the cycle until `stop`; after a failure, retries sooner (backoff from 5 s,
    /// doubling, capped at the cycle).
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            let wait = if failures == 0 {
                self.config.interval
            } else {
                let b = Duration::from_secs(
                    5u64.saturating_mul(1 << failures.min(10).saturating_sub(1)),
                );
                b.min(self.config.interval)
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match self.flush().await {
                Ok(_) => failures = 0,
                Err(_) => failures = failures.saturating_add(1),
            }
        }
    }

    /// `leased export test`: Sonar's credential check as the original's `sonar:test` (GET
    /// ticket groups with Basic auth); for a webhook, a POST of an empty batch.
    pub async fn test(&self) -> Result<String, String> {
        match &self.config.target {
            Target::Sonar {
                url,
                username,
                password,
            } => {
                let resp = self
                    .client
                    .get(format!("{url}{SONAR_TEST_PATH}"))
                    .basic_auth(username, Some(password))
                    .send()
                    .await
                    .map_err(|e| format!("The request failed with {e}"))?;
                if resp.status().is_success() {
                    Ok("Success!".into())
                } else {
                    Err(format!("The request failed with HTTP {}", resp.status()))
                }
            }
            Target::Webhook { url, .. } => {
                let resp = self
                    .request(url)
                    .json(&serde_json::json!({ "events": [] }))
                    .send()
                    .await
                    .map_err(|e| format!("The request failed with {e}"))?;
                if resp.status().is_success() {
                    Ok("Success!".into())
                } else {
                    Err(format!("The request failed with HTTP {}", resp.status()))
                }
            }
        }
    }
}
