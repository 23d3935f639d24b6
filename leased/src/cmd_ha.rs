//! `leased ha status|maintenance|resume|sync`: the HA pair of a running server, through its
//! own API (`GET /ha`, `POST /ha/…`), so the CLI and any other client see the same state.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::cli::{HaArgs, HaCommand};

/// Runs `leased ha`.
pub fn run(args: &HaArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .config
        .as_deref()
        .context("give the server's config file with -c (its [api] is used)")?;
    let config = leased_config::load(path)?;
    let (addr, key) = crate::view::api_target(&config).with_context(|| {
        format!(
            "{} has no plain-HTTP [api] with a key: `leased ha` talks to the server's API",
            path.display()
        )
    })?;
    let timeout = Duration::from_secs(10);
    let body = match args.command {
        HaCommand::Status => crate::http::get(addr, &key, "/ha", timeout)?,
        HaCommand::Maintenance => crate::http::post(addr, &key, "/ha/maintenance", timeout)?,
        HaCommand::Resume => crate::http::post(addr, &key, "/ha/resume", timeout)?,
        HaCommand::Sync => crate::http::post(addr, &key, "/ha/sync", timeout)?,
    };
    let v: Value = serde_json::from_str(&body).context("the API's answer is not JSON")?;
    if args.json {
        crate::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    if let Some(r) = v["result"].as_str() {
        out.push_str(&format!("{r}\n"));
    }
    let ha = if v["ha"].is_object() { &v["ha"] } else { &v };
    out.push_str(&status_text(ha));
    crate::emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The status as lines an operator reads at a glance.
fn status_text(ha: &Value) -> String {
    let s = |k: &str| ha[k].as_str().unwrap_or("-").to_owned();
    let n = |k: &str| ha[k].as_u64().unwrap_or(0);
    let contact = ha["last_contact_seconds"]
        .as_f64()
        .map_or_else(|| "never".to_owned(), |x| format!("{x:.1} s ago"));
    let sync = match (
        ha["last_sync_seconds"].as_f64(),
        ha["last_sync_leases"].as_u64(),
    ) {
        (Some(t), Some(l)) => format!("{l} leases in {t:.2} s"),
        _ => "none yet".to_owned(),
    };
    let mut t = format!(
        "this server   {} ({} of a {} pair), {} for {} s\n\
         partner       {} at {}: {}\n\
         link          {}, partner {}, last contact {contact}\n\
         updates       {} unsent; sent {}, acked {}, failed {}, received {}\n\
         syncs         {} (last: {sync}); state changes {}\n",
        s("this_server"),
        s("role"),
        s("mode"),
        s("state"),
        n("state_seconds"),
        s("partner"),
        s("partner_url"),
        ha["partner_state"].as_str().unwrap_or("never heard"),
        if ha["link_up"].as_bool() == Some(true) {
            "up"
        } else {
            "down"
        },
        if ha["partner_reachable"].as_bool() == Some(true) {
            "reachable"
        } else {
            "unreachable"
        },
        n("unsent_updates"),
        n("updates_sent"),
        n("updates_acked"),
        n("updates_failed"),
        n("updates_received"),
        n("syncs"),
        n("state_changes"),
    );
    if let Some(r) = ha["last_refusal"].as_str() {
        t.push_str(&format!("last refusal  {r}\n"));
    }
    t
}
