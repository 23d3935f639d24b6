//! Telling a service manager (systemd `Type=notify`, sd_notify(3)) what the server is doing:
//! `READY=1` once every socket is bound and the store is loaded, `RELOADING=1` (with
//! `MONOTONIC_USEC`, as systemd ≥ 253 requires) and `READY=1` around a reload, `STOPPING=1`,
//! a one-line `STATUS=`, and the watchdog (`WATCHDOG=1`). Without `NOTIFY_SOCKET` in the
//! environment nothing is sent.
//!
//! Why the watchdog is fed from the engine task and not from a timer: a timer task (or thread)
//! keeps pinging while the engine is wedged, so the service manager would never restart it.
//! [`fed`] wraps the engine's future: every time a poll of it returns, the engine has just run
//! its loop (decided the packets it had, or run its once-a-second expiry timer), and only then
//! is the watchdog pinged (at most every quarter of `WATCHDOG_USEC`). An engine stuck inside a
//! poll (a deadlock, an endless loop, a blocking call) or never polled again (a starved
//! runtime, or a wait outside its loop that never ends) stops the pings, and systemd restarts
//! the service after `WatchdogSec`. The relay has no single engine: each of its receive loops
//! beats into a [`Heartbeats`], and the watchdog is pinged only while every loop beats.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// How often the one-line `STATUS=` is refreshed while serving.
pub(crate) const STATUS_EVERY: Duration = Duration::from_secs(5);

/// True when a service manager listens (`NOTIFY_SOCKET` is set).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends `states` in one datagram. A manager that went away is not worth more than one warning.
fn send(states: &[NotifyState<'_>]) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = sd_notify::notify(states)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// `STATUS=` text: one line, as systemd shows it.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Start-up is complete: sockets bound, store loaded, root dropped.
pub(crate) fn ready(status: &str) {
    let status = one_line(status);
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// A reload begins. `MONOTONIC_USEC` lets systemd ≥ 253 tell this reload from an older one.
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// A reload ended (whether the new config was taken or the old one kept: either way the
/// server serves again).
pub(crate) fn reloaded(status: &str) {
    let status = one_line(status);
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Shutdown begins.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// A new one-line status.
pub(crate) fn status(text: &str) {
    let text = one_line(text);
    send(&[NotifyState::Status(&text)]);
}

/// The watchdog the service manager asked for (`WATCHDOG_USEC`, meant for this process when
/// `WATCHDOG_PID` names it or is unset).
#[derive(Debug)]
pub(crate) struct Watchdog {
    every: Duration,
    last: Option<Instant>,
}

impl Watchdog {
    /// `None` when no watchdog is asked for (or it is meant for another process).
    pub(crate) fn from_env() -> Option<Self> {
        if !enabled() {
            return None;
        }
        let limit = sd_notify::watchdog_enabled().filter(|d| !d.is_zero())?;
        if limit < Duration::from_secs(2) {
            tracing::warn!(
                watchdog = ?limit,
                "WatchdogSec is under 2 s: the engine wakes only once a second when idle, so a \
                 healthy server may be restarted; use 10 s or more"
            );
        }
        Some(Self {
            every: limit / 4,
            last: None,
        })
    }

    /// Pings when a quarter of the watchdog interval has passed since the last ping.
    pub(crate) fn pet(&mut self) {
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= self.every)
        {
            self.last = Some(now);
            send(&[NotifyState::Watchdog]);
        }
    }
}

/// `fut`, pinging the watchdog each time a poll of it returns (see the module docs).
pub(crate) fn fed<F: Future>(fut: F) -> Fed<F> {
    Fed {
        inner: Box::pin(fut),
        dog: Watchdog::from_env(),
    }
}

/// See [`fed`].
pub(crate) struct Fed<F> {
    inner: Pin<Box<F>>,
    dog: Option<Watchdog>,
}

impl<F: Future> Future for Fed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let out = self.inner.as_mut().poll(cx);
        if let Some(dog) = &mut self.dog {
            dog.pet();
        }
        out
    }
}

/// How often each watched loop beats when it has nothing else to do.
pub(crate) const BEAT_EVERY: Duration = Duration::from_secs(1);

/// Watchdog for several loops that must all be alive: each beats with its index, and the
/// watchdog is pinged only while every loop has beaten within the last few [`BEAT_EVERY`].
#[derive(Debug)]
pub(crate) struct Heartbeats {
    started: Instant,
    /// Milliseconds since `started` of each loop's last beat (0: not yet).
    seen: Vec<AtomicU64>,
    dog: Option<Mutex<Watchdog>>,
}

impl Heartbeats {
    /// Heartbeats for `loops` loops, with the watchdog from the environment.
    pub(crate) fn new(loops: usize) -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            seen: (0..loops).map(|_| AtomicU64::new(0)).collect(),
            dog: Watchdog::from_env().map(Mutex::new),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Loop `i` is alive; pings the watchdog when every loop is.
    pub(crate) fn beat(&self, i: usize) {
        let Some(dog) = &self.dog else { return };
        let now = self.now_ms();
        if let Some(slot) = self.seen.get(i) {
            slot.store(now, Ordering::Relaxed);
        }
        let window = u64::try_from((BEAT_EVERY * 3).as_millis()).unwrap_or(u64::MAX);
        let all = self.seen.iter().all(|s| {
            let t = s.load(Ordering::Relaxed);
            t != 0 && now.saturating_sub(t) <= window
        });
        if all {
            dog.lock().unwrap_or_else(|p| p.into_inner()).pet();
        }
    }
}

/// A task that refreshes `STATUS=` every [`STATUS_EVERY`] with `line(seconds since the last
/// refresh)`; stops when dropped.
pub(crate) struct StatusTask(Option<tokio::task::JoinHandle<()>>);

impl StatusTask {
    /// Starts the task when a service manager listens.
    pub(crate) fn spawn(mut line: impl FnMut(f64) -> String + Send + 'static) -> Self {
        if !enabled() {
            return Self(None);
        }
        Self(Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(STATUS_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut last = Instant::now();
            loop {
                tick.tick().await;
                let secs = last.elapsed().as_secs_f64().max(0.001);
                last = Instant::now();
                status(&line(secs));
            }
        })))
    }
}

impl Drop for StatusTask {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// `leased serve` is ready: says so with a first status (the interfaces and the leases loaded),
/// then keeps the status fresh until the returned task is dropped.
pub(crate) fn serving(
    out: &crate::send::Outbound,
    loaded: usize,
    metrics: &Arc<crate::Metrics>,
    shared: Option<Arc<crate::SharedState>>,
) -> StatusTask {
    if !enabled() {
        return StatusTask(None);
    }
    let names: Vec<&str> = out.links.iter().map(|l| l.name.as_str()).collect();
    ready(&format!(
        "serving on {}; {loaded} leases loaded",
        names.join(", ")
    ));
    StatusTask::spawn(serve_status(Arc::clone(metrics), shared))
}

/// The server's one-line status: active leases (from the published snapshot, when there is
/// one) and the request and ACK rates since the previous line.
pub(crate) fn serve_status(
    metrics: Arc<crate::Metrics>,
    shared: Option<Arc<crate::SharedState>>,
) -> impl FnMut(f64) -> String + Send + 'static {
    let totals = move || {
        let snap = metrics.snapshot();
        let sum = |prefix: &str| -> u64 {
            snap.iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(_, v)| *v)
                .sum()
        };
        (sum("received."), sum("sent.ACK"))
    };
    let mut before = totals();
    move |secs| {
        let now = totals();
        let rate = |a: u64, b: u64| {
            // Counts far below 2^52: the conversion is exact enough for a status line.
            #[allow(clippy::cast_precision_loss)]
            let r = a.saturating_sub(b) as f64 / secs;
            r
        };
        let requests = rate(now.0, before.0);
        let acks = rate(now.1, before.1);
        before = now;
        let leases = shared.as_ref().map(|s| {
            let snap = s.leases();
            snap.leases
                .iter()
                .filter(|l| l.state == leased_core::LeaseState::Bound && l.expires > snap.taken_at)
                .count()
        });
        match leases {
            Some(n) => format!(
                "{n} active leases; {requests:.1} requests/s, {acks:.1} ACKs/s; {} requests since start",
                now.0
            ),
            None => format!(
                "{requests:.1} requests/s, {acks:.1} ACKs/s; {} requests since start",
                now.0
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }

    #[test]
    fn watchdog_pets_at_most_every_quarter() {
        let mut dog = Watchdog {
            every: Duration::from_secs(3600),
            last: None,
        };
        dog.pet();
        let first = dog.last;
        assert!(first.is_some());
        dog.pet();
        assert_eq!(
            dog.last, first,
            "a second pet within the interval sends nothing"
        );
    }

    #[test]
    fn heartbeats_need_every_loop() {
        let h = Heartbeats {
            started: Instant::now(),
            seen: (0..2).map(|_| AtomicU64::new(0)).collect(),
            dog: Some(Mutex::new(Watchdog {
                every: Duration::ZERO,
                last: None,
            })),
        };
        let pinged = |h: &Heartbeats| h.dog.as_ref().unwrap().lock().unwrap().last.is_some();
        h.beat(0);
        assert!(!pinged(&h), "loop 1 has not beaten yet");
        h.beat(1);
        assert!(pinged(&h));
    }
}
