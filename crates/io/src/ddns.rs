//! The DNS update driver: lease events in (from the engine's driver, like billing and
//! history), [`leased_ddns::Ddns`] decides, this task sends its messages over UDP (TCP when an
//! answer was truncated), feeds back answers and timeouts, and keeps the machine's durable
//! queue in a [`KeyedFile`] beside the lease store. Every record is synced before the message
//! that depends on it leaves, so an update accepted is made even across a restart.
//!
//! The engine's driver never waits for DNS: it hands each event over a bounded channel with
//! `try_send` (a full channel is logged and the event dropped, as the other sinks do).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use leased_config::{DdnsSettings, TsigAlgorithm};
use leased_ddns::{Binding, ChangeKind, Ddns, Key, Persist, Report, Settings, Transmit, Zones};
use leased_engine::{LeaseEvent, LeaseEventKind};
use leased_store::KeyedFile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::loaded::Current;

/// The tracing target of DDNS lines.
const TARGET: &str = "leased::ddns";
/// Lease events waiting for the DDNS task at most.
const CHANNEL: usize = 4096;
/// Names remembered for later removal at most (one per address with a name in DNS).
const NAMES_LIMIT: usize = 262_144;
/// The largest DNS message read (over TCP its length prefix says; UDP answers are small).
const MAX_MESSAGE: usize = 65_535;

/// The engine driver's side: where lease events go.
#[derive(Debug, Clone)]
pub(crate) struct DdnsSink(mpsc::Sender<Binding>);

impl DdnsSink {
    /// Hands `ev` to the DDNS task when it is a binding change; never waits.
    pub(crate) fn lease_event(&self, ev: &LeaseEvent) {
        let kind = match ev.kind {
            LeaseEventKind::AckNew => ChangeKind::Bound,
            LeaseEventKind::Renew => ChangeKind::Renewed,
            LeaseEventKind::Release => ChangeKind::Released,
            LeaseEventKind::Expire => ChangeKind::Expired,
            _ => return,
        };
        let b = Binding {
            kind,
            ip: ev.ip,
            client_id: ev.client_id.0.clone(),
            hwaddr: ev.hwaddr.0.clone(),
            hostname: ev
                .lease
                .as_ref()
                .and_then(|l| l.hostname.clone())
                .or_else(|| ev.hostname.clone()),
            client_fqdn: ev.client_fqdn.clone(),
        };
        if self.0.try_send(b).is_err() {
            tracing::warn!(target: TARGET, ip = %ev.ip, "DDNS queue full or stopped: update not queued");
        }
    }
}

/// The machine's settings from the config.
fn settings(d: &DdnsSettings) -> anyhow::Result<Settings> {
    let alg = match d.key_algorithm {
        TsigAlgorithm::HmacSha256 => leased_ddns::Algorithm::HmacSha256,
        TsigAlgorithm::HmacSha384 => leased_ddns::Algorithm::HmacSha384,
        TsigAlgorithm::HmacSha512 => leased_ddns::Algorithm::HmacSha512,
    };
    Ok(Settings {
        servers: d.servers.clone(),
        key: Key::new(&d.key_name, alg, d.key_secret.clone())
            .map_err(|e| anyhow::anyhow!("the DDNS TSIG key: {e}"))?,
        ttl: d.ttl,
        timeout_ms: u64::from(d.timeout) * 1000,
        max_backoff_ms: u64::from(d.max_backoff) * 1000,
        queue_limit: d.queue_limit,
        names_limit: NAMES_LIMIT,
    })
}

/// Opens the queue and binds the sockets (before root is dropped); the returned future is
/// the task to spawn.
pub(crate) async fn start(
    plan: Current,
) -> anyhow::Result<Option<(DdnsSink, impl Future<Output = ()>)>> {
    let loaded = plan.load();
    let Some(d) = loaded.config.ddns.clone() else {
        return Ok(None);
    };
    let mut machine = Ddns::new(settings(&d)?, seed());
    let file = KeyedFile::open(&d.queue_path, d.queue_limit + NAMES_LIMIT + 16)
        .with_context(|| format!("opening the DDNS queue {}", d.queue_path.display()))?;
    let bad = machine.restore(file.entries().map(|(k, v)| (k.clone(), v.clone())));
    if bad > 0 {
        tracing::warn!(target: TARGET, bad, "DDNS queue entries not understood were skipped");
    }
    if machine.queued() > 0 {
        tracing::info!(target: TARGET, jobs = machine.queued(), "DDNS updates left from before: resuming");
    }
    let v4 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .context("binding the DDNS socket")?;
    let v6 = if d.servers.iter().any(SocketAddr::is_ipv6) {
        Some(
            UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, 0))
                .await
                .context("binding the DDNS IPv6 socket")?,
        )
    } else {
        None
    };
    let (tx, rx) = mpsc::channel(CHANNEL);
    let task = Task {
        machine,
        file,
        v4,
        v6,
        plan,
        tcp: mpsc::channel(16),
    };
    Ok(Some((DdnsSink(tx), task.run(rx))))
}

/// A seed for message ids from the process's random hasher keys (no clock, no extra crate).
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An answer that came over TCP (`None`: the connection failed).
type TcpAnswer = (SocketAddr, Option<Vec<u8>>);

struct Task {
    machine: Ddns,
    file: KeyedFile,
    v4: UdpSocket,
    v6: Option<UdpSocket>,
    plan: Current,
    /// Answers that came over TCP (or the failure of the connection: `None`).
    tcp: (mpsc::Sender<TcpAnswer>, mpsc::Receiver<TcpAnswer>),
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Binding>) {
        let mut buf4 = vec![0u8; MAX_MESSAGE];
        let mut buf6 = vec![0u8; MAX_MESSAGE];
        let mut open = true;
        self.machine.handle_timeout(now_ms());
        self.carry_out().await;
        loop {
            let wait = self
                .machine
                .poll_timeout()
                .map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
            tokio::select! {
                b = rx.recv(), if open => match b {
                    Some(b) => {
                        let zones = self.zones(b.ip);
                        match zones {
                            Some(z) => self.machine.handle_binding(&b, &z, now_ms()),
                            None => continue,
                        }
                    }
                    // The engine stopped: what is queued stays in the file for the next start.
                    None => open = false,
                },
                r = self.v4.recv_from(&mut buf4) => {
                    if let Ok((n, from)) = r {
                        let data = buf4.get(..n).unwrap_or_default();
                        self.machine.handle_response(from, data, now_ms());
                    }
                }
                r = recv_opt(self.v6.as_ref(), &mut buf6) => {
                    if let Ok((n, from)) = r {
                        let data = buf6.get(..n).unwrap_or_default();
                        self.machine.handle_response(from, data, now_ms());
                    }
                }
                Some((from, answer)) = self.tcp.1.recv() => match answer {
                    Some(a) => self.machine.handle_response(from, &a, now_ms()),
                    None => self.machine.handle_send_error(now_ms()),
                },
                () = sleep_opt(wait) => self.machine.handle_timeout(now_ms()),
            }
            self.carry_out().await;
            if !open {
                // Shutting down: what is left waits in the file.
                break;
            }
        }
    }

    /// The zones and policy of the subnet holding `ip`, from the current config (a reload
    /// changes them for later bindings).
    fn zones(&self, ip: Ipv4Addr) -> Option<Zones> {
        let loaded = self.plan.load();
        let d = loaded.config.ddns.as_ref()?;
        let z = d.zones_for(ip)?;
        let policy = d.policies.for_subnet(z.network)?.clone();
        Some(Zones {
            forward_zone: z.forward_zone.clone(),
            reverse_zone: z.reverse_zone.clone(),
            policy,
        })
    }

    /// Persists, then sends, then logs what the machine asked for, until it asks nothing.
    async fn carry_out(&mut self) {
        loop {
            let mut wrote = false;
            while let Some(p) = self.machine.poll_persist() {
                wrote = true;
                match p {
                    Persist::Put { key, value } => {
                        if let Err(e) = self.file.put(&key, &value) {
                            tracing::error!(target: TARGET, error = %e, "DDNS queue: not stored");
                        }
                    }
                    Persist::Remove { key } => self.file.remove(&key),
                }
            }
            if wrote && let Err(e) = self.file.sync() {
                tracing::error!(target: TARGET, error = %e, "DDNS queue: sync failed");
            }
            let mut sent = false;
            while let Some(t) = self.machine.poll_transmit() {
                sent = true;
                self.send(t).await;
            }
            while let Some(r) = self.machine.poll_report() {
                report(&r);
            }
            if !sent && !wrote {
                return;
            }
        }
    }

    async fn send(&mut self, t: Transmit) {
        if t.tcp {
            let tx = self.tcp.0.clone();
            let timeout = Duration::from_secs(5);
            tokio::spawn(async move {
                let answer = tokio::time::timeout(timeout, tcp_exchange(t.to, &t.bytes))
                    .await
                    .ok()
                    .and_then(Result::ok);
                let _ = tx.send((t.to, answer)).await;
            });
            return;
        }
        let sock = match (t.to, &self.v6) {
            (SocketAddr::V6(_), Some(s)) => s,
            _ => &self.v4,
        };
        if let Err(e) = sock.send_to(&t.bytes, t.to).await {
            tracing::debug!(target: TARGET, to = %t.to, error = %e, "DDNS send failed");
            self.machine.handle_send_error(now_ms());
        }
    }
}

/// One DNS exchange over TCP (RFC 1035 §4.2.2: two-byte length prefixes).
async fn tcp_exchange(to: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(to).await?;
    let len = u16::try_from(bytes.len()).map_err(|_| std::io::Error::other("too long"))?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(bytes).await?;
    let mut l = [0u8; 2];
    s.read_exact(&mut l).await?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(l))];
    s.read_exact(&mut answer).await?;
    Ok(answer)
}

async fn recv_opt(
    sock: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// The log line of one report.
fn report(r: &Report) {
    match r {
        Report::Done { op, fqdn, ip } => {
            tracing::info!(target: TARGET, op = ?op, fqdn = %fqdn, ip = %ip, "DDNS updated")
        }
        Report::Conflict { op, fqdn, ip } => tracing::warn!(
            target: TARGET, op = ?op, fqdn = %fqdn, ip = %ip,
            "DDNS conflict: the name belongs to another client (DHCID differs); not touched"
        ),
        Report::Failed {
            op,
            fqdn,
            ip,
            rcode,
        } => tracing::error!(
            target: TARGET, op = ?op, fqdn = %fqdn, ip = %ip, rcode = %rcode,
            "DDNS update refused by the server; given up"
        ),
        Report::Retry {
            fqdn,
            attempt,
            wait_ms,
        } => tracing::warn!(
            target: TARGET, fqdn = %fqdn, attempt, wait_ms,
            "DDNS server did not answer; retrying"
        ),
        Report::Dropped { fqdn, ip } => tracing::error!(
            target: TARGET, fqdn = %fqdn, ip = %ip,
            "DDNS queue full: oldest update dropped"
        ),
        Report::Ignored { why } => {
            tracing::warn!(target: TARGET, why = %why, "DDNS answer ignored")
        }
    }
}
