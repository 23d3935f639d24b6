//! `leased demo`: a guided lab that never touches the real network.
//!
//! It builds two network namespaces joined by a veth pair (server side 198.18.0.1/24, RFC 2544
//! addresses only), writes a small config, starts this very binary as the server in one
//! namespace and runs `leased probe` clients in the other: a new client, a reserved one, a
//! banned one and one that releases its lease. Then it shows the lease table and the server's
//! log. Everything it made is removed at the end, also on error, Ctrl-C or SIGTERM; the whole
//! run is bounded in time.
//!
//! It runs as root, so nothing it writes may be steered by another user: its files live in a
//! private directory with an unpredictable name (`mkdtemp`, mode 0700) under `$TMPDIR`, every
//! file in it is created exclusively (never an existing file or symlink), and the namespace
//! names carry the same random part, so nobody can plant a name ahead of it.
//!
//! `leased demo --ha` runs another lab on the same frame (`demo_ha`): the [`Lab`] here owns
//! whatever either one creates, and [`drive`] bounds and cleans up both alike.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cli::DemoArgs;

/// Exit code when the demo cannot run or a step failed.
pub(crate) const EXIT_FAILED: u8 = 2;
/// Exit code after Ctrl-C / SIGTERM (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;
/// The whole demo must finish within this time.
const DEMO_LIMIT: Duration = Duration::from_secs(55);
/// How long to wait for the server to listen.
const READY_LIMIT: Duration = Duration::from_secs(10);
/// How long the server gets to stop after SIGTERM before SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(3);
/// How long the steps get to wind down after an interruption.
const WIND_DOWN: Duration = Duration::from_secs(12);

/// Server side of the veth pair.
const SRV_IF: &str = "srv0";
/// Client side of the veth pair.
const CLI_IF: &str = "cli0";
/// The server's address on `SRV_IF`.
const SRV_ADDR: &str = "198.18.0.1/24";
/// The MAC reserved in the demo config.
const RESERVED_MAC: &str = "02:00:00:00:00:10";
/// The address reserved for it.
const RESERVED_IP: &str = "198.18.0.10";
/// The MAC banned in the demo config.
const BANNED_MAC: &str = "02:00:00:00:00:66";
/// The MAC of the client that releases its lease.
const RELEASE_MAC: &str = "02:00:00:00:00:20";

/// The steps of one lab: given the lab and this program's path, the summary or the first step
/// that could not be done.
pub(crate) type Steps = fn(&Lab, &Path) -> anyhow::Result<String>;

/// Runs the demo (the HA pair's is `demo_ha::run`); needs root.
pub fn run(_args: &DemoArgs) -> anyhow::Result<ExitCode> {
    run_lab("sudo leased demo", DEMO_LIMIT, steps)
}

/// Runs one lab's `steps` within `limit` as root (else says to run `how`).
pub(crate) fn run_lab(how: &str, limit: Duration, steps: Steps) -> anyhow::Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("leased demo builds network namespaces and needs root: run `{how}`");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    drive(limit, steps)
}

/// Runs `steps` on a worker thread in a fresh lab, stops it on Ctrl-C, SIGTERM or after
/// `limit`, then removes everything the lab holds, whichever way the steps ended.
fn drive(limit: Duration, steps: Steps) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let dir = tempfile::Builder::new()
        .prefix("leased-demo-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .context("cannot create a private directory for the demo")?;
    let lab = Arc::new(Lab::new(dir));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;

    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let worker_lab = Arc::clone(&lab);
    std::thread::spawn(move || {
        let result = steps(&worker_lab, &exe);
        let _ = tx.send(result);
    });

    let ended = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch SIGTERM")?;
        let ended = tokio::select! {
            r = &mut rx => Ended::Finished(r.unwrap_or_else(|_| Err(anyhow::anyhow!("the demo stopped unexpectedly")))),
            _ = tokio::signal::ctrl_c() => Ended::Interrupted("Ctrl-C"),
            _ = term.recv() => Ended::Interrupted("SIGTERM"),
            _ = tokio::time::sleep(limit) => Ended::Interrupted("time limit"),
        };
        if let Ended::Interrupted(why) = &ended {
            println!("\n{why}: stopping the demo and cleaning up ...");
            lab.cancelled.store(true, Ordering::SeqCst);
            for s in lab.stop_servers() {
                println!("   {s}");
            }
            // Let the steps notice and return, so nothing is created after the cleanup.
            let _ = tokio::time::timeout(WIND_DOWN, &mut rx).await;
        }
        anyhow::Ok(ended)
    });
    let cleanup = lab.cleanup();
    println!("\n== cleanup");
    for line in &cleanup {
        println!("   {line}");
    }
    match ended? {
        Ended::Finished(Ok(summary)) => {
            println!("\n{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Ended::Finished(Err(e)) => {
            eprintln!("\ndemo failed: {e:#}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
        Ended::Interrupted(_) => Ok(ExitCode::from(EXIT_INTERRUPTED)),
    }
}

/// How the run ended.
enum Ended {
    Finished(anyhow::Result<String>),
    Interrupted(&'static str),
}

/// What the demo created, so it can all be removed, whatever happens.
pub(crate) struct Lab {
    /// The private directory's name (`leased-demo-Ab3xYz`): every namespace starts with it.
    tag: String,
    /// The private directory (0700, random name): config, store, logs.
    pub(crate) dir: PathBuf,
    /// Set on Ctrl-C, SIGTERM or the time limit: no step may start after it.
    pub(crate) cancelled: AtomicBool,
    state: Mutex<LabState>,
}

#[derive(Default)]
struct LabState {
    /// Namespaces this demo created (only those: a name that existed is never deleted).
    namespaces: Vec<String>,
    /// The servers running, by name, in start order.
    servers: Vec<(String, Child)>,
    /// Removed by the cleanup.
    dir: Option<tempfile::TempDir>,
}

impl Lab {
    /// A lab around the private directory `dir`; the namespaces are named after its random
    /// part (`leased-demo-Ab3xYz-srv`).
    fn new(dir: tempfile::TempDir) -> Self {
        let tag = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("leased-demo-{}", std::process::id()));
        Self {
            tag,
            dir: dir.path().to_path_buf(),
            cancelled: AtomicBool::new(false),
            state: Mutex::new(LabState {
                dir: Some(dir),
                ..LabState::default()
            }),
        }
    }

    /// The name of this lab's namespace for `role` (`leased-demo-Ab3xYz-srv`).
    pub(crate) fn ns_name(&self, role: &str) -> String {
        format!("{}-{role}", self.tag)
    }

    /// Creates the namespace for `role` with its loopback up and IPv6 off, and records it for
    /// the cleanup. `ip netns add` refuses a name that exists, so only a namespace this lab
    /// made is ever deleted.
    pub(crate) fn add_ns(&self, role: &str) -> anyhow::Result<String> {
        self.check()?;
        let ns = self.ns_name(role);
        quiet(Command::new("ip").args(["netns", "add", &ns]))?;
        self.state().namespaces.push(ns.clone());
        quiet(Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]))?;
        // Quiet links: no IPv6 chatter (DAD, router solicitations). Optional.
        let _ = quiet(Command::new("ip").args([
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]));
        Ok(ns)
    }

    /// Creates `name` in the private directory; fails if anything (a file, a symlink) is
    /// there already.
    pub(crate) fn create(&self, name: &str) -> anyhow::Result<(PathBuf, File)> {
        let path = self.dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok((path, file))
    }

    fn state(&self) -> MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails once the demo is interrupted, so no step starts after that.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.cancelled.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        Ok(())
    }

    /// Starts this program as `leased serve -c cfg` in namespace `ns`, its output to the new
    /// file `log` in the private directory, and records it as server `name`. Returns its PID
    /// (`ip netns exec` execs the server, so the PID is the server's own).
    pub(crate) fn start_server(
        &self,
        name: &str,
        ns: &str,
        exe: &Path,
        cfg: &Path,
        log: &str,
    ) -> anyhow::Result<(u32, PathBuf)> {
        self.check()?;
        let (log_path, out) = self.create(log)?;
        let err = out.try_clone().context("cannot share the server log")?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .arg("serve")
            .arg("-c")
            .arg(cfg)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id();
        self.state().servers.push((name.to_string(), child));
        Ok((pid, log_path))
    }

    /// Server `name`'s exit status once it has exited on its own.
    pub(crate) fn server_exited(&self, name: &str) -> Option<ExitStatus> {
        self.state()
            .servers
            .iter_mut()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| c.try_wait().ok().flatten())
    }

    /// Takes server `name` out of the lab's list.
    fn take_server(&self, name: &str) -> Option<Child> {
        let mut st = self.state();
        let at = st.servers.iter().position(|(n, _)| n == name)?;
        Some(st.servers.remove(at).1)
    }

    /// SIGKILL to server `name` (a crash, as `kill -9` does), then reaps it. Returns its PID.
    pub(crate) fn kill_server(&self, name: &str) -> Option<u32> {
        let mut child = self.take_server(name)?;
        let pid = child.id();
        let _ = child.kill();
        let _ = child.wait();
        Some(pid)
    }

    /// SIGTERM to server `name`, SIGKILL if it has not stopped within [`STOP_LIMIT`].
    pub(crate) fn stop_server(&self, name: &str) -> Option<String> {
        let mut child = self.take_server(name)?;
        let pid = child.id();
        if let Ok(Some(status)) = child.try_wait() {
            return Some(format!("{name} (pid {pid}) had already exited: {status}"));
        }
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(format!("{name} (pid {pid}) stopped on SIGTERM: {status}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Some(format!(
            "{name} (pid {pid}) did not stop within {}s: killed",
            STOP_LIMIT.as_secs()
        ))
    }

    /// Stops every server still running, the last started first.
    pub(crate) fn stop_servers(&self) -> Vec<String> {
        let names: Vec<String> = self
            .state()
            .servers
            .iter()
            .rev()
            .map(|(n, _)| n.clone())
            .collect();
        names.iter().filter_map(|n| self.stop_server(n)).collect()
    }

    /// Removes everything that was made; safe to call more than once.
    fn cleanup(&self) -> Vec<String> {
        let mut done = self.stop_servers();
        let (namespaces, dir) = {
            let mut st = self.state();
            (std::mem::take(&mut st.namespaces), st.dir.take())
        };
        for ns in namespaces.iter().rev() {
            kill_leftovers(ns);
            match quiet(Command::new("ip").args(["netns", "del", ns])) {
                Ok(()) => done.push(format!("deleted namespace {ns}")),
                Err(e) => done.push(format!("could not delete namespace {ns}: {e:#}")),
            }
        }
        if let Some(dir) = dir {
            match dir.close() {
                Ok(()) => done.push(format!("removed {}", self.dir.display())),
                Err(e) => done.push(format!("could not remove {}: {e}", self.dir.display())),
            }
        }
        if done.is_empty() {
            done.push("nothing to clean up".to_string());
        }
        done
    }
}

/// SIGKILLs, by PID, any process still inside a namespace this demo created (only processes
/// the demo started can be there).
fn kill_leftovers(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Ok(raw) = pid.parse::<i32>() {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
}

/// Runs a command that should succeed quietly; its stderr becomes the error.
pub(crate) fn quiet(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The demo's config: one subnet on the veth, a reservation, a banned MAC, a few options.
fn config_text(store: &Path) -> String {
    let store = serde_json::Value::from(store.to_string_lossy()).to_string();
    format!(
        r#"# leased demo configuration (written by `leased demo`)
[server]
interfaces = ["{SRV_IF}"]
lease_time = "1h"

[store]
path = {store}

[logging]
format = "text"
level = "info"

[options]
dns = ["198.18.0.53"]
domain_name = "demo.lan"
domain_search = ["demo.lan", "lab.demo.lan"]

[[subnets]]
network = "198.18.0.0/24"
interface = "{SRV_IF}"
routers = ["198.18.0.1"]
pools = ["198.18.0.100-198.18.0.150"]

[[reservations]]
mac = "{RESERVED_MAC}"
ip = "{RESERVED_IP}"
hostname = "demo-printer"
note = "the demo's reserved device"

[banned_macs]
"{BANNED_MAC}" = {{ note = "banned in the demo config" }}
"#
    )
}

/// Runs `cmd` with output to files in the lab dir, killing it on interruption or after
/// `limit`. Returns (exit code, stdout, stderr).
pub(crate) fn run_bounded(
    lab: &Lab,
    name: &str,
    cmd: &mut Command,
    limit: Duration,
) -> anyhow::Result<(Option<i32>, String, String)> {
    run_watched(lab, name, cmd, limit, || {})
}

/// [`run_bounded`], calling `tick` about every 25 ms while `cmd` runs (to watch something
/// else meanwhile; `tick` should return quickly).
pub(crate) fn run_watched(
    lab: &Lab,
    name: &str,
    cmd: &mut Command,
    limit: Duration,
    mut tick: impl FnMut(),
) -> anyhow::Result<(Option<i32>, String, String)> {
    lab.check()?;
    let (out_path, out) = lab.create(&format!("{name}.out"))?;
    let (err_path, err) = lab.create(&format!("{name}.err"))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().context("wait failed")? {
            break Some(status);
        }
        if Instant::now() >= deadline || lab.cancelled.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tick();
        std::thread::sleep(Duration::from_millis(25));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    Ok((
        status.and_then(|s| s.code()),
        read(&out_path),
        read(&err_path),
    ))
}

/// Runs a short command whose output is small (a status query), through pipes instead of
/// files, so that it can run many times; killed on interruption or after `limit`. Returns
/// (exit code, stdout).
pub(crate) fn output_bounded(
    lab: &Lab,
    cmd: &mut Command,
    limit: Duration,
) -> anyhow::Result<(Option<i32>, String)> {
    lab.check()?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    // Read on a thread, so a large answer cannot block the child on a full pipe.
    let reader = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        })
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().context("wait failed")? {
            break Some(status);
        }
        if Instant::now() >= deadline || lab.cancelled.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    Ok((status.and_then(|s| s.code()), out))
}

/// Indents every line of `text` for display under a step.
pub(crate) fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   | {l}\n")).collect()
}

/// The `address: X` line of a probe's text output.
pub(crate) fn probe_address(out: &str) -> Option<&str> {
    out.lines()
        .find_map(|l| l.strip_prefix("address: "))
        .map(str::trim)
}

/// The state of `mac`'s lease in `leased leases --json` output.
pub(crate) fn lease_state(json: &str, mac: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.as_array()?
        .iter()
        .find(|l| l.get("mac").and_then(|m| m.as_str()) == Some(mac))
        .and_then(|l| l.get("state")?.as_str().map(String::from))
}

/// One probe run in a client namespace.
pub(crate) struct ProbeRun {
    /// The probe's exit code (`None`: killed at its time limit or on interruption).
    pub(crate) code: Option<i32>,
    /// Its text report.
    pub(crate) out: String,
}

/// The `leased probe` command line for a client on `iface` in `ns`, and how it is shown.
pub(crate) fn probe_cmd(exe: &Path, ns: &str, iface: &str, args: &[&str]) -> (Command, String) {
    let mut shown = vec!["leased", "probe", "--interface", iface];
    shown.extend_from_slice(args);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(exe)
        .args(["probe", "--interface", iface])
        .args(args);
    (cmd, shown.join(" "))
}

/// Runs a probe on `iface` in `ns`, printing its command line and report.
pub(crate) fn probe_in(
    lab: &Lab,
    exe: &Path,
    (ns, iface): (&str, &str),
    name: &str,
    args: &[&str],
) -> anyhow::Result<ProbeRun> {
    lab.check()?;
    let (mut cmd, shown) = probe_cmd(exe, ns, iface, args);
    println!("   $ {shown}");
    let (code, out, err) = run_bounded(lab, name, &mut cmd, Duration::from_secs(15))?;
    print!("{}", indent(&out));
    if !err.trim().is_empty() {
        print!("{}", indent(&err));
    }
    Ok(ProbeRun { code, out })
}

/// A probe in the plain demo's client namespace.
fn probe(lab: &Lab, exe: &Path, name: &str, args: &[&str]) -> anyhow::Result<ProbeRun> {
    probe_in(lab, exe, (&lab.ns_name("cli"), CLI_IF), name, args)
}

/// The demo itself. Returns the summary, or the first step that could not be done.
fn steps(lab: &Lab, exe: &Path) -> anyhow::Result<String> {
    let started = Instant::now();
    println!("leased demo: a DHCP server and clients in two private network namespaces.");
    println!("Nothing here touches your real network; every address is in 198.18.0.0/15.\n");

    // 1. The lab.
    let (srv_ns, cli_ns) = (lab.ns_name("srv"), lab.ns_name("cli"));
    println!(
        "== 1. network: {srv_ns} [{SRV_IF} {SRV_ADDR}] <-veth-> {cli_ns} [{CLI_IF}, no address]"
    );
    lab.add_ns("srv")?;
    lab.add_ns("cli")?;
    lab.check()?;
    quiet(Command::new("ip").args([
        "link", "add", CLI_IF, "netns", &cli_ns, "type", "veth", "peer", "name", SRV_IF, "netns",
        &srv_ns,
    ]))?;
    quiet(Command::new("ip").args(["-n", &srv_ns, "addr", "add", SRV_ADDR, "dev", SRV_IF]))?;
    quiet(Command::new("ip").args(["-n", &srv_ns, "link", "set", SRV_IF, "up"]))?;
    quiet(Command::new("ip").args(["-n", &cli_ns, "link", "set", CLI_IF, "up"]))?;

    // 2. The config.
    lab.check()?;
    let store = lab.dir.join("leased.leases");
    let (cfg, mut cfg_file) = lab.create("leased.toml")?;
    std::io::Write::write_all(&mut cfg_file, config_text(&store).as_bytes())
        .with_context(|| format!("cannot write {}", cfg.display()))?;
    drop(cfg_file);
    println!("\n== 2. config {}", cfg.display());
    print!("{}", indent(&config_text(&store)));

    // 3. The server.
    let (pid, log_path) = lab.start_server("server", &srv_ns, exe, &cfg, "server.log")?;
    println!(
        "\n== 3. server: leased serve -c {} (pid {pid}, in {srv_ns})",
        cfg.display()
    );
    let waited = wait_listening(lab, &srv_ns, &log_path)?;
    println!("   listening on UDP 67 after {} ms", waited.as_millis());

    // 4. Clients.
    let mut failures: Vec<String> = Vec::new();
    lab.check()?;
    println!(
        "\n== 4. a new client (random MAC) asks for an address: DISCOVER, OFFER, REQUEST, ACK"
    );
    let r = probe(lab, exe, "probe-new", &["--hostname", "demo-laptop"])?;
    match (r.code, probe_address(&r.out)) {
        (Some(0), Some(a)) => println!("   -> got {a} from the pool 198.18.0.100-150"),
        _ => failures.push(format!("new client: probe exited {:?}", r.code)),
    }

    lab.check()?;
    println!("\n== 5. the reserved device {RESERVED_MAC} always gets {RESERVED_IP}");
    let r = probe(lab, exe, "probe-reserved", &["--mac", RESERVED_MAC])?;
    match (r.code, probe_address(&r.out)) {
        (Some(0), Some(a)) if a == RESERVED_IP => println!("   -> got its reservation {a}"),
        (code, addr) => failures.push(format!(
            "reserved client: exit {code:?}, address {addr:?} (expected {RESERVED_IP})"
        )),
    }

    lab.check()?;
    println!("\n== 6. the banned device {BANNED_MAC} gets no answer at all");
    let r = probe(
        lab,
        exe,
        "probe-banned",
        &["--mac", BANNED_MAC, "--timeout", "2"],
    )?;
    match r.code {
        Some(4) => println!("   -> timed out, as it should: the server ignores banned clients"),
        code => failures.push(format!(
            "banned client: expected a timeout (exit 4), got {code:?}"
        )),
    }

    lab.check()?;
    println!("\n== 7. a client takes a lease and gives it back (RELEASE)");
    let r = probe(
        lab,
        exe,
        "probe-release",
        &["--mac", RELEASE_MAC, "--release"],
    )?;
    match (r.code, probe_address(&r.out)) {
        (Some(0), Some(a)) => println!("   -> {a} released; the table below shows it as released"),
        _ => failures.push(format!("releasing client: probe exited {:?}", r.code)),
    }
    // The RELEASE is persisted lazily (nobody waits for it); give the server a moment.
    std::thread::sleep(Duration::from_millis(500));

    // 8. The lease table, as an operator would read it.
    lab.check()?;
    println!("\n== 8. leases: leased leases -c {}", cfg.display());
    let mut cmd = Command::new(exe);
    cmd.arg("leases").arg("-c").arg(&cfg);
    let (code, out, err) = run_bounded(lab, "leases", &mut cmd, Duration::from_secs(10))?;
    print!("{}", indent(&out));
    if code != Some(0) {
        print!("{}", indent(&err));
        failures.push(format!("leases: exited {code:?}"));
    }
    let mut cmd = Command::new(exe);
    cmd.arg("leases").arg("-c").arg(&cfg).arg("--json");
    let (_, json, _) = run_bounded(lab, "leases-json", &mut cmd, Duration::from_secs(10))?;
    for (mac, want) in [(RESERVED_MAC, "bound"), (RELEASE_MAC, "released")] {
        match lease_state(&json, mac) {
            Some(state) if state == want => {}
            state => failures.push(format!(
                "lease table: {mac} is {state:?}, expected {want:?}"
            )),
        }
    }

    // 9. Stop the server and show what it logged.
    println!("\n== 9. server log ({})", log_path.display());
    if let Some(s) = lab.stop_server("server") {
        println!("   {s}");
    }
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(80);
    for l in lines.iter().skip(skip) {
        println!("   | {l}");
    }

    let secs = started.elapsed().as_secs_f32();
    if failures.is_empty() {
        Ok(format!(
            "demo finished in {secs:.1}s: every step behaved as expected.\n\
             Next: read leased.example.toml, run `leased check -c FILE`, then `leased serve -c FILE`."
        ))
    } else {
        bail!(
            "{} step(s) did not behave as expected:\n  {}",
            failures.len(),
            failures.join("\n  ")
        )
    }
}

/// Polls `ss -uln` in the server namespace `ns` until something listens on UDP 67; fails
/// early if the server exits, and after [`READY_LIMIT`].
fn wait_listening(lab: &Lab, ns: &str, log: &Path) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < READY_LIMIT {
        lab.check()?;
        if let Some(status) = lab.server_exited("server") {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!(
                "the server exited during start-up ({status}):\n{}",
                indent(&text)
            );
        }
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-Huln"])
            .output()
            .context("cannot run ss")?;
        let listening = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|tok| tok.ends_with(":67"));
        if listening {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    bail!(
        "the server did not listen on UDP 67 within {}s; its log:\n{}",
        READY_LIMIT.as_secs(),
        indent(&text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use leased_config::{Format, load_str};

    #[test]
    fn demo_config_is_valid() {
        let text = config_text(Path::new("/tmp/x/leased.leases"));
        let c = load_str(&text, "demo", Format::Toml).unwrap();
        assert_eq!(c.network.subnets.len(), 1);
        assert_eq!(c.network.subnets[0].reservations.len(), 1);
        assert_eq!(c.network.banned_macs.len(), 1);
        assert_eq!(c.store.path, PathBuf::from("/tmp/x/leased.leases"));
    }

    #[test]
    fn lease_state_from_json() {
        let j = r#"[{"mac":"02:00:00:00:00:20","state":"released"}]"#;
        assert_eq!(lease_state(j, RELEASE_MAC).as_deref(), Some("released"));
        assert_eq!(lease_state(j, RESERVED_MAC), None);
        assert_eq!(lease_state("not json", RESERVED_MAC), None);
    }

    #[test]
    fn address_line() {
        assert_eq!(
            probe_address("x\naddress: 198.18.0.10\n"),
            Some("198.18.0.10")
        );
        assert_eq!(probe_address("timeout: no OFFER within 2s\n"), None);
    }
}
