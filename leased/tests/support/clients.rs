//! Real DHCP clients (dhclient, udhcpc, dhcpcd), `leased probe`, perfdhcp and tcpdump, each run
//! inside a lab namespace with bounded waits. Clients get a hook script that records every
//! event (reason + environment) to a file and configures the address inside the client
//! namespace only, so unicast RENEW/RELEASE can leave from the bound address.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use super::lab::{CLI_IF, Lab};
use super::proc::{Proc, RunOutput, bin, poll, run};
use super::server::leased_bin;
use crate::argv;

/// One hook invocation.
#[derive(Debug, Clone)]
pub struct Event {
    pub reason: String,
    pub vars: BTreeMap<String, String>,
}

impl Event {
    /// The address the event is about (`new_ip_address` for ISC/dhcpcd, `ip` for udhcpc).
    pub fn ip(&self) -> Option<Ipv4Addr> {
        ["new_ip_address", "ip"]
            .iter()
            .find_map(|k| self.vars.get(*k))
            .and_then(|v| v.parse().ok())
    }

    /// A variable.
    pub fn var(&self, k: &str) -> Option<&str> {
        self.vars.get(k).map(String::as_str)
    }
}

/// Writes the recording hook script; returns (script, events file).
pub fn hook_script(lab: &Lab, tag: &str, configure: bool) -> (PathBuf, PathBuf) {
    let script = lab.path(&format!("hook-{tag}.sh"));
    let events = lab.path(&format!("events-{tag}.txt"));
    let ip = bin("ip");
    let cfg = if configure {
        format!(
            r#"
case "$R" in
  BOUND|RENEW|REBIND|REBOOT)
    [ -n "$new_ip_address" ] && {ip} addr replace "$new_ip_address/${{new_subnet_mask:-255.255.255.0}}" dev "$interface" ;;
  bound|renew)
    [ -n "$ip" ] && {ip} addr replace "$ip/${{mask:-24}}" dev "$interface" ;;
esac"#
        )
    } else {
        String::new()
    };
    let text = format!(
        r#"#!/bin/sh
# leased system-test hook: records the event; configures only the test namespace's link
R="${{reason:-$1}}"
{cfg}
# written whole to a temp file, then appended with an end marker: readers never see half
T="{ev}.$$"
{{ echo "@@EVENT@@ $R"; env | LC_ALL=C sort; echo "@@END@@"; }} > "$T"
cat "$T" >> "{ev}"
rm -f "$T"
exit 0
"#,
        ev = events.display()
    );
    std::fs::write(&script, text).expect("write hook");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod hook");
    std::fs::write(&events, "").expect("events file");
    (script, events)
}

/// Parses an events file.
pub fn read_events(path: &PathBuf) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: Vec<Event> = Vec::new();
    let mut cur: Option<Event> = None;
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("@@EVENT@@ ") {
            cur = Some(Event {
                reason: r.trim().to_string(),
                vars: BTreeMap::new(),
            });
        } else if line == "@@END@@" {
            // only complete events count: the hook may still be appending the last one
            out.extend(cur.take());
        } else if let (Some(ev), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
            ev.vars.insert(k.to_string(), v.to_string());
        }
    }
    out
}

/// A hooked client process (dhclient, udhcpc or dhcpcd).
pub struct Client {
    pub kind: &'static str,
    pub ns: String,
    pub iface: String,
    pub events: PathBuf,
    pub hook: PathBuf,
    pub proc: Option<Proc>,
    pub work: PathBuf,
}

impl Client {
    /// All events so far.
    pub fn events(&self) -> Vec<Event> {
        read_events(&self.events)
    }

    /// Waits (bounded) for an event with one of `reasons` at index >= `from`; returns it.
    /// Gives up early when the client process has exited.
    pub fn wait_event(
        &mut self,
        from: usize,
        reasons: &[&str],
        timeout: Duration,
    ) -> Option<Event> {
        let events = self.events.clone();
        let mut exited_polls = 0;
        poll(timeout, || {
            let found = read_events(&events)
                .into_iter()
                .skip(from)
                .find(|e| reasons.contains(&e.reason.as_str()));
            if found.is_none() && self.proc.as_mut().is_some_and(|p| !p.alive()) {
                exited_polls += 1;
                if exited_polls > 10 {
                    return Some(None);
                }
            }
            found.map(Some)
        })
        .flatten()
    }

    /// Sends a signal to the client process.
    pub fn signal(&mut self, sig: Signal) -> bool {
        self.proc.as_mut().is_some_and(|p| p.signal(sig))
    }

    /// Output of the client process so far.
    pub fn output(&self) -> String {
        self.proc.as_ref().map(|p| p.output()).unwrap_or_default()
    }

    /// Stops the process (SIGTERM, bounded, SIGKILL).
    pub fn stop(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            p.stop(Duration::from_secs(5));
        }
    }

    /// Everything useful for a failure message.
    pub fn diag(&self) -> String {
        let ev = std::fs::read_to_string(&self.events).unwrap_or_default();
        let ev: String = ev
            .lines()
            .filter(|l| {
                l.starts_with("@@EVENT@@") || l.starts_with("new_ip") || l.starts_with("ip=")
            })
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "--- {} output\n{}\n--- {} events\n{ev}",
            self.kind,
            self.output(),
            self.kind
        )
    }
}

/// ISC dhclient, foreground, one attempt.
pub struct Dhclient {
    pub c: Client,
    pub conf: PathBuf,
    pub lf: PathBuf,
    pub pf: PathBuf,
}

impl Dhclient {
    /// Prepares (does not start) dhclient in `ns` on `iface`.
    pub fn new(lab: &Lab, ns: &str, iface: &str, tag: &str, hostname: Option<&str>) -> Dhclient {
        let (hook, events) = hook_script(lab, tag, true);
        let conf = lab.path(&format!("{tag}.conf"));
        let mut text = String::from(
            "timeout 20;\nretry 1;\ninitial-interval 1;\nrequest subnet-mask, routers, dhcp-lease-time, dhcp-renewal-time, dhcp-rebinding-time;\n",
        );
        if let Some(h) = hostname {
            text.push_str(&format!("send host-name \"{h}\";\n"));
        }
        std::fs::write(&conf, text).expect("dhclient.conf");
        Dhclient {
            c: Client {
                kind: "dhclient",
                ns: ns.into(),
                iface: iface.into(),
                events,
                hook,
                proc: None,
                work: lab.dir().into(),
            },
            conf,
            lf: lab.path(&format!("{tag}.leases")),
            pf: lab.path(&format!("{tag}.pid")),
        }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut a = argv![
            bin("dhclient"),
            "-4",
            "-v",
            "-cf",
            self.conf.display(),
            "-lf",
            self.lf.display(),
            "-pf",
            self.pf.display(),
            "-sf",
            self.c.hook.display()
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(self.c.iface.clone());
        a
    }

    /// Starts `dhclient -4 -1 -d …` (stays in the foreground after binding, renews at T1).
    pub fn start(&mut self) {
        let out = self.c.work.join(format!(
            "{}.out",
            self.conf.file_stem().unwrap_or_default().to_string_lossy()
        ));
        self.c.proc = Some(Proc::spawn(
            "dhclient",
            Some(&self.c.ns),
            &self.args(&["-1", "-d"]),
            &out,
            &[],
        ));
    }

    /// `dhclient -r`: sends RELEASE for the lease in the lease file and stops the running
    /// instance (dhclient signals the PID in our pid file, which is our own child).
    pub fn release(&mut self) -> RunOutput {
        let o = run(
            Some(&self.c.ns),
            &self.args(&["-r"]),
            Duration::from_secs(20),
        );
        if let Some(p) = self.c.proc.as_mut()
            && p.wait_timeout(Duration::from_secs(5)).is_none()
        {
            p.stop(Duration::from_secs(3));
        }
        o
    }
}

/// busybox udhcpc in the foreground.
pub struct Udhcpc {
    pub c: Client,
    pub hostname: Option<String>,
}

impl Udhcpc {
    /// Prepares (does not start) udhcpc in `ns` on `iface`.
    pub fn new(lab: &Lab, ns: &str, iface: &str, tag: &str, hostname: Option<&str>) -> Udhcpc {
        let (hook, events) = hook_script(lab, tag, true);
        Udhcpc {
            c: Client {
                kind: "udhcpc",
                ns: ns.into(),
                iface: iface.into(),
                events,
                hook,
                proc: None,
                work: lab.dir().into(),
            },
            hostname: hostname.map(str::to_string),
        }
    }

    /// Starts udhcpc. `broadcast`: ask for broadcast replies (-B). `quit`: exit once bound (-q).
    /// Always -n (exit if no lease after 3 DISCOVERs 2 s apart).
    pub fn start(&mut self, broadcast: bool, quit: bool, extra: &[&str]) {
        let mut a = argv![
            bin("udhcpc"),
            "-f",
            "-n",
            "-t",
            "3",
            "-T",
            "2",
            "-i",
            self.c.iface,
            "-s",
            self.c.hook.display()
        ];
        if broadcast {
            a.push("-B".into());
        }
        if quit {
            a.push("-q".into());
        }
        if let Some(h) = &self.hostname {
            a.push("-x".into());
            a.push(format!("hostname:{h}"));
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        let out = self.c.events.with_extension("out");
        self.c.proc = Some(Proc::spawn("udhcpc", Some(&self.c.ns), &a, &out, &[]));
    }
}

/// dhcpcd 9 in the foreground (-B), IPv4 only, in a private mount namespace with a tmpfs over
/// /run and a private /var/lib/dhcpcd, so it writes nothing on the host.
pub struct Dhcpcd {
    pub c: Client,
    pub hostname: Option<String>,
    /// The text of its dhcpcd.conf (empty by default), e.g. `option rapid_commit`.
    pub conf: String,
    /// Leave IPv4 link-local (and so ARP) on: it sends RFC 2563 Auto-Configure then. Off by
    /// default.
    pub ipv4ll: bool,
}

impl Dhcpcd {
    /// Prepares (does not start) dhcpcd in `ns` on `iface`.
    pub fn new(lab: &Lab, ns: &str, iface: &str, tag: &str, hostname: Option<&str>) -> Dhcpcd {
        let (hook, events) = hook_script(lab, tag, false);
        Dhcpcd {
            c: Client {
                kind: "dhcpcd",
                ns: ns.into(),
                iface: iface.into(),
                events,
                hook,
                proc: None,
                work: lab.dir().into(),
            },
            hostname: hostname.map(str::to_string),
            conf: String::new(),
            ipv4ll: false,
        }
    }

    /// Starts dhcpcd; `oneshot` adds -1 (exit after binding).
    pub fn start(&mut self, oneshot: bool) {
        let db = self.c.work.join(format!("{}-db", self.c.kind));
        std::fs::create_dir_all(&db).expect("dhcpcd db dir");
        let conf = self.c.work.join("dhcpcd.conf");
        std::fs::write(&conf, &self.conf).expect("dhcpcd.conf");
        let script = r#"set -e
mount --make-rprivate /
mount -t tmpfs -o size=4m,mode=755 leased-test-run /run
mkdir -p /run/dhcpcd
if [ -d /var/lib/dhcpcd ]; then mount --bind "$1" /var/lib/dhcpcd
else mount -t tmpfs -o size=4m,mode=755 leased-test-varlib /var/lib; mkdir -p /var/lib/dhcpcd; fi
shift
exec "$@""#;
        let mut a = argv![
            bin("unshare"),
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            db.display(),
            bin("dhcpcd"),
            "-4",
            "-B",
            "-d",
            "-f",
            conf.display(),
            "-c",
            self.c.hook.display(),
            "-t",
            "20"
        ];
        // dhcpcd's IPv4 link-local needs ARP: --noarp turns it off too.
        if !self.ipv4ll {
            a.push("--noipv4ll".into());
            a.push("--noarp".into());
        }
        if oneshot {
            a.push("-1".into());
        }
        if let Some(h) = &self.hostname {
            a.push("-h".into());
            a.push(h.clone());
        }
        a.push(self.c.iface.clone());
        let out = self.c.events.with_extension("out");
        self.c.proc = Some(Proc::spawn("dhcpcd", Some(&self.c.ns), &a, &out, &[]));
    }
}

/// Options of `leased probe`.
#[derive(Debug, Clone, Default)]
pub struct ProbeOpts {
    pub mac: Option<String>,
    pub hostname: Option<String>,
    pub inform: Option<Ipv4Addr>,
    pub release: bool,
    pub decline: bool,
    pub discover_only: bool,
    pub no_broadcast: bool,
    /// Seconds; default 5.
    pub timeout: Option<u32>,
    /// Further `leased probe` arguments, e.g. `--option82 HEX --option82-in file`.
    pub args: Vec<String>,
}

impl ProbeOpts {
    /// Probe with this MAC.
    pub fn mac(mac: &str) -> ProbeOpts {
        ProbeOpts {
            mac: Some(mac.to_string()),
            ..Default::default()
        }
    }
}

/// What `leased probe --json` reported.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub out: RunOutput,
    pub json: Option<Value>,
}

/// Exit codes of `leased probe`.
pub const PROBE_ACK: i32 = 0;
pub const PROBE_NAK: i32 = 3;
pub const PROBE_TIMEOUT: i32 = 4;

fn find_key<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    match v {
        Value::Object(o) => keys
            .iter()
            .find_map(|k| o.get(*k).filter(|x| !x.is_null()))
            .or_else(|| o.values().find_map(|x| find_key(x, keys))),
        Value::Array(a) => a.iter().find_map(|x| find_key(x, keys)),
        _ => None,
    }
}

impl ProbeResult {
    /// Exit code.
    pub fn code(&self) -> Option<i32> {
        self.out.code()
    }

    /// The address the server gave (yiaddr of the final reply).
    pub fn ip(&self) -> Option<Ipv4Addr> {
        let j = self.json.as_ref()?;
        let parse = |v: &Value| {
            v.as_str()
                .and_then(|s| s.parse::<Ipv4Addr>().ok())
                .filter(|a| !a.is_unspecified())
        };
        // `address` is what the probe ended up with; else the ACK's (or OFFER's) yiaddr
        j.get("address")
            .and_then(parse)
            .or_else(|| j.get("ack").and_then(|a| a.get("yiaddr")).and_then(parse))
            .or_else(|| j.get("offer").and_then(|a| a.get("yiaddr")).and_then(parse))
    }

    /// Looks a key up anywhere in the JSON.
    pub fn get(&self, keys: &[&str]) -> Option<&Value> {
        find_key(self.json.as_ref()?, keys)
    }

    /// For failure messages.
    pub fn diag(&self) -> String {
        self.out.all()
    }
}

/// Runs `leased probe --interface IF --json …` in `ns`, bounded by its own timeout + 10 s.
pub fn probe(ns: &str, iface: &str, o: &ProbeOpts) -> ProbeResult {
    let t = o.timeout.unwrap_or(5);
    let mut a = argv![
        leased_bin(),
        "probe",
        "--interface",
        iface,
        "--json",
        "--timeout",
        t
    ];
    if let Some(m) = &o.mac {
        a.extend(argv!["--mac", m]);
    }
    if let Some(h) = &o.hostname {
        a.extend(argv!["--hostname", h]);
    }
    if let Some(i) = o.inform {
        a.extend(argv!["--inform", i]);
    }
    for (flag, on) in [
        ("--release", o.release),
        ("--decline", o.decline),
        ("--discover-only", o.discover_only),
        ("--no-broadcast-flag", o.no_broadcast),
    ] {
        if on {
            a.push(flag.into());
        }
    }
    a.extend(o.args.iter().cloned());
    let out = run(Some(ns), &a, Duration::from_secs(u64::from(t) + 10));
    let json = out
        .stdout
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l.trim())
                .ok()
                .filter(|v| v.is_object())
        })
        .or_else(|| serde_json::from_str::<Value>(out.stdout.trim()).ok());
    ProbeResult { out, json }
}

impl Lab {
    /// `leased probe` from the lab's main client namespace.
    pub fn probe(&self, o: &ProbeOpts) -> ProbeResult {
        probe(&self.cli_ns, CLI_IF, o)
    }
}

/// perfdhcp's summary of one run.
#[derive(Debug, Clone, Default)]
pub struct PerfStats {
    pub do_sent: u64,
    pub do_rcvd: u64,
    pub ra_sent: u64,
    pub ra_rcvd: u64,
    pub drops: u64,
}

/// Parses perfdhcp's final report ("Statistics for: DISCOVER-OFFER" / "REQUEST-ACK").
pub fn parse_perfdhcp(text: &str) -> PerfStats {
    let mut s = PerfStats::default();
    let mut sec = "";
    let num = |l: &str| {
        l.split_whitespace()
            .last()
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    for l in text.lines() {
        let l = l.trim();
        if l.contains("Statistics for: DISCOVER-OFFER") {
            sec = "DO";
        } else if l.contains("Statistics for: REQUEST-ACK") {
            sec = "RA";
        } else if l.starts_with("sent packets:") {
            match sec {
                "DO" => s.do_sent = num(l),
                "RA" => s.ra_sent = num(l),
                _ => {}
            }
        } else if l.starts_with("received packets:") {
            match sec {
                "DO" => s.do_rcvd = num(l),
                "RA" => s.ra_rcvd = num(l),
                _ => {}
            }
        } else if l.starts_with("drops:") {
            s.drops += num(l);
        }
    }
    s
}

/// One perfdhcp DORA run.
#[derive(Debug, Clone)]
pub struct PerfRun {
    /// Exchanges started per second.
    pub rate: u32,
    /// Distinct (sequential) client MACs.
    pub clients: u32,
    /// Stop after this many exchanges.
    pub num: u32,
    /// Or after this many seconds.
    pub secs: u32,
    /// First MAC.
    pub base_mac: String,
}

/// Runs perfdhcp in `ns` on `iface` against `server` (DORA, `clients` sequential MACs from
/// `base_mac`, `rate`/s, at most `num` exchanges and `secs` seconds). The interface needs an
/// address in the server's subnet: perfdhcp acts as a relay and uses it as giaddr.
pub fn perfdhcp(ns: &str, iface: &str, server: Ipv4Addr, run_: &PerfRun) -> (RunOutput, PerfStats) {
    let PerfRun {
        rate,
        clients,
        num,
        secs,
        base_mac,
    } = run_;
    let a = argv![
        bin("perfdhcp"),
        "-4",
        "-l",
        iface,
        "-r",
        rate,
        "-R",
        clients,
        "-n",
        num,
        "-p",
        secs,
        "-W",
        "2000000",
        "-g",
        "single",
        "-b",
        format!("mac={base_mac}"),
        server
    ];
    let out = run(Some(ns), &a, Duration::from_secs(u64::from(*secs) + 30));
    let stats = parse_perfdhcp(&out.stdout);
    (out, stats)
}

/// A packet capture running in a namespace.
pub struct Capture {
    pub proc: Proc,
    pub file: PathBuf,
}

impl Capture {
    /// Starts `tcpdump -i IF -w FILE udp and (port 67 or port 68)` in `ns`, waits until it listens.
    pub fn start(lab: &Lab, ns: &str, iface: &str, tag: &str) -> Capture {
        let file = lab.path(&format!("{tag}.pcap"));
        let out = lab.path(&format!("{tag}.tcpdump.out"));
        let a = argv![
            bin("tcpdump"),
            "-i",
            iface,
            "-nn",
            "-U",
            "--immediate-mode",
            "-w",
            file.display(),
            "udp and (port 67 or port 68)"
        ];
        let mut proc = Proc::spawn("tcpdump", Some(ns), &a, &out, &[]);
        let ok = poll(Duration::from_secs(5), || {
            proc.output().contains("listening on").then_some(())
        });
        assert!(
            ok.is_some() && proc.alive(),
            "tcpdump did not start: {}",
            proc.output()
        );
        Capture { proc, file }
    }

    /// Stops the capture and returns `tcpdump -r -e -nn` lines.
    pub fn finish(mut self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300));
        self.proc.signal(Signal::SIGINT);
        if self.proc.wait_timeout(Duration::from_secs(3)).is_none() {
            self.proc.stop(Duration::from_secs(2));
        }
        let o = run(
            None,
            &argv![bin("tcpdump"), "-r", self.file.display(), "-nn", "-e", "-v"],
            Duration::from_secs(10),
        );
        o.stdout.lines().map(str::to_string).collect()
    }
}
