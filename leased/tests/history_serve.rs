//! The lease history of a running `leased serve` (DHCP in test mode on loopback, high ports,
//! addresses in 198.18.0.0/15), measured from outside the server:
//!
//! - under a stream of DORA exchanges, `strace` on the server shows the history file's
//!   descriptor fdatasync'ed in every second of the load, `/proc/PID/fd` shows one descriptor
//!   for the file throughout, and `/metrics` counts the fsyncs and every record;
//! - a power cut, emulated: the server is killed (`kill -9`) in the middle of a burst, and the
//!   history is cut back to what its last completed fdatasync covered (what a filesystem that
//!   drops every unsynced write would keep). Every record `/metrics` had reported durable is in
//!   it; a server restarted on it (with a torn record at its end) cuts the torn tail, appends,
//!   and `leased history` reads every record.
//!
//! `strace` must be installed when `CI=true`; elsewhere its parts are skipped with a reason.
//! Every wait and load loop is bounded in count and time; processes are stopped by PID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "ops/common.rs"]
mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Proc, free_tcp, free_udp, get, leased, text, wait_for};
use leased_wire::{MessageType, Options, Packet, code};

const KEY: &str = "history-test-key-0123";

/// Load threads, and the most exchanges each may run (the time bound usually ends them).
const THREADS: u32 = 3;
const MAX_EXCHANGES: u32 = 20_000;

struct Server {
    dir: tempfile::TempDir,
    /// Where the journal and its history live.
    state: PathBuf,
    cfg: PathBuf,
    api: u16,
    dhcp: u16,
    proc: Option<Proc>,
}

impl Server {
    fn new() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_path_buf();
        Server::with(dir, state, "")
    }

    /// A server with `server_extra` lines in `[server]`, its store in `state` (inside `dir`).
    fn with(dir: tempfile::TempDir, state: PathBuf, server_extra: &str) -> Server {
        let api = free_tcp();
        let dhcp = free_udp();
        let cfg = dir.path().join("leased.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"[server]
interfaces = ["lo"]
lease_time = "2h"
{server_extra}

[store]
path = "{store}"

[[subnets]]
network = "198.18.0.0/16"
interface = "lo"
server_id = "198.18.0.1"
pools = ["198.18.1.0-198.18.250.255"]

[api]
listen = "127.0.0.1:{api}"
keys = ["{KEY}"]
"#,
                store = state.join("leases.db").display(),
            ),
        )
        .unwrap();
        Server {
            dir,
            state,
            cfg,
            api,
            dhcp,
            proc: None,
        }
    }

    fn history(&self) -> PathBuf {
        self.state.join("leases.db.history")
    }

    fn journal(&self) -> PathBuf {
        self.state.join("leases.db")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn start(&mut self) -> u32 {
        let port = self.dhcp.to_string();
        let cport = (self.dhcp + 1).to_string();
        let c = self.cfg.to_str().unwrap();
        let p = Proc::spawn(
            &["serve", "-c", c, "--port", &port, "--client-port", &cport],
            &self.dir.path().join("server.log"),
        );
        let pid = p.0.id();
        self.proc = Some(p);
        let api = self.api;
        assert!(
            wait_for(Duration::from_secs(15), || std::net::TcpStream::connect((
                "127.0.0.1",
                api
            ))
            .is_ok()),
            "server did not start:\n{}",
            self.log()
        );
        pid
    }

    fn metric(&self, name: &str) -> u64 {
        let (status, body) = get(self.api, "/metrics", Some(KEY));
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{body}"))
    }

    /// Every record `leased history` shows.
    fn records(&self) -> Vec<serde_json::Value> {
        let o = leased(
            &[
                "history",
                "-c",
                self.cfg.to_str().unwrap(),
                "--json",
                "--limit",
                "1000000",
            ],
            &[],
        );
        let (out, err) = text(&o);
        assert!(o.status.success(), "leased history failed: {out}{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn packet(t: MessageType, mac: [u8; 6], xid: u32, extra: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![t.code()]);
    for (c, v) in extra {
        options.set(*c, v.clone());
    }
    let p = Packet {
        op: leased_wire::BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid,
        secs: 0,
        flags: 0x8000,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr,
        sname: vec![],
        file: vec![],
        options,
        option82_in_overload: false,
    };
    let mut out = Vec::new();
    p.encode(576, &mut out);
    out
}

/// Sends `msg` once and waits (bounded) for the reply with `xid`.
fn ask(sock: &UdpSocket, server: SocketAddr, msg: &[u8], xid: u32) -> Option<Packet> {
    sock.send_to(msg, server).ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && let Ok(p) = Packet::decode(&buf[..n])
            && p.xid == xid
        {
            return Some(p);
        }
    }
    None
}

/// One DISCOVER/OFFER/REQUEST/ACK, each message sent once (so every ACK is one history
/// record): true on an ACK.
fn dora_once(sock: &UdpSocket, server: SocketAddr, mac: [u8; 6], xid: u32) -> bool {
    let host = (code::HOSTNAME, format!("h{xid:x}").into_bytes());
    let Some(offer) = ask(
        sock,
        server,
        &packet(MessageType::Discover, mac, xid, std::slice::from_ref(&host)),
        xid,
    ) else {
        return false;
    };
    let req = packet(
        MessageType::Request,
        mac,
        xid,
        &[
            (code::REQUESTED_IP, offer.yiaddr.octets().to_vec()),
            (code::SERVER_ID, vec![198, 18, 0, 1]),
            host,
        ],
    );
    ask(sock, server, &req, xid).is_some_and(|a| a.message_type() == Some(MessageType::Ack))
}

/// Counts of a load run.
#[derive(Default)]
struct Load {
    acks: AtomicU64,
    /// Exchanges that got no ACK in time (their ACK, and its record, may still come).
    unanswered: AtomicU64,
}

/// Runs DORA exchanges from `THREADS` threads (new clients each time, `round` keeps them
/// apart between runs) until `stop` or `MAX_EXCHANGES` each.
fn start_load(
    port: u16,
    round: u8,
    stop: &Arc<AtomicBool>,
    load: &Arc<Load>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..THREADS)
        .map(|t| {
            let stop = Arc::clone(stop);
            let load = Arc::clone(load);
            std::thread::spawn(move || {
                let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                for i in 0..MAX_EXCHANGES {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let [_, _, hi, lo] = i.to_be_bytes();
                    let mac = [2, round, 0x10, t as u8, hi, lo];
                    let xid = (u32::from(round) << 24) | (t << 20) | i;
                    if dora_once(&sock, server, mac, xid) {
                        load.acks.fetch_add(1, Ordering::Relaxed);
                    } else {
                        load.unanswered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect()
}

/// The descriptors of process `pid` open on `path`.
fn fds_on(pid: u32, path: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == path))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn strace_available() -> bool {
    let ok = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").ok().as_deref() != Some("true"),
            "strace is required when CI=true (see .ci/run)"
        );
        eprintln!("SKIP (strace part): strace is not installed");
    }
    ok
}

/// `strace` attached to every thread of `pid`, logging `calls` with wall-clock timestamps.
fn strace(pid: u32, calls: &str, log: &Path) -> Proc {
    let p = Proc(
        Command::new("strace")
            .args(["-f", "-qq", "-ttt", "-s", "0", "-e", "signal=none"])
            .args(["-e", &format!("trace={calls}"), "-o"])
            .arg(log)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tracer = p.0.id().to_string();
    let attached = wait_for(Duration::from_secs(10), || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.filter_map(Result::ok).all(|t| {
            std::fs::read_to_string(t.path().join("status")).is_ok_and(|s| {
                s.lines()
                    .any(|l| l.starts_with("TracerPid:") && l.ends_with(&tracer))
            })
        })
    });
    assert!(attached, "strace did not attach to every thread of {pid}");
    p
}

/// One completed system call from an strace log.
#[derive(Debug, Clone)]
struct Call {
    /// Wall-clock time it was logged as complete (entry time for a call logged in one line,
    /// the resumption's time for one logged in two).
    at: f64,
    name: String,
    fd: i64,
    ret: i64,
}

/// The completed calls of an `strace -f -ttt` log, in the order they completed. A call the
/// process was killed in (`<unfinished ...>` never resumed) is not among them.
fn parse_strace(log: &Path) -> Vec<Call> {
    let text = std::fs::read_to_string(log).unwrap();
    let mut pending: HashMap<String, (String, i64)> = HashMap::new();
    let mut out = Vec::new();
    let ret_of = |rest: &str| -> Option<i64> {
        let (_, r) = rest.rsplit_once(" = ")?;
        r.split_whitespace().next()?.parse().ok()
    };
    let head = |call: &str| -> Option<(String, i64)> {
        let (name, args) = call.split_once('(')?;
        let fd = args
            .split(|c: char| !c.is_ascii_digit() && c != '-')
            .next()?
            .parse()
            .ok()?;
        Some((name.to_string(), fd))
    };
    for line in text.lines() {
        // `PID  SECONDS.MICROS call(args...) = ret`, padded with spaces.
        let Some((pid, tail)) = line.split_once(' ') else {
            continue;
        };
        let Some((ts, rest)) = tail.trim_start().split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let Ok(at) = ts.parse::<f64>() else { continue };
        if rest.starts_with("<... ") {
            if let (Some((name, fd)), Some(ret)) = (pending.remove(pid), ret_of(rest)) {
                out.push(Call { at, name, fd, ret });
            }
        } else if rest.ends_with("<unfinished ...>") {
            if let Some(h) = head(rest) {
                pending.insert(pid.to_string(), h);
            }
        } else if let (Some((name, fd)), Some(ret)) = (head(rest), ret_of(rest)) {
            out.push(Call { at, name, fd, ret });
        }
    }
    out
}

fn is_sync(c: &Call) -> bool {
    c.name == "fdatasync" || c.name == "fsync"
}

#[test]
fn history_is_fsynced_every_second_under_load_through_one_descriptor() {
    let mut server = Server::new();
    let pid = server.start();
    let history = server.history();
    // Opened at start, before any record.
    let fds = fds_on(pid, &history);
    assert_eq!(fds.len(), 1, "one descriptor for the history: {fds:?}");
    let fd = fds[0].clone();
    for (what, path) in [("journal", server.journal()), ("history", history.clone())] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{what} mode");
    }

    let trace_log = server.dir.path().join("strace.log");
    let tracer = strace_available().then(|| strace(pid, "fsync,fdatasync", &trace_log));
    let fsyncs0 = server.metric("leased_history_fsyncs_total");

    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let t0 = now_secs();
    let started = Instant::now();
    let threads = start_load(server.dhcp, 1, &stop, &load);
    // Six seconds of load; the descriptor is checked all along.
    let mut samples = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let now = fds_on(pid, &history);
        assert_eq!(now, vec![fd.clone()], "the same one descriptor throughout");
        samples += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let t1 = now_secs();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acks = load.acks.load(Ordering::Relaxed);
    let unanswered = load.unanswered.load(Ordering::Relaxed);
    let secs = t1 - t0;
    eprintln!(
        "load: {acks} ACKs in {secs:.2} s ({:.0}/s), {unanswered} unanswered, {samples} fd samples",
        acks as f64 / secs
    );
    assert!(acks > 100, "the load ran: {acks} ACKs\n{}", server.log());

    // Every ACK's record is written and made durable, through the same descriptor.
    assert!(
        wait_for(Duration::from_secs(10), || {
            let d = server.metric("leased_history_records_durable_total");
            d >= acks && d == server.metric("leased_history_records_written_total")
        }),
        "records durable {} written {} for {acks} ACKs",
        server.metric("leased_history_records_durable_total"),
        server.metric("leased_history_records_written_total"),
    );
    let durable = server.metric("leased_history_records_durable_total");
    assert!(
        durable <= acks + unanswered,
        "{durable} records, {acks} ACKs"
    );
    assert_eq!(server.metric("leased_history_records_dropped_total"), 0);
    assert_eq!(server.metric("leased_history_errors_total"), 0);
    let fsyncs = server.metric("leased_history_fsyncs_total") - fsyncs0;
    eprintln!(
        "metric: {fsyncs} history fsyncs during the load ({:.1}/s), {durable} records durable",
        fsyncs as f64 / secs
    );
    assert!(
        fsyncs as f64 >= secs.floor(),
        "{fsyncs} fsyncs in {secs:.1} s of load"
    );
    assert_eq!(fds_on(pid, &history), vec![fd.clone()]);

    if let Some(mut tracer) = tracer {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(tracer.0.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        assert!(wait_for(Duration::from_secs(10), || matches!(
            tracer.0.try_wait(),
            Ok(Some(_))
        )));
        let fd: i64 = fd.parse().unwrap();
        let syncs: Vec<f64> = parse_strace(&trace_log)
            .into_iter()
            .filter(|c| is_sync(c) && c.fd == fd && c.ret == 0)
            .map(|c| c.at)
            .collect();
        let during: Vec<f64> = syncs
            .iter()
            .copied()
            .filter(|t| (t0..t1).contains(t))
            .collect();
        let max_gap = std::iter::once(t0)
            .chain(during.iter().copied())
            .chain(std::iter::once(t1))
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(0.0, f64::max);
        eprintln!(
            "strace: {} fdatasync/fsync of the history fd during {secs:.2} s of load ({:.1}/s), \
             longest gap {:.3} s",
            during.len(),
            during.len() as f64 / secs,
            max_gap
        );
        // At least one in every second of the load.
        for k in 0..secs.floor() as u32 {
            let from = t0 + f64::from(k);
            assert!(
                during.iter().any(|t| (from..from + 1.0).contains(t)),
                "no history fsync in second {k} of the load: {during:?}"
            );
        }
    }

    server.proc.as_mut().unwrap().term();
    // Every record is in the file, and `leased history` reads them all.
    let records = server.records();
    assert_eq!(records.len() as u64, durable);
    assert!(records.iter().all(|r| r["event"] == "ack_new"));
    let mode = std::fs::metadata(&history).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// The byte length of the history when each completed fdatasync of `fd` returned, from the
/// log of its writes and syncs (the file starts empty; one thread appends, so the completed
/// writes' byte counts add up to the file's length).
fn synced_lengths(calls: &[Call], fd: i64) -> (Vec<(f64, u64)>, u64) {
    let mut len = 0u64;
    let mut synced = Vec::new();
    for c in calls.iter().filter(|c| c.fd == fd) {
        if c.name == "write" && c.ret > 0 {
            len += c.ret as u64;
        } else if is_sync(c) && c.ret == 0 {
            synced.push((c.at, len));
        }
    }
    (synced, len)
}

#[test]
fn a_power_cut_keeps_every_record_reported_durable() {
    if !strace_available() {
        eprintln!("SKIP: the power cut is emulated from strace's log of the history's writes");
        return;
    }
    let mut server = Server::new();
    let pid = server.start();
    let history = server.history();
    let fds = fds_on(pid, &history);
    assert_eq!(fds.len(), 1, "{fds:?}");
    let fd: i64 = fds[0].parse().unwrap();
    assert_eq!(std::fs::metadata(&history).unwrap().len(), 0);
    let trace_log = server.dir.path().join("strace.log");
    let mut tracer = strace(pid, "write,fsync,fdatasync", &trace_log);

    // A burst, and in its middle: read what is durable, then kill -9.
    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Load::default());
    let threads = start_load(server.dhcp, 2, &stop, &load);
    assert!(
        wait_for(Duration::from_secs(20), || load
            .acks
            .load(Ordering::Relaxed)
            >= 300),
        "the burst did not get going:\n{}",
        server.log()
    );
    let reported = server.metric("leased_history_records_durable_total");
    let mut proc = server.proc.take().unwrap();
    proc.0.kill().unwrap();
    let killed_at = now_secs();
    proc.0.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acks = load.acks.load(Ordering::Relaxed);
    // strace ends by itself when its tracee is gone, its log complete.
    assert!(wait_for(Duration::from_secs(10), || matches!(
        tracer.0.try_wait(),
        Ok(Some(_))
    )));

    let calls = parse_strace(&trace_log);
    let (synced, written) = synced_lengths(&calls, fd);
    let bytes = std::fs::read(&history).unwrap();
    // A write the kill interrupted on its way out of the kernel is in the file but not in the
    // log; it can only follow the last completed fdatasync.
    assert!(
        written <= bytes.len() as u64,
        "strace counted {written} bytes written, the file has {}",
        bytes.len()
    );
    let &(last_sync_at, durable_len) = synced.last().expect("a completed history fdatasync");
    assert!(durable_len <= written);
    let lines = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count() as u64;
    let kept = lines(&bytes[..durable_len as usize]);
    eprintln!(
        "power cut: {acks} ACKs, {reported} records reported durable before the kill, {} in the \
         file, {kept} within the last fdatasync ({:.3} s before the kill); {} history fsyncs",
        lines(&bytes),
        killed_at - last_sync_at,
        synced.len()
    );
    assert!(
        kept >= reported,
        "records reported durable ({reported}) missing after the power cut ({kept} kept)"
    );
    assert!(
        killed_at - last_sync_at < 1.0,
        "the last history fsync before the kill was {:.3} s earlier",
        killed_at - last_sync_at
    );

    // The disk after the power cut: the synced prefix, then half of the next record (its
    // page landed, the rest did not).
    let cut = durable_len as usize;
    let mut after = bytes[..cut].to_vec();
    if let Some(next) = bytes[cut..].iter().position(|c| *c == b'\n') {
        after.extend_from_slice(&bytes[cut..cut + next / 2 + 1]);
    }
    std::fs::write(&history, &after).unwrap();

    // Restarted on it: the torn record is cut, new records follow, everything reads back.
    server.start();
    let before = server.records();
    assert_eq!(before.len() as u64, kept, "the torn record is not a record");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let srv = SocketAddr::from((Ipv4Addr::LOCALHOST, server.dhcp));
    assert!(dora_once(&sock, srv, [2, 3, 0, 0, 0, 1], 0x0300_0001));
    assert!(wait_for(Duration::from_secs(10), || server
        .metric("leased_history_records_durable_total")
        >= 1));
    server.proc.as_mut().unwrap().term();
    let all = server.records();
    assert_eq!(all.len() as u64, kept + 1);
    assert_eq!(all[..before.len()], before[..]);
    assert_eq!(all.last().unwrap()["mac"], "02:03:00:00:00:01");
    let text = std::fs::read(&history).unwrap();
    assert!(text.ends_with(b"\n"));
    for line in text.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
        serde_json::from_slice::<serde_json::Value>(line).expect("every line a record");
    }
}

/// With no descriptor left to open (the server's RLIMIT_NOFILE lowered to its lowest free
/// descriptor number: its own reload then fails with EMFILE), every ACK still gets its
/// history record: the file was opened once, at start.
#[test]
fn history_needs_no_new_descriptor() {
    let mut server = Server::new();
    let pid = server.start();
    // A descriptor open only for a moment (the start-up probe's API connection) leaves a hole
    // below the limit when it closes: until a reload proves the limit bites, measure again.
    let mut emfile = false;
    for _ in 0..10 {
        let used: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let lowest_free = (0..).find(|n| !used.contains(n)).unwrap();
        let o = Command::new("prlimit")
            .args(["--pid", &pid.to_string()])
            .arg(format!("--nofile={lowest_free}:{lowest_free}"))
            .output()
            .expect("prlimit (util-linux)");
        assert!(o.status.success(), "{o:?}");
        // Proof that the server cannot open anything now: a reload cannot read its config.
        let (failed, reloaded) = (
            server.log().matches("os error 24").count(),
            server.log().matches("config reloaded").count(),
        );
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGHUP,
        );
        assert!(
            wait_for(Duration::from_secs(10), || {
                let log = server.log();
                log.matches("os error 24").count() > failed
                    || log.matches("config reloaded").count() > reloaded
            }),
            "no reload outcome:\n{}",
            server.log()
        );
        if server.log().matches("os error 24").count() > failed {
            emfile = true;
            break;
        }
    }
    assert!(
        emfile,
        "the reload should fail with EMFILE:\n{}",
        server.log()
    );

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let srv = SocketAddr::from((Ipv4Addr::LOCALHOST, server.dhcp));
    let acks = (0..50u8)
        .filter(|i| dora_once(&sock, srv, [2, 4, 0, 0, 0, *i], 0x0400_0000 | u32::from(*i)))
        .count();
    assert_eq!(acks, 50, "{}", server.log());
    assert!(
        wait_for(Duration::from_secs(10), || server.records().len() == acks),
        "{} records for {acks} ACKs:\n{}",
        server.records().len(),
        server.log()
    );
    assert!(!server.log().contains("lease history write failed"));
    server.proc.as_mut().unwrap().term();
    assert_eq!(server.records().len(), acks);
}

/// With `[server] user` and `group`, the group may read the lease files: the journal and the
/// history are 0640 and handed to user and group before root is dropped, the history is
/// appended as the user, and a history moved away by a rotation is followed by a new 0640
/// file that the user creates.
#[test]
fn with_a_group_the_lease_files_are_group_readable_and_written_as_the_user() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(
            std::env::var("CI").ok().as_deref() != Some("true"),
            "this test needs root when CI=true"
        );
        eprintln!("SKIP: dropping to a user needs root");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("group nogroup");
    let (uid, gid) = (nobody.uid.as_raw(), nogroup.gid.as_raw());
    let dir = tempfile::tempdir().unwrap();
    // The user must reach its state directory (the temporary directory is root's, 0700).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(uid), Some(gid)).unwrap();
    let mut server = Server::with(dir, state, "user = \"nobody\"\ngroup = \"nogroup\"");
    server.start();
    assert!(
        wait_for(Duration::from_secs(10), || server
            .log()
            .contains("dropped root")),
        "{}",
        server.log()
    );
    let owner_mode = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    };
    assert_eq!(owner_mode(&server.journal()), (uid, gid, 0o640), "journal");
    assert_eq!(owner_mode(&server.history()), (uid, gid, 0o640), "history");

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let srv = SocketAddr::from((Ipv4Addr::LOCALHOST, server.dhcp));
    for i in 0..5u8 {
        assert!(dora_once(
            &sock,
            srv,
            [2, 5, 0, 0, 0, i],
            0x0500_0000 | u32::from(i)
        ));
    }
    assert!(
        wait_for(Duration::from_secs(10), || server.records().len() == 5),
        "{}",
        server.log()
    );
    // Rotated away: the next record goes to a new file, the user's, 0640.
    let rotated = server.state.join("leases.db.history.1");
    std::fs::rename(server.history(), &rotated).unwrap();
    assert!(dora_once(&sock, srv, [2, 5, 0, 0, 1, 0], 0x0500_0100));
    assert!(
        wait_for(Duration::from_secs(10), || server.history().exists()
            && server.records().len() == 1),
        "{}",
        server.log()
    );
    assert_eq!(
        owner_mode(&server.history()),
        (uid, gid, 0o640),
        "successor"
    );
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        5,
        "the rotated file keeps its records"
    );
    server.proc.as_mut().unwrap().term();
    assert_eq!(server.records().len(), 1);
}
