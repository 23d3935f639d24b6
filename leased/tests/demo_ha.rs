//! `leased demo --ha` end to end, as a newcomer runs it (`sudo leased demo --ha`):
//! - it finishes with every step as expected: the pair reaches hot-standby, the primary
//!   answers the first clients, the standby goes partner-down after `kill -9` of the primary
//!   and serves a new client, holds the earlier leases, and the restarted primary syncs and
//!   answers again;
//! - it works in a private 0700 directory with an unpredictable name under `$TMPDIR` (a
//!   world-writable one here), its namespaces carry that name, and nothing it made is left:
//!   no directory, no namespace, no process;
//! - SIGTERM in the middle of the takeover stops it (exit 130) and cleans up just the same.
//!
//! Needs root (namespaces): `SKIP` on a laptop, a failure under `CI=true`. The demo itself
//! uses addresses in 198.18.0.0/15 only; every wait here is bounded, the demo is signalled by
//! its PID.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::useless_vec)]

#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::proc::run;

const LEASED: &str = env!("CARGO_BIN_EXE_leased");
/// The demo's own limit is 90 s; cleanup comes on top.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A running `leased demo --ha` with its stdout in a file, and what was seen of its private
/// directory while it ran.
struct Demo {
    child: Child,
    out: PathBuf,
    tmp: tempfile::TempDir,
    /// (path, mode, owner) of the demo's directory, once seen.
    dir: Option<(PathBuf, u32, u32)>,
    _scratch: tempfile::TempDir,
}

impl Demo {
    fn start() -> Demo {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path().join("demo.out");
        let child = Command::new(LEASED)
            .args(["demo", "--ha"])
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Demo {
            child,
            out,
            tmp,
            dir: None,
            _scratch: scratch,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Runs until the demo exits (or `until` holds on its output, then returns `None`),
    /// noting its directory meanwhile.
    fn wait(&mut self, until: impl Fn(&str) -> bool) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if t0.elapsed() > RUN_LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the demo ran too long:\n{}", self.output());
            }
            if self.dir.is_none() {
                for e in std::fs::read_dir(self.tmp.path()).unwrap().flatten() {
                    let p = e.path();
                    let Ok(meta) = std::fs::symlink_metadata(&p) else {
                        continue;
                    };
                    if meta.is_dir() {
                        self.dir = Some((p, meta.mode() & 0o7777, meta.uid()));
                    }
                }
            }
            if until(&self.output()) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The demo's directory: private, unpredictable, gone now, and nothing of it left behind
    /// (namespaces, processes).
    fn assert_cleaned_up(&self) {
        let text = self.output();
        let (dir, mode, owner) = self
            .dir
            .clone()
            .unwrap_or_else(|| panic!("the demo's directory was never seen:\n{text}"));
        assert_eq!(mode, 0o700, "{}", dir.display());
        assert_eq!(owner, 0);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let random = name.strip_prefix("leased-demo-").unwrap();
        assert!(
            !random.is_empty() && !random.bytes().all(|b| b.is_ascii_digit()),
            "{name} is a predictable name"
        );
        assert!(!dir.exists(), "the demo left {} behind", dir.display());
        let left = run(None, &argv!["ip", "netns", "list"], Duration::from_secs(5));
        assert!(
            !left.stdout.contains(&name),
            "namespaces left: {}",
            left.stdout
        );
        let procs = processes_naming(&dir);
        assert!(procs.is_empty(), "processes left: {procs:?}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// PIDs whose command line names `dir` (the servers get their config from there).
fn processes_naming(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&needle) {
            out.push((pid, cmd));
        }
    }
    out
}

/// The `+N.NNs` time of the first output line containing `what`.
fn time_of(text: &str, what: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains(what))?;
    line.split_whitespace()
        .next()?
        .strip_prefix('+')?
        .strip_suffix('s')?
        .parse()
        .ok()
}

#[test]
fn demo_ha_shows_takeover_and_return_then_cleans_up() {
    if !gate!() {
        return;
    }
    let mut demo = Demo::start();
    let status = demo.wait(|_| false).unwrap();
    let text = demo.output();
    assert!(status.success(), "demo --ha failed ({status}):\n{text}");
    assert!(text.contains("every step behaved as expected"), "{text}");
    // The story, in order.
    let mut at = 0;
    for step in [
        "HA state ready -> hot-standby",
        "-> the pair is in hot-standby",
        "-> laptop-1 got 198.18.0.",
        "from 198.18.0.1 (dhcp-a)",
        "$ kill -9 ",
        "dhcp-b: HA partner link down",
        "dhcp-b: HA state hot-standby -> partner-down",
        "from 198.18.0.2 (dhcp-b)",
        "02:00:00:00:0a:01  laptop-1",
        "dhcp-a: HA state waiting -> syncing",
        "dhcp-a: HA: sync from the partner done (4 leases",
        "dhcp-b: HA state partner-down -> hot-standby",
        "-> desk-4 got 198.18.0.",
        "== cleanup",
    ] {
        let found = text[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing (or out of order) in:\n{text}"));
        at += found + step.len();
    }
    // The takeover is bounded by the demo's timers: the link drop is seen at once, the
    // retrying client is counted within a few seconds (generous bound: a loaded machine).
    let down = time_of(&text, "hot-standby -> partner-down").unwrap();
    assert!(down < 15.0, "partner-down {down} s after the kill:\n{text}");
    // The secrets are in the private files only.
    assert!(!text.contains("shared_key = \"0"), "{text}");
    assert!(text.contains("shared_key = \"…\""), "{text}");
    let name = demo
        .dir
        .as_ref()
        .and_then(|(d, _, _)| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap();
    assert!(
        text.contains(&format!("{name}-hub")),
        "the namespaces carry the directory's random part:\n{text}"
    );
    demo.assert_cleaned_up();
}

#[test]
fn demo_ha_stopped_by_sigterm_mid_takeover_cleans_up() {
    if !gate!() {
        return;
    }
    let mut demo = Demo::start();
    let early = demo.wait(|t| t.contains("$ kill -9 "));
    assert!(
        early.is_none(),
        "the demo ended before the kill:\n{}",
        demo.output()
    );
    let pid = i32::try_from(demo.child.id()).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = demo.wait(|_| false).unwrap();
    let text = demo.output();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("SIGTERM: stopping the demo"), "{text}");
    assert!(text.contains("== cleanup"), "{text}");
    demo.assert_cleaned_up();
}
