//! Configs built directly from the model, for unit tests that must not depend on the loader.

use std::collections::BTreeMap;
use std::path::PathBuf;

use leased_core::config::{
    Config, LogFormat, LogSettings, OptionSet, ServerSettings, StoreSettings, Subnet,
};

/// A config with one subnet per entry of `nets` (interface from `subnet_ifaces`, same index),
/// serving `interfaces`.
pub(crate) fn config_with(
    nets: &[&str],
    interfaces: &[&str],
    subnet_ifaces: &[Option<&str>],
) -> Config {
    Config {
        server: ServerSettings {
            authoritative: true,
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            lease_time: 3600,
            renewal_time: None,
            rebinding_time: None,
            offer_hold: 60,
            decline_quarantine: 86400,
            sticky_window: 86400,
            server_id: None,
            pid_file: None,
        },
        options: OptionSet::default(),
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
                options: OptionSet::default(),
            })
            .collect(),
        banned_macs: BTreeMap::new(),
        device_overrides: BTreeMap::new(),
        store: StoreSettings {
            path: PathBuf::from("leased.leases"),
        },
        logging: LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        },
    }
}
