//! `[leasequery]`: who may query the lease table (RFC 4388 over UDP, bulk RFC 6926 and active
//! RFC 7724 over TCP), where the TCP listener is, its TLS and its limits.
//!
//! Why a section of its own: leasequery hands out every subscriber's address, MAC and circuit
//! to whoever asks, so it is off unless listed requestors are named, and its TCP listener
//! needs TLS unless plaintext is asked for in so many words.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;
use leased_engine::leasequery::Acl;
use serde::Deserialize;

use crate::api::{RawTls, TlsSettings, connections, timeout};
use crate::ctx::Ctx;
use crate::file::RawDuration;
use crate::span::join_index;

/// TCP connections at once, unless configured.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
/// TCP connections at once from one requestor address, unless configured.
pub const DEFAULT_MAX_PER_REQUESTOR: usize = 4;
/// Binding changes queued for one active query before its reader is cut off, unless
/// configured.
pub const DEFAULT_MAX_QUEUED: usize = 4096;
/// Largest `max_queued_changes`: each queued change is a whole DHCP message.
pub const MAX_QUEUED_LIMIT: usize = 1_000_000;
/// How long a write may stall (a reader that stopped reading), unless configured.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may take to send its first query (TLS included), unless configured.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// `[leasequery]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLeasequery {
    pub allow: Option<Vec<String>>,
    pub tcp_listen: Option<String>,
    pub tls: Option<RawTls>,
    pub allow_plaintext: Option<bool>,
    pub max_connections: Option<i64>,
    pub max_connections_per_requestor: Option<i64>,
    pub max_queued_changes: Option<i64>,
    pub write_timeout: Option<RawDuration>,
    pub query_timeout: Option<RawDuration>,
}

/// Leasequery, answered by `leased serve` when `[leasequery]` is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasequerySettings {
    /// Requestors allowed (their source address; over UDP their giaddr too). Required.
    pub acl: Acl,
    /// TCP listener for bulk and active leasequery; `None`: UDP queries only.
    pub tcp_listen: Option<SocketAddr>,
    /// The TCP listener's certificate and key (RFC 7724 §5.2 DHCPTLS, or TLS from the first
    /// byte).
    pub tls: Option<TlsSettings>,
    /// Answer TCP queries without TLS. Default false: without it every plaintext query is
    /// answered NotAllowed and the connection closed.
    pub allow_plaintext: bool,
    /// TCP connections at once. Default 16.
    pub max_connections: usize,
    /// TCP connections at once per requestor address. Default 4.
    pub max_per_requestor: usize,
    /// Changes queued for one active query; a reader that falls further behind is cut off
    /// (DataMissing). Default 4096.
    pub max_queued: usize,
    /// A write stalled this long closes the connection. Default 30 s.
    pub write_timeout: Duration,
    /// A connection must send its first query within this (TLS included). Default 10 s.
    pub query_timeout: Duration,
}

/// Checks `[leasequery]`; `None` when absent (no leasequery) or invalid.
pub(crate) fn leasequery(
    ctx: &mut Ctx<'_>,
    raw: Option<&RawLeasequery>,
) -> Option<LeasequerySettings> {
    let raw = raw?;
    let before = ctx.error_count();
    let mut allow = Vec::new();
    match &raw.allow {
        None => ctx.err(
            "leasequery.allow",
            "is required: the requestors' addresses or networks, e.g. [\"198.18.0.0/24\"]",
        ),
        Some(list) if list.is_empty() => ctx.err(
            "leasequery.allow",
            "must name at least one requestor (leave out [leasequery] to answer nobody)",
        ),
        Some(list) => {
            for (i, v) in list.iter().enumerate() {
                let parsed = v
                    .parse::<Ipv4Net>()
                    .or_else(|_| v.parse::<std::net::Ipv4Addr>().map(Ipv4Net::from));
                match parsed {
                    Ok(n) if n.prefix_len() == 0 => ctx.err(
                        &join_index("leasequery.allow", i),
                        "0.0.0.0/0 would let anyone read every lease",
                    ),
                    Ok(n) => allow.push(n.trunc()),
                    Err(_) => ctx.err(
                        &join_index("leasequery.allow", i),
                        format!("{v:?} is not an IPv4 address or CIDR (e.g. \"198.18.0.0/24\")"),
                    ),
                }
            }
        }
    }
    let tcp_listen = raw
        .tcp_listen
        .as_deref()
        .and_then(|t| match t.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                ctx.err(
                    "leasequery.tcp_listen",
                    format!("{t:?} is not an address with a port, e.g. \"198.18.0.1:67\""),
                );
                None
            }
        });
    let tls = raw.tls.as_ref().and_then(|t| {
        let mut path = |key: &str, v: Option<&String>| match v.map(|s| s.trim()) {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => {
                ctx.err(key, "is required in [leasequery.tls]");
                None
            }
        };
        let cert = path("leasequery.tls.cert", t.cert.as_ref());
        let key = path("leasequery.tls.key", t.key.as_ref());
        Some(TlsSettings {
            cert: cert?,
            key: key?,
        })
    });
    let allow_plaintext = raw.allow_plaintext.unwrap_or(false);
    if tcp_listen.is_some() && raw.tls.is_none() && !allow_plaintext {
        ctx.err(
            "leasequery.tcp_listen",
            "bulk and active leasequery need [leasequery.tls] (cert, key); set \
             allow_plaintext = true only on a trusted management network",
        );
    }
    let max_connections = connections(
        ctx,
        "leasequery.max_connections",
        raw.max_connections,
        DEFAULT_MAX_CONNECTIONS,
    );
    let max_per_requestor = connections(
        ctx,
        "leasequery.max_connections_per_requestor",
        raw.max_connections_per_requestor,
        DEFAULT_MAX_PER_REQUESTOR,
    );
    let max_queued = match raw.max_queued_changes {
        None => DEFAULT_MAX_QUEUED,
        Some(n) => match usize::try_from(n) {
            Ok(n) if (1..=MAX_QUEUED_LIMIT).contains(&n) => n,
            _ => {
                ctx.err(
                    "leasequery.max_queued_changes",
                    format!("must be between 1 and {MAX_QUEUED_LIMIT}"),
                );
                0
            }
        },
    };
    let write_timeout = timeout(
        ctx,
        "leasequery.write_timeout",
        raw.write_timeout.as_ref(),
        DEFAULT_WRITE_TIMEOUT,
    );
    let query_timeout = timeout(
        ctx,
        "leasequery.query_timeout",
        raw.query_timeout.as_ref(),
        DEFAULT_QUERY_TIMEOUT,
    );
    (ctx.error_count() == before).then_some(LeasequerySettings {
        acl: Acl { allow },
        tcp_listen,
        tls,
        allow_plaintext,
        max_connections,
        max_per_requestor,
        max_queued,
        write_timeout,
        query_timeout,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::{Format, load_str};

    fn load(text: &str) -> Result<crate::Config, Vec<String>> {
        let text = format!(
            "{text}\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.20\"]\n"
        );
        load_str(&text, "t.toml", Format::Toml)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn absent_defaults_and_full() {
        assert_eq!(load("").unwrap().leasequery, None);
        let l = load("[leasequery]\nallow = [\"198.18.0.5\", \"198.18.1.0/24\"]\n")
            .unwrap()
            .leasequery
            .unwrap();
        assert!(l.acl.allows("198.18.0.5".parse().unwrap()));
        assert!(!l.acl.allows("198.18.0.6".parse().unwrap()));
        assert!(l.acl.allows("198.18.1.77".parse().unwrap()));
        assert_eq!(l.tcp_listen, None);
        assert_eq!(
            (l.max_connections, l.max_per_requestor, l.max_queued),
            (16, 4, 4096)
        );
        let l = load(
            "[leasequery]\nallow = [\"198.18.0.0/24\"]\ntcp_listen = \"198.18.0.1:67\"\n\
             max_connections = 3\nmax_connections_per_requestor = 1\nmax_queued_changes = 10\n\
             write_timeout = \"5s\"\nquery_timeout = 2\n[leasequery.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .unwrap()
        .leasequery
        .unwrap();
        assert_eq!(l.tcp_listen.unwrap().port(), 67);
        assert_eq!(l.tls.unwrap().cert.to_str(), Some("c.pem"));
        assert_eq!(
            (l.max_connections, l.max_per_requestor, l.max_queued),
            (3, 1, 10)
        );
        assert_eq!(l.write_timeout.as_secs(), 5);
        assert_eq!(l.query_timeout.as_secs(), 2);
    }

    #[test]
    fn errors_with_positions() {
        let e = load("[leasequery]\n").unwrap_err().join("\n");
        assert!(e.contains("leasequery.allow"), "{e}");
        let e = load("[leasequery]\nallow = [\"0.0.0.0/0\", \"x\"]\ntcp_listen = \"198.18.0.1:67\"\nmax_queued_changes = 0\n")
            .unwrap_err()
            .join("\n");
        assert!(e.contains("t.toml:2:10: leasequery.allow[0]"), "{e}");
        assert!(e.contains("leasequery.allow[1]"), "{e}");
        assert!(e.contains("need [leasequery.tls]"), "{e}");
        assert!(e.contains("leasequery.max_queued_changes"), "{e}");
        let ok = load(
            "[leasequery]\nallow = [\"198.18.0.0/24\"]\ntcp_listen = \"198.18.0.1:67\"\nallow_plaintext = true\n",
        )
        .unwrap();
        assert!(ok.leasequery.unwrap().allow_plaintext);
    }
}
