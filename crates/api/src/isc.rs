//! The DHCPStats API over an ISC dhcpd's own files (`leased isc serve`): the same routes,
//! shapes, auth and error answers as `leased serve`'s API, with [`IscSource`] as the
//! [`StatsSource`], plus DHCPStats' `POST /refresh` (re-read now) and `GET /leases` (the raw
//! leases file, gzipped).
//!
//! Why a snapshot swapped whole: dhcpd rewrites `dhcpd.leases` while we serve, and a reader
//! must never see half of one reading and half of the next. [`IscSource::reload`] parses both
//! files off to the side and swaps the result in; a failed reading (a syntax error in the conf
//! being edited) keeps the previous one and says why.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use leased_isc::{IscConfig, IscLeases, IscSubnet, SubnetStats, Warning, hex_colon};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::SecurityAddon;
use crate::auth::Auth;
use crate::conn::ConnLimits;
use crate::error::{ApiError, ErrorBody};
use crate::routes as handlers;
use crate::source::{Stats, StatsSource, pick_network};
use crate::stats::{Counts, ISC_LEASE_KEYS, Ips, IscLease, Keyed, Static, SubnetView};

/// Warnings logged per reading at most; the rest are summed up in one line, so a leases file
/// full of odd entries cannot flood the log.
const MAX_LOGGED_WARNINGS: usize = 20;

/// The largest leases file `GET /leases` compresses (far above real files: 100,000 leases
/// take about 30 MB); bounds what one request can make the server hold.
pub const MAX_LEASES_FILE: u64 = 512 << 20;

/// One consistent reading of the two files.
#[derive(Debug, Default)]
pub struct IscSnapshot {
    /// `dhcpd.conf` with its includes.
    pub config: IscConfig,
    /// `dhcpd.leases`, last entry per address winning.
    pub leases: IscLeases,
    /// Per-subnet counts, in `config.subnets` order.
    pub stats: Vec<SubnetStats>,
    /// When the files were read (Unix seconds): the `now` entries without a binding state are
    /// judged at, as dhcpd judges them when it loads the file.
    pub read_at: i64,
}

/// The compressed leases file of `GET /leases`, and which version of the file it is.
#[derive(Debug)]
struct GzCache {
    key: (u64, Option<std::time::SystemTime>, u64),
    data: Bytes,
}

/// Who read the files last: serialises readings (the watcher's and `POST /refresh`'s) and
/// lets a refresh that waited reuse a reading that began after it asked.
#[derive(Debug, Default)]
struct Readings {
    /// Readings begun so far.
    begun: AtomicU64,
    /// Held while reading; holds the number of the last finished reading and why it was
    /// refused (`None`: it succeeded).
    lock: Mutex<(u64, Option<String>)>,
}

/// The ISC files and their latest good reading.
#[derive(Debug)]
pub struct IscSource {
    conf: PathBuf,
    leases: PathBuf,
    snap: ArcSwap<IscSnapshot>,
    clock: fn() -> i64,
    readings: Readings,
    gz: tokio::sync::Mutex<Option<GzCache>>,
}

fn wall_clock() -> i64 {
    i64::try_from(crate::clock::unix_now().0).unwrap_or(i64::MAX)
}

fn read(conf: &Path, leases: &Path, now: i64) -> anyhow::Result<IscSnapshot> {
    let config =
        leased_isc::read_conf(conf).with_context(|| format!("reading {}", conf.display()))?;
    let leases = match leased_isc::read_leases(leases) {
        Ok(l) => l,
        // dhcpd creates the file on its first lease; none yet is an empty database.
        Err(leased_isc::IscError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            IscLeases::default()
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", leases.display())),
    };
    let stats = leased_isc::subnet_stats(&config, &leases.leases, now);
    Ok(IscSnapshot {
        config,
        leases,
        stats,
        read_at: now,
    })
}

fn warnings(snap: &IscSnapshot) -> impl Iterator<Item = &Warning> {
    snap.config.warnings.iter().chain(&snap.leases.warnings)
}

/// Logs the warnings of `new` that `old` did not have (all of them on the first reading), at
/// most [`MAX_LOGGED_WARNINGS`]: a lease entry without a binding state is said once, not at
/// every re-read while dhcpd appends to the file.
fn log_new_warnings(old: Option<&IscSnapshot>, new: &IscSnapshot) {
    let seen: BTreeSet<&Warning> = old.map(|o| warnings(o).collect()).unwrap_or_default();
    let fresh: Vec<&Warning> = warnings(new).filter(|w| !seen.contains(w)).collect();
    for w in fresh.iter().take(MAX_LOGGED_WARNINGS) {
        tracing::warn!("{w}");
    }
    if fresh.len() > MAX_LOGGED_WARNINGS {
        tracing::warn!(
            "… and {} more warnings about the ISC files",
            fresh.len() - MAX_LOGGED_WARNINGS
        );
    }
}

impl IscSource {
    /// Reads both files; an error when the conf cannot be read or parsed. A missing leases
    /// file reads as no leases (dhcpd has not written one yet).
    pub fn load(conf: &Path, leases: &Path) -> anyhow::Result<IscSource> {
        Self::load_with_clock(conf, leases, wall_clock)
    }

    /// [`IscSource::load`] with the clock that dates each reading (tests pass their own).
    pub fn load_with_clock(
        conf: &Path,
        leases: &Path,
        clock: fn() -> i64,
    ) -> anyhow::Result<IscSource> {
        let snap = read(conf, leases, clock())?;
        log_new_warnings(None, &snap);
        Ok(IscSource {
            conf: conf.to_path_buf(),
            leases: leases.to_path_buf(),
            snap: ArcSwap::from_pointee(snap),
            clock,
            readings: Readings::default(),
            gz: tokio::sync::Mutex::new(None),
        })
    }

    /// Re-reads both files and swaps the new reading in; on error the previous reading stays.
    /// Blocks while another reading runs (one at a time).
    pub fn reload(&self) -> anyhow::Result<()> {
        let mut last = self.readings.lock.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.readings.begun.fetch_add(1, Ordering::SeqCst) + 1;
        let r = self.read_and_swap();
        *last = (n, r.as_ref().err().map(|e| format!("{e:#}")));
        r
    }

    fn read_and_swap(&self) -> anyhow::Result<()> {
        let snap = read(&self.conf, &self.leases, (self.clock)())?;
        tracing::info!(
            subnets = snap.config.subnets.len(),
            leases = snap.leases.leases.len(),
            "re-read the ISC files"
        );
        log_new_warnings(Some(&self.snap.load()), &snap);
        self.snap.store(Arc::new(snap));
        Ok(())
    }

    /// `POST /refresh`: a reading that begins after this call; if one began while this call
    /// waited for the one before to finish, its result is shared rather than reading again
    /// (so a burst of refreshes costs one or two readings, not one each).
    pub fn refresh_now(&self) -> Result<(), String> {
        let asked = self.readings.begun.load(Ordering::SeqCst);
        let mut last = self.readings.lock.lock().unwrap_or_else(|p| p.into_inner());
        if last.0 > asked {
            return last.1.clone().map_or(Ok(()), Err);
        }
        let n = self.readings.begun.fetch_add(1, Ordering::SeqCst) + 1;
        let r = self.read_and_swap().map_err(|e| format!("{e:#}"));
        *last = (n, r.clone().err());
        r
    }

    /// Every file a change of which calls for a re-read: the conf, its includes, the leases.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v = self.snap.load().config.files.clone();
        if !v.contains(&self.conf) {
            v.push(self.conf.clone());
        }
        v.push(self.leases.clone());
        v
    }

    /// The current reading.
    pub fn snapshot(&self) -> Arc<IscSnapshot> {
        self.snap.load_full()
    }

    /// The leases file as it is now, gzipped (DHCPStats' `GET /leases`). One compression runs
    /// at a time and its result is kept until the file changes, so many requests for an
    /// unchanged file cost one compression.
    pub async fn leases_gz(&self) -> Result<Bytes, String> {
        let mut cache = self.gz.lock().await;
        let path = self.leases.clone();
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let key = (
            meta.len(),
            meta.modified().ok(),
            std::os::unix::fs::MetadataExt::ino(&meta),
        );
        if let Some(c) = cache.as_ref()
            && c.key == key
        {
            return Ok(c.data.clone());
        }
        let data = tokio::task::spawn_blocking(move || gzip_file(&path))
            .await
            .map_err(|e| format!("compression task: {e}"))??;
        *cache = Some(GzCache {
            key,
            data: data.clone(),
        });
        Ok(data)
    }
}

/// The whole file at `path` gzipped, refusing one larger than [`MAX_LEASES_FILE`].
fn gzip_file(path: &Path) -> Result<Bytes, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut enc =
        flate2::read::GzEncoder::new(f.take(MAX_LEASES_FILE + 1), flate2::Compression::default());
    let mut out = Vec::new();
    enc.read_to_end(&mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if enc.get_ref().limit() == 0 {
        return Err(format!(
            "{} is larger than {} MiB",
            path.display(),
            MAX_LEASES_FILE >> 20
        ));
    }
    Ok(Bytes::from(out))
}

fn ips(st: &SubnetStats) -> Ips {
    Ips {
        total: st.ips.total,
        active: st.ips.active,
        released: st.ips.released,
        free: st.ips.free,
        backup: st.ips.backup,
        unused: st.ips.unused,
        statics: st.ips.static_,
    }
}

fn strings(v: Option<&Vec<Ipv4Addr>>) -> Vec<String> {
    v.map(|v| v.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

/// One ISC lease entry in DHCPStats' shape, its state judged at `now` (see
/// [`leased_isc::IscLease::binding_state_at`]).
pub fn lease_view(l: &leased_isc::IscLease, now: i64) -> IscLease {
    let (ethernet, other_hw) = match &l.hardware {
        Some(h) if h.htype == "ethernet" => (Some(h.address.clone()), None),
        Some(h) => (
            None,
            Some((format!("hardware-{}", h.htype), h.address.clone())),
        ),
        None => (None, None),
    };
    let mut vars: Vec<(String, String)> = other_hw.into_iter().collect();
    vars.extend(
        l.vars
            .iter()
            .filter(|(k, _)| !ISC_LEASE_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    IscLease {
        starts: l.starts.map(|t| t.to_string()),
        ends: l.ends.map(|t| t.to_string()),
        tstp: l.tstp.map(|t| t.to_string()),
        tsfp: l.tsfp.map(|t| t.to_string()),
        atsfp: l.atsfp.map(|t| t.to_string()),
        cltt: l.cltt.map(|t| t.to_string()),
        binding_state: Some(l.binding_state_at(now).as_str().to_string()),
        hardware_ethernet: ethernet,
        uid: l
            .uid_text
            .clone()
            .or_else(|| l.uid.as_deref().map(leased_isc::isc_escape)),
        vars: Keyed(vars),
        client_hostname: l.client_hostname.clone(),
    }
}

/// One ISC subnet in DHCPStats' shape.
pub fn subnet_view(snap: &IscSnapshot, index: usize, full: bool) -> Option<SubnetView> {
    let s: &IscSubnet = snap.config.subnets.get(index)?;
    let st = snap.stats.get(index)?;
    let statics = full.then(|| {
        let mut out: Keyed<Static> = Keyed(Vec::new());
        for h in &s.hosts {
            let Some(ip) = h.fixed_addresses.iter().find(|a| s.network.contains(*a)) else {
                continue;
            };
            let key = if out.0.iter().any(|(k, _)| *k == h.name) {
                format!("{}@{ip}", h.name)
            } else {
                h.name.clone()
            };
            out.0.push((
                key,
                Static {
                    mac_address: h.hardware.as_ref().map(|hw| hw.address.clone()),
                    client_id: h.client_id.as_deref().map(hex_colon),
                    relay_key: None,
                    ip_address: ip.to_string(),
                    host_name: h.sent_host_name().map(str::to_string),
                },
            ));
        }
        out
    });
    let leases = full.then(|| {
        Keyed(
            st.lease_ips
                .iter()
                .filter_map(|ip| {
                    let i = snap.leases.leases.binary_search_by_key(ip, |l| l.ip).ok()?;
                    let l = snap.leases.leases.get(i)?;
                    Some((ip.to_string(), lease_view(l, snap.read_at)))
                })
                .collect(),
        )
    });
    Some(SubnetView {
        subnet: s.network.to_string(),
        shared_network: s.shared_network.clone(),
        ranges: s
            .ranges
            .iter()
            .map(|(a, b)| [a.to_string(), b.to_string()])
            .collect(),
        monitor: s.monitor,
        ips: ips(st),
        description: s
            .description
            .clone()
            .unwrap_or_else(|| s.network.to_string()),
        routers: strings(s.routers.as_ref()),
        dns_servers: strings(s.dns_servers.as_ref()),
        ntp_servers: strings(s.ntp_servers.as_ref()),
        domain_name: s.domain_name.clone(),
        ddns_domain_name: s.ddns_domain_name.clone(),
        statics,
        leases,
    })
}

impl StatsSource for IscSource {
    fn subnets(&self, full: bool) -> Keyed<SubnetView> {
        let snap = self.snap.load();
        Keyed(
            (0..snap.config.subnets.len())
                .filter_map(|i| {
                    let v = subnet_view(&snap, i, full)?;
                    Some((v.subnet.clone(), v))
                })
                .collect(),
        )
    }

    fn subnet(&self, text: &str) -> Result<SubnetView, ApiError> {
        let snap = self.snap.load();
        let found = pick_network(&snap.config.subnets, |s| s.network, text)?;
        let index = snap
            .config
            .subnets
            .iter()
            .position(|s| std::ptr::eq(s, found))
            .ok_or_else(|| ApiError::internal("subnet index"))?;
        subnet_view(&snap, index, true).ok_or_else(|| ApiError::internal("subnet without counts"))
    }

    fn counts(&self) -> Counts {
        let snap = self.snap.load();
        let t = leased_isc::total_counts(&snap.stats);
        Counts {
            ip_counts: Ips {
                total: t.total,
                active: t.active,
                released: t.released,
                free: t.free,
                backup: t.backup,
                unused: t.unused,
                statics: t.static_,
            },
            estimated_devices: t.static_ + t.active,
        }
    }

    fn refresh(&self) -> Result<(), String> {
        self.refresh_now()
    }
}

/// What the ISC API's handlers share: the DHCPStats routes read [`Stats`], `GET /leases`
/// the source itself.
#[derive(Debug, Clone)]
pub struct IscState {
    stats: Stats,
    source: Arc<IscSource>,
}

impl FromRef<IscState> for Stats {
    fn from_ref(state: &IscState) -> Stats {
        state.stats.clone()
    }
}

/// The raw `dhcpd.leases`, gzipped, as the attachment `dhcpd.leases.gz` (DHCPStats'
/// `/leases`, for clients that parse the file themselves).
#[utoipa::path(get, path = "/leases", tag = "dhcpstats",
    responses((status = 200, description = "the leases file, gzipped",
        content_type = "application/gzip", body = Vec<u8>),
        (status = 401, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn leases_file(State(state): State<IscState>) -> Response {
    match state.source.leases_gz().await {
        Ok(data) => (
            [
                (header::CONTENT_TYPE, "application/gzip"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=dhcpd.leases.gz",
                ),
            ],
            data,
        )
            .into_response(),
        Err(e) => {
            ApiError::internal(format!("Failed to compress leases database: {e}")).into_response()
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "leased isc serve", description = "DHCPStats-compatible stats over an ISC \
        dhcpd's dhcpd.conf and dhcpd.leases"),
    modifiers(&SecurityAddon)
)]
struct IscDoc;

/// The DHCPStats routes over `source`, the key check in front, `/openapi.json`, JSON 404s.
pub fn app(source: Arc<IscSource>, auth: Auth) -> Router {
    let (router, doc) = OpenApiRouter::<IscState>::with_openapi(IscDoc::openapi())
        .routes(routes!(handlers::banner))
        .routes(routes!(handlers::subnets_full))
        .routes(routes!(handlers::subnets_all))
        .routes(routes!(handlers::subnets_list))
        .routes(routes!(handlers::subnet_one))
        .routes(routes!(handlers::subnet_cidr))
        .routes(routes!(handlers::counts))
        .routes(routes!(handlers::refresh))
        .routes(routes!(leases_file))
        .split_for_parts();
    let doc = Arc::new(doc.to_json().unwrap_or_else(|_| "{}".into()));
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = Arc::clone(&doc);
                async move { ([(header::CONTENT_TYPE, "application/json")], (*doc).clone()) }
            }),
        )
        .fallback(crate::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(auth),
            crate::auth::require_key,
        ))
        .with_state(IscState {
            stats: Stats(Arc::clone(&source) as Arc<dyn StatsSource>),
            source,
        })
}

/// Serves [`app`] on `listen` behind `limits` until `stop` completes (then finishes requests
/// within a grace period). Binds before returning the future, so a taken port fails at once.
pub fn serve(
    listen: SocketAddr,
    keys: &[String],
    limits: &ConnLimits,
    source: Arc<IscSource>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, crate::BoxFuture)> {
    if keys.is_empty() {
        anyhow::bail!(
            "no API keys: give --key KEY or set {} (comma separated)",
            crate::auth::KEYS_ENV
        );
    }
    // (Never quoted in the message: even a refused key is a secret.)
    if let Some(problem) = keys.iter().find_map(|k| leased_config::api_key_problem(k)) {
        anyhow::bail!("refusing an API key: {problem}");
    }
    let app = app(source, Auth::new(keys, false, false));
    let listener =
        crate::conn::listen_tcp(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr().unwrap_or(listen);
    let handle = axum_server::Handle::new();
    let server = crate::serve_http(listener, app, limits, None, &handle, "ISC API")?;
    Ok((
        local,
        Box::pin(async move {
            tokio::spawn(async move {
                stop.await;
                handle.graceful_shutdown(Some(Duration::from_secs(3)));
            });
            server.await
        }),
    ))
}
