//! The operator's dashboard at `/ui`: subnets and pools with their utilisation and address
//! grid, lease search and history, reservations, live DORA/s, drops and latency, rogue
//! servers, ARP findings and the billing export's outbox — served by `[api]` itself, with
//! every asset compiled into the binary (no CDN, no build step, works offline).
//!
//! Trust: the page is for holders of an API key. The key is typed into the login form once;
//! the browser then holds only a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under
//! TLS; see [`session`]). Every `/ui` route but the login page and the static assets needs a
//! live session ([`guard`]); every write (`POST`, `PUT`, `DELETE`) also needs the session's
//! CSRF token and a same-origin `Origin`. Wrong keys are counted per source and earn a growing
//! refusal ([`backoff`]). Every page carries a strict Content-Security-Policy (scripts and
//! styles only from `/ui/static`, nothing inline), `X-Frame-Options: DENY`, and `no-store`.
//!
//! Data: the dashboard's JSON routes (`/ui/api/…`) read the same snapshot as the API and call
//! the API's own handlers for leases and reservations, so a reservation made here is made by
//! exactly the code of `POST /reservations`.

pub mod assets;
pub mod backoff;
mod data;
pub mod grid;
pub mod guard;
pub mod live;
mod pages;
pub mod session;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post, put};
use tokio::sync::Semaphore;

use crate::AppState;
use crate::auth::Auth;

/// Largest request body a dashboard route reads (a login form, a reservation).
pub const MAX_BODY: usize = 64 * 1024;
/// Live-view event streams open at once (each holds a connection for as long as its page is
/// open); one more is answered 503.
pub const MAX_STREAMS: usize = 32;
/// History reads at once (each may scan the history file).
pub const MAX_HISTORY_READS: usize = 2;

/// The dashboard's own state: sessions, login back-off, the live ring.
#[derive(Debug)]
pub struct Ui {
    pub(crate) auth: Arc<Auth>,
    pub(crate) sessions: session::Sessions,
    pub(crate) backoff: Mutex<backoff::Backoff>,
    /// The last hour of counters, filled by [`live::Live::run`].
    pub live: Arc<live::Live>,
    /// Cookies get `Secure` (the API serves HTTPS).
    pub(crate) secure: bool,
    pub(crate) streams: Arc<Semaphore>,
    pub(crate) history_reads: Semaphore,
}

impl Ui {
    /// The dashboard for an API that accepts `auth`'s keys; `secure` when it serves HTTPS.
    pub fn new(auth: Auth, secure: bool) -> Arc<Self> {
        Arc::new(Self {
            auth: Arc::new(auth),
            sessions: session::Sessions::new(
                session::MAX_SESSIONS,
                session::IDLE,
                session::LIFETIME,
            ),
            backoff: Mutex::new(backoff::Backoff::default()),
            live: live::Live::new(),
            secure,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            history_reads: Semaphore::new(MAX_HISTORY_READS),
        })
    }

    /// Sessions held now.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

/// What every dashboard handler gets: the API's state and the dashboard's.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) app: AppState,
    pub(crate) ui: Arc<Ui>,
}

/// The `/ui` routes, outside the API's `X-Api-Key` check (they check sessions instead).
pub fn router(app: AppState, ui: Arc<Ui>) -> Router {
    let ctx = Ctx { app, ui };
    Router::new()
        .route("/ui", get(pages::index))
        .route("/ui/", get(pages::index))
        .route("/ui/login", get(pages::login_page).post(pages::login))
        .route("/ui/logout", post(pages::logout))
        .route("/ui/static/{name}", get(pages::asset))
        .route("/ui/api/session", get(data::session))
        .route("/ui/api/overview", get(data::overview))
        .route("/ui/api/grid", get(data::grid))
        .route("/ui/api/leases", get(data::leases))
        .route("/ui/api/history", get(data::history))
        .route(
            "/ui/api/reservations",
            get(data::reservations).post(data::reservation_create),
        )
        .route(
            "/ui/api/reservations/{ip}",
            put(data::reservation_replace).delete(data::reservation_delete),
        )
        .route("/ui/api/network", get(data::network))
        .route("/ui/api/live", get(data::live))
        .route("/ui/{*rest}", any(pages::not_found))
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            guard::gate,
        ))
        .layer(axum::middleware::from_fn(guard::headers))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}
