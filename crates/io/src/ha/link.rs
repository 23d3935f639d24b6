//! The partner link's transport: one TCP connection (TLS with `[ha.tls]`) carrying
//! [`PartnerMessage`] frames (see `frames`), kept up with reconnects and back-off.
//!
//! Who connects: the primary dials the partner's `url`, the other server listens on its own,
//! so there is never more than one link to reconcile. The listener takes connections only
//! from the partner's configured address, runs at most [`MAX_OPENINGS`] openings at once,
//! each within [`OPENING_TIMEOUT`], and a link that authenticates replaces the previous one
//! (the partner restarted and the old connection may not have noticed yet).
//!
//! The driver learns everything as [`LinkEvent`]s, each tagged with the connection it is
//! about, and sends frames on the connection it was told is up: a frame meant for an old
//! connection can never reach a new one before its hello.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leased_ha::{DecodeError, PartnerMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::frames::{self, FrameReader, FrameWriter, LinkError, Side};
use super::tls::LinkTls;

/// Openings (TCP accepted, not yet authenticated) handled at once; more are closed at once.
pub(crate) const MAX_OPENINGS: usize = 4;
/// How long an opening (TLS handshake, key proof) may take.
pub(crate) const OPENING_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames queued for one connection; a partner that reads slower than this is cut off (the
/// state machine then sees the link down and stops waiting for it).
pub(crate) const SEND_QUEUE: usize = 4_096;
/// Reconnect back-off: from the first to the last, doubling, with ±25 % jitter.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_LAST: Duration = Duration::from_secs(5);
/// A refused opening is logged at most this often (a wrong key is retried with every dial).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(30);

/// What the transport saw, for the driver.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A link is up and authenticated: frames for it go to `tx`.
    Up {
        /// This connection.
        id: u64,
        /// Its send queue (bounded, [`SEND_QUEUE`]).
        tx: mpsc::Sender<Vec<u8>>,
        /// The partner's address.
        peer: SocketAddr,
    },
    /// A message arrived on connection `id`.
    Message {
        /// The connection.
        id: u64,
        /// The message.
        msg: PartnerMessage,
    },
    /// Bytes that are no message (another codec version, garbage) arrived; the link is closed.
    Undecodable {
        /// The connection.
        id: u64,
        /// Why.
        error: DecodeError,
    },
    /// Connection `id` is gone.
    Down {
        /// The connection.
        id: u64,
        /// Why, for the log.
        why: String,
    },
}

/// Where and how the link runs.
#[derive(Debug, Clone)]
pub(crate) struct LinkParams {
    /// This server's `url`: the listener's address, and the dialer's source address.
    pub me: SocketAddr,
    /// The partner's `url`.
    pub partner: SocketAddr,
    /// True on the primary: it dials; the other listens.
    pub dial: bool,
    /// `[ha.tls]`, loaded.
    pub tls: Option<LinkTls>,
    /// `[ha] shared_key`.
    pub key: Option<Vec<u8>>,
}

/// A task aborted when its handle is dropped, so a connection's halves never outlive it.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The running link; dropping it stops the transport and closes the connection.
pub(crate) struct Link {
    _task: AbortOnDrop,
}

/// Binds the listener (when this server listens) now, so a taken port fails start-up, and
/// starts the transport.
pub(crate) fn start(params: LinkParams, events: mpsc::Sender<LinkEvent>) -> anyhow::Result<Link> {
    let listener = if params.dial {
        None
    } else {
        let std = std::net::TcpListener::bind(params.me).map_err(|e| {
            anyhow::anyhow!("[ha] cannot listen on {} for the partner: {e}", params.me)
        })?;
        std.set_nonblocking(true)?;
        Some(TcpListener::from_std(std)?)
    };
    let task = tokio::spawn(run(Arc::new(params), listener, events));
    Ok(Link {
        _task: AbortOnDrop(task),
    })
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Reader = FrameReader<tokio::io::ReadHalf<Box<dyn Io>>>;
type Writer = FrameWriter<tokio::io::BufWriter<tokio::io::WriteHalf<Box<dyn Io>>>>;

/// An authenticated connection, from an opening task to the link loop.
struct Opened {
    reader: Reader,
    writer: Writer,
    peer: SocketAddr,
}

/// The outcome of one opening: whether it came from a dial (which then must be retried).
type OpeningDone = (bool, Result<Opened, (SocketAddr, LinkError)>);

async fn run(p: Arc<LinkParams>, listener: Option<TcpListener>, events: mpsc::Sender<LinkEvent>) {
    let (opened_tx, mut opened_rx) = mpsc::channel::<OpeningDone>(MAX_OPENINGS + 1);
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel::<u64>();
    let openings = Arc::new(Semaphore::new(MAX_OPENINGS));
    let mut current: Option<(u64, AbortOnDrop)> = None;
    let mut next_id = 0u64;
    let mut backoff = BACKOFF_FIRST;
    let mut dialing = false;
    let mut dial_at = tokio::time::Instant::now();
    let mut refusals = RefusalLog::default();
    loop {
        let may_dial = p.dial && current.is_none() && !dialing;
        tokio::select! {
            accepted = accept(listener.as_ref()) => {
                let Ok((tcp, peer)) = accepted else { continue };
                if !partner_address(&p, peer.ip()) {
                    refusals.note(peer, &format!(
                        "a connection from {} (not the partner's address {})",
                        peer.ip(), p.partner.ip()
                    ));
                    continue;
                }
                let Ok(permit) = Arc::clone(&openings).try_acquire_owned() else {
                    continue;
                };
                let p = Arc::clone(&p);
                let tx = opened_tx.clone();
                tokio::spawn(async move {
                    let r = open_accepted(&p, tcp, peer).await.map_err(|e| (peer, e));
                    drop(permit);
                    let _ = tx.send((false, r)).await;
                });
            }
            _ = tokio::time::sleep_until(dial_at), if may_dial => {
                dialing = true;
                let p = Arc::clone(&p);
                let tx = opened_tx.clone();
                tokio::spawn(async move {
                    let r = dial(&p).await.map_err(|e| (p.partner, e));
                    let _ = tx.send((true, r)).await;
                });
            }
            Some((from_dial, r)) = opened_rx.recv() => {
                if from_dial {
                    dialing = false;
                }
                match r {
                    Ok(o) => {
                        backoff = BACKOFF_FIRST;
                        refusals.clear();
                        next_id += 1;
                        let id = next_id;
                        let (tx, rx) = mpsc::channel(SEND_QUEUE);
                        if events.send(LinkEvent::Up { id, tx, peer: o.peer }).await.is_err() {
                            return;
                        }
                        let task = tokio::spawn(connection(
                            id, o.reader, o.writer, rx, events.clone(), closed_tx.clone(),
                        ));
                        // A previous link, if any, ends here (the driver already moved on).
                        current = Some((id, AbortOnDrop(task)));
                    }
                    Err((peer, e)) => {
                        match e {
                            LinkError::Io(_) | LinkError::Timeout if from_dial => {
                                refusals.note_unreachable(peer, &e.to_string());
                            }
                            e => refusals.note(peer, &e.to_string()),
                        }
                        if from_dial {
                            dial_at = tokio::time::Instant::now() + jitter(backoff);
                            backoff = (backoff * 2).min(BACKOFF_LAST);
                        }
                    }
                }
            }
            Some(id) = closed_rx.recv() => {
                if current.as_ref().is_some_and(|(c, _)| *c == id) {
                    current = None;
                    dial_at = tokio::time::Instant::now() + jitter(backoff);
                    backoff = (backoff * 2).min(BACKOFF_LAST);
                }
            }
        }
    }
}

/// Accepts on the listener, or waits forever when this server dials.
async fn accept(l: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Only the partner's configured address may open a link (any, if it is unspecified).
fn partner_address(p: &LinkParams, ip: IpAddr) -> bool {
    let want = p.partner.ip();
    want.is_unspecified() || want == ip
}

/// `d` ±25 %, from the clock's low bits: two servers retrying at once drift apart.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let quarter = d / 4;
    let span = (quarter * 2).as_nanos().max(1) as u64;
    d - quarter + Duration::from_nanos(u64::from(nanos) % span)
}

async fn dial(p: &LinkParams) -> Result<Opened, LinkError> {
    let sock = TcpSocket::new_v4()?;
    if !p.me.ip().is_unspecified() {
        // From this server's own address: the partner's listener checks it.
        sock.bind(SocketAddr::new(p.me.ip(), 0))?;
    }
    let tcp = tokio::time::timeout(OPENING_TIMEOUT, sock.connect(p.partner))
        .await
        .map_err(|_| LinkError::Timeout)??;
    let peer = tcp.peer_addr()?;
    tokio::time::timeout(OPENING_TIMEOUT, authenticate(p, tcp, Side::Dialer, peer))
        .await
        .map_err(|_| LinkError::Timeout)?
}

async fn open_accepted(
    p: &LinkParams,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Result<Opened, LinkError> {
    tokio::time::timeout(OPENING_TIMEOUT, authenticate(p, tcp, Side::Acceptor, peer))
        .await
        .map_err(|_| LinkError::Timeout)?
}

async fn authenticate(
    p: &LinkParams,
    tcp: TcpStream,
    side: Side,
    peer: SocketAddr,
) -> Result<Opened, LinkError> {
    tcp.set_nodelay(true)?;
    let stream: Box<dyn Io> = match (&p.tls, side) {
        (Some(tls), Side::Dialer) => Box::new(tls.connect(tcp).await?),
        (Some(tls), Side::Acceptor) => Box::new(tls.accept(tcp).await?),
        (None, _) => Box::new(tcp),
    };
    let (reader, writer) = frames::open(stream, side, p.key.as_deref()).await?;
    Ok(Opened {
        reader,
        writer,
        peer,
    })
}

/// One connection: its reader and writer, until either ends; then the driver and the link
/// loop hear of it.
async fn connection(
    id: u64,
    mut reader: Reader,
    mut writer: Writer,
    mut rx: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<LinkEvent>,
    closed: mpsc::UnboundedSender<u64>,
) {
    let to_driver = events.clone();
    let mut read = AbortOnDrop(tokio::spawn(async move {
        loop {
            match reader.read().await {
                Ok(Some(bytes)) if bytes.is_empty() => {}
                Ok(Some(bytes)) => {
                    let ev = match PartnerMessage::decode(&bytes) {
                        Ok(msg) => LinkEvent::Message { id, msg },
                        Err(error) => LinkEvent::Undecodable { id, error },
                    };
                    let stop = matches!(ev, LinkEvent::Undecodable { .. });
                    if to_driver.send(ev).await.is_err() || stop {
                        return;
                    }
                }
                Ok(None) => {
                    let _ = to_driver
                        .send(LinkEvent::Down {
                            id,
                            why: "the partner closed the link".into(),
                        })
                        .await;
                    return;
                }
                Err(e) => {
                    let _ = to_driver
                        .send(LinkEvent::Down {
                            id,
                            why: e.to_string(),
                        })
                        .await;
                    return;
                }
            }
        }
    }));
    let write = async {
        while let Some(first) = rx.recv().await {
            writer.write(&first).await?;
            while let Ok(more) = rx.try_recv() {
                writer.write(&more).await?;
            }
            writer.flush().await?;
        }
        writer.shutdown().await;
        Ok::<_, LinkError>("closed by this server".to_string())
    };
    let why = tokio::select! {
        _ = &mut read.0 => None,
        w = write => Some(match w {
            Ok(why) => why,
            Err(e) => e.to_string(),
        }),
    };
    if let Some(why) = why {
        let _ = events.send(LinkEvent::Down { id, why }).await;
    }
    let _ = closed.send(id);
}

/// Logs refused openings, each distinct reason at most every [`REFUSAL_LOG_EVERY`].
#[derive(Default)]
struct RefusalLog {
    last: Option<(String, Instant)>,
}

impl RefusalLog {
    fn note(&mut self, peer: SocketAddr, why: &str) {
        self.say(peer, why, "HA partner link refused");
    }

    fn note_unreachable(&mut self, peer: SocketAddr, why: &str) {
        self.say(peer, why, "HA partner unreachable");
    }

    fn say(&mut self, peer: SocketAddr, why: &str, what: &str) {
        let now = Instant::now();
        let quiet = self
            .last
            .as_ref()
            .is_some_and(|(w, at)| w == why && now.duration_since(*at) < REFUSAL_LOG_EVERY);
        if !quiet {
            tracing::warn!(peer = %peer, "{what}: {why}");
            self.last = Some((why.to_owned(), now));
        }
    }

    fn clear(&mut self) {
        self.last = None;
    }
}
