//! Child processes with bounded waits. Every process the harness starts is a [`Proc`]: it is
//! stopped by PID (SIGTERM, bounded wait, SIGKILL) when dropped, so a failing assertion never
//! leaves a DHCP client or server running.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Searches PATH plus the sbin directories (cargo's PATH may lack them) for an executable.
pub fn find_bin(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| {
                    m.is_file()
                        && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                })
                .unwrap_or(false)
        })
}

/// Like [`find_bin`] but panics with a clear message (tests gate on availability first).
pub fn bin(name: &str) -> String {
    find_bin(name)
        .unwrap_or_else(|| panic!("{name} not found in PATH or sbin"))
        .to_string_lossy()
        .into_owned()
}

/// Builds `ip netns exec NS argv...` (or plain argv when `ns` is None).
pub fn command_in(ns: Option<&str>, argv: &[String]) -> Command {
    assert!(!argv.is_empty(), "empty argv");
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new(bin("ip"));
            c.args(["netns", "exec", ns]).args(argv);
            c
        }
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    c.stdin(Stdio::null());
    c
}

/// Converts a list of string-ish things into owned strings (argv building).
#[macro_export]
macro_rules! argv {
    ($($a:expr),* $(,)?) => { vec![$(::std::string::ToString::to_string(&$a)),*] };
}

/// A running child whose stdout and stderr go to one file.
pub struct Proc {
    pub name: String,
    child: Child,
    pub out: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `argv` (inside `ns` when given), output appended to `out`.
    pub fn spawn(
        name: &str,
        ns: Option<&str>,
        argv: &[String],
        out: &Path,
        env: &[(&str, String)],
    ) -> Proc {
        let f = File::options()
            .create(true)
            .append(true)
            .open(out)
            .expect("open output file");
        let f2 = f.try_clone().expect("dup output file");
        let mut c = command_in(ns, argv);
        c.stdout(Stdio::from(f)).stderr(Stdio::from(f2));
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({argv:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            out: out.to_path_buf(),
            status: None,
        }
    }

    /// The child's PID (with `ip netns exec`, the program itself: ip execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` if the child has not been reaped yet (so the PID is still ours).
    pub fn signal(&mut self, sig: Signal) -> bool {
        if self.try_status().is_some() {
            return false;
        }
        kill(Pid::from_raw(self.pid() as i32), sig).is_ok()
    }

    /// Exit status if it has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(s)) = self.child.try_wait()
        {
            self.status = Some(s);
        }
        self.status
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits at most `d` for the child to exit.
    pub fn wait_timeout(&mut self, d: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + d;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait at most `grace`, then SIGKILL and reap.
    pub fn stop(&mut self, grace: Duration) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        if let Some(s) = self.wait_timeout(grace) {
            return s;
        }
        self.kill9()
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal(Signal::SIGKILL);
        self.wait_timeout(Duration::from_secs(10))
            .unwrap_or_else(|| {
                panic!(
                    "{} (pid {}) survived SIGKILL for 10 s",
                    self.name,
                    self.pid()
                )
            })
    }

    /// Everything the process has printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.stop(Duration::from_secs(3));
        }
    }
}

/// Result of a bounded run.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// None when the command hit its deadline and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl RunOutput {
    /// The exit code (None when killed by a signal or timed out).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// True on exit status 0.
    pub fn ok(&self) -> bool {
        self.code() == Some(0)
    }

    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "status={:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

fn read_back(mut f: File) -> String {
    let mut s = String::new();
    let _ = f.seek(SeekFrom::Start(0));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    s.push_str(&String::from_utf8_lossy(&buf));
    s
}

/// Runs `argv` (inside `ns` when given) to completion or `timeout`, whichever comes first.
pub fn run(ns: Option<&str>, argv: &[String], timeout: Duration) -> RunOutput {
    run_env(ns, argv, timeout, &[])
}

/// [`run`] with extra environment variables.
pub fn run_env(
    ns: Option<&str>,
    argv: &[String],
    timeout: Duration,
    env: &[(&str, String)],
) -> RunOutput {
    let out = tempfile::tempfile().expect("tempfile");
    let err = tempfile::tempfile().expect("tempfile");
    let mut c = command_in(ns, argv);
    c.stdout(Stdio::from(out.try_clone().expect("dup")))
        .stderr(Stdio::from(err.try_clone().expect("dup")));
    for (k, v) in env {
        c.env(k, v);
    }
    let t0 = Instant::now();
    let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
    let end = t0 + timeout;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() >= end {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let soft = Instant::now() + Duration::from_secs(2);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() >= soft {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    RunOutput {
        status,
        stdout: read_back(out),
        stderr: read_back(err),
        elapsed: t0.elapsed(),
    }
}

/// Runs a command that must succeed within 10 s (setup steps); panics with its output otherwise.
pub fn must(ns: Option<&str>, argv: &[String]) -> String {
    let o = run(ns, argv, Duration::from_secs(10));
    assert!(
        o.ok(),
        "command failed: {}{argv:?}\n{}",
        ns.map(|n| format!("[netns {n}] ")).unwrap_or_default(),
        o.all()
    );
    o.stdout
}

/// Polls `f` every 50 ms until it returns Some or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when a PID exists (any owner); used only on PIDs we started.
pub fn pid_alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}
