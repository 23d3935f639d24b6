//! The client FQDN option (81, RFC 4702): what the client asked for, the server's policy, and
//! the flags the server answers with. The DNS updates themselves are made elsewhere (the
//! `leased-ddns` crate decides them from lease events); this module holds the protocol part
//! that both the reply and the updates must agree on, so they can never disagree about who
//! updates the A record.

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Flag S: the server performs the A update (client asks / server answers).
pub const FLAG_S: u8 = 0x01;
/// Flag O: the server overrode the client's S preference (server only).
pub const FLAG_O: u8 = 0x02;
/// Flag E: the domain name is in canonical wire format, not ASCII.
pub const FLAG_E: u8 = 0x04;
/// Flag N: no DNS updates by the server.
pub const FLAG_N: u8 = 0x08;

/// Longest domain name (RFC 1035 §2.3.4), in presentation form without the final dot.
const MAX_NAME: usize = 253;

/// Option 81 as the client sent it, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFqdn {
    /// The flags byte as received (only S, E and N mean anything from a client).
    pub flags: u8,
    /// The name in presentation form, lower-cased, without a final dot; empty when the client
    /// leaves the choice to the server.
    pub name: String,
    /// True when the name is a partial one the server should qualify with its suffix.
    pub partial: bool,
}

impl ClientFqdn {
    /// Decodes option 81's value; `None` when it is malformed (too short, bad labels, a name
    /// that is not a host name), so a bad option is as good as none.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let (&flags, rest) = raw.split_first()?;
        // RCODE1 and RCODE2 are deprecated and ignored.
        let data = rest.get(2..)?;
        let (name, partial) = if flags & FLAG_E != 0 {
            decode_wire(data)?
        } else {
            let text = std::str::from_utf8(data).ok()?.trim_end_matches('\0');
            match text.strip_suffix('.') {
                Some(full) => (full.to_string(), false),
                None => (text.to_string(), true),
            }
        };
        let name = name.to_ascii_lowercase();
        if !name.is_empty() && !valid_name(&name) {
            return None;
        }
        let partial = partial || name.is_empty();
        Some(Self {
            flags,
            name,
            partial,
        })
    }
}

/// Wire-format labels to dotted text; a name without the final zero-length label is partial.
fn decode_wire(mut data: &[u8]) -> Option<(String, bool)> {
    let mut out = String::new();
    loop {
        let Some((&len, rest)) = data.split_first() else {
            return Some((out, true));
        };
        if len == 0 {
            return rest.is_empty().then_some((out, false));
        }
        // A compression pointer or an extended label type is not allowed here.
        if len & 0xc0 != 0 {
            return None;
        }
        let label = rest.get(..usize::from(len))?;
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(std::str::from_utf8(label).ok()?);
        if out.len() > MAX_NAME {
            return None;
        }
        data = rest.get(usize::from(len)..)?;
    }
}

/// True for a name made of host-name labels (letters, digits, hyphens; 1 to 63 each), so that
/// nothing a client writes can become a wildcard, an escape or another zone's name.
pub fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// What a subnet's DDNS settings say about option 81 (from the config's `[ddns]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FqdnPolicy {
    /// Qualifies partial names and option 12 host names (no final dot), e.g. `example.net`.
    pub suffix: String,
    /// A forward zone is configured: the server can update A records.
    pub forward: bool,
    /// A reverse zone is configured: the server can update PTR records.
    pub reverse: bool,
    /// Update the A record even when the client asked to do it itself (S=0).
    pub override_client_update: bool,
    /// Update even when the client asked for no updates (N=1).
    pub override_no_update: bool,
}

/// Who does what, decided once from the client's flags and the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FqdnDecision {
    /// The server updates the A record (and its DHCID).
    pub forward: bool,
    /// The server updates the PTR record.
    pub reverse: bool,
    /// The flags byte of the reply's option 81.
    pub flags: u8,
}

impl FqdnPolicy {
    /// RFC 4702 §4 and §5: what the server does for a client that sent `flags`, and what it
    /// says in reply. Without option 81 (`None`) the server does both when it can (the
    /// option 12 fallback).
    pub fn decide(&self, flags: Option<u8>) -> FqdnDecision {
        let Some(client) = flags else {
            return FqdnDecision {
                forward: self.forward,
                reverse: self.reverse,
                flags: FLAG_S,
            };
        };
        let encoding = client & FLAG_E;
        if client & FLAG_N != 0 && !self.override_no_update {
            return FqdnDecision {
                forward: false,
                reverse: false,
                flags: FLAG_N | encoding,
            };
        }
        let wants_server = client & FLAG_S != 0;
        let server_forward = wants_server || self.override_client_update;
        // O: the server's S differs from what the client asked for.
        let overridden = server_forward != wants_server || client & FLAG_N != 0;
        let mut flags = encoding;
        if server_forward {
            flags |= FLAG_S;
        }
        if overridden {
            flags |= FLAG_O;
        }
        FqdnDecision {
            forward: server_forward && self.forward,
            reverse: self.reverse,
            flags,
        }
    }

    /// The fully qualified name (no final dot) for a client: its option 81 name, qualified
    /// when partial, else its option 12 host name qualified; `None` when neither gives a
    /// valid name (then no update is made).
    pub fn name_for(&self, fqdn: Option<&ClientFqdn>, hostname: Option<&str>) -> Option<String> {
        let (name, partial) = match fqdn.filter(|f| !f.name.is_empty()) {
            Some(f) => (f.name.clone(), f.partial),
            None => {
                let h = hostname?.trim().trim_end_matches('.').to_ascii_lowercase();
                // Only the first label of a host name counts: a client names itself, never
                // the domain it lives in.
                (h.split('.').next().unwrap_or_default().to_string(), true)
            }
        };
        let full = if partial && !self.suffix.is_empty() {
            format!("{name}.{}", self.suffix)
        } else {
            name
        };
        (valid_name(&full) && full.contains('.')).then_some(full)
    }

    /// The reply's option 81: the decided flags, RCODE1/RCODE2 255 (RFC 4702 §4), and the
    /// name the server will use, in the client's encoding.
    pub fn reply_option(&self, client: &ClientFqdn, hostname: Option<&str>) -> Vec<u8> {
        let d = self.decide(Some(client.flags));
        let mut out = vec![d.flags, 255, 255];
        let Some(name) = self.name_for(Some(client), hostname) else {
            return out;
        };
        if client.flags & FLAG_E != 0 {
            for label in name.split('.') {
                // valid_name bounds every label to 63 bytes.
                out.push(u8::try_from(label.len()).unwrap_or(63));
                out.extend_from_slice(label.as_bytes());
            }
            out.push(0);
        } else {
            out.extend_from_slice(name.as_bytes());
            out.push(b'.');
        }
        out
    }
}

/// The DDNS policies by subnet (a subnet without one gets no option 81 and no updates).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FqdnPolicies {
    /// By subnet network, as configured.
    pub by_subnet: Vec<(Ipv4Net, FqdnPolicy)>,
}

impl FqdnPolicies {
    /// The policy of the subnet `network`.
    pub fn for_subnet(&self, network: Ipv4Net) -> Option<&FqdnPolicy> {
        self.by_subnet
            .iter()
            .find(|(n, _)| *n == network)
            .map(|(_, p)| p)
    }

    /// The policy of the subnet that holds `ip` (the most specific one).
    pub fn for_address(&self, ip: Ipv4Addr) -> Option<(Ipv4Net, &FqdnPolicy)> {
        self.by_subnet
            .iter()
            .filter(|(n, _)| n.contains(&ip))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(n, p)| (*n, p))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy() -> FqdnPolicy {
        FqdnPolicy {
            suffix: "example.test".into(),
            forward: true,
            reverse: true,
            ..FqdnPolicy::default()
        }
    }

    #[test]
    fn parses_wire_and_ascii_names() {
        let mut raw = vec![FLAG_S | FLAG_E, 0, 0, 4];
        raw.extend_from_slice(b"Host");
        raw.extend_from_slice(&[7]);
        raw.extend_from_slice(b"example");
        raw.push(0);
        let f = ClientFqdn::parse(&raw).unwrap();
        assert_eq!((f.name.as_str(), f.partial), ("host.example", false));
        let f = ClientFqdn::parse(&[FLAG_S | FLAG_E, 0, 0, 4, b'h', b'o', b's', b't']).unwrap();
        assert_eq!((f.name.as_str(), f.partial), ("host", true));
        let f = ClientFqdn::parse(b"\x01\0\0box").unwrap();
        assert_eq!((f.name.as_str(), f.partial), ("box", true));
        let f = ClientFqdn::parse(b"\x01\0\0box.example.").unwrap();
        assert_eq!((f.name.as_str(), f.partial), ("box.example", false));
        assert!(ClientFqdn::parse(&[1, 0]).is_none());
        assert!(ClientFqdn::parse(b"\x01\0\0*.example.").is_none());
        assert!(ClientFqdn::parse(&[FLAG_E, 0, 0, 0xc0, 0x0c]).is_none());
        assert!(ClientFqdn::parse(&[FLAG_E, 0, 0, 9, b'a']).is_none());
    }

    #[test]
    fn flags_follow_rfc4702() {
        let p = policy();
        // S=1: the server does both, says S.
        let d = p.decide(Some(FLAG_S));
        assert!(d.forward && d.reverse);
        assert_eq!(d.flags, FLAG_S);
        // S=0: the client does A, the server PTR only.
        let d = p.decide(Some(0));
        assert!(!d.forward && d.reverse);
        assert_eq!(d.flags, 0);
        // N=1: nothing.
        let d = p.decide(Some(FLAG_N | FLAG_E));
        assert!(!d.forward && !d.reverse);
        assert_eq!(d.flags, FLAG_N | FLAG_E);
        // Overrides: S=1 O=1.
        let o = FqdnPolicy {
            override_client_update: true,
            override_no_update: true,
            ..p.clone()
        };
        let d = o.decide(Some(0));
        assert!(d.forward);
        assert_eq!(d.flags, FLAG_S | FLAG_O);
        let d = o.decide(Some(FLAG_N));
        assert!(d.forward && d.reverse);
        assert_eq!(d.flags, FLAG_S | FLAG_O);
        // No option 81: both.
        assert!(p.decide(None).forward);
    }

    #[test]
    fn names_are_qualified_and_checked() {
        let p = policy();
        let f = ClientFqdn::parse(b"\x01\0\0box").unwrap();
        assert_eq!(p.name_for(Some(&f), None).unwrap(), "box.example.test");
        assert_eq!(
            p.name_for(None, Some("Laptop.home.")).unwrap(),
            "laptop.example.test"
        );
        assert_eq!(p.name_for(None, Some("bad_name")), None);
        assert_eq!(p.name_for(None, None), None);
        let reply = p.reply_option(&f, None);
        assert_eq!(&reply[..3], &[FLAG_S, 255, 255]);
        assert_eq!(&reply[3..], b"box.example.test.");
        let mut raw = vec![FLAG_S | FLAG_E, 0, 0, 3];
        raw.extend_from_slice(b"box");
        let f = ClientFqdn::parse(&raw).unwrap();
        let reply = p.reply_option(&f, None);
        assert_eq!(&reply[3..8], b"\x03box\x07");
        assert_eq!(reply.last(), Some(&0));
    }
}
