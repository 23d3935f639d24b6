//! The SQL side of `serve`: everything that talks to a database *around* the engine, so the
//! engine itself never awaits.
//!
//! - **Assignment chain** ([`front`]): between the receive tasks and the engine. DISCOVER,
//!   REQUEST and INFORM run `[sql_assignment]`'s queries on a bounded set of tasks (a semaphore
//!   of `max_concurrency` permits: further packets wait in the receive queue, which drops the
//!   newest when full); the hit becomes [`Request::assignment`], and `fallback` decides what a
//!   failed chain means (`pools`: decide normally; `silent`: drop, counted as
//!   `sql_unavailable`).
//! - **Outage**: the commit thread and the sync loop keep one "database down" flag. While it is
//!   set, DISCOVERs are dropped (`store_down`) unless `offer_when_down`: an OFFER whose ACK
//!   cannot be made durable only sends the client into a REQUEST that fails. ACKs need no
//!   gate: they leave only after their commit, which fails while the database is down.
//! - **Sync** ([`sync_loop`]): every `sync_interval`, the rows other servers wrote are applied
//!   to the engine's table, so this server stops offering addresses they gave out.
//! - **Conflict recovery** ([`ConflictTap`] + [`resolve_conflicts`]): after a commit reported
//!   addresses held by another client, their real rows are read and applied to the table, so
//!   the client's retry is NAKed or offered another address instead of conflicting again.
//! - **History** ([`HistoryTx`] + [`history_writer`]): every lease event goes over a bounded
//!   channel to a writer task (embedded history file, or `leased_history` with an SQL store,
//!   plus the operator's `history_sql`). A full channel drops the record and counts it: the
//!   audit trail must never slow down or block a reply. The file is written and fsynced by the
//!   store's own writer thread ([`HistoryWriter`]), which keeps it open.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use leased_config::{Config, SqlAssignment, SqlFallback};
use leased_core::{ClientId, Lease, LeaseState};
use leased_engine::LeaseEvent;
use leased_store::history::{
    HistoryCounters, HistoryFile, HistoryRecord, HistoryWriter, TrySubmitError, history_path,
};
use leased_store::sql::{
    ChainOutcome, Db, OP_TIMEOUT, SYNC_OVERLAP_MS, SqlChain, insert_history, run_user_statement,
};
use leased_store::{FileMode, LeaseStore, StoreError};
use leased_wire::MessageType;
use tokio::sync::{Semaphore, mpsc};

use crate::loaded::Current;
use crate::metrics::Metrics;
use crate::recv::{Inbound, LaneRx, Lanes};

/// How often "the database is down" is repeated while it stays down (plus one line when it
/// goes down and one when it comes back). Often enough to be seen, rare enough not to flood.
pub(crate) const DOWN_LOG_EVERY: Duration = Duration::from_secs(30);

/// Capacity of the history channel: a few seconds of lease events at full load.
pub(crate) const HISTORY_CAP: usize = 8192;

/// Records written per batch (one transaction / one file append).
const HISTORY_BATCH: usize = 512;

/// Capacity of the channel of externally learned leases into the engine.
pub(crate) const EXTERNAL_CAP: usize = 64;

/// Leases per message on the external channel (a full sync of a big table is chunked).
const EXTERNAL_CHUNK: usize = 1024;

/// The database-health flag shared by the commit thread, the sync loop and [`front`].
#[derive(Debug, Default)]
pub(crate) struct DbHealth {
    down: AtomicBool,
}

impl DbHealth {
    /// True while the last database operation failed.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Records an operation's outcome; logs the transitions.
    pub(crate) fn set(&self, down: bool, why: &str) {
        let was = self.down.swap(down, Ordering::Relaxed);
        if was != down {
            if down {
                tracing::error!(error = %why, "lease database unreachable: no ACKs until it is back");
            } else {
                tracing::warn!("lease database reachable again: serving resumed");
            }
        }
    }
}

/// Lazy lease changes (RELEASE, DECLINE, expiry) held for retry after a failed commit.
/// Bounded: an outage long enough to fill it drops the newest (the row then stays as it was:
/// the address looks held a little longer, which is safe).
pub(crate) const RETRY_CAP: usize = 65_536;

/// RELEASE and DECLINE history whose lease change failed to commit and waits in
/// [`ConflictTap`]'s retry queue: written when the retry makes the change durable, discarded
/// when the change never reaches the database (superseded, dropped, contested).
#[derive(Debug, Default)]
pub(crate) struct ParkedHistory {
    items: std::sync::Mutex<BTreeMap<Ipv4Addr, (HistoryTx, Vec<HistoryItem>)>>,
}

impl ParkedHistory {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Ipv4Addr, (HistoryTx, Vec<HistoryItem>)>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `item` until the change of `ip` is written (bounded like the retry queue).
    fn park(&self, ip: Ipv4Addr, h: &HistoryTx, item: HistoryItem) {
        let mut m = self.lock();
        if m.len() >= RETRY_CAP && !m.contains_key(&ip) {
            return;
        }
        m.entry(ip)
            .or_insert_with(|| (h.clone(), Vec::new()))
            .1
            .push(item);
    }

    /// The change of `ip` is durable now: its history goes out.
    fn written(&self, ip: Ipv4Addr) {
        if let Some((h, items)) = self.lock().remove(&ip) {
            for item in items {
                h.push(item);
            }
        }
    }

    /// The change of `ip` will never be written: neither is its history.
    fn discard(&self, ip: Ipv4Addr) {
        self.lock().remove(&ip);
    }
}

/// Wraps the SQL store on the commit thread: reports conflicting addresses to
/// [`resolve_conflicts`], keeps [`DbHealth`] current (the commit thread learns of an outage
/// first), and retries lazy changes lost to an outage.
///
/// Retries run on the commit thread, before the next commit once the database is reachable
/// again, so they are ordered with every other write of this server: a retried RELEASE can
/// never overwrite a newer binding of the same address (a later change to an address drops the
/// queued one). ACKs are not retried: their client got no ACK and will ask again.
pub(crate) struct ConflictTap {
    inner: Box<dyn LeaseStore>,
    conflicts: mpsc::Sender<Vec<Ipv4Addr>>,
    health: Arc<DbHealth>,
    /// Lazy changes whose commit failed, by address (the latest change wins).
    retry: BTreeMap<Ipv4Addr, Lease>,
    /// Changes dropped because `retry` was full (logged once per outage).
    retry_dropped: u64,
    /// History of the queued changes, written with them.
    parked: Arc<ParkedHistory>,
}

impl ConflictTap {
    /// Taps `inner`.
    pub(crate) fn new(
        inner: Box<dyn LeaseStore>,
        conflicts: mpsc::Sender<Vec<Ipv4Addr>>,
        health: Arc<DbHealth>,
    ) -> Self {
        Self {
            inner,
            conflicts,
            health,
            retry: BTreeMap::new(),
            retry_dropped: 0,
            parked: Arc::default(),
        }
    }

    /// Shares `parked` with the engine's history (see [`EngineSql::wrap_done`]).
    pub(crate) fn with_parked(mut self, parked: Arc<ParkedHistory>) -> Self {
        self.parked = parked;
        self
    }

    /// Drops the queued change of `ip` (a newer one was written, or it lost to another
    /// server's client), and its history with it.
    fn unqueue(&mut self, ip: Ipv4Addr) {
        if self.retry.remove(&ip).is_some() {
            self.parked.discard(ip);
        }
    }

    /// Queues the lazy changes of a commit that did not reach the database.
    fn keep_for_retry(&mut self, leases: &[Lease]) {
        for l in leases.iter().filter(|l| {
            matches!(
                l.state,
                LeaseState::Released | LeaseState::Declined | LeaseState::Expired
            )
        }) {
            if self.retry.len() >= RETRY_CAP && !self.retry.contains_key(&l.ip) {
                if self.retry_dropped == 0 {
                    tracing::warn!(
                        cap = RETRY_CAP,
                        "lazy lease changes beyond the retry queue are dropped until the \
                         database is back"
                    );
                }
                self.retry_dropped += 1;
                continue;
            }
            self.retry.insert(l.ip, l.clone());
        }
    }

    /// Writes the queued lazy changes (except addresses `newer` is about to change) once the
    /// database is reachable; a failed attempt keeps them.
    fn flush_retries(&mut self, newer: &[Lease]) {
        if self.retry.is_empty() || self.health.is_down() {
            return;
        }
        for l in newer {
            self.unqueue(l.ip);
        }
        let pending: Vec<Lease> = std::mem::take(&mut self.retry).into_values().collect();
        if pending.is_empty() {
            return;
        }
        let r = self.inner.commit(&pending);
        match r {
            // A conflict: another server's client holds the address now; nothing to restore.
            Ok(()) | Err(StoreError::Conflict { .. }) => {
                let lost = match &r {
                    Err(StoreError::Conflict { ips }) => ips.as_slice(),
                    _ => &[],
                };
                for l in &pending {
                    if lost.contains(&l.ip) {
                        self.parked.discard(l.ip);
                    } else {
                        self.parked.written(l.ip);
                    }
                }
                tracing::info!(
                    written = pending.len(),
                    dropped = self.retry_dropped,
                    "lazy lease changes from the outage written"
                );
                self.retry_dropped = 0;
            }
            Err(e) => {
                if matches!(e, StoreError::Sql { .. }) {
                    self.health.set(true, &e.to_string());
                }
                self.retry.extend(pending.into_iter().map(|l| (l.ip, l)));
            }
        }
    }
}

impl LeaseStore for ConflictTap {
    fn load(&mut self) -> Result<Vec<Lease>, StoreError> {
        self.inner.load()
    }

    fn commit(&mut self, leases: &[Lease]) -> Result<(), StoreError> {
        self.flush_retries(leases);
        let r = self.inner.commit(leases);
        match &r {
            Ok(()) => {
                self.health.set(false, "");
                // Written (or superseded): no older queued change may follow it.
                for l in leases {
                    self.unqueue(l.ip);
                }
            }
            Err(StoreError::Conflict { ips }) => {
                for l in leases {
                    self.unqueue(l.ip);
                }
                self.health.set(false, "");
                tracing::info!(
                    addresses = ?ips,
                    "addresses held by another server's client: learning their holders"
                );
                // Full: the next sync brings the same rows; never block the commit thread.
                let _ = self.conflicts.try_send(ips.clone());
            }
            Err(e @ StoreError::Sql { .. }) => {
                self.health.set(true, &e.to_string());
                self.keep_for_retry(leases);
            }
            Err(_) => {}
        }
        r
    }
}

/// Reads the real holder of each conflicting address and hands it to the engine.
pub(crate) async fn resolve_conflicts(
    db: Db,
    mut rx: mpsc::Receiver<Vec<Ipv4Addr>>,
    external: mpsc::Sender<External>,
) {
    while let Some(ips) = rx.recv().await {
        let mut found = Vec::new();
        for ip in ips {
            match tokio::time::timeout(OP_TIMEOUT, db.lease_at(ip)).await {
                Ok(Ok(Some(lease))) => found.push(lease),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::debug!(%ip, error = %e, "cannot read a contested lease"),
                Err(_) => tracing::debug!(%ip, "reading a contested lease timed out"),
            }
        }
        let batch = External {
            leases: found,
            force: true,
        };
        if !batch.leases.is_empty() && external.send(batch).await.is_err() {
            return;
        }
    }
}

/// Every `interval`, reads the rows changed since the last read (minus [`SYNC_OVERLAP_MS`])
/// and hands those other servers wrote to the engine. Keeps [`DbHealth`]; logs an outage when
/// it starts, every [`DOWN_LOG_EVERY`] while it lasts, and when it ends.
pub(crate) async fn sync_loop(
    db: Db,
    server: String,
    interval: Duration,
    external: mpsc::Sender<External>,
    health: Arc<DbHealth>,
    mut load_all: bool,
) {
    let mut since = i64::MIN;
    // Down since start: the start itself logged it, the next line is due an interval later.
    let mut last_log: Option<Instant> = load_all.then(Instant::now);
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let from = since.saturating_sub(SYNC_OVERLAP_MS);
        let read = async {
            if load_all {
                db.init_schema().await?;
            }
            db.changed_since(from).await
        };
        match tokio::time::timeout(OP_TIMEOUT, read).await {
            Ok(Ok((rows, max))) => {
                if load_all {
                    tracing::info!(
                        leases = rows.len(),
                        "lease database answered: schema ready, leases loaded"
                    );
                }
                since = since.max(max);
                // After a start with the database down, this server's own rows are news too.
                let all = std::mem::take(&mut load_all);
                let theirs: Vec<Lease> = rows
                    .into_iter()
                    .filter(|(_, s)| all || *s != server)
                    .map(|(l, _)| l)
                    .collect();
                for chunk in theirs.chunks(EXTERNAL_CHUNK) {
                    let batch = External {
                        leases: chunk.to_vec(),
                        force: false,
                    };
                    if external.send(batch).await.is_err() {
                        return;
                    }
                }
                // Reachable only once the rows are on their way to the engine: the gate opens
                // on a table that knows them.
                health.set(false, "");
                last_log = None;
            }
            r => {
                let why = match r {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {OP_TIMEOUT:?}"),
                };
                let first = !health.is_down();
                health.set(true, &why);
                if !first && last_log.is_none_or(|t| t.elapsed() >= DOWN_LOG_EVERY) {
                    tracing::error!(error = %why, "lease database still unreachable");
                    last_log = Some(Instant::now());
                } else if first {
                    last_log = Some(Instant::now());
                }
            }
        }
    }
}

/// Leases learned from the database, for the engine's table.
#[derive(Debug)]
pub(crate) struct External {
    /// The rows.
    pub(crate) leases: Vec<Lease>,
    /// They beat one of our commits just now (see `Engine::handle_external`).
    pub(crate) force: bool,
}

/// What the driver gets: the external-lease channel and the history sender.
#[derive(Default)]
pub(crate) struct EngineSql {
    /// Leases learned from the database (sync, conflicts).
    pub(crate) external: Option<mpsc::Receiver<External>>,
    /// Where lease events go, if history is kept.
    pub(crate) history: Option<HistoryTx>,
    /// Shared with [`ConflictTap`] (SQL stores only).
    pub(crate) parked: Option<Arc<ParkedHistory>>,
}

impl EngineSql {
    /// Records a durable lease event.
    pub(crate) fn lease_event(&self, ev: &LeaseEvent) {
        if let Some(h) = &self.history {
            h.push(h.item_of(ev));
        }
    }

    /// Holds the record of a lease event whose change waits in [`ConflictTap`]'s retry queue:
    /// written when the retry makes it durable, discarded when the change never gets there.
    pub(crate) fn parked_event(&self, ev: &LeaseEvent) {
        if let (Some(h), Some(p)) = (&self.history, &self.parked) {
            p.park(ev.ip, h, h.item_of(ev));
        }
    }

    /// Receives the next batch of external leases (pending forever when there is no channel).
    pub(crate) async fn next_external(&mut self) -> Option<External> {
        match &mut self.external {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

/// One history item: the record, and the variables for the operator's `history_sql`.
#[derive(Debug)]
pub(crate) struct HistoryItem {
    record: HistoryRecord,
    vars: Option<BTreeMap<String, String>>,
}

/// The engine's end of the history channel.
#[derive(Debug, Clone)]
pub(crate) struct HistoryTx {
    tx: mpsc::Sender<HistoryItem>,
    /// The history's counters (shared with the metrics): drops are counted here.
    counters: Arc<HistoryCounters>,
    /// `history_sql` is configured: build its variables.
    user_vars: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn client_hex(c: &ClientId) -> String {
    hex(&c.0)
}

impl HistoryTx {
    fn push(&self, item: HistoryItem) {
        if self.tx.try_send(item).is_err() {
            let n = self.counters.add_dropped(1);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "history writer behind: lease events dropped");
            }
        }
    }

    /// The history record of `ev`, with the variables for `history_sql` when it is set.
    fn item_of(&self, ev: &LeaseEvent) -> HistoryItem {
        let cid = client_hex(&ev.client_id);
        let record = HistoryRecord {
            at: ev.at.0,
            event: ev.kind.name().into(),
            mac: ev.hwaddr.to_string(),
            client_id: cid.clone(),
            ip: ev.ip.to_string(),
            hostname: ev.hostname.clone(),
            giaddr: ev.giaddr.map(|g| g.to_string()),
            circuit_id: ev.circuit_id.as_deref().map(hex),
            remote_id: ev.remote_id.as_deref().map(hex),
        };
        let vars = self.user_vars.then(|| {
            let mut v = ev.vars.clone().unwrap_or_default();
            v.insert("IpAddress".into(), record.ip.clone());
            v.insert("Event".into(), record.event.clone());
            v.insert("ClientId".into(), cid);
            v.insert("Time".into(), record.at.to_string());
            v
        });
        HistoryItem { record, vars }
    }
}

/// Where history goes.
pub(crate) enum HistorySink {
    /// The embedded JSON-lines file, through its writer thread.
    File(HistoryWriter),
    /// `leased_history` in the store's database, written as `server`.
    Sql(Db, String),
}

/// Hands `records` to the file's writer thread: at once when its queue has room, else from a
/// blocking thread that waits for room (this task then falls behind, and the history channel
/// in front of it, not the engine, absorbs the wait).
async fn to_file(w: &HistoryWriter, records: Vec<HistoryRecord>) -> Result<(), String> {
    let closed = || "the history writer thread has stopped".to_string();
    match w.try_submit(records) {
        Ok(()) => Ok(()),
        Err(TrySubmitError::Closed) => Err(closed()),
        Err(TrySubmitError::Full(records)) => {
            let w = w.clone();
            match tokio::task::spawn_blocking(move || w.submit(records)).await {
                Ok(Ok(())) => Ok(()),
                _ => Err(closed()),
            }
        }
    }
}

/// Writes history records in batches until every sender is gone.
pub(crate) async fn history_writer(
    mut rx: mpsc::Receiver<HistoryItem>,
    sink: HistorySink,
    user: Option<(Db, leased_core::sql::SqlTemplate)>,
    counters: Arc<HistoryCounters>,
) {
    let mut batch = Vec::with_capacity(HISTORY_BATCH);
    let mut last_err: Option<Instant> = None;
    while rx.recv_many(&mut batch, HISTORY_BATCH).await > 0 {
        let records: Vec<HistoryRecord> = batch.iter().map(|i| i.record.clone()).collect();
        let n = records.len() as u64;
        let res = match &sink {
            // The writer thread counts what it writes and syncs.
            HistorySink::File(w) => to_file(w, records).await,
            HistorySink::Sql(db, server) => {
                let r = tokio::time::timeout(OP_TIMEOUT, insert_history(db, &records, server))
                    .await
                    .unwrap_or_else(|_| {
                        Err(StoreError::Sql {
                            message: "history insert timed out".into(),
                        })
                    });
                if r.is_ok() {
                    counters.add_durable(n);
                }
                r.map_err(|e| e.to_string())
            }
        };
        if res.is_err() {
            counters.add_error();
            counters.add_dropped(n);
        }
        let mut failure = res.err();
        if let Some((db, template)) = &user {
            for item in &batch {
                if let Some(vars) = &item.vars {
                    let r =
                        tokio::time::timeout(OP_TIMEOUT, run_user_statement(db, template, vars))
                            .await;
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => failure = Some(format!("history_sql: {e}")),
                        Err(_) => failure = Some("history_sql timed out".into()),
                    }
                }
            }
        }
        if let Some(why) = failure
            && last_err.is_none_or(|t| t.elapsed() >= DOWN_LOG_EVERY)
        {
            tracing::warn!(error = %why, records = batch.len(), "lease history not written");
            last_err = Some(Instant::now());
        }
        batch.clear();
    }
}

/// The chain for the current plan, rebuilt when a reload changed `[sql_assignment]` (its
/// database stays the one opened at start).
struct ChainCache {
    db: Db,
    built_from: Option<SqlAssignment>,
    chain: Option<Arc<SqlChain>>,
}

impl ChainCache {
    fn get(&mut self, sa: &SqlAssignment) -> Arc<SqlChain> {
        match (&self.chain, &self.built_from) {
            (Some(c), Some(b)) if b == sa => Arc::clone(c),
            _ => {
                let c = Arc::new(SqlChain::new(
                    self.db.clone(),
                    &sa.queries,
                    Duration::from_millis(u64::from(sa.timeout_ms.max(1))),
                ));
                self.chain = Some(Arc::clone(&c));
                self.built_from = Some(sa.clone());
                c
            }
        }
    }
}

/// Everything the SQL side runs, decided from the config at start.
pub(crate) struct SqlSide {
    /// The shared store's database (also the history database), if the store is SQL.
    store_db: Option<Db>,
    /// The chain's database, if a chain is configured.
    chain_db: Option<Db>,
    /// This server's name in the lease rows.
    server: String,
    health: Arc<DbHealth>,
    offer_when_down: bool,
    sync_interval: Duration,
    history_file: PathBuf,
    /// The mode of the history file.
    file_mode: FileMode,
    max_concurrency: usize,
    /// The database did not answer at start: the sync loop creates the schema and loads
    /// every lease (this server's too) once it does.
    load_on_reconnect: bool,
}

fn expand(url: &str) -> anyhow::Result<String> {
    leased_store::sql::expand_env(url).map_err(|e| anyhow::anyhow!(e))
}

impl SqlSide {
    /// Opens (lazily) the databases the config names. Must run inside the serve runtime.
    pub(crate) fn new(config: &Config, file_mode: FileMode) -> anyhow::Result<Self> {
        let store_db = match &config.store.sql {
            Some(s) => Some(
                Db::connect_lazy(&expand(&s.url)?, 8)
                    .map_err(|e| anyhow::anyhow!("SQL lease store: {e}"))?,
            ),
            None => None,
        };
        let chain_db = match &config.sql_assignment {
            Some(sa) => match (&sa.url, &store_db) {
                (Some(url), _) => Some(
                    Db::connect_lazy(&expand(url)?, sa.max_concurrency.clamp(1, 256))
                        .map_err(|e| anyhow::anyhow!("[sql_assignment] database: {e}"))?,
                ),
                (None, Some(db)) => Some(db.clone()),
                (None, None) => {
                    return Err(anyhow::anyhow!(
                        "[sql_assignment] has no url and [store] is not an SQL database"
                    ));
                }
            },
            None => None,
        };
        let sql = config.store.sql.as_ref();
        Ok(Self {
            store_db,
            chain_db,
            server: sql
                .and_then(|s| s.server_name.clone())
                .unwrap_or_else(leased_store::sql::default_server_name),
            health: Arc::default(),
            offer_when_down: sql.is_some_and(|s| s.offer_when_down),
            sync_interval: Duration::from_secs(u64::from(
                sql.map_or(2, |s| s.sync_interval).max(1),
            )),
            history_file: history_path(&config.store.path),
            file_mode,
            max_concurrency: config
                .sql_assignment
                .as_ref()
                .map_or(32, |s| s.max_concurrency.clamp(1, 4096) as usize),
            load_on_reconnect: false,
        })
    }

    /// The SQL store could not be opened (schema, load) at start: serve anyway with the
    /// database marked down, so nothing that needs durability is answered, and let the sync
    /// loop create the schema and load the leases when the database answers.
    pub(crate) fn down_at_start(&mut self, why: &str) {
        self.health.set(true, why);
        self.load_on_reconnect = true;
    }

    /// True when packets must pass [`front`] (a chain, or an SQL store's outage gate).
    pub(crate) fn needs_front(&self) -> bool {
        self.chain_db.is_some() || self.store_db.is_some()
    }

    /// Wraps the store for conflict recovery and outage tracking (SQL stores only), starting
    /// the resolver; returns the store and, with an SQL store, the external-lease channel
    /// sender for the sync loop.
    pub(crate) fn tap_store(
        &self,
        store: Box<dyn LeaseStore>,
        engine: &mut EngineSql,
    ) -> Box<dyn LeaseStore> {
        let Some(db) = &self.store_db else {
            return store;
        };
        let (ext_tx, ext_rx) = mpsc::channel(EXTERNAL_CAP);
        let (conf_tx, conf_rx) = mpsc::channel(256);
        engine.external = Some(ext_rx);
        tokio::spawn(resolve_conflicts(db.clone(), conf_rx, ext_tx.clone()));
        tokio::spawn(sync_loop(
            db.clone(),
            self.server.clone(),
            self.sync_interval,
            ext_tx,
            Arc::clone(&self.health),
            self.load_on_reconnect,
        ));
        let parked = Arc::new(ParkedHistory::default());
        engine.parked = Some(Arc::clone(&parked));
        Box::new(ConflictTap::new(store, conf_tx, Arc::clone(&self.health)).with_parked(parked))
    }

    /// Starts the history writer (opening the history file, for an embedded store) and gives
    /// the engine its sender; counts into `counters`. Finish the returned [`HistoryJoin`] at
    /// shutdown, after the last lease change.
    pub(crate) fn start_history(
        &self,
        config: &Config,
        engine: &mut EngineSql,
        counters: Arc<HistoryCounters>,
    ) -> anyhow::Result<HistoryJoin> {
        let (tx, rx) = mpsc::channel(HISTORY_CAP);
        let mut thread = None;
        let sink = match &self.store_db {
            Some(db) => HistorySink::Sql(db.clone(), self.server.clone()),
            None => {
                let file = HistoryFile::open(&self.history_file, self.file_mode)
                    .map_err(|e| anyhow::anyhow!(e).context("opening the lease history"))?;
                let (w, join) = HistoryWriter::spawn(file, Arc::clone(&counters))
                    .map_err(|e| anyhow::anyhow!("cannot start the lease history writer: {e}"))?;
                thread = Some(join);
                HistorySink::File(w)
            }
        };
        let user = config
            .sql_assignment
            .as_ref()
            .and_then(|sa| sa.history_sql.as_ref())
            .and_then(|q| Some((self.chain_db.clone()?, q.template.clone())));
        engine.history = Some(HistoryTx {
            tx,
            counters: Arc::clone(&counters),
            user_vars: user.is_some(),
        });
        let task = tokio::spawn(history_writer(rx, sink, user, counters));
        Ok(HistoryJoin { task, thread })
    }

    /// Starts [`front`] in front of the engine's queue `engine_tx`; returns the sender the
    /// receive tasks must use.
    pub(crate) fn start_front(
        &self,
        engine_tx: Lanes,
        plan: Current,
        metrics: Arc<Metrics>,
    ) -> Lanes {
        let (tx, rx) = crate::recv::lanes();
        let f = Front {
            engine_tx,
            plan,
            metrics,
            health: Arc::clone(&self.health),
            gate_offers: self.store_db.is_some() && !self.offer_when_down,
            cache: self.chain_db.clone().map(|db| ChainCache {
                db,
                built_from: None,
                chain: None,
            }),
            permits: Arc::new(Semaphore::new(self.max_concurrency)),
        };
        tokio::spawn(front(rx, f));
        tx
    }
}

/// The running history writer: its task and, for the file, its thread.
pub(crate) struct HistoryJoin {
    task: tokio::task::JoinHandle<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HistoryJoin {
    /// Waits (at most `grace`) for the writer to write and sync every record sent before the
    /// last sender went away.
    pub(crate) async fn finish(self, grace: Duration) {
        let wait = async {
            let _ = self.task.await;
            if let Some(t) = self.thread {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
        };
        if tokio::time::timeout(grace, wait).await.is_err() {
            tracing::warn!("the lease history writer did not finish within {grace:?}");
        }
    }
}

/// [`front`]'s state.
struct Front {
    engine_tx: Lanes,
    plan: Current,
    metrics: Arc<Metrics>,
    health: Arc<DbHealth>,
    gate_offers: bool,
    cache: Option<ChainCache>,
    permits: Arc<Semaphore>,
}

/// A DISCOVER that waited this long for the chain is shed instead of run: its OFFER would
/// arrive after the client (perfdhcp waits 1 s, dhclient retransmits) has moved on, and the
/// chain's capacity is better spent on REQUESTs that complete an exchange.
const DISCOVER_MAX_WAIT: Duration = Duration::from_millis(250);

/// Packets waiting for a chain permit, REQUESTs ahead of DISCOVERs; DISCOVERs that waited too
/// long are shed (counted as `overload`).
#[derive(Default)]
struct Backlog {
    ahead: std::collections::VecDeque<Inbound>,
    discover: std::collections::VecDeque<Inbound>,
}

impl Backlog {
    fn push(&mut self, inbound: Inbound, metrics: &Metrics) {
        if inbound.req.packet.message_type() == Some(MessageType::Discover) {
            if self.discover.len() >= crate::recv::DISCOVER_CAP {
                self.discover.pop_front();
                metrics.dropped(leased_engine::DropReason::Overload.label());
            }
            self.discover.push_back(inbound);
        } else if self.ahead.len() >= crate::recv::QUEUE_CAP {
            metrics.dropped(leased_engine::DropReason::Overload.label());
        } else {
            self.ahead.push_back(inbound);
        }
    }

    /// The next packet worth running: REQUESTs first, then the freshest-enough DISCOVER.
    fn pop(&mut self, metrics: &Metrics) -> Option<Inbound> {
        if let Some(i) = self.ahead.pop_front() {
            return Some(i);
        }
        while let Some(i) = self.discover.pop_front() {
            if i.received.elapsed() <= DISCOVER_MAX_WAIT {
                return Some(i);
            }
            metrics.dropped(leased_engine::DropReason::Overload.label());
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.ahead.is_empty() && self.discover.is_empty()
    }
}

/// What a chain outcome means for the packet: `Some(assignment or None)` to go on, `None` to
/// drop it silently.
pub(crate) fn apply_outcome(
    outcome: ChainOutcome,
    fallback: SqlFallback,
) -> Option<Option<leased_core::Assignment>> {
    match outcome {
        ChainOutcome::Hit { assignment, .. } => Some(Some(assignment)),
        ChainOutcome::Miss => Some(None),
        ChainOutcome::Failed(_) => match fallback {
            SqlFallback::Pools => Some(None),
            SqlFallback::Silent => None,
        },
    }
}

/// Between the receive tasks and the engine: the outage gate and the assignment chain. Ends
/// when every receive task is gone and the chains in flight have finished.
///
/// Under load the chain's permits are the bottleneck: packets wait in a [`Backlog`] that serves
/// REQUESTs before DISCOVERs and sheds DISCOVERs that waited too long, so completed exchanges
/// stay near the chain's capacity however much more is offered.
async fn front(mut rx: LaneRx, mut f: Front) {
    let fail_log = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let mut backlog = Backlog::default();
    let mut open = true;
    loop {
        // Take everything that arrived; wait for a packet only when there is nothing to do.
        while let Some(i) = rx.try_recv() {
            backlog.push(i, &f.metrics);
        }
        if backlog.is_empty() {
            if !open {
                return;
            }
            match rx.recv().await {
                Some(i) => backlog.push(i, &f.metrics),
                None => open = false,
            }
            continue;
        }
        let Some(mut inbound) = backlog.pop(&f.metrics) else {
            continue;
        };
        let msg = inbound.req.packet.message_type();
        if f.gate_offers && msg == Some(MessageType::Discover) && f.health.is_down() {
            f.metrics
                .dropped(leased_engine::DropReason::StoreDown.label());
            continue;
        }
        let plan = f.plan.load_full();
        let sa = plan.config.sql_assignment.as_ref();
        let chained = matches!(
            msg,
            Some(MessageType::Discover | MessageType::Request | MessageType::Inform)
        );
        let (Some(sa), Some(cache), true) = (sa, f.cache.as_mut(), chained) else {
            if !f.engine_tx.send(inbound, &f.metrics) {
                return;
            }
            continue;
        };
        let chain = cache.get(sa);
        let fallback = sa.fallback;
        let vars = leased_core::sql::packet_variables(&inbound.req.packet, &sa.slices);
        // Wait for a permit, still taking arrivals into the backlog meanwhile.
        let permit = loop {
            tokio::select! {
                biased;
                p = Arc::clone(&f.permits).acquire_owned() => break p,
                m = rx.recv(), if open => match m {
                    Some(i) => backlog.push(i, &f.metrics),
                    None => open = false,
                },
            }
        };
        let Ok(permit) = permit else {
            return;
        };
        let tx = f.engine_tx.clone();
        let metrics = Arc::clone(&f.metrics);
        let fail_log = Arc::clone(&fail_log);
        tokio::spawn(async move {
            let outcome = chain.run(&vars).await;
            drop(permit);
            if let ChainOutcome::Failed(why) = &outcome {
                let mut last = fail_log.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_none_or(|t: Instant| t.elapsed() >= DOWN_LOG_EVERY) {
                    tracing::warn!(error = %why, ?fallback, "SQL assignment chain failed");
                    *last = Some(Instant::now());
                }
            }
            match apply_outcome(outcome, fallback) {
                Some(a) => {
                    inbound.req.assignment = a;
                    tx.send(inbound, &metrics);
                }
                None => metrics.dropped(leased_engine::DropReason::SqlUnavailable.label()),
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use leased_core::{HwAddr, Timestamp};

    fn lease(ip: u8, client: u8, state: LeaseState, starts: u64, expires: u64) -> Lease {
        Lease {
            ip: Ipv4Addr::new(198, 18, 0, ip),
            client_id: ClientId(vec![1, 2, 0, 0, 0, 0, client]),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, client]),
            hostname: None,
            state,
            starts: Timestamp(starts),
            expires: Timestamp(expires),
            first_seen: Timestamp(starts),
            circuit_id: None,
            remote_id: None,
            subscriber_id: None,
        }
    }

    /// A store that fails while `down` and records what it wrote.
    struct FlakyStore {
        down: Arc<AtomicBool>,
        written: Arc<std::sync::Mutex<Vec<Vec<Lease>>>>,
    }

    impl LeaseStore for FlakyStore {
        fn load(&mut self) -> Result<Vec<Lease>, StoreError> {
            Ok(Vec::new())
        }

        fn commit(&mut self, leases: &[Lease]) -> Result<(), StoreError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(StoreError::Sql {
                    message: "down".into(),
                });
            }
            self.written.lock().unwrap().push(leases.to_vec());
            Ok(())
        }
    }

    #[test]
    fn lazy_changes_lost_to_an_outage_are_retried_in_order() {
        let down = Arc::new(AtomicBool::new(true));
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let health = Arc::new(DbHealth::default());
        let (ctx, _crx) = mpsc::channel(4);
        let mut tap = ConflictTap::new(
            Box::new(FlakyStore {
                down: Arc::clone(&down),
                written: Arc::clone(&written),
            }),
            ctx,
            Arc::clone(&health),
        );
        // During the outage: a RELEASE, an expiry, a DECLINE and an ACK fail.
        let rel = lease(10, 1, LeaseState::Released, 900, 1000);
        let exp = lease(11, 2, LeaseState::Expired, 900, 1000);
        let dec = lease(12, 3, LeaseState::Declined, 900, 2000);
        assert!(tap.commit(std::slice::from_ref(&rel)).is_err());
        assert!(tap.commit(&[exp.clone(), dec.clone()]).is_err());
        assert!(
            tap.commit(&[lease(13, 4, LeaseState::Bound, 950, 2000)])
                .is_err()
        );
        assert!(health.is_down());
        assert_eq!(tap.retry.len(), 3, "the ACK is not retried");

        // Back (the sync loop says so): the next commit writes the queue first, minus the
        // address that commit changes (its change is newer).
        down.store(false, Ordering::Relaxed);
        health.set(false, "");
        let newer = lease(11, 5, LeaseState::Bound, 1000, 3000);
        assert!(tap.commit(std::slice::from_ref(&newer)).is_ok());
        let w = written.lock().unwrap().clone();
        assert_eq!(w, vec![vec![rel, dec], vec![newer]]);
        assert!(tap.retry.is_empty());
    }

    #[test]
    fn the_retry_queue_is_bounded_and_waits_while_down() {
        let down = Arc::new(AtomicBool::new(true));
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let health = Arc::new(DbHealth::default());
        let (ctx, _crx) = mpsc::channel(4);
        let mut tap = ConflictTap::new(
            Box::new(FlakyStore {
                down: Arc::clone(&down),
                written: Arc::clone(&written),
            }),
            ctx,
            Arc::clone(&health),
        );
        let many: Vec<Lease> = (0..RETRY_CAP as u32 + 10)
            .map(|i| {
                let mut l = lease(1, 1, LeaseState::Released, 900, 1000);
                l.ip = Ipv4Addr::from(0xC612_0000 + i);
                l
            })
            .collect();
        assert!(tap.commit(&many).is_err());
        assert_eq!(tap.retry.len(), RETRY_CAP);
        assert_eq!(tap.retry_dropped, 10);
        // Still marked down: no retry attempt is made before the new commit.
        assert!(
            tap.commit(&[lease(200, 9, LeaseState::Released, 900, 1000)])
                .is_err()
        );
        assert!(written.lock().unwrap().is_empty());
    }

    #[test]
    fn outcomes_and_fallback() {
        let a = leased_core::Assignment::from_columns(&[("ip".into(), Some("198.18.0.9".into()))])
            .unwrap();
        let hit = ChainOutcome::Hit {
            query: 0,
            assignment: a.clone(),
        };
        assert_eq!(apply_outcome(hit, SqlFallback::Silent), Some(Some(a)));
        assert_eq!(
            apply_outcome(ChainOutcome::Miss, SqlFallback::Silent),
            Some(None)
        );
        assert_eq!(
            apply_outcome(ChainOutcome::Failed("x".into()), SqlFallback::Pools),
            Some(None)
        );
        assert_eq!(
            apply_outcome(ChainOutcome::Failed("x".into()), SqlFallback::Silent),
            None
        );
    }

    /// The lease event `kind` of `ip` (a test stand-in for what the engine emits).
    fn event(ip: &str, kind: leased_engine::LeaseEventKind) -> LeaseEvent {
        LeaseEvent {
            kind,
            at: Timestamp(1),
            ip: ip.parse().unwrap(),
            client_id: ClientId(vec![1, 2, 0, 0, 0, 0, 1]),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, 1]),
            hostname: None,
            circuit_id: None,
            remote_id: None,
            giaddr: None,
            lease: None,
            vars: None,
            client_fqdn: None,
        }
    }

    #[test]
    fn release_history_waits_for_its_retry() {
        let (tx, mut rx) = mpsc::channel(16);
        let parked = Arc::new(ParkedHistory::default());
        let sql = EngineSql {
            history: Some(HistoryTx {
                tx,
                counters: Arc::default(),
                user_vars: false,
            }),
            parked: Some(Arc::clone(&parked)),
            ..EngineSql::default()
        };
        let down = Arc::new(AtomicBool::new(true));
        let health = Arc::new(DbHealth::default());
        let (ctx, _crx) = mpsc::channel(4);
        let mut tap = ConflictTap::new(
            Box::new(FlakyStore {
                down: Arc::clone(&down),
                written: Arc::default(),
            }),
            ctx,
            Arc::clone(&health),
        )
        .with_parked(Arc::clone(&parked));
        // The commit thread commits; the engine then says, per event, what the driver does
        // with it: record it (durable), park it (retried), or nothing.
        let mut commit = |leases: Vec<Lease>, events: &[(&str, &str)]| {
            use leased_engine::LeaseEventKind as K;
            let r = tap.commit(&leases);
            for (ip, name) in events {
                let kind = match *name {
                    "release" => K::Release,
                    "decline" => K::Decline,
                    _ => K::AckNew,
                };
                match &r {
                    Ok(()) => sql.lease_event(&event(ip, kind)),
                    Err(StoreError::Sql { .. }) if kind != K::AckNew => {
                        sql.parked_event(&event(ip, kind));
                    }
                    Err(_) => {}
                }
            }
        };
        // Down: a RELEASE and a DECLINE are parked, an ACK is dropped.
        commit(
            vec![
                lease(10, 1, LeaseState::Released, 900, 1000),
                lease(12, 3, LeaseState::Declined, 900, 2000),
                lease(13, 4, LeaseState::Bound, 900, 2000),
            ],
            &[
                ("198.18.0.10", "release"),
                ("198.18.0.12", "decline"),
                ("198.18.0.13", "ack_new"),
            ],
        );
        assert!(rx.try_recv().is_err(), "nothing written while not durable");
        // Back: the next commit (a newer change of .12 among it) flushes .10 with its history;
        // the superseded DECLINE of .12 never reached the database, nor does its history.
        down.store(false, Ordering::Relaxed);
        health.set(false, "");
        commit(vec![lease(12, 5, LeaseState::Bound, 1000, 3000)], &[]);
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|i| (i.record.ip, i.record.event))
            .collect();
        assert_eq!(
            got,
            vec![("198.18.0.10".to_string(), "release".to_string())]
        );
        assert!(parked.lock().is_empty());
    }

    #[test]
    fn health_transitions() {
        let h = DbHealth::default();
        assert!(!h.is_down());
        h.set(true, "x");
        assert!(h.is_down());
        h.set(false, "");
        assert!(!h.is_down());
    }
}
