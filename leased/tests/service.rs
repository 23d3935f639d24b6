//! leased as a systemd service, without systemd: `leased serve` (test mode on loopback, high
//! ports, addresses in 198.18.0.0/15) with `NOTIFY_SOCKET` pointing at a datagram socket this
//! test reads (READY after the bind, RELOADING/READY around SIGHUP, STOPPING on SIGTERM,
//! STATUS, watchdog pings); the journal format under a `JOURNAL_STREAM` that names stderr;
//! `[logging] file` reopened on SIGUSR1; the shipped units through `systemd-analyze verify`;
//! the packaged config; man pages and completions. Every wait is bounded; processes are
//! stopped by PID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "ops/common.rs"]
mod common;
#[path = "ops/notify.rs"]
mod notify;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, Proc, dora, free_tcp, free_udp, leased, text, wait_for};
use notify::Manager;

const KEY: &str = "service-key-0123456789";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A loopback config serving 198.18.0.0/24 in test mode, with the API on `api`.
fn config(dir: &Path, api: u16, extra: &str) -> String {
    format!(
        r#"[server]
interfaces = ["lo"]
pid_file = "{pid}"

[store]
path = "{store}"

[api]
listen = "127.0.0.1:{api}"
keys = ["{KEY}"]

[[subnets]]
network = "198.18.0.0/24"
interface = "lo"
server_id = "198.18.0.1"
routers = ["198.18.0.1"]
pools = ["198.18.0.100-198.18.0.119"]
{extra}"#,
        pid = dir.join("leased.pid").display(),
        store = dir.join("leases.db").display(),
    )
}

fn spawn_serve(cfg: &Path, port: u16, log: &Path, env: &[(&str, String)]) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let mut c = Command::new(BIN);
    c.args([
        "serve",
        "-c",
        cfg.to_str().unwrap(),
        "--port",
        &port.to_string(),
        "--client-port",
        &(port + 1).to_string(),
    ])
    .env_remove("LEASED_API_KEYS")
    .env_remove("NOTIFY_SOCKET")
    .env_remove("WATCHDOG_USEC")
    .env_remove("WATCHDOG_PID")
    .env_remove("JOURNAL_STREAM")
    .env_remove("RUST_LOG")
    .stdin(Stdio::null())
    .stdout(out.try_clone().unwrap())
    .stderr(out);
    for (k, v) in env {
        c.env(k, v);
    }
    Proc(c.spawn().unwrap())
}

fn signal(p: &Proc, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(p.0.id()).unwrap());
    nix::sys::signal::kill(pid, sig).unwrap();
}

#[test]
fn serve_tells_the_service_manager_ready_reloading_stopping_status_and_feeds_the_watchdog() {
    use nix::sys::signal::Signal;
    let dir = tempfile::tempdir().unwrap();
    let api = free_tcp();
    let dhcp = free_udp();
    let cfg = dir.path().join("leased.toml");
    let valid = config(dir.path(), api, "");
    std::fs::write(&cfg, &valid).unwrap();
    let mut mgr = Manager::bind(dir.path());
    let log = dir.path().join("server.log");
    let server_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut server = spawn_serve(
        &cfg,
        dhcp,
        &log,
        &[
            ("NOTIFY_SOCKET", mgr.path.display().to_string()),
            ("WATCHDOG_USEC", "2000000".into()),
        ],
    );

    // READY=1 comes first, once every socket is bound: the API answers and a client is served
    // the moment it arrives, with no retry on the API side.
    let ready = mgr.next_state(Duration::from_secs(20));
    let ready = ready.unwrap_or_else(|| panic!("no READY=1:\n{}", server_log()));
    assert!(ready.starts_with("READY=1\n"), "first message: {ready:?}");
    assert!(
        ready.contains("STATUS=serving on lo; 0 leases loaded"),
        "{ready:?}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", api)).is_ok(),
        "READY=1 before the API listens"
    );
    assert!(
        server_log().contains("loaded 0 leases"),
        "READY=1 before the store was loaded:\n{}",
        server_log()
    );
    assert!(
        mgr.seen
            .first()
            .is_some_and(|(_, m)| m.starts_with("READY=1")),
        "nothing may come before READY=1: {}",
        mgr.all()
    );
    let ip = dora(dhcp, [2, 0, 0, 0, 9, 1], 0x9001, "svc");
    assert!(ip.octets()[..3] == [198, 18, 0], "{ip}");

    // WATCHDOG_USEC=2 s: pinged at least every half second, from the engine task.
    let pings = mgr.pings_within(Duration::from_secs(3));
    assert!(pings >= 3, "{pings} watchdog pings in 3 s:\n{}", mgr.all());

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1.
    signal(&server, Signal::SIGHUP);
    let reloading = mgr.next_state(Duration::from_secs(10)).unwrap();
    let mono = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|r| r.trim_end().parse::<u64>().ok());
    assert!(mono.is_some_and(|us| us > 0), "{reloading:?}");
    let after = mgr.next_state(Duration::from_secs(10)).unwrap();
    assert!(after.starts_with("READY=1\n"), "{after:?}");
    assert!(after.contains("STATUS=configuration reloaded"), "{after:?}");

    // An invalid file: still RELOADING/READY (the server serves on), and the status says so.
    std::fs::write(&cfg, format!("{valid}\n[server]\nbogus = 1\n")).unwrap();
    signal(&server, Signal::SIGHUP);
    let reloading = mgr.next_state(Duration::from_secs(10)).unwrap();
    assert!(reloading.starts_with("RELOADING=1\n"), "{reloading:?}");
    let after = mgr.next_state(Duration::from_secs(10)).unwrap();
    assert!(after.starts_with("READY=1\n"), "{after:?}");
    assert!(after.contains("reload failed"), "{after:?}");
    std::fs::write(&cfg, &valid).unwrap();

    // The periodic status counts the active lease and the requests.
    let status = mgr.wait_for(Duration::from_secs(15), "active leases");
    let status = status.unwrap_or_else(|| panic!("no periodic status:\n{}", mgr.all()));
    assert!(status.starts_with("STATUS=1 active leases; "), "{status:?}");
    assert!(status.contains("requests/s"), "{status:?}");
    // DISCOVER and REQUEST, and any retransmission of them.
    let total = status
        .split("; ")
        .last()
        .and_then(|t| t.strip_suffix(" requests since start\n"))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(total.is_some_and(|n| n >= 2), "{status:?}");

    // SIGTERM: STOPPING=1, then a clean exit.
    signal(&server, Signal::SIGTERM);
    let stopping = mgr.next_state(Duration::from_secs(10)).unwrap();
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping:?}");
    assert!(
        wait_for(Duration::from_secs(10), || matches!(
            server.0.try_wait(),
            Ok(Some(s)) if s.success()
        )),
        "server did not stop cleanly:\n{}",
        server_log()
    );
}

#[test]
fn a_watchdog_meant_for_another_process_is_not_fed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("leased.toml");
    std::fs::write(&cfg, config(dir.path(), free_tcp(), "")).unwrap();
    let mut mgr = Manager::bind(dir.path());
    let log = dir.path().join("server.log");
    let mut server = spawn_serve(
        &cfg,
        free_udp(),
        &log,
        &[
            ("NOTIFY_SOCKET", mgr.path.display().to_string()),
            ("WATCHDOG_USEC", "2000000".into()),
            // PID 1 is not us: the variables were inherited.
            ("WATCHDOG_PID", "1".into()),
        ],
    );
    let ready = mgr.next_state(Duration::from_secs(20));
    assert!(
        ready.as_deref().is_some_and(|m| m.starts_with("READY=1")),
        "{ready:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(mgr.pings_within(Duration::from_secs(3)), 0, "{}", mgr.all());
    server.term();
}

/// `(dev, inode)` of a file, as systemd writes them into `JOURNAL_STREAM`.
fn dev_ino(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    format!("{}:{}", m.dev(), m.ino())
}

/// Runs `leased serve` with stderr into `log` and `JOURNAL_STREAM` set to `stream(log)`; the
/// lines it wrote by the time it stopped.
fn serve_lines(dir: &Path, stream: impl Fn(&Path) -> String) -> Vec<String> {
    let cfg = dir.join("leased.toml");
    std::fs::write(&cfg, config(dir, free_tcp(), "")).unwrap();
    let log = dir.join("server.log");
    std::fs::write(&log, "").unwrap();
    let dhcp = free_udp();
    let mut server = spawn_serve(
        &cfg,
        dhcp,
        &log,
        &[
            ("JOURNAL_STREAM", stream(&log)),
            ("RUST_LOG", "debug".into()),
        ],
    );
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("test mode")),
        "server did not start:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    dora(dhcp, [2, 0, 0, 0, 9, 2], 0x9002, "journal");
    // An error line: an invalid reload logs every error and keeps the old config.
    std::fs::write(&cfg, "[server]\nbogus = 1\n").unwrap();
    signal(&server, nix::sys::signal::Signal::SIGHUP);
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("config reload failed")
    }));
    server.term();
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// An RFC 3339 timestamp as tracing writes it (`2026-01-02T03:04:05.…Z`).
fn has_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.windows(20).any(|w| {
        w[4] == b'-' && w[7] == b'-' && w[10] == b'T' && w[13] == b':' && w[16] == b':' && {
            w[..4].iter().all(u8::is_ascii_digit)
        }
    })
}

#[test]
fn under_the_journal_lines_carry_their_priority_and_no_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let lines = serve_lines(dir.path(), dev_ino);
    assert!(lines.len() > 5, "{lines:?}");
    for l in &lines {
        let p = l
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .and_then(|(n, _)| n.parse::<u8>().ok());
        assert!(p.is_some_and(|p| p <= 7), "no priority prefix: {l:?}");
        assert!(!has_timestamp(l), "own timestamp under the journal: {l:?}");
    }
    let with = |prio: &str, needle: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(prio) && l.contains(needle))
    };
    assert!(with("<6>", "loaded 0 leases"), "{lines:?}");
    assert!(with("<7>", "DEBUG"), "{lines:?}");
    assert!(with("<3>", "config reload failed"), "{lines:?}");
    assert!(
        with("<6>", "02:00:00:00:09:02"),
        "the client's lines: {lines:?}"
    );
}

#[test]
fn a_journal_stream_that_is_not_stderr_is_ignored() {
    // The variable was inherited, but stderr is another file: keep timestamps, no prefixes.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    std::fs::write(&other, "").unwrap();
    let lines = serve_lines(dir.path(), |_| dev_ino(&other));
    assert!(lines.len() > 5, "{lines:?}");
    for l in &lines {
        assert!(!l.starts_with('<'), "{l:?}");
        assert!(has_timestamp(l), "{l:?}");
    }
}

#[test]
fn the_log_file_is_reopened_on_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leased.log");
    let rotated = dir.path().join("leased.log.1");
    let cfg = dir.path().join("leased.toml");
    let extra = format!("\n[logging]\nfile = \"{}\"\n", file.display());
    // [logging] must come before [[subnets]] to stay a top-level table: put it first.
    std::fs::write(
        &cfg,
        format!("{extra}\n{}", config(dir.path(), free_tcp(), "")),
    )
    .unwrap();
    let stderr = dir.path().join("stderr.log");
    let dhcp = free_udp();
    let mut server = spawn_serve(&cfg, dhcp, &stderr, &[]);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(20), || read(&file)
            .contains("test mode")),
        "no start-up lines in the file:\n{}\nstderr:\n{}",
        read(&file),
        read(&stderr)
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o007, 0, "log file mode {mode:o}");
    dora(dhcp, [2, 0, 0, 0, 9, 3], 0x9003, "before");
    // Every line of that exchange is in the file before it is rotated (the ACK's line is
    // written once the ACK has left, so the client can have it first).
    assert!(wait_for(Duration::from_secs(10), || read(&file)
        .lines()
        .any(
            |l| l.contains("ACK ip=") && l.contains("02:00:00:00:09:03")
        )));

    // logrotate: rename, then SIGUSR1.
    std::fs::rename(&file, &rotated).unwrap();
    signal(&server, nix::sys::signal::Signal::SIGUSR1);
    assert!(
        wait_for(Duration::from_secs(10), || read(&file)
            .contains("log file reopened")),
        "no reopen:\nnew:\n{}\nold:\n{}",
        read(&file),
        read(&rotated)
    );
    dora(dhcp, [2, 0, 0, 0, 9, 4], 0x9004, "after");
    assert!(
        wait_for(Duration::from_secs(10), || read(&file)
            .contains("02:00:00:00:09:04")),
        "new lines do not reach the new file:\n{}",
        read(&file)
    );
    server.term();
    let (old, new) = (read(&rotated), read(&file));
    assert!(old.contains("02:00:00:00:09:03"), "{old}");
    assert!(
        !old.contains("02:00:00:00:09:04"),
        "the old file got new lines:\n{old}"
    );
    assert!(!new.contains("02:00:00:00:09:03"), "{new}");
    assert!(new.contains("SIGTERM: shutting down"), "{new}");
    assert!(read(&stderr).trim().is_empty(), "stderr: {}", read(&stderr));
}

/// `systemd-analyze`, or `None` with a printed reason (a failure under `CI=true`).
fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !ci(),
            "systemd-analyze is missing (.ci/run installs systemd)"
        );
        println!("SKIP: systemd-analyze is not installed");
        return None;
    }
    Some("systemd-analyze")
}

#[test]
fn the_shipped_units_pass_systemd_analyze_verify() {
    let Some(sa) = systemd_analyze() else { return };
    let dir = tempfile::tempdir().unwrap();
    for unit in ["leased.service", "leased-relay.service"] {
        let unit_text =
            std::fs::read_to_string(repo().join("packaging/systemd").join(unit)).unwrap();
        // The binary under test stands in for /usr/bin/leased (verify checks it exists); the
        // man pages are checked where they are installed (.ci/deb-check).
        let path = dir.path().join(unit);
        std::fs::write(&path, unit_text.replace("/usr/bin/leased", BIN)).unwrap();
        let o = Command::new(sa)
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let (out, err) = text(&o);
        assert!(o.status.success(), "{unit}: {out}{err}");
        assert!(
            out.trim().is_empty() && err.trim().is_empty(),
            "{unit} warns: {out}{err}"
        );

        // What the brief asks of the hardening, key by key.
        for line in [
            "Type=notify",
            "WatchdogSec=30s",
            "User=leased",
            "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW",
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_RAW",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "StateDirectory=leased",
        ] {
            assert!(unit_text.lines().any(|l| l == line), "{unit} lacks {line}");
        }
        let o = Command::new(sa)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&path)
            .output()
            .unwrap();
        let (out, err) = text(&o);
        let level = out
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for ").map(|(_, r)| r))
            .and_then(|r| r.split(": ").nth(1))
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<f64>().ok());
        assert!(
            level.is_some_and(|l| l <= 3.0),
            "{unit}: {level:?}\n{out}{err}"
        );
    }
    let serve = std::fs::read_to_string(repo().join("packaging/systemd/leased.service")).unwrap();
    assert!(serve.lines().any(
        |l| l == "ExecReload=/usr/bin/leased reload -c /etc/leased/leased.toml --pid $MAINPID"
    ));
    assert!(serve.contains("ReadWritePaths=/etc/leased"));
}

#[test]
fn the_packaged_config_checks_and_serves_nothing() {
    let path = repo().join("packaging/leased.toml");
    let o = leased(&["check", "-c", path.to_str().unwrap()], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("(0 subnets, 0 reservations)"), "{out}");

    // With its paths moved into a temporary directory, serve refuses to start.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let moved = std::fs::read_to_string(&path)
        .unwrap()
        .replace("/var/lib/leased/", &format!("{d}/"))
        .replace("/run/leased/", &format!("{d}/"));
    let cfg = dir.path().join("leased.toml");
    std::fs::write(&cfg, moved).unwrap();
    let o = leased(
        &[
            "serve",
            "-c",
            cfg.to_str().unwrap(),
            "--port",
            &free_udp().to_string(),
        ],
        &[],
    );
    let (out, err) = text(&o);
    assert!(
        !o.status.success(),
        "the packaged config served:\n{out}{err}"
    );
    assert!(err.contains("no interface to serve"), "{err}");
}

#[test]
fn man_pages_and_completions_cover_every_verb() {
    let dir = tempfile::tempdir().unwrap();
    let o = leased(&["man", "--out", dir.path().to_str().unwrap()], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    for verb in [
        "",
        "serve",
        "check",
        "leases",
        "probe",
        "demo",
        "stats",
        "manage",
        "manage-add",
        "reload",
        "console-attach",
        "isc-serve",
        "import-isc",
        "relay",
        "export-status",
        "db-init",
        "history",
        "completions",
    ] {
        let page = dir.path().join(format!(
            "leased{}{verb}.1",
            if verb.is_empty() { "" } else { "-" }
        ));
        let t =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            t.starts_with(".ie") || t.contains(".TH"),
            "{}",
            page.display()
        );
    }
    assert!(
        !dir.path().join("leased-man.1").exists(),
        "the hidden verb has no page"
    );
    let serve = std::fs::read_to_string(dir.path().join("leased-serve.1")).unwrap();
    assert!(
        serve.contains("\\-\\-config") || serve.contains("--config"),
        "{serve}"
    );

    for (shell, marker) in [
        ("bash", "complete -F _leased"),
        ("zsh", "#compdef leased"),
        ("fish", "complete -c leased"),
    ] {
        let o = leased(&["completions", shell], &[]);
        let (out, _) = text(&o);
        assert!(o.status.success() && out.contains(marker), "{shell}: {out}");
        assert!(out.contains("serve") && out.contains("relay"), "{shell}");
    }
    // bash loads its script and registers the completion.
    let script = dir.path().join("leased.bash");
    std::fs::write(&script, text(&leased(&["completions", "bash"], &[])).0).unwrap();
    let o = Command::new("bash")
        .args([
            "-c",
            &format!("source {} && complete -p leased", script.display()),
        ])
        .output()
        .unwrap();
    assert!(text(&o).0.contains("_leased"), "{:?}", text(&o));
}
