//! `dhcpd.leases` reader. dhcpd appends a new entry for an address each time its lease
//! changes and rewrites the file now and then, so the **last** entry per address is the
//! current one. The reader never fails on content: problems become warnings, and an entry cut
//! off at the end of the file (dhcpd writing while we read) is dropped with a warning, so the
//! previous complete entry for that address stays in force.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::IscError;
use crate::conf::{hardware_of, host_from_block};
use crate::model::{BindingState, FailoverPeerState, IscHost, IscLease, IscLeases, Warning};
use crate::syntax::{Mode, Pos, Stmt, Tok, Token, as_written, binary_value, parse_tree};
use crate::time::parse_time;

/// Reads a leases file; only an IO failure is an error.
pub fn read_leases(path: &Path) -> Result<IscLeases, IscError> {
    let text = std::fs::read(path).map_err(|e| IscError::io(path, e))?;
    Ok(parse_leases(&text, &path.display().to_string()))
}

/// Parses leases-file text; `origin` names the file in warnings.
pub fn parse_leases(text: &[u8], origin: &str) -> IscLeases {
    // Lenient mode never returns an error; keep a fallback anyway rather than panicking.
    let tree = parse_tree(text, Mode::Lenient).unwrap_or_default();
    let mut r = Reader {
        file: origin,
        src: text,
        warnings: Vec::new(),
    };
    for p in &tree.problems {
        r.warn(p.pos, p.message.clone());
    }
    let mut acc = Latest::default();
    for s in &tree.stmts {
        if let Some(top) = r.top(s) {
            acc.apply(top);
        }
    }
    acc.finish(origin, r.warnings)
}

/// What one top-level statement of a leases file contributes.
pub(crate) enum Top {
    /// A complete `lease` entry, and where its `lease` keyword is.
    Lease(IscLease, Pos),
    /// `server-duid` (its value, if it could be read).
    ServerDuid(Option<Vec<u8>>),
    /// A `failover peer … state` record.
    Failover(FailoverPeerState),
    /// A `host` entry, and whether it is a `deleted;` one.
    Host(IscHost, bool),
}

/// "Last entry wins" over a file's top-level statements, in file order: what both the
/// whole-text reader and [`crate::LeaseReader::into_leases`] build.
#[derive(Default)]
pub(crate) struct Latest {
    by_ip: BTreeMap<Ipv4Addr, IscLease>,
    /// Where each address's winning entry starts, for the warnings about it.
    at: BTreeMap<Ipv4Addr, Pos>,
    peers: Vec<FailoverPeerState>,
    hosts: Vec<IscHost>,
    server_duid: Option<Vec<u8>>,
    entries_read: usize,
}

impl Latest {
    pub(crate) fn apply(&mut self, top: Top) {
        match top {
            Top::Lease(lease, pos) => {
                self.entries_read += 1;
                self.at.insert(lease.ip, pos);
                self.by_ip.insert(lease.ip, lease);
            }
            Top::ServerDuid(d) => self.server_duid = d,
            Top::Failover(p) => match self.peers.iter_mut().find(|q| q.name == p.name) {
                Some(q) => *q = p,
                None => self.peers.push(p),
            },
            Top::Host(h, deleted) => {
                self.hosts.retain(|x| x.name != h.name);
                if !deleted {
                    self.hosts.push(h);
                }
            }
        }
    }

    /// The model, with one warning per current entry without a binding state appended to
    /// `warnings`.
    pub(crate) fn finish(self, origin: &str, mut warnings: Vec<Warning>) -> IscLeases {
        // One warning per current entry without a binding state (dhcpd 2.x/3.0 files, or a
        // file edited by hand): counted the way dhcpd counts it, and said once, with its place.
        for (ip, l) in &self.by_ip {
            if l.binding_state.is_none() {
                let pos = self.at.get(ip).copied().unwrap_or_default();
                warnings.push(no_binding_state_warning(origin, *ip, pos.line, pos.col));
            }
        }
        IscLeases {
            leases: self.by_ip.into_values().collect(),
            server_duid: self.server_duid,
            failover_peers: self.peers,
            hosts: self.hosts,
            entries_read: self.entries_read,
            warnings,
        }
    }
}

/// The warning for a current entry (the last for its address) that has no `binding state`,
/// at the place of its `lease` keyword: the same words from every reader, since an operator
/// compares them.
pub fn no_binding_state_warning(file: &str, ip: Ipv4Addr, line: u32, col: u32) -> Warning {
    Warning {
        file: file.to_string(),
        line,
        col,
        message: format!(
            "lease {ip} has no 'binding state': taken as active while its 'ends' is in the \
             future and free after, as dhcpd does"
        ),
    }
}

pub(crate) struct Reader<'a> {
    file: &'a str,
    /// The file's bytes, to give values back as written.
    src: &'a [u8],
    warnings: Vec<Warning>,
}

impl<'a> Reader<'a> {
    /// A reader of the statements of `src`, a piece of the file `file`.
    pub(crate) fn new(file: &'a str, src: &'a [u8]) -> Self {
        Reader {
            file,
            src,
            warnings: Vec::new(),
        }
    }

    /// The warnings so far, taken out.
    pub(crate) fn take_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.warnings)
    }

    /// What the top-level statement `s` contributes (warnings go to `self`).
    pub(crate) fn top(&mut self, s: &Stmt) -> Option<Top> {
        let kw = s.keyword();
        match kw.as_deref() {
            Some("lease") => {
                if s.truncated {
                    self.warn(
                        s.pos,
                        "incomplete lease entry at end of file (still being written?) ignored",
                    );
                    return None;
                }
                let Some(body) = &s.block else {
                    self.warn(s.pos, "'lease' without a { … } block skipped");
                    return None;
                };
                let ip = s
                    .words
                    .get(1)
                    .and_then(Token::word)
                    .and_then(|w| w.parse().ok());
                let Some(ip) = ip else {
                    self.warn(s.pos, "lease without a valid IPv4 address skipped");
                    return None;
                };
                let lease = self.lease(ip, s.pos.line, body);
                Some(Top::Lease(lease, s.pos))
            }
            Some("server-duid") => Some(Top::ServerDuid(s.words.get(1).and_then(binary_value))),
            Some("failover") => {
                if s.truncated {
                    return None;
                }
                failover(s).map(Top::Failover)
            }
            Some("host") => {
                if s.truncated {
                    self.warn(s.pos, "incomplete host entry at end of file ignored");
                    return None;
                }
                let (Some(name), Some(body)) = (s.words.get(1).and_then(Token::text), &s.block)
                else {
                    self.warn(s.pos, "malformed 'host' entry skipped");
                    return None;
                };
                let (h, deleted) = host_from_block(name, body, self.file, s.pos.line, None);
                Some(Top::Host(h, deleted))
            }
            // Known, not modelled: byte order, v6 records, classes, the time format.
            Some(
                "authoring-byte-order"
                | "lease6"
                | "ia-na"
                | "ia-ta"
                | "ia-pd"
                | "class"
                | "subclass"
                | "db-time-format",
            ) => None,
            Some(k) => {
                let k = k.to_string();
                self.warn(s.pos, format!("unknown statement '{k}' skipped"));
                None
            }
            None => {
                self.warn(s.pos, "statement without a keyword skipped");
                None
            }
        }
    }

    pub(crate) fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.warnings.push(Warning {
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        });
    }

    fn lease(&mut self, ip: Ipv4Addr, line: u32, body: &[Stmt]) -> IscLease {
        let mut l = IscLease::new(ip);
        l.line = line;
        for s in body {
            let Some(kw) = s.keyword() else {
                self.warn(s.pos, "statement without a keyword skipped");
                continue;
            };
            match kw.as_str() {
                "starts" | "ends" | "tstp" | "tsfp" | "atsfp" | "cltt" => {
                    let words: Vec<&str> = s.words.iter().skip(1).filter_map(Token::word).collect();
                    match parse_time(&words) {
                        Ok(t) => {
                            let slot = match kw.as_str() {
                                "starts" => &mut l.starts,
                                "ends" => &mut l.ends,
                                "tstp" => &mut l.tstp,
                                "tsfp" => &mut l.tsfp,
                                "atsfp" => &mut l.atsfp,
                                _ => &mut l.cltt,
                            };
                            *slot = Some(t);
                        }
                        Err(e) => self.warn(s.pos, format!("{kw}: {e}; skipped")),
                    }
                }
                "binding" | "next" | "rewind" => {
                    // binding state X / next binding state X / rewind binding state X
                    let off = if kw == "binding" { 0 } else { 1 };
                    let ok = (off == 0 || s.word_lc(1).as_deref() == Some("binding"))
                        && s.word_lc(1 + off).as_deref() == Some("state");
                    match (ok, s.words.get(2 + off).and_then(Token::word)) {
                        (true, Some(w)) => {
                            let st = Some(BindingState::parse(w));
                            match kw.as_str() {
                                "binding" => l.binding_state = st,
                                "next" => l.next_binding_state = st,
                                _ => l.rewind_binding_state = st,
                            }
                        }
                        _ => self.warn(s.pos, format!("malformed '{kw} … state' skipped")),
                    }
                }
                "abandoned" => {
                    // Old (3.0) files mark abandoned leases with a bare flag.
                    if l.binding_state.is_none() {
                        l.binding_state = Some(BindingState::Abandoned);
                    }
                }
                "hardware" => match hardware_of(s) {
                    Some(h) => l.hardware = Some(h),
                    None => self.warn(s.pos, "malformed 'hardware' skipped"),
                },
                "uid" => match s.words.get(1).and_then(binary_value) {
                    Some(b) => {
                        l.uid = Some(b);
                        l.uid_text = s.words.get(1).and_then(|t| as_written(self.src, t));
                    }
                    None => self.warn(s.pos, "malformed 'uid' skipped"),
                },
                "client-hostname" => l.client_hostname = s.words.get(1).and_then(Token::text),
                "set" => {
                    // set NAME = VALUE;
                    let name = s.words.get(1).and_then(Token::text);
                    let has_eq = matches!(s.words.get(2).map(|t| &t.tok), Some(Tok::Eq));
                    match (name, has_eq) {
                        (Some(n), true) => {
                            let v = self.value_text(s.words.get(3..).unwrap_or_default());
                            l.vars.insert(n, v);
                        }
                        _ => self.warn(s.pos, "malformed 'set' skipped"),
                    }
                }
                "option" => match s.word_lc(1).as_deref() {
                    Some("agent.circuit-id") => {
                        l.circuit_id = s.words.get(2).and_then(binary_value)
                    }
                    Some("agent.remote-id") => l.remote_id = s.words.get(2).and_then(binary_value),
                    _ => {}
                },
                k if k.starts_with("ddns-") => {
                    // 3.0-style `ddns-fwd-name "x";`
                    let v = self.value_text(s.words.get(1..).unwrap_or_default());
                    l.vars.insert(k.to_string(), v);
                }
                "on" => {
                    // on expiry { … } / on release { … } / on commit or expiry { … }
                    if s.words.iter().skip(1).filter_map(Token::word).any(|w| {
                        w.eq_ignore_ascii_case("expiry") || w.eq_ignore_ascii_case("release")
                    }) {
                        l.on_expiry_or_release = true;
                    }
                }
                // Flags dhcpd may write; nothing to count.
                "bootp" | "reserved" | "dynamic-bootp" | "billing" | "vendor-class-identifier" => {}
                k => {
                    let k = k.to_string();
                    self.warn(
                        s.pos,
                        format!("lease {ip}: unknown statement '{k}' skipped"),
                    );
                }
            }
        }
        l
    }
}

impl Reader<'_> {
    /// A `set` value as written: each token as the file has it (strings without their
    /// quotes, escapes kept), joined by spaces.
    fn value_text(&self, toks: &[Token]) -> String {
        toks.iter()
            .map(|t| match &t.tok {
                Tok::Comma => ",".into(),
                Tok::Eq => "=".into(),
                _ => as_written(self.src, t).unwrap_or_default(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `failover peer "NAME" state { my state S at T; partner state S at T; … }`
fn failover(s: &Stmt) -> Option<FailoverPeerState> {
    if s.word_lc(1).as_deref() != Some("peer") {
        return None;
    }
    let name = s.words.get(2).and_then(Token::text)?;
    let mut p = FailoverPeerState {
        name,
        my_state: None,
        partner_state: None,
    };
    for st in s.block.as_deref().unwrap_or_default() {
        let state = || st.words.get(2).and_then(Token::text);
        match (st.keyword().as_deref(), st.word_lc(1).as_deref()) {
            (Some("my"), Some("state")) => p.my_state = state(),
            (Some("partner"), Some("state")) => p.partner_state = state(),
            _ => {}
        }
    }
    Some(p)
}
