//! The importers end to end on text (no files written): each fixture config maps, renders,
//! and loads with leased's loader; what does not map is listed with its place; what the
//! loader refuses is taken out and listed with the loader's reason.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::Path;

use leased_import::{Imported, Rendered, dhcplane, dnsmasq, finish, kea};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn render(i: Imported, source: &str) -> Rendered {
    finish(
        i,
        Path::new("/var/lib/leased/leases"),
        source,
        "leased.toml",
    )
    .unwrap()
}

fn listed(r: &Rendered, at: &str) -> bool {
    r.unmapped.iter().any(|u| u.at == at)
}

#[test]
fn kea_fixture() {
    let k = kea::import_config(&fixture("kea-dhcp4.conf")).unwrap();
    assert_eq!(
        k.lease_file.as_deref(),
        Some("/var/lib/kea/kea-leases4.csv")
    );
    let r = render(k.imported, "Kea");
    let c = &r.config;
    assert_eq!(c.network.subnets.len(), 3);
    assert_eq!(c.network.subnets[0].pools.len(), 2);
    // The shared network's option reaches both of its subnets; the global ones every subnet.
    for s in &c.network.subnets[1..] {
        assert_eq!(
            s.options.values.get(&15).map(Vec::as_slice),
            Some(&b"campus.test"[..])
        );
    }
    assert_eq!(
        c.network.options.values.get(&224).map(Vec::as_slice),
        Some(&b"north"[..])
    );
    assert_eq!(
        c.network.options.values.get(&150).map(Vec::as_slice),
        Some(&[198, 18, 0, 2][..])
    );
    assert_eq!(
        c.network.options.values.get(&2).map(Vec::as_slice),
        Some(&(-3600i32).to_be_bytes()[..])
    );
    assert_eq!(c.network.server.decline_quarantine, 3600);
    assert_eq!(c.network.classes.len(), 2);
    for at in [
        "Dhcp6",
        "Dhcp4.loggers",
        "Dhcp4.client-classes[2]",
        "Dhcp4.subnet4[0].relay",
        "Dhcp4.subnet4[0].reservations[4]",
        "Dhcp4.subnet4[0].reservations[6]",
        "Dhcp4.interfaces-config.dhcp-socket-type",
    ] {
        assert!(listed(&r, at), "{at}: {:#?}", r.unmapped);
    }
    // The header of the text lists them too, and the text is the config returned.
    assert!(r.text.contains("#   - Dhcp4.loggers: "));
    assert_eq!(
        leased_config::load_str(&r.text, "x", leased_config::Format::Toml).unwrap(),
        r.config
    );
}

#[test]
fn kea_without_flex_hook_lists_flex_id_reservations() {
    let text = r#"{ "Dhcp4": { "subnet4": [ { "id": 1, "subnet": "198.18.0.0/24",
        "pools": [ { "pool": "198.18.0.10-198.18.0.20" } ],
        "reservations": [ { "flex-id": "01:02", "ip-address": "198.18.0.5" } ] } ] } }"#;
    let r = render(kea::import_config(text).unwrap().imported, "Kea");
    assert!(r.config.network.subnets[0].reservations.is_empty());
    assert!(listed(&r, "Dhcp4.subnet4[0].reservations[0]"));
    // Kea's default is not authoritative, and that is what the import says.
    assert!(!r.config.network.server.authoritative);
}

#[test]
fn dnsmasq_fixture_and_local_addresses() {
    let d = dnsmasq::import_config(&fixture("dnsmasq.conf"), "dnsmasq.conf", &[]);
    let r = render(d.imported, "dnsmasq");
    assert_eq!(r.config.network.subnets.len(), 3);
    assert!(listed(&r, "dnsmasq.conf:32"), "DNS server line");
    // Without a netmask the range takes this machine's address in it, as dnsmasq does; and
    // `0.0.0.0` in an option is that address.
    let text = "dhcp-range=198.18.7.10,198.18.7.20\ndhcp-option=option:dns-server,0.0.0.0\n";
    let none = dnsmasq::import_config(text, "d.conf", &[]);
    assert!(none.imported.config.subnets.is_empty());
    assert!(none.imported.unmapped.iter().any(|u| u.at == "d.conf:1"));
    let local = ["198.18.7.1/24".parse().unwrap()];
    let d = dnsmasq::import_config(text, "d.conf", &local);
    let r = render(d.imported, "dnsmasq");
    let s = &r.config.network.subnets[0];
    assert_eq!(s.network.to_string(), "198.18.7.0/24");
    assert_eq!(
        s.options.values.get(&6).map(Vec::as_slice),
        Some(&[198, 18, 7, 1][..])
    );
    assert_eq!(s.lease_time, Some(3600), "dnsmasq's default lease time");
    assert!(
        !r.config.network.server.authoritative,
        "no dhcp-authoritative"
    );
}

#[test]
fn dhcplane_seed_examples() {
    for f in ["dhcplane-full.json", "dhcplane-example.json"] {
        let d = dhcplane::import_config(&fixture(f), None).unwrap();
        let r = render(d.imported, "dhcplane");
        let c = &r.config;
        assert_eq!(
            c.network.subnets[0].reservations[0].ip,
            Ipv4Addr::new(192, 168, 178, 10)
        );
        assert_eq!(c.network.server.sticky_window, 86_400);
        for at in ["logging", "equipment_types", "console_max_lines"] {
            assert!(listed(&r, at), "{f} {at}");
        }
    }
    // Unknown keys (dhcplane refuses them itself) are listed, not dropped in silence.
    let d = dhcplane::import_config(
        r#"{"subnet_cidr": "198.18.0.0/24", "pools": [{"start": "198.18.0.10", "end": "198.18.0.20"}],
            "exclusions": ["198.18.0.200"], "bogus": 1}"#,
        None,
    )
    .unwrap();
    let r = render(d.imported, "dhcplane");
    assert!(listed(&r, "bogus"));
    // An exclusion outside every pool is refused by leased's loader: taken out, with why.
    assert!(r.config.network.subnets[0].exclusions.is_empty());
    assert!(
        r.unmapped
            .iter()
            .any(|u| u.at.contains("subnet 198.18.0.0/24") && u.what.contains("exclusion")),
        "{:#?}",
        r.unmapped
    );
}
