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

use std::collections::HashMap;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::demo::{
    Lab, indent, lease_state, output_bounded, probe_address, probe_cmd, probe_in, quiet,
    run_bounded, run_watched,
};

/// The whole `--ha` demo must finish within this time (it takes about half a minute).
pub(crate) const DEMO_LIMIT: Duration = Duration::from_secs(90);
/// How long a server gets to reach the state a step waits for.
const STATE_LIMIT: Duration = Duration::from_secs(25);
/// How long the client started after the kill keeps asking (`probe --timeout`).
const TAKEOVER_TIMEOUT: u64 = 30;
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

/// What an operator watches of a server's HA state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// The API did not answer (the server is not running, or not yet).
    Silent,
    State {
        state: String,
        link_up: bool,
        reachable: bool,
    },
}

impl Seen {
    fn of(v: Option<&Value>) -> Self {
        let Some(v) = v.map(ha_of) else {
            return Seen::Silent;
        };
        Seen::State {
            state: v["state"].as_str().unwrap_or("-").to_owned(),
            link_up: v["link_up"].as_bool() == Some(true),
            reachable: v["partner_reachable"].as_bool() == Some(true),
        }
    }

    fn state(&self) -> Option<&str> {
        match self {
            Seen::Silent => None,
            Seen::State { state, .. } => Some(state),
        }
    }

    fn text(&self) -> String {
        match self {
            Seen::Silent => "not answering (not running)".to_owned(),
            Seen::State {
                state,
                link_up,
                reachable,
            } => format!(
                "{state:<15} partner link {}, partner {}",
                if *link_up { "up" } else { "down" },
                if *reachable {
                    "reachable"
                } else {
                    "unreachable"
                }
            ),
        }
    }
}

/// The pair as the demo drives it: namespaces, configs, and what was last seen of each
/// server, so that only changes are printed.
struct Pair<'a> {
    lab: &'a Lab,
    exe: &'a Path,
    ns: [String; 2],
    cfg: [PathBuf; 2],
    seen: HashMap<usize, Seen>,
    /// Elapsed times are printed from here.
    since: Instant,
    /// State changes printed, with the time since `since`, for the summary.
    changes: Vec<(usize, Duration, String)>,
}

impl Pair<'_> {
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

    /// Reads server `i`'s state and prints it when it changed.
    fn observe(&mut self, i: usize) -> Seen {
        let now = Seen::of(self.status(i).as_ref());
        if self.seen.get(&i) != Some(&now) {
            let at = self.since.elapsed();
            println!(
                "   {:>6}  {}: {}",
                format!("+{:.1}s", at.as_secs_f64()),
                PEERS[i].name,
                now.text()
            );
            if let Some(s) = now.state() {
                let was = self.seen.get(&i).and_then(Seen::state);
                if was != Some(s) {
                    self.changes.push((i, at, s.to_owned()));
                }
            }
            self.seen.insert(i, now.clone());
        }
        now
    }

    /// Watches `servers` until each is in `want`; fails when one exits or after
    /// [`STATE_LIMIT`].
    fn wait_all(&mut self, servers: &[usize], want: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            self.lab.check()?;
            let mut done = true;
            for &i in servers {
                if let Some(status) = self.lab.server_exited(PEERS[i].name) {
                    bail!(
                        "{} exited ({status}); its log is in the step below",
                        PEERS[i].name
                    );
                }
                done &= self.observe(i).state() == Some(want);
            }
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

    /// `leased leases -c CFG` of server `i` (through its API), printed; returns the JSON view.
    fn show_leases(&self, i: usize, tag: &str) -> anyhow::Result<String> {
        let cfg = &self.cfg[i];
        println!(
            "   $ leased leases -c {}   (in {}: {}'s own view, through its API)",
            cfg.display(),
            self.ns[i],
            PEERS[i].name
        );
        let leases = |json: bool, tag: &str| {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &self.ns[i]])
                .arg(self.exe)
                .args(["leases", "-c"])
                .arg(cfg);
            if json {
                cmd.arg("--json");
            }
            run_bounded(self.lab, tag, &mut cmd, Duration::from_secs(10))
        };
        let (_, out, err) = leases(false, tag)?;
        print!("{}", indent(&out));
        if out.trim().is_empty() {
            print!("{}", indent(&err));
        }
        let (_, json, _) = leases(true, &format!("{tag}-json"))?;
        Ok(json)
    }
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

/// The `--ha` demo. Returns the summary, or the first step that could not be done.
pub(crate) fn steps(lab: &Lab, exe: &Path) -> anyhow::Result<String> {
    let started = Instant::now();
    let [a, b] = &PEERS;
    println!("leased demo --ha: an HA pair (hot-standby) and its clients in private namespaces.");
    println!("Nothing here touches your real network; every address is in 198.18.0.0/15.\n");

    // 1. The lab.
    let (hub, ns) = build_network(lab)?;
    println!("== 1. network");
    println!(
        "   {ns_a} [{LAN_IF} {a_lan}]  {ns_b} [{LAN_IF} {b_lan}]   (dhcp-a primary, dhcp-b standby)",
        ns_a = ns[0],
        ns_b = ns[1],
        a_lan = a.lan,
        b_lan = b.lan,
    );
    println!(
        "      LAN: both ports on bridge {HUB_BR} in {hub}, where the clients (leased probe) run"
    );
    println!(
        "      partner link: {} {} <-veth-> {} {} (its own cable, TCP {PARTNER_PORT})",
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
        "   {} differs only in this_server = \"{}\", server_id = \"{}\", its own store and API key.",
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
        seen: HashMap::new(),
        since: Instant::now(),
        changes: Vec::new(),
    };
    println!("\n== 3. servers: leased serve -c FILE in each namespace, the standby first");
    let mut logs: Vec<(usize, PathBuf)> = Vec::new();
    for i in [1, 0] {
        let p = &PEERS[i];
        let (pid, log) =
            lab.start_server(p.name, &ns[i], exe, &cfg[i], &format!("{}.log", p.name))?;
        println!("   {} (the {}): pid {pid} in {}", p.name, p.role, ns[i]);
        logs.push((i, log));
    }
    println!("   waiting for both to reach hot-standby (leased ha status --json, every 250 ms):");
    pair.since = Instant::now();
    pair.wait_all(&[0, 1], "hot-standby")?;
    println!(
        "   -> the pair is in hot-standby after {:.1}s",
        pair.since.elapsed().as_secs_f64()
    );
    for i in [0, 1] {
        pair.show_status(i, &format!("status-{}", PEERS[i].name))?;
    }

    // 4. Clients: the primary answers, the standby stores a copy of every lease.
    let mut failures: Vec<String> = Vec::new();
    println!(
        "\n== 4. three clients ask: the primary answers; each ACK leaves only once the standby \
         holds the lease too"
    );
    for (k, (mac, host)) in EARLY.iter().enumerate() {
        lab.check()?;
        let args = ["--mac", mac, "--hostname", host];
        let r = if k == 0 {
            probe_in(lab, exe, (&hub, HUB_BR), &format!("probe-{host}"), &args)?
        } else {
            // The first report shows every option; the others only their outcome.
            let (mut cmd, shown) = probe_cmd(exe, &hub, HUB_BR, &args);
            println!("   $ {shown}");
            let (code, out, err) = run_bounded(
                lab,
                &format!("probe-{host}"),
                &mut cmd,
                Duration::from_secs(15),
            )?;
            if code != Some(0) {
                print!("{}", indent(&out));
                print!("{}", indent(&err));
            }
            crate::demo::ProbeRun { code, out }
        };
        match (r.code, probe_address(&r.out), acked_by(&r.out)) {
            (Some(0), Some(addr), Some(by)) => {
                let who = PEERS.iter().find(|p| p.lan == by).map_or("?", |p| p.name);
                println!("   -> {mac} ({host}) got {addr} from {by} ({who})");
                if by != a.lan {
                    failures.push(format!("{mac} was answered by {by}, not the primary"));
                }
            }
            (code, _, _) => failures.push(format!("{mac}: probe exited {code:?}")),
        }
    }

    // 5. kill -9 the primary; a new client makes the standby take over.
    lab.check()?;
    println!("\n== 5. the primary crashes: kill -9, no goodbye to its partner");
    let Some(pid) = lab.kill_server(a.name) else {
        bail!("{} is not running", a.name);
    };
    pair.since = Instant::now();
    println!("   $ kill -9 {pid}   ({}, the primary)", a.name);
    println!(
        "   a new client {TAKEOVER_MAC} asks, retrying every second with its `secs` growing, as a\n   \
         client whose server is gone does; the standby counts such clients (max_ack_delay 500ms,\n   \
         max_unacked_clients 0) and then serves every client (partner-down):"
    );
    let args = [
        "--mac",
        TAKEOVER_MAC,
        "--hostname",
        "late-laptop",
        "--retry-every",
        "1",
        "--timeout",
        &TAKEOVER_TIMEOUT.to_string(),
    ]
    .map(str::to_owned);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut cmd, shown) = probe_cmd(exe, &hub, HUB_BR, &args);
    println!("   $ {shown} &");
    pair.observe(1);
    let mut last_poll = Instant::now();
    let (code, out, err) = run_watched(
        lab,
        "probe-takeover",
        &mut cmd,
        Duration::from_secs(TAKEOVER_TIMEOUT + 5),
        || {
            if last_poll.elapsed() >= POLL_EVERY {
                pair.observe(1);
                last_poll = Instant::now();
            }
        },
    )?;
    let took = pair.since.elapsed();
    match (code, probe_address(&out), acked_by(&out)) {
        (Some(0), Some(addr), Some(by)) => {
            println!(
                "   {:>6}  the new client got {addr} from {by} ({})",
                format!("+{:.1}s", took.as_secs_f64()),
                PEERS.iter().find(|p| p.lan == by).map_or("?", |p| p.name)
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
    if pair.observe(1).state() != Some("partner-down") {
        failures.push(format!(
            "{} is not in partner-down after the takeover",
            b.name
        ));
    }
    println!(
        "\n   every lease the primary granted is on the standby (durable there before each ACK left):"
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
    let (pid, log) = lab.start_server(
        a.name,
        &ns[0],
        exe,
        &cfg[0],
        &format!("{}-restart.log", a.name),
    )?;
    logs.push((0, log));
    pair.since = Instant::now();
    pair.seen.remove(&0);
    println!(
        "   $ leased serve -c {}   (pid {pid} in {})",
        cfg[0].display(),
        ns[0]
    );
    pair.wait_all(&[0, 1], "hot-standby")?;
    println!(
        "   -> back in hot-standby after {:.1}s",
        pair.since.elapsed().as_secs_f64()
    );
    let synced = pair
        .status(0)
        .map(|v| ha_of(&v)["syncs"].as_u64().unwrap_or(0))
        .unwrap_or(0);
    if synced == 0 {
        failures.push(format!("{} returned without a sync", a.name));
    }
    pair.show_status(0, "status-dhcp-a-back")?;
    lab.check()?;
    println!("   a client asks now: the primary answers again");
    let r = probe_in(
        lab,
        exe,
        (&hub, HUB_BR),
        "probe-return",
        &["--mac", RETURN_MAC, "--hostname", "desk-4"],
    )?;
    match (r.code, probe_address(&r.out), acked_by(&r.out)) {
        (Some(0), Some(addr), Some(by)) if by == a.lan => {
            println!("   -> {RETURN_MAC} got {addr} from {by} ({})", a.name);
        }
        (code, _, by) => failures.push(format!(
            "after the return: probe exited {code:?}, answered by {by:?} (expected {})",
            a.lan
        )),
    }
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns[0]])
        .arg(exe)
        .args(["leases", "-c"])
        .arg(&cfg[0])
        .arg("--json");
    let (_, json, _) = run_bounded(lab, "leases-a-json", &mut cmd, Duration::from_secs(10))?;
    match lease_state(&json, TAKEOVER_MAC) {
        Some(s) if s == "bound" => println!(
            "   -> {} holds {TAKEOVER_MAC}'s lease too: the standby granted it alone, the sync \
             brought it back",
            a.name
        ),
        s => failures.push(format!(
            "{} does not hold the lease the standby granted alone ({s:?})",
            a.name
        )),
    }

    // 7. Stop both and show what they logged about the pair.
    println!("\n== 7. the servers' HA log lines");
    for s in lab.stop_servers() {
        println!("   {s}");
    }
    for (i, log) in &logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("HA")).collect();
        println!("   {} ({}):", PEERS[*i].name, log.display());
        for l in lines.iter().skip(lines.len().saturating_sub(25)) {
            println!("   | {l}");
        }
    }

    let secs = started.elapsed().as_secs_f32();
    let took_over = pair
        .changes
        .iter()
        .any(|(i, _, s)| *i == 1 && s == "partner-down");
    if !took_over {
        failures.push(format!("{} was never seen in partner-down", b.name));
    }
    if failures.is_empty() {
        Ok(format!(
            "demo finished in {secs:.1}s: every step behaved as expected.\n\
             Next: docs/ha.md explains the states and timers; put an [ha] section in the config \
             of two servers (leased check -c FILE), start both, and watch `leased ha status`."
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
    fn status_seen() {
        let v: Value = serde_json::from_str(
            r#"{"state":"partner-down","link_up":false,"partner_reachable":false}"#,
        )
        .unwrap();
        let s = Seen::of(Some(&v));
        assert_eq!(s.state(), Some("partner-down"));
        assert!(s.text().contains("link down"));
        assert_eq!(Seen::of(None), Seen::Silent);
        let wrapped: Value = serde_json::json!({"result": "ok", "ha": {"state": "waiting"}});
        assert_eq!(Seen::of(Some(&wrapped)).state(), Some("waiting"));
    }
}
