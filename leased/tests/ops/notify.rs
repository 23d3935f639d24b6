//! The service manager's side of sd_notify(3), for tests of `leased serve` and `leased relay`
//! under a `NOTIFY_SOCKET`: a datagram socket that records every message.
#![allow(dead_code)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The service manager's side of sd_notify: every datagram, with when it came.
pub struct Manager {
    sock: UnixDatagram,
    /// The socket's path, for `NOTIFY_SOCKET`.
    pub path: PathBuf,
    /// Every message so far.
    pub seen: Vec<(Instant, String)>,
}

impl Manager {
    pub fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Self {
            sock,
            path,
            seen: Vec::new(),
        }
    }

    /// The next datagram within `limit`.
    pub fn next(&mut self, limit: Duration) -> Option<String> {
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        while t0.elapsed() < limit {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push((Instant::now(), m.clone()));
                return Some(m);
            }
        }
        None
    }

    /// The next datagram other than a watchdog ping, within `limit`.
    pub fn next_state(&mut self, limit: Duration) -> Option<String> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            match self.next(limit.saturating_sub(t0.elapsed())) {
                Some(m) if m == "WATCHDOG=1\n" => {}
                other => return other,
            }
        }
        None
    }

    /// Waits for a datagram that has `needle`.
    pub fn wait_for(&mut self, limit: Duration, needle: &str) -> Option<String> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            match self.next(limit.saturating_sub(t0.elapsed())) {
                Some(m) if m.contains(needle) => return Some(m),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    /// Watchdog pings received within the next `d`.
    pub fn pings_within(&mut self, d: Duration) -> usize {
        let t0 = Instant::now();
        let mut n = 0;
        while t0.elapsed() < d {
            if let Some(m) = self.next(d.saturating_sub(t0.elapsed()))
                && m == "WATCHDOG=1\n"
            {
                n += 1;
            }
        }
        n
    }

    pub fn all(&self) -> String {
        self.seen
            .iter()
            .map(|(_, m)| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
