//! Client classes: which class a client belongs to (the first in config order whose every
//! given criterion matches).

use leased_wire::{Packet, code};

use crate::model::{ClassMatch, ClientClass, Network};
use crate::relay::RelayKeys;

/// The index of the client's class in `config.classes`, if any matches.
pub(crate) fn class_of(
    config: &Network,
    pkt: &Packet,
    hostname: Option<&str>,
    relay: &RelayKeys,
) -> Option<usize> {
    config
        .classes
        .iter()
        .position(|c: &ClientClass| matches(&c.matcher, pkt, hostname, relay))
}

/// True when every criterion given in `m` holds for this client.
pub(crate) fn matches(
    m: &ClassMatch,
    pkt: &Packet,
    hostname: Option<&str>,
    relay: &RelayKeys,
) -> bool {
    let opt_text = |c: u8| {
        pkt.options
            .get(c)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    if let Some(g) = &m.vendor_class
        && !opt_text(code::VENDOR_CLASS).is_some_and(|v| glob(g, &v))
    {
        return false;
    }
    if let Some(g) = &m.user_class
        && !pkt
            .options
            .get(code::USER_CLASS)
            .is_some_and(|v| user_classes(v).iter().any(|u| glob(g, u)))
    {
        return false;
    }
    if let Some(p) = &m.mac_prefix
        && !pkt.chaddr().starts_with(p)
    {
        return false;
    }
    if let Some(g) = &m.hostname
        && !hostname.is_some_and(|h| glob(g, h))
    {
        return false;
    }
    if let Some(c) = &m.circuit_id
        && relay.circuit_id.as_ref() != Some(c)
    {
        return false;
    }
    if let Some(r) = &m.remote_id
        && relay.remote_id.as_ref() != Some(r)
    {
        return false;
    }
    true
}

/// Option 77 as text items: RFC 3004 (length-prefixed items) when it parses as such, plus the
/// whole value as text (many clients, e.g. dhclient's `user-class "x"`, send bare text).
fn user_classes(v: &[u8]) -> Vec<String> {
    let mut out = vec![String::from_utf8_lossy(v).into_owned()];
    let mut rest = v;
    let mut items = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        match tail.split_at_checked(usize::from(len)) {
            Some((item, tail)) if len > 0 => {
                items.push(String::from_utf8_lossy(item).into_owned());
                rest = tail;
            }
            _ => return out,
        }
    }
    out.extend(items);
    out
}

/// `*` matches any run, `?` one character; ASCII case-insensitive. Iterative, so a hostile
/// pattern or value cannot blow the stack.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("PXEClient*", "PXEClient:Arch:00000:UNDI:002001"));
        assert!(glob("pxeclient*", "PXEClient"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*cam*", "ipcam-12"));
        assert!(!glob("cam*", "ipcam"));
        assert!(glob("MSFT 5.0", "msft 5.0"));
        assert!(!glob("MSFT", "MSFT 5.0"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
    }

    #[test]
    fn user_class_items() {
        assert_eq!(user_classes(b"iPXE"), vec!["iPXE".to_string()]);
        let v = [4, b'i', b'P', b'X', b'E', 2, b'a', b'b'];
        let u = user_classes(&v);
        assert!(u.contains(&"iPXE".to_string()) && u.contains(&"ab".to_string()));
    }
}
