//! Compiled only under `#[cfg(test)]` (see lib.rs). Configs built directly from the model, for unit tests that must not depend on the loader.

use std::collections::BTreeMap;
use std::path::PathBuf;

use leased_config::{
    Config, LogFormat, LogSettings, Network, OptionSet, ProcessSettings, ServerSettings,
    StoreSettings, Subnet,
};

/// A config with one subnet per entry of `nets` (interface from `subnet_ifaces`, same index),
/// serving `interfaces`.
pub(crate) fn config_with(
    nets: &[&str],
    interfaces: &[&str],
    subnet_ifaces: &[Option<&str>],
) -> Config {
    Config {
        network: Network {
            server: ServerSettings {
                authoritative: true,
                lease_time: 3600,
                renewal_time: None,
                rebinding_time: None,
                offer_hold: 60,
                decline_quarantine: 86400,
                sticky_window: 86400,
                server_id: None,
                max_leases_per_circuit_id: None,
                max_leases_per_remote_id: None,
            },
            options: OptionSet::default(),
            relay_trust: Default::default(),
            subnets: nets
                .iter()
                .enumerate()
                .map(|(i, n)| Subnet {
                    network: n.parse().unwrap(),
                    interface: subnet_ifaces.get(i).copied().flatten().map(str::to_string),
                    server_id: None,
                    routers: vec![],
                    pools: vec![],
                    exclusions: vec![],
                    reservations: vec![],
                    lease_time: None,
                    shared_network: None,
                    max_leases_per_circuit_id: None,
                    max_leases_per_remote_id: None,
                    options: OptionSet::default(),
                    rapid_commit: false,
                    ipv6_only: None,
                })
                .collect(),
            banned_macs: BTreeMap::new(),
            device_overrides: BTreeMap::new(),
            relay_keys: Default::default(),
            classes: Vec::new(),
            sql_assignment_owner: None,
            allocation_slot: None,
            client_fqdn: Default::default(),
        },
        process: ProcessSettings {
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            ..ProcessSettings::default()
        },
        limits: Default::default(),
        rogue_servers: Default::default(),
        arp_watch: Default::default(),
        conflict_check: Default::default(),
        console: None,
        store: StoreSettings {
            path: PathBuf::from("leased.leases"),
            sql: None,
        },
        logging: LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
            file: None,
        },
        api: None,
        relay: None,
        export: None,
        sql_assignment: None,
        ha: None,
        ddns: None,
        leasequery: None,
    }
}

/// A client's request as it would arrive: Ethernet, broadcast flag clear.
pub(crate) fn client_packet(
    t: leased_wire::MessageType,
    mac: [u8; 6],
    xid: u32,
    extra: &[(u8, Vec<u8>)],
) -> leased_wire::Packet {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let mut options = leased_wire::Options::new();
    options.set(leased_wire::code::MESSAGE_TYPE, vec![t.code()]);
    for (c, v) in extra {
        options.set(*c, v.clone());
    }
    leased_wire::Packet {
        op: leased_wire::BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid,
        secs: 0,
        flags: 0,
        ciaddr: std::net::Ipv4Addr::UNSPECIFIED,
        yiaddr: std::net::Ipv4Addr::UNSPECIFIED,
        siaddr: std::net::Ipv4Addr::UNSPECIFIED,
        giaddr: std::net::Ipv4Addr::UNSPECIFIED,
        chaddr,
        sname: vec![],
        file: vec![],
        options,
        option82_in_overload: false,
    }
}
