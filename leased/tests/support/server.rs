//! The server under test: `leased serve -c FILE` inside the lab's server namespace.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::lab::Lab;
use super::leases::{LeaseRec, parse_leases};
use super::proc::{Proc, RunOutput, poll, run};
use crate::argv;

/// The `leased` binary cargo built for these tests.
pub fn leased_bin() -> String {
    env!("CARGO_BIN_EXE_leased").to_string()
}

/// How long `start` waits for the server to listen.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped, restartable) `leased serve`.
pub struct Server<'a> {
    pub lab: &'a Lab,
    pub cfg_path: PathBuf,
    proc: Option<Proc>,
    generation: u32,
    logs: Vec<PathBuf>,
}

impl Lab {
    /// Writes `config` to the lab dir and starts the server; waits until it listens on :67.
    pub fn start_server(&self, config: &str) -> Server<'_> {
        let cfg_path = self.path("leased.toml");
        std::fs::write(&cfg_path, config).expect("write config");
        std::fs::write(self.path("leased.start.toml"), config).expect("write config copy");
        let mut s = Server {
            lab: self,
            cfg_path,
            proc: None,
            generation: 0,
            logs: Vec::new(),
        };
        s.start();
        s
    }
}

impl Server<'_> {
    /// Starts a new server process (after `term`/`kill9`) with the current config file.
    pub fn start(&mut self) {
        assert!(
            self.proc.as_mut().is_none_or(|p| !p.alive()),
            "server already running"
        );
        self.generation += 1;
        let log = self.lab.path(&format!("server.{}.log", self.generation));
        let argv = argv![leased_bin(), "serve", "-c", self.cfg_path.display()];
        let env = [
            ("RUST_BACKTRACE", "1".to_string()),
            ("NO_COLOR", "1".to_string()),
        ];
        let p = Proc::spawn("leased serve", Some(&self.lab.srv_ns), &argv, &log, &env);
        self.logs.push(log);
        self.proc = Some(p);
        self.wait_ready();
    }

    fn proc(&mut self) -> &mut Proc {
        self.proc.as_mut().expect("server never started")
    }

    fn wait_ready(&mut self) {
        let t0 = Instant::now();
        let pid = self.pid();
        let ns = self.lab.srv_ns.clone();
        loop {
            if let Some(st) = self.proc().try_status() {
                panic!(
                    "leased serve exited during start-up ({st}); log:\n{}",
                    self.log()
                );
            }
            let log = self.log().to_ascii_lowercase();
            let said_ready =
                log.contains("listening") || log.contains("serving") || log.contains("ready");
            let o = run(
                Some(&ns),
                &argv!["ss", "-Hulnp", "sport = :67"],
                Duration::from_secs(5),
            );
            let listens = o.stdout.contains(&format!("pid={pid},"));
            if said_ready || listens {
                std::thread::sleep(Duration::from_millis(200));
                return;
            }
            if t0.elapsed() > READY_TIMEOUT {
                panic!(
                    "leased serve did not listen on :67 within {READY_TIMEOUT:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// PID of the current server process.
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("server never started").pid()
    }

    /// True while the current server process runs.
    pub fn alive(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.alive())
    }

    /// Sends SIGHUP (config reload).
    pub fn sighup(&mut self) {
        assert!(
            self.proc().signal(Signal::SIGHUP),
            "server not running; log:\n{}",
            self.log()
        );
    }

    /// SIGTERM and wait (bounded 10 s, then SIGKILL); returns the exit status.
    pub fn term(&mut self) -> ExitStatus {
        let p = self.proc();
        p.signal(Signal::SIGTERM);
        match p.wait_timeout(Duration::from_secs(10)) {
            Some(s) => s,
            None => {
                let s = p.kill9();
                panic!(
                    "leased ignored SIGTERM for 10 s (then {s}); log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(&mut self) -> ExitStatus {
        self.proc().kill9()
    }

    /// Log (stderr+stdout) of the current process.
    pub fn log(&self) -> String {
        self.logs
            .last()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Logs of every process generation, in order.
    pub fn all_logs(&self) -> String {
        self.logs
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits (bounded) until the current log has a line matching `pred`; returns that line.
    pub fn wait_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        poll(timeout, || {
            self.log().lines().find(|l| pred(l)).map(str::to_string)
        })
    }

    /// Replaces the config file (no reload: call `sighup`).
    pub fn write_config(&self, text: &str) {
        // write-then-rename so the server never reads a half-written file
        let tmp = self.cfg_path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, &self.cfg_path).expect("rename config");
    }

    /// `[store] path` of the config the server was started with (a line scan: the tests
    /// write that line themselves).
    pub fn store_path(&self) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.lab.path("leased.start.toml")).ok()?;
        let mut in_store = false;
        for l in text.lines().map(str::trim) {
            if l.starts_with('[') {
                in_store = l == "[store]";
            } else if in_store
                && let Some(v) = l
                    .strip_prefix("path")
                    .map(str::trim)
                    .and_then(|r| r.strip_prefix('='))
            {
                return Some(PathBuf::from(v.trim().trim_matches('"')));
            }
        }
        None
    }

    /// `leased leases --store PATH --json` (or `-c CFG` when the store path is unknown), raw.
    /// The store is named directly so that reading it does not depend on the config file,
    /// which some tests deliberately break.
    pub fn leases_cmd(&self) -> RunOutput {
        if let Some(store) = self.store_path() {
            return run(
                None,
                &argv![leased_bin(), "leases", "--store", store.display(), "--json"],
                Duration::from_secs(20),
            );
        }
        run(
            None,
            &argv![
                leased_bin(),
                "leases",
                "-c",
                self.cfg_path.display(),
                "--json"
            ],
            Duration::from_secs(20),
        )
    }

    /// The store's leases (works whether or not the server runs).
    pub fn leases(&self) -> Vec<LeaseRec> {
        let o = self.leases_cmd();
        assert!(o.ok(), "leased leases --json failed: {}", o.all());
        parse_leases(&o.stdout)
    }

    /// Polls the store until `pred` holds (bounded); returns the last read either way.
    pub fn leases_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&[LeaseRec]) -> bool,
    ) -> (bool, Vec<LeaseRec>) {
        let end = Instant::now() + timeout;
        loop {
            let l = self.leases();
            if pred(&l) {
                return (true, l);
            }
            if Instant::now() >= end {
                return (false, l);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
