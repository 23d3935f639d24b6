//! The attacker at the edge of the TCP listeners: the real `leased serve` (and `leased isc
//! serve`, `leased relay`) on loopback, flooded with half-open, silent and trickling
//! connections and with more connections than allowed, must close them on its clocks while it
//! keeps answering the API, reloading on SIGHUP, serving DHCP and writing history. Also: the
//! console's TCP listener refuses a plaintext hello unless allowed and speaks TLS with
//! `[api.tls]`; API keys under 16 characters are refused everywhere; the open-files limit is
//! raised to the hard limit.
//!
//! Servers are started with a soft open-files limit of 256 (`sh -c 'ulimit -S -n 256; exec
//! …'`), so 500 connections only fit because the server raises it. Loopback only, addresses
//! in 198.18.0.0/15, every loop bounded in count and time, processes stopped by PID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "ops/common.rs"]
mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, Proc, dora, free_tcp, free_udp, get, leased, text, wait_for};

const KEY: &str = "edge-limits-key-0123";
/// The header (and console hello) timeout the tests configure.
const CLOCK: Duration = Duration::from_secs(2);
/// Connections the flood keeps open.
const FLOOD: usize = 500;
/// The soft open-files limit servers are started with.
const LOW_NOFILE: u64 = 256;

/// Gives this test process room for its own sockets (the flood is 500 of them).
fn raise_own_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= 2 * FLOOD as u64,
        "the hard open-files limit {hard} is too low for this test"
    );
}

/// Starts `leased ARGS` with a soft open-files limit of [`LOW_NOFILE`]; `sh` execs it, so
/// the PID is the server's.
fn spawn_low_nofile(args: &[&str], env: &[(&str, &str)], log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -S -n {LOW_NOFILE} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .env_remove("LEASED_API_KEYS")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    Proc(
        c.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    )
}

/// (soft, hard) "Max open files" of a running process.
fn nofile_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].to_string(), f[4].to_string())
}

fn assert_nofile_raised(pid: u32, log: &str) {
    let (soft, hard) = nofile_of(pid);
    assert_eq!(soft, hard, "soft open-files limit == hard after start");
    assert_ne!(soft, LOW_NOFILE.to_string(), "the limit was raised");
    assert!(
        log.contains("raised the open-files limit"),
        "the raise is logged: {log}"
    );
}

fn read_log(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn serve_config(dir: &Path, api: u16, extra: &str) -> PathBuf {
    let cfg = dir.join("leased.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[server]
interfaces = ["lo"]
lease_time = "2h"
pid_file = "{pid}"

[store]
path = "{store}"

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
routers = ["198.18.0.1"]
pools = ["198.18.0.100-198.18.0.119"]

[api]
listen = "127.0.0.1:{api}"
keys = ["{KEY}"]
{extra}
"#,
            pid = dir.join("leased.pid").display(),
            store = dir.join("leases.db").display(),
        ),
    )
    .unwrap();
    cfg
}

/// `leased serve -c cfg` on loopback test ports, low soft open-files limit; waits for the API.
fn start_serve(cfg: &Path, api: u16, dhcp: u16, env: &[(&str, &str)], log: &Path) -> Proc {
    let (port, cport) = (dhcp.to_string(), (dhcp + 1).to_string());
    let p = spawn_low_nofile(
        &[
            "serve",
            "-c",
            cfg.to_str().unwrap(),
            "--port",
            &port,
            "--client-port",
            &cport,
        ],
        env,
        log,
    );
    assert!(
        wait_for(Duration::from_secs(15), || TcpStream::connect((
            "127.0.0.1",
            api
        ))
        .is_ok()),
        "the API never listened: {}",
        read_log(log)
    );
    p
}

/// How an attacking connection behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Connects and sends nothing.
    Silent,
    /// Sends most of a request head and stops.
    Partial,
    /// Sends a head one byte every 250 ms (slowloris).
    Trickle,
}

const HEAD: &[u8] =
    b"GET /subnets HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: edge-limits-key-0123\r\n\
    Accept: application/json\r\nUser-Agent: slowloris\r\n";

struct Conn {
    s: TcpStream,
    kind: Kind,
    opened: Instant,
    sent: usize,
    next_byte: Instant,
}

impl Conn {
    fn open(port: u16, kind: Kind) -> std::io::Result<Conn> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        let opened = Instant::now();
        if kind == Kind::Partial {
            s.write_all(&HEAD[..HEAD.len() - 2])?;
        }
        s.set_nonblocking(true)?;
        Ok(Conn {
            s,
            kind,
            opened,
            sent: 0,
            next_byte: opened,
        })
    }

    /// True once the server has closed it (EOF or reset); trickles a byte when due.
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 512];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                // Whatever the server says before closing (nothing, or a 408) is read away.
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return true,
            }
        }
        if self.kind == Kind::Trickle && Instant::now() >= self.next_byte {
            let i = self.sent % HEAD.len();
            match self.s.write(&HEAD[i..=i]) {
                Ok(_) => self.sent += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return true,
            }
            self.next_byte = Instant::now() + Duration::from_millis(250);
        }
        false
    }
}

/// What the flood saw: every closed connection's lifetime (connect to close, as the client
/// saw it), and how many were still open when it gave up.
#[derive(Debug, Default)]
struct FloodReport {
    lifetimes: Vec<Duration>,
    left_open: usize,
    reopened: usize,
    /// Connections that could not be opened (and why).
    open_errors: Vec<String>,
}

/// Keeps [`FLOOD`] attacking connections open against `port` (each one closed is replaced at
/// once) while `keep` is set; then waits, at most `drain`, for the last ones to be closed.
fn flood(port: u16, keep: Arc<AtomicBool>, open: Arc<AtomicUsize>, drain: Duration) -> FloodReport {
    let kind = |i: usize| match i % 50 {
        0 => Kind::Trickle,
        i if i % 2 == 0 => Kind::Partial,
        _ => Kind::Silent,
    };
    let mut report = FloodReport::default();
    let mut conns: Vec<Conn> = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        match Conn::open(port, kind(i)) {
            Ok(c) => conns.push(c),
            Err(e) => report.open_errors.push(format!("{:?}: {e}", kind(i))),
        }
    }
    open.store(conns.len(), Ordering::SeqCst);
    let hard_stop = Instant::now() + Duration::from_secs(120);
    let mut drain_until: Option<Instant> = None;
    while !conns.is_empty() && Instant::now() < hard_stop {
        let maintain = keep.load(Ordering::SeqCst);
        if !maintain && drain_until.is_none() {
            drain_until = Some(Instant::now() + drain);
        }
        if drain_until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let mut i = 0;
        while i < conns.len() {
            if !conns[i].closed() {
                i += 1;
                continue;
            }
            report.lifetimes.push(conns[i].opened.elapsed());
            let k = conns[i].kind;
            if maintain {
                match Conn::open(port, k) {
                    Ok(c) => {
                        conns[i] = c;
                        report.reopened += 1;
                        i += 1;
                        continue;
                    }
                    Err(e) => report.open_errors.push(format!("{k:?}: {e}")),
                }
            }
            conns.swap_remove(i);
        }
        open.store(conns.len(), Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
    }
    report.left_open = conns.len();
    report
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

#[test]
fn half_open_connections_are_closed_on_time_and_the_server_keeps_serving() {
    raise_own_nofile();
    let dir = tempfile::tempdir().unwrap();
    let (api, dhcp) = (free_tcp(), free_udp());
    let cfg = serve_config(
        dir.path(),
        api,
        "header_timeout = \"2s\"\nrequest_timeout = \"30s\"\nidle_timeout = \"30s\"\n\
         max_connections = 1000\n",
    );
    let log = dir.path().join("server.log");
    let mut server = start_serve(&cfg, api, dhcp, &[], &log);
    assert_nofile_raised(server.0.id(), &read_log(&log));

    let keep = Arc::new(AtomicBool::new(true));
    let open = Arc::new(AtomicUsize::new(0));
    let flood_thread = {
        let (keep, open) = (Arc::clone(&keep), Arc::clone(&open));
        std::thread::spawn(move || flood(api, keep, open, 3 * CLOCK))
    };
    assert!(
        wait_for(Duration::from_secs(30), || open.load(Ordering::SeqCst)
            == FLOOD),
        "the flood never got its connections open"
    );
    let t_attack = Instant::now();

    // While 500 connections hang on the API: it answers,
    let (st, body) = get(api, "/health", Some(KEY));
    assert_eq!(st, 200, "{body}");
    let (st, body) = get(api, "/subnets", Some(KEY));
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("198.18.0.0/24"), "{body}");
    // SIGHUP reloads,
    let reloads = || read_log(&log).matches("config reloaded").count();
    let before = reloads();
    let o = leased(&["reload", "-c", cfg.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(
        wait_for(Duration::from_secs(10), || reloads() > before),
        "no reload under the flood: {}",
        read_log(&log)
    );
    // a DHCP exchange is served and its history line written.
    let mac = [2, 0, 0, 0, 0x0e, 1];
    let ip = dora(dhcp, mac, 0x5e01, "under-flood");
    let history = PathBuf::from(format!(
        "{}.history",
        dir.path().join("leases.db").display()
    ));
    assert!(
        wait_for(Duration::from_secs(10), || read_log(&history)
            .contains("02:00:00:00:0e:01")),
        "no history line for the ACK of {ip}"
    );
    // (The API's lease snapshot is published at most every 100 ms.)
    assert!(
        wait_for(Duration::from_secs(10), || get(
            api,
            &format!("/leases/{ip}"),
            Some(KEY)
        )
        .0 == 200),
        "the lease of {ip} never showed on the API"
    );
    let checks_took = t_attack.elapsed();
    let open_during = open.load(Ordering::SeqCst);

    keep.store(false, Ordering::SeqCst);
    let report = flood_thread.join().unwrap();
    let mut lt = report.lifetimes.clone();
    lt.sort();
    eprintln!(
        "flood: {} connections closed ({} reopened while the checks ran for {:?}), {} left \
         open; lifetime min {:?} p50 {:?} p99 {:?} max {:?} (header_timeout {:?})",
        lt.len(),
        report.reopened,
        checks_took,
        report.left_open,
        lt.first().unwrap(),
        percentile(&lt, 50),
        percentile(&lt, 99),
        lt.last().unwrap(),
        CLOCK
    );
    assert!(report.open_errors.is_empty(), "{:?}", report.open_errors);
    assert_eq!(open_during, FLOOD, "the flood was on while the checks ran");
    assert_eq!(report.left_open, 0, "every half-open connection was closed");
    assert!(lt.len() >= FLOOD);
    // Closed by the header clock: not before it (nothing refused them), and within 3×.
    assert!(
        *lt.first().unwrap() >= CLOCK * 3 / 4,
        "closed before the header timeout: {:?}",
        lt.first()
    );
    assert!(
        *lt.last().unwrap() <= CLOCK * 3,
        "a connection outlived 3× the header timeout: {:?}",
        lt.last()
    );
    // The server is fine afterwards, and a reload still works.
    let (st, _) = get(api, "/health", Some(KEY));
    assert_eq!(st, 200);
    let o = leased(&["reload", "-c", cfg.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    server.term();
    let log = read_log(&log);
    assert!(!log.contains("Too many open files"), "{log}");
}

/// One keep-alive request on `s`: the status, after reading the whole answer.
fn keepalive_get(s: &mut BufReader<TcpStream>, path: &str) -> u16 {
    write!(
        s.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {KEY}\r\n\r\n"
    )
    .unwrap();
    let mut status = String::new();
    s.read_line(&mut status).unwrap();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        s.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    status.split(' ').nth(1).unwrap().parse().unwrap()
}

/// True when the server closes `s` (EOF or reset) before `limit`, having sent nothing.
fn closed_without_a_word(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// True while the server keeps `s` open (a non-blocking read would block).
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let r = (&*s).read(&mut buf);
    s.set_nonblocking(false).unwrap();
    matches!(r, Err(e) if e.kind() == ErrorKind::WouldBlock)
}

#[test]
fn over_max_connections_the_extra_one_is_closed_and_the_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let (api, dhcp) = (free_tcp(), free_udp());
    let cfg = serve_config(
        dir.path(),
        api,
        "max_connections = 4\nheader_timeout = 60\n",
    );
    let log = dir.path().join("server.log");
    let mut server = start_serve(&cfg, api, dhcp, &[], &log);
    // The start-up probe's connection may still hold a slot for a moment.
    std::thread::sleep(Duration::from_millis(200));
    let mut held: Vec<BufReader<TcpStream>> = (0..4)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", api)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut s = BufReader::new(s);
            assert_eq!(keepalive_get(&mut s, "/health"), 200);
            s
        })
        .collect();
    let t0 = Instant::now();
    let mut extra = TcpStream::connect(("127.0.0.1", api)).unwrap();
    assert!(
        closed_without_a_word(&mut extra, Duration::from_secs(10)),
        "the fifth connection is closed"
    );
    eprintln!("the fifth connection was closed after {:?}", t0.elapsed());
    // The four are untouched and keep being served.
    for s in &mut held {
        assert!(still_open(s.get_ref()));
        assert_eq!(keepalive_get(s, "/counts"), 200);
    }
    assert!(
        wait_for(Duration::from_secs(5), || read_log(&log).contains(
            "connection(s) closed at once: max_connections (4) are open"
        )),
        "{}",
        read_log(&log)
    );
    // One leaves; a newcomer takes its slot.
    drop(held.pop());
    assert!(
        wait_for(Duration::from_secs(10), || {
            let Ok(s) = TcpStream::connect(("127.0.0.1", api)) else {
                return false;
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut s = BufReader::new(s);
            write!(
                s.get_mut(),
                "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {KEY}\r\n\r\n"
            )
            .is_ok()
                && {
                    let mut l = String::new();
                    s.read_line(&mut l).is_ok() && l.contains(" 200 ")
                }
        }),
        "a freed slot is taken again"
    );
    server.term();
}

/// A console-only `leased serve` config (the key comes from `LEASED_API_KEYS`).
fn console_config(dir: &Path, tcp: u16, extra: &str, api: &str) -> PathBuf {
    let cfg = dir.join("leased.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[server]
interfaces = ["lo"]
[store]
path = "{store}"
[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
pools = ["198.18.0.100-198.18.0.119"]
{api}
[console]
socket = "{sock}"
tcp_listen = "127.0.0.1:{tcp}"
hello_timeout = "2s"
{extra}
"#,
            store = dir.join("l.db").display(),
            sock = dir.join("c.sock").display(),
        ),
    )
    .unwrap();
    cfg
}

fn start_console_server(cfg: &Path, tcp: u16, log: &Path) -> Proc {
    let dhcp = free_udp();
    let (port, cport) = (dhcp.to_string(), (dhcp + 1).to_string());
    let p = spawn_low_nofile(
        &[
            "serve",
            "-c",
            cfg.to_str().unwrap(),
            "--port",
            &port,
            "--client-port",
            &cport,
        ],
        &[("LEASED_API_KEYS", KEY)],
        log,
    );
    assert!(
        wait_for(Duration::from_secs(15), || TcpStream::connect((
            "127.0.0.1",
            tcp
        ))
        .is_ok()),
        "the console never listened: {}",
        read_log(log)
    );
    p
}

/// `leased console attach ARGS`; the first line it prints (within 10 s), or its failure.
fn attach_first_line(args: &[&str]) -> Result<String, String> {
    let mut p = Proc(
        Command::new(BIN)
            .args(["console", "attach"])
            .args(args)
            .args(["-n", "100"])
            .env_remove("LEASED_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = p.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut l = String::new();
        let _ = BufReader::new(out).read_line(&mut l);
        let _ = tx.send(l);
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    if !line.is_empty() {
        return Ok(line);
    }
    let ok = wait_for(Duration::from_secs(10), || {
        matches!(p.0.try_wait(), Ok(Some(_)))
    });
    let mut err = String::new();
    if ok {
        p.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    }
    Err(err)
}

#[test]
fn console_tcp_refuses_plaintext_by_default_and_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let tcp = free_tcp();
    let cfg = console_config(dir.path(), tcp, "max_connections = 2", "");
    let log = dir.path().join("server.log");
    let mut server = start_console_server(&cfg, tcp, &log);
    assert!(
        read_log(&log).contains("every TCP viewer will be refused"),
        "{}",
        read_log(&log)
    );
    let addr = format!("127.0.0.1:{tcp}");
    let err = attach_first_line(&["--tcp", &addr, "--key", KEY]).unwrap_err();
    assert!(err.contains("refuses plaintext"), "{err}");
    assert!(
        wait_for(Duration::from_secs(5), || read_log(&log)
            .contains("console: refused a plaintext TCP viewer")),
        "{}",
        read_log(&log)
    );
    // Two silent viewers take both slots; a third is closed at once while they stay open;
    // the two are closed at the hello deadline.
    let t0 = Instant::now();
    let silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", tcp)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut third = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    assert!(closed_without_a_word(&mut third, Duration::from_secs(10)));
    assert!(
        silent.iter().all(still_open),
        "the third was refused while the two were still open"
    );
    for mut s in silent {
        assert!(closed_without_a_word(&mut s, CLOCK * 3));
    }
    let took = t0.elapsed();
    eprintln!("two silent console viewers closed {took:?} after connecting");
    assert!(took <= CLOCK * 3 + Duration::from_millis(200), "{took:?}");
    server.term();
}

#[test]
fn console_tcp_accepts_plaintext_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let tcp = free_tcp();
    let cfg = console_config(dir.path(), tcp, "allow_plaintext = true", "");
    let log = dir.path().join("server.log");
    let mut server = start_console_server(&cfg, tcp, &log);
    let addr = format!("127.0.0.1:{tcp}");
    let line = attach_first_line(&["--tcp", &addr, "--key", KEY]).unwrap();
    assert!(!line.trim().is_empty());
    assert!(!read_log(&log).contains("refused a plaintext"));
    server.term();
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

#[test]
fn console_tcp_speaks_tls_with_api_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (tcp, api) = (free_tcp(), free_tcp());
    let (cert, key) = self_signed(dir.path());
    let api_section = format!(
        "[api]\nlisten = \"127.0.0.1:{api}\"\n[api.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let cfg = console_config(dir.path(), tcp, "", &api_section);
    let log = dir.path().join("server.log");
    let mut server = start_console_server(&cfg, tcp, &log);
    let addr = format!("127.0.0.1:{tcp}");
    // Over TLS, trusting the server's own certificate: the replay arrives.
    let ca = cert.to_str().unwrap();
    let line = attach_first_line(&["--tcp", &addr, "--key", KEY, "--ca", ca]).unwrap();
    assert!(!line.trim().is_empty());
    // By name too (the certificate names localhost).
    let line = attach_first_line(&[
        "--tcp",
        &format!("localhost:{tcp}"),
        "--key",
        KEY,
        "--ca",
        ca,
    ])
    .unwrap();
    assert!(!line.trim().is_empty());
    // In plaintext: told to use TLS, and nothing shown.
    let err = attach_first_line(&["--tcp", &addr, "--key", KEY]).unwrap_err();
    assert!(err.contains("this console speaks TLS"), "{err}");
    // TLS with the public roots: the self-signed certificate is not trusted.
    let err = attach_first_line(&["--tcp", &addr, "--key", KEY, "--tls"]).unwrap_err();
    assert!(err.contains("TLS"), "{err}");
    // A wrong key over TLS is still refused.
    let err = attach_first_line(&["--tcp", &addr, "--key", "wrong-key-0123456789", "--ca", ca])
        .unwrap_err();
    assert!(err.contains("authentication failed"), "{err}");
    server.term();
    let log = read_log(&log);
    assert!(log.contains("tls=true"), "{log}");
}

#[test]
fn api_keys_need_sixteen_characters() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("leased.toml");
    let base = "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.10-198.18.0.20\"]\n\
                [api]\nlisten = \"127.0.0.1:8067\"\n";
    std::fs::write(&cfg, format!("{base}keys = [\"0123456789abcde\"]\n")).unwrap();
    let o = leased(&["check", "-c", cfg.to_str().unwrap()], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let want = format!("{}:6:9: api.keys[0]", cfg.display());
    assert!(err.contains(&want), "{want} in {err}");
    assert!(err.contains("at least 16 characters"), "{err}");
    std::fs::write(&cfg, format!("{base}keys = [\"0123456789abcdef\"]\n")).unwrap();
    let o = leased(&["check", "-c", cfg.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{:?}", text(&o));

    // LEASED_API_KEYS is held to the same rule: a clear start-up error.
    let (api, dhcp) = (free_tcp(), free_udp());
    let cfg = serve_config(dir.path(), api, "");
    let log = dir.path().join("serve.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut p = Proc(
        Command::new(BIN)
            .args(["serve", "-c", cfg.to_str().unwrap(), "--port"])
            .arg(dhcp.to_string())
            .arg("--client-port")
            .arg((dhcp + 1).to_string())
            .env("LEASED_API_KEYS", "fine-key-0123456789,short")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_for(Duration::from_secs(15), || matches!(
            p.0.try_wait(),
            Ok(Some(_))
        )),
        "serve with a short LEASED_API_KEYS key did not stop"
    );
    let status = p.0.try_wait().unwrap().unwrap();
    let err = read_log(&log);
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("LEASED_API_KEYS: key 2") && err.contains("at least 16 characters"),
        "{err}"
    );

    // And `isc serve --key`.
    let conf = dir.path().join("dhcpd.conf");
    std::fs::write(&conf, "subnet 198.18.0.0 netmask 255.255.255.0 {\n}\n").unwrap();
    let leases = dir.path().join("dhcpd.leases");
    let o = leased(
        &[
            "isc",
            "serve",
            "--conf",
            conf.to_str().unwrap(),
            "--leases",
            leases.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--key",
            "isc-short",
        ],
        &[],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--key") && err.contains("at least 16 characters"),
        "{err}"
    );
}

#[test]
fn isc_serve_has_the_same_clocks_and_a_raised_limit() {
    raise_own_nofile();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dhcpd.conf");
    std::fs::write(
        &conf,
        "subnet 198.18.0.0 netmask 255.255.255.0 {\n  range 198.18.0.10 198.18.0.20;\n}\n",
    )
    .unwrap();
    let leases = dir.path().join("dhcpd.leases");
    let port = free_tcp();
    let log = dir.path().join("isc.log");
    let listen = format!("127.0.0.1:{port}");
    let mut p = spawn_low_nofile(
        &[
            "isc",
            "serve",
            "--conf",
            conf.to_str().unwrap(),
            "--leases",
            leases.to_str().unwrap(),
            "--listen",
            &listen,
            "--key",
            KEY,
            "--header-timeout",
            "2s",
            "--max-connections",
            "1000",
        ],
        &[],
        &log,
    );
    assert!(
        wait_for(Duration::from_secs(15), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "isc serve did not listen: {}",
        read_log(&log)
    );
    assert_nofile_raised(p.0.id(), &read_log(&log));
    let keep = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicUsize::new(0));
    let flood_thread = {
        let (keep, open) = (Arc::clone(&keep), Arc::clone(&open));
        std::thread::spawn(move || flood(port, keep, open, 3 * CLOCK))
    };
    assert!(wait_for(Duration::from_secs(30), || open
        .load(Ordering::SeqCst)
        > 0));
    let (st, body) = get(port, "/counts", Some(KEY));
    assert_eq!(st, 200, "{body}");
    let report = flood_thread.join().unwrap();
    let max = report.lifetimes.iter().max().copied().unwrap_or_default();
    eprintln!(
        "isc serve: {} connections closed, {} left open, longest {max:?}",
        report.lifetimes.len(),
        report.left_open
    );
    assert!(report.open_errors.is_empty(), "{:?}", report.open_errors);
    assert_eq!(report.left_open, 0);
    assert!(max <= CLOCK * 3, "{max:?}");
    p.term();
}

/// `leased relay` raises the limit too. It runs in a network namespace of its own (only its
/// loopback), so it can bind the DHCP port without meeting anything else on this machine.
#[test]
fn relay_raises_the_open_files_limit() {
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: this test needs root (unshare -n)"
        );
        eprintln!("SKIP: relay_raises_the_open_files_limit needs root (unshare -n)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.toml");
    std::fs::write(
        &cfg,
        "[relay]\nupstreams = [\"127.0.0.1\"]\n[[relay.interfaces]]\nname = \"lo\"\n",
    )
    .unwrap();
    let log = dir.path().join("relay.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut p = Proc(
        Command::new("unshare")
            .args(["-n", "sh", "-c"])
            .arg(format!(
                "ip link set lo up && ulimit -S -n {LOW_NOFILE} && exec \"$0\" \"$@\""
            ))
            .arg(BIN)
            .args(["relay", "-c", cfg.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_for(Duration::from_secs(15), || read_log(&log)
            .contains("relay started")),
        "{}",
        read_log(&log)
    );
    assert_nofile_raised(p.0.id(), &read_log(&log));
    p.term();
}

#[test]
fn a_stalled_upload_is_answered_408_at_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (api, dhcp) = (free_tcp(), free_udp());
    let cfg = serve_config(
        dir.path(),
        api,
        "request_timeout = \"2s\"\nheader_timeout = \"20s\"\nidle_timeout = \"20s\"\n",
    );
    let log = dir.path().join("server.log");
    let mut server = start_serve(&cfg, api, dhcp, &[], &log);
    let mut s = TcpStream::connect(("127.0.0.1", api)).unwrap();
    let t0 = Instant::now();
    write!(
        s,
        "POST /reservations HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"mac\": "
    )
    .unwrap();
    s.set_read_timeout(Some(CLOCK * 3)).unwrap();
    let mut status = String::new();
    BufReader::new(&s).read_line(&mut status).unwrap();
    let took = t0.elapsed();
    eprintln!("stalled upload answered {:?} after {took:?}", status.trim());
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(took >= CLOCK * 3 / 4 && took <= CLOCK * 3, "{took:?}");
    server.term();
}

#[test]
fn a_client_that_stops_reading_is_cut_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (api, dhcp) = (free_tcp(), free_udp());
    let cfg = serve_config(
        dir.path(),
        api,
        "idle_timeout = \"2s\"\nheader_timeout = \"20s\"\nrequest_timeout = \"20s\"\n",
    );
    let log = dir.path().join("server.log");
    let mut server = start_serve(&cfg, api, dhcp, &[], &log);
    let (st, doc) = get(api, "/openapi.json", Some(KEY));
    assert_eq!(st, 200);
    // Far more answers than the sockets' buffers hold, asked for at once and never read.
    let n = 1 + 64 * 1024 * 1024 / doc.len();
    let mut s = TcpStream::connect(("127.0.0.1", api)).unwrap();
    let one = format!("GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {KEY}\r\n\r\n");
    s.write_all(one.repeat(n.min(4000)).as_bytes()).unwrap();
    let n = n.min(4000);
    std::thread::sleep(CLOCK * 2);
    // Now read: what was buffered arrives, then the end, well before all n answers.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let t0 = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection was not cut: {e} after {got} bytes"),
        }
        assert!(t0.elapsed() < Duration::from_secs(60));
    }
    let answers = got / doc.len();
    eprintln!("a stalled reader got {got} bytes (~{answers} of {n} answers) before the cut");
    assert!(answers < n, "every answer arrived: nothing was cut");
    let (st, _) = get(api, "/health", Some(KEY));
    assert_eq!(st, 200);
    server.term();
}
