//! `serve`: start-up in a checked order, the signal loop, and graceful shutdown.
//!
//! Start-up: config → lease store (locked, loaded) → PID file → sockets → committer → sidecar
//! → drop root (`[server] user`) → engine.
//! Each step fails with a message that says what to do. Shutdown (SIGTERM/SIGINT): stop
//! receiving, let the engine drain its queue, let the committer flush (so every submitted ACK is
//! either durable and sent or reported), remove the PID file.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use arc_swap::ArcSwap;
use leased_config::{Config, ConfigErrors};
use leased_core::LeaseTable;
use leased_store::{EmbeddedStore, FileMode, LeaseStore, StoreError};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::commit::Committer;
use crate::iface;
use crate::metrics::Metrics;
use crate::recv::{Door, lanes, receive_loop};
use crate::reload;
use crate::send::{Link, Outbound};
use crate::server::Driver;
use crate::shared::{LeaseSnapshot, SharedState};
use crate::sock;
use crate::{ConfigSource, ServeHooks, ServeParams, Shutdown};

/// How long a sidecar (the HTTP API) gets to finish its requests after SIGTERM.
const SIDECAR_GRACE: Duration = Duration::from_secs(5);

/// How long the lease history gets to write and sync its last records at shutdown.
const HISTORY_GRACE: Duration = Duration::from_secs(5);

/// The mode of the lease files serve creates (journal, history, compaction file): the
/// server's user only, or with `[server] group` its group may read them too (the files are
/// handed over to that group when root is dropped).
fn lease_file_mode(config: &Config) -> FileMode {
    FileMode::for_group(config.process.group.is_some())
}

/// The PID file: written once the lease store is ours, removed at exit only while it still
/// holds this process's PID.
///
/// Why this care: `leased manage` and `leased reload` signal the PID in the file, and a
/// service manager may too. A second `serve` that fails (its store is locked by a running
/// server) must leave the running server's file alone, so the file is written only after the
/// store lock is held, and a process removes it only if the PID in it is its own.
struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's PID to `path` (temp file beside it, renamed over it: readers
    /// never see a half-written file, and a symlink at `path` is replaced, never followed).
    /// Refuses when the file names another running leased.
    fn create(path: Option<&Path>) -> anyhow::Result<Option<Self>> {
        let Some(path) = path else {
            return Ok(None);
        };
        let pid = std::process::id();
        if let Some(other) = read_pid(path)
            && other != pid
            && is_leased(other)
        {
            anyhow::bail!(
                "the PID file {} names a running leased (pid {other}); stop it, or give this \
                 server its own server.pid_file",
                path.display()
            );
        }
        let dir = crate::privileges::parent_dir(path);
        let write = || -> io::Result<()> {
            use std::io::Write as _;
            use std::os::unix::fs::PermissionsExt as _;
            let name = path
                .file_name()
                .map_or_else(|| "pid".into(), |n| n.to_string_lossy().into_owned());
            let mut tmp = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .tempfile_in(dir)?;
            writeln!(tmp, "{pid}")?;
            // A PID is public: anyone may read it to signal or watch the server.
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
            tmp.as_file().sync_all()?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        };
        write().with_context(|| format!("cannot write PID file {}", path.display()))?;
        Ok(Some(Self {
            path: path.to_path_buf(),
            pid,
        }))
    }
}

/// The PID in a PID file, if it holds one.
fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// True when process `pid` runs and is a leased (by its command name).
fn is_leased(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "leased")
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Someone else's PID (a newer server wrote it): theirs to remove.
        if read_pid(&self.path) != Some(self.pid) {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(
                path = %self.path.display(), error = %e,
                "cannot remove PID file (after dropping root its directory must be writable \
                 by server.user)"
            );
        }
    }
}

/// See [`crate::serve_with`].
pub(crate) async fn serve(params: ServeParams, hooks: ServeHooks) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

    let config: Config = match &params.source {
        ConfigSource::File(path) => leased_config::load(path)
            .map_err(|e| anyhow!("invalid configuration {}:\n{e}", path.display()))?,
        ConfigSource::Inline(c) => c.clone(),
    };
    for w in leased_config::relay_trust_warnings(&config)
        .into_iter()
        .chain(leased_config::rapid_commit_warnings(&config))
    {
        tracing::warn!("{w}");
    }
    let origin = match &params.source {
        ConfigSource::File(path) => path.display().to_string(),
        ConfigSource::Inline(_) => "inline configuration".to_string(),
    };
    let run_as = leased_config::resolve_accounts(&config.process, &origin)
        .map_err(|e| anyhow!("invalid configuration:\n{}", ConfigErrors(e)))?;

    let store_path = config.store.path.clone();
    let file_mode = lease_file_mode(&config);
    // The lease store: the embedded journal, or a shared SQL database. The SQL store owns a
    // small tokio runtime of its own (for the commit thread), so it is opened and loaded on a
    // plain thread: blocking on a runtime from inside this one would panic.
    // An unreachable database does not stop the start (`down_at_start`): the SQL side gates
    // replies, creates the schema and loads the leases once it answers.
    let (store, leases, down_at_start): (Box<dyn LeaseStore>, Vec<leased_core::Lease>, _) =
        if let Some(sql) = config.store.sql.clone() {
            let url = leased_store::sql::expand_env(&sql.url).map_err(|e| anyhow!(e))?;
            let name = sql
                .server_name
                .clone()
                .unwrap_or_else(leased_store::sql::default_server_name);
            type Opened = (Box<dyn LeaseStore>, Vec<leased_core::Lease>, Option<String>);
            std::thread::spawn(move || -> Result<Opened, StoreError> {
                let mut s = leased_store::sql::SqlStore::open_lazy(&url, &name)?;
                Ok(match s.init().and_then(|()| s.load()) {
                    Ok(leases) => (Box::new(s), leases, None),
                    Err(e) => (Box::new(s), Vec::new(), Some(e.to_string())),
                })
            })
            .join()
            .map_err(|_| anyhow!("opening the SQL lease store panicked"))?
            .context("opening the SQL lease store")?
        } else {
            let mut store = EmbeddedStore::open_with_mode(&store_path, file_mode).map_err(|e| match e {
                StoreError::Locked { .. } => anyhow!(
                    "another leased is using the lease store {} (it is locked); stop it or set a \
             different store.path",
                    store_path.display()
                ),
                other => anyhow!(other).context("opening the lease store"),
            })?;
            let leases = store.load().context("loading leases")?;
            (Box::new(store), leases, None)
        };
    // Only now that the store is ours: a start that failed on the lock left the running
    // server's PID file alone.
    let pid_file = PidFile::create(config.process.pid_file.as_deref())?;
    let count = leases.len();
    let table = LeaseTable::from_leases(leases);
    tracing::info!(path = %store_path.display(), leases = count, "loaded {count} leases");

    let metrics = Arc::new(Metrics::default());
    // The SQL side (chain, sync, conflict recovery, outage gate, history) around the engine.
    let mut sql_side = crate::sqlio::SqlSide::new(&config, file_mode)?;
    if let Some(why) = down_at_start {
        sql_side.down_at_start(&why);
    }
    let mut engine_sql = crate::sqlio::EngineSql::default();
    let store = sql_side.tap_store(store, &mut engine_sql);
    let history =
        sql_side.start_history(&config, &mut engine_sql, Arc::clone(metrics.history()))?;
    let (out, sockets) = bind_all(&config, params.server_port, params.client_port)?;
    let out = Arc::new(out);
    if out.test_mode() {
        tracing::info!(
            server_port = params.server_port,
            client_port = params.client_port,
            "test mode (non-default ports): replies go to each request's source address"
        );
    }

    let committer = Committer::spawn(store);
    let plan = crate::loaded::current(config);
    let (tx, rx) = lanes();
    let tx = if sql_side.needs_front() {
        sql_side.start_front(tx, Arc::clone(&plan), Arc::clone(&metrics))
    } else {
        tx
    };
    let mut receivers = Vec::new();
    let door = Arc::new(Door::new(Arc::clone(&plan)));
    for (i, (sock, link)) in sockets.into_iter().zip(out.links.iter()).enumerate() {
        receivers.push(tokio::spawn(receive_loop(
            sock,
            i,
            link.name.clone(),
            link.addr,
            tx.clone(),
            Arc::clone(&metrics),
            Arc::clone(&door),
        )));
    }
    drop(tx);
    // Monitors (rogue DHCP servers) run beside the receivers and stop with them.
    let watched: Vec<_> = out
        .links
        .iter()
        .map(|l| crate::monitor::Watched {
            name: l.name.clone(),
            index: l.index,
        })
        .collect();
    let monitors = crate::monitor::Monitors::default();
    receivers.extend(crate::monitor::spawn_rogue(
        &watched,
        &plan,
        &metrics,
        &monitors.foreign,
    ));
    let mut engine = Driver::new(
        Arc::clone(&plan),
        table,
        committer,
        Arc::clone(&out),
        Arc::clone(&metrics),
    )
    .with_sql(engine_sql);
    // HA: the partner link's listener is bound now (a taken port fails start-up).
    let ha_view = match &plan.load().config.ha {
        Some(settings) => {
            let loaded = plan.load();
            let started = engine.started();
            let now = leased_engine::Now {
                wall: leased_core::Timestamp(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                ),
                mono: started.elapsed(),
            };
            let side = crate::ha::HaSide::start(settings, Arc::clone(&loaded.plan), started, now)
                .context("starting HA")?;
            let view = side.view();
            engine = engine.with_ha(side);
            Some(view)
        }
        None => None,
    };
    // DNS updates: the queue file is opened and the socket bound now, before root is dropped.
    let ddns_task = match crate::ddns::start(Arc::clone(&plan)).await? {
        Some((sink, task)) => {
            engine = engine.with_ddns(Some(sink));
            Some(task)
        }
        None => None,
    };

    // Leasequery's TCP listener (bulk and active) is bound now, before root is dropped.
    if let Some(listener) = crate::leasequery::bind(plan.load().config.leasequery.as_ref()).await? {
        let (lq_tx, lq_rx) = mpsc::channel(crate::leasequery::REQUEST_QUEUE);
        engine = engine.with_leasequery(lq_rx);
        receivers.push(tokio::spawn(crate::leasequery::serve(
            listener,
            Arc::clone(&plan),
            lq_tx,
            Arc::clone(&metrics),
        )));
    }

    // The sidecar (HTTP API) starts before any packet is handled; if it cannot (its port is
    // taken), start-up fails as a whole rather than serving without the API the config asks for.
    let ServeHooks { sidecar, stop } = hooks;
    let (reload_tx, mut reload_rx) = mpsc::channel(8);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The shared view exists for the sidecar, for the ARP watch (which reads the leases) and
    // for the service manager's status line (which counts them).
    let shared =
        (sidecar.is_some() || plan.load().config.arp_watch.enabled || crate::notify::enabled())
            .then(|| {
                Arc::new(SharedState {
                    current: Arc::clone(&plan),
                    leases: ArcSwap::from_pointee(LeaseSnapshot::default()),
                    metrics: Arc::clone(&metrics),
                    source: params.source.clone(),
                    reload_tx,
                    started: Instant::now(),
                    bindings: std::sync::OnceLock::new(),
                    export_metrics: std::sync::OnceLock::new(),
                    monitors,
                    ha: ha_view,
                })
            });
    if let Some(shared) = &shared {
        engine = engine.with_shared(Arc::clone(shared));
        let reader = Arc::clone(shared);
        let view = crate::monitor::arp::ArpWatchView {
            plan: Arc::clone(&shared.current),
            leases: Arc::new(move || reader.leases.load_full()),
            findings: Arc::clone(&shared.monitors.arp),
        };
        receivers.extend(crate::monitor::arp::spawn(&watched, &view));
    }
    let status_view = shared.clone();
    // Starting the sidecar binds its listener; its task runs only after the drop below.
    let sidecar = match (sidecar, shared) {
        (Some(start), Some(shared)) => match start(shared, Shutdown(shutdown_rx)) {
            Ok(task) => Some(task),
            Err(e) => {
                for r in &receivers {
                    r.abort();
                }
                return Err(e);
            }
        },
        _ => None,
    };
    // Every socket is bound and every file open: become `[server] user` before the first
    // packet is decided or the first HTTP request answered.
    if let Some(run_as) = &run_as
        && let Err(e) = drop_root(&plan.load().config, run_as)
    {
        let _ = shutdown_tx.send(true);
        for r in &receivers {
            r.abort();
        }
        return Err(e);
    }
    let mut sidecar = sidecar.map(tokio::spawn);
    let mut stop = stop.unwrap_or_else(|| Box::pin(std::future::pending()));
    // systemd: every socket is bound, the store loaded, root dropped.
    let _status = crate::notify::serving(&out, count, &metrics, status_view);
    // The watchdog is fed from the engine task itself (see `notify`).
    let mut engine = tokio::spawn(crate::notify::fed(engine.run(rx)));
    let ddns_task = ddns_task.map(tokio::spawn);

    let engine_result = loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break None; }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break None; }
            () = &mut stop => { tracing::info!("stop requested: shutting down"); break None; }
            _ = sighup.recv() => { reload::reload(&params.source, &plan); }
            Some(reply) = reload_rx.recv() => {
                tracing::info!("reload requested over the API");
                // The requester may have gone away; the reload happened all the same.
                let _ = reply.send(reload::reload_outcome(&params.source, &plan));
            }
            r = async {
                match &mut sidecar {
                    Some(h) => h.await,
                    None => std::future::pending().await,
                }
            } => {
                sidecar = None;
                match r {
                    Ok(Ok(())) => tracing::warn!("the HTTP API stopped; DHCP keeps serving"),
                    Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "the HTTP API failed; DHCP keeps serving"),
                    Err(e) => tracing::error!(error = %e, "the HTTP API task failed; DHCP keeps serving"),
                }
            }
            // The engine ends only when all receivers are gone; treat it as fatal.
            r = &mut engine => break Some(r),
        }
    };
    crate::notify::stopping();

    // The API first: it finishes its requests (bounded) and can ask for nothing more.
    let _ = shutdown_tx.send(true);
    if let Some(h) = sidecar {
        match tokio::time::timeout(SIDECAR_GRACE, h).await {
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %format!("{e:#}"), "HTTP API stopped with an error")
            }
            Ok(_) => {}
            Err(_) => tracing::warn!("HTTP API did not stop within {SIDECAR_GRACE:?}"),
        }
    }

    for r in &receivers {
        r.abort();
    }
    for r in receivers {
        // Aborted tasks report cancellation; there is nothing else to learn.
        let _ = r.await;
    }
    let joined = match engine_result {
        Some(r) => r,
        None => engine.await,
    };
    let committer = joined.map_err(|e| anyhow!("engine task failed: {e}"))?;
    // The engine is gone, so the DDNS task's channel is closed: it stores what it has and ends.
    if let Some(t) = ddns_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    tokio::task::spawn_blocking(move || committer.finish())
        .await
        .map_err(|e| anyhow!("commit thread join failed: {e}"))?;
    // Every lease change is in: the history's last records follow them to disk.
    history.finish(HISTORY_GRACE).await;

    let snapshot = metrics.snapshot();
    let summary: Vec<String> = snapshot.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let summary = if summary.is_empty() {
        "none".to_string()
    } else {
        summary.join(" ")
    };
    tracing::info!(counters = %summary, "counters at shutdown");
    drop(pid_file);
    tracing::info!("stopped");
    Ok(())
}

/// Drops root to `run_as` (keeping [`crate::privileges::SERVE_CAPS`]), then checks that the
/// directories leased still creates files in are the user's to write.
fn drop_root(config: &Config, run_as: &leased_config::RunAs) -> anyhow::Result<()> {
    // Still root: what leased made in the user's own directories becomes the user's.
    if config.store.sql.is_none() {
        let journal = &config.store.path;
        let files = [
            journal.clone(),
            leased_store::history::history_path(journal),
        ];
        crate::privileges::hand_over_files(crate::privileges::parent_dir(journal), &files, run_as);
    }
    if let Some(export) = &config.export {
        crate::privileges::hand_over_tree(&export.outbox, run_as);
    }
    if let Some(d) = &config.ddns {
        let q = &d.queue_path;
        crate::privileges::hand_over_files(
            crate::privileges::parent_dir(q),
            std::slice::from_ref(q),
            run_as,
        );
    }
    crate::privileges::drop_to(run_as, crate::privileges::SERVE_CAPS)?;
    if config.store.sql.is_none() {
        // Compaction writes `<path>.tmp` and renames it; the history file is appended.
        let dir = crate::privileges::parent_dir(&config.store.path);
        crate::privileges::require_writable(dir, "the lease store's directory", run_as)?;
    }
    if let Some(export) = &config.export {
        crate::privileges::require_writable_tree(&export.outbox, "the export outbox", run_as)?;
    }
    if let Some(pid) = &config.process.pid_file {
        let dir = crate::privileges::parent_dir(pid);
        if nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_err() {
            tracing::warn!(
                dir = %dir.display(), user = %run_as.user,
                "the PID file's directory is not writable by {}: the file stays behind at exit",
                run_as.user
            );
        }
    }
    Ok(())
}

/// Opens one socket per served interface. Fails with advice when privileges are missing.
fn bind_all(
    config: &Config,
    server_port: u16,
    client_port: u16,
) -> anyhow::Result<(Outbound, Vec<tokio::net::UdpSocket>)> {
    let system = sock::system_addrs().context("listing network interfaces")?;
    let specs = iface::resolve(config, &system).map_err(|e| anyhow!(e))?;
    let mut links = Vec::new();
    let mut sockets = Vec::new();
    for spec in specs {
        let (recv, send) = sock::bind_udp(&spec.name, server_port).map_err(|e| {
            let hint = match e.kind() {
                io::ErrorKind::PermissionDenied => {
                    "; run as root or grant CAP_NET_BIND_SERVICE (port < 1024) and CAP_NET_RAW \
                     (SO_BINDTODEVICE, AF_PACKET)"
                }
                io::ErrorKind::AddrInUse => "; is another DHCP server running?",
                _ if e.raw_os_error() == Some(libc::ENODEV) => "; no such interface",
                _ => "",
            };
            anyhow!("cannot open a DHCP socket on {}: {e}{hint}", spec.name)
        })?;
        let index = sock::if_index(&spec.name).unwrap_or(0);
        let subnets: Vec<String> = config
            .network
            .subnets
            .iter()
            .filter(|s| {
                s.interface.as_deref() == Some(spec.name.as_str())
                    || (s.interface.is_none() && spec.addr.is_some_and(|a| s.network.contains(&a)))
            })
            .map(|s| s.network.to_string())
            .collect();
        let addr = spec
            .addr
            .map_or_else(|| "no IPv4 address".to_string(), |a| a.to_string());
        let subnets = if subnets.is_empty() {
            "(relayed only)".to_string()
        } else {
            subnets.join(", ")
        };
        tracing::info!(
            iface = %spec.name,
            port = server_port,
            "serving on {} ({addr}) subnets {subnets}",
            spec.name,
        );
        links.push(Link {
            name: spec.name,
            index,
            addr: spec.addr,
            udp: send,
        });
        sockets.push(recv);
    }
    Ok((Outbound::new(links, server_port, client_port), sockets))
}
