//! `leased relay -c FILE`: the relay agent, with the exporter beside it when `[export]` is set.

use std::process::ExitCode;

use anyhow::Context;
use leased_export::Exporter;
use leased_io::{RelayHooks, load_config};
use tokio::sync::mpsc;

use crate::cli::RelayArgs;

/// Runs the relay until SIGTERM/SIGINT.
pub fn run(args: &RelayArgs) -> anyhow::Result<ExitCode> {
    std::fs::metadata(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = load_config(&args.config)?;
    let relay = config
        .relay
        .clone()
        .with_context(|| format!("{} has no [relay] section", args.config.display()))?;
    let log = crate::logging::init(&config.logging, None, crate::logging::Buffering::Direct)?;
    crate::rlimit::raise_open_files();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    log.reopen_on_sigusr1(&runtime)?;
    let run_as = leased_io::privileges::resolve(&config.server, &args.config.display().to_string())
        .map_err(|e| anyhow::anyhow!(leased_core::config::ConfigErrors(e)))?;
    runtime.block_on(async move {
        let mut hooks = RelayHooks {
            run_as,
            ..RelayHooks::default()
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let exporter = match &config.export {
            Some(ex) => {
                if !ex.routers.is_empty() {
                    tracing::warn!(
                        "[[export.routers]] is ignored by leased relay: the router endpoint is \
                         served by `leased serve` with [api]"
                    );
                }
                if !relay.server_id_override && !relay.rewrite_server_id {
                    tracing::warn!(
                        "[export] with leased relay: clients renew by unicast straight to the \
                         server, which the relay does not see, so a binding renewed that way \
                         is reported expired at the end of the lease time it was relayed with; \
                         set relay.rewrite_server_id = true (or server_id_override = true \
                         when the server honours RFC 5107) so renewals pass through the relay"
                    );
                }
                let perms = leased_export::Perms::for_group(config.server.group.is_some());
                let exporter = Exporter::open_with(ex, perms)?;
                // Opened as root; the outbox keeps taking files after the drop.
                hooks.writable_dirs.push(ex.outbox.clone());
                let (tx, rx) = mpsc::unbounded_channel();
                hooks.bindings = Some(tx);
                let mut stop = stop_rx.clone();
                Some(tokio::spawn(async move {
                    exporter
                        .run(rx, async move {
                            let _ = stop.wait_for(|s| *s).await;
                        })
                        .await
                }))
            }
            None => None,
        };
        let result = leased_io::relay(&relay, hooks).await;
        let _ = stop_tx.send(true);
        if let Some(t) = exporter {
            t.await.context("exporter task")??;
        }
        result
    })?;
    Ok(ExitCode::SUCCESS)
}
