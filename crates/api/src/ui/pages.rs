//! The dashboard's pages: the app shell, the login form (which works without JavaScript),
//! logout and the embedded static files.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Extension;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::assets;
use super::backoff::Source;
use super::guard::SessionCtx;
use super::session::{COOKIE, LIFETIME};
use super::{Ctx, Ui};
use crate::error::ApiError;

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /ui`: the dashboard (the gate has checked the session).
pub(crate) async fn index() -> Response {
    html(StatusCode::OK, assets::INDEX.to_string())
}

/// The login page, with `message` (fixed text, never input) above the form.
fn login_html(status: StatusCode, message: Option<&str>) -> Response {
    let note = message.map_or_else(String::new, |m| {
        format!("<p class=\"error\" id=\"login-error\" role=\"alert\">{m}</p>")
    });
    html(status, assets::LOGIN.replace("<!--MESSAGE-->", &note))
}

/// `GET /ui/login`.
pub(crate) async fn login_page() -> Response {
    login_html(StatusCode::OK, None)
}

/// The login form's body.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    key: String,
}

fn lock(ui: &Ui) -> std::sync::MutexGuard<'_, super::backoff::Backoff> {
    ui.backoff.lock().unwrap_or_else(|p| p.into_inner())
}

fn session_cookie(ui: &Ui, token: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if ui.secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// `POST /ui/login`: checks the key like `X-Api-Key` (constant time over every key), and on
/// success opens a session and sends its cookie. A wrong key says only that it was wrong, and
/// counts toward the source's back-off.
pub(crate) async fn login(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let ui = &ctx.ui;
    let src = Source::from(peer.ip());
    let now = Instant::now();
    if let Some(wait) = lock(ui).blocked(src, now) {
        let mut r = login_html(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many wrong keys from this address; wait a moment and try again."),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let Ok(Form(form)) = form else {
        return login_html(
            StatusCode::BAD_REQUEST,
            Some("The form was not understood."),
        );
    };
    if !ui.auth.accepts(form.key.trim().as_bytes()) {
        let refused = lock(ui).failure(src, now);
        tracing::info!(source = %peer.ip(), "dashboard login refused: wrong key");
        let status = if refused.is_some() {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::UNAUTHORIZED
        };
        return login_html(status, Some("That key was not accepted."));
    }
    lock(ui).success(src);
    let token = match ui.sessions.create(now) {
        Ok((token, _)) => token,
        Err(e) => {
            tracing::error!(error = %e, "dashboard login failed");
            return login_html(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("The server could not open a session."),
            );
        }
    };
    tracing::info!(source = %peer.ip(), "dashboard login");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/")]).into_response();
    if let Some(c) = session_cookie(ui, &token, LIFETIME.as_secs()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// `POST /ui/logout`: ends the session (its cookie and its CSRF token stop working at once).
pub(crate) async fn logout(
    State(ctx): State<Ctx>,
    Extension(s): Extension<SessionCtx>,
) -> Response {
    ctx.ui.sessions.end(&s.token);
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Some(c) = session_cookie(&ctx.ui, "", 0) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// `GET /ui/static/{name}`: an embedded file, revalidated by its ETag.
pub(crate) async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = assets::find(&name) else {
        return ApiError::not_found("no such file").into_response();
    };
    let etag = a.etag();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let common = [
        (header::ETAG, etag.to_string()),
        (header::CACHE_CONTROL, "no-cache".to_string()),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        StatusCode::OK,
        common,
        [(header::CONTENT_TYPE, a.content_type)],
        a.body,
    )
        .into_response()
}

/// Any other `/ui` path.
pub(crate) async fn not_found() -> Response {
    ApiError::not_found("no such dashboard page; see /ui/").into_response()
}
