//! Bulk (RFC 6926) and active (RFC 7724) leasequery over TCP: the listener, its ACL and
//! connection limits, TLS, and one task per connection that moves the engine's answers.
//!
//! Why the answers come from the driver: the lease table belongs to the engine's task, so a
//! connection asks it for one bounded step of answers at a time ([`LqRequest::Step`]) and an
//! active query subscribes to the lease events the driver already fans out to history and
//! billing ([`LqRequest::Subscribe`]). Nothing here decides what a query means.
//!
//! TLS (RFC 7724 §5.2 and §7): a requestor either opens TLS from the first byte (a TLS record
//! starts with 0x16; a framed DHCP message would have to be longer than 5631 bytes to start so)
//! or sends the DHCPTLS message in plaintext, is answered DHCPTLS, and starts the handshake on
//! the same connection. Without `[leasequery.tls]` a DHCPTLS is answered TLSConnectionRefused;
//! a query in plaintext is answered only with `allow_plaintext`, otherwise NotAllowed and the
//! connection is closed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use leased_config::{LeasequerySettings, TlsSettings};
use leased_core::Timestamp;
use leased_engine::leasequery::{self as lq, Context, Cursor, Transport};
use leased_wire::Packet;
use leased_wire::leasequery::{Status, frame, msg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

use crate::loaded::Current;
use crate::metrics::Metrics;

/// Answers per step: a connection holds at most this many encoded messages from the driver.
pub(crate) const STEP: usize = 256;

/// Requests waiting for the driver; a connection beyond it waits (it is bounded by the
/// connection limit anyway).
pub(crate) const REQUEST_QUEUE: usize = 64;

/// The first byte of a TLS connection (a handshake record).
const HANDSHAKE_RECORD: u8 = 0x16;

/// What a connection asks of the driver, which owns the lease table.
#[derive(Debug)]
pub(crate) enum LqRequest {
    /// The next step of a bulk answer or an active query's catch-up. `sub`: the active query
    /// this catch-up belongs to (its stream starts where the catch-up has been).
    Step {
        cursor: Box<Cursor>,
        server_id: Ipv4Addr,
        sub: Option<u64>,
        reply: oneshot::Sender<(Box<Cursor>, Vec<Packet>)>,
    },
    /// An active query starts: every later lease change of an address the catch-up has passed
    /// goes to `tx`; when `tx` is full the subscriber is dropped and `cut` set.
    Subscribe {
        id: u64,
        xid: u32,
        server_id: Ipv4Addr,
        tx: mpsc::Sender<Packet>,
        cut: Arc<AtomicBool>,
    },
    /// The active query ended.
    Unsubscribe { id: u64 },
}

/// The listener's socket and TLS, made before root is dropped.
pub(crate) struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

fn tls_acceptor(tls: &TlsSettings) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("cannot read TLS certificate {}", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad PEM in {}", tls.cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate in {}", tls.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("cannot read TLS key {}", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("[leasequery.tls]: the certificate and key do not fit together")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Binds the TCP listener of `[leasequery] tcp_listen` and loads its TLS; `None` without one.
pub(crate) async fn bind(
    settings: Option<&LeasequerySettings>,
) -> anyhow::Result<Option<Listener>> {
    let Some(s) = settings else { return Ok(None) };
    let Some(addr) = s.tcp_listen else {
        return Ok(None);
    };
    let tls = s.tls.as_ref().map(tls_acceptor).transpose()?;
    let tcp = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for leasequery on {addr}"))?;
    tracing::info!(%addr, tls = tls.is_some(), "leasequery: listening for bulk and active queries");
    Ok(Some(Listener { tcp, tls }))
}

/// Open connections, in total and per requestor address; entries exist only while a
/// connection does, so the map is bounded by `max_connections`.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// One connection's place in [`Counts`], given back when it ends.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_peer.remove(&self.peer);
            }
        }
    }
}

fn take_slot(counts: &Arc<Mutex<Counts>>, peer: IpAddr, s: &LeasequerySettings) -> Option<Slot> {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    let mine = c.by_peer.get(&peer).copied().unwrap_or(0);
    if c.total >= s.max_connections || mine >= s.max_per_requestor {
        return None;
    }
    c.total += 1;
    *c.by_peer.entry(peer).or_insert(0) += 1;
    Some(Slot {
        counts: Arc::clone(counts),
        peer,
    })
}

/// Accepts connections until the task is aborted (shutdown).
pub(crate) async fn serve(
    listener: Listener,
    current: Current,
    driver: mpsc::Sender<LqRequest>,
    metrics: Arc<Metrics>,
) {
    let counts = Arc::new(Mutex::new(Counts::default()));
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = match listener.tcp.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "leasequery: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let loaded = current.load();
        let Some(settings) = loaded.config.leasequery.clone() else {
            metrics.dropped("leasequery_refused");
            continue;
        };
        let allowed = match peer.ip() {
            IpAddr::V4(a) => settings.acl.allows(a),
            IpAddr::V6(a) => a.to_ipv4_mapped().is_some_and(|a| settings.acl.allows(a)),
        };
        if !allowed {
            // Closed at once, nothing said: an outsider learns nothing.
            metrics.dropped("leasequery_refused");
            tracing::debug!(%peer, "leasequery: connection from outside the ACL closed");
            continue;
        }
        let Some(slot) = take_slot(&counts, peer.ip(), &settings) else {
            metrics.dropped("leasequery_connection_limit");
            tracing::warn!(%peer, "leasequery: connection limit reached; closed");
            continue;
        };
        next_id += 1;
        let conn = Conn {
            id: next_id,
            peer,
            settings,
            tls: listener.tls.clone(),
            driver: driver.clone(),
            metrics: Arc::clone(&metrics),
        };
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.run(stream).await {
                tracing::debug!(%peer, error = %e, "leasequery: connection ended");
            }
        });
    }
}

/// Seconds since the Unix epoch, for the messages a connection writes itself (they carry no
/// time; the driver's answers carry its clock).
fn wall() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

struct Conn {
    id: u64,
    peer: SocketAddr,
    settings: LeasequerySettings,
    tls: Option<TlsAcceptor>,
    driver: mpsc::Sender<LqRequest>,
    metrics: Arc<Metrics>,
}

/// Reads one framed message; `Ok(None)` at a clean end of the stream.
async fn read_msg<S: AsyncRead + Unpin>(s: &mut S) -> anyhow::Result<Option<Packet>> {
    let len = match s.read_u16().await {
        Ok(n) => usize::from(n),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if len == 0 {
        return Err(anyhow!("zero-length message"));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    Packet::decode(&buf)
        .map(Some)
        .map_err(|m| anyhow!("malformed message: {}", m.label()))
}

impl Conn {
    fn cx(&self, server_id: Ipv4Addr) -> Context {
        Context {
            server_id,
            now: wall(),
            transport: Transport::Tcp,
        }
    }

    async fn write<S: AsyncWrite + Unpin>(&self, s: &mut S, p: &Packet) -> anyhow::Result<()> {
        let mut buf = Vec::with_capacity(576);
        p.encode(leased_wire::leasequery::MAX_FRAME, &mut buf);
        let framed = frame(&buf).ok_or_else(|| anyhow!("answer too long to frame"))?;
        tokio::time::timeout(self.settings.write_timeout, async {
            s.write_all(&framed).await?;
            s.flush().await
        })
        .await
        .map_err(|_| anyhow!("write stalled for {:?}", self.settings.write_timeout))??;
        Ok(())
    }

    async fn run(self, stream: TcpStream) -> anyhow::Result<()> {
        let server_id = match stream.local_addr()? {
            SocketAddr::V4(a) => *a.ip(),
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
        };
        let wait = self.settings.query_timeout;
        let mut first = [0u8; 1];
        let n = tokio::time::timeout(wait, stream.peek(&mut first))
            .await
            .map_err(|_| anyhow!("no query within {wait:?}"))??;
        if n == 0 {
            return Ok(());
        }
        if first[0] == HANDSHAKE_RECORD {
            let Some(tls) = self.tls.clone() else {
                return Err(anyhow!("TLS handshake without [leasequery.tls]"));
            };
            let s = tokio::time::timeout(wait, tls.accept(stream))
                .await
                .map_err(|_| anyhow!("TLS handshake took longer than {wait:?}"))??;
            return self.session(s, server_id, None).await;
        }
        let mut plain = stream;
        let first = tokio::time::timeout(wait, read_msg(&mut plain))
            .await
            .map_err(|_| anyhow!("no query within {wait:?}"))??;
        let Some(first) = first else { return Ok(()) };
        if lq::message_type(&first) == Some(msg::DHCPTLS) {
            let cx = self.cx(server_id);
            match self.tls.clone() {
                Some(tls) => {
                    self.write(&mut plain, &lq::tls_answer(first.xid, true, &cx))
                        .await?;
                    let s = tokio::time::timeout(wait, tls.accept(plain))
                        .await
                        .map_err(|_| anyhow!("TLS handshake took longer than {wait:?}"))??;
                    return self.session(s, server_id, None).await;
                }
                None => {
                    self.write(&mut plain, &lq::tls_answer(first.xid, false, &cx))
                        .await?;
                    return self.session(plain, server_id, None).await;
                }
            }
        }
        self.session(plain, server_id, Some(first)).await
    }

    /// Queries on one stream, in turn. `first`: a query already read in plaintext.
    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut s: S,
        server_id: Ipv4Addr,
        first: Option<Packet>,
    ) -> anyhow::Result<()> {
        let plaintext = first.is_some();
        let mut pending = first;
        loop {
            let q = match pending.take() {
                Some(q) => q,
                None => {
                    let wait = self.settings.query_timeout;
                    match tokio::time::timeout(wait, read_msg(&mut s)).await {
                        Err(_) => return Ok(()),
                        Ok(r) => match r? {
                            Some(q) => q,
                            None => return Ok(()),
                        },
                    }
                }
            };
            let cx = self.cx(server_id);
            if plaintext && !self.settings.allow_plaintext {
                self.metrics.dropped("leasequery_plaintext");
                let p = lq::status(q.xid, Status::NotAllowed, "TLS is required", &cx);
                self.write(&mut s, &p).await?;
                return Ok(());
            }
            match lq::message_type(&q) {
                Some(msg::BULKLEASEQUERY) => self.bulk(&mut s, &q, server_id).await?,
                Some(msg::ACTIVELEASEQUERY) => return self.active(&mut s, &q, server_id).await,
                _ => {
                    self.metrics.dropped("leasequery_malformed");
                    let p = lq::status(q.xid, Status::MalformedQuery, "not a TCP query", &cx);
                    self.write(&mut s, &p).await?;
                    return Ok(());
                }
            }
        }
    }

    /// One step from the driver; `None` once the driver is gone (shutdown).
    async fn step(
        &self,
        cursor: Box<Cursor>,
        server_id: Ipv4Addr,
        sub: Option<u64>,
    ) -> Option<(Box<Cursor>, Vec<Packet>)> {
        let (reply, rx) = oneshot::channel();
        self.driver
            .send(LqRequest::Step {
                cursor,
                server_id,
                sub,
                reply,
            })
            .await
            .ok()?;
        rx.await.ok()
    }

    /// Writes the catch-up (or the bulk answer) of `cursor`; false when the driver is gone.
    async fn walk<S: AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        mut cursor: Box<Cursor>,
        server_id: Ipv4Addr,
        sub: Option<u64>,
    ) -> anyhow::Result<bool> {
        loop {
            let Some((next, answers)) = self.step(cursor, server_id, sub).await else {
                return Ok(false);
            };
            for p in &answers {
                self.write(s, p).await?;
            }
            if next.finished() {
                return Ok(true);
            }
            cursor = next;
        }
    }

    async fn bulk<S: AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        q: &Packet,
        server_id: Ipv4Addr,
    ) -> anyhow::Result<()> {
        let parsed = match lq::parse(q, true) {
            Ok(p) => p,
            Err(r) => {
                self.metrics.dropped("leasequery_malformed");
                let p = lq::status(q.xid, r.status, r.label, &self.cx(server_id));
                return self.write(s, &p).await;
            }
        };
        tracing::info!(peer = %self.peer, query = ?parsed.query, "leasequery: bulk query");
        let done = if self
            .walk(s, Box::new(Cursor::new(parsed)), server_id, None)
            .await?
        {
            lq::done(q.xid, &self.cx(server_id))
        } else {
            lq::status(
                q.xid,
                Status::QueryTerminated,
                "server shutting down",
                &self.cx(server_id),
            )
        };
        self.write(s, &done).await
    }

    async fn active<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        q: &Packet,
        server_id: Ipv4Addr,
    ) -> anyhow::Result<()> {
        let parsed = match lq::parse(q, true) {
            Ok(p) => p,
            Err(r) => {
                self.metrics.dropped("leasequery_malformed");
                let p = lq::status(q.xid, r.status, r.label, &self.cx(server_id));
                return self.write(s, &p).await;
            }
        };
        tracing::info!(peer = %self.peer, start = ?parsed.window.start, "leasequery: active query");
        let (tx, mut rx) = mpsc::channel(self.settings.max_queued);
        let cut = Arc::new(AtomicBool::new(false));
        let subscribed = self
            .driver
            .send(LqRequest::Subscribe {
                id: self.id,
                xid: q.xid,
                server_id,
                tx,
                cut: Arc::clone(&cut),
            })
            .await
            .is_ok();
        let result = async {
            if !subscribed
                || !self
                    .walk(s, Box::new(Cursor::new(parsed)), server_id, Some(self.id))
                    .await?
            {
                let p = lq::done(q.xid, &self.cx(server_id));
                return self.write(s, &p).await;
            }
            let p = lq::status(
                q.xid,
                Status::CatchUpComplete,
                "catch-up complete",
                &self.cx(server_id),
            );
            self.write(s, &p).await?;
            let mut probe = [0u8; 1];
            loop {
                tokio::select! {
                    update = rx.recv() => match update {
                        Some(p) => self.write(s, &p).await?,
                        None if cut.load(Ordering::Acquire) => {
                            self.metrics.dropped("leasequery_slow_reader");
                            tracing::warn!(peer = %self.peer, "leasequery: active query fell behind; cut off");
                            let p = lq::status(q.xid, Status::DataMissing, "requestor too slow: changes dropped", &self.cx(server_id));
                            return self.write(s, &p).await;
                        }
                        None => {
                            let p = lq::done(q.xid, &self.cx(server_id));
                            return self.write(s, &p).await;
                        }
                    },
                    // The requestor ends an active query by closing (or by sending anything).
                    r = s.read(&mut probe) => {
                        let _ = r;
                        return Ok(());
                    }
                }
            }
        }
        .await;
        // The driver may be gone at shutdown; then there is nothing to unsubscribe from.
        let _ = self
            .driver
            .send(LqRequest::Unsubscribe { id: self.id })
            .await;
        result
    }
}
