//! `[relay]`: settings of `leased relay` (RFC 1542 / RFC 3046 relay agent), shape and checks in
//! one room so that the rest of the loader only gains a field and a call.
//!
//! This room only validates: which address an interface has, and its MAC, are io's business at
//! start-up, so `address` is optional here.

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::options::parse_ip;
use crate::span::{join_index, join_key};
use leased_core::relay_agent::ExistingOption82;

use crate::ctx::Ctx;

/// `[relay]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelay {
    pub upstreams: Option<Vec<String>>,
    pub max_hops: Option<i64>,
    pub option82: Option<bool>,
    pub existing_option82: Option<String>,
    pub link_selection: Option<bool>,
    pub server_id_override: Option<bool>,
    pub rewrite_server_id: Option<bool>,
    pub auth_key: Option<String>,
    pub source_port: Option<i64>,
    pub interfaces: Option<Vec<RawRelayInterface>>,
}

/// `[[relay.interfaces]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelayInterface {
    pub name: Option<String>,
    pub address: Option<String>,
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
}

/// The relay agent run by `leased relay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Servers every client request is forwarded to (each one, as RFC 1542 allows).
    pub upstreams: Vec<Ipv4Addr>,
    /// Requests whose hop count already exceeds this are discarded (RFC 1542 §4.1.1; default 4,
    /// at most 16).
    pub max_hops: u8,
    /// Insert our Option 82 (default true).
    pub option82: bool,
    /// Policy for a request that already carries Option 82, when set. Unset: `drop` for a
    /// request with giaddr 0 (the client wrote it, RFC 3046 §2.1.1), `keep` for one from a
    /// downstream relay (giaddr set). Set: that policy for both.
    pub existing_option82: Option<ExistingOption82>,
    /// Add sub-option 5 (RFC 3527 link selection) with the receiving link's address.
    pub link_selection: bool,
    /// Add sub-option 11 (RFC 5107 server identifier override) with the receiving link's
    /// address, so that renewals come to us and are relayed as well.
    pub server_id_override: bool,
    /// Replace option 54 in replies with the receiving link's address and restore the real
    /// server's in requests that name us, so renewals, releases and declines pass through the
    /// relay even when the server ignores sub-option 11 (Kea 2.2 does). Default false.
    pub rewrite_server_id: bool,
    /// Client-facing interfaces, at least one.
    pub interfaces: Vec<RelayInterface>,
    /// RFC 4030: sign every request's Option 82 with this key (the server lists the same key
    /// under `[[relay_auth]]` for our giaddr). Needs `option82 = true`.
    pub auth_key: Option<AuthKey>,
    /// The UDP port requests leave from and replies are received on (default 67). Any other
    /// port adds the RFC 8357 relay-port sub-option to our Option 82, so a server that
    /// supports it (and trusts us) answers there: this lets a relay run beside a server or
    /// another relay that holds port 67. Needs `option82 = true`.
    pub source_port: u16,
}

/// A relay's RFC 4030 key; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey(pub Vec<u8>);

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(<redacted>)")
    }
}

/// One client-facing interface of the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayInterface {
    /// Interface name, e.g. `eth1` or `eth0.100`.
    pub name: String,
    /// Our address on it used as giaddr; default: the interface's first IPv4 address.
    pub address: Option<Ipv4Addr>,
    /// Circuit-id template: `{interface}`, `{vlan}` (the number after the last `.` of the
    /// name, else empty) and `{ifindex}` are replaced; anything else is literal. Default
    /// `"{interface}"`.
    pub circuit_id: String,
    /// Remote-id template: `{mac}` is the interface's MAC (6 bytes, binary as RFC 3046 agents
    /// send it); anything else is a literal string. Default `"{mac}"`.
    pub remote_id: String,
}

/// Checks `[relay]`; `None` when absent (no relay mode) or invalid (errors recorded).
pub(crate) fn relay(ctx: &mut Ctx<'_>, raw: Option<&RawRelay>) -> Option<RelaySettings> {
    let raw = raw?;
    let mut ok = true;
    let mut upstreams = Vec::new();
    match &raw.upstreams {
        None => {
            ctx.err(
                "relay",
                "upstreams is required in [relay], e.g. upstreams = [\"198.18.1.1\"]",
            );
            ok = false;
        }
        Some(list) if list.is_empty() => {
            ctx.err("relay.upstreams", "must list at least one server");
            ok = false;
        }
        Some(list) => {
            for (i, s) in list.iter().enumerate() {
                let path = join_index("relay.upstreams", i);
                match parse_ip(s) {
                    Ok(ip) if ip.is_unspecified() || ip.is_broadcast() => {
                        ctx.err(&path, format!("{ip} cannot be an upstream server"));
                        ok = false;
                    }
                    Ok(ip) if upstreams.contains(&ip) => {
                        ctx.err(&path, format!("{ip} is listed twice"));
                        ok = false;
                    }
                    Ok(ip) => upstreams.push(ip),
                    Err(e) => {
                        ctx.err(&path, e);
                        ok = false;
                    }
                }
            }
        }
    }
    let max_hops = match raw.max_hops {
        None => 4,
        Some(n @ 0..=16) => u8::try_from(n).unwrap_or(16),
        Some(n) => {
            ctx.err(
                "relay.max_hops",
                format!("{n} is out of range: RFC 1542 allows 0 to 16"),
            );
            ok = false;
            4
        }
    };
    let existing_option82 = match raw.existing_option82.as_deref() {
        None => None,
        Some("keep") => Some(ExistingOption82::Keep),
        Some("replace") => Some(ExistingOption82::Replace),
        Some("drop") => Some(ExistingOption82::Drop),
        Some(other) => {
            ctx.err(
                "relay.existing_option82",
                format!("unknown policy {other:?}; expected \"keep\", \"replace\" or \"drop\""),
            );
            ok = false;
            None
        }
    };
    let mut interfaces: Vec<RelayInterface> = Vec::new();
    match &raw.interfaces {
        None => {
            ctx.err(
                "relay",
                "at least one [[relay.interfaces]] entry (a client-facing interface) is required",
            );
            ok = false;
        }
        Some(list) if list.is_empty() => {
            ctx.err("relay.interfaces", "must list at least one interface");
            ok = false;
        }
        Some(list) => {
            for (i, r) in list.iter().enumerate() {
                let ip = join_index("relay.interfaces", i);
                let key = |k: &str| join_key(&ip, k);
                let Some(name) = r.name.clone() else {
                    ctx.err(&ip, "name is required, e.g. name = \"eth1\"");
                    ok = false;
                    continue;
                };
                if name.is_empty()
                    || name.len() > 15
                    || name
                        .chars()
                        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
                {
                    ctx.err(
                        &key("name"),
                        format!("interface name {name:?} must be 1 to 15 bytes without '/', ':' or spaces"),
                    );
                    ok = false;
                }
                if interfaces.iter().any(|x| x.name == name) {
                    ctx.err(&key("name"), format!("interface {name:?} is listed twice"));
                    ok = false;
                }
                let address = match r.address.as_deref().map(parse_ip) {
                    None => None,
                    Some(Ok(a)) if a.is_unspecified() || a.is_broadcast() => {
                        ctx.err(&key("address"), format!("{a} cannot be a relay address"));
                        ok = false;
                        None
                    }
                    Some(Ok(a)) => Some(a),
                    Some(Err(e)) => {
                        ctx.err(&key("address"), e);
                        ok = false;
                        None
                    }
                };
                let circuit_id = r.circuit_id.clone().unwrap_or_else(|| "{interface}".into());
                let remote_id = r.remote_id.clone().unwrap_or_else(|| "{mac}".into());
                // Each sub-option value must fit its one-byte length, and all of ours must fit
                // one Option 82 (255 bytes): 2+1..=64 each leaves room for 5 and 11.
                for (k, v) in [("circuit_id", &circuit_id), ("remote_id", &remote_id)] {
                    if v.is_empty() || v.len() > 64 {
                        ctx.err(&key(k), "must be 1 to 64 bytes long");
                        ok = false;
                    }
                }
                interfaces.push(RelayInterface {
                    name,
                    address,
                    circuit_id,
                    remote_id,
                });
            }
        }
    }
    let auth_key = match &raw.auth_key {
        None => None,
        Some(_) if raw.option82 == Some(false) => {
            ctx.err(
                "relay.auth_key",
                "authentication signs our Option 82: it needs option82 = true",
            );
            ok = false;
            None
        }
        k => {
            let checked = crate::relay_auth::check_key(ctx, "relay.auth_key", k.as_ref());
            ok &= checked.is_some();
            checked.map(AuthKey)
        }
    };
    let source_port = match raw.source_port {
        None => 67,
        Some(_) if raw.option82 == Some(false) => {
            ctx.err(
                "relay.source_port",
                "the RFC 8357 relay port travels in our Option 82: it needs option82 = true",
            );
            ok = false;
            67
        }
        // 68 is where clients listen: replies for them would reach the relay instead.
        Some(p) => match u16::try_from(p) {
            Ok(p) if p != 0 && p != 68 => p,
            _ => {
                ctx.err(
                    "relay.source_port",
                    format!("{p} is not a usable UDP port (1 to 65535, not 68)"),
                );
                ok = false;
                67
            }
        },
    };
    ok.then_some(RelaySettings {
        upstreams,
        max_hops,
        option82: raw.option82.unwrap_or(true),
        existing_option82,
        link_selection: raw.link_selection.unwrap_or(false),
        server_id_override: raw.server_id_override.unwrap_or(false),
        rewrite_server_id: raw.rewrite_server_id.unwrap_or(false),
        interfaces,
        auth_key,
        source_port,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Format, load_str};

    fn relay_of(text: &str) -> Result<Option<RelaySettings>, Vec<String>> {
        load_str(text, "t.toml", Format::Toml)
            .map(|c| c.relay)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn relay_only_config_needs_no_subnets() {
        let r = relay_of(
            "[relay]\nupstreams = [\"198.18.1.1\", \"198.18.2.1\"]\n\
             [[relay.interfaces]]\nname = \"eth1\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.upstreams.len(), 2);
        assert_eq!(r.max_hops, 4);
        assert!(r.option82);
        assert_eq!(r.existing_option82, None);
        assert_eq!(r.interfaces[0].circuit_id, "{interface}");
        assert_eq!(r.interfaces[0].remote_id, "{mac}");
        assert_eq!(r.interfaces[0].address, None);
    }

    #[test]
    fn full_section() {
        let r = relay_of(
            "[relay]\nupstreams = [\"198.18.1.1\"]\nmax_hops = 16\noption82 = false\n\
             existing_option82 = \"replace\"\nlink_selection = true\nserver_id_override = true\n\
             rewrite_server_id = true\n\
             [[relay.interfaces]]\nname = \"eth0.100\"\naddress = \"198.18.0.1\"\n\
             circuit_id = \"sw1/{vlan}\"\nremote_id = \"olt-7\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.max_hops, 16);
        assert!(!r.option82 && r.link_selection && r.server_id_override && r.rewrite_server_id);
        assert_eq!(r.existing_option82, Some(ExistingOption82::Replace));
        assert_eq!(r.interfaces[0].address, Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(r.interfaces[0].remote_id, "olt-7");
        let r = relay_of(
            "[relay]\nupstreams = [\"198.18.1.1\"]\nexisting_option82 = \"drop\"\n\
             [[relay.interfaces]]\nname = \"eth1\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.existing_option82, Some(ExistingOption82::Drop));
    }

    #[test]
    fn errors_with_positions() {
        let e = relay_of(
            "[relay]\nupstreams = [\"nope\", \"0.0.0.0\"]\nmax_hops = 17\n\
             existing_option82 = \"append\"\n[[relay.interfaces]]\nname = \"a/b\"\n\
             circuit_id = \"\"\naddress = \"x\"\n[[relay.interfaces]]\naddress = \"198.18.0.1\"\n",
        )
        .unwrap_err();
        let all = e.join("\n");
        assert!(all.contains("t.toml:2:14: relay.upstreams[0]"), "{all}");
        assert!(all.contains("relay.upstreams[1]"), "{all}");
        assert!(all.contains("t.toml:3:12: relay.max_hops"), "{all}");
        assert!(all.contains("relay.existing_option82"), "{all}");
        assert!(all.contains("relay.interfaces[0].name"), "{all}");
        assert!(all.contains("relay.interfaces[0].circuit_id"), "{all}");
        assert!(all.contains("relay.interfaces[0].address"), "{all}");
        assert!(all.contains("name is required"), "{all}");
        let e = relay_of("[relay]\nmax_hops = 2\n").unwrap_err().join("\n");
        assert!(e.contains("upstreams is required"), "{e}");
        assert!(e.contains("relay.interfaces"), "{e}");
        let e = relay_of("[relay]\nbogus = 1\n").unwrap_err().join("\n");
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn source_port() {
        let base = "[relay]\nupstreams = [\"198.18.1.1\"]\n[[relay.interfaces]]\nname = \"eth1\"\n";
        assert_eq!(relay_of(base).unwrap().unwrap().source_port, 67);
        let with = base.replace("[[relay", "source_port = 1067\n[[relay");
        assert_eq!(relay_of(&with).unwrap().unwrap().source_port, 1067);
        for bad in ["0", "68", "70000", "-1"] {
            let text = base.replace("[[relay", &format!("source_port = {bad}\n[[relay"));
            let e = relay_of(&text).unwrap_err().join("\n");
            assert!(e.contains("t.toml:3:15: relay.source_port"), "{bad}: {e}");
        }
        let text = base.replace("[[relay", "option82 = false\nsource_port = 1067\n[[relay");
        let e = relay_of(&text).unwrap_err().join("\n");
        assert!(e.contains("needs option82 = true"), "{e}");
    }

    #[test]
    fn without_relay_subnets_are_still_required() {
        let e = relay_of("").unwrap_err().join("\n");
        assert!(e.contains("at least one [[subnets]]"), "{e}");
    }
}
