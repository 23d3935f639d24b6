//! `[api]`: the HTTP API's settings, shape and checks in one room so that the rest of the
//! loader only gains a field and a call.
//!
//! Core only validates; reading `LEASED_API_KEYS` from the environment and binding sockets is
//! the API crate's business (core reads no environment).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::validate::Ctx;

/// `[api]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub listen: Option<String>,
    pub keys: Option<Vec<String>>,
    pub public_health: Option<bool>,
    pub public_metrics: Option<bool>,
    pub tls: Option<RawTls>,
    pub http_redirect: Option<String>,
}

/// `[api.tls]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
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

/// Checks `[api]`; `None` when the section is absent (no API) or invalid (errors recorded).
pub(super) fn api(ctx: &mut Ctx<'_>, raw: Option<&RawApi>) -> Option<ApiSettings> {
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
        let path = format!("api.keys[{i}]");
        if k.trim().is_empty() {
            ctx.err(&path, "an API key must not be empty");
        } else if k.contains(',') || k.trim() != k {
            ctx.err(
                &path,
                "an API key must not contain commas or surrounding spaces",
            );
        } else {
            keys.push(k.clone());
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
    Some(ApiSettings {
        listen: listen?,
        keys,
        public_health: raw.public_health.unwrap_or(false),
        public_metrics: raw.public_metrics.unwrap_or(false),
        tls,
        http_redirect,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{Format, load_str};

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
    fn full_section() {
        let a = api_of(
            "[api]\nlisten = \"127.0.0.1:8067\"\nkeys = [\"k1\", \"k2\"]\npublic_health = true\n\
             public_metrics = true\nhttp_redirect = \"127.0.0.1:8080\"\n\
             [api.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.listen.to_string(), "127.0.0.1:8067");
        assert_eq!(a.keys, vec!["k1", "k2"]);
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
