//! `leased manage add|remove`: edit the config file's reservations from the command line,
//! through the very code the HTTP API uses ([`leased_io::config_edit`]): validated with the
//! server's loader, written atomically, comments and layout of a TOML file kept. Then the
//! running server is told (SIGHUP through its PID file) unless it reloads by itself
//! (`auto_reload`).

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use leased_core::config::{Config, ReservationKey};
use leased_core::{HwAddr, Timestamp};
use leased_io::config_edit::{self, Edit, EditError, EditErrorKind};
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
    let config = leased_io::load_config(&args.config)?;
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
        .subnets
        .iter()
        .flat_map(|s| &s.reservations)
        .filter(|r| matches!(&r.key, ReservationKey::Mac(m) if m == mac))
        .map(|r| r.ip)
        .collect()
}

fn apply(args: &ManageArgs, edit: &Edit) -> anyhow::Result<()> {
    config_edit::apply(&args.config, edit).map_err(|e: EditError| {
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
    if !config.subnets.iter().any(|s| s.network.contains(&ip)) {
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
    let previous = reserved_for(config, &hw);
    let edit = match previous.first() {
        Some(old) => {
            eprintln!("{hw} was reserved {old}; moving its reservation to {ip}");
            Edit::Replace(*old, body)
        }
        None => Edit::Create(body),
    };
    apply(args, &edit)?;
    crate::emit(&format!(
        "reserved {ip} for {hw} in {}\n",
        args.config.display()
    ))?;
    tell_server(args, config)?;
    Ok(ExitCode::SUCCESS)
}

fn remove(args: &ManageArgs, config: &Config, mac: &str) -> anyhow::Result<ExitCode> {
    let hw = parse_mac(mac)?;
    let ips = reserved_for(config, &hw);
    if ips.is_empty() {
        bail!("{hw} has no reservation in {}", args.config.display());
    }
    for ip in &ips {
        apply(args, &Edit::Delete(*ip))?;
        crate::emit(&format!(
            "removed the reservation of {ip} for {hw} from {}\n",
            args.config.display()
        ))?;
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
    if config.server.auto_reload {
        eprintln!("the running server reloads the file by itself (auto_reload)");
        return Ok(());
    }
    let Some(pid_file) = config.server.pid_file.as_deref() else {
        return Ok(());
    };
    if !pid_file.exists() {
        return Ok(());
    }
    let pid = crate::cmd_reload::signal_server(pid_file)?;
    eprintln!("sent SIGHUP to leased (pid {pid})");
    Ok(())
}
