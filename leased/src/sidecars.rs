//! What runs beside the DHCP engine in `leased serve`, composed into io's one sidecar: the
//! sidecar the rest of the binary builds (HTTP API, export), the live log console, and the
//! config auto-reloader.
//!
//! Why compose here rather than teach io about each: io knows nothing of HTTP, consoles or
//! file watchers; it runs one task beside the engine and hands it the shared view. Each part
//! binds its sockets when started (a problem fails start-up), then runs as its own task; one
//! that stops or fails is logged and the others keep going.

use std::sync::Arc;

use leased_config::Config;
use leased_io::{ConfigSource, SidecarStart};

use crate::console::Hub;

/// `inner` (API / export, if any) plus the console (with `hub`) and auto-reload when the
/// config asks for them; `None` when nothing runs beside the engine.
pub fn compose(
    config: &Config,
    source: &ConfigSource,
    inner: Option<SidecarStart>,
    hub: Option<Arc<Hub>>,
) -> Option<SidecarStart> {
    let console = config.console.clone().zip(hub);
    let watch = match source {
        ConfigSource::File(p) if config.process.auto_reload => Some(p.clone()),
        _ => None,
    };
    if console.is_none() && watch.is_none() {
        return inner;
    }
    let configured_keys = config
        .api
        .as_ref()
        .map(|a| a.keys.clone())
        .unwrap_or_default();
    let tls = config.api.as_ref().and_then(|a| a.tls.clone());
    Some(Box::new(move |shared, shutdown| {
        let mut parts: Vec<(&'static str, leased_io::Sidecar)> = Vec::new();
        if let Some(start) = inner {
            parts.push(("HTTP API", start(Arc::clone(&shared), shutdown.clone())?));
        }
        if let Some((settings, hub)) = console {
            // Keys matter (and LEASED_API_KEYS is checked) only for the TCP listener.
            let keys = match settings.tcp_listen {
                Some(_) => leased_api::accepted_keys(&configured_keys)?,
                None => Vec::new(),
            };
            parts.push((
                "console",
                crate::console::start(&settings, hub, keys, tls.as_ref(), shutdown.clone())?,
            ));
        }
        if let Some(path) = watch {
            parts.push((
                "auto-reload",
                crate::watch::auto_reload(path, Arc::clone(&shared), shutdown.clone())?,
            ));
        }
        Ok(Box::pin(async move {
            let mut set = tokio::task::JoinSet::new();
            for (name, task) in parts {
                set.spawn(async move { (name, task.await) });
            }
            while let Some(done) = set.join_next().await {
                match done {
                    Ok((name, Ok(()))) => tracing::debug!("{name} stopped"),
                    Ok((name, Err(e))) => {
                        tracing::error!(error = %format!("{e:#}"), "{name} failed; DHCP keeps serving")
                    }
                    Err(e) => tracing::error!(error = %e, "a sidecar task failed"),
                }
            }
            Ok(())
        }))
    }))
}
