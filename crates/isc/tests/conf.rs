//! dhcpd.conf reader: every construct, inheritance, includes, warnings and errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use leased_isc::{IscConfig, IscError, IscSubnet, parse_conf, read_conf, read_conf_with};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ips(v: &[&str]) -> Option<Vec<Ipv4Addr>> {
    Some(v.iter().map(|s| ip(s)).collect())
}

fn subnet<'a>(c: &'a IscConfig, net: &str) -> &'a IscSubnet {
    c.subnets
        .iter()
        .find(|s| s.network.to_string() == net)
        .unwrap_or_else(|| panic!("no subnet {net}"))
}

/// Parses text with no include support (a loader that always fails).
fn conf(text: &str) -> Result<IscConfig, IscError> {
    let none = |p: &Path| -> io::Result<Vec<u8>> {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            p.display().to_string(),
        ))
    };
    parse_conf(Path::new("test.conf"), text.as_bytes(), &none)
}

fn parse_err(text: &str) -> leased_isc::ParseError {
    match conf(text) {
        Err(IscError::Parse(e)) => e,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn full_file_every_construct() {
    let c = read_conf(&data("full.conf")).unwrap();
    let nets: Vec<String> = c.subnets.iter().map(|s| s.network.to_string()).collect();
    assert_eq!(
        nets,
        [
            "198.18.10.0/24",
            "198.18.20.0/24",
            "198.18.21.0/24",
            "198.18.30.0/24",
            "198.18.40.0/24"
        ]
    );

    let s10 = subnet(&c, "198.18.10.0/24");
    assert_eq!(s10.shared_network, None);
    assert_eq!(
        s10.ranges,
        vec![
            (ip("198.18.10.100"), ip("198.18.10.149")),
            (ip("198.18.10.200"), ip("198.18.10.209")),
            (ip("198.18.10.220"), ip("198.18.10.220")),
        ]
    );
    assert_eq!(
        s10.routers,
        ips(&["198.18.10.1"]),
        "pool routers stay in the pool"
    );
    assert_eq!(s10.ntp_servers, ips(&["198.18.10.2", "198.18.10.3"]));
    assert_eq!(
        s10.dns_servers,
        ips(&["198.18.0.53", "198.18.0.54"]),
        "global"
    );
    assert_eq!(s10.domain_name.as_deref(), Some("sub.example"));
    assert_eq!(s10.ddns_domain_name.as_deref(), Some("ddns.global.example"));
    let names: Vec<&str> = s10.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["global-host", "in-subnet"]);
    let gh = &s10.hosts[0];
    assert_eq!(gh.hardware.as_ref().unwrap().address, "52:54:00:ff:ff:f0");
    assert_eq!(gh.hardware.as_ref().unwrap().htype, "ethernet");
    assert_eq!(gh.host_name.as_deref(), Some("server1"));
    assert_eq!(gh.declared_in, None);
    assert_eq!(
        s10.hosts[1].declared_in,
        Some("198.18.10.0/24".parse().unwrap())
    );

    let s20 = subnet(&c, "198.18.20.0/24");
    assert_eq!(s20.shared_network.as_deref(), Some("campus"));
    assert_eq!(
        s20.routers,
        ips(&["198.18.20.1"]),
        "subnet beats shared-network"
    );
    assert_eq!(
        s20.dns_servers,
        ips(&["198.18.20.53"]),
        "shared-network beats global"
    );
    assert_eq!(s20.domain_name.as_deref(), Some("global.example"));
    assert_eq!(
        s20.ranges,
        vec![(ip("198.18.20.50"), ip("198.18.20.59"))],
        "pool directly in the shared-network goes to the subnet holding it"
    );
    assert_eq!(s20.hosts.len(), 1);
    assert_eq!(s20.hosts[0].name, "shared-host");

    let s21 = subnet(&c, "198.18.21.0/24");
    assert_eq!(
        s21.shared_network.as_deref(),
        Some("campus"),
        "through a group"
    );
    assert_eq!(
        s21.routers,
        ips(&["198.18.99.99"]),
        "shared-network routers"
    );
    assert_eq!(
        s21.ddns_domain_name.as_deref(),
        Some("grp.example"),
        "group"
    );
    let names: Vec<&str> = s21.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["grp-host", "shared-host"]);

    let s30 = subnet(&c, "198.18.30.0/24");
    assert_eq!(s30.shared_network, None);
    assert_eq!(s30.routers, ips(&["198.18.30.1"]));
    assert_eq!(
        s30.ranges,
        vec![(ip("198.18.30.10"), ip("198.18.30.20"))],
        "reversed range ends are swapped, as dhcpd does"
    );
    assert_eq!(s30.hosts[0].name, "g1");

    let s40 = subnet(&c, "198.18.40.0/24");
    assert!(s40.file.ends_with("inc/more.conf"), "{}", s40.file);
    assert_eq!(s40.hosts[0].name, "from-include");
    assert!(s40.hosts[0].file.ends_with("inc/hosts.conf"));
    assert_eq!(c.files.len(), 3);

    // Global hosts: everything declared outside subnets.
    let names: Vec<&str> = c.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["global-host", "nameonly", "shared-host", "g1"]);
    let n = &c.hosts[1];
    assert!(n.fixed_addresses.is_empty());
    assert_eq!(n.fixed_address_names, ["gw.example.com"]);

    // Unknown statements are warnings with positions; known ones are silent.
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w[0].ends_with("full.conf:10:1: unknown statement 'frobnicate' skipped"),
        "{}",
        w[0]
    );
    assert!(w[1].contains(":11:1: unknown statement 'weird-block' skipped with its block"));
}

#[test]
fn lists_with_and_without_spaces() {
    let c = conf(
        "subnet 198.18.0.0 netmask 255.255.255.0 {\n\
         option routers 198.18.0.1 , 198.18.0.2,198.18.0.3;\n\
         option domain-name-servers gw.example, 198.18.0.9;\n}\n",
    )
    .unwrap();
    let s = &c.subnets[0];
    assert_eq!(s.routers, ips(&["198.18.0.1", "198.18.0.2", "198.18.0.3"]));
    assert_eq!(s.dns_servers, ips(&["198.18.0.9"]));
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].message.contains("gw.example"));
    assert_eq!((c.warnings[0].line, c.warnings[0].col), (3, 28));
}

#[test]
fn options_after_subnet_still_inherited() {
    let c = conf(
        "subnet 198.18.0.0 netmask 255.255.0.0 { }\noption routers 198.18.0.1;\nOPTION Domain-Name \"x\";\n",
    )
    .unwrap();
    assert_eq!(c.subnets[0].routers, ips(&["198.18.0.1"]));
    assert_eq!(
        c.subnets[0].domain_name.as_deref(),
        Some("x"),
        "case-insensitive keywords"
    );
}

#[test]
fn quoted_strings_with_escapes() {
    let c =
        conf("subnet 198.18.0.0 netmask 255.255.255.0 { option domain-name \"a\\\"b;c#d\\101\"; }")
            .unwrap();
    assert_eq!(c.subnets[0].domain_name.as_deref(), Some("a\"b;c#dA"));
}

#[test]
fn host_bits_are_cleared_with_a_warning() {
    let c = conf("subnet 198.18.0.5 netmask 255.255.255.0 { }").unwrap();
    assert_eq!(c.subnets[0].network.to_string(), "198.18.0.0/24");
    assert!(c.warnings[0].message.contains("host bits"));
}

#[test]
fn duplicate_subnet_is_merged() {
    let c = conf(
        "subnet 198.18.0.0 netmask 255.255.255.0 { range 198.18.0.10 198.18.0.11; }\n\
         subnet 198.18.0.0 netmask 255.255.255.0 { range 198.18.0.20 198.18.0.21; }",
    )
    .unwrap();
    assert_eq!(c.subnets.len(), 1);
    assert_eq!(c.subnets[0].ranges.len(), 2);
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn stray_ranges_and_pools() {
    let c = conf(
        "subnet 198.18.0.0 netmask 255.255.255.0 { range 198.18.1.1 198.18.1.2; }\n\
         range 198.18.0.50 198.18.0.60;\n\
         pool { range 198.18.0.70 198.18.0.71; range 198.18.9.1 198.18.9.2; }\n",
    )
    .unwrap();
    assert_eq!(
        c.subnets[0].ranges,
        vec![
            (ip("198.18.0.50"), ip("198.18.0.60")),
            (ip("198.18.0.70"), ip("198.18.0.71"))
        ]
    );
    let msgs: Vec<&str> = c.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    assert!(msgs[0].contains("not inside subnet"));
    assert!(msgs[3].contains("lies in no declared subnet"));
}

#[test]
fn comments_everywhere() {
    let c = conf(
        "#start\nsubnet # a\n198.18.0.0 # b\nnetmask # c\n255.255.255.0 # d\n{ # e\n\
         range # f\n198.18.0.10 198.18.0.20 # g\n; # h\n} # i\n# end without newline",
    )
    .unwrap();
    assert_eq!(c.subnets[0].ranges.len(), 1);
    assert!(c.warnings.is_empty());
}

#[test]
fn empty_and_comment_only_files() {
    assert!(conf("").unwrap().subnets.is_empty());
    assert!(conf("# nothing\n\n   \n").unwrap().subnets.is_empty());
    assert!(conf(";;;").unwrap().warnings.is_empty());
}

#[test]
fn syntax_errors_have_file_line_col() {
    let e =
        parse_err("subnet 198.18.0.0 netmask 255.255.255.0 {\n  range 198.18.0.1 198.18.0.2;\n");
    assert_eq!((e.line, e.col), (1, 41));
    assert!(e.message.contains("never closed"));
    assert_eq!(e.file, "test.conf");
    assert!(e.to_string().starts_with("test.conf:1:41: "));

    let e = parse_err("option routers 198.18.0.1\n}\n");
    assert_eq!((e.line, e.col), (1, 1));

    let e =
        parse_err("subnet 198.18.0.0 netmask 255.255.255.0 {\n range 198.18.0.x 198.18.0.2;\n}");
    assert_eq!((e.line, e.col), (2, 8));
    assert!(e.message.contains("IPv4"));

    let e = parse_err("subnet 198.18.0.0 mask 255.255.255.0 { }");
    assert_eq!((e.line, e.col), (1, 19));

    let e = parse_err("subnet 198.18.0.0 netmask 255.0.255.0 { }");
    assert!(e.message.contains("not contiguous"));

    let e = parse_err("subnet 198.18.0.0 netmask 255.255.255.0;");
    assert!(e.message.contains("block"));

    let e = parse_err("option domain-name \"unterminated;\n");
    assert_eq!((e.line, e.col), (1, 20));

    let e = parse_err(
        "subnet 198.18.0.0 netmask 255.255.0.0 { subnet 198.18.1.0 netmask 255.255.255.0 { } }",
    );
    assert!(e.message.contains("inside subnet"));

    let e = parse_err("range 198.18.0.1 198.18.0.2 198.18.0.3;");
    assert!(e.message.contains("unexpected"));

    let e = parse_err("host { }");
    assert!(e.message.contains("name"), "{}", e.message);
}

#[test]
fn truncated_config_is_an_error_not_a_panic() {
    let full = std::fs::read_to_string(data("full.conf")).unwrap();
    for cut in (0..full.len()).step_by(7) {
        if !full.is_char_boundary(cut) {
            continue;
        }
        // Either parses (cut at a statement boundary) or errors; never panics.
        let _ = conf(&full[..cut]);
    }
}

fn mem_loader(files: &[(&str, &str)]) -> impl Fn(&Path) -> io::Result<Vec<u8>> {
    let map: HashMap<PathBuf, Vec<u8>> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.as_bytes().to_vec()))
        .collect();
    move |p: &Path| {
        // Resolve `..` lexically, as the kernel would without symlinks.
        let mut n = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::ParentDir => {
                    n.pop();
                }
                c => n.push(c),
            }
        }
        map.get(&n)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
}

#[test]
fn include_cycle_is_detected() {
    match read_conf(&data("cycle-a.conf")) {
        Err(IscError::Parse(e)) => {
            assert!(e.message.contains("include cycle"), "{e}");
            assert!(e.file.ends_with("cycle-b.conf"));
            assert_eq!((e.line, e.col), (2, 1));
        }
        other => panic!("{other:?}"),
    }
    // Self-include.
    let l = mem_loader(&[("/e/a.conf", "include \"a.conf\";")]);
    let e = read_conf_with(Path::new("/e/a.conf"), &l).unwrap_err();
    assert!(e.to_string().contains("include cycle"), "{e}");
}

#[test]
fn include_depth_is_limited() {
    let names: Vec<String> = (0..40).map(|i| format!("/d/f{i}.conf")).collect();
    let bodies: Vec<String> = (0..40)
        .map(|i| format!("include \"f{}.conf\";", i + 1))
        .collect();
    let files: Vec<(&str, &str)> = names
        .iter()
        .zip(&bodies)
        .map(|(n, b)| (n.as_str(), b.as_str()))
        .collect();
    let l = mem_loader(&files);
    let e = read_conf_with(Path::new("/d/f0.conf"), &l).unwrap_err();
    assert!(e.to_string().contains("nested deeper"), "{e}");
}

#[test]
fn include_paths_relative_to_including_file() {
    let l = mem_loader(&[
        ("/etc/dhcp/dhcpd.conf", "include \"sub/a.conf\";"),
        (
            "/etc/dhcp/sub/a.conf",
            "include \"../b.conf\"; include \"/abs/c.conf\";",
        ),
        (
            "/etc/dhcp/b.conf",
            "subnet 198.18.0.0 netmask 255.255.255.0 { range 198.18.0.1 198.18.0.2; }",
        ),
        ("/abs/c.conf", "option routers 198.18.0.1;"),
    ]);
    let c = read_conf_with(Path::new("/etc/dhcp/dhcpd.conf"), &l).unwrap();
    assert_eq!(c.subnets.len(), 1);
    assert_eq!(c.subnets[0].routers, ips(&["198.18.0.1"]));
    assert_eq!(c.files.len(), 4);
    // The same file included twice (not a cycle) is fine.
    let l = mem_loader(&[
        ("/x/m.conf", "include \"h.conf\"; include \"h.conf\";"),
        ("/x/h.conf", "host a { fixed-address 198.18.0.1; }"),
    ]);
    assert_eq!(
        read_conf_with(Path::new("/x/m.conf"), &l)
            .unwrap()
            .hosts
            .len(),
        2
    );
}

#[test]
fn missing_include_and_errors_inside_includes() {
    let l = mem_loader(&[("/x/m.conf", "\n  include \"nope.conf\";")]);
    let e = read_conf_with(Path::new("/x/m.conf"), &l).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/x/m.conf:2:3: cannot read included file"),
        "{e}"
    );
    let l = mem_loader(&[
        ("/x/m.conf", "include \"b.conf\";"),
        ("/x/b.conf", "\n\n  }"),
    ]);
    let e = read_conf_with(Path::new("/x/m.conf"), &l).unwrap_err();
    assert!(e.to_string().starts_with("/x/b.conf:3:3: "), "{e}");
    // Missing main file: an IO error naming it.
    let e = read_conf(Path::new("/nonexistent/dhcpd.conf")).unwrap_err();
    assert!(matches!(e, IscError::Io { .. }));
}

#[test]
fn hosts_in_every_scope_and_client_ids() {
    let c = conf(
        "host a { hardware ethernet 1:2:3:4:5:6; fixed-address 198.18.0.1; option dhcp-client-identifier \"\\001xy\"; }\n\
         group { group { host b { fixed-address 198.18.0.2; option dhcp-client-identifier 1:aa:bb; } } }\n\
         shared-network s { host c { fixed-address 198.18.0.3; } subnet 198.18.0.0 netmask 255.255.255.0 { pool { host d { fixed-address 198.18.0.4; } } } }\n\
         host \"quoted name\" { hardware token-ring AA:bb:cc:dd:ee:ff; }\n",
    )
    .unwrap();
    let s = &c.subnets[0];
    let mut names: Vec<&str> = s.hosts.iter().map(|h| h.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b", "c", "d"]);
    let names: Vec<&str> = c.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "quoted name"]);
    assert_eq!(
        c.hosts[0].hardware.as_ref().unwrap().address,
        "01:02:03:04:05:06"
    );
    assert_eq!(c.hosts[0].client_id.as_deref(), Some(&b"\x01xy"[..]));
    assert_eq!(
        c.hosts[1].client_id.as_deref(),
        Some(&[1u8, 0xaa, 0xbb][..])
    );
    assert_eq!(c.hosts[3].hardware.as_ref().unwrap().htype, "token-ring");
}

#[test]
fn serialises_without_nulls() {
    let c = conf("subnet 198.18.0.0 netmask 255.255.255.0 { }").unwrap();
    let j = serde_json::to_value(&c.subnets[0]).unwrap();
    assert_eq!(j["network"], "198.18.0.0/24");
    assert!(j.get("routers").is_none());
    assert!(j.get("shared_network").is_none());
}

#[test]
fn non_utf8_bytes_do_not_break_it() {
    let none = |_: &Path| -> io::Result<Vec<u8>> { Err(io::ErrorKind::NotFound.into()) };
    let text =
        b"option domain-name \"\xff\xfe\";\nsubnet 198.18.0.0 netmask 255.255.255.0 { \xc3\x28; }";
    let c = parse_conf(Path::new("x"), text, &none).unwrap();
    assert_eq!(c.subnets.len(), 1);
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn host_names_dhcpd_sends() {
    // dhcpd sends `option host-name`; without it, the declaration's name only under
    // use-host-decl-names (global, group, subnet or the host's own block; nearest wins).
    let c = conf(
        "subnet 198.18.0.0 netmask 255.255.255.0 {\n\
           host plain { hardware ethernet 2:0:0:0:0:1; fixed-address 198.18.0.11; }\n\
           host named { hardware ethernet 2:0:0:0:0:2; fixed-address 198.18.0.12; option host-name \"given\"; }\n\
           host own { use-host-decl-names on; fixed-address 198.18.0.13; }\n\
         }\n\
         group {\n\
           use-host-decl-names on;\n\
           host grouped { fixed-address 198.18.0.14; }\n\
           host both { fixed-address 198.18.0.15; option host-name \"wins\"; }\n\
           host off { use-host-decl-names off; fixed-address 198.18.0.16; }\n\
           group { host deeper { fixed-address 198.18.0.17; } }\n\
         }\n\
         host outside { fixed-address 198.18.0.18; }\n\
         use-host-decl-names maybe;\n",
    )
    .unwrap();
    let sent = |n: &str| {
        c.subnets[0]
            .hosts
            .iter()
            .find(|h| h.name == n)
            .unwrap_or_else(|| panic!("no host {n}"))
            .sent_host_name()
            .map(str::to_string)
    };
    assert_eq!(sent("plain"), None, "dhcpd sends no name: none is invented");
    assert_eq!(sent("named").as_deref(), Some("given"));
    assert_eq!(sent("own").as_deref(), Some("own"));
    assert_eq!(sent("grouped").as_deref(), Some("grouped"));
    assert_eq!(sent("both").as_deref(), Some("wins"));
    assert_eq!(sent("off"), None);
    assert_eq!(sent("deeper").as_deref(), Some("deeper"));
    assert_eq!(sent("outside"), None);
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        ["test.conf:14:1: 'use-host-decl-names' needs on or off; skipped"]
    );
    // A global setting applies everywhere, whichever line it is on.
    let c = conf(
        "subnet 198.18.0.0 netmask 255.255.255.0 { host h { fixed-address 198.18.0.9; } }\n\
         use-host-decl-names true;\n",
    )
    .unwrap();
    assert_eq!(c.subnets[0].hosts[0].sent_host_name(), Some("h"));
    assert!(c.subnets[0].hosts[0].use_host_decl_names);
}

#[test]
fn dhcpstats_description_and_monitor_lines() {
    let c = conf(
        "subnet 198.18.0.0 netmask 255.255.255.0 {\n\
           #$   Office   LAN ;\n\
           pool { #! not this one\n range 198.18.0.10 198.18.0.20; }\n\
         }\n\
         subnet 198.18.1.0 netmask 255.255.255.0 {\n\
           #$ first\n\
           #! Lab, do not page;\n\
           option routers 198.18.1.1; #$ trailing comments are not annotations\n\
         }\n\
         subnet 198.18.2.0 netmask 255.255.255.0 { }\n\
         #$ outside every subnet\n\
         subnet 198.18.3.0 netmask 255.255.255.0 {\n\
           #$\n\
         }\n",
    )
    .unwrap();
    let d = |n: &str| {
        let s = subnet(&c, n);
        (s.description.as_deref(), s.monitor)
    };
    assert_eq!(d("198.18.0.0/24"), (Some("Office LAN"), true));
    assert_eq!(d("198.18.1.0/24"), (Some("Lab, do not page"), false));
    assert_eq!(d("198.18.2.0/24"), (None, true));
    assert_eq!(
        d("198.18.3.0/24"),
        (None, true),
        "an empty one: the CIDR stays"
    );
}
