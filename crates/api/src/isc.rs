//! The DHCPStats API over an ISC dhcpd's own files (`leased isc serve`): the same routes,
//! shapes, auth and error answers as `leased serve`'s API, with [`IscSource`] as the
//! [`StatsSource`].
//!
//! Why a snapshot swapped whole: dhcpd rewrites `dhcpd.leases` while we serve, and a reader
//! must never see half of one reading and half of the next. [`IscSource::reload`] parses both
//! files off to the side and swaps the result in; a failed reading (a syntax error in the conf
//! being edited) keeps the previous one and says why.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use axum::Router;
use axum::http::header;
use leased_isc::{IscConfig, IscLeases, IscSubnet, SubnetStats, hex_colon, isc_escape};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::SecurityAddon;
use crate::auth::Auth;
use crate::conn::ConnLimits;
use crate::error::ApiError;
use crate::routes as handlers;
use crate::source::{Stats, StatsSource, pick_network};
use crate::stats::{Counts, Ips, IscLease, Keyed, Static, SubnetView};

/// One consistent reading of the two files.
#[derive(Debug, Default)]
pub struct IscSnapshot {
    /// `dhcpd.conf` with its includes.
    pub config: IscConfig,
    /// `dhcpd.leases`, last entry per address winning.
    pub leases: IscLeases,
    /// Per-subnet counts, in `config.subnets` order.
    pub stats: Vec<SubnetStats>,
}

/// The ISC files and their latest good reading.
#[derive(Debug)]
pub struct IscSource {
    conf: PathBuf,
    leases: PathBuf,
    snap: ArcSwap<IscSnapshot>,
}

fn read(conf: &Path, leases: &Path) -> anyhow::Result<IscSnapshot> {
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
    let stats = leased_isc::subnet_stats(&config, &leases.leases);
    Ok(IscSnapshot {
        config,
        leases,
        stats,
    })
}

impl IscSource {
    /// Reads both files; an error when the conf cannot be read or parsed. A missing leases
    /// file reads as no leases (dhcpd has not written one yet).
    pub fn load(conf: &Path, leases: &Path) -> anyhow::Result<IscSource> {
        let snap = read(conf, leases)?;
        for w in snap.config.warnings.iter().chain(&snap.leases.warnings) {
            tracing::warn!("{w}");
        }
        Ok(IscSource {
            conf: conf.to_path_buf(),
            leases: leases.to_path_buf(),
            snap: ArcSwap::from_pointee(snap),
        })
    }

    /// Re-reads both files and swaps the new reading in; on error the previous reading stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let snap = read(&self.conf, &self.leases)?;
        tracing::info!(
            subnets = snap.config.subnets.len(),
            leases = snap.leases.leases.len(),
            "re-read the ISC files"
        );
        self.snap.store(Arc::new(snap));
        Ok(())
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

fn lease_view(l: &leased_isc::IscLease) -> IscLease {
    IscLease {
        starts: l.starts.map(|t| t.to_string()),
        ends: l.ends.map(|t| t.to_string()),
        cltt: l.cltt.map(|t| t.to_string()),
        binding_state: l.binding_state.as_ref().map(|b| b.as_str().to_string()),
        hardware_ethernet: l.hardware.as_ref().map(|h| h.address.clone()),
        uid: l.uid.as_deref().map(isc_escape),
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
                    host_name: h.host_name.clone().or_else(|| Some(h.name.clone())),
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
                    Some((ip.to_string(), lease_view(l)))
                })
                .collect(),
        )
    });
    Some(SubnetView {
        subnet: None,
        shared_network: s.shared_network.clone(),
        ranges: s
            .ranges
            .iter()
            .map(|(a, b)| [a.to_string(), b.to_string()])
            .collect(),
        monitor: true,
        ips: ips(st),
        description: s.network.to_string(),
        routers: strings(s.routers.as_ref()),
        dns_servers: strings(s.dns_servers.as_ref()),
        ntp_servers: strings(s.ntp_servers.as_ref()),
        domain_name: s.domain_name.clone(),
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
                    Some((v.description.clone(), v))
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
        let mut v = subnet_view(&snap, index, true)
            .ok_or_else(|| ApiError::internal("subnet without counts"))?;
        v.subnet = Some(v.description.clone());
        Ok(v)
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
    let (router, doc) = OpenApiRouter::with_openapi(IscDoc::openapi())
        .routes(routes!(handlers::banner))
        .routes(routes!(handlers::subnets_full))
        .routes(routes!(handlers::subnets_all))
        .routes(routes!(handlers::subnets_list))
        .routes(routes!(handlers::subnet_one))
        .routes(routes!(handlers::subnet_cidr))
        .routes(routes!(handlers::counts))
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
        .with_state(Stats(source))
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
    if let Some(problem) = keys
        .iter()
        .find_map(|k| leased_core::config::api_key_problem(k))
    {
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
