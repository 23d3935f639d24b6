//! Taking out what leased's loader refuses: each loader error names a key path
//! (`subnets[0].pools[1]`, `reservations[3].ip`, `banned_macs."aa:bb:…"`); the construct at
//! that path is removed from the [`Imported`] config and listed as not mapped, with the loader's
//! message as the reason.

use std::collections::BTreeSet;

use leased_config::ConfigErrors;

use crate::{Imported, Opts, ServerPart, Unmapped};

/// One segment of a loader key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Splits `a.b[2]."c d".e` into segments; `None` for a path this module does not understand.
fn segments(path: &str) -> Option<Vec<Seg>> {
    let mut out = Vec::new();
    let mut chars = path.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '.' => {
                chars.next();
            }
            '[' => {
                chars.next();
                let mut n = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    n.push(d);
                }
                out.push(Seg::Index(n.parse().ok()?));
            }
            '"' => {
                chars.next();
                let mut k = String::new();
                while let Some(d) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => k.push(chars.next()?),
                        d => k.push(d),
                    }
                }
                out.push(Seg::Key(k));
            }
            _ => {
                let mut k = String::new();
                while let Some(&d) = chars.peek() {
                    if d == '.' || d == '[' {
                        break;
                    }
                    k.push(d);
                    chars.next();
                }
                out.push(Seg::Key(k));
            }
        }
    }
    Some(out)
}

fn key(s: Option<&Seg>) -> Option<&str> {
    match s {
        Some(Seg::Key(k)) => Some(k),
        _ => None,
    }
}

fn index(s: Option<&Seg>) -> Option<usize> {
    match s {
        Some(Seg::Index(i)) => Some(*i),
        _ => None,
    }
}

/// What to take out, gathered over one round's errors so that indexes stay valid until all
/// removals are applied.
#[derive(Default)]
struct Plan {
    subnets: BTreeSet<usize>,
    pools: BTreeSet<(usize, usize)>,
    exclusions: BTreeSet<(usize, usize)>,
    routers: BTreeSet<(usize, Option<usize>)>,
    reservations: BTreeSet<usize>,
    classes: BTreeSet<usize>,
    banned: BTreeSet<String>,
    overrides: BTreeSet<String>,
    /// (owner, option path) for option removals; owner as in [`Owner`].
    options: Vec<(Owner, Vec<Seg>)>,
    server: BTreeSet<String>,
    subnet_fields: BTreeSet<(usize, String)>,
    reservation_fields: BTreeSet<(usize, String)>,
    rogue: bool,
    arp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Global,
    Subnet(usize),
    Reservation(usize),
    Override(String),
    Class(usize),
}

/// Takes out what `errors` point at, listing each with its reason. False when an error names
/// nothing that can be taken out (the import then fails with those errors).
pub(crate) fn apply(imported: &mut Imported, errors: &ConfigErrors) -> bool {
    let mut plan = Plan::default();
    let mut notes: Vec<Unmapped> = Vec::new();
    for e in &errors.0 {
        let Some(segs) = segments(&e.key) else {
            return false;
        };
        if !plan_one(imported, &mut plan, &segs, &e.message, &mut notes) {
            return false;
        }
    }
    execute(imported, plan);
    imported.unmapped.extend(notes);
    true
}

fn describe_subnet(imported: &Imported, i: usize) -> String {
    imported
        .config
        .subnets
        .get(i)
        .map(|s| {
            if s.origin.is_empty() {
                format!("subnet {}", s.network)
            } else {
                format!("{} (subnet {})", s.origin, s.network)
            }
        })
        .unwrap_or_else(|| format!("subnet #{i}"))
}

fn plan_one(
    imported: &Imported,
    plan: &mut Plan,
    segs: &[Seg],
    message: &str,
    notes: &mut Vec<Unmapped>,
) -> bool {
    let cfg = &imported.config;
    let refused = |what: String| format!("{what}: refused by leased's loader: {message}");
    match key(segs.first()) {
        Some("server") => {
            let Some(field) = key(segs.get(1)) else {
                return false;
            };
            plan.server.insert(field.to_string());
            notes.push(Unmapped::new(
                format!("server.{field}"),
                refused("the setting".into()),
            ));
            true
        }
        Some("options") => {
            plan.options.push((Owner::Global, segs[1..].to_vec()));
            notes.push(Unmapped::new(
                "global options",
                refused(format!("option {}", render_path(&segs[1..]))),
            ));
            true
        }
        Some("subnets") => {
            let Some(i) = index(segs.get(1)) else {
                return false;
            };
            if i >= cfg.subnets.len() {
                return false;
            }
            let at = describe_subnet(imported, i);
            match key(segs.get(2)) {
                Some("pools") => match index(segs.get(3)) {
                    Some(j) => {
                        let p = cfg.subnets[i].pools.get(j).cloned().unwrap_or_default();
                        plan.pools.insert((i, j));
                        notes.push(Unmapped::new(at, refused(format!("pool {p}"))));
                    }
                    None => {
                        plan.subnets.insert(i);
                        notes.push(Unmapped::new(at, refused("the subnet".into())));
                    }
                },
                Some("exclusions") => {
                    let Some(j) = index(segs.get(3)) else {
                        return false;
                    };
                    let x = cfg.subnets[i]
                        .exclusions
                        .get(j)
                        .cloned()
                        .unwrap_or_default();
                    plan.exclusions.insert((i, j));
                    notes.push(Unmapped::new(at, refused(format!("exclusion {x}"))));
                }
                Some("routers") => {
                    let j = index(segs.get(3));
                    plan.routers.insert((i, j));
                    let r = j
                        .and_then(|j| cfg.subnets[i].routers.get(j).cloned())
                        .unwrap_or_else(|| "routers".into());
                    notes.push(Unmapped::new(at, refused(format!("router {r}"))));
                }
                Some("options") => {
                    plan.options.push((Owner::Subnet(i), segs[3..].to_vec()));
                    notes.push(Unmapped::new(
                        at,
                        refused(format!("option {}", render_path(&segs[3..]))),
                    ));
                }
                Some(f @ ("interface" | "server_id" | "lease_time" | "shared_network")) => {
                    plan.subnet_fields.insert((i, f.to_string()));
                    notes.push(Unmapped::new(at, refused(f.to_string())));
                }
                _ => {
                    plan.subnets.insert(i);
                    notes.push(Unmapped::new(at, refused("the subnet".into())));
                }
            }
            true
        }
        Some("reservations") => {
            let Some(i) = index(segs.get(1)) else {
                return false;
            };
            let Some(r) = cfg.reservations.get(i) else {
                return false;
            };
            let at = if r.origin.is_empty() {
                format!("reservation of {}", r.ip)
            } else {
                r.origin.clone()
            };
            if let Some(
                f @ ("hostname"
                | "note"
                | "equipment_type"
                | "manufacturer"
                | "management_type"
                | "management_interface"
                | "first_seen"),
            ) = key(segs.get(2))
            {
                plan.reservation_fields.insert((i, f.to_string()));
                notes.push(Unmapped::new(at, refused(f.to_string())));
            } else if key(segs.get(2)) == Some("options") && segs.len() > 3 {
                plan.options
                    .push((Owner::Reservation(i), segs[3..].to_vec()));
                notes.push(Unmapped::new(
                    at,
                    refused(format!("option {}", render_path(&segs[3..]))),
                ));
            } else {
                plan.reservations.insert(i);
                notes.push(Unmapped::new(
                    at,
                    refused(format!("the reservation of {}", r.ip)),
                ));
            }
            true
        }
        Some("classes") => {
            let Some(i) = index(segs.get(1)) else {
                return false;
            };
            let Some(c) = cfg.classes.get(i) else {
                return false;
            };
            let at = if c.origin.is_empty() {
                format!("class {}", c.name)
            } else {
                c.origin.clone()
            };
            if key(segs.get(2)) == Some("options") && segs.len() > 3 {
                plan.options.push((Owner::Class(i), segs[3..].to_vec()));
                notes.push(Unmapped::new(
                    at,
                    refused(format!("option {}", render_path(&segs[3..]))),
                ));
            } else {
                plan.classes.insert(i);
                notes.push(Unmapped::new(at, refused(format!("class {}", c.name))));
            }
            true
        }
        Some("banned_macs") => {
            let Some(mac) = key(segs.get(1)) else {
                return false;
            };
            plan.banned.insert(mac.to_string());
            notes.push(Unmapped::new(
                format!("banned MAC {mac}"),
                refused("the ban".into()),
            ));
            true
        }
        Some("device_overrides") => {
            let Some(mac) = key(segs.get(1)) else {
                return false;
            };
            if segs.len() > 2 {
                plan.options
                    .push((Owner::Override(mac.to_string()), segs[2..].to_vec()));
                notes.push(Unmapped::new(
                    format!("device override {mac}"),
                    refused(format!("option {}", render_path(&segs[2..]))),
                ));
            } else {
                plan.overrides.insert(mac.to_string());
                notes.push(Unmapped::new(
                    format!("device override {mac}"),
                    refused("the override".into()),
                ));
            }
            true
        }
        Some("rogue_servers") => {
            plan.rogue = true;
            notes.push(Unmapped::new(
                "rogue server detection",
                refused("the section".into()),
            ));
            true
        }
        Some("arp_watch") => {
            plan.arp = true;
            notes.push(Unmapped::new(
                "ARP anomaly detection",
                refused("the section".into()),
            ));
            true
        }
        _ => false,
    }
}

fn render_path(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Removes option `path` (`dns`, `extra[2]`, `static_routes[0].gateway`, …) from `opts`.
fn prune_opts(opts: &mut Opts, path: &[Seg]) {
    let idx = index(path.get(1));
    match key(path.first()) {
        Some("dns") => opts.dns.clear(),
        Some("domain_name") => opts.domain_name = None,
        Some("domain_search") => opts.domain_search.clear(),
        Some("ntp") => opts.ntp.clear(),
        Some("mtu") => opts.mtu = None,
        Some("wins") => opts.wins.clear(),
        Some("tftp_server") => opts.tftp_server = None,
        Some("bootfile") => opts.bootfile = None,
        Some("next_server") => opts.next_server = None,
        Some("wpad_url") => opts.wpad_url = None,
        Some("static_routes") => opts.static_routes.clear(),
        Some("mirror_routes_to_249") => opts.mirror_routes_to_249 = None,
        Some("vendor_specific") => opts.vendor_specific = None,
        Some("extra") => match idx {
            Some(i) if i < opts.extra.len() => {
                opts.extra.remove(i);
            }
            _ => opts.extra.clear(),
        },
        _ => *opts = Opts::default(),
    }
}

fn clear_server(s: &mut ServerPart, field: &str) {
    match field {
        "authoritative" => s.authoritative = None,
        "interfaces" => s.interfaces.clear(),
        "lease_time" => s.lease_time = None,
        "renewal_time" => s.renewal_time = None,
        "rebinding_time" => s.rebinding_time = None,
        "decline_quarantine" => s.decline_quarantine = None,
        "sticky_window" => s.sticky_window = None,
        "server_id" => s.server_id = None,
        "auto_reload" => s.auto_reload = None,
        "pid_file" => s.pid_file = None,
        _ => *s = ServerPart::default(),
    }
}

fn execute(imported: &mut Imported, plan: Plan) {
    let cfg = &mut imported.config;
    for f in &plan.server {
        clear_server(&mut cfg.server, f);
    }
    // Options first: they are addressed by indexes of the lists removed from below. Within one
    // table, `extra` removals go from the highest index down.
    let mut options: Vec<(Owner, Vec<Seg>)> = Vec::new();
    for (owner, mut path) in plan.options {
        path.truncate(2);
        if !options.iter().any(|(o, p)| *o == owner && *p == path) {
            options.push((owner, path));
        }
    }
    options.sort_by_key(|(_, p)| std::cmp::Reverse(index(p.get(1)).unwrap_or(0)));
    for (owner, path) in &options {
        let opts = match owner {
            Owner::Global => Some(&mut cfg.options),
            Owner::Subnet(i) => cfg.subnets.get_mut(*i).map(|s| &mut s.options),
            Owner::Reservation(i) => cfg.reservations.get_mut(*i).map(|r| &mut r.options),
            Owner::Class(i) => cfg.classes.get_mut(*i).map(|c| &mut c.options),
            Owner::Override(m) => cfg.device_overrides.get_mut(m),
        };
        if let Some(o) = opts {
            prune_opts(o, path);
        }
    }
    for (i, f) in &plan.subnet_fields {
        if let Some(s) = cfg.subnets.get_mut(*i) {
            match f.as_str() {
                "interface" => s.interface = None,
                "server_id" => s.server_id = None,
                "lease_time" => s.lease_time = None,
                _ => s.shared_network = None,
            }
        }
    }
    for (i, f) in &plan.reservation_fields {
        if let Some(r) = cfg.reservations.get_mut(*i) {
            match f.as_str() {
                "hostname" => r.hostname = None,
                "note" => r.meta.note = None,
                "equipment_type" => r.meta.equipment_type = None,
                "manufacturer" => r.meta.manufacturer = None,
                "management_type" => r.meta.management_type = None,
                "management_interface" => r.meta.management_interface = None,
                _ => r.meta.first_seen = None,
            }
        }
    }
    for (i, j) in plan.pools.iter().rev() {
        if let Some(s) = cfg.subnets.get_mut(*i)
            && *j < s.pools.len()
        {
            s.pools.remove(*j);
        }
    }
    for (i, j) in plan.exclusions.iter().rev() {
        if let Some(s) = cfg.subnets.get_mut(*i)
            && *j < s.exclusions.len()
        {
            s.exclusions.remove(*j);
        }
    }
    for (i, j) in plan.routers.iter().rev() {
        if let Some(s) = cfg.subnets.get_mut(*i) {
            match j {
                Some(j) if *j < s.routers.len() => {
                    s.routers.remove(*j);
                }
                _ => s.routers.clear(),
            }
        }
    }
    let mut k = 0;
    cfg.subnets.retain(|_| {
        k += 1;
        !plan.subnets.contains(&(k - 1))
    });
    let mut k = 0;
    cfg.reservations.retain(|_| {
        k += 1;
        !plan.reservations.contains(&(k - 1))
    });
    let mut k = 0;
    cfg.classes.retain(|_| {
        k += 1;
        !plan.classes.contains(&(k - 1))
    });
    for m in &plan.banned {
        cfg.banned_macs.remove(m);
    }
    for m in &plan.overrides {
        cfg.device_overrides.remove(m);
    }
    if plan.rogue {
        cfg.rogue_servers = None;
    }
    if plan.arp {
        cfg.arp_watch = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_split() {
        assert_eq!(
            segments("subnets[0].options.extra[2]").unwrap(),
            vec![
                Seg::Key("subnets".into()),
                Seg::Index(0),
                Seg::Key("options".into()),
                Seg::Key("extra".into()),
                Seg::Index(2)
            ]
        );
        assert_eq!(
            segments("banned_macs.\"aa:bb:cc:dd:ee:ff\"").unwrap(),
            vec![
                Seg::Key("banned_macs".into()),
                Seg::Key("aa:bb:cc:dd:ee:ff".into())
            ]
        );
        assert_eq!(segments("a[x]"), None);
    }
}
