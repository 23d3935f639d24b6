//! What goes on the wire: Sonar V1 assignments, webhook events, and the original batcher's
//! MAC formatter.

use std::collections::HashMap;

use leased_core::{BindingEvent, BindingKind};
use serde::Serialize;

/// The original batcher's `Formatter::formatMac`: with `:` separators, one-digit groups are
/// left-padded (`a:0:3e:b1:45:2b`); then every non-hex character is dropped and the rest must
/// be exactly 12 hex digits; the answer is `AA:BB:CC:DD:EE:FF`. Colon, dash, dotted and bare
/// forms are all accepted.
pub fn normalize_mac(input: &str) -> Option<String> {
    let padded: String = if input.contains(':') {
        input
            .split(':')
            .map(|g| {
                if g.len() == 1 {
                    format!("0{g}")
                } else {
                    g.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(":")
    } else {
        input.to_string()
    };
    let hex: String = padded
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if hex.len() != 12 {
        return None;
    }
    let pairs: Vec<&str> = (0..6).filter_map(|i| hex.get(i * 2..i * 2 + 2)).collect();
    Some(pairs.join(":"))
}

/// Bytes as `AA:BB:…` (upper case, as Sonar stores MACs).
pub fn mac_upper(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A remote-id as Sonar wants it: a MAC or nothing. Six raw bytes (RFC 3046 agents) are a MAC;
/// text is normalised if it is one; anything else (a free-form string) is `None`.
pub fn remote_id_mac(remote_id: &[u8]) -> Option<String> {
    if remote_id.len() == 6 {
        return Some(mac_upper(remote_id));
    }
    std::str::from_utf8(remote_id).ok().and_then(normalize_mac)
}

/// One item of Sonar's `batch_dynamic_ip_assignment` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SonarAssignment {
    /// The binding ended (release, NAK, expiry).
    pub expired: bool,
    /// The address.
    pub ip_address: String,
    /// `AA:BB:CC:DD:EE:FF`.
    pub mac_address: String,
    /// The remote-id as a MAC; null when absent, not a MAC, or equal to `mac_address`.
    pub remote_id: Option<String>,
}

impl SonarAssignment {
    /// Maps a binding event to Sonar's item.
    pub fn from_event(ev: &BindingEvent) -> Self {
        let mac_address = mac_upper(&ev.mac.0);
        let remote_id = ev
            .remote_id
            .as_deref()
            .and_then(remote_id_mac)
            .filter(|r| *r != mac_address);
        Self {
            expired: ev.kind.ends(),
            ip_address: ev.ip.to_string(),
            mac_address,
            remote_id,
        }
    }
}

/// The last event per (MAC, IP) wins, in order of last appearance (as the original's md5 key).
pub fn last_per_binding(events: &[BindingEvent]) -> Vec<&BindingEvent> {
    last_per_binding_index(events)
        .into_iter()
        .filter_map(|i| events.get(i))
        .collect()
}

/// [`last_per_binding`] as indices into `events`, ascending.
pub fn last_per_binding_index(events: &[BindingEvent]) -> Vec<usize> {
    let mut last: HashMap<(&[u8], std::net::Ipv4Addr), usize> = HashMap::new();
    for (i, ev) in events.iter().enumerate() {
        last.insert((ev.mac.0.as_slice(), ev.ip), i);
    }
    let mut out: Vec<usize> = last.into_values().collect();
    out.sort_unstable();
    out
}

fn text_or_none(b: Option<&[u8]>) -> Option<String> {
    let s = std::str::from_utf8(b?).ok()?;
    (!s.chars().any(char::is_control)).then(|| s.to_string())
}

fn hex(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
}

/// One webhook event: everything leased knows of the binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEvent {
    /// `bound`, `released`, `nak` or `expired`.
    pub event: BindingKind,
    /// True for every end.
    pub expired: bool,
    /// `AA:BB:CC:DD:EE:FF`.
    pub mac_address: String,
    /// The address.
    pub ip_address: String,
    /// Unix seconds of the event.
    pub at: u64,
    /// Lease time in seconds (bound only).
    pub lease_time: Option<u32>,
    /// Unix seconds of the expiry (bound only).
    pub expires: Option<u64>,
    /// Remote-id as a MAC when it is one.
    pub remote_id: Option<String>,
    /// Remote-id bytes in hex.
    pub remote_id_hex: Option<String>,
    /// Circuit-id as text when printable.
    pub circuit_id: Option<String>,
    /// Circuit-id bytes in hex.
    pub circuit_id_hex: Option<String>,
    /// Client host name.
    pub hostname: Option<String>,
    /// Relay address.
    pub giaddr: Option<String>,
}

impl WebhookEvent {
    /// Maps a binding event to the webhook's item.
    pub fn from_event(ev: &BindingEvent) -> Self {
        Self {
            event: ev.kind,
            expired: ev.kind.ends(),
            mac_address: mac_upper(&ev.mac.0),
            ip_address: ev.ip.to_string(),
            at: ev.at.0,
            lease_time: ev.lease_time,
            expires: ev.expires.map(|e| e.0),
            remote_id: ev.remote_id.as_deref().and_then(remote_id_mac),
            remote_id_hex: hex(ev.remote_id.as_deref()),
            circuit_id: text_or_none(ev.circuit_id.as_deref()),
            circuit_id_hex: hex(ev.circuit_id.as_deref()),
            hostname: ev.hostname.clone(),
            giaddr: ev.giaddr.map(|g| g.to_string()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use leased_core::{HwAddr, Timestamp};

    #[test]
    fn mac_formatter_as_the_original() {
        // The original's FormatterTest cases.
        for ok in [
            "00:11:22:33:44:55",
            "00-11-22-33-44-55",
            "0011.2233.4455",
            "001122334455",
            "a:0:3e:b1:45:2b",
        ] {
            assert!(normalize_mac(ok).is_some(), "{ok}");
        }
        assert_eq!(
            normalize_mac("a:0:3e:b1:45:2b").unwrap(),
            "0A:00:3E:B1:45:2B"
        );
        assert_eq!(
            normalize_mac("aabb.ccdd.eeff").unwrap(),
            "AA:BB:CC:DD:EE:FF"
        );
        for bad in [
            "",
            "00:11:22:33:44",
            "0011223344556",
            "zz:zz:zz:zz:zz:zz",
            "192.168.1.1",
        ] {
            assert!(normalize_mac(bad).is_none(), "{bad}");
        }
    }

    fn ev(kind: BindingKind, ip: u8, rid: Option<&[u8]>) -> BindingEvent {
        BindingEvent {
            kind,
            mac: HwAddr(vec![0xaa, 0xbb, 0xcc, 0, 0, 1]),
            ip: std::net::Ipv4Addr::new(198, 18, 0, ip),
            at: Timestamp(5),
            lease_time: None,
            expires: None,
            remote_id: rid.map(<[u8]>::to_vec),
            circuit_id: Some(b"eth1".to_vec()),
            hostname: None,
            giaddr: None,
        }
    }

    #[test]
    fn sonar_item() {
        let a =
            SonarAssignment::from_event(&ev(BindingKind::Bound, 10, Some(&[2, 0, 0, 0, 0, 0xaa])));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"expired":false,"ip_address":"198.18.0.10","mac_address":"AA:BB:CC:00:00:01","remote_id":"02:00:00:00:00:AA"}"#
        );
        // remote_id equal to the MAC, or not a MAC at all: null.
        let a =
            SonarAssignment::from_event(&ev(BindingKind::Expired, 10, Some(b"aa:bb:cc:00:00:01")));
        assert!(a.expired && a.remote_id.is_none());
        let a = SonarAssignment::from_event(&ev(BindingKind::Released, 10, Some(b"olt-7")));
        assert!(a.remote_id.is_none());
    }

    #[test]
    fn last_update_per_mac_ip_wins() {
        let list = vec![
            ev(BindingKind::Bound, 10, None),
            ev(BindingKind::Bound, 11, None),
            ev(BindingKind::Expired, 10, None),
        ];
        let l = last_per_binding(&list);
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].ip.octets()[3], l[0].kind), (11, BindingKind::Bound));
        assert_eq!((l[1].ip.octets()[3], l[1].kind), (10, BindingKind::Expired));
        let w = WebhookEvent::from_event(&list[0]);
        assert_eq!(w.circuit_id.as_deref(), Some("eth1"));
        assert_eq!(w.circuit_id_hex.as_deref(), Some("65746831"));
    }
}
