//! `/api/dhcp_assignments`: the endpoint router scripts call, compatible with the original
//! Sonar DHCP batcher (Laravel): GET or POST, fields `leased_mac_address`, `ip_address`,
//! `remote_id`, `expired`; HTTP Basic per router; 200 `{"success":true}`, 422 with Laravel's
//! field messages, 401 `{"message":"Unauthenticated."}`.
//!
//! Unlike dhcp-batcher, a failed check returns at once and queues nothing, and a 200
//! is sent only once the entry is durable in the outbox.
//!
//! Anyone who reaches the API can ask for a credential check, so checks are bounded (see
//! [`crate::auth`]): 503 with `Retry-After` when too many run at once, 429 `{"message":"Too
//! Many Attempts."}` with `Retry-After` for a source that keeps failing, and an unknown user
//! name costs what a wrong secret costs. The source is the TCP peer (the HTTP API serves with
//! connect info; without it every request counts as one source).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use base64::Engine as _;
use leased_config::RouterCredential;
use leased_core::{BindingEvent, BindingKind, HwAddr, Timestamp};
use serde_json::{Value, json};

use crate::ExportHandle;
use crate::auth::{AuthGate, BackoffPolicy, Verdict};
use crate::format::normalize_mac;

/// The endpoint's path.
pub const PATH: &str = "/api/dhcp_assignments";

pub use crate::auth::hash_password;

#[derive(Debug)]
struct Shared {
    handle: ExportHandle,
    gate: AuthGate,
}

/// The endpoint as an axum router, to be merged into the HTTP API's (served with
/// `into_make_service_with_connect_info::<SocketAddr>` so that failures are counted per
/// source). `max_concurrent_auth`: Argon2 checks at once (`None`: half the cores, 1 to 4).
/// Fails on a `password_hash` that is not a usable Argon2 string.
pub fn endpoint(
    handle: ExportHandle,
    routers: Vec<RouterCredential>,
    max_concurrent_auth: Option<usize>,
) -> anyhow::Result<Router> {
    let n = max_concurrent_auth.unwrap_or_else(crate::auth::default_concurrency);
    let gate = AuthGate::new(&routers, n, BackoffPolicy::default())?;
    tracing::info!(
        routers = routers.len(),
        max_concurrent_auth = gate.max_concurrent(),
        peak_mib = gate.peak_kib() / 1024,
        "router endpoint: {PATH} ready"
    );
    Ok(Router::new()
        .route(PATH, any(assignments))
        .with_state(Arc::new(Shared { handle, gate })))
}

fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"leased\"")],
        axum::Json(json!({"message": "Unauthenticated."})),
    )
        .into_response()
}

/// User name and secret of an HTTP Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let b64 = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// Checks HTTP Basic against the configured routers; `Err` is the response to send.
async fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    source: IpAddr,
) -> Result<(), Response> {
    let Some((user, pass)) = basic_credentials(headers) else {
        return Err(unauthenticated());
    };
    match shared.gate.check(source, &user, &pass).await {
        Verdict::Ok => Ok(()),
        Verdict::Denied => {
            tracing::info!(username = ?user, source = %source, "router endpoint: invalid credentials rejected");
            Err(unauthenticated())
        }
        Verdict::Busy(secs) => {
            tracing::debug!(source = %source, "router endpoint: too many checks at once");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, secs.to_string())],
                axum::Json(json!({"message": "Too many credential checks at once; retry later."})),
            )
                .into_response())
        }
        Verdict::Refused(secs) => {
            tracing::debug!(source = %source, "router endpoint: source refused after failures");
            Err((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                axum::Json(json!({"message": "Too Many Attempts."})),
            )
                .into_response())
        }
    }
}

/// Input values after Laravel's TrimStrings and ConvertEmptyStringsToNull.
fn inputs(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, Value>, ()> {
    let mut out = BTreeMap::new();
    let put_form = |text: &str, out: &mut BTreeMap<String, Value>| {
        for (k, v) in form_pairs(text) {
            out.entry(k).or_insert(Value::String(v));
        }
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    // The body first (it wins over the query string, as Laravel's input() merges).
    if !body.is_empty() {
        if is_json || body.first() == Some(&b'{') {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => out.extend(m),
                _ => return Err(()),
            }
        } else if let Ok(t) = std::str::from_utf8(body) {
            put_form(t, &mut out);
        }
    }
    if let Some(q) = query {
        put_form(q, &mut out);
    }
    for v in out.values_mut() {
        if let Value::String(s) = v {
            let t = s.trim();
            *v = if t.is_empty() {
                Value::Null
            } else {
                Value::String(t.to_string())
            };
        }
    }
    Ok(out)
}

/// `application/x-www-form-urlencoded` pairs; the first value of a repeated key wins.
fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A valid entry, or Laravel's field errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `AA:BB:…`.
    pub mac: String,
    /// The address.
    pub ip: std::net::Ipv4Addr,
    /// `AA:BB:…` or none.
    pub remote_id: Option<String>,
    /// The binding ended.
    pub expired: bool,
}

/// Laravel's `DhcpReceiptRequest` rules, with its messages.
pub fn validate(
    input: &BTreeMap<String, Value>,
) -> Result<Entry, BTreeMap<&'static str, Vec<String>>> {
    let mut errors: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut err = |k: &'static str, m: &str| errors.entry(k).or_default().push(m.to_string());
    let get = |k: &str| input.get(k).filter(|v| !v.is_null());

    let mac = match get("leased_mac_address") {
        None => {
            err(
                "leased_mac_address",
                "The leased mac address field is required.",
            );
            None
        }
        Some(Value::String(s)) => match normalize_mac(s) {
            Some(m) => Some(m),
            None => {
                err(
                    "leased_mac_address",
                    "The leased mac address must be a valid MAC address.",
                );
                None
            }
        },
        Some(_) => {
            err(
                "leased_mac_address",
                "The leased mac address must be a string.",
            );
            err(
                "leased_mac_address",
                "The leased mac address must be a valid MAC address.",
            );
            None
        }
    };
    let ip = match get("ip_address") {
        None => {
            err("ip_address", "The ip address field is required.");
            None
        }
        Some(Value::String(s)) => match s.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => Some(a),
            // Laravel accepts IPv6 here; leased's bindings are IPv4 (a documented delta).
            Ok(std::net::IpAddr::V6(_)) => {
                err("ip_address", "The ip address must be a valid IPv4 address.");
                None
            }
            Err(_) => {
                err("ip_address", "The ip address must be a valid IP address.");
                None
            }
        },
        Some(_) => {
            err("ip_address", "The ip address must be a valid IP address.");
            None
        }
    };
    let remote_id = match get("remote_id") {
        None => None,
        Some(Value::String(s)) => match normalize_mac(s) {
            Some(m) => Some(m),
            None => {
                err("remote_id", "The remote id must be a valid MAC address.");
                None
            }
        },
        Some(_) => {
            err("remote_id", "The remote id must be a string.");
            err("remote_id", "The remote id must be a valid MAC address.");
            None
        }
    };
    let expired = match get("expired") {
        None => {
            err("expired", "The expired field is required.");
            None
        }
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Some(true),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Some(false),
        Some(Value::String(s)) if s == "1" || s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s == "0" || s.eq_ignore_ascii_case("false") => Some(false),
        Some(_) => {
            err("expired", "The expired field must be true or false.");
            None
        }
    };
    match (mac, ip, expired) {
        (Some(mac), Some(ip), Some(expired)) if errors.is_empty() => Ok(Entry {
            mac,
            ip,
            remote_id,
            expired,
        }),
        _ => Err(errors),
    }
}

fn mac_bytes(m: &str) -> Vec<u8> {
    HwAddr::parse_mac(m).map(|h| h.0).unwrap_or_default()
}

async fn assignments(
    State(shared): State<Arc<Shared>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    method: axum::http::Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != axum::http::Method::GET && method != axum::http::Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(json!({"message": "The method is not supported for this route."})),
        )
            .into_response();
    }
    let source = peer.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(a))| a.ip(),
    );
    if let Err(refusal) = authenticate(&shared, &headers, source).await {
        return refusal;
    }
    let Ok(input) = inputs(query.as_deref(), &headers, &body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "The request body is not a JSON object."})),
        )
            .into_response();
    };
    let entry = match validate(&input) {
        Ok(e) => e,
        Err(errors) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({"message": "The given data was invalid.", "errors": errors})),
            )
                .into_response();
        }
    };
    let now = Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    let ev = BindingEvent {
        kind: if entry.expired {
            BindingKind::Expired
        } else {
            BindingKind::Bound
        },
        mac: HwAddr(mac_bytes(&entry.mac)),
        ip: entry.ip,
        at: now,
        lease_time: None,
        expires: None,
        remote_id: entry.remote_id.as_deref().map(mac_bytes),
        circuit_id: None,
        hostname: None,
        giaddr: None,
    };
    match shared.handle.submit(ev).await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"success": true}))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "router endpoint: entry not queued");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"message": "The entry could not be stored; retry later."})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn input(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn form_and_percent_decoding() {
        let p = form_pairs(
            "ip_address=198.18.0.1&leased_mac_address=aa%3Abb%3Acc%3A00%3A00%3A01&expired=1&x",
        );
        assert_eq!(p[1].1, "aa:bb:cc:00:00:01");
        assert_eq!(p[3], ("x".into(), String::new()));
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }

    #[test]
    fn laravel_rules() {
        let ok = validate(&input(&[
            ("leased_mac_address", json!("a:0:3e:b1:45:2b")),
            ("ip_address", json!("198.18.0.9")),
            ("expired", json!(false)),
            ("remote_id", Value::Null),
        ]))
        .unwrap();
        assert_eq!(ok.mac, "0A:00:3E:B1:45:2B");
        assert!(!ok.expired && ok.remote_id.is_none());
        for (v, want) in [
            (json!(true), true),
            (json!(1), true),
            (json!("0"), false),
            (json!(0), false),
            (json!("1"), true),
        ] {
            let e = validate(&input(&[
                ("leased_mac_address", json!("00:11:22:33:44:55")),
                ("ip_address", json!("198.18.0.9")),
                ("expired", v),
            ]))
            .unwrap();
            assert_eq!(e.expired, want);
        }
        let errs = validate(&input(&[])).unwrap_err();
        assert_eq!(
            errs["leased_mac_address"],
            vec!["The leased mac address field is required."]
        );
        assert_eq!(
            errs["ip_address"],
            vec!["The ip address field is required."]
        );
        assert_eq!(errs["expired"], vec!["The expired field is required."]);
        let errs = validate(&input(&[
            ("leased_mac_address", json!("nope")),
            ("ip_address", json!("300.1.1.1")),
            ("expired", json!("yes")),
            ("remote_id", json!("bogus")),
        ]))
        .unwrap_err();
        assert_eq!(
            errs["leased_mac_address"],
            vec!["The leased mac address must be a valid MAC address."]
        );
        assert_eq!(
            errs["remote_id"],
            vec!["The remote id must be a valid MAC address."]
        );
        assert_eq!(
            errs["ip_address"],
            vec!["The ip address must be a valid IP address."]
        );
        assert_eq!(
            errs["expired"],
            vec!["The expired field must be true or false."]
        );
    }

    #[test]
    fn hash_and_verify() {
        use argon2::{Argon2, PasswordHash, PasswordVerifier};
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
    }
}
