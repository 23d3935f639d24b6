//! `leased import kea|dnsmasq|dhcplane`: another server's config and leases into leased's.
//!
//! The mapping is `leased_import`'s (pure, text in); this module only reads and writes: it
//! refuses to overwrite without `--force`, has the config checked by leased's loader before
//! anything is written, streams the lease file into the store in commits of a few thousand
//! leases (a million-line file needs the memory of one commit), writes the config atomically
//! last, and prints what did not map and a summary.

use std::fs::File;
use std::io::BufReader;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use ipnet::Ipv4Net;
use leased_core::Lease;
use leased_import::{
    ImportError, Imported, LeaseConverter, LeaseError, LeaseRecord, Rendered, finish,
};
use leased_store::{EmbeddedStore, JournalAppender};

use crate::cli::{ImportDhcplaneArgs, ImportDnsmasqArgs, ImportKeaArgs, ImportTarget};

/// Leases per store commit: one write and one fdatasync each.
const BATCH: usize = 4096;
/// Malformed lease lines quoted in the summary (the rest are only counted).
const QUOTED_BAD_LINES: usize = 10;

/// Runs `leased import kea`.
pub fn kea(args: &ImportKeaArgs) -> anyhow::Result<ExitCode> {
    let text = read(&args.config)?;
    refuse_overwrite(&args.target)?;
    let kea =
        leased_import::kea::import_config(&text).map_err(|e| source_error(&args.config, e))?;
    let leases = match &args.leases {
        Some(l) => l.clone(),
        None => beside(
            &args.config,
            kea.lease_file.as_deref().context(
                "the config names no memfile lease-database: give --leases kea-leases4.csv",
            )?,
        ),
    };
    let files = kea_files(&leases);
    let rendered = render(kea.imported, &args.target, "Kea")?;
    let mut sink = Sink::open(&args.target.store, &rendered)?;
    for f in &files {
        let reader = BufReader::with_capacity(1 << 16, open(f)?);
        for item in leased_import::kea::LeaseLines::new(reader) {
            sink.take(f, item)?;
        }
    }
    sink.done(&args.target, &rendered, "Kea", &files)
}

/// Runs `leased import dnsmasq`.
pub fn dnsmasq(args: &ImportDnsmasqArgs) -> anyhow::Result<ExitCode> {
    let text = read(&args.conf)?;
    refuse_overwrite(&args.target)?;
    let name = args.conf.display().to_string();
    let d = leased_import::dnsmasq::import_config(&text, &name, &local_addresses());
    let leases = match &args.leases {
        Some(l) => l.clone(),
        None => PathBuf::from(
            d.lease_file
                .as_deref()
                .context("the config has no dhcp-leasefile: give --leases dnsmasq.leases")?,
        ),
    };
    let rendered = render(d.imported, &args.target, "dnsmasq")?;
    let mut sink = Sink::open(&args.target.store, &rendered)?;
    let reader = BufReader::with_capacity(1 << 16, open(&leases)?);
    for item in leased_import::dnsmasq::LeaseLines::new(reader) {
        sink.take(&leases, item)?;
    }
    sink.done(&args.target, &rendered, "dnsmasq", &[leases])
}

/// Runs `leased import dhcplane`.
pub fn dhcplane(args: &ImportDhcplaneArgs) -> anyhow::Result<ExitCode> {
    let text = read(&args.config)?;
    refuse_overwrite(&args.target)?;
    // The reservations file is found from the config, so the config is read twice: once for
    // its paths, once with the reservations.
    let first = leased_import::dhcplane::import_config(&text, None)
        .map_err(|e| source_error(&args.config, e))?;
    let reservations = match &args.reservations {
        Some(r) => Some(r.clone()),
        None => {
            let p = beside(
                &args.config,
                first
                    .reservations_file
                    .as_deref()
                    .unwrap_or("dhcplane.reservations"),
            );
            p.exists().then_some(p)
        }
    };
    let d = match &reservations {
        Some(r) => leased_import::dhcplane::import_config(&text, Some(&read(r)?))
            .map_err(|e| source_error(&args.config, e))?,
        None => first,
    };
    let leases = match &args.leases {
        Some(l) => l.clone(),
        None => beside(
            &args.config,
            d.lease_file.as_deref().unwrap_or("dhcplane.leases"),
        ),
    };
    let rendered = render(d.imported, &args.target, "dhcplane")?;
    let mut sink = Sink::open(&args.target.store, &rendered)?;
    let reader = BufReader::with_capacity(1 << 16, open(&leases)?);
    let stats = leased_import::dhcplane::read_leases(reader, &mut |rec| {
        sink.record(rec).map_err(|e| format!("{e:#}"))
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", leases.display()))?;
    sink.bad_lines += stats.skipped;
    sink.quoted.extend(
        stats
            .problems
            .iter()
            .map(|p| format!("{}: {p}", leases.display())),
    );
    sink.done(&args.target, &rendered, "dhcplane", &[leases])
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `name` relative to the directory of `config` (absolute names as they are).
fn beside(config: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    config
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| p.to_path_buf(), |d| d.join(p))
}

/// Kea's lease files in the order Kea loads them: the result of a finished lease file cleanup
/// (`.completed`) or the two files of one in progress (`.2`, then `.1`), then the current file.
fn kea_files(main: &Path) -> Vec<PathBuf> {
    let with = |suffix: &str| {
        let mut s = main.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    let mut files = Vec::new();
    let completed = with(".completed");
    if completed.exists() {
        files.push(completed);
    } else {
        files.extend([with(".2"), with(".1")].into_iter().filter(|p| p.exists()));
    }
    files.push(main.to_path_buf());
    files
}

fn source_error(path: &Path, e: ImportError) -> anyhow::Error {
    match e {
        // A position (`line:col: …`) joins the file name as editors expect.
        ImportError::Source(s) if s.starts_with(|c: char| c.is_ascii_digit()) => {
            anyhow::anyhow!("{}:{s}", path.display())
        }
        ImportError::Source(s) => anyhow::anyhow!("{}: {s}", path.display()),
        ImportError::Config(c) => anyhow::Error::new(c),
    }
}

fn refuse_overwrite(t: &ImportTarget) -> anyhow::Result<()> {
    if t.force {
        return Ok(());
    }
    if t.out.exists() {
        bail!("{} exists; give --force to overwrite it", t.out.display());
    }
    if t.store.exists() {
        bail!("{} exists; give --force to add to it", t.store.display());
    }
    Ok(())
}

/// The config checked by the loader, or nothing written and every error printed.
fn render(imported: Imported, t: &ImportTarget, source: &str) -> anyhow::Result<Rendered> {
    let origin = t.out.display().to_string();
    match finish(imported, &t.store, source, &origin) {
        Ok(r) if r.config.network.subnets.is_empty() => {
            for u in &r.unmapped {
                eprintln!("not mapped: {u}");
            }
            bail!("no subnet of the {source} config could be imported; nothing was written")
        }
        Ok(r) => Ok(r),
        Err(ImportError::Config(errors)) => {
            eprintln!("the imported configuration does not validate; nothing was written:");
            Err(errors.into())
        }
        Err(ImportError::Source(s)) => Err(anyhow::anyhow!(s)),
    }
}

/// The lease store being filled.
struct Sink {
    appender: JournalAppender,
    converter: LeaseConverter,
    batch: Vec<Lease>,
    bad_lines: u64,
    quoted: Vec<String>,
}

impl Sink {
    fn open(store: &Path, rendered: &Rendered) -> anyhow::Result<Self> {
        let nets: Vec<Ipv4Net> = rendered
            .config
            .network
            .subnets
            .iter()
            .map(|s| s.network)
            .collect();
        let now = crate::cmd_manage::unix_now().0;
        let converter =
            LeaseConverter::new(&nets, now, rendered.config.network.server.sticky_window);
        let appender = EmbeddedStore::open(store)
            .and_then(EmbeddedStore::into_appender)
            .with_context(|| format!("cannot open lease store {}", store.display()))?;
        Ok(Self {
            appender,
            converter,
            batch: Vec::with_capacity(BATCH),
            bad_lines: 0,
            quoted: Vec::new(),
        })
    }

    fn record(&mut self, rec: LeaseRecord) -> anyhow::Result<()> {
        if let Some(l) = self.converter.convert(rec) {
            self.batch.push(l);
            if self.batch.len() >= BATCH {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn take(&mut self, file: &Path, item: Result<LeaseRecord, LeaseError>) -> anyhow::Result<()> {
        match item {
            Ok(rec) => self.record(rec),
            Err(LeaseError::Io(e)) => Err(e).with_context(|| format!("reading {}", file.display())),
            Err(e) => {
                self.bad_lines += 1;
                if self.quoted.len() < QUOTED_BAD_LINES {
                    self.quoted.push(format!("{}: {e}", file.display()));
                }
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.appender
            .append(&self.batch)
            .context("writing the leases to the store")?;
        self.batch.clear();
        Ok(())
    }

    /// Writes the config (last: its presence means the import finished) and the summary.
    fn done(
        mut self,
        t: &ImportTarget,
        rendered: &Rendered,
        source: &str,
        files: &[PathBuf],
    ) -> anyhow::Result<ExitCode> {
        self.flush()?;
        drop(self.appender);
        write_atomically(&t.out, &rendered.text)?;
        for u in &rendered.unmapped {
            eprintln!("not mapped: {u}");
        }
        for q in &self.quoted {
            eprintln!("skipped lease line: {q}");
        }
        let c = &rendered.config;
        let s = self.converter.stats();
        let reservations: usize = c.network.subnets.iter().map(|s| s.reservations.len()).sum();
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let mut out = format!(
            "imported from {source}: {} subnets, {reservations} reservations, {} classes, {} \
             banned MACs into {} ({} constructs not mapped, listed above and at the top of the \
             file)\n",
            c.network.subnets.len(),
            c.network.classes.len(),
            c.network.banned_macs.len(),
            t.out.display(),
            rendered.unmapped.len(),
        );
        out.push_str(&format!(
            "leases: {} records read from {}; {} active leases, {} declined in quarantine and \
             {} ended leases kept for the sticky window written to {} ({} records); skipped: {} \
             outside the subnets, {} without a hardware address, {} ended long ago, {} \
             malformed lines\n",
            s.records,
            files.join(", "),
            self.converter.active(),
            self.converter.declined(),
            s.ended_kept,
            t.store.display(),
            s.written,
            s.outside,
            s.no_hwaddr,
            s.ended_dropped,
            self.bad_lines,
        ));
        if let Some(kib) = peak_rss_kib() {
            out.push_str(&format!("peak memory: {kib} KiB\n"));
        }
        crate::emit(&out)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// This process's peak resident memory (VmHWM), for the summary: what a big import cost.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// This machine's IPv4 addresses with their prefixes, for dnsmasq ranges without a netmask.
fn local_addresses() -> Vec<Ipv4Net> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let ip: Ipv4Addr = a.address.as_ref()?.as_sockaddr_in()?.ip();
            let mask: Ipv4Addr = a.netmask.as_ref()?.as_sockaddr_in()?.ip();
            let len = ipnet::ipv4_mask_to_prefix(mask).ok()?;
            Ipv4Net::new(ip, len).ok()
        })
        .filter(|n| !n.addr().is_loopback())
        .collect()
}
