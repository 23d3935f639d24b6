//! Which interfaces to serve, and our IPv4 address on each.
//!
//! Order of preference (so an operator can be explicit, and a small setup needs no list):
//! `server.interfaces`; else every subnet's `interface`, plus, for subnets without one, the
//! interfaces holding an address inside them; else every interface with an IPv4 address inside
//! a configured subnet. Resolved once at start: interface changes need a restart.

use std::net::Ipv4Addr;

use leased_config::Config;

use crate::sock::SysAddr;

/// An interface to open a socket on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfaceSpec {
    pub name: String,
    /// Our IPv4 address there: one inside a configured subnet when there is one, else the
    /// first. Used as the request's local address when IP_PKTINFO gives none, and as the
    /// source of AF_PACKET replies.
    pub addr: Option<Ipv4Addr>,
}

/// Picks the interfaces to serve from `config` and the system's addresses.
pub(crate) fn resolve(config: &Config, system: &[SysAddr]) -> Result<Vec<IfaceSpec>, String> {
    let in_any_subnet = |ip: Ipv4Addr| {
        config
            .network
            .subnets
            .iter()
            .any(|s| s.network.contains(&ip))
    };
    let mut names: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    };

    if !config.process.interfaces.is_empty() {
        for n in &config.process.interfaces {
            push(n);
        }
    } else {
        for subnet in &config.network.subnets {
            match &subnet.interface {
                Some(n) => push(n),
                None => {
                    for a in system.iter().filter(|a| subnet.network.contains(&a.addr)) {
                        push(&a.name);
                    }
                }
            }
        }
    }

    if names.is_empty() {
        let nets: Vec<String> = config
            .network
            .subnets
            .iter()
            .map(|s| s.network.to_string())
            .collect();
        return Err(format!(
            "no interface to serve: none listed in server.interfaces or on a subnet, and no \
             interface has an IPv4 address inside a configured subnet ({})",
            if nets.is_empty() {
                "no subnets configured".to_string()
            } else {
                nets.join(", ")
            }
        ));
    }

    Ok(names
        .into_iter()
        .map(|name| {
            let mine = || system.iter().filter(|a| a.name == name);
            let addr = mine()
                .find(|a| in_any_subnet(a.addr))
                .or_else(|| mine().next())
                .map(|a| a.addr);
            IfaceSpec { name, addr }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(name: &str, a: [u8; 4], prefix: u8) -> SysAddr {
        SysAddr {
            name: name.into(),
            addr: Ipv4Addr::from(a),
            prefix,
        }
    }

    fn system() -> Vec<SysAddr> {
        vec![
            sys("lo", [127, 0, 0, 1], 8),
            sys("eth0", [10, 9, 9, 9], 24),
            sys("eth0", [198, 18, 0, 1], 24),
            sys("eth1", [198, 19, 0, 1], 24),
        ]
    }

    #[test]
    fn by_subnet_address() {
        let cfg = crate::testutil::config_with(&["198.18.0.0/24"], &[], &[None]);
        let got = resolve(&cfg, &system()).unwrap();
        assert_eq!(
            got,
            vec![IfaceSpec {
                name: "eth0".into(),
                addr: Some(Ipv4Addr::new(198, 18, 0, 1))
            }]
        );
    }

    #[test]
    fn explicit_list_wins() {
        let cfg = crate::testutil::config_with(&["198.18.0.0/24"], &["eth1", "eth1"], &[None]);
        let got = resolve(&cfg, &system()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "eth1");
        assert_eq!(got[0].addr, Some(Ipv4Addr::new(198, 19, 0, 1)));
    }

    #[test]
    fn subnet_interface_and_unknown_interface() {
        let cfg = crate::testutil::config_with(
            &["198.18.0.0/24", "198.19.0.0/24"],
            &[],
            &[Some("veth9"), None],
        );
        let got = resolve(&cfg, &system()).unwrap();
        assert_eq!(
            got[0],
            IfaceSpec {
                name: "veth9".into(),
                addr: None
            }
        );
        assert_eq!(got[1].name, "eth1");
    }

    #[test]
    fn nothing_to_serve_is_an_error() {
        let cfg = crate::testutil::config_with(&["198.18.8.0/24"], &[], &[None]);
        let err = resolve(&cfg, &system()).unwrap_err();
        assert!(err.contains("198.18.8.0/24"), "{err}");
    }
}
