//! `leased export …` and the export sidecar of `leased serve` / `leased relay`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use leased_config::{ApiSettings, ExportSettings};
use leased_export::{Exporter, router};
use leased_io::{Sidecar, SidecarStart};
use tokio::sync::mpsc;

use crate::cli::{ExportAction, ExportArgs};
use crate::timefmt::iso8601;

/// The sidecar for `leased serve`: the HTTP API (with the router endpoint when routers are
/// configured) and the exporter fed by the engine's binding events; `None` when neither is
/// configured.
pub(crate) fn sidecar(
    api: Option<ApiSettings>,
    export: Option<ExportSettings>,
    perms: leased_export::Perms,
) -> Option<SidecarStart> {
    if api.is_none() && export.is_none() {
        return None;
    }
    Some(Box::new(move |shared, shutdown| {
        let mut extra = None;
        let mut exporter_task: Option<Sidecar> = None;
        if let Some(ex) = &export {
            let exporter = Exporter::open_with(ex, perms)?;
            let (tx, rx) = mpsc::unbounded_channel();
            shared.set_binding_sink(tx);
            shared.set_export_metrics(metrics_source(exporter.metrics()));
            if !ex.routers.is_empty() {
                if api.is_none() {
                    tracing::warn!(
                        "[[export.routers]] is configured but [api] is not: the router \
                         endpoint /api/dhcp_assignments is served by the HTTP API"
                    );
                }
                extra = Some(router::endpoint(
                    exporter.handle(),
                    ex.routers.clone(),
                    ex.max_concurrent_auth,
                )?);
            }
            let stop = shutdown.clone();
            exporter_task = Some(Box::pin(async move { exporter.run(rx, stop.wait()).await }));
        }
        let api_task = match &api {
            Some(a) => Some(leased_api::start_with(
                a,
                Arc::clone(&shared),
                shutdown,
                extra,
            )?),
            None => None,
        };
        Ok(Box::pin(async move {
            let api = async move {
                match api_task {
                    Some(t) => t.await,
                    None => Ok(()),
                }
            };
            let export = async move {
                match exporter_task {
                    Some(t) => t.await,
                    None => Ok(()),
                }
            };
            tokio::try_join!(api, export).map(drop)
        }) as Sidecar)
    }))
}

/// Reads the destinations' counters into io's form, for the API's `/metrics`.
pub(crate) fn metrics_source(
    sinks: Vec<(&'static str, Arc<leased_export::SinkMetrics>)>,
) -> leased_io::ExportMetricsSource {
    Box::new(move || {
        sinks
            .iter()
            .map(|(name, m)| {
                let s = m.snapshot();
                leased_io::ExportSinkMetrics {
                    destination: (*name).to_string(),
                    uploads_ok: s.uploads_ok,
                    uploads_failed: s.uploads_failed,
                    entries_sent: s.entries_sent,
                    outbox_depth: s.outbox_depth,
                    last_success: s.last_success,
                    upload_seconds_sum: s.upload_seconds_sum,
                }
            })
            .collect()
    })
}

/// Runs `leased export …`.
pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        ExportAction::Status { config, json } => {
            let settings = export_settings(&config)?;
            let list = leased_export::status(&settings)?;
            if json {
                crate::emit(&(serde_json::to_string_pretty(&list)? + "\n"))?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut out = String::new();
            if list.is_empty() {
                out.push_str("no destination configured ([export.sonar] or [export.webhook])\n");
            }
            for s in list {
                let success = s.status.last_success.map_or("never".to_string(), iso8601);
                let error = s
                    .status
                    .last_error
                    .as_ref()
                    .map_or("none".to_string(), |(t, e)| format!("{} {e}", iso8601(*t)));
                out.push_str(&format!(
                    "{}: queue depth {}, last success {success}, last error {error}, \
                     delivered {} in {} uploads, {} failed uploads\n",
                    s.name, s.queue_depth, s.status.delivered, s.status.uploads, s.status.failures
                ));
            }
            crate::emit(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        ExportAction::Test { config } => {
            let settings = export_settings(&config)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let scratch = scratch_dir()?;
            let results = rt.block_on(leased_export::test(&settings, scratch.path()))?;
            drop(scratch);
            if results.is_empty() {
                anyhow::bail!("no destination configured ([export.sonar] or [export.webhook])");
            }
            let mut ok = true;
            let mut out = String::new();
            for (name, r) in results {
                match r {
                    Ok(m) => out.push_str(&format!("{name}: {m}\n")),
                    Err(e) => {
                        ok = false;
                        out.push_str(&format!("{name}: {e}\n"));
                    }
                }
            }
            crate::emit(&out)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(crate::EXIT_FAILURE)
            })
        }
        ExportAction::HashPassword => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the secret from stdin")?;
            let secret = line.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!secret.is_empty(), "the secret read from stdin is empty");
            crate::emit(&(router::hash_password(secret)? + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A private scratch directory for `export test`'s throw-away outboxes: a fresh, unpredictable
/// name under the temporary directory, made by `mkdir` with mode 0700 (which fails rather than
/// follow a symlink someone planted at that name), removed when dropped. Everything inside is
/// created by leased itself, so no path it opens can have been planted by another user.
fn scratch_dir() -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("leased-export-test-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .context("cannot create a private temporary directory for export test")
}

fn export_settings(path: &std::path::Path) -> anyhow::Result<ExportSettings> {
    let config = leased_config::load(path)?;
    config
        .export
        .with_context(|| format!("{} has no [export] section", path.display()))
}
