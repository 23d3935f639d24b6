//! The live log console: `leased serve` keeps its recent log lines in a bounded ring and
//! streams new ones to every attached viewer (`leased console attach`).
//!
//! - A tracing layer (a second `fmt` layer whose writer is the [`Hub`]) turns every event into
//!   one text line, pushed into a replay ring of the last N lines and a bounded broadcast
//!   channel. Pushing never blocks the server: a viewer that cannot keep up loses lines and is
//!   told how many ("lagged"), it never slows the engine down.
//! - The UNIX socket (mode 0600, set before it listens, so only the server's user and root can
//!   ever read client MACs and host names) is the default door; an optional TCP listener
//!   requires an API key, checked in constant time. The key never travels in plaintext unless
//!   the operator says so (`allow_plaintext`): with `[api.tls]` the TCP listener speaks TLS
//!   with the API's certificate, and a plaintext hello is refused and logged.
//! - Both listeners are bounded like the HTTP API's ([`leased_api::conn`]): at most
//!   `max_connections` viewers each, `hello_timeout` for the TLS handshake and the hello, and a
//!   viewer whose socket takes no byte for `idle_timeout` is dropped.
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
use leased_api::conn::{Gate, Guarded, LogThrottle};
use leased_config::{ConsoleSettings, TlsSettings};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::cli::ConsoleAttachArgs;

/// Lines a slow viewer may fall behind before it loses some.
pub const LIVE_CAPACITY: usize = 1024;
/// How often a refusal (plaintext, failed key) is logged at most, with the count since.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
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

/// What every viewer task shares.
struct Viewers {
    hub: Arc<Hub>,
    /// The key check of TCP viewers.
    auth: Arc<Auth>,
    max_replay: usize,
    hello_timeout: Duration,
    idle_timeout: Duration,
    /// TLS for TCP viewers (`[api.tls]`).
    tls: Option<leased_api::tls::TlsAcceptor>,
    allow_plaintext: bool,
    failed_keys: LogThrottle,
    refused_plaintext: LogThrottle,
}

/// Serves one viewer: hello (by `hello_by`), replay, live lines, until it goes away or `stop`
/// fires. `auth`: the key the hello must carry (TCP viewers).
async fn serve_viewer<S>(
    stream: S,
    viewers: &Viewers,
    auth: Option<&Auth>,
    hello_by: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(rd, HELLO_MAX));
    let mut line = String::new();
    let hello = match tokio::time::timeout_at(hello_by, rd.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => serde_json::from_str::<Hello>(line.trim()).ok(),
        _ => None,
    };
    let Some(hello) = hello else {
        wr.write_all(b"error: expected a hello line {\"replay\": N}\n")
            .await?;
        return wr.shutdown().await;
    };
    if let Some(auth) = auth {
        let ok = hello
            .key
            .as_deref()
            .is_some_and(|k| auth.accepts(k.as_bytes()));
        if !ok {
            if let Some(n) = viewers.failed_keys.hit() {
                tracing::warn!(count = n, "console: a TCP viewer failed to authenticate");
            }
            wr.write_all(b"error: authentication failed (give an API key)\n")
                .await?;
            return wr.shutdown().await;
        }
    }
    let hub = &viewers.hub;
    let max_replay = viewers.max_replay;
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
    wr.flush().await?;
    // A TLS viewer is sent close_notify: the end of the stream, not a cut connection.
    wr.shutdown().await
}

/// Serves one TCP viewer: TLS when it starts a handshake and `[api.tls]` is set, plaintext
/// only with `allow_plaintext`; anything else is refused with a line saying why (a plaintext
/// one also in the log).
async fn serve_tcp_viewer(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    slot: tokio::sync::OwnedSemaphorePermit,
    viewers: Arc<Viewers>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let hello_by = Instant::now() + viewers.hello_timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(hello_by, stream.peek(&mut first)).await {
        Ok(Ok(1..)) => {}
        // Silent until the deadline, or gone: nothing to answer.
        _ => return Ok(()),
    }
    let stream = Guarded::new(stream, Some(slot), viewers.idle_timeout);
    let auth = Some(&*viewers.auth);
    if first[0] == leased_api::tls::HANDSHAKE_RECORD {
        let Some(tls) = &viewers.tls else {
            if let Some(n) = viewers.refused_plaintext.hit() {
                tracing::warn!(
                    %peer,
                    count = n,
                    "console: refused a TLS viewer from {peer}: the console speaks TLS only \
                     with [api.tls]"
                );
            }
            return Ok(());
        };
        return match tokio::time::timeout_at(hello_by, tls.accept(stream)).await {
            Ok(Ok(s)) => serve_viewer(s, &viewers, auth, hello_by, stop).await,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "console: TLS handshake failed");
                Ok(())
            }
            Err(_) => Ok(()),
        };
    }
    if viewers.allow_plaintext {
        return serve_viewer(stream, &viewers, auth, hello_by, stop).await;
    }
    if let Some(n) = viewers.refused_plaintext.hit() {
        tracing::warn!(
            %peer,
            count = n,
            "console: refused a plaintext TCP viewer from {peer}: its hello would carry an API \
             key in the clear; attach with --tls (the server needs [api.tls]) or set [console] \
             allow_plaintext = true"
        );
    }
    let mut stream = stream;
    let why: &[u8] = if viewers.tls.is_some() {
        b"error: this console speaks TLS: attach with --tls (and --ca FILE for a private \
          certificate)\n"
    } else {
        b"error: this console refuses plaintext: configure [api.tls] and attach with --tls, or \
          set [console] allow_plaintext = true\n"
    };
    stream.write_all(why).await?;
    stream.shutdown().await
}

/// Binds the UNIX socket with mode 0600 (refusing to take over one a live server answers on;
/// removing a stale one). The mode is set between `bind` and `listen`: until it listens, a
/// connect is refused, so no one ever reaches the socket with the mode the umask gave it.
fn bind_unix(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use socket2::{Domain, SockAddr, Socket, Type};
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
    let cannot = || format!("cannot create console socket {}", path.display());
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).with_context(cannot)?;
    socket
        .bind(&SockAddr::unix(path).with_context(cannot)?)
        .with_context(cannot)?;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("cannot set mode 0600 on {}", path.display()));
    }
    socket.listen(128).with_context(cannot)?;
    socket.set_nonblocking(true).with_context(cannot)?;
    let l = std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(socket));
    tokio::net::UnixListener::from_std(l).with_context(cannot)
}

/// Removes the socket file when the console stops.
struct Unlink(PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds the console's listeners now (so a problem fails start-up) and returns the task that
/// serves viewers until `shutdown`. `tls`: the API's certificate, which the TCP listener then
/// speaks.
pub fn start(
    settings: &ConsoleSettings,
    hub: Arc<Hub>,
    keys: Vec<String>,
    tls: Option<&TlsSettings>,
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
            let l = leased_api::conn::listen_tcp(addr)
                .with_context(|| format!("cannot listen for the console on {addr}"))?;
            Some(tokio::net::TcpListener::from_std(l)?)
        }
        None => None,
    };
    let tls = match (tcp.is_some(), tls) {
        (true, Some(t)) => Some(leased_api::tls::console_acceptor(t)?),
        _ => None,
    };
    if tcp.is_some() && tls.is_none() && !settings.allow_plaintext {
        tracing::warn!(
            "console: tcp_listen without [api.tls]: every TCP viewer will be refused (set \
             [console] allow_plaintext = true to accept keys in plaintext)"
        );
    }
    let viewers = Arc::new(Viewers {
        hub,
        auth: Arc::new(Auth::new(&keys, false, false)),
        max_replay: settings.replay,
        hello_timeout: settings.hello_timeout,
        idle_timeout: settings.idle_timeout,
        tls,
        allow_plaintext: settings.allow_plaintext,
        failed_keys: LogThrottle::new(REFUSAL_LOG_EVERY),
        refused_plaintext: LogThrottle::new(REFUSAL_LOG_EVERY),
    });
    let unix_gate = Gate::new(settings.max_connections, "console socket");
    let tcp_gate = Gate::new(settings.max_connections, "console TCP");
    tracing::info!(
        socket = %settings.socket.display(),
        tcp = ?settings.tcp_listen,
        tls = viewers.tls.is_some(),
        max_connections = settings.max_connections,
        "console listening"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    Ok(Box::pin(async move {
        let _unlink = unlink;
        if let Some(tcp) = tcp {
            let (viewers, mut stop) = (Arc::clone(&viewers), stop_rx.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = tcp.accept() => match r {
                            Ok((s, peer)) => {
                                // Over the limit: dropped, so closed, before a byte is read.
                                let Some(slot) = tcp_gate.admit() else { continue };
                                let (v, st) = (Arc::clone(&viewers), stop.clone());
                                tokio::spawn(async move {
                                    let _ = serve_tcp_viewer(s, peer, slot, v, st).await;
                                });
                            }
                            // Out of descriptors and the like: back off instead of spinning.
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
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
                r = unix.accept() => match r {
                    Ok((s, _)) => {
                        let Some(slot) = unix_gate.admit() else { continue };
                        let (v, stop) = (Arc::clone(&viewers), stop_rx.clone());
                        tokio::spawn(async move {
                            let s = Guarded::new(s, Some(slot), v.idle_timeout);
                            let by = Instant::now() + v.hello_timeout;
                            let _ = serve_viewer(s, &v, None, by, stop).await;
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
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
        if args.tls || args.ca.is_some() {
            let name = match &args.tls_name {
                Some(n) => n.clone(),
                None => host_of(addr).to_string(),
            };
            let mut tls = tls_client(args.ca.as_deref(), &name, s)?;
            tls.write_all(hello.as_bytes())
                .and_then(|()| tls.flush())
                .with_context(|| {
                    format!(
                        "TLS with the console at {addr} failed (does the server have \
                         [api.tls]? is --ca its certificate or CA?)"
                    )
                })?;
            Box::new(tls)
        } else {
            eprintln!(
                "-- console: sending the API key in plaintext (a server with [api.tls] wants \
                 --tls) --"
            );
            s.write_all(hello.as_bytes())?;
            Box::new(s)
        }
    } else {
        let path = match (&args.socket, &args.config) {
            (Some(p), _) => p.clone(),
            (None, Some(c)) => {
                let config = leased_config::load(c)?;
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
            // A TLS peer gone without close_notify: the server died; the end all the same.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
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

/// The host part of `HOST:PORT` (IPv6 brackets removed), the name a TLS certificate must
/// carry unless `--tls-name` says otherwise.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// A TLS client stream over `tcp` to a server whose certificate names `name`.
fn tls_client(
    ca: Option<&Path>,
    name: &str,
    tcp: std::net::TcpStream,
) -> anyhow::Result<
    leased_api::tls::rustls::StreamOwned<
        leased_api::tls::rustls::ClientConnection,
        std::net::TcpStream,
    >,
> {
    use leased_api::tls::rustls;
    let config = leased_api::tls::client_config(ca)?;
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
        .with_context(|| format!("{name:?} is not a host name or address for TLS"))?;
    let conn = rustls::ClientConnection::new(config, server_name).context("TLS client")?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const KEY: &str = "console-test-key-0001";

    fn viewers(
        hub: &Arc<Hub>,
        tls: Option<leased_api::tls::TlsAcceptor>,
        allow_plaintext: bool,
    ) -> Arc<Viewers> {
        Arc::new(Viewers {
            hub: Arc::clone(hub),
            auth: Arc::new(Auth::new(&[KEY.to_string()], false, false)),
            max_replay: 100,
            hello_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            tls,
            allow_plaintext,
            failed_keys: LogThrottle::new(REFUSAL_LOG_EVERY),
            refused_plaintext: LogThrottle::new(REFUSAL_LOG_EVERY),
        })
    }

    /// Serves `n` TCP viewers on a loopback port with `v`.
    async fn tcp_server(v: Arc<Viewers>, n: usize) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let gate = Gate::new(8, "test");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _stop_tx = stop_tx;
            for _ in 0..n {
                let (s, peer) = l.accept().await.unwrap();
                let (v, st, slot) = (Arc::clone(&v), stop_rx.clone(), gate.admit().unwrap());
                tokio::spawn(async move { serve_tcp_viewer(s, peer, slot, v, st).await.ok() });
            }
            // Keep the viewers' stop channel open while they run.
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        addr
    }

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
        let v = viewers(&hub, None, false);
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let by = Instant::now() + Duration::from_secs(5);
            serve_viewer(s, &v, None, by, stop_rx).await.ok();
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
        let addr = tcp_server(viewers(&hub, None, true), 2).await;
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
            .write_all(format!("{{\"replay\": 5, \"key\": \"{KEY}\"}}\n").as_bytes())
            .await
            .unwrap();
        let mut a = String::new();
        let mut b = String::new();
        r.read_line(&mut a).await.unwrap();
        r.read_line(&mut b).await.unwrap();
        assert_eq!((a.trim(), b.trim()), ("ok", "secret line"));
    }

    #[tokio::test]
    async fn a_plaintext_hello_is_refused_unless_allowed() {
        let hub = Hub::new(10, 16);
        hub.push("secret line");
        let addr = tcp_server(viewers(&hub, None, false), 1).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("{{\"replay\": 5, \"key\": \"{KEY}\"}}\n").as_bytes())
            .await
            .unwrap();
        let mut s = String::new();
        tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut s))
            .await
            .unwrap()
            .unwrap();
        assert!(
            s.starts_with("error: this console refuses plaintext"),
            "{s}"
        );
        assert!(!s.contains("secret"));
    }

    #[tokio::test]
    async fn a_silent_tcp_viewer_is_closed_at_the_hello_deadline() {
        let hub = Hub::new(10, 16);
        let mut v = viewers(&hub, None, true);
        Arc::get_mut(&mut v).unwrap().hello_timeout = Duration::from_millis(300);
        let addr = tcp_server(v, 1).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = String::new();
        // Closed without a word, long before this bound.
        tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut s))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s, "");
    }
}
