//! The edge of every TCP listener leased serves (the HTTP API, its redirect listener, `leased
//! isc serve`, the console): how many connections may be open at once, and how long one may
//! sit still.
//!
//! Why: every open connection holds a file descriptor and a task. Without a cap and a clock,
//! a few hundred half-open or silent connections use up the process's descriptors, and then
//! a reload, a history write or a lease file write fails. So each listener has a [`Gate`] (a
//! semaphore: a connection over the limit is closed at once, the ones already in are not
//! touched), and each connection is a [`Guarded`] stream that fails a read or write which has
//! waited [`ConnLimits::idle_timeout`] with no byte moving. The HTTP-level clocks (headers,
//! whole request) are hyper's and tower-http's, set up in [`crate::serve_http`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use leased_config::ApiSettings;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Pending connections the kernel queues for a listener before the accept loop takes them: a
/// burst of connections waits there instead of having its SYNs dropped.
pub const LISTEN_BACKLOG: i32 = 1024;

/// How often a listener says that it is refusing connections (with the count since the last
/// line), so that a flood of refusals cannot flood the log.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The clocks and the cap of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// A request's headers must be in within this (also the TLS handshake's limit, and how
    /// long a kept-alive connection may wait for its next request).
    pub header_timeout: Duration,
    /// From headers in to answer out; later the answer is 408.
    pub request_timeout: Duration,
    /// A read or write that waits this long with no byte moving fails the connection.
    pub idle_timeout: Duration,
    /// Connections at once; one more is closed at once.
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_timeout: leased_config::DEFAULT_HEADER_TIMEOUT,
            request_timeout: leased_config::DEFAULT_REQUEST_TIMEOUT,
            idle_timeout: leased_config::DEFAULT_IDLE_TIMEOUT,
            max_connections: leased_config::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConnLimits {
    /// The limits `[api]` configures.
    pub fn of(settings: &ApiSettings) -> ConnLimits {
        ConnLimits {
            header_timeout: settings.header_timeout,
            request_timeout: settings.request_timeout,
            idle_timeout: settings.idle_timeout,
            max_connections: settings.max_connections,
        }
    }
}

/// Binds a TCP listener with a deep backlog ([`LISTEN_BACKLOG`]), non-blocking, ready for
/// tokio.
pub fn listen_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Counts events that deserve a log line and lets one through at most every `every`, with
/// the count since the last: an attacker who can cause the event cannot flood the log.
#[derive(Debug)]
pub struct LogThrottle {
    every: Duration,
    since_log: AtomicU64,
    next_log: Mutex<Option<Instant>>,
}

impl LogThrottle {
    /// At most one line every `every`.
    pub fn new(every: Duration) -> LogThrottle {
        LogThrottle {
            every,
            since_log: AtomicU64::new(0),
            next_log: Mutex::new(None),
        }
    }

    /// Counts one event; `Some(n)` when a line is due now, `n` the events since the last one
    /// (this one included).
    pub fn hit(&self) -> Option<u64> {
        self.since_log.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut next = self.next_log.lock().unwrap_or_else(|p| p.into_inner());
        if next.is_none_or(|t| now >= t) {
            *next = Some(now + self.every);
            Some(self.since_log.swap(0, Ordering::Relaxed))
        } else {
            None
        }
    }
}

/// One listener's connection slots.
#[derive(Debug, Clone)]
pub struct Gate {
    slots: Arc<Semaphore>,
    max: usize,
    what: &'static str,
    refusals: Arc<LogThrottle>,
}

impl Gate {
    /// `max` slots for the listener named `what` (in log lines).
    pub fn new(max: usize, what: &'static str) -> Gate {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Gate {
            slots: Arc::new(Semaphore::new(max)),
            max,
            what,
            refusals: Arc::new(LogThrottle::new(REFUSAL_LOG_EVERY)),
        }
    }

    /// A slot for a new connection, held until the connection is dropped; `None` when every
    /// slot is taken (the caller closes the connection; a line is logged now and then).
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                self.refused();
                None
            }
        }
    }

    /// Slots in use now.
    pub fn in_use(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    fn refused(&self) {
        if let Some(n) = self.refusals.hit() {
            tracing::warn!(
                listener = self.what,
                max_connections = self.max,
                refused = n,
                "{}: {n} connection(s) closed at once: max_connections ({}) are open",
                self.what,
                self.max
            );
        }
    }
}

/// A connection with its [`Gate`] slot and its idle clock: a read, write, flush or shutdown
/// that is still waiting `idle` after the last byte moved (either way) fails with
/// `TimedOut`, and the connection's owner drops it. Nothing waiting, nothing fails: a console
/// viewer of a quiet server is not idle in this sense.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    _slot: Option<OwnedSemaphorePermit>,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    /// Wraps `inner`, holding `slot` for as long as the connection lives.
    pub fn new(inner: S, slot: Option<OwnedSemaphorePermit>, idle: Duration) -> Guarded<S> {
        let last = Instant::now();
        Guarded {
            inner,
            _slot: slot,
            idle,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + idle)),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn moved(&mut self) {
        self.last = Instant::now();
    }

    /// Called while an operation is pending: `Ready(error)` once nothing has moved for
    /// `idle`, else arms the timer to wake the task then.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = self.last + self.idle;
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no byte moved for {} s", self.idle.as_secs()),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

/// axum-server's acceptor in front of the others: takes a [`Gate`] slot (none left: the
/// connection is dropped, so closed, before any byte is read) and wraps the stream in
/// [`Guarded`] before the inner acceptor (TLS or none) sees it.
#[derive(Debug, Clone)]
pub struct LimitAcceptor<A> {
    gate: Gate,
    idle: Duration,
    inner: A,
}

impl<A> LimitAcceptor<A> {
    /// `inner` behind `gate`, each connection with `idle` as its idle limit.
    pub fn new(gate: Gate, idle: Duration, inner: A) -> Self {
        LimitAcceptor { gate, idle, inner }
    }
}

/// The acceptor's future: refused at once, or the inner acceptor's.
#[derive(Debug)]
pub enum AcceptFuture<F> {
    /// Over the limit: the connection is already dropped.
    Refused(Option<io::Error>),
    /// Admitted: the inner acceptor's future.
    Admitted(Pin<Box<F>>),
}

impl<F, T> Future for AcceptFuture<F>
where
    F: Future<Output = io::Result<T>>,
{
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            AcceptFuture::Refused(e) => Poll::Ready(Err(e
                .take()
                .unwrap_or_else(|| io::Error::other("max_connections reached")))),
            AcceptFuture::Admitted(f) => f.as_mut().poll(cx),
        }
    }
}

impl<A, S> axum_server::accept::Accept<tokio::net::TcpStream, S> for LimitAcceptor<A>
where
    A: axum_server::accept::Accept<Guarded<tokio::net::TcpStream>, S>,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = AcceptFuture<A::Future>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        match self.gate.admit() {
            Some(slot) => AcceptFuture::Admitted(Box::pin(
                self.inner
                    .accept(Guarded::new(stream, Some(slot), self.idle), service),
            )),
            None => {
                drop(stream);
                AcceptFuture::Refused(Some(io::Error::other("max_connections reached")))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn gate_admits_up_to_its_max() {
        let gate = Gate::new(2, "test");
        let a = gate.admit().unwrap();
        let _b = gate.admit().unwrap();
        assert!(gate.admit().is_none());
        assert_eq!(gate.in_use(), 2);
        drop(a);
        assert!(gate.admit().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_log_throttle_counts_between_lines() {
        let t = LogThrottle::new(Duration::from_secs(10));
        assert_eq!(t.hit(), Some(1));
        assert_eq!(t.hit(), None);
        assert_eq!(t.hit(), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(t.hit(), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out_and_traffic_resets_the_clock() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut g = Guarded::new(a, None, Duration::from_secs(5));
        // Bytes every 3 s keep it alive past 5 s.
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(3)).await;
            b.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            g.read_exact(&mut one).await.unwrap();
        }
        let t0 = Instant::now();
        let mut one = [0u8; 1];
        let e = g.read_exact(&mut one).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_times_out_the_writer() {
        let (a, _b) = tokio::io::duplex(16);
        let mut g = Guarded::new(a, None, Duration::from_secs(7));
        let e = g.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
