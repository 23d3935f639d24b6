//! `leased demo --ha`: a high-availability pair (`[ha]`, hot-standby) in a namespace lab.
//!
//! Two servers, `dhcp-a` (primary) and `dhcp-b` (standby), each in a namespace of its own, have
//! their LAN ports (198.18.0.1 and 198.18.0.2) on one bridge in a hub namespace, where the
//! clients (`leased probe`) run, and a partner link of their own, a veth pair 198.19.0.1 ⇄
//! 198.19.0.2, as two boxes with a LAN and a back-to-back cable would. The demo shows the pair
//! reaching hot-standby, the primary answering clients while the standby keeps a copy of every
//! lease, a `kill -9` of the primary, the standby deciding from a retrying client that its
//! partner is gone (partner-down) and serving it, the earlier leases on the standby, and the
//! primary's return: it syncs and both go back to hot-standby.
//!
//! It runs on the plain demo's frame (`demo::Lab`, `demo::drive`): the same private 0700
//! directory with an unpredictable name, files created exclusively, namespace names carrying
//! the directory's random part, a time limit, and everything removed at the end, also on
//! error, Ctrl-C or SIGTERM. The API keys and the pair's shared key are fresh random values in
//! that directory, never printed, so no other user can talk to the servers or forge a partner.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::demo::{
    Lab, ProbeRun, indent, lease_state, output_bounded, probe_address, probe_cmd, probe_in, quiet,
    run_bounded, run_watched,
};

/// The whole `--ha` demo must finish within this time (it takes a few seconds; the rest is
/// margin for a slow, loaded machine: the takeover alone may take up to `TAKEOVER_TIMEOUT`).
const DEMO_LIMIT: Duration = Duration::from_secs(90);
/// How long a server gets to reach the state a step waits for.
const STATE_LIMIT: Duration = Duration::from_secs(25);
/// How long the client started after the kill keeps asking (`probe --timeout`).
const TAKEOVER_TIMEOUT: u64 = 30;
/// How long a log line may lag behind the state the API reports.
const LOG_LAG: Duration = Duration::from_secs(3);
/// How often the servers' HA state is read while something is watched.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// The hub's bridge, where every LAN port and the clients are.
const HUB_BR: &str = "br0";
/// Each server's LAN port (in its own namespace).
const LAN_IF: &str = "lan0";
/// The partner link's port on each server.
const PARTNER_PORT: u16 = 8647;
/// Each server's `[api]`, on the loopback of its own namespace.
const API_LISTEN: &str = "127.0.0.1:8067";
/// The pool both servers hand out from.
const POOL: &str = "198.18.0.100-198.18.0.150";
/// The clients that get a lease from the primary before it is killed.
const EARLY: [(&str, &str); 3] = [
    ("02:00:00:00:0a:01", "laptop-1"),
    ("02:00:00:00:0a:02", "laptop-2"),
    ("02:00:00:00:0a:03", "phone-3"),
];
/// The client that asks while the primary is dead.
const TAKEOVER_MAC: &str = "02:00:00:00:0b:01";
/// The client that asks once the pair is back.
const RETURN_MAC: &str = "02:00:00:00:0c:01";

/// One server of the pair.
struct Peer {
    /// Its `this_server` name.
    name: &'static str,
    role: &'static str,
    /// Its namespace's role in the lab's naming (`…-a`).
    ns: &'static str,
    /// Its LAN address (also its server identifier).
    lan: &'static str,
    /// Its end of the partner link.
    ha_if: &'static str,
    ha_addr: &'static str,
    /// Its LAN port's peer on the hub's bridge.
    hub_port: &'static str,
}

/// The pair: index 0 the primary, 1 the standby.
const PEERS: [Peer; 2] = [
    Peer {
        name: "dhcp-a",
        role: "primary",
        ns: "a",
        lan: "198.18.0.1",
        ha_if: "ha0",
        ha_addr: "198.19.0.1",
        hub_port: "pa",
    },
    Peer {
        name: "dhcp-b",
        role: "standby",
        ns: "b",
        lan: "198.18.0.2",
        ha_if: "hb0",
        ha_addr: "198.19.0.2",
        hub_port: "pb",
    },
];

/// A fresh random secret as 32 hex digits (16 bytes from the kernel).
fn random_secret() -> anyhow::Result<String> {
    let mut b = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("cannot read /dev/urandom for the demo's keys")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Server `me`'s config: the LAN subnet on its port, its own store and API, and the pair.
fn config_text(me: &Peer, store: &Path, api_key: &str, shared_key: &str) -> String {
    let store = serde_json::Value::from(store.to_string_lossy()).to_string();
    let [a, b] = &PEERS;
    format!(
        r#"# leased demo --ha: {name}, the {role} (written by `leased demo --ha`)
[server]
interfaces = ["{LAN_IF}"]
lease_time = "1h"

[store]
path = {store}

[logging]
format = "text"
level = "info"

[api]
listen = "{API_LISTEN}"
keys = ["{api_key}"]

[[subnets]]
network = "198.18.0.0/24"
interface = "{LAN_IF}"
server_id = "{lan}"
pools = ["{POOL}"]

[ha]
mode = "hot-standby"
this_server = "{name}"
heartbeat_delay = "500ms"      # demo timers; the defaults are 10s / 60s / 10s / 10
max_response_delay = "3s"
max_ack_delay = "500ms"
max_unacked_clients = 0
shared_key = "{shared_key}"

[[ha.peers]]
name = "{a_name}"
url = "{a_addr}:{PARTNER_PORT}"
role = "{a_role}"

[[ha.peers]]
name = "{b_name}"
url = "{b_addr}:{PARTNER_PORT}"
role = "{b_role}"
"#,
        name = me.name,
        role = me.role,
        lan = me.lan,
        a_name = a.name,
        a_addr = a.ha_addr,
        a_role = a.role,
        b_name = b.name,
        b_addr = b.ha_addr,
        b_role = b.role,
    )
}

/// `text` with the values of secret keys replaced, for display.
fn redacted(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("keys = ") || l.starts_with("shared_key = ") {
                let key = l.split(' ').next().unwrap_or_default();
                format!("{key} = \"…\"              # random, in the 0600 file only\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// The address the `<- ACK from X` line of a probe's report names.
fn acked_by(out: &str) -> Option<&str> {
    out.lines()
        .find_map(|l| l.strip_prefix("<- ACK from "))
        .map(str::trim)
}

/// The `GET /ha` status, flat (`leased ha status --json` prints it as the API gives it).
fn ha_of(v: &Value) -> &Value {
    if v["ha"].is_object() { &v["ha"] } else { v }
}

/// Seconds since the Unix epoch of a log line's RFC 3339 UTC timestamp
/// (`2026-01-02T03:04:05.123456Z`, as `[logging] format = "text"` writes it).
fn log_time(stamp: &str) -> Option<f64> {
    let (date, time) = stamp.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let h = t.next()?.parse::<i64>().ok()?;
    let min = t.next()?.parse::<i64>().ok()?;
    let sec: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days since 1970-01-01 in the proleptic Gregorian calendar (Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3_600 + min * 60) as f64 + sec)
}

/// An HA line of a server's text log as (time, message without its structured fields), or
/// `None` for any other line.
fn ha_line(line: &str) -> Option<(f64, &str)> {
    let stamp = line.split_whitespace().next()?;
    let (_, msg) = line.split_once("leased_io::ha: ")?;
    if !msg.starts_with("HA") {
        return None;
    }
    // The message ends where its first ` key=value` field begins.
    let end = msg
        .match_indices(' ')
        .map(|(i, _)| i)
        .find(|&i| {
            msg.get(i + 1..)
                .and_then(|rest| rest.split_once('='))
                .is_some_and(|(k, _)| {
                    !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                })
        })
        .unwrap_or(msg.len());
    Some((log_time(stamp)?, msg.get(..end)?.trim_end()))
}

/// A server's log, read as it grows.
struct Log {
    server: usize,
    path: PathBuf,
    /// Bytes already read (whole lines only).
    read: usize,
}

/// The pair as the demo drives it: namespaces, configs and logs.
struct Pair<'a> {
    lab: &'a Lab,
    exe: &'a Path,
    ns: [String; 2],
    cfg: [PathBuf; 2],
    logs: Vec<Log>,
    /// Times are printed from here (wall clock, as the logs are stamped).
    since: SystemTime,
    /// HA state changes seen in the logs: (server, seconds after `since`, new state).
    changes: Vec<(usize, f64, String)>,
    /// Where the changes of the current timeline begin in `changes`.
    phase: usize,
}

impl Pair<'_> {
    /// Starts a new timeline: times are printed from now.
    fn mark(&mut self) {
        self.timeline();
        self.since = SystemTime::now();
        self.phase = self.changes.len();
    }

    /// True once server `i` logged a change to `state` on the current timeline.
    fn logged(&self, i: usize, state: &str) -> bool {
        self.changes
            .get(self.phase..)
            .unwrap_or_default()
            .iter()
            .any(|(j, _, s)| *j == i && s == state)
    }

    /// Reads the logs until each of `servers` has logged its change to `state` (a log line
    /// may reach the file a moment after the API reports the state), at most [`LOG_LAG`].
    fn settle(&mut self, servers: &[usize], state: &str) -> bool {
        let start = Instant::now();
        loop {
            self.timeline();
            if servers.iter().all(|&i| self.logged(i, state)) {
                return true;
            }
            if start.elapsed() > LOG_LAG || self.lab.check().is_err() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Seconds from [`Pair::mark`] until now.
    fn elapsed(&self) -> f64 {
        self.since.elapsed().map_or(0.0, |d| d.as_secs_f64())
    }

    /// Prints a timeline line `at` seconds after [`Pair::mark`].
    fn say(at: f64, what: &str) {
        println!("   {:>7}  {what}", format!("{at:+.2}s"));
    }

    /// Prints the HA lines the servers logged since the last call, in time order, with their
    /// time after [`Pair::mark`]; notes every state change.
    fn timeline(&mut self) {
        let since = self
            .since
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut lines: Vec<(f64, usize, String)> = Vec::new();
        for log in &mut self.logs {
            let text = std::fs::read(&log.path).unwrap_or_default();
            let Some(new) = text.get(log.read..) else {
                continue;
            };
            let Some(whole) = new.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            log.read += whole + 1;
            for line in String::from_utf8_lossy(new.get(..whole).unwrap_or_default()).lines() {
                if let Some((at, msg)) = ha_line(line) {
                    lines.push((at - since, log.server, msg.to_owned()));
                }
            }
        }
        lines.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (at, i, msg) in lines {
            Self::say(at, &format!("{}: {msg}", PEERS[i].name));
            if let Some((_, to)) = msg
                .strip_prefix("HA state ")
                .and_then(|m| m.split_once(" -> "))
            {
                self.changes.push((i, at, to.to_owned()));
            }
        }
    }

    /// Follows server `i`'s log from its start.
    fn follow(&mut self, i: usize, path: PathBuf) {
        self.logs.push(Log {
            server: i,
            path,
            read: 0,
        });
    }

    /// `leased ha status -c CFG --json` in server `i`'s namespace.
    fn status(&self, i: usize) -> Option<Value> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns[i]])
            .arg(self.exe)
            .args(["ha", "status", "-c"])
            .arg(&self.cfg[i])
            .arg("--json");
        match output_bounded(self.lab, &mut cmd, Duration::from_secs(5)) {
            Ok((Some(0), out)) => serde_json::from_str(&out).ok(),
            _ => None,
        }
    }

    /// Server `i`'s HA state as its API reports it (`None`: it does not answer).
    fn state(&self, i: usize) -> Option<String> {
        let v = self.status(i)?;
        ha_of(&v)["state"].as_str().map(str::to_owned)
    }

    /// Watches `servers` until each reports `want` through its API, printing what they log
    /// meanwhile; fails when one exits or after [`STATE_LIMIT`].
    fn wait_all(&mut self, servers: &[usize], want: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            self.lab.check()?;
            let mut done = true;
            for &i in servers {
                if let Some(status) = self.lab.server_exited(PEERS[i].name) {
                    self.timeline();
                    bail!("{} exited ({status})", PEERS[i].name);
                }
                done &= self.state(i).as_deref() == Some(want);
            }
            self.timeline();
            if done {
                return Ok(());
            }
            if start.elapsed() > STATE_LIMIT {
                bail!(
                    "not every server reached {want} within {}s",
                    STATE_LIMIT.as_secs()
                );
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// `leased ha status -c CFG` (the operator's view) of server `i`, printed.
    fn show_status(&self, i: usize, tag: &str) -> anyhow::Result<()> {
        self.lab.check()?;
        let cfg = &self.cfg[i];
        println!(
            "   $ leased ha status -c {}   (in {})",
            cfg.display(),
            self.ns[i]
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns[i]])
            .arg(self.exe)
            .args(["ha", "status", "-c"])
            .arg(cfg);
        let (_, out, err) = run_bounded(self.lab, tag, &mut cmd, Duration::from_secs(10))?;
        print!("{}", indent(&out));
        if out.trim().is_empty() {
            print!("{}", indent(&err));
        }
        Ok(())
    }

    /// `leased leases -c CFG [--json]` of server `i` (through its API): (stdout, stderr).
    fn leases(&self, i: usize, tag: &str, json: bool) -> anyhow::Result<(String, String)> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns[i]])
            .arg(self.exe)
            .args(["leases", "-c"])
            .arg(&self.cfg[i]);
        if json {
            cmd.arg("--json");
        }
        let (_, out, err) = run_bounded(self.lab, tag, &mut cmd, Duration::from_secs(10))?;
        Ok((out, err))
    }

    /// Prints server `i`'s lease table; returns its JSON view.
    fn show_leases(&self, i: usize, tag: &str) -> anyhow::Result<String> {
        self.lab.check()?;
        println!(
            "   $ leased leases -c {}   (in {}: {}'s own table, through its API)",
            self.cfg[i].display(),
            self.ns[i],
            PEERS[i].name
        );
        let (out, err) = self.leases(i, tag, false)?;
        print!("{}", indent(&out));
        if out.trim().is_empty() {
            print!("{}", indent(&err));
        }
        Ok(self.leases(i, &format!("{tag}-json"), true)?.0)
    }
}

/// Runs a probe on the hub's bridge showing only its outcome (its report when it failed).
fn short_probe(
    lab: &Lab,
    exe: &Path,
    hub: &str,
    tag: &str,
    args: &[&str],
) -> anyhow::Result<ProbeRun> {
    lab.check()?;
    let (mut cmd, shown) = probe_cmd(exe, hub, HUB_BR, args);
    println!("   $ {shown}");
    let (code, out, err) = run_bounded(lab, tag, &mut cmd, Duration::from_secs(15))?;
    if code != Some(0) {
        print!("{}", indent(&out));
        print!("{}", indent(&err));
    }
    Ok(ProbeRun { code, out })
}

/// The name of the server whose LAN address is `ip`.
fn server_at(ip: &str) -> &'static str {
    PEERS.iter().find(|p| p.lan == ip).map_or("?", |p| p.name)
}

/// Builds the hub, both servers' namespaces, their LAN ports on the bridge and the partner
/// link. Returns the namespaces: (hub, [a, b]).
fn build_network(lab: &Lab) -> anyhow::Result<(String, [String; 2])> {
    let hub = lab.add_ns("hub")?;
    let ns = [lab.add_ns(PEERS[0].ns)?, lab.add_ns(PEERS[1].ns)?];
    let ip = |args: &[&str]| quiet(Command::new("ip").args(args));
    ip(&["-n", &hub, "link", "add", HUB_BR, "type", "bridge"])?;
    ip(&["-n", &hub, "link", "set", HUB_BR, "up"])?;
    for (p, ns) in PEERS.iter().zip(&ns) {
        lab.check()?;
        ip(&[
            "link", "add", LAN_IF, "netns", ns, "type", "veth", "peer", "name", p.hub_port,
            "netns", &hub,
        ])?;
        ip(&["-n", &hub, "link", "set", p.hub_port, "master", HUB_BR])?;
        ip(&["-n", &hub, "link", "set", p.hub_port, "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/24", p.lan),
            "dev",
            LAN_IF,
        ])?;
        ip(&["-n", ns, "link", "set", LAN_IF, "up"])?;
    }
    lab.check()?;
    let [a, b] = &PEERS;
    ip(&[
        "link", "add", a.ha_if, "netns", &ns[0], "type", "veth", "peer", "name", b.ha_if, "netns",
        &ns[1],
    ])?;
    for (p, ns) in PEERS.iter().zip(&ns) {
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/24", p.ha_addr),
            "dev",
            p.ha_if,
        ])?;
        ip(&["-n", ns, "link", "set", p.ha_if, "up"])?;
    }
    Ok((hub, ns))
}

/// Runs `leased demo --ha`; needs root.
pub fn run() -> anyhow::Result<std::process::ExitCode> {
    crate::demo::run_lab("sudo leased demo --ha", DEMO_LIMIT, steps)
}

/// The `--ha` demo. Returns the summary, or the first step that could not be done.
fn steps(lab: &Lab, exe: &Path) -> anyhow::Result<String> {
    let started = Instant::now();
    let [a, b] = &PEERS;
    println!("leased demo --ha: an HA pair (hot-standby) and its clients in private namespaces.");
    println!("Nothing here touches your real network; every address is in 198.18.0.0/15.\n");

    // 1. The lab.
    let (hub, ns) = build_network(lab)?;
    println!("== 1. network");
    println!("   {} [{LAN_IF} {}]: dhcp-a, the primary", ns[0], a.lan);
    println!("   {} [{LAN_IF} {}]: dhcp-b, the standby", ns[1], b.lan);
    println!(
        "   LAN: both ports on bridge {HUB_BR} in {hub}, where the clients (leased probe) run"
    );
    println!(
        "   partner link: {} {} <-veth-> {} {} (a cable of its own, TCP {PARTNER_PORT})",
        a.ha_if, a.ha_addr, b.ha_if, b.ha_addr
    );

    // 2. The configs.
    lab.check()?;
    let shared_key = random_secret()?;
    let mut cfg: [PathBuf; 2] = Default::default();
    let mut texts: [String; 2] = Default::default();
    for (i, p) in PEERS.iter().enumerate() {
        let store = lab.dir.join(format!("{}.leases", p.name));
        let text = config_text(p, &store, &random_secret()?, &shared_key);
        let (path, mut file) = lab.create(&format!("{}.toml", p.name))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        cfg[i] = path;
        texts[i] = text;
    }
    println!(
        "\n== 2. configs {} and {}",
        cfg[0].display(),
        cfg[1].display()
    );
    print!("{}", indent(&redacted(&texts[0])));
    println!(
        "   {} differs only in this_server = \"{}\", server_id = \"{}\", its store and API key.",
        cfg[1].display(),
        b.name,
        b.lan
    );

    // 3. Both servers, until the pair is in hot-standby.
    let mut pair = Pair {
        lab,
        exe,
        ns: ns.clone(),
        cfg: cfg.clone(),
        logs: Vec::new(),
        since: SystemTime::now(),
        changes: Vec::new(),
        phase: 0,
    };
    println!("\n== 3. servers: leased serve -c FILE in each namespace, the standby first");
    pair.mark();
    for i in [1, 0] {
        let p = &PEERS[i];
        let (pid, log) =
            lab.start_server(p.name, &ns[i], exe, &cfg[i], &format!("{}.log", p.name))?;
        println!("   {} (the {}): pid {pid} in {}", p.name, p.role, ns[i]);
        pair.follow(i, log);
    }
    println!("   what they log about the pair until both report hot-standby (leased ha status):");
    pair.wait_all(&[0, 1], "hot-standby")?;
    let took = pair.elapsed();
    pair.settle(&[0, 1], "hot-standby");
    println!("   -> the pair is in hot-standby after {took:.1}s");
    for i in [0, 1] {
        pair.show_status(i, &format!("status-{}", PEERS[i].name))?;
    }

    // 4. Clients: the primary answers, the standby stores a copy of every lease.
    let mut failures: Vec<String> = Vec::new();
    println!(
        "\n== 4. three clients ask: the primary answers, and each ACK leaves only once the \
         standby holds the lease too"
    );
    for (k, (mac, host)) in EARLY.iter().enumerate() {
        let args = ["--mac", mac, "--hostname", host];
        let tag = format!("probe-{host}");
        // The first report shows every option; the others only their outcome.
        let r = if k == 0 {
            probe_in(lab, exe, (&hub, HUB_BR), &tag, &args)?
        } else {
            short_probe(lab, exe, &hub, &tag, &args)?
        };
        match (r.code, probe_address(&r.out), acked_by(&r.out)) {
            (Some(0), Some(addr), Some(by)) => {
                println!("   -> {host} got {addr} from {by} ({})", server_at(by));
                if by != a.lan {
                    failures.push(format!("{mac} was answered by {by}, not the primary"));
                }
            }
            (code, _, _) => failures.push(format!("{mac}: probe exited {code:?}")),
        }
    }

    // The API's HA counters are refreshed a few times a second, on the pair's own traffic.
    let n =
        |v: &Option<Value>, k: &str| v.as_ref().map_or(0, |v| ha_of(v)[k].as_u64().unwrap_or(0));
    let want = EARLY.len() as u64;
    let start = Instant::now();
    let (sa, sb) = loop {
        lab.check()?;
        let (sa, sb) = (pair.status(0), pair.status(1));
        let seen = n(&sa, "updates_acked") >= want && n(&sb, "updates_received") >= want;
        if seen || start.elapsed() > LOG_LAG {
            break (sa, sb);
        }
        std::thread::sleep(POLL_EVERY);
    };
    println!(
        "   -> {} sent {} lease updates to {}, which acknowledged {} (received {})",
        a.name,
        n(&sa, "updates_sent"),
        b.name,
        n(&sa, "updates_acked"),
        n(&sb, "updates_received")
    );

    // 5. kill -9 the primary; a new client makes the standby take over.
    lab.check()?;
    println!(
        "\n== 5. the primary crashes (kill -9: no goodbye), and a new client asks. It retries \
         every\n   second, its `secs` growing, as a client whose server is gone does; the standby \
         counts\n   such clients (max_ack_delay 500ms, max_unacked_clients 0), then serves every \
         client."
    );
    let takeover_timeout = TAKEOVER_TIMEOUT.to_string();
    let args = [
        "--mac",
        TAKEOVER_MAC,
        "--hostname",
        "late-laptop",
        "--retry-every",
        "1",
        "--timeout",
        &takeover_timeout,
    ];
    let (mut cmd, shown) = probe_cmd(exe, &hub, HUB_BR, &args);
    pair.mark();
    let Some(pid) = lab.kill_server(a.name) else {
        bail!("{} is not running", a.name);
    };
    Pair::say(0.0, &format!("$ kill -9 {pid}   ({}, the primary)", a.name));
    Pair::say(pair.elapsed(), &format!("$ {shown}"));
    let mut last_poll = Instant::now();
    let (code, out, err) = run_watched(
        lab,
        "probe-takeover",
        &mut cmd,
        Duration::from_secs(TAKEOVER_TIMEOUT + 5),
        || {
            if last_poll.elapsed() >= POLL_EVERY {
                pair.timeline();
                last_poll = Instant::now();
            }
        },
    )?;
    lab.check()?;
    let took = pair.elapsed();
    let logged_down = code == Some(0) && pair.settle(&[1], "partner-down");
    match (code, probe_address(&out), acked_by(&out)) {
        (Some(0), Some(addr), Some(by)) => {
            Pair::say(
                took,
                &format!("the new client has {addr} from {by} ({})", server_at(by)),
            );
            if by != b.lan {
                failures.push(format!("after the kill, {by} answered, not the standby"));
            }
        }
        _ => {
            print!("{}", indent(&out));
            print!("{}", indent(&err));
            failures.push(format!(
                "no lease from the standby within {TAKEOVER_TIMEOUT}s of the kill (probe exited \
                 {code:?})"
            ));
        }
    }
    match pair.state(1) {
        Some(s) if s == "partner-down" => {}
        s => failures.push(format!(
            "{} reports {s:?} after the takeover, not partner-down",
            b.name
        )),
    }
    if !logged_down {
        failures.push(format!("{} never logged partner-down", b.name));
    }
    println!(
        "\n   every lease the primary granted is on the standby (durable there before each ACK \
         left):"
    );
    let json = pair.show_leases(1, "leases-b")?;
    for mac in EARLY.iter().map(|(m, _)| *m).chain([TAKEOVER_MAC]) {
        match lease_state(&json, mac) {
            Some(s) if s == "bound" => {}
            s => failures.push(format!("{} holds {mac} as {s:?}, not bound", b.name)),
        }
    }

    // 6. The primary comes back: it syncs from the standby, both return to hot-standby.
    lab.check()?;
    println!(
        "\n== 6. the primary restarts: it fetches the standby's table (syncing), then both \
         return to hot-standby"
    );
    pair.mark();
    let (pid, log) = lab.start_server(
        a.name,
        &ns[0],
        exe,
        &cfg[0],
        &format!("{}-restart.log", a.name),
    )?;
    pair.follow(0, log);
    Pair::say(
        pair.elapsed(),
        &format!(
            "$ leased serve -c {}   (pid {pid} in {})",
            cfg[0].display(),
            ns[0]
        ),
    );
    pair.wait_all(&[0, 1], "hot-standby")?;
    let took = pair.elapsed();
    pair.settle(&[0, 1], "hot-standby");
    println!("   -> both in hot-standby again after {took:.1}s");
    let synced = pair
        .status(0)
        .map(|v| ha_of(&v)["syncs"].as_u64().unwrap_or(0))
        .unwrap_or(0);
    if synced == 0 {
        failures.push(format!("{} returned without a sync", a.name));
    }
    pair.show_status(0, "status-dhcp-a-back")?;
    println!("   a client asks now: the primary answers again");
    let r = short_probe(
        lab,
        exe,
        &hub,
        "probe-return",
        &["--mac", RETURN_MAC, "--hostname", "desk-4"],
    )?;
    match (r.code, probe_address(&r.out), acked_by(&r.out)) {
        (Some(0), Some(addr), Some(by)) if by == a.lan => {
            println!("   -> desk-4 got {addr} from {by} ({})", a.name);
        }
        (code, _, by) => failures.push(format!(
            "after the return: probe exited {code:?}, answered by {by:?} (expected {})",
            a.lan
        )),
    }
    let (json, _) = pair.leases(0, "leases-a-json", true)?;
    match lease_state(&json, TAKEOVER_MAC) {
        Some(s) if s == "bound" => println!(
            "   -> {} holds late-laptop's lease too: the standby granted it alone, the sync \
             brought it over",
            a.name
        ),
        s => failures.push(format!(
            "{} does not hold the lease the standby granted alone ({s:?})",
            a.name
        )),
    }

    // 7. Stop both and show what they logged about clients.
    lab.check()?;
    println!("\n== 7. stop; the last DHCP events each server logged");
    for s in lab.stop_servers() {
        println!("   {s}");
    }
    for log in &pair.logs {
        let text = std::fs::read_to_string(&log.path).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("leased::event"))
            .collect();
        println!("   {}:", log.path.display());
        for l in lines.iter().skip(lines.len().saturating_sub(8)) {
            println!("   | {l}");
        }
    }

    let secs = started.elapsed().as_secs_f32();
    if failures.is_empty() {
        Ok(format!(
            "demo finished in {secs:.1}s: every step behaved as expected.\n\
             Next: docs/ha.md explains the modes, states and timers. Give two servers the same \
             [ha] section\n(only this_server differs), check each with `leased check -c FILE`, \
             start both, and watch\n`leased ha status -c FILE`."
        ))
    } else {
        bail!(
            "{} step(s) did not behave as expected:\n  {}",
            failures.len(),
            failures.join("\n  ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leased_config::{Format, load_str};

    #[test]
    fn both_configs_are_valid_and_make_one_pair() {
        let key = "0123456789abcdef0123456789abcdef";
        let mut versions = Vec::new();
        for p in &PEERS {
            let text = config_text(
                p,
                Path::new("/tmp/x/a.leases"),
                "api-key-0123456789abcdef",
                key,
            );
            let c = load_str(&text, p.name, Format::Toml).unwrap();
            let ha = &c.ha.as_ref().unwrap().machine;
            assert_eq!(ha.this_server, p.name);
            assert_eq!(ha.max_unacked_clients, 0);
            assert_eq!(c.network.subnets.len(), 1);
            versions.push(ha.config_version());
        }
        assert_eq!(
            versions[0], versions[1],
            "one pair: the same config version"
        );
    }

    #[test]
    fn secrets_are_never_shown() {
        let text = config_text(
            &PEERS[0],
            Path::new("/s"),
            "the-api-key-xyz0123",
            "the-shared-key-0123456",
        );
        let shown = redacted(&text);
        assert!(!shown.contains("the-api-key"), "{shown}");
        assert!(!shown.contains("the-shared-key"), "{shown}");
        assert!(shown.contains("this_server = \"dhcp-a\""));
        let s = random_secret().unwrap();
        assert_eq!(s.len(), 32);
        assert_ne!(s, random_secret().unwrap());
    }

    #[test]
    fn who_answered() {
        let out = "client 02:00:00:00:0a:01 xid 0x1\n-> DISCOVER to 255.255.255.255:67\n\
                   <- OFFER from 198.18.0.2\n<- ACK from 198.18.0.2\naddress: 198.18.0.100\n";
        assert_eq!(acked_by(out), Some("198.18.0.2"));
        assert_eq!(acked_by("timeout: no OFFER within 5s\n"), None);
    }

    #[test]
    fn log_lines_on_a_timeline() {
        let line = "2026-12-08T02:26:29.462996Z  INFO leased_io::ha: HA state waiting -> syncing \
                    from=\"waiting\" to=\"syncing\"";
        let (at, msg) = ha_line(line).unwrap();
        assert_eq!(msg, "HA state waiting -> syncing");
        let day = log_time("2026-12-08T00:00:00Z").unwrap();
        assert!((at - day - (2.0 * 3600.0 + 26.0 * 60.0 + 29.462996)).abs() < 1e-6);
        // 1970-01-01, a leap day, and a date after a century year that is no leap year.
        assert_eq!(log_time("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(log_time("2024-02-29T00:00:00Z"), Some(1_709_164_800.0));
        assert_eq!(log_time("2101-03-01T00:00:00Z"), Some(4_139_078_400.0));
        assert_eq!(log_time("2026-13-01T00:00:00Z"), None);
        assert_eq!(log_time("garbage"), None);
        let sync = "2026-12-08T02:26:33.122681Z  INFO leased_io::ha: HA: sync from the partner \
                    done (4 leases in 1 ms) leases=4 ms=1";
        assert_eq!(
            ha_line(sync).map(|(_, m)| m),
            Some("HA: sync from the partner done (4 leases in 1 ms)")
        );
        assert_eq!(
            ha_line("2026-12-08T02:26:33Z  INFO leased::event: ACK ip=x"),
            None
        );
        let wrapped: Value = serde_json::json!({"result": "ok", "ha": {"state": "waiting"}});
        assert_eq!(ha_of(&wrapped)["state"], "waiting");
    }
}
