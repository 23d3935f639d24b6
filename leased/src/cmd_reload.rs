//! `leased reload`: validate the config with the server's own loader, then SIGHUP the running
//! server named by the PID file. An invalid config is refused before any signal is sent, so a
//! typo never reaches the server (which would keep its old plan anyway, but say so only in
//! its log).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use leased_config::Config;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cli::ReloadArgs;

/// Runs `leased reload`.
pub fn run(args: &ReloadArgs) -> anyhow::Result<ExitCode> {
    std::fs::metadata(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = match leased_config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!(
                "refusing to reload: {} does not validate",
                args.config.display()
            );
            return Err(errors.into());
        }
    };
    let pid = match args.pid {
        Some(pid) => {
            kill(Pid::from_raw(pid), Signal::SIGHUP)
                .with_context(|| format!("cannot signal pid {pid}"))?;
            pid
        }
        None => signal_server(&pid_file(&config, args.pid_file.as_deref())?)?,
    };
    crate::emit(&format!(
        "OK: {} is valid; sent SIGHUP to leased (pid {pid})\n",
        args.config.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The PID file to use: the one given, else the config's `[server] pid_file`.
pub fn pid_file(config: &Config, given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given.or(config.process.pid_file.as_deref()) {
        Some(p) => Ok(p.to_path_buf()),
        None => bail!(
            "no PID file: set [server] pid_file in the config (the server writes it) or give \
             --pid-file"
        ),
    }
}

/// Reads the PID from `pid_file` and sends SIGHUP; the PID on success.
pub fn signal_server(pid_file: &Path) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(pid_file).with_context(|| {
        format!(
            "cannot read PID file {} (is the server running?)",
            pid_file.display()
        )
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1)
        .with_context(|| {
            format!(
                "{} does not hold a PID: {:?}",
                pid_file.display(),
                text.trim()
            )
        })?;
    kill(Pid::from_raw(pid), Signal::SIGHUP).with_context(|| {
        format!(
            "cannot signal pid {pid} from {} (stale PID file, or another user's process?)",
            pid_file.display()
        )
    })?;
    Ok(pid)
}
