//! `[console]`: the live log console of `leased serve` (`leased console attach`), shape and
//! checks in one room so that the rest of the loader only gains a field and a call.
//!
//! Why a section of its own: the console is a second door into the server (it shows every log
//! line, client MACs and host names included), so it is off unless asked for, its UNIX socket
//! path is explicit, and its optional TCP listener is checked here to need API keys.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::validate::Ctx;

/// Lines a new viewer is shown from before it attached, unless configured.
pub const DEFAULT_REPLAY: usize = 200;
/// Largest `replay`: the ring is held in memory.
pub const MAX_REPLAY: usize = 100_000;

/// `[console]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    pub socket: Option<String>,
    pub replay: Option<i64>,
    pub tcp_listen: Option<String>,
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
}

/// Checks `[console]`; `None` when the section is absent (no console) or invalid.
pub(super) fn console(ctx: &mut Ctx<'_>, raw: Option<&RawConsole>) -> Option<ConsoleSettings> {
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
    (ctx.error_count() == before).then_some(ConsoleSettings {
        socket,
        replay,
        tcp_listen,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{Format, load_str};

    fn load(text: &str) -> Result<super::super::Config, Vec<String>> {
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
        assert!(!c.server.auto_reload);
        let c = load("[server]\nauto_reload = true\n[console]\n").unwrap();
        assert!(c.server.auto_reload);
        let k = c.console.unwrap();
        assert_eq!(k.replay, super::DEFAULT_REPLAY);
        assert_eq!(k.socket.to_str(), Some("leased.console.sock"));
        let c =
            load("[console]\nsocket = \"/run/x.sock\"\nreplay = 5\ntcp_listen = \"127.0.0.1:9\"\n")
                .unwrap()
                .console
                .unwrap();
        assert_eq!((c.replay, c.tcp_listen.unwrap().port()), (5, 9));
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
    }
}
