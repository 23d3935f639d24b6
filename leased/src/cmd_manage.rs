//! `leased manage add|remove`: edit the config file's reservations from the command line,
//! through the very code the HTTP API uses ([`leased_io::config_edit`]): validated with the
//! server's loader, written atomically under the file's edit lock, comments and layout of a
//! TOML file kept. Then the running server is told (SIGHUP through its PID file) unless it
//! reloads by itself (`auto_reload`).

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use leased_config::edit::{self as config_edit, Edit, EditError, EditErrorKind};
use leased_config::{Config, ReservationKey};
use leased_core::{HwAddr, Timestamp};
use serde_json::{Map, Value};

use crate::cli::{ManageArgs, ManageCommand};

/// The wall clock as the core counts it.
pub fn unix_now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// Runs `leased manage …`.
pub fn run(args: &ManageArgs) -> anyhow::Result<ExitCode> {
    std::fs::metadata(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = leased_config::load(&args.config)?;
    match &args.command {
        ManageCommand::Add { mac, ip, note } => add(args, &config, mac, *ip, note),
        ManageCommand::Remove { mac } => remove(args, &config, mac),
    }
}

fn parse_mac(text: &str) -> anyhow::Result<HwAddr> {
    HwAddr::parse_mac(text.trim()).with_context(|| {
        format!("{text:?} is not a MAC address (aa:bb:cc:dd:ee:ff, aa-bb-… or aabbcc…)")
    })
}

/// Addresses reserved for `mac` (by MAC) in the running config.
fn reserved_for(config: &Config, mac: &HwAddr) -> Vec<Ipv4Addr> {
    config
        .network
        .subnets
        .iter()
        .flat_map(|s| &s.reservations)
        .filter(|r| matches!(&r.key, ReservationKey::Mac(m) if m == mac))
        .map(|r| r.ip)
        .collect()
}

/// Runs `plan` against the file as it is under the edit lock (so a concurrent API write or
/// `manage` run is never lost or overwritten) and writes its edits.
fn apply(
    args: &ManageArgs,
    plan: impl FnOnce(&Config) -> Result<Vec<Edit>, EditError>,
) -> anyhow::Result<Vec<Edit>> {
    config_edit::apply_planned(&args.config, plan).map_err(|e: EditError| {
        if e.kind == EditErrorKind::Invalid {
            for line in &e.errors {
                eprintln!("{line}");
            }
        }
        anyhow::anyhow!("{}: {}", args.config.display(), e.message)
    })
}

fn add(
    args: &ManageArgs,
    config: &Config,
    mac: &str,
    ip: Ipv4Addr,
    note: &[String],
) -> anyhow::Result<ExitCode> {
    let hw = parse_mac(mac)?;
    if !config
        .network
        .subnets
        .iter()
        .any(|s| s.network.contains(&ip))
    {
        eprintln!(
            "warning: {ip} lies outside every subnet of {}",
            args.config.display()
        );
    }
    // Who holds the address now (live from the API when it answers, else the store).
    if let Ok(table) = crate::view::load(config, None, crate::view::From::Auto) {
        let now = unix_now();
        if let Some(l) = table
            .leases
            .iter()
            .find(|l| l.ip == ip && l.is_active(now) && l.hwaddr != hw)
        {
            eprintln!(
                "warning: {ip} is leased to {} until {}; that client loses it at its next \
                 renewal",
                l.hwaddr,
                crate::timefmt::iso8601(l.expires.0)
            );
        }
    }
    let mut body = Map::new();
    body.insert("mac".into(), Value::String(hw.to_string()));
    body.insert("ip".into(), Value::String(ip.to_string()));
    if !note.is_empty() {
        body.insert("note".into(), Value::String(note.join(" ")));
    }
    body.insert("first_seen".into(), Value::from(unix_now().0));
    // Decided on the file as it is under the lock: create, or move this MAC's reservation.
    let edits = apply(args, |current| {
        Ok(vec![match reserved_for(current, &hw).first() {
            Some(old) => Edit::Replace(*old, body),
            None => Edit::Create(body),
        }])
    })?;
    if let Some(Edit::Replace(old, _)) = edits.first() {
        eprintln!("{hw} was reserved {old}; moved its reservation to {ip}");
    }
    crate::emit(&format!(
        "reserved {ip} for {hw} in {}\n",
        args.config.display()
    ))?;
    tell_server(args, config)?;
    Ok(ExitCode::SUCCESS)
}

fn remove(args: &ManageArgs, config: &Config, mac: &str) -> anyhow::Result<ExitCode> {
    let hw = parse_mac(mac)?;
    // Every reservation of the MAC, as the file has them under the lock, removed in one write.
    let edits = apply(args, |current| {
        let ips = reserved_for(current, &hw);
        if ips.is_empty() {
            return Err(EditError::not_found(format!("{hw} has no reservation")));
        }
        Ok(ips.into_iter().map(Edit::Delete).collect())
    })?;
    for edit in &edits {
        if let Edit::Delete(ip) = edit {
            crate::emit(&format!(
                "removed the reservation of {ip} for {hw} from {}\n",
                args.config.display()
            ))?;
        }
    }
    tell_server(args, config)?;
    Ok(ExitCode::SUCCESS)
}

/// Makes a running server use the edited file: it reloads by itself with `auto_reload`;
/// otherwise SIGHUP through the PID file, when there is a running server to tell.
fn tell_server(args: &ManageArgs, config: &Config) -> anyhow::Result<()> {
    if args.no_reload {
        return Ok(());
    }
    if config.process.auto_reload {
        eprintln!("the running server reloads the file by itself (auto_reload)");
        return Ok(());
    }
    let Some(pid_file) = config.process.pid_file.as_deref() else {
        return Ok(());
    };
    if !pid_file.exists() {
        return Ok(());
    }
    let pid = crate::cmd_reload::signal_server(pid_file)?;
    eprintln!("sent SIGHUP to leased (pid {pid})");
    Ok(())
}
