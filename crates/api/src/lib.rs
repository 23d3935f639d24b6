//! The HTTP API of leased, run inside `leased serve` beside the DHCP engine.
//!
//! Routes: DHCPStats-compatible `/`, `/subnets`, `/subnets/list`, `/subnets/all`,
//! `/subnets/{network}`, `/counts` (shapes in [`stats`]); leased's own `/leases`,
//! `/leases/{ip}`, `/reservations` (GET/POST, and GET/PUT/DELETE `/reservations/{ip}`),
//! `/health`, `/metrics` (Prometheus text), `/openapi.json`; the network monitors' findings
//! `/rogue_servers` and `/arp_findings` ([`monitor`]); and the operator's dashboard under
//! `/ui` ([`ui`]: its own login and session cookie instead of `X-Api-Key`).
//!
//! Why it reads a snapshot: every answer is computed from io's [`SharedState`] (the live plan
//! and the engine's published lease table), so an HTTP request never waits for, or slows, the
//! engine. Reservation writes go through the config file and the server's own reload path.
//!
//! Auth is `X-Api-Key` (see [`auth`]); TLS is rustls with the ring provider. Every listener
//! has a connection cap and header, request and idle clocks ([`conn`]).
#![forbid(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod conn;
pub mod error;
pub mod ha;
pub mod isc;
pub mod monitor;
pub mod prom;
pub mod reservations;
pub mod routes;
pub mod source;
pub mod stats;
pub mod tls;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect};
use leased_config::{ApiSettings, TlsSettings};
use leased_io::{SharedState, Shutdown, Sidecar};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::conn::{ConnLimits, Gate, LimitAcceptor};
use crate::error::ApiError;

/// How long in-flight requests get to finish after shutdown begins.
const GRACE: Duration = Duration::from_secs(3);

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The server's read-only view and reload door.
    pub shared: Arc<SharedState>,
    /// Serialises reservation writes: one edit of the config file at a time.
    pub writes: Arc<tokio::sync::Mutex<()>>,
    /// The DHCPStats routes' numbers (here: [`source::LiveStats`] over `shared`).
    pub stats: source::Stats,
}

/// The OpenAPI document's frame; the paths come from the router itself.
#[derive(OpenApi)]
#[openapi(
    info(title = "leased", description = "leased DHCPv4 server: DHCPStats-compatible stats, \
        leases, reservations, metrics"),
    modifiers(&SecurityAddon)
)]
struct ApiDoc;

/// Adds the `X-Api-Key` scheme to an OpenAPI document.
pub(crate) struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

/// The routes and the OpenAPI document describing exactly them.
fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::banner))
        .routes(routes!(routes::subnets_full))
        .routes(routes!(routes::subnets_all))
        .routes(routes!(routes::subnets_list))
        .routes(routes!(routes::subnet_one))
        .routes(routes!(routes::subnet_cidr))
        .routes(routes!(routes::counts))
        .routes(routes!(routes::refresh))
        .routes(routes!(routes::leases))
        .routes(routes!(routes::lease_one))
        .routes(routes!(
            routes::reservations_list,
            routes::reservation_create
        ))
        .routes(routes!(
            routes::reservation_get,
            routes::reservation_replace,
            routes::reservation_delete
        ))
        .routes(routes!(routes::health))
        .routes(routes!(routes::metrics))
        .routes(routes!(monitor::rogue_servers))
        .routes(routes!(monitor::arp_findings))
        .routes(routes!(ha::ha_status))
        .routes(routes!(ha::ha_maintenance))
        .routes(routes!(ha::ha_resume))
        .routes(routes!(ha::ha_sync))
        .split_for_parts()
}

/// The OpenAPI document (also served at `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_router();
    let path = utoipa::openapi::path::PathItemBuilder::new()
        .operation(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This document"))
                .response("200", utoipa::openapi::Response::new("OpenAPI 3 JSON"))
                .build(),
        )
        .build();
    doc.paths.paths.insert("/openapi.json".into(), path);
    doc
}

/// A boxed server future (the ISC API's).
pub type BoxFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /openapi.json")
}

/// The whole application: routes, `/openapi.json`, JSON 404s, and the key check in front.
pub fn app(shared: Arc<SharedState>, auth: Auth) -> Router {
    build(shared, auth, None)
}

/// [`app`] plus the dashboard under `/ui`, which checks its own sessions (the key check in
/// front of the API's routes does not cover it).
pub fn app_with_ui(shared: Arc<SharedState>, auth: Auth, ui: Arc<ui::Ui>) -> Router {
    build(shared, auth, Some(ui))
}

fn build(shared: Arc<SharedState>, auth: Auth, ui: Option<Arc<ui::Ui>>) -> Router {
    let (router, _) = api_router();
    let doc = openapi();
    let doc = Arc::new(doc.to_json().unwrap_or_else(|_| "{}".into()));
    let state = AppState {
        stats: source::Stats(Arc::new(source::LiveStats(Arc::clone(&shared)))),
        shared,
        writes: Arc::new(tokio::sync::Mutex::new(())),
    };
    let api = router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = Arc::clone(&doc);
                async move { ([(header::CONTENT_TYPE, "application/json")], (*doc).clone()) }
            }),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(auth),
            auth::require_key,
        ))
        .with_state(state.clone());
    match ui {
        Some(ui) => api.merge(ui::router(state, ui)),
        None => api,
    }
}

/// The configured keys plus those in `LEASED_API_KEYS` (as a client reads them: unchecked; a
/// server checks them with [`accepted_keys`]).
pub fn keys_with_env(settings: &ApiSettings) -> Vec<String> {
    let mut keys = settings.keys.clone();
    if let Ok(v) = std::env::var(auth::KEYS_ENV) {
        keys.extend(auth::split_keys(&v));
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The keys a server accepts: `configured` (already checked by the config loader or the
/// command line) plus `LEASED_API_KEYS`, every one held to the same rule
/// ([`leased_config::api_key_problem`]). A bad key is a start-up error naming where it
/// came from, never a key silently accepted or silently dropped.
pub fn accepted_keys(configured: &[String]) -> anyhow::Result<Vec<String>> {
    let mut keys = configured.to_vec();
    if let Ok(v) = std::env::var(auth::KEYS_ENV) {
        for (i, k) in auth::split_keys(&v).into_iter().enumerate() {
            if let Some(problem) = leased_config::api_key_problem(&k) {
                return Err(anyhow!(
                    "{}: key {} (counting from 1): {problem}",
                    auth::KEYS_ENV,
                    i + 1
                ));
            }
            keys.push(k);
        }
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// rustls server config (ring provider, TLS 1.2 and 1.3) from PEM files.
pub fn tls_config(tls: &TlsSettings) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("cannot read TLS certificate {}", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad PEM in {}", tls.cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate in {}", tls.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("cannot read TLS key {}", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not fit together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<std::net::TcpListener> {
    conn::listen_tcp(addr).with_context(|| {
        format!("cannot listen for the {what} on {addr} (is the port taken, or privileged?)")
    })
}

/// The redirect listener's app: every request → 308 to the same path on https.
fn redirect_app(https_port: u16) -> Router {
    Router::new().fallback(move |req: Request| async move {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| {
                // Strip a port, keeping IPv6 brackets intact.
                match h.rfind(':') {
                    Some(i) if !h[i..].contains(']') => h[..i].to_string(),
                    _ => h.to_string(),
                }
            });
        let Some(host) = host.filter(|h| !h.is_empty()) else {
            return (StatusCode::BAD_REQUEST, "a Host header is needed").into_response();
        };
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let port = if https_port == 443 {
            String::new()
        } else {
            format!(":{https_port}")
        };
        match format!("https://{host}{port}{pq}").parse::<Uri>() {
            Ok(uri) => Redirect::permanent(&uri.to_string()).into_response(),
            Err(_) => (StatusCode::BAD_REQUEST, "bad Host header").into_response(),
        }
    })
}

/// Binds the API's listeners now (so a taken port fails start-up) and returns the task that
/// serves them until `shutdown`. This is what `leased serve` hands io as its sidecar.
pub fn start(
    settings: &ApiSettings,
    shared: Arc<SharedState>,
    shutdown: Shutdown,
) -> anyhow::Result<Sidecar> {
    start_with(settings, shared, shutdown, None)
}

/// [`start`] plus `extra` routes served beside the API's, outside its X-Api-Key check (they
/// bring their own auth): the router-script endpoint `/api/dhcp_assignments` of the billing
/// export, which routers call with HTTP Basic.
pub fn start_with(
    settings: &ApiSettings,
    shared: Arc<SharedState>,
    shutdown: Shutdown,
    extra: Option<Router>,
) -> anyhow::Result<Sidecar> {
    let keys = accepted_keys(&settings.keys)?;
    if keys.is_empty() {
        return Err(anyhow!(
            "[api] is enabled but has no keys: set api.keys in the config or {} in the \
             environment (comma separated)",
            auth::KEYS_ENV
        ));
    }
    let auth = Auth::new(&keys, settings.public_health, settings.public_metrics);
    let dashboard = settings
        .ui
        .then(|| ui::Ui::new(auth.clone(), settings.tls.is_some()));
    let sampler = dashboard
        .as_ref()
        .map(|d| Arc::clone(&d.live).run(Arc::clone(&shared), shutdown.clone()));
    let routes = match &dashboard {
        Some(d) => app_with_ui(shared, auth, Arc::clone(d)),
        None => app(shared, auth),
    };
    let app = match extra {
        Some(extra) => extra.merge(routes),
        None => routes,
    };
    let limits = ConnLimits::of(settings);
    let handle = axum_server::Handle::new();
    let listener = bind(settings.listen, "HTTP API")?;
    let listen = listener.local_addr().unwrap_or(settings.listen);
    let tls = match &settings.tls {
        Some(tls) => Some(Arc::new(tls_config(tls)?)),
        None => None,
    };
    let main = serve_http(listener, app, &limits, tls, &handle, "HTTP API")?;
    let redirect: Option<Sidecar> = match (settings.http_redirect, &settings.tls) {
        (Some(addr), Some(_)) => {
            let listener = bind(addr, "HTTP → HTTPS redirect")?;
            let app = redirect_app(listen.port());
            tracing::info!(listen = %addr, "redirecting HTTP to HTTPS");
            Some(serve_http(
                listener,
                app,
                &limits,
                None,
                &handle,
                "HTTP redirect",
            )?)
        }
        _ => None,
    };
    tracing::info!(
        listen = %listen,
        tls = settings.tls.is_some(),
        keys = keys.len(),
        header_timeout_s = limits.header_timeout.as_secs(),
        request_timeout_s = limits.request_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        max_connections = limits.max_connections,
        dashboard = settings.ui,
        "HTTP API listening on {}://{listen}{}",
        if settings.tls.is_some() { "https" } else { "http" },
        if settings.ui { " (dashboard at /ui/)" } else { "" }
    );
    Ok(Box::pin(async move {
        if let Some(sampler) = sampler {
            tokio::spawn(sampler);
        }
        let stopper = {
            let handle = handle.clone();
            async move {
                shutdown.wait().await;
                handle.graceful_shutdown(Some(GRACE));
            }
        };
        tokio::spawn(stopper);
        match redirect {
            Some(r) => {
                let (a, b) = tokio::join!(main, r);
                a.and(b)
            }
            None => main.await,
        }
    }))
}

/// Serves `app` on `listener` (HTTPS with `tls`) behind `limits` until `handle` shuts it
/// down: HTTP/1.1 only (no un-timed protocol detection), a [`Gate`] slot per connection,
/// hyper's header clock (the TLS handshake gets as long), tower-http's request clock (408),
/// and the idle clock of [`conn::Guarded`].
pub(crate) fn serve_http(
    listener: std::net::TcpListener,
    app: Router,
    limits: &ConnLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    handle: &axum_server::Handle<SocketAddr>,
    what: &'static str,
) -> anyhow::Result<Sidecar> {
    let app = app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let gate = Gate::new(limits.max_connections, what);
    let server = axum_server::from_tcp(listener)
        .with_context(|| format!("{what} listener"))?
        .http1_only()
        .handle(handle.clone());
    let idle = limits.idle_timeout;
    let header = limits.header_timeout;
    Ok(match tls {
        Some(config) => {
            let tls = axum_server::tls_rustls::RustlsAcceptor::new(
                axum_server::tls_rustls::RustlsConfig::from_config(config),
            )
            .handshake_timeout(header);
            let mut server = server.acceptor(LimitAcceptor::new(gate, idle, tls));
            server.http_builder().http1().header_read_timeout(header);
            Box::pin(async move {
                server
                    .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                    .await
                    .with_context(|| what.to_string())
            })
        }
        None => {
            let mut server = server.acceptor(LimitAcceptor::new(
                gate,
                idle,
                axum_server::accept::DefaultAcceptor,
            ));
            server.http_builder().http1().header_read_timeout(header);
            Box::pin(async move {
                server
                    .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                    .await
                    .with_context(|| what.to_string())
            })
        }
    })
}
