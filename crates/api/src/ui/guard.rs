//! The dashboard's door: who may reach which `/ui` route, and the headers every answer
//! carries.
//!
//! - The login page (`/ui/login`) and the static assets (`/ui/static/…`, code and styles with
//!   no data in them) are open; everything else needs a live session cookie. Without one, a
//!   page answers `303` to the login page and a data route `401`.
//! - A write (any method but `GET`, `HEAD`, `OPTIONS`) — the login form included — must come
//!   from the dashboard's own origin: an `Origin` header naming the `Host` it was sent to
//!   (and `Sec-Fetch-Site: same-origin` when the browser sends that header). Past the login,
//!   it must also carry its session's CSRF token in `X-CSRF-Token`. Either missing: `403`.
//!   `SameSite=Strict` already keeps the cookie off cross-site requests; these checks hold
//!   even for a browser that ignores it.
//! - Every answer gets a strict Content-Security-Policy (no inline script or style, nothing
//!   from elsewhere, no framing), `X-Frame-Options: DENY`, `nosniff`, no referrer to other
//!   sites, and
//!   `Cache-Control: no-store` unless the route chose its own (the static assets
//!   revalidate).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Ctx;
use super::session::{self, Active, COOKIE, CSRF_HEADER};
use crate::error::ApiError;

/// The Content-Security-Policy of every dashboard answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The session a request came with (set by [`gate`] for every route that needs one).
#[derive(Debug, Clone)]
pub struct SessionCtx {
    /// The session token from the cookie.
    pub token: String,
    /// What it opens.
    pub active: Active,
}

/// The value of cookie `name` in `headers`, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// True when a write's `Origin` is the origin it was sent to (see the module docs).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && site != "same-origin"
    {
        return false;
    }
    let (Some(origin), Some(host)) = (text(header::ORIGIN.as_str()), text(header::HOST.as_str()))
    else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| !host.is_empty() && authority.eq_ignore_ascii_case(host))
}

fn is_write(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn forbidden(message: &str) -> Response {
    ApiError {
        status: StatusCode::FORBIDDEN,
        body: crate::error::ErrorBody {
            message: message.into(),
            errors: Vec::new(),
        },
    }
    .into_response()
}

/// The answer to a request without a live session.
fn no_session(api: bool) -> Response {
    if api {
        let mut r = ApiError {
            status: StatusCode::UNAUTHORIZED,
            body: crate::error::ErrorBody {
                message: "no dashboard session; log in at /ui/login".into(),
                errors: Vec::new(),
            },
        }
        .into_response();
        r.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static("leased_ui=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
        );
        r
    } else {
        (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/login")]).into_response()
    }
}

/// Middleware: the session and CSRF rules of the module docs.
pub(crate) async fn gate(State(ctx): State<Ctx>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let write = is_write(req.method());
    if write && !same_origin(req.headers()) {
        return forbidden("cross-origin write refused: Origin must be this dashboard's");
    }
    if path == "/ui/login" || path.starts_with("/ui/static/") {
        return next.run(req).await;
    }
    let api = write || path.starts_with("/ui/api/");
    let Some(token) = cookie(req.headers(), COOKIE) else {
        return no_session(api);
    };
    let Some(active) = ctx.ui.sessions.check(&token, Instant::now()) else {
        return no_session(api);
    };
    if write {
        let ok = req
            .headers()
            .get(CSRF_HEADER)
            .is_some_and(|v| session::csrf_matches(&active.csrf, v.as_bytes()));
        if !ok {
            return forbidden("missing or wrong X-CSRF-Token");
        }
    }
    req.extensions_mut().insert(SessionCtx { token, active });
    next.run(req).await
}

/// Middleware: the security headers of every dashboard answer.
pub async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        // Not `no-referrer`: under it a browser sends `Origin: null` on its own form posts
        // and fetches, and the same-origin check above could not tell them from an attack.
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn origins() {
        let host = ("host", "127.0.0.1:8067");
        assert!(same_origin(&hm(&[
            host,
            ("origin", "http://127.0.0.1:8067")
        ])));
        assert!(same_origin(&hm(&[
            host,
            ("origin", "https://127.0.0.1:8067")
        ])));
        assert!(same_origin(&hm(&[
            host,
            ("origin", "http://127.0.0.1:8067"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&hm(&[host])), "no Origin");
        assert!(!same_origin(&hm(&[host, ("origin", "null")])));
        assert!(!same_origin(&hm(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&hm(&[
            host,
            ("origin", "http://127.0.0.1:8068")
        ])));
        assert!(!same_origin(&hm(&[
            host,
            ("origin", "http://127.0.0.1:8067.evil")
        ])));
        assert!(!same_origin(&hm(&[
            host,
            ("origin", "http://127.0.0.1:8067"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(
            !same_origin(&hm(&[("origin", "http://127.0.0.1:8067")])),
            "no Host"
        );
    }

    #[test]
    fn cookies() {
        let h = hm(&[("cookie", "a=1; leased_ui=abc ; b=2"), ("cookie", "c=3")]);
        assert_eq!(cookie(&h, "leased_ui").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c").as_deref(), Some("3"));
        assert_eq!(cookie(&h, "leased"), None);
    }
}
