//! Loading the configuration, and reloading it on SIGHUP.
//!
//! One loader for `serve`, reload and `leased check` ([`leased_config::load`]), so what `check`
//! accepts is exactly what the server runs. A reload that
//! fails keeps the old plan: a typo in a file must never take a running server down.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::loaded::Loaded;

use crate::ConfigSource;
use crate::shared::ReloadOutcome;

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reloaded {
    /// The new plan is in place.
    Swapped,
    /// The file had errors (each logged); the old plan stays.
    Kept,
    /// An inline configuration has no file to re-read.
    NotAFile,
}

/// Re-reads the configuration and swaps the plan in `plan`, or keeps the old one and logs
/// every error (file:line:col) when the file is invalid.
///
/// Interfaces, the store path, the PID file and ports are read only at start: a reload that
/// changes them says that a restart is needed, and serves the rest of the new config.
pub(crate) fn reload(source: &ConfigSource, plan: &ArcSwap<Loaded>) -> Reloaded {
    match reload_outcome(source, plan) {
        ReloadOutcome::Swapped => Reloaded::Swapped,
        ReloadOutcome::Kept(_) => Reloaded::Kept,
        ReloadOutcome::NotAFile => Reloaded::NotAFile,
    }
}

/// [`reload`], returning the errors too (for a reload requested over the API).
pub(crate) fn reload_outcome(source: &ConfigSource, plan: &ArcSwap<Loaded>) -> ReloadOutcome {
    let ConfigSource::File(path) = source else {
        tracing::warn!("reload: the configuration was given inline; nothing to reload");
        return ReloadOutcome::NotAFile;
    };
    crate::notify::reloading();
    let outcome = swap_or_keep(path, plan);
    crate::notify::reloaded(&match &outcome {
        ReloadOutcome::Kept(errors) => format!(
            "reload failed ({} errors); serving the previous configuration",
            errors.len()
        ),
        _ => format!("configuration reloaded from {}", path.display()),
    });
    outcome
}

/// Loads `path` and swaps it in, or keeps the old plan and logs why.
fn swap_or_keep(path: &Path, plan: &ArcSwap<Loaded>) -> ReloadOutcome {
    let running_ha = plan.load().config.ha.clone();
    let loaded = leased_config::load(path).and_then(|config| {
        if config.ha == running_ha {
            return Ok(config);
        }
        // The pair's roles, peers and link are fixed for the life of the process: a server
        // that changed them alone would no longer agree with its partner on who serves whom.
        Err(leased_config::ConfigErrors(vec![
            leased_config::ConfigError {
                origin: path.display().to_string(),
                line: 0,
                col: 0,
                key: "ha".to_string(),
                message: "[ha] differs from the running configuration; changes to [ha] take \
                      effect only after a restart (the rest of the file was not applied either)"
                    .to_string(),
            },
        ]))
    });
    match loaded {
        Ok(config) => {
            let old = plan.load();
            let old = &old.config;
            if old.process.interfaces != config.process.interfaces
                || old.store != config.store
                || old.process.pid_file != config.process.pid_file
                || old.process.user.as_ref().map(|a| &a.name)
                    != config.process.user.as_ref().map(|a| &a.name)
                || old.process.group.as_ref().map(|a| &a.name)
                    != config.process.group.as_ref().map(|a| &a.name)
                || old.api != config.api
                || old.logging.file != config.logging.file
                || old.network.subnets.iter().map(|s| &s.interface).ne(config
                    .network
                    .subnets
                    .iter()
                    .map(|s| &s.interface))
            {
                tracing::warn!(
                    "config reloaded, but changes to interfaces, store.path, server.pid_file, \
                     server.user/group, [api] or logging.file take effect only after a restart"
                );
            }
            let subnets = config.network.subnets.len();
            for w in leased_config::relay_trust_warnings(&config)
                .into_iter()
                .chain(leased_config::rapid_commit_warnings(&config))
            {
                tracing::warn!("{w}");
            }
            plan.store(Arc::new(Loaded::new(config)));
            tracing::info!(path = %path.display(), subnets, "config reloaded");
            ReloadOutcome::Swapped
        }
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(
                    origin = %e.origin, line = e.line, col = e.col, key = %e.key,
                    "{e}"
                );
            }
            tracing::error!(
                path = %path.display(),
                errors = errors.0.len(),
                "config reload failed; still serving the previous configuration"
            );
            ReloadOutcome::Kept(errors.0.iter().map(ToString::to_string).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn invalid_file_keeps_the_old_plan() {
        let old = Arc::new(Loaded::new(crate::testutil::config_with(
            &["198.18.0.0/24"],
            &["lo"],
            &[None],
        )));
        let swap = ArcSwap::new(Arc::clone(&old));
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        writeln!(file, "this is = = not toml [[[").unwrap();
        writeln!(file, "[server]\nno_such_key = 1").unwrap();
        let got = reload(&ConfigSource::File(file.path().to_path_buf()), &swap);
        assert_eq!(got, Reloaded::Kept);
        assert!(Arc::ptr_eq(&swap.load_full(), &old));
    }

    #[test]
    fn missing_file_keeps_the_old_plan() {
        let old = Arc::new(Loaded::new(crate::testutil::config_with(
            &["198.18.0.0/24"],
            &[],
            &[None],
        )));
        let swap = ArcSwap::new(Arc::clone(&old));
        let dir = tempfile::tempdir().unwrap();
        let got = reload(&ConfigSource::File(dir.path().join("absent.toml")), &swap);
        assert_eq!(got, Reloaded::Kept);
        assert!(Arc::ptr_eq(&swap.load_full(), &old));
    }

    #[test]
    fn inline_cannot_reload() {
        let cfg = crate::testutil::config_with(&["198.18.0.0/24"], &[], &[None]);
        let swap = ArcSwap::new(Arc::new(Loaded::new(cfg.clone())));
        assert_eq!(
            reload(&ConfigSource::Inline(cfg), &swap),
            Reloaded::NotAFile
        );
    }
}
