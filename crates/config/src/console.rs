//! `[console]`: the live log console of `leased serve` (`leased console attach`), shape and
//! checks in one room so that the rest of the loader only gains a field and a call.
//!
//! Why a section of its own: the console is a second door into the server (it shows every log
//! line, client MACs and host names included), so it is off unless asked for, its UNIX socket
//! path is explicit, and its optional TCP listener is checked here to need API keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::api::{connections, timeout};
use crate::ctx::Ctx;
use crate::file::RawDuration;

/// Lines a new viewer is shown from before it attached, unless configured.
pub const DEFAULT_REPLAY: usize = 200;
/// Largest `replay`: the ring is held in memory.
pub const MAX_REPLAY: usize = 100_000;
/// How long a viewer has to send its hello (and finish a TLS handshake), unless configured.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write to a viewer may stall (a viewer that stopped reading), unless configured.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Viewers served at once per listener, unless configured: every viewer gets every log line,
/// so the limit is low.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;

/// `[console]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsole {
    pub socket: Option<String>,
    pub replay: Option<i64>,
    pub tcp_listen: Option<String>,
    pub hello_timeout: Option<RawDuration>,
    pub idle_timeout: Option<RawDuration>,
    pub max_connections: Option<i64>,
    pub allow_plaintext: Option<bool>,
}

/// The live log console, served inside `leased serve` when `[console]` is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// UNIX socket path (created with mode 0600). Default `leased.console.sock` in the working
    /// directory.
    pub socket: PathBuf,
    /// How many recent lines a viewer is shown when it attaches. Default 200.
    pub replay: usize,
    /// Optional TCP listener; a viewer must present an API key (`[api] keys` or
    /// `LEASED_API_KEYS`) before it is shown anything.
    pub tcp_listen: Option<SocketAddr>,
    /// A viewer must finish its TLS handshake and send its hello within this. Default 10 s.
    pub hello_timeout: Duration,
    /// A viewer whose socket accepts no byte for this long (it stopped reading) is dropped.
    /// Default 60 s. An idle server sends nothing and drops no one.
    pub idle_timeout: Duration,
    /// Viewers at once, per listener (UNIX socket, TCP); one more is closed at once.
    /// Default 32.
    pub max_connections: usize,
    /// Accept a TCP viewer's hello (its API key) in plaintext. Default false: without
    /// `[api.tls]` (which the TCP listener then speaks) every TCP viewer is refused.
    pub allow_plaintext: bool,
}

/// Checks `[console]`; `None` when the section is absent (no console) or invalid.
pub(crate) fn console(ctx: &mut Ctx<'_>, raw: Option<&RawConsole>) -> Option<ConsoleSettings> {
    let raw = raw?;
    let before = ctx.error_count();
    let socket = match raw.socket.as_deref() {
        Some(s) if s.trim().is_empty() => {
            ctx.err("console.socket", "must not be empty");
            PathBuf::new()
        }
        Some(s) => PathBuf::from(s),
        None => PathBuf::from("leased.console.sock"),
    };
    let replay = match raw.replay {
        None => DEFAULT_REPLAY,
        Some(n) => match usize::try_from(n) {
            Ok(n) if n <= MAX_REPLAY => n,
            _ => {
                ctx.err(
                    "console.replay",
                    format!("must be between 0 and {MAX_REPLAY}"),
                );
                0
            }
        },
    };
    let tcp_listen = raw
        .tcp_listen
        .as_deref()
        .and_then(|t| match t.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                ctx.err(
                    "console.tcp_listen",
                    format!("{t:?} is not an address with a port, e.g. \"127.0.0.1:8068\""),
                );
                None
            }
        });
    let hello_timeout = timeout(
        ctx,
        "console.hello_timeout",
        raw.hello_timeout.as_ref(),
        DEFAULT_HELLO_TIMEOUT,
    );
    let idle_timeout = timeout(
        ctx,
        "console.idle_timeout",
        raw.idle_timeout.as_ref(),
        DEFAULT_IDLE_TIMEOUT,
    );
    let max_connections = connections(
        ctx,
        "console.max_connections",
        raw.max_connections,
        DEFAULT_MAX_CONNECTIONS,
    );
    (ctx.error_count() == before).then_some(ConsoleSettings {
        socket,
        replay,
        tcp_listen,
        hello_timeout,
        idle_timeout,
        max_connections,
        allow_plaintext: raw.allow_plaintext.unwrap_or(false),
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
        let c = load("").unwrap();
        assert_eq!(c.console, None);
        assert!(!c.process.auto_reload);
        let c = load("[server]\nauto_reload = true\n[console]\n").unwrap();
        assert!(c.process.auto_reload);
        let k = c.console.unwrap();
        assert_eq!(k.replay, super::DEFAULT_REPLAY);
        assert_eq!(k.socket.to_str(), Some("leased.console.sock"));
        assert_eq!(
            (k.hello_timeout, k.idle_timeout, k.max_connections),
            (
                super::DEFAULT_HELLO_TIMEOUT,
                super::DEFAULT_IDLE_TIMEOUT,
                super::DEFAULT_MAX_CONNECTIONS
            )
        );
        assert!(!k.allow_plaintext);
        let c = load(
            "[console]\nsocket = \"/run/x.sock\"\nreplay = 5\ntcp_listen = \"127.0.0.1:9\"\n\
             hello_timeout = 3\nidle_timeout = \"1m\"\nmax_connections = 4\n\
             allow_plaintext = true\n",
        )
        .unwrap()
        .console
        .unwrap();
        assert_eq!((c.replay, c.tcp_listen.unwrap().port()), (5, 9));
        assert_eq!(c.hello_timeout.as_secs(), 3);
        assert_eq!(c.idle_timeout.as_secs(), 60);
        assert_eq!(c.max_connections, 4);
        assert!(c.allow_plaintext);
    }

    #[test]
    fn errors_with_positions() {
        let e = load("[console]\nsocket = \"\"\nreplay = -1\ntcp_listen = \"x\"\nbogus = 1\n")
            .unwrap_err()
            .join("\n");
        assert!(e.contains("bogus"), "{e}");
        let e = load("[console]\nsocket = \"\"\nreplay = -1\ntcp_listen = \"x\"\n")
            .unwrap_err()
            .join("\n");
        assert!(e.contains("t.toml:2:10: console.socket"), "{e}");
        assert!(e.contains("console.replay"), "{e}");
        assert!(e.contains("console.tcp_listen"), "{e}");
        let e = load("[console]\nhello_timeout = 0\nidle_timeout = \"x\"\nmax_connections = -3\n")
            .unwrap_err()
            .join("\n");
        assert!(e.contains("t.toml:2:17: console.hello_timeout"), "{e}");
        assert!(e.contains("console.idle_timeout"), "{e}");
        assert!(e.contains("t.toml:4:19: console.max_connections"), "{e}");
    }
}
