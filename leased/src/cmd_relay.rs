//! `leased relay`: the relay agent, with the exporter beside it when `[export]` is set.
//!
//! Configured by a file (`-c FILE`) or by flags alone (`--interface eth1 --upstream
//! 198.18.1.1 …`), as the original dhcp-batcher was ("no conf files to mess with"). Flags are
//! turned into the config text a file would hold and loaded by the same loader, so the two
//! can never mean different things; `--print-config` writes that text.

use std::process::ExitCode;

use anyhow::Context;
use leased_config::{Config, ConfigError, ConfigErrors, Format, load_str};
use leased_export::Exporter;
use leased_io::RelayHooks;
use tokio::sync::mpsc;
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, value};

use crate::cli::{RelayArgs, RelayFlags};

/// Where errors in a flag-built config are said to come from.
const ORIGIN: &str = "command line";

/// Runs the relay until SIGTERM/SIGINT (or prints the flags' config).
pub fn run(args: &RelayArgs) -> anyhow::Result<ExitCode> {
    let (config, origin) = match &args.config {
        Some(path) => {
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
            (leased_config::load(path)?, path.display().to_string())
        }
        None => {
            if args.flags.interfaces.is_empty() && args.flags.upstreams.is_empty() {
                anyhow::bail!(
                    "give a config file (`leased relay -c leased-relay.toml`) or the relay's \
                     settings as flags (`leased relay --interface eth1 --upstream 198.18.1.1`)"
                );
            }
            let text = flags_text(&args.flags)?;
            let config = load_flags(&text)?;
            if args.print_config {
                crate::emit(&text)?;
                return Ok(ExitCode::SUCCESS);
            }
            (config, ORIGIN.to_string())
        }
    };
    let relay = config
        .relay
        .clone()
        .with_context(|| format!("{origin} has no [relay] section"))?;
    let log = crate::logging::init(&config.logging, None, crate::logging::Buffering::Direct)?;
    crate::rlimit::raise_open_files();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    log.reopen_on_sigusr1(&runtime)?;
    let run_as = leased_config::resolve_accounts(&config.process, &origin)
        .map_err(|e| anyhow::anyhow!(ConfigErrors(e)))?;
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
                let perms = leased_export::Perms::for_group(config.process.group.is_some());
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

/// Loads a flag-built config; errors name the flag (`--upstream (relay.upstreams[0]): …`),
/// since the text they point into is nobody's file.
fn load_flags(text: &str) -> Result<Config, ConfigErrors> {
    load_str(text, ORIGIN, Format::Toml).map_err(|errors| {
        ConfigErrors(
            errors
                .0
                .into_iter()
                .map(|e| ConfigError {
                    origin: ORIGIN.to_string(),
                    line: 0,
                    col: 0,
                    key: match flag_of(&e.key) {
                        Some(flag) => format!("{flag} ({})", e.key),
                        None => e.key,
                    },
                    message: e.message,
                })
                .collect(),
        )
    })
}

/// The flag that sets config key `key`.
fn flag_of(key: &str) -> Option<&'static str> {
    let k = key;
    let flag = if k.starts_with("relay.upstreams") {
        "--upstream"
    } else if k.starts_with("relay.interfaces") && k.ends_with(".circuit_id") {
        "--circuit-id"
    } else if k.starts_with("relay.interfaces") && k.ends_with(".remote_id") {
        "--remote-id"
    } else if k.starts_with("relay.interfaces") {
        "--interface"
    } else if k == "relay.max_hops" {
        "--max-hops"
    } else if k == "relay.existing_option82" {
        "--existing-option82"
    } else if k == "relay.auth_key" {
        "--auth-key-env"
    } else if k == "relay" {
        "--interface/--upstream"
    } else if k == "server.user" {
        "--user"
    } else if k == "server.group" {
        "--group"
    } else if k == "logging.level" {
        "--log-level"
    } else if k == "logging.format" {
        "--log-format"
    } else if k == "export.outbox" {
        "--outbox"
    } else if k == "export.sonar.url" {
        "--sonar-url"
    } else if k == "export.sonar.username" || k == "export.sonar" {
        "--sonar-url/--sonar-user/--sonar-password-env"
    } else if k == "export.sonar.password_env" {
        "--sonar-password-env"
    } else if k.ends_with(".interval") {
        "--interval"
    } else if k.ends_with(".timeout") {
        "--timeout"
    } else if k.ends_with(".chunk_size") {
        "--chunk-size"
    } else if k == "export.webhook.url" {
        "--webhook-url"
    } else if k.starts_with("export.webhook.headers") {
        "--webhook-header"
    } else {
        return None;
    };
    Some(flag)
}

/// A duration flag as the config spells it: digits are seconds, anything else is a string
/// for the loader to check.
fn duration_item(text: &str) -> Item {
    match text.parse::<i64>() {
        Ok(n) => value(n),
        Err(_) => value(text),
    }
}

/// The config text `flags` stand for: a `[relay]` section with one `[[relay.interfaces]]` per
/// `--interface`, plus `[export]`, `[server]` and `[logging]` when their flags are given.
pub fn flags_text(flags: &RelayFlags) -> anyhow::Result<String> {
    let mut doc = DocumentMut::new();
    if flags.log_level.is_some() || flags.log_format.is_some() {
        let mut t = Table::new();
        if let Some(f) = &flags.log_format {
            t.insert("format", value(f.as_str()));
        }
        if let Some(l) = &flags.log_level {
            t.insert("level", value(l.as_str()));
        }
        doc.insert("logging", Item::Table(t));
    }
    if flags.user.is_some() || flags.group.is_some() {
        let mut t = Table::new();
        if let Some(u) = &flags.user {
            t.insert("user", value(u.as_str()));
        }
        if let Some(g) = &flags.group {
            t.insert("group", value(g.as_str()));
        }
        doc.insert("server", Item::Table(t));
    }
    let mut relay = Table::new();
    if !flags.upstreams.is_empty() {
        let ups: Array = flags.upstreams.iter().map(|u| u.trim()).collect();
        relay.insert("upstreams", value(ups));
    }
    if let Some(n) = flags.max_hops {
        relay.insert("max_hops", value(n));
    }
    if flags.no_option82 {
        relay.insert("option82", value(false));
    }
    if let Some(p) = &flags.existing_option82 {
        relay.insert("existing_option82", value(p.as_str()));
    }
    if flags.link_selection {
        relay.insert("link_selection", value(true));
    }
    if flags.server_id_override {
        relay.insert("server_id_override", value(true));
    }
    if flags.rewrite_server_id {
        relay.insert("rewrite_server_id", value(true));
    }
    if let Some(var) = &flags.auth_key_env {
        let key = std::env::var(var).with_context(|| {
            format!("--auth-key-env {var}: the environment variable is not set")
        })?;
        relay.insert("auth_key", value(key));
    }
    let mut interfaces = ArrayOfTables::new();
    for spec in &flags.interfaces {
        let mut t = Table::new();
        let (name, address) = match spec.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (spec.trim(), None),
        };
        t.insert("name", value(name));
        if let Some(a) = address {
            t.insert("address", value(a));
        }
        if let Some(c) = &flags.circuit_id {
            t.insert("circuit_id", value(c.as_str()));
        }
        if let Some(r) = &flags.remote_id {
            t.insert("remote_id", value(r.as_str()));
        }
        interfaces.push(t);
    }
    if !interfaces.is_empty() {
        relay.insert("interfaces", Item::ArrayOfTables(interfaces));
    }
    doc.insert("relay", Item::Table(relay));
    let exporting = flags.sonar_url.is_some()
        || flags.sonar_user.is_some()
        || flags.sonar_password_env.is_some()
        || flags.webhook_url.is_some()
        || !flags.webhook_headers.is_empty()
        || flags.outbox.is_some();
    if exporting {
        let mut export = Table::new();
        if let Some(o) = &flags.outbox {
            export.insert("outbox", value(o.as_str()));
        }
        let cycle = |t: &mut Table| {
            if let Some(i) = &flags.interval {
                t.insert("interval", duration_item(i));
            }
            if let Some(i) = &flags.timeout {
                t.insert("timeout", duration_item(i));
            }
            if let Some(n) = flags.chunk_size {
                t.insert("chunk_size", value(n));
            }
        };
        if flags.sonar_url.is_some()
            || flags.sonar_user.is_some()
            || flags.sonar_password_env.is_some()
        {
            let mut s = Table::new();
            if let Some(u) = &flags.sonar_url {
                s.insert("url", value(u.as_str()));
            }
            if let Some(u) = &flags.sonar_user {
                s.insert("username", value(u.as_str()));
            }
            if let Some(p) = &flags.sonar_password_env {
                s.insert("password_env", value(p.as_str()));
            }
            cycle(&mut s);
            export.insert("sonar", Item::Table(s));
        }
        if flags.webhook_url.is_some() || !flags.webhook_headers.is_empty() {
            let mut w = Table::new();
            if let Some(u) = &flags.webhook_url {
                w.insert("url", value(u.as_str()));
            }
            if !flags.webhook_headers.is_empty() {
                let mut h = InlineTable::new();
                for header in &flags.webhook_headers {
                    let (k, v) = header.split_once(':').with_context(|| {
                        format!("--webhook-header {header:?}: expected `Name: value`")
                    })?;
                    h.insert(k.trim(), v.trim().into());
                }
                w.insert("headers", value(h));
            }
            cycle(&mut w);
            export.insert("webhook", Item::Table(w));
        }
        // `[export]` itself only when it has keys of its own: its sub-tables say the rest.
        export.set_implicit(true);
        doc.insert("export", Item::Table(export));
    }
    Ok(format!(
        "# leased relay, from the command line (`leased relay --print-config`).\n{doc}"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    fn flags(args: &[&str]) -> RelayFlags {
        let cli = crate::cli::Cli::try_parse_from(["leased", "relay"].iter().chain(args)).unwrap();
        match cli.command {
            crate::cli::Command::Relay(r) => r.flags,
            _ => panic!("not relay"),
        }
    }

    /// The flags and the file an operator would write by hand load to the same config.
    #[test]
    fn flags_and_file_are_the_same_config() {
        let f = flags(&[
            "--interface",
            "eth1",
            "--interface",
            "eth2.100=198.18.2.1",
            "--upstream",
            "198.18.1.1,198.18.9.1",
            "--upstream",
            "198.18.1.2",
            "--circuit-id",
            "olt-7/{vlan}",
            "--remote-id",
            "olt-7",
            "--max-hops",
            "6",
            "--existing-option82",
            "replace",
            "--rewrite-server-id",
            "--link-selection",
            "--outbox",
            "/var/lib/leased/outbox",
            "--sonar-url",
            "https://example.sonar.software",
            "--sonar-user",
            "leased",
            "--sonar-password-env",
            "SONAR_PASSWORD",
            "--interval",
            "5m",
            "--webhook-url",
            "https://billing.example/hook",
            "--webhook-header",
            "Authorization: Bearer t",
            "--log-level",
            "debug",
        ]);
        let from_flags = load_flags(&flags_text(&f).unwrap()).unwrap();
        let by_hand = r#"
[logging]
level = "debug"

[relay]
upstreams = ["198.18.1.1", "198.18.9.1", "198.18.1.2"]
max_hops = 6
existing_option82 = "replace"
link_selection = true
rewrite_server_id = true

[[relay.interfaces]]
name = "eth1"
circuit_id = "olt-7/{vlan}"
remote_id = "olt-7"

[[relay.interfaces]]
name = "eth2.100"
address = "198.18.2.1"
circuit_id = "olt-7/{vlan}"
remote_id = "olt-7"

[export]
outbox = "/var/lib/leased/outbox"

[export.sonar]
url = "https://example.sonar.software"
username = "leased"
password_env = "SONAR_PASSWORD"
interval = "5m"

[export.webhook]
url = "https://billing.example/hook"
headers = { Authorization = "Bearer t" }
interval = "5m"
"#;
        let from_file = load_str(by_hand, "leased-relay.toml", Format::Toml).unwrap();
        assert_eq!(from_flags, from_file);
        let relay = from_flags.relay.unwrap();
        assert_eq!(relay.upstreams.len(), 3);
        assert_eq!(relay.interfaces[1].name, "eth2.100");
        assert_eq!(from_flags.export.unwrap().sonar.unwrap().interval, 300);
    }

    #[test]
    fn minimal_flags_and_defaults() {
        let c = load_flags(
            &flags_text(&flags(&["--interface", "eth1", "--upstream", "198.18.1.1"])).unwrap(),
        )
        .unwrap();
        let r = c.relay.unwrap();
        assert_eq!(r.interfaces[0].circuit_id, "{interface}");
        assert_eq!(r.interfaces[0].remote_id, "{mac}");
        assert!(r.option82);
        assert!(c.export.is_none());
    }

    #[test]
    fn errors_name_the_flag() {
        let e = load_flags(
            &flags_text(&flags(&[
                "--interface",
                "a/b",
                "--upstream",
                "nope",
                "--interval",
                "0",
                "--sonar-url",
                "ftp://x",
            ]))
            .unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("command line: --upstream (relay.upstreams[0])"),
            "{e}"
        );
        assert!(e.contains("--interface (relay.interfaces[0].name)"), "{e}");
        assert!(e.contains("--sonar-url (export.sonar.url)"), "{e}");
        assert!(e.contains("--interval (export.sonar.interval)"), "{e}");
        assert!(
            e.contains("--sonar-url/--sonar-user/--sonar-password-env"),
            "{e}"
        );
        assert!(
            !e.contains(":1:"),
            "no positions in a text nobody wrote: {e}"
        );
        let e = load_flags(&flags_text(&flags(&["--upstream", "198.18.1.1"])).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--interface/--upstream (relay)"), "{e}");
    }

    #[test]
    fn strings_are_quoted_not_injected() {
        let text = flags_text(&flags(&[
            "--interface",
            "eth1",
            "--upstream",
            "198.18.1.1",
            "--circuit-id",
            "x\"\n[server]\nuser = \"root",
        ]))
        .unwrap();
        let c = load_flags(&text).unwrap();
        assert_eq!(
            c.relay.unwrap().interfaces[0].circuit_id,
            "x\"\n[server]\nuser = \"root"
        );
        assert!(c.process.user.is_none());
    }

    #[test]
    fn config_and_flags_exclude_each_other() {
        assert!(
            crate::cli::Cli::try_parse_from([
                "leased",
                "relay",
                "-c",
                "x",
                "--upstream",
                "198.18.1.1"
            ])
            .is_err()
        );
        assert!(
            crate::cli::Cli::try_parse_from(["leased", "relay", "-c", "x", "--print-config"])
                .is_err()
        );
        assert!(crate::cli::Cli::try_parse_from(["leased", "relay", "-c", "x"]).is_ok());
    }
}
