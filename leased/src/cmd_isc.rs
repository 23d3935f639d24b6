//! `leased isc serve` (the DHCPStats API over an ISC dhcpd's files, re-read when they change)
//! and `leased import isc` (an ISC dhcpd's config and active leases into leased's).
//!
//! Both read the files with `leased_isc`; `isc serve` answers with `leased_api`'s own routes
//! and shapes (its ISC data source), so the two servers cannot drift apart.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use leased_config::{Format, load_str};
use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};
use leased_isc::{BindingState, IscConfig, IscLease, IscTime, LeaseEntry, LeaseReader, hex_colon};
use leased_store::EmbeddedStore;
use toml_edit::{Array, DocumentMut, Item, Table, value};

use crate::cli::{ImportIscArgs, IscServeArgs};

mod latest;

use latest::LatestLeases;

/// Runs `leased isc serve` until SIGTERM/SIGINT.
pub fn serve(args: &IscServeArgs) -> anyhow::Result<ExitCode> {
    let _log = crate::logging::init(
        &leased_config::LogSettings {
            format: leased_config::LogFormat::Text,
            level: "info".into(),
            file: None,
        },
        None,
        crate::logging::Buffering::Direct,
    )?;
    crate::rlimit::raise_open_files();
    for (i, k) in args.keys.iter().enumerate() {
        if let Some(problem) = leased_config::api_key_problem(k) {
            bail!("--key (number {} on the command line): {problem}", i + 1);
        }
    }
    let keys = leased_api::accepted_keys(&args.keys)?;
    let limits = leased_api::conn::ConnLimits {
        header_timeout: args.header_timeout,
        request_timeout: args.request_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
    };
    let source = Arc::new(leased_api::isc::IscSource::load(&args.conf, &args.leases)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, server) = leased_api::isc::serve(args.listen, &keys, &limits, Arc::clone(&source), async {
            let _ = stop_rx.await;
        })?;
        tracing::info!(
            listen = %addr,
            conf = %args.conf.display(),
            leases = %args.leases.display(),
            "DHCPStats API over ISC dhcpd files on http://{addr}"
        );
        let server = tokio::spawn(server);
        let mut files = source.files();
        let mut watch = crate::watch::FileWatch::new(&files)?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                c = watch.changed() => {
                    if c.is_none() { break; }
                    if let Err(e) = source.reload() {
                        tracing::error!(error = %format!("{e:#}"), "cannot re-read the ISC files; still answering from the previous reading");
                    }
                    let now = source.files();
                    if now != files {
                        files = now;
                        watch = crate::watch::FileWatch::new(&files)?;
                    }
                }
            }
        }
        tracing::info!("stopping");
        let _ = stop_tx.send(());
        server.await.context("API task")??;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn ip_array(ips: &[Ipv4Addr]) -> Array {
    ips.iter().map(|i| i.to_string()).collect()
}

/// Merges ranges into sorted, disjoint, inclusive ranges (leased refuses overlapping pools;
/// dhcpd accepts them).
fn merged(ranges: &[(Ipv4Addr, Ipv4Addr)]) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    let mut v: Vec<(u32, u32)> = ranges
        .iter()
        .map(|(a, b)| {
            let (a, b) = (u32::from(*a), u32::from(*b));
            (a.min(b), a.max(b))
        })
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(l) if u64::from(a) <= u64::from(l.1) + 1 => l.1 = l.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out.into_iter()
        .map(|(a, b)| (Ipv4Addr::from(a), Ipv4Addr::from(b)))
        .collect()
}

/// Renders a leased config for `conf`, with its store at `store`; notes what was left out.
pub fn config_text(conf: &IscConfig, store: &Path, notes: &mut Vec<String>) -> String {
    let mut doc = DocumentMut::new();
    let mut st = Table::new();
    st.insert("path", value(store.to_string_lossy().as_ref()));
    doc.insert("store", Item::Table(st));
    let mut subnets = toml_edit::ArrayOfTables::new();
    for s in &conf.subnets {
        let mut t = Table::new();
        t.insert("network", value(s.network.to_string()));
        if let Some(name) = &s.shared_network {
            t.insert("shared_network", value(name.as_str()));
        }
        if let Some(r) = s.routers.as_ref().filter(|r| !r.is_empty()) {
            t.insert("routers", value(ip_array(r)));
        }
        let pools: Array = merged(&s.ranges)
            .iter()
            .map(|(a, b)| format!("{a}-{b}"))
            .collect();
        t.insert("pools", value(pools));
        let mut opts = Table::new();
        if let Some(d) = s.dns_servers.as_ref().filter(|d| !d.is_empty()) {
            opts.insert("dns", value(ip_array(d)));
        }
        if let Some(n) = s.ntp_servers.as_ref().filter(|d| !d.is_empty()) {
            opts.insert("ntp", value(ip_array(n)));
        }
        if let Some(d) = &s.domain_name {
            opts.insert("domain_name", value(d.as_str()));
        }
        if !opts.is_empty() {
            t.insert("options", Item::Table(opts));
        }
        subnets.push(t);
    }
    doc.insert("subnets", Item::ArrayOfTables(subnets));
    let mut reservations = toml_edit::ArrayOfTables::new();
    let mut seen_ip = BTreeSet::new();
    let mut seen_key = BTreeSet::new();
    let hosts = conf
        .hosts
        .iter()
        .chain(conf.subnets.iter().flat_map(|s| &s.hosts));
    for h in hosts {
        let Some(ip) = h
            .fixed_addresses
            .iter()
            .find(|a| conf.subnets.iter().any(|s| s.network.contains(*a)))
        else {
            if !h.fixed_addresses.is_empty() || !h.fixed_address_names.is_empty() {
                notes.push(format!(
                    "host {} ({}:{}): no fixed IPv4 address inside a subnet; skipped",
                    h.name, h.file, h.line
                ));
            }
            continue;
        };
        let key = match (&h.hardware, &h.client_id) {
            (Some(hw), _) if HwAddr::parse_mac(&hw.address).is_some() => {
                ("mac", hw.address.clone())
            }
            (_, Some(id)) if id.len() >= 2 => ("client_id", hex_colon(id)),
            _ => {
                notes.push(format!(
                    "host {} ({}:{}): no Ethernet address or client identifier; skipped",
                    h.name, h.file, h.line
                ));
                continue;
            }
        };
        if seen_ip.contains(ip) || seen_key.contains(&key) {
            continue; // The same host listed globally and in its subnet, or a duplicate.
        }
        seen_ip.insert(*ip);
        seen_key.insert(key.clone());
        let mut t = Table::new();
        t.insert(key.0, value(key.1.as_str()));
        t.insert("ip", value(ip.to_string()));
        if let Some(n) = h.sent_host_name() {
            t.insert("hostname", value(n));
        }
        t.insert("note", value(format!("ISC host {}", h.name)));
        reservations.push(t);
    }
    if !reservations.is_empty() {
        doc.insert("reservations", Item::ArrayOfTables(reservations));
    }
    format!(
        "# Imported from ISC dhcpd by `leased import isc`; check it with `leased check -c`.\n{doc}"
    )
}

/// Leases per store commit while importing: one write and one fdatasync each.
const BATCH: usize = 4096;

/// `l` as the leased lease record the import writes, if it is an active lease (at `now`)
/// inside one of `conf`'s subnets with an Ethernet address and an end in the future.
pub fn imported_lease(conf: &IscConfig, l: &IscLease, now: Timestamp) -> Option<Lease> {
    const TEN_YEARS: u64 = 10 * 365 * 86_400;
    let secs = |t: Option<IscTime>| {
        t.and_then(IscTime::unix)
            .and_then(|s| u64::try_from(s).ok())
    };
    if l.binding_state_at(i64::try_from(now.0).unwrap_or(i64::MAX)) != BindingState::Active {
        return None;
    }
    if !conf.subnets.iter().any(|s| s.network.contains(&l.ip)) {
        return None;
    }
    let mac = HwAddr::parse_mac(&l.hardware.as_ref()?.address)?;
    let expires = match l.ends {
        Some(IscTime::Never) => now.0 + TEN_YEARS,
        e => secs(e)?,
    };
    if expires <= now.0 {
        return None;
    }
    let starts = secs(l.starts).unwrap_or(now.0);
    let client_id = match &l.uid {
        Some(u) if !u.is_empty() => u.clone(),
        _ => std::iter::once(1u8).chain(mac.0.iter().copied()).collect(),
    };
    Some(Lease {
        ip: l.ip,
        client_id: ClientId(client_id),
        hwaddr: mac,
        hostname: l.client_hostname.clone(),
        state: LeaseState::Bound,
        starts: Timestamp(starts),
        expires: Timestamp(expires),
        first_seen: Timestamp(starts),
        circuit_id: l.circuit_id.clone(),
        remote_id: l.remote_id.clone(),
        subscriber_id: None,
    })
}

/// Reads the leases file one entry at a time into the current entry per address, printing
/// its warnings as they come (and those about entries without a binding state at the end, by
/// address, as the whole-file reader orders them).
fn latest_leases(
    conf: &IscConfig,
    leases: LeaseReader<impl std::io::BufRead>,
    now: Timestamp,
) -> anyhow::Result<LatestLeases> {
    let origin = leases.origin().to_string();
    let mut latest = LatestLeases::default();
    for entry in leases {
        match entry? {
            LeaseEntry::Lease { lease, col } => {
                let rec = imported_lease(conf, &lease, now);
                let no_state = lease.binding_state.is_none().then_some((lease.line, col));
                latest.set(lease.ip, rec.as_ref(), no_state);
            }
            LeaseEntry::Warning(w) => eprintln!("note: {w}"),
            // The import takes neither OMAPI hosts nor failover state from the leases file.
            LeaseEntry::ServerDuid(_) | LeaseEntry::FailoverPeer(_) | LeaseEntry::Host { .. } => {}
        }
    }
    for (ip, line, col) in latest.without_state() {
        eprintln!(
            "note: {}",
            leased_isc::no_binding_state_warning(&origin, ip, line, col)
        );
    }
    Ok(latest)
}

/// Runs `leased import isc`.
///
/// The leases file is streamed (one statement in memory at a time) into a compact table of
/// the current entry per address, and the store is written from it in commits of [`BATCH`]
/// leases, so a million leases need a few hundred bytes each, not the file and its tree.
pub fn import(args: &ImportIscArgs) -> anyhow::Result<ExitCode> {
    let conf = leased_isc::read_conf(&args.conf)?;
    let reader = LeaseReader::open(&args.leases)?;
    for w in &conf.warnings {
        eprintln!("note: {w}");
    }
    let now = crate::cmd_manage::unix_now();
    let latest = latest_leases(&conf, reader, now)?;
    if conf.subnets.is_empty() {
        bail!("{} declares no subnet", args.conf.display());
    }
    if !args.force {
        if args.out.exists() {
            bail!(
                "{} exists; give --force to overwrite it",
                args.out.display()
            );
        }
        if args.store.exists() {
            bail!("{} exists; give --force to add to it", args.store.display());
        }
    }
    let mut notes = Vec::new();
    let text = config_text(&conf, &args.store, &mut notes);
    for n in &notes {
        eprintln!("note: {n}");
    }
    // The loader decides: nothing is written unless leased would run the result.
    let origin = args.out.display().to_string();
    if let Err(errors) = load_str(&text, &origin, Format::Toml) {
        eprintln!("the imported configuration does not validate; nothing was written:");
        return Err(errors.into());
    }
    // Appends keep no lease in memory; the journal's last record per address wins, and
    // `latest` holds one per address.
    let mut store = EmbeddedStore::open(&args.store)
        .and_then(EmbeddedStore::into_appender)
        .with_context(|| format!("cannot open lease store {}", args.store.display()))?;
    let mut batch = Vec::with_capacity(BATCH);
    for lease in latest.leases() {
        batch.push(lease);
        if batch.len() >= BATCH {
            store
                .append(&batch)
                .context("writing the leases to the store")?;
            batch.clear();
        }
    }
    store
        .append(&batch)
        .context("writing the leases to the store")?;
    drop(store);
    let dir = match args.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let reservations: usize = text.matches("[[reservations]]").count();
    crate::emit(&format!(
        "imported {} subnets, {reservations} reservations into {} and {} active leases into {}\n",
        conf.subnets.len(),
        args.out.display(),
        latest.len(),
        args.store.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}
