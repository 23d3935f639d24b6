//! The log of `serve`, `relay` and `isc serve`: text or JSON lines, at the configured level
//! unless `RUST_LOG` says otherwise, written to one of:
//!
//! - stderr, for a person or a pipe (colours only at a terminal);
//! - the systemd journal, when stderr is the stream `JOURNAL_STREAM` names: no timestamp of our
//!   own (the journal stamps every line) and each line starts with its syslog priority, `<3>`
//!   error, `<4>` warning, `<6>` info, `<7>` debug (sd-daemon(3)), so `journalctl -p` works;
//! - `[logging] file`, appended to and reopened by name on SIGUSR1, so logrotate can move it
//!   away and signal.
//!
//! `serve` writes through [`Buffered`]: lines gather in memory and reach their target in large
//! writes from a thread of their own, so the engine never waits for a slow terminal or disk.

use std::fs::File;
use std::io::{IsTerminal, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use leased_config::{LogFormat, LogSettings};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Whether lines are buffered and written by a thread of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buffering {
    /// The server: many lines under load, none of which may hold up the engine.
    Thread,
    /// A quieter command: each line is written when logged.
    Direct,
}

/// The running log: keeps the writer thread until dropped (writing out what is buffered), and
/// the log file for SIGUSR1.
#[derive(Debug)]
pub(crate) struct Logging {
    _flush: Option<LogFlushGuard>,
    file: Option<Arc<LogFile>>,
}

/// Sets up logging as `settings` say; `hub` also gets every line as text (the live console).
pub(crate) fn init(
    settings: &LogSettings,
    hub: Option<Arc<crate::console::Hub>>,
    buffering: Buffering,
) -> anyhow::Result<Logging> {
    let file = match &settings.file {
        Some(path) => Some(Arc::new(LogFile::open(path)?)),
        None => None,
    };
    let target = match &file {
        Some(f) => Target::File(Arc::clone(f)),
        None => Target::Stderr,
    };
    // The journal stamps and prioritises lines itself; a file or a terminal needs our time.
    let style = if file.is_none() && stderr_is_journal() {
        Style::Journal
    } else if file.is_none()
        && std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
    {
        Style::Terminal
    } else {
        Style::Plain
    };
    let flush = match buffering {
        Buffering::Thread => {
            let (writer, guard) = Buffered::start(target);
            subscribe(settings, hub, style, writer)?;
            Some(guard)
        }
        Buffering::Direct => {
            subscribe(settings, hub, style, Direct(target))?;
            None
        }
    };
    Ok(Logging {
        _flush: flush,
        file,
    })
}

impl Logging {
    /// Reopens the log file on every SIGUSR1 (logrotate's `postrotate`). Installed even without
    /// a file: SIGUSR1's default action would end the process.
    pub(crate) fn reopen_on_sigusr1(
        &self,
        runtime: &tokio::runtime::Runtime,
    ) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered here, before returning, so a signal sent right after start is caught.
        let mut usr1 = {
            let _in = runtime.enter();
            signal(SignalKind::user_defined1()).context("installing the SIGUSR1 handler")?
        };
        let file = self.file.clone();
        runtime.spawn(async move {
            while usr1.recv().await.is_some() {
                match &file {
                    Some(f) => match f.reopen() {
                        Ok(()) => tracing::info!(path = %f.path.display(), "log file reopened"),
                        Err(e) => tracing::error!(
                            path = %f.path.display(), error = %e,
                            "cannot reopen the log file; still writing to the old one"
                        ),
                    },
                    None => tracing::debug!("SIGUSR1: no [logging] file to reopen"),
                }
            }
        });
        Ok(())
    }
}

/// How lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// A person at a terminal: timestamps and colours.
    Terminal,
    /// A pipe or a file: timestamps, no colours.
    Plain,
    /// The systemd journal: priority prefix, no timestamp, no colours.
    Journal,
}

/// True when stderr is the journal stream systemd connected (`JOURNAL_STREAM=dev:inode` names
/// the very file stderr is), as sd-daemon(3) says to check: a child that inherited the
/// variable but writes elsewhere must keep its own timestamps.
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    nix::sys::stat::fstat(std::io::stderr()).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

/// The syslog priority of a level (sd-daemon(3) prefixes).
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// An event format with the syslog priority in front of every line of the event (a message
/// that spans lines keeps its priority on each).
struct Prioritised<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritised<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut text = String::new();
        self.0.format_event(ctx, Writer::new(&mut text), event)?;
        let p = priority(*event.metadata().level());
        for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
            writeln!(writer, "<{p}>{line}")?;
        }
        Ok(())
    }
}

/// Installs the subscriber: the log through `writer`, plus the console's hub.
fn subscribe<W>(
    settings: &LogSettings,
    hub: Option<Arc<crate::console::Hub>>,
    style: Style,
    writer: W,
) -> anyhow::Result<()>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::fmt::{format, layer};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(&v).with_context(|| format!("bad RUST_LOG {v:?}"))?
        }
        _ => EnvFilter::try_new(&settings.level)
            .with_context(|| format!("bad [logging] level {:?}", settings.level))?,
    };
    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;
    let ansi = style == Style::Terminal;
    let main: Boxed = match (settings.format, style) {
        (LogFormat::Json, Style::Journal) => layer()
            .json()
            .with_writer(writer)
            .event_format(Prioritised(format().json().without_time()))
            .boxed(),
        (LogFormat::Json, _) => layer().json().with_writer(writer).boxed(),
        (LogFormat::Text, Style::Journal) => layer()
            .with_ansi(false)
            .with_writer(writer)
            .event_format(Prioritised(format().without_time()))
            .boxed(),
        (LogFormat::Text, _) => layer().with_ansi(ansi).with_writer(writer).boxed(),
    };
    let mut layers = vec![main];
    if let Some(hub) = hub {
        // The console shows text for people, whatever the log format.
        layers.push(
            layer()
                .with_ansi(false)
                .with_writer(crate::console::HubWriter(hub))
                .boxed(),
        );
    }
    tracing_subscriber::registry()
        .with(layers.with_filter(filter))
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// `[logging] file`: the open file, replaced by a fresh open of the same path on reopen.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn open_path(path: &Path) -> std::io::Result<File> {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)
    }

    /// Opens (creating it `0640` when missing) the log file for appending.
    fn open(path: &Path) -> anyhow::Result<Self> {
        let file = Self::open_path(path)
            .with_context(|| format!("cannot open [logging] file {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Opens the path again and writes there from now on (the old file was renamed away).
    fn reopen(&self) -> std::io::Result<()> {
        let fresh = Self::open_path(&self.path)?;
        *self.lock() = fresh;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where lines finally go.
#[derive(Debug, Clone)]
enum Target {
    Stderr,
    File(Arc<LogFile>),
}

impl Target {
    /// Writes `bytes` (errors are ignored, as the fmt layer's own writers ignore them: there is
    /// nowhere left to report them).
    fn write(&self, bytes: &[u8]) {
        match self {
            Self::Stderr => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(bytes);
                let _ = err.flush();
            }
            Self::File(f) => {
                let _ = f.lock().write_all(bytes);
            }
        }
    }
}

/// Unbuffered: each line written to its target when logged.
#[derive(Debug, Clone)]
struct Direct(Target);

/// One line on its way to a [`Direct`] target (the fmt layer writes each line with one
/// `write_all`, so a line is never split between two writes).
#[derive(Debug)]
struct DirectLine<'a>(&'a Target);

impl std::io::Write for DirectLine<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Direct {
    type Writer = DirectLine<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        DirectLine(&self.0)
    }
}

/// The longest a log line may wait in memory before the writer thread writes it out. Under load
/// this turns one `write(2)` per line into about twenty writes a second; when a burst of lines
/// ends (see [`LOG_QUIET`]) it is written at once; idle, the thread sleeps until the next line.
const LOG_FLUSH_DELAY: Duration = Duration::from_millis(50);

/// A chunk is written as soon as no new line has arrived for this long.
const LOG_QUIET: Duration = Duration::from_millis(2);

/// Past this many buffered bytes the logging thread itself writes them out at once (nothing is
/// ever dropped, and memory stays bounded whatever the log rate).
const LOG_BUFFER_MAX: usize = 256 * 1024;

/// Lines waiting for their target.
#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    /// The server is stopping: write what is left and end the writer thread.
    closed: bool,
}

/// The state shared by the loggers and the writer thread.
#[derive(Debug)]
struct LogShared {
    pending: Mutex<Pending>,
    /// Signalled when `pending` goes from empty to non-empty, or closes.
    wake: Condvar,
    /// Held while a chunk is taken out of `pending` and written, so chunks reach the target in
    /// the order their lines were logged.
    out: Mutex<()>,
    target: Target,
}

impl LogShared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves plain bytes behind: still worth writing.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes everything buffered so far to the target.
    fn drain(&self, spare: &mut Vec<u8>) {
        let _order = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        spare.clear();
        std::mem::swap(&mut self.pending().buf, spare);
        if !spare.is_empty() {
            self.target.write(spare);
        }
    }
}

/// The serve command's log writer: a `MakeWriter` whose lines are appended to a shared buffer
/// (a short uncontended lock per line) and written out by the `log-writer` thread in chunks:
/// when a burst goes quiet, at most [`LOG_FLUSH_DELAY`] after its first line. Lossless and in
/// order.
#[derive(Debug, Clone)]
struct Buffered(Arc<LogShared>);

/// Stops the writer thread and writes out what is buffered when dropped.
#[derive(Debug)]
struct LogFlushGuard {
    shared: Arc<LogShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Buffered {
    /// Starts the writer thread. Without a thread (the OS refused one) lines are written at
    /// once, as if unbuffered.
    fn start(target: Target) -> (Self, LogFlushGuard) {
        let shared = Arc::new(LogShared {
            pending: Mutex::default(),
            wake: Condvar::new(),
            out: Mutex::new(()),
            target,
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || Self::run(&worker))
            .ok();
        if thread.is_none() {
            shared.pending().closed = true;
        }
        let guard = LogFlushGuard {
            shared: Arc::clone(&shared),
            thread,
        };
        (Self(shared), guard)
    }

    fn run(shared: &LogShared) {
        let mut spare = Vec::new();
        loop {
            let closed = {
                let mut p = shared.pending();
                while p.buf.is_empty() && !p.closed {
                    p = shared.wake.wait(p).unwrap_or_else(PoisonError::into_inner);
                }
                p.closed
            };
            if closed {
                shared.drain(&mut spare);
                return;
            }
            // Let the lines of the next few milliseconds join this write: write as soon as the
            // burst goes quiet for LOG_QUIET (an idle server's lines appear at once), at the
            // latest LOG_FLUSH_DELAY after the first line (a busy server writes in big chunks).
            let started = Instant::now();
            let mut seen = shared.pending().buf.len();
            loop {
                std::thread::sleep(LOG_QUIET);
                let now = shared.pending().buf.len();
                if now == seen || started.elapsed() >= LOG_FLUSH_DELAY {
                    break;
                }
                seen = now;
            }
            shared.drain(&mut spare);
        }
    }
}

impl Drop for LogFlushGuard {
    fn drop(&mut self) {
        self.shared.pending().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Lines logged after the thread ended (or with no thread at all).
        self.shared.drain(&mut Vec::new());
    }
}

/// One log line's way into the buffer (the fmt layer writes each line with one `write_all`).
#[derive(Debug)]
struct LineSink<'a>(&'a LogShared);

impl std::io::Write for LineSink<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let (first, full, closed) = {
            let mut p = self.0.pending();
            p.buf.extend_from_slice(b);
            (
                p.buf.len() == b.len(),
                p.buf.len() >= LOG_BUFFER_MAX,
                p.closed,
            )
        };
        if closed || full {
            self.0.drain(&mut Vec::new());
        } else if first {
            self.0.wake.notify_one();
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffered {
    type Writer = LineSink<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LineSink(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_sd_daemon() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
        assert_eq!(priority(Level::TRACE), 7);
    }

    #[test]
    fn reopen_follows_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.log");
        let f = LogFile::open(&path).unwrap();
        let _ = f.lock().write_all(b"one\n");
        std::fs::rename(&path, dir.path().join("l.log.1")).unwrap();
        let _ = f.lock().write_all(b"two\n");
        f.reopen().unwrap();
        let _ = f.lock().write_all(b"three\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("l.log.1")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o007, 0, "no access for others: {mode:o}");
    }
}
