//! `[export]`: billing export of bindings (Sonar V1, a generic webhook) and the router-script
//! credentials of `/api/dhcp_assignments`; shape and checks in one room.
//!
//! This room only validates: reading `password_env` and verifying password hashes happen in the
//! export and API crates.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::ctx::Ctx;
use crate::file::RawDuration;
use crate::options::parse_duration;
use crate::span::{join_index, join_key};

/// `[export]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExport {
    pub outbox: Option<String>,
    pub max_concurrent_auth: Option<i64>,
    pub sonar: Option<RawSonar>,
    pub webhook: Option<RawWebhook>,
    pub routers: Option<Vec<RawRouter>>,
}

/// `[export.sonar]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSonar {
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub interval: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub chunk_size: Option<i64>,
}

/// `[export.webhook]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub interval: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub chunk_size: Option<i64>,
}

/// `[[export.routers]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouter {
    pub username: Option<String>,
    pub password_hash: Option<String>,
}

/// Where binding events go. Present when the file has an `[export]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSettings {
    /// Directory of the durable outboxes (one per destination). Default `leased.outbox`.
    pub outbox: PathBuf,
    /// Upload to Sonar V1.
    pub sonar: Option<SonarSettings>,
    /// POST to a generic HTTP endpoint.
    pub webhook: Option<WebhookSettings>,
    /// Routers allowed to post to `/api/dhcp_assignments`, each with its own secret.
    pub routers: Vec<RouterCredential>,
    /// Most Argon2 checks of router credentials at once; each takes the memory its hash names
    /// (19 MiB for `leased export hash-password`'s), so this bounds their memory and CPU.
    /// `None`: derived from the machine's cores by the export crate.
    pub max_concurrent_auth: Option<usize>,
}

/// The Sonar password: in the file or named environment variable (read at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// Written in the config file.
    Plain(String),
    /// Read from this environment variable when the exporter starts.
    Env(String),
}

/// Sonar V1 (`POST {url}/api/v1/network/ipam/batch_dynamic_ip_assignment`, HTTP Basic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SonarSettings {
    /// Instance base URL with scheme, e.g. `https://example.sonar.software` (no trailing `/`).
    pub url: String,
    /// API user (needs Account read/create/update in Sonar).
    pub username: String,
    /// API password.
    pub password: Secret,
    /// Upload cycle in seconds (default 60, as the original batcher's cron).
    pub interval: u32,
    /// Per-request timeout in seconds (default 30).
    pub timeout: u32,
    /// Most assignments per POST (default 5000).
    pub chunk_size: usize,
}

/// A generic JSON webhook with the same outbox guarantees as Sonar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Endpoint URL (http or https).
    pub url: String,
    /// Extra request headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Upload cycle in seconds (default 60).
    pub interval: u32,
    /// Per-request timeout in seconds (default 30).
    pub timeout: u32,
    /// Most events per POST (default 5000).
    pub chunk_size: usize,
}

/// One router's credentials for the router-script endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterCredential {
    /// HTTP Basic user name.
    pub username: String,
    /// Argon2 PHC string (`$argon2id$v=19$…`), made with `leased export hash-password`.
    pub password_hash: String,
}

fn url(ctx: &mut Ctx<'_>, path: &str, v: Option<&String>) -> Option<String> {
    match v {
        None => {
            ctx.err(path, "is required, e.g. \"https://example.sonar.software\"");
            None
        }
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 9 => {
            ctx.err(path, format!("{u:?} is not an http:// or https:// URL"));
            None
        }
        Some(u) if u.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            ctx.err(path, "must not contain spaces");
            None
        }
        Some(u) => Some(u.trim_end_matches('/').to_string()),
    }
}

fn secs(ctx: &mut Ctx<'_>, path: &str, v: Option<&RawDuration>, default: u32) -> u32 {
    match v.map(parse_duration) {
        None => default,
        Some(Ok(0)) => {
            ctx.err(path, "must be at least one second");
            default
        }
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            ctx.err(path, e);
            default
        }
    }
}

fn chunk(ctx: &mut Ctx<'_>, path: &str, v: Option<i64>) -> usize {
    match v {
        None => 5000,
        Some(n @ 1..=100_000) => usize::try_from(n).unwrap_or(5000),
        Some(n) => {
            ctx.err(path, format!("{n} is out of range (1..=100000)"));
            5000
        }
    }
}

/// Checks `[export]`; `None` when absent or invalid (errors recorded).
pub(crate) fn export(ctx: &mut Ctx<'_>, raw: Option<&RawExport>) -> Option<ExportSettings> {
    let raw = raw?;
    let before = ctx.error_count();
    let outbox = match raw.outbox.as_deref() {
        Some("") => {
            ctx.err("export.outbox", "must not be empty");
            PathBuf::new()
        }
        Some(p) => PathBuf::from(p),
        None => PathBuf::from("leased.outbox"),
    };
    let max_concurrent_auth = match raw.max_concurrent_auth {
        None => None,
        Some(n @ 1..=64) => usize::try_from(n).ok(),
        Some(n) => {
            ctx.err(
                "export.max_concurrent_auth",
                format!("{n} is out of range (1..=64)"),
            );
            None
        }
    };
    let sonar = raw.sonar.as_ref().and_then(|s| {
        let url = url(ctx, "export.sonar.url", s.url.as_ref());
        let username = match s.username.as_deref() {
            None | Some("") => {
                ctx.err("export.sonar", "username is required in [export.sonar]");
                None
            }
            Some(u) => Some(u.to_string()),
        };
        let password = match (&s.password, &s.password_env) {
            (Some(p), None) => Some(Secret::Plain(p.clone())),
            (None, Some(e)) if !e.is_empty() => Some(Secret::Env(e.clone())),
            (None, Some(_)) => {
                ctx.err(
                    "export.sonar.password_env",
                    "must name an environment variable",
                );
                None
            }
            (Some(_), Some(_)) => {
                ctx.err(
                    "export.sonar.password_env",
                    "give either password or password_env, not both",
                );
                None
            }
            (None, None) => {
                ctx.err(
                    "export.sonar",
                    "password or password_env is required in [export.sonar]",
                );
                None
            }
        };
        Some(SonarSettings {
            interval: secs(ctx, "export.sonar.interval", s.interval.as_ref(), 60),
            timeout: secs(ctx, "export.sonar.timeout", s.timeout.as_ref(), 30),
            chunk_size: chunk(ctx, "export.sonar.chunk_size", s.chunk_size),
            url: url?,
            username: username?,
            password: password?,
        })
    });
    let webhook = raw.webhook.as_ref().and_then(|w| {
        let url = url(ctx, "export.webhook.url", w.url.as_ref());
        let mut headers = Vec::new();
        for (k, v) in w.headers.iter().flatten() {
            let path = join_key("export.webhook.headers", k);
            let name_ok = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
            if !name_ok {
                ctx.err_key(&path, format!("{k:?} is not a valid HTTP header name"));
            } else if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                ctx.err(&path, "a header value must not contain line breaks");
            } else {
                headers.push((k.clone(), v.clone()));
            }
        }
        Some(WebhookSettings {
            interval: secs(ctx, "export.webhook.interval", w.interval.as_ref(), 60),
            timeout: secs(ctx, "export.webhook.timeout", w.timeout.as_ref(), 30),
            chunk_size: chunk(ctx, "export.webhook.chunk_size", w.chunk_size),
            url: url?,
            headers,
        })
    });
    let mut routers: Vec<RouterCredential> = Vec::new();
    for (i, r) in raw.routers.iter().flatten().enumerate() {
        let p = join_index("export.routers", i);
        let username = match r.username.as_deref() {
            Some(u) if !u.is_empty() && !u.contains(':') => u.to_string(),
            Some(_) => {
                ctx.err(
                    &join_key(&p, "username"),
                    "must be non-empty and without ':'",
                );
                continue;
            }
            None => {
                ctx.err(&p, "username is required");
                continue;
            }
        };
        if routers.iter().any(|x| x.username == username) {
            ctx.err(
                &join_key(&p, "username"),
                format!("{username:?} is listed twice"),
            );
        }
        let Some(hash) = r.password_hash.as_deref() else {
            ctx.err(
                &p,
                "password_hash is required (make one with `leased export hash-password`)",
            );
            continue;
        };
        if !hash.starts_with("$argon2") {
            ctx.err(
                &join_key(&p, "password_hash"),
                "must be an Argon2 PHC string ($argon2id$…) from `leased export hash-password`",
            );
            continue;
        }
        routers.push(RouterCredential {
            username,
            password_hash: hash.to_string(),
        });
    }
    (ctx.error_count() == before).then_some(ExportSettings {
        outbox,
        sonar,
        webhook,
        routers,
        max_concurrent_auth,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Format, load_str};

    fn export_of(text: &str) -> Result<Option<ExportSettings>, Vec<String>> {
        let text = format!(
            "{text}\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.20\"]\n"
        );
        load_str(&text, "t.toml", Format::Toml)
            .map(|c| c.export)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn absent_and_defaults() {
        assert_eq!(export_of("").unwrap(), None);
        let e = export_of(
            "[export.sonar]\nurl = \"https://x.sonar.software/\"\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.outbox, PathBuf::from("leased.outbox"));
        assert_eq!(e.max_concurrent_auth, None);
        let s = e.sonar.unwrap();
        assert_eq!(s.url, "https://x.sonar.software");
        assert_eq!((s.interval, s.timeout, s.chunk_size), (60, 30, 5000));
        assert_eq!(s.password, Secret::Plain("p".into()));
    }

    #[test]
    fn full_section() {
        let e = export_of(
            "[export]\noutbox = \"/var/lib/leased/outbox\"\nmax_concurrent_auth = 3\n\
             [export.sonar]\nurl = \"http://127.0.0.1:9\"\nusername = \"u\"\npassword_env = \"SONAR_PW\"\n\
             interval = \"5s\"\ntimeout = 3\nchunk_size = 10\n\
             [export.webhook]\nurl = \"https://billing.example/hook\"\ninterval = 1\n\
             headers = { Authorization = \"Bearer t\" }\n\
             [[export.routers]]\nusername = \"r1\"\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\"\n",
        )
        .unwrap()
        .unwrap();
        let s = e.sonar.unwrap();
        assert_eq!(s.password, Secret::Env("SONAR_PW".into()));
        assert_eq!((s.interval, s.timeout, s.chunk_size), (5, 3, 10));
        let w = e.webhook.unwrap();
        assert_eq!(w.headers, vec![("Authorization".into(), "Bearer t".into())]);
        assert_eq!(w.interval, 1);
        assert_eq!(e.routers[0].username, "r1");
        assert_eq!(e.max_concurrent_auth, Some(3));
    }

    #[test]
    fn errors_with_positions() {
        let all = export_of(
            "[export.sonar]\nurl = \"ftp://x\"\npassword = \"a\"\npassword_env = \"B\"\ninterval = 0\n\
             chunk_size = 0\n[export.webhook]\nheaders = { \"bad name\" = \"x\" }\n\
             [[export.routers]]\nusername = \"r\"\npassword_hash = \"plain\"\n[[export.routers]]\n",
        )
        .unwrap_err()
        .join("\n");
        assert!(all.contains("t.toml:2:7: export.sonar.url"), "{all}");
        assert!(all.contains("username is required"), "{all}");
        assert!(all.contains("not both"), "{all}");
        assert!(all.contains("export.sonar.interval"), "{all}");
        assert!(all.contains("export.sonar.chunk_size"), "{all}");
        assert!(all.contains("export.webhook.url"), "{all}");
        assert!(all.contains("not a valid HTTP header name"), "{all}");
        assert!(all.contains("export.routers[0].password_hash"), "{all}");
        assert!(all.contains("export.routers[1]"), "{all}");
        let all = export_of("[export]\nmax_concurrent_auth = 0\n")
            .unwrap_err()
            .join("\n");
        assert!(
            all.contains("t.toml:2:23: export.max_concurrent_auth: 0 is out of range"),
            "{all}"
        );
    }
}
