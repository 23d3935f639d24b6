//! `[api]`: the HTTP API's settings, shape and checks in one room so that the rest of the
//! loader only gains a field and a call.
//!
//! This room only validates; reading `LEASED_API_KEYS` from the environment and binding sockets
//! is the API crate's business.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::ctx::Ctx;
use crate::file::RawDuration;
use crate::options::parse_duration;

/// Shortest accepted API key, in characters: a key is the only thing between the network and
/// every lease, MAC and reservation, so one short enough to guess is refused.
pub const MIN_KEY_LEN: usize = 16;
/// How long a client has to send a request's headers (slowloris), unless configured.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take from its headers to its answer, unless configured.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may wait with no byte moving, unless configured.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once per listener, unless configured.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Longest accepted timeout: a day (anything longer is no timeout).
pub const MAX_TIMEOUT_SECS: u32 = 86_400;
/// Largest accepted connection limit (each connection is a file descriptor).
pub const MAX_CONNECTIONS_LIMIT: usize = 1_048_576;

/// Why `key` cannot be an API key, or `None` when it can. The one rule for keys from the
/// config file, `LEASED_API_KEYS` and `leased isc serve --key`.
pub fn api_key_problem(key: &str) -> Option<String> {
    if key.trim().is_empty() {
        Some("an API key must not be empty".into())
    } else if key.contains(',') || key.trim() != key {
        Some("an API key must not contain commas or surrounding spaces".into())
    } else if key.chars().count() < MIN_KEY_LEN {
        Some(format!(
            "an API key must be at least {MIN_KEY_LEN} characters long (this one has {}); \
             generate one with e.g. `openssl rand -hex 16`",
            key.chars().count()
        ))
    } else {
        None
    }
}

/// `[api]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub listen: Option<String>,
    pub keys: Option<Vec<String>>,
    pub public_health: Option<bool>,
    pub public_metrics: Option<bool>,
    pub tls: Option<RawTls>,
    pub http_redirect: Option<String>,
    pub header_timeout: Option<RawDuration>,
    pub request_timeout: Option<RawDuration>,
    pub idle_timeout: Option<RawDuration>,
    pub max_connections: Option<i64>,
    pub ui: Option<bool>,
}

/// `[api.tls]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// The HTTP API, served inside `leased serve` when the `[api]` section is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// Address and port to listen on, e.g. `127.0.0.1:8067`. Required.
    pub listen: SocketAddr,
    /// Accepted `X-Api-Key` values (more may come from `LEASED_API_KEYS`).
    pub keys: Vec<String>,
    /// `/health` answers without a key. Default false.
    pub public_health: bool,
    /// `/metrics` answers without a key (for Prometheus scrapers). Default false.
    pub public_metrics: bool,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsSettings>,
    /// Also listen here with plain HTTP and redirect every request to the HTTPS address
    /// (only with `tls`).
    pub http_redirect: Option<SocketAddr>,
    /// A client must send a request's complete headers within this, counted from the
    /// connection (or the end of the previous answer on a kept-alive one); the TLS handshake
    /// gets as long. Default 10 s.
    pub header_timeout: Duration,
    /// A request must be answered within this once its headers are in (body upload
    /// included); later it is answered 408. Default 30 s.
    pub request_timeout: Duration,
    /// A connection on which a read or write waits this long with no byte moving is closed
    /// (a client that stops reading its answer, a stalled upload). Default 60 s.
    pub idle_timeout: Duration,
    /// Connections served at once, per listener; one more is closed at once. Default 256.
    pub max_connections: usize,
    /// Serve the operator's dashboard at `/ui` (login with an API key). Default true.
    pub ui: bool,
}

/// PEM files for the API's HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn socket_addr(ctx: &mut Ctx<'_>, path: &str, text: &str) -> Option<SocketAddr> {
    match text.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.err(
                path,
                format!("{text:?} is not an address with a port, e.g. \"127.0.0.1:8067\""),
            );
            None
        }
    }
}

fn file_path(ctx: &mut Ctx<'_>, path: &str, v: Option<&String>) -> Option<PathBuf> {
    match v.map(String::as_str) {
        None => {
            ctx.err(path, "is required in [api.tls]");
            None
        }
        Some(p) if p.trim().is_empty() => {
            ctx.err(path, "must not be empty");
            None
        }
        Some(p) => Some(PathBuf::from(p)),
    }
}

/// A timeout key: whole seconds or a duration string, 1 s to a day; `default` when absent.
pub(crate) fn timeout(
    ctx: &mut Ctx<'_>,
    path: &str,
    raw: Option<&RawDuration>,
    default: Duration,
) -> Duration {
    match raw.map(parse_duration) {
        None => default,
        Some(Ok(n)) if (1..=MAX_TIMEOUT_SECS).contains(&n) => Duration::from_secs(n.into()),
        Some(Ok(_)) => {
            ctx.err(
                path,
                format!("must be between 1 second and {MAX_TIMEOUT_SECS} seconds (a day)"),
            );
            default
        }
        Some(Err(e)) => {
            ctx.err(path, e);
            default
        }
    }
}

/// A connection limit: 1 to [`MAX_CONNECTIONS_LIMIT`]; `default` when absent.
pub(crate) fn connections(
    ctx: &mut Ctx<'_>,
    path: &str,
    raw: Option<i64>,
    default: usize,
) -> usize {
    match raw {
        None => default,
        Some(n) => match usize::try_from(n) {
            Ok(n) if (1..=MAX_CONNECTIONS_LIMIT).contains(&n) => n,
            _ => {
                ctx.err(
                    path,
                    format!("must be between 1 and {MAX_CONNECTIONS_LIMIT}"),
                );
                default
            }
        },
    }
}

/// Checks `[api]`; `None` when the section is absent (no API) or invalid (errors recorded).
pub(crate) fn api(ctx: &mut Ctx<'_>, raw: Option<&RawApi>) -> Option<ApiSettings> {
    let raw = raw?;
    let listen = match raw.listen.as_deref() {
        Some(l) => socket_addr(ctx, "api.listen", l),
        None => {
            ctx.err(
                "api",
                "listen is required when [api] is present, e.g. listen = \"127.0.0.1:8067\"",
            );
            None
        }
    };
    let mut keys = Vec::new();
    for (i, k) in raw.keys.iter().flatten().enumerate() {
        match api_key_problem(k) {
            Some(problem) => ctx.err(&format!("api.keys[{i}]"), problem),
            None => keys.push(k.clone()),
        }
    }
    let tls = raw.tls.as_ref().and_then(|t| {
        let cert = file_path(ctx, "api.tls.cert", t.cert.as_ref());
        let key = file_path(ctx, "api.tls.key", t.key.as_ref());
        Some(TlsSettings {
            cert: cert?,
            key: key?,
        })
    });
    let http_redirect = match raw.http_redirect.as_deref() {
        Some(r) => {
            let addr = socket_addr(ctx, "api.http_redirect", r);
            if raw.tls.is_none() {
                ctx.err(
                    "api.http_redirect",
                    "redirects to HTTPS, so it needs [api.tls]",
                );
            }
            if addr.is_some() && addr == listen {
                ctx.err("api.http_redirect", "must differ from api.listen");
            }
            addr
        }
        None => None,
    };
    let header_timeout = timeout(
        ctx,
        "api.header_timeout",
        raw.header_timeout.as_ref(),
        DEFAULT_HEADER_TIMEOUT,
    );
    let request_timeout = timeout(
        ctx,
        "api.request_timeout",
        raw.request_timeout.as_ref(),
        DEFAULT_REQUEST_TIMEOUT,
    );
    let idle_timeout = timeout(
        ctx,
        "api.idle_timeout",
        raw.idle_timeout.as_ref(),
        DEFAULT_IDLE_TIMEOUT,
    );
    let max_connections = connections(
        ctx,
        "api.max_connections",
        raw.max_connections,
        DEFAULT_MAX_CONNECTIONS,
    );
    Some(ApiSettings {
        listen: listen?,
        keys,
        public_health: raw.public_health.unwrap_or(false),
        public_metrics: raw.public_metrics.unwrap_or(false),
        tls,
        http_redirect,
        header_timeout,
        request_timeout,
        idle_timeout,
        max_connections,
        ui: raw.ui.unwrap_or(true),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use crate::{Format, load_str};

    fn api_of(text: &str) -> Result<Option<super::ApiSettings>, Vec<String>> {
        // A minimal subnet after the text under test, so that its line numbers stay put.
        let text = format!(
            "{text}\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.20\"]\n"
        );
        load_str(&text, "t.toml", Format::Toml)
            .map(|c| c.api)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn absent_means_no_api() {
        assert_eq!(api_of("").unwrap(), None);
    }

    #[test]
    fn defaults() {
        let a = api_of("[api]\nlisten = \"127.0.0.1:8067\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(a.header_timeout, super::DEFAULT_HEADER_TIMEOUT);
        assert_eq!(a.request_timeout, super::DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(a.idle_timeout, super::DEFAULT_IDLE_TIMEOUT);
        assert_eq!(a.max_connections, super::DEFAULT_MAX_CONNECTIONS);
        assert!(a.ui, "the dashboard is on by default");
        let off = api_of("[api]\nlisten = \"127.0.0.1:8067\"\nui = false\n")
            .unwrap()
            .unwrap();
        assert!(!off.ui);
    }

    #[test]
    fn keys_need_sixteen_characters() {
        // 15 characters: refused, with the key's own position.
        let e = api_of("[api]\nlisten = \"127.0.0.1:8067\"\nkeys = [\"0123456789abcde\"]\n")
            .unwrap_err()
            .join("\n");
        assert!(e.contains("t.toml:3:9: api.keys[0]"), "{e}");
        assert!(e.contains("at least 16 characters"), "{e}");
        let a = api_of("[api]\nlisten = \"127.0.0.1:8067\"\nkeys = [\"0123456789abcdef\"]\n")
            .unwrap()
            .unwrap();
        assert_eq!(a.keys, ["0123456789abcdef"]);
        // Characters, not bytes: 16 two-byte letters pass, 15 do not.
        assert_eq!(super::api_key_problem(&"é".repeat(16)), None);
        assert!(super::api_key_problem(&"é".repeat(15)).is_some());
    }

    #[test]
    fn limits_are_checked() {
        let e = api_of(
            "[api]\nlisten = \"127.0.0.1:8067\"\nheader_timeout = 0\nrequest_timeout = \"2d\"\n\
             idle_timeout = \"soon\"\nmax_connections = 0\n",
        )
        .unwrap_err()
        .join("\n");
        assert!(e.contains("t.toml:3:18: api.header_timeout"), "{e}");
        assert!(e.contains("t.toml:4:19: api.request_timeout"), "{e}");
        assert!(e.contains("api.idle_timeout"), "{e}");
        assert!(e.contains("t.toml:6:19: api.max_connections"), "{e}");
    }

    #[test]
    fn full_section() {
        let a = api_of(
            "[api]\nlisten = \"127.0.0.1:8067\"\nkeys = [\"k1-0123456789abcd\", \"k2-0123456789abcd\"]\n\
             public_health = true\npublic_metrics = true\nhttp_redirect = \"127.0.0.1:8080\"\n\
             header_timeout = \"5s\"\nrequest_timeout = 20\nidle_timeout = \"2m\"\n\
             max_connections = 100\n\
             [api.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.listen.to_string(), "127.0.0.1:8067");
        assert_eq!(a.keys, vec!["k1-0123456789abcd", "k2-0123456789abcd"]);
        assert_eq!(
            (a.header_timeout, a.request_timeout, a.idle_timeout),
            (
                Duration::from_secs(5),
                Duration::from_secs(20),
                Duration::from_secs(120)
            )
        );
        assert_eq!(a.max_connections, 100);
        assert!(a.public_health && a.public_metrics);
        assert_eq!(a.tls.unwrap().key.to_str(), Some("k.pem"));
        assert_eq!(a.http_redirect.unwrap().port(), 8080);
    }

    #[test]
    fn errors_with_positions() {
        let e = api_of(
            "[api]\nlisten = \"nowhere\"\nkeys = [\"\", \"a,b\"]\nhttp_redirect = \"127.0.0.1:80\"\n",
        )
        .unwrap_err();
        let all = e.join("\n");
        assert!(all.contains("t.toml:2:10: api.listen"), "{all}");
        assert!(all.contains("api.keys[0]"), "{all}");
        assert!(all.contains("api.keys[1]"), "{all}");
        assert!(all.contains("needs [api.tls]"), "{all}");
        let e = api_of("[api]\nlisten = \"127.0.0.1:1\"\n[api.tls]\ncert = \"c\"\n").unwrap_err();
        assert!(e.join("\n").contains("api.tls.key"), "{e:?}");
        let e = api_of("[api]\nkeys = []\n").unwrap_err();
        assert!(e.join("\n").contains("listen is required"), "{e:?}");
        let e = api_of("[api]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n").unwrap_err();
        assert!(e.join("\n").contains("bogus"), "{e:?}");
    }
}
