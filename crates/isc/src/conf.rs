//! `dhcpd.conf` reader: statement tree → scopes → [`IscConfig`].
//!
//! Scopes follow dhcpd's: global ⊃ group / shared-network ⊃ subnet ⊃ pool. The options this
//! crate models are resolved per subnet after the whole file is read (nearest scope wins, order
//! of declaration does not matter, as in dhcpd). Options written in a `pool` or `host` apply to
//! that pool or host only, so they are not folded into the subnet.

use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use ipnet::Ipv4Net;

use crate::model::{Hardware, IscConfig, IscHost, IscSubnet, Warning};
use crate::stats::index_in;
use crate::syntax::{
    Annotation, Mode, Pos, Stmt, Tok, Token, binary_value, parse_colon_hex, parse_tree,
};
use crate::{IscError, ParseError};

/// How deep `include` may nest. dhcpd has no limit but real configurations use one or two
/// levels; the bound turns a runaway (e.g. a symlink loop the lexical cycle check cannot see)
/// into an error instead of exhausting memory.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Blocks may nest this deep across includes; keeps the recursive walk bounded.
const MAX_TOTAL_DEPTH: usize = 128;

/// Where included files come from: the filesystem in production, a map in tests.
pub trait FileLoader {
    /// The whole content of `path`.
    fn load(&self, path: &Path) -> io::Result<Vec<u8>>;
}

/// Reads files with `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsLoader;

impl FileLoader for FsLoader {
    fn load(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

impl<F: Fn(&Path) -> io::Result<Vec<u8>>> FileLoader for F {
    fn load(&self, path: &Path) -> io::Result<Vec<u8>> {
        self(path)
    }
}

/// Reads `path` and the files it includes from the filesystem.
pub fn read_conf(path: &Path) -> Result<IscConfig, IscError> {
    read_conf_with(path, &FsLoader)
}

/// Reads `path` and its includes through `loader`.
pub fn read_conf_with(path: &Path, loader: &dyn FileLoader) -> Result<IscConfig, IscError> {
    let text = loader.load(path).map_err(|e| IscError::io(path, e))?;
    parse_conf(path, &text, loader)
}

/// Parses `text` as the content of `origin` (which names it in errors and anchors relative
/// includes); included files are read through `loader`.
pub fn parse_conf(
    origin: &Path,
    text: &[u8],
    loader: &dyn FileLoader,
) -> Result<IscConfig, IscError> {
    let file = origin.display().to_string();
    let tree = parse_tree(text, Mode::Strict).map_err(|e| perr(&file, e.pos, e.message))?;
    let mut w = Walker {
        loader,
        scopes: vec![ScopeOpts::default()],
        subnets: Vec::new(),
        hosts: Vec::new(),
        pending: Vec::new(),
        warnings: Vec::new(),
        files: vec![origin.to_path_buf()],
        include_stack: vec![normalize(origin)],
    };
    let ctx = Ctx {
        scope: 0,
        shared: None,
        subnet: None,
        in_pool: false,
        depth: 0,
        file: file.clone(),
        path: origin.to_path_buf(),
        annotations: tree.annotations.clone().into(),
    };
    w.walk(&tree.stmts, &ctx)?;
    Ok(w.finish())
}

fn perr(file: &str, pos: Pos, message: impl Into<String>) -> IscError {
    IscError::Parse(ParseError {
        file: file.to_string(),
        line: pos.line,
        col: pos.col,
        message: message.into(),
    })
}

/// `a/./b/../c` → `a/c`, without touching the filesystem (cycle detection must work with any
/// loader).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[derive(Debug, Default)]
struct ScopeOpts {
    parent: Option<usize>,
    routers: Option<Vec<Ipv4Addr>>,
    dns: Option<Vec<Ipv4Addr>>,
    ntp: Option<Vec<Ipv4Addr>>,
    domain_name: Option<String>,
    ddns_domain_name: Option<String>,
    use_host_decl_names: Option<bool>,
}

struct SubnetB {
    subnet: IscSubnet,
    scope: usize,
}

struct PendingRange {
    lo: Ipv4Addr,
    hi: Ipv4Addr,
    shared: Option<String>,
    file: String,
    pos: Pos,
}

struct HostB {
    host: IscHost,
    subnet: Option<usize>,
    /// The scope the host is declared in (its own block's settings are in `host`).
    scope: usize,
    /// `use-host-decl-names` written in the host's own block.
    own_decl_names: Option<bool>,
}

#[derive(Clone)]
struct Ctx {
    scope: usize,
    shared: Option<String>,
    subnet: Option<usize>,
    in_pool: bool,
    depth: usize,
    file: String,
    path: PathBuf,
    /// The current file's `#$` / `#!` lines.
    annotations: Rc<[Annotation]>,
}

struct Walker<'l> {
    loader: &'l dyn FileLoader,
    scopes: Vec<ScopeOpts>,
    subnets: Vec<SubnetB>,
    hosts: Vec<HostB>,
    pending: Vec<PendingRange>,
    warnings: Vec<Warning>,
    files: Vec<PathBuf>,
    include_stack: Vec<PathBuf>,
}

/// Statements dhcpd knows that this reader has no use for: skipped silently, so that warnings
/// are kept for what is really unknown (typos, newer syntax).
const IGNORED: &[&str] = &[
    "abandon-lease-time",
    "adaptive-lease-time-threshold",
    "add",
    "allow",
    "always-broadcast",
    "always-reply-rfc1048",
    "append",
    "authoring-byte-order",
    "authoritative",
    "boot-unknown-clients",
    "break",
    "case",
    "class",
    "client-updates",
    "db-time-format",
    "default",
    "default-lease-time",
    "delayed-ack",
    "deny",
    "dhcpv6-lease-file-name",
    "dhcpv6-pid-file-name",
    "do-forward-updates",
    "dont-use-fsync",
    "dynamic-bootp-lease-cutoff",
    "dynamic-bootp-lease-length",
    "echo-client-id",
    "else",
    "elsif",
    "eval",
    "execute",
    "failover",
    "filename",
    "fixed-address",
    "fixed-address6",
    "fixed-prefix6",
    "get-lease-hostnames",
    "hardware",
    "if",
    "ignore",
    "ignore-client-uids",
    "infinite-is-reserved",
    "key",
    "lease-file-name",
    "lease-id-format",
    "limit-addrs-per-ia",
    "local-address",
    "local-address6",
    "local-port",
    "log",
    "log-facility",
    "log-threshold-high",
    "log-threshold-low",
    "match",
    "max-ack-delay",
    "max-lease-time",
    "max-unacked-updates",
    "min-lease-time",
    "min-secs",
    "next-server",
    "not",
    "omapi-key",
    "omapi-port",
    "on",
    "one-lease-per-client",
    "persist-eui-64-leases",
    "pid-file-name",
    "ping-check",
    "ping-cltt-secs",
    "ping-timeout",
    "pool6",
    "preferred-lifetime",
    "prefix-length-mode",
    "prefix6",
    "prepend",
    "range6",
    "release-on-roam",
    "remote-port",
    "request",
    "require",
    "reserved",
    "send",
    "server-duid",
    "server-identifier",
    "server-name",
    "set",
    "site-option-space",
    "spawn",
    "stash-agent-options",
    "subclass",
    "subnet6",
    "supersede",
    "switch",
    "unset",
    "update-conflict-detection",
    "update-optimization",
    "update-static-leases",
    "use-lease-addr-for-default-route",
    "vendor-option-space",
    "zone",
];

fn is_ignored(kw: &str) -> bool {
    IGNORED.binary_search(&kw).is_ok() || kw.starts_with("ddns-") || kw.starts_with("ldap-")
}

impl Walker<'_> {
    fn warn(&mut self, file: &str, pos: Pos, message: impl Into<String>) {
        self.warnings.push(Warning {
            file: file.to_string(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        });
    }

    fn new_scope(&mut self, parent: usize) -> usize {
        self.scopes.push(ScopeOpts {
            parent: Some(parent),
            ..ScopeOpts::default()
        });
        self.scopes.len() - 1
    }

    fn block<'s>(&self, s: &'s Stmt, ctx: &Ctx, what: &str) -> Result<&'s [Stmt], IscError> {
        match &s.block {
            Some(b) => Ok(b),
            None => Err(perr(
                &ctx.file,
                s.pos,
                format!("'{what}' needs a {{ … }} block"),
            )),
        }
    }

    fn walk(&mut self, stmts: &[Stmt], ctx: &Ctx) -> Result<(), IscError> {
        if ctx.depth > MAX_TOTAL_DEPTH {
            let pos = stmts.first().map_or_else(Pos::default, |s| s.pos);
            return Err(perr(&ctx.file, pos, "blocks nested too deeply"));
        }
        for s in stmts {
            self.statement(s, ctx)?;
        }
        Ok(())
    }

    fn inner(ctx: &Ctx) -> Ctx {
        Ctx {
            depth: ctx.depth + 1,
            ..ctx.clone()
        }
    }

    fn statement(&mut self, s: &Stmt, ctx: &Ctx) -> Result<(), IscError> {
        let Some(kw) = s.keyword() else {
            let what = s
                .words
                .first()
                .map_or_else(|| "'{'".into(), Token::describe);
            self.warn(
                &ctx.file,
                s.pos,
                format!("statement starting with {what} skipped"),
            );
            return Ok(());
        };
        match kw.as_str() {
            "include" => self.include(s, ctx),
            "shared-network" => {
                let name = s
                    .words
                    .get(1)
                    .and_then(Token::text)
                    .ok_or_else(|| perr(&ctx.file, s.pos, "'shared-network' needs a name"))?;
                let body = self.block(s, ctx, "shared-network")?;
                let scope = self.new_scope(ctx.scope);
                let c = Ctx {
                    scope,
                    shared: Some(name),
                    subnet: None,
                    in_pool: false,
                    ..Self::inner(ctx)
                };
                self.walk(body, &c)
            }
            "subnet" => self.subnet(s, ctx),
            "pool" => {
                let body = self.block(s, ctx, "pool")?;
                if ctx.subnet.is_none() && ctx.shared.is_none() {
                    self.warn(
                        &ctx.file,
                        s.pos,
                        "'pool' outside any subnet or shared-network: its ranges go to the subnet that contains them",
                    );
                }
                let scope = self.new_scope(ctx.scope);
                let c = Ctx {
                    scope,
                    in_pool: true,
                    ..Self::inner(ctx)
                };
                self.walk(body, &c)
            }
            "range" => self.range(s, ctx),
            "group" => {
                let body = self.block(s, ctx, "group")?;
                let scope = self.new_scope(ctx.scope);
                let c = Ctx {
                    scope,
                    ..Self::inner(ctx)
                };
                self.walk(body, &c)
            }
            "host" => {
                let name = s
                    .words
                    .get(1)
                    .and_then(Token::text)
                    .ok_or_else(|| perr(&ctx.file, s.pos, "'host' needs a name"))?;
                let body = self.block(s, ctx, "host")?;
                let declared_in = ctx
                    .subnet
                    .and_then(|i| self.subnets.get(i))
                    .map(|b| b.subnet.network);
                let (host, _) = host_from_block(name, body, &ctx.file, s.pos.line, declared_in);
                let mut own_decl_names = None;
                for st in body {
                    if st.keyword().as_deref() == Some("use-host-decl-names") {
                        own_decl_names = self.flag(st, ctx);
                    }
                }
                self.hosts.push(HostB {
                    host,
                    subnet: ctx.subnet,
                    scope: ctx.scope,
                    own_decl_names,
                });
                Ok(())
            }
            "option" => {
                self.option(s, ctx);
                Ok(())
            }
            "ddns-domainname" => {
                match s.words.get(1).and_then(Token::text) {
                    Some(v) => self.scope_mut(ctx.scope).ddns_domain_name = Some(v),
                    None => self.warn(&ctx.file, s.pos, "'ddns-domainname' without a value"),
                }
                Ok(())
            }
            "use-host-decl-names" => {
                if let Some(v) = self.flag(s, ctx) {
                    self.scope_mut(ctx.scope).use_host_decl_names = Some(v);
                }
                Ok(())
            }
            k if is_ignored(k) => Ok(()),
            k => {
                let extra = if s.block.is_some() {
                    " with its block"
                } else {
                    ""
                };
                self.warn(
                    &ctx.file,
                    s.pos,
                    format!("unknown statement '{k}' skipped{extra}"),
                );
                Ok(())
            }
        }
    }

    /// A boolean statement's value (`on`/`true`, `off`/`false`), or a warning.
    fn flag(&mut self, s: &Stmt, ctx: &Ctx) -> Option<bool> {
        match s.word_lc(1).as_deref() {
            Some("on" | "true") => Some(true),
            Some("off" | "false") => Some(false),
            _ => {
                let kw = s.keyword().unwrap_or_default();
                self.warn(&ctx.file, s.pos, format!("'{kw}' needs on or off; skipped"));
                None
            }
        }
    }

    fn scope_mut(&mut self, i: usize) -> &mut ScopeOpts {
        // Scope ids are only ever produced by `new_scope` or 0, so this index always exists;
        // fall back to the global scope rather than panicking if that ever changes.
        let i = if i < self.scopes.len() { i } else { 0 };
        &mut self.scopes[i]
    }

    fn include(&mut self, s: &Stmt, ctx: &Ctx) -> Result<(), IscError> {
        let name = s
            .words
            .get(1)
            .and_then(Token::text)
            .ok_or_else(|| perr(&ctx.file, s.pos, "'include' needs a file name"))?;
        let rel = PathBuf::from(&name);
        let path = if rel.is_absolute() {
            rel
        } else {
            ctx.path.parent().unwrap_or(Path::new("")).join(rel)
        };
        let norm = normalize(&path);
        if self.include_stack.contains(&norm) {
            let chain: Vec<String> = self
                .include_stack
                .iter()
                .chain(std::iter::once(&norm))
                .map(|p| p.display().to_string())
                .collect();
            return Err(perr(
                &ctx.file,
                s.pos,
                format!("include cycle: {}", chain.join(" -> ")),
            ));
        }
        if self.include_stack.len() > MAX_INCLUDE_DEPTH {
            return Err(perr(
                &ctx.file,
                s.pos,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels"),
            ));
        }
        let text = self.loader.load(&path).map_err(|e| {
            perr(
                &ctx.file,
                s.pos,
                format!("cannot read included file {}: {e}", path.display()),
            )
        })?;
        let file = path.display().to_string();
        let tree = parse_tree(&text, Mode::Strict).map_err(|e| perr(&file, e.pos, e.message))?;
        self.files.push(path.clone());
        self.include_stack.push(norm);
        let c = Ctx {
            file,
            path,
            annotations: tree.annotations.clone().into(),
            ..Self::inner(ctx)
        };
        let r = self.walk(&tree.stmts, &c);
        self.include_stack.pop();
        r
    }

    fn subnet(&mut self, s: &Stmt, ctx: &Ctx) -> Result<(), IscError> {
        let addr = ip_at(s, 1, ctx, "subnet address")?;
        if s.word_lc(2).as_deref() != Some("netmask") {
            let pos = s.words.get(2).map_or(s.pos, |t| t.pos);
            return Err(perr(
                &ctx.file,
                pos,
                "expected 'netmask' after the subnet address",
            ));
        }
        let mask = ip_at(s, 3, ctx, "netmask")?;
        let m = u32::from(mask);
        let prefix = m.leading_ones();
        let contiguous = if prefix == 0 {
            m == 0
        } else {
            m == u32::MAX << (32 - prefix)
        };
        let mask_pos = s.words.get(3).map_or(s.pos, |t| t.pos);
        if !contiguous {
            return Err(perr(
                &ctx.file,
                mask_pos,
                format!("netmask {mask} is not contiguous"),
            ));
        }
        let net = Ipv4Net::new(addr, prefix as u8)
            .map_err(|e| perr(&ctx.file, mask_pos, e.to_string()))?
            .trunc();
        if net.addr() != addr {
            self.warn(
                &ctx.file,
                s.pos,
                format!("subnet {addr} netmask {mask} has host bits set; using {net}"),
            );
        }
        let body = self.block(s, ctx, "subnet")?;
        if let Some(outer) = ctx.subnet {
            let outer = self.subnets.get(outer).map(|b| b.subnet.network);
            return Err(perr(
                &ctx.file,
                s.pos,
                format!(
                    "subnet {net} declared inside subnet {}",
                    outer.map_or_else(String::new, |n| n.to_string())
                ),
            ));
        }
        let idx = match self.subnets.iter().position(|b| b.subnet.network == net) {
            Some(i) => {
                self.warn(
                    &ctx.file,
                    s.pos,
                    format!("subnet {net} declared again; merged into the first declaration"),
                );
                i
            }
            None => {
                let scope = self.new_scope(ctx.scope);
                self.subnets.push(SubnetB {
                    subnet: IscSubnet {
                        network: net,
                        shared_network: ctx.shared.clone(),
                        ranges: Vec::new(),
                        routers: None,
                        dns_servers: None,
                        ntp_servers: None,
                        domain_name: None,
                        ddns_domain_name: None,
                        description: None,
                        monitor: true,
                        hosts: Vec::new(),
                        file: ctx.file.clone(),
                        line: s.pos.line,
                    },
                    scope,
                });
                self.subnets.len() - 1
            }
        };
        if let Some(a) = annotation_in(s, body, &ctx.annotations)
            && let Some(b) = self.subnets.get_mut(idx)
        {
            b.subnet.description = (!a.text.is_empty()).then(|| a.text.clone());
            b.subnet.monitor = !a.unmonitored;
        }
        let scope = self.subnets.get(idx).map_or(ctx.scope, |b| b.scope);
        let c = Ctx {
            scope,
            subnet: Some(idx),
            in_pool: false,
            ..Self::inner(ctx)
        };
        self.walk(body, &c)
    }

    fn range(&mut self, s: &Stmt, ctx: &Ctx) -> Result<(), IscError> {
        let mut i = 1;
        if s.word_lc(1).as_deref() == Some("dynamic-bootp") {
            i = 2;
        }
        let lo = ip_at(s, i, ctx, "range start")?;
        let hi = if s.words.len() > i + 1 {
            ip_at(s, i + 1, ctx, "range end")?
        } else {
            lo
        };
        if let Some(extra) = s.words.get(i + 2) {
            return Err(perr(
                &ctx.file,
                extra.pos,
                format!("unexpected {} after the range", extra.describe()),
            ));
        }
        // dhcpd accepts the ends in either order.
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        match ctx
            .subnet
            .and_then(|i| self.subnets.get(i).map(|b| (i, b.subnet.network)))
        {
            Some((idx, net)) => {
                if net.contains(&lo) && net.contains(&hi) {
                    if let Some(b) = self.subnets.get_mut(idx) {
                        b.subnet.ranges.push((lo, hi));
                    }
                } else {
                    self.warn(
                        &ctx.file,
                        s.pos,
                        format!("range {lo} {hi} is not inside subnet {net}; skipped"),
                    );
                }
            }
            None => {
                if !ctx.in_pool && ctx.shared.is_none() {
                    self.warn(
                        &ctx.file,
                        s.pos,
                        "'range' outside any subnet or pool: assigned to the subnet that contains it",
                    );
                }
                self.pending.push(PendingRange {
                    lo,
                    hi,
                    shared: ctx.shared.clone(),
                    file: ctx.file.clone(),
                    pos: s.pos,
                });
            }
        }
        Ok(())
    }

    fn option(&mut self, s: &Stmt, ctx: &Ctx) {
        let Some(name) = s.word_lc(1) else {
            return;
        };
        match name.as_str() {
            "routers" | "domain-name-servers" | "ntp-servers" => {
                let mut ips = Vec::new();
                for t in s.words.iter().skip(2) {
                    match &t.tok {
                        Tok::Comma => {}
                        Tok::Word(w) => match w.parse::<Ipv4Addr>() {
                            Ok(ip) => ips.push(ip),
                            Err(_) => self.warn(
                                &ctx.file,
                                t.pos,
                                format!(
                                    "option {name}: '{w}' is not an IPv4 address (names are not resolved); skipped"
                                ),
                            ),
                        },
                        _ => self.warn(
                            &ctx.file,
                            t.pos,
                            format!("option {name}: unexpected {}; skipped", t.describe()),
                        ),
                    }
                }
                if ips.is_empty() {
                    return;
                }
                let sc = self.scope_mut(ctx.scope);
                match name.as_str() {
                    "routers" => sc.routers = Some(ips),
                    "domain-name-servers" => sc.dns = Some(ips),
                    _ => sc.ntp = Some(ips),
                }
            }
            "domain-name" => match s.words.get(2).and_then(Token::text) {
                Some(v) => self.scope_mut(ctx.scope).domain_name = Some(v),
                None => self.warn(&ctx.file, s.pos, "option domain-name without a value"),
            },
            _ => {}
        }
    }

    fn resolve<T: Clone>(&self, scope: usize, get: impl Fn(&ScopeOpts) -> &Option<T>) -> Option<T> {
        let mut cur = Some(scope);
        let mut guard = 0;
        while let Some(i) = cur {
            let sc = self.scopes.get(i)?;
            if let Some(v) = get(sc) {
                return Some(v.clone());
            }
            cur = sc.parent;
            guard += 1;
            if guard > self.scopes.len() {
                return None;
            }
        }
        None
    }

    fn finish(mut self) -> IscConfig {
        // Options, nearest scope first.
        let resolved: Vec<_> = self
            .subnets
            .iter()
            .map(|b| {
                (
                    self.resolve(b.scope, |s| &s.routers),
                    self.resolve(b.scope, |s| &s.dns),
                    self.resolve(b.scope, |s| &s.ntp),
                    self.resolve(b.scope, |s| &s.domain_name),
                    self.resolve(b.scope, |s| &s.ddns_domain_name),
                )
            })
            .collect();
        let mut subnets: Vec<IscSubnet> = Vec::with_capacity(self.subnets.len());
        for (b, (r, d, n, dn, ddn)) in self.subnets.drain(..).zip(resolved) {
            let mut sn = b.subnet;
            sn.routers = r;
            sn.dns_servers = d;
            sn.ntp_servers = n;
            sn.domain_name = dn;
            sn.ddns_domain_name = ddn;
            subnets.push(sn);
        }
        // Ranges from pools or shared-networks outside a subnet block.
        for p in std::mem::take(&mut self.pending) {
            let target = subnets
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    (p.shared.is_none() || s.shared_network == p.shared)
                        && s.network.contains(&p.lo)
                        && s.network.contains(&p.hi)
                })
                .max_by_key(|(_, s)| s.network.prefix_len())
                .map(|(i, _)| i);
            match target.and_then(|i| subnets.get_mut(i)) {
                Some(s) => s.ranges.push((p.lo, p.hi)),
                None => self.warn(
                    &p.file,
                    p.pos,
                    format!(
                        "range {} {} lies in no declared subnet{}; skipped",
                        p.lo,
                        p.hi,
                        p.shared
                            .as_ref()
                            .map(|n| format!(" of shared-network {n}"))
                            .unwrap_or_default()
                    ),
                ),
            }
        }
        // Statics: declared inside a subnet, or with a fixed address in it.
        let mut hosts = Vec::new();
        let host_list = std::mem::take(&mut self.hosts);
        for mut hb in host_list {
            hb.host.use_host_decl_names = hb
                .own_decl_names
                .or_else(|| self.resolve(hb.scope, |s| &s.use_host_decl_names))
                .unwrap_or(false);
            let mut targets = BTreeSet::new();
            if let Some(i) = hb.subnet {
                targets.insert(i);
            }
            for ip in &hb.host.fixed_addresses {
                if let Some(i) = index_in(&subnets, *ip) {
                    targets.insert(i);
                }
            }
            for i in targets {
                if let Some(s) = subnets.get_mut(i) {
                    s.hosts.push(hb.host.clone());
                }
            }
            if hb.subnet.is_none() {
                hosts.push(hb.host);
            }
        }
        IscConfig {
            subnets,
            hosts,
            files: self.files,
            warnings: self.warnings,
        }
    }
}

/// The last `#$` / `#!` line directly inside the block of `s` (whose statements are `body`):
/// after its `{`, before its `}`, and in none of the blocks nested in it (DHCPStats reads them
/// in the subnet, not in its pools).
fn annotation_in<'a>(s: &Stmt, body: &[Stmt], all: &'a [Annotation]) -> Option<&'a Annotation> {
    let key = |p: Pos| (p.line, p.col);
    let close = key(s.close?);
    let open = key(s.pos);
    let nested: Vec<((u32, u32), (u32, u32))> = body
        .iter()
        .filter_map(|c| Some((key(c.pos), key(c.close?))))
        .collect();
    all.iter().rev().find(|a| {
        let at = key(a.pos);
        at > open && at < close && !nested.iter().any(|&(o, c)| at > o && at < c)
    })
}

fn ip_at(s: &Stmt, i: usize, ctx: &Ctx, what: &str) -> Result<Ipv4Addr, IscError> {
    match s.words.get(i) {
        Some(t) => t.word().and_then(|w| w.parse().ok()).ok_or_else(|| {
            perr(
                &ctx.file,
                t.pos,
                format!("expected an IPv4 address ({what}), found {}", t.describe()),
            )
        }),
        None => Err(perr(
            &ctx.file,
            s.pos,
            format!("missing {what} in '{}'", s.keyword().unwrap_or_default()),
        )),
    }
}

/// Lower-case, two digits per octet when the address is colon-separated hex.
pub(crate) fn normalize_hw(addr: &str) -> String {
    match parse_colon_hex(addr) {
        Some(b) => crate::hex_colon(&b),
        None => addr.to_ascii_lowercase(),
    }
}

/// Reads a `hardware TYPE ADDR` statement.
pub(crate) fn hardware_of(s: &Stmt) -> Option<Hardware> {
    let htype = s.word_lc(1)?;
    let addr = s.words.get(2).and_then(Token::text)?;
    Some(Hardware {
        htype,
        address: normalize_hw(&addr),
    })
}

/// Reads a host block (config or leases file). The bool is true when the block says `deleted;`
/// (an OMAPI deletion recorded in the leases file).
pub(crate) fn host_from_block(
    name: String,
    body: &[Stmt],
    file: &str,
    line: u32,
    declared_in: Option<Ipv4Net>,
) -> (IscHost, bool) {
    let mut h = IscHost {
        name,
        hardware: None,
        fixed_addresses: Vec::new(),
        fixed_address_names: Vec::new(),
        host_name: None,
        use_host_decl_names: false,
        client_id: None,
        declared_in,
        file: file.to_string(),
        line,
    };
    let mut deleted = false;
    for s in body {
        match s.keyword().as_deref() {
            Some("hardware") => h.hardware = hardware_of(s),
            Some("fixed-address") => {
                for t in s.words.iter().skip(1) {
                    if let Some(w) = t.text() {
                        match w.parse::<Ipv4Addr>() {
                            Ok(ip) => h.fixed_addresses.push(ip),
                            Err(_) => h.fixed_address_names.push(w),
                        }
                    }
                }
            }
            Some("option") => match s.word_lc(1).as_deref() {
                Some("host-name") => h.host_name = s.words.get(2).and_then(Token::text),
                Some("dhcp-client-identifier") => {
                    h.client_id = s.words.get(2).and_then(binary_value)
                }
                _ => {}
            },
            Some("uid") => h.client_id = s.words.get(1).and_then(binary_value),
            Some("deleted") => deleted = true,
            _ => {}
        }
    }
    (h, deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_list_is_sorted() {
        let mut v = IGNORED.to_vec();
        v.sort_unstable();
        assert_eq!(v, IGNORED);
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize(Path::new("a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(
            normalize(Path::new("/etc/dhcp/../x")),
            PathBuf::from("/etc/x")
        );
    }
}
