//! The live log console: `leased serve` keeps its recent log lines in a bounded ring and
//! streams new ones to every attached viewer (`leased console attach`).
//!
//! - A tracing layer (a second `fmt` layer whose writer is the [`Hub`]) turns every event into
//!   one text line, pushed into a replay ring of the last N lines and a bounded broadcast
//!   channel. Pushing never blocks the server: a viewer that cannot keep up loses lines and is
//!   told how many ("lagged"), it never slows the engine down.
//! - The UNIX socket (mode 0600, so only the server's user and root can read client MACs and
//!   host names) is the default door; an optional TCP listener requires an API key, checked in
//!   constant time (the seed's TCP console had no authentication).
//!
//! Protocol: the viewer sends one JSON line `{"replay": N, "key": "…"}` (key for TCP only);
//! the server answers `ok` or `error: …` on a line of its own, then sends the replay and live
//! lines, each ending in `\n`, until either side closes.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use leased_api::auth::Auth;
use leased_core::config::ConsoleSettings;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::cli::ConsoleAttachArgs;

/// Lines a slow viewer may fall behind before it loses some.
pub const LIVE_CAPACITY: usize = 1024;
/// How long a viewer has to send its hello line.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest hello line accepted.
const HELLO_MAX: u64 = 4096;

/// The ring of recent lines and the live channel.
#[derive(Debug)]
pub struct Hub {
    ring: Mutex<VecDeque<Arc<str>>>,
    keep: usize,
    live: broadcast::Sender<Arc<str>>,
}

impl Hub {
    /// A hub that keeps `keep` lines for replay and lets a viewer fall `live` lines behind.
    pub fn new(keep: usize, live: usize) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(live.max(1));
        Arc::new(Hub {
            ring: Mutex::new(VecDeque::with_capacity(keep.min(4096))),
            keep,
            live: tx,
        })
    }

    /// Adds one line (never blocks on viewers).
    pub fn push(&self, line: &str) {
        let line: Arc<str> = Arc::from(line);
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if self.keep > 0 {
            if ring.len() >= self.keep {
                ring.pop_front();
            }
            ring.push_back(Arc::clone(&line));
        }
        // No viewer is not an error.
        let _ = self.live.send(line);
    }

    /// The last `n` lines and a receiver for every later one (no gap, no duplicate: both are
    /// taken under the ring's lock, which `push` holds while sending).
    pub fn subscribe(&self, n: usize) -> (Vec<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.live.subscribe();
        let skip = ring.len().saturating_sub(n);
        (ring.iter().skip(skip).cloned().collect(), rx)
    }
}

/// The `MakeWriter` of the console's fmt layer: each event is formatted into a buffer that
/// becomes one line (or several, for a multi-line message) of the hub when dropped.
#[derive(Debug, Clone)]
pub struct HubWriter(pub Arc<Hub>);

/// One event's text on its way to the hub.
#[derive(Debug)]
pub struct LineBuf {
    hub: Arc<Hub>,
    buf: Vec<u8>,
}

impl Write for LineBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuf {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.hub.push(line);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for HubWriter {
    type Writer = LineBuf;
    fn make_writer(&'a self) -> LineBuf {
        LineBuf {
            hub: Arc::clone(&self.0),
            buf: Vec::with_capacity(256),
        }
    }
}

/// The viewer's first line.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Hello {
    /// Lines to replay.
    #[serde(default)]
    pub replay: usize,
    /// API key (TCP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The notice a viewer sees when it fell behind.
pub fn lag_notice(n: u64) -> String {
    format!("-- console: {n} lines dropped: this viewer fell behind --")
}

/// Serves one viewer: hello, replay, live lines, until it goes away or `stop` fires.
async fn serve_viewer<S>(
    stream: S,
    hub: Arc<Hub>,
    auth: Option<Arc<Auth>>,
    max_replay: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(rd, HELLO_MAX));
    let mut line = String::new();
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, rd.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => serde_json::from_str::<Hello>(line.trim()).ok(),
        _ => None,
    };
    let Some(hello) = hello else {
        wr.write_all(b"error: expected a hello line {\"replay\": N}\n")
            .await?;
        return Ok(());
    };
    if let Some(auth) = &auth {
        let ok = hello
            .key
            .as_deref()
            .is_some_and(|k| auth.accepts(k.as_bytes()));
        if !ok {
            tracing::warn!("console: a TCP viewer failed to authenticate");
            wr.write_all(b"error: authentication failed (give an API key)\n")
                .await?;
            return Ok(());
        }
    }
    wr.write_all(b"ok\n").await?;
    let (replay, mut rx) = hub.subscribe(hello.replay.min(max_replay));
    for l in replay {
        wr.write_all(l.as_bytes()).await?;
        wr.write_all(b"\n").await?;
    }
    wr.flush().await?;
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(l) => {
                    wr.write_all(l.as_bytes()).await?;
                    wr.write_all(b"\n").await?;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    wr.write_all(lag_notice(n).as_bytes()).await?;
                    wr.write_all(b"\n").await?;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = stop.changed() => {
                // The last lines ("SIGTERM: shutting down") still reach the viewer.
                while let Ok(l) = rx.try_recv() {
                    wr.write_all(l.as_bytes()).await?;
                    wr.write_all(b"\n").await?;
                }
                break;
            }
        }
        wr.flush().await?;
    }
    wr.flush().await
}

/// Binds the UNIX socket with mode 0600 (refusing to take over one a live server answers on;
/// removing a stale one).
fn bind_unix(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "console socket {} is in use by another process (another leased?)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale console socket {}", path.display()))?;
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot create console socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set mode 0600 on {}", path.display()))?;
    Ok(l)
}

/// Removes the socket file when the console stops.
struct Unlink(PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds the console's listeners now (so a problem fails start-up) and returns the task that
/// serves viewers until `shutdown`.
pub fn start(
    settings: &ConsoleSettings,
    hub: Arc<Hub>,
    keys: Vec<String>,
    shutdown: leased_io::Shutdown,
) -> anyhow::Result<leased_io::Sidecar> {
    let unix = bind_unix(&settings.socket)?;
    let unlink = Unlink(settings.socket.clone());
    let tcp = match settings.tcp_listen {
        Some(addr) => {
            if keys.is_empty() {
                bail!(
                    "[console] tcp_listen needs API keys: set [api] keys or {}",
                    leased_api::auth::KEYS_ENV
                );
            }
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen for the console on {addr}"))?;
            l.set_nonblocking(true)?;
            Some(tokio::net::TcpListener::from_std(l)?)
        }
        None => None,
    };
    let auth = Arc::new(Auth::new(&keys, false, false));
    let max = settings.replay;
    tracing::info!(
        socket = %settings.socket.display(),
        tcp = ?settings.tcp_listen,
        "console listening"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    Ok(Box::pin(async move {
        let _unlink = unlink;
        if let Some(tcp) = tcp {
            let (hub, mut stop) = (Arc::clone(&hub), stop_rx.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = tcp.accept() => if let Ok((s, _)) = r {
                            let (hub, st, auth) = (Arc::clone(&hub), stop.clone(), Some(Arc::clone(&auth)));
                            tokio::spawn(async move {
                                let _ = serve_viewer(s, hub, auth, max, st).await;
                            });
                        },
                        _ = stop.changed() => break,
                    }
                }
            });
        }
        let down = shutdown.wait();
        tokio::pin!(down);
        loop {
            tokio::select! {
                r = unix.accept() => if let Ok((s, _)) = r {
                    let (hub, stop) = (Arc::clone(&hub), stop_rx.clone());
                    tokio::spawn(async move {
                        let _ = serve_viewer(s, hub, None, max, stop).await;
                    });
                },
                () = &mut down => break,
            }
        }
        let _ = stop_tx.send(true);
        Ok(())
    }))
}

/// `leased console attach`: prints the replay and then live lines until the server closes
/// the connection (or the viewer is interrupted).
pub fn attach(args: &ConsoleAttachArgs) -> anyhow::Result<std::process::ExitCode> {
    let hello = Hello {
        replay: args.lines,
        key: args.key.clone(),
    };
    let mut hello = serde_json::to_string(&hello).context("hello")?;
    hello.push('\n');
    let reader: Box<dyn std::io::Read> = if let Some(addr) = &args.tcp {
        if args.key.is_none() {
            bail!("--tcp needs an API key: --key KEY or LEASED_API_KEY");
        }
        let mut s = std::net::TcpStream::connect(addr.as_str())
            .with_context(|| format!("cannot connect to the console at {addr}"))?;
        s.write_all(hello.as_bytes())?;
        Box::new(s)
    } else {
        let path = match (&args.socket, &args.config) {
            (Some(p), _) => p.clone(),
            (None, Some(c)) => {
                let config = leased_io::load_config(c)?;
                config
                    .console
                    .with_context(|| format!("{} has no [console] section", c.display()))?
                    .socket
            }
            (None, None) => PathBuf::from("leased.console.sock"),
        };
        let mut s = std::os::unix::net::UnixStream::connect(&path).with_context(|| {
            format!(
                "cannot connect to the console socket {} (is the server running with [console]?)",
                path.display()
            )
        })?;
        s.write_all(hello.as_bytes())?;
        Box::new(s)
    };
    let mut r = BufReader::new(reader);
    let mut first = String::new();
    r.read_line(&mut first)
        .context("reading the server's answer")?;
    if first.trim() != "ok" {
        bail!("the console refused: {}", first.trim());
    }
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(std::process::ExitCode::SUCCESS);
                    }
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e).context("reading the console"),
        }
    }
    eprintln!("-- console: the server closed the connection --");
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn ring_keeps_the_last_lines() {
        let hub = Hub::new(3, 8);
        for i in 0..5 {
            hub.push(&format!("l{i}"));
        }
        let (r, _) = hub.subscribe(10);
        let r: Vec<&str> = r.iter().map(|s| &**s).collect();
        assert_eq!(r, ["l2", "l3", "l4"]);
        assert_eq!(hub.subscribe(1).0.len(), 1);
    }

    #[tokio::test]
    async fn replay_live_and_lag_over_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let hub = Hub::new(100, 16);
        for i in 0..5 {
            hub.push(&format!("old {i}"));
        }
        let listener = bind_unix(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let h2 = Arc::clone(&hub);
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            serve_viewer(s, h2, None, 100, stop_rx).await.ok();
        });
        let mut c = tokio::net::UnixStream::connect(&path).await.unwrap();
        c.write_all(b"{\"replay\": 3}\n").await.unwrap();
        let mut r = tokio::io::BufReader::new(c);
        let mut got = Vec::new();
        for _ in 0..4 {
            let mut l = String::new();
            r.read_line(&mut l).await.unwrap();
            got.push(l.trim().to_string());
        }
        assert_eq!(got, ["ok", "old 2", "old 3", "old 4"]);
        hub.push("live 1");
        let mut l = String::new();
        tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut l))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(l.trim(), "live 1");
        // The viewer stops reading; the server's writes fill the socket, then the channel
        // (16 lines) overflows. Long lines fill the socket buffer quickly.
        let big = "x".repeat(8192);
        for i in 0..2000 {
            hub.push(&format!("flood {i} {big}"));
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        hub.push("the end");
        let mut all = String::new();
        let read = async {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                all.push_str(&String::from_utf8_lossy(&buf[..n]));
                if all.contains("the end\n") || n == 0 {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .unwrap();
        assert!(
            all.contains("lines dropped: this viewer fell behind"),
            "no lag notice"
        );
        assert!(all.contains("the end\n"));
    }

    #[tokio::test]
    async fn tcp_needs_a_key() {
        let hub = Hub::new(10, 16);
        hub.push("secret line");
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let auth = Some(Arc::new(Auth::new(&["k1".to_string()], false, false)));
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let h2 = Arc::clone(&hub);
        tokio::spawn(async move {
            for _ in 0..2 {
                let (s, _) = l.accept().await.unwrap();
                let (h, a, st) = (Arc::clone(&h2), auth.clone(), stop_rx.clone());
                tokio::spawn(async move { serve_viewer(s, h, a, 10, st).await.ok() });
            }
        });
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"{\"replay\": 5, \"key\": \"wrong\"}\n")
            .await
            .unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).await.unwrap();
        assert!(s.starts_with("error: authentication failed"), "{s}");
        assert!(!s.contains("secret"));
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut r = tokio::io::BufReader::new(c);
        r.get_mut()
            .write_all(b"{\"replay\": 5, \"key\": \"k1\"}\n")
            .await
            .unwrap();
        let mut a = String::new();
        let mut b = String::new();
        r.read_line(&mut a).await.unwrap();
        r.read_line(&mut b).await.unwrap();
        assert_eq!((a.trim(), b.trim()), ("ok", "secret line"));
    }
}
