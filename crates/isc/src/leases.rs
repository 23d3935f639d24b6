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
    let mut by_ip: BTreeMap<Ipv4Addr, IscLease> = BTreeMap::new();
    // Where each address's winning entry starts, for the warnings about it.
    let mut at: BTreeMap<Ipv4Addr, Pos> = BTreeMap::new();
    let mut peers: Vec<FailoverPeerState> = Vec::new();
    let mut hosts: Vec<IscHost> = Vec::new();
    let mut server_duid = None;
    let mut entries_read = 0;
    for s in &tree.stmts {
        let kw = s.keyword();
        match kw.as_deref() {
            Some("lease") => {
                if s.truncated {
                    r.warn(
                        s.pos,
                        "incomplete lease entry at end of file (still being written?) ignored",
                    );
                    continue;
                }
                let Some(body) = &s.block else {
                    r.warn(s.pos, "'lease' without a { … } block skipped");
                    continue;
                };
                let ip = s
                    .words
                    .get(1)
                    .and_then(Token::word)
                    .and_then(|w| w.parse().ok());
                let Some(ip) = ip else {
                    r.warn(s.pos, "lease without a valid IPv4 address skipped");
                    continue;
                };
                entries_read += 1;
                let lease = r.lease(ip, s.pos.line, body);
                by_ip.insert(ip, lease);
                at.insert(ip, s.pos);
            }
            Some("server-duid") => {
                server_duid = s.words.get(1).and_then(binary_value);
            }
            Some("failover") => {
                if s.truncated {
                    continue;
                }
                if let Some(p) = failover(s) {
                    match peers.iter_mut().find(|q| q.name == p.name) {
                        Some(q) => *q = p,
                        None => peers.push(p),
                    }
                }
            }
            Some("host") => {
                if s.truncated {
                    r.warn(s.pos, "incomplete host entry at end of file ignored");
                    continue;
                }
                let (Some(name), Some(body)) = (s.words.get(1).and_then(Token::text), &s.block)
                else {
                    r.warn(s.pos, "malformed 'host' entry skipped");
                    continue;
                };
                let (h, deleted) = host_from_block(name, body, origin, s.pos.line, None);
                hosts.retain(|x| x.name != h.name);
                if !deleted {
                    hosts.push(h);
                }
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
            ) => {}
            Some(k) => {
                let k = k.to_string();
                r.warn(s.pos, format!("unknown statement '{k}' skipped"));
            }
            None => r.warn(s.pos, "statement without a keyword skipped"),
        }
    }
    // One warning per current entry without a binding state (dhcpd 2.x/3.0 files, or a file
    // edited by hand): counted the way dhcpd counts it, and said once, with its place.
    for (ip, l) in &by_ip {
        if l.binding_state.is_none() {
            let pos = at.get(ip).copied().unwrap_or_default();
            r.warn(
                pos,
                format!(
                    "lease {ip} has no 'binding state': taken as active while its 'ends' is in \
                     the future and free after, as dhcpd does"
                ),
            );
        }
    }
    IscLeases {
        leases: by_ip.into_values().collect(),
        server_duid,
        failover_peers: peers,
        hosts,
        entries_read,
        warnings: r.warnings,
    }
}

struct Reader<'a> {
    file: &'a str,
    /// The file's bytes, to give values back as written.
    src: &'a [u8],
    warnings: Vec<Warning>,
}

impl Reader<'_> {
    fn warn(&mut self, pos: Pos, message: impl Into<String>) {
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
