//! Kea DHCPv4: `kea-dhcp4.conf` (JSON with comments) and the memfile lease file
//! (`kea-leases4.csv`).
//!
//! Every key of the config is either mapped or listed as not mapped: the walk marks the keys it
//! reads in each object, and whatever it did not read is listed with its path
//! (`Dhcp4.subnet4[0].pools[1].option-data`) and the reason it does not map.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{Map, Value};

use crate::leases::{Line, next_line};
use crate::options::{self, Data, Kind, Placed};
use crate::{
    ClassPart, Expiry, ImportError, Imported, LeaseError, LeaseRecord, MatchPart, Opts,
    RecordState, ReservationPart, SubnetPart, Unmapped,
};

/// What [`import_config`] found beside the config itself.
#[derive(Debug, Clone, Default)]
pub struct KeaConfig {
    /// The leased config and the list of what does not map.
    pub imported: Imported,
    /// `lease-database.name` when the leases are in a memfile (the CSV to read).
    pub lease_file: Option<String>,
}

/// Why a key is not mapped, for keys whose reason is known.
fn reason(key: &str) -> &'static str {
    match key {
        "loggers" => "logging is set in leased's [logging] (level, text or JSON to stderr)",
        "control-socket" | "control-sockets" => {
            "leased's control is its HTTP API ([api]) and signals, not Kea's command channel"
        }
        "hooks-libraries" => "Kea hook libraries have no leased equivalent",
        "dhcp-ddns" => "leased does not send DNS updates",
        "hosts-database" | "hosts-databases" => {
            "reservations kept in a database are not read; export them into the config"
        }
        "expired-leases-processing" => "leased expires leases on its own schedule",
        "multi-threading" | "dhcp-queue-control" | "parked-packet-limit" => {
            "leased's engine has its own threading and queues"
        }
        "sanity-checks" => "leased checks every lease against its subnets when loading",
        "server-tag" | "config-control" => "leased has no configuration backend",
        "user-context" => "user context is Kea metadata and is not carried over",
        "comment" => "comments are not carried over",
        "dhcp-socket-type"
        | "outbound-interface"
        | "re-detect"
        | "service-sockets-require-all"
        | "service-sockets-max-retries"
        | "service-sockets-retry-wait-time" => {
            "leased chooses its sockets itself (UDP plus a packet socket for direct clients)"
        }
        "lfc-interval" | "persist" | "max-row-errors" => {
            "leased's journal is fsynced per commit and compacted by itself"
        }
        "min-valid-lifetime" | "max-valid-lifetime" => {
            "leased gives every client its subnet's lease_time"
        }
        "server-hostname" => "the BOOTP sname field is not set by leased",
        "echo-client-id" => "not configurable in leased",
        "cache-threshold" | "cache-max-age" => "leased has no lease-reuse cache",
        "statistic-default-sample-count" | "statistic-default-sample-age" => {
            "leased's statistics are its /metrics"
        }
        "require-client-classes"
        | "only-if-required"
        | "evaluate-additional-classes"
        | "only-in-additional-list" => "leased evaluates every class on every packet",
        "client-class" | "client-classes" => "leased does not restrict subnets to classes",
        "host-reservation-identifiers" => {
            "leased matches reservations by MAC, client-id and Option 82 in its own order"
        }
        "reservation-mode"
        | "reservations-global"
        | "reservations-in-subnet"
        | "reservations-out-of-pool"
        | "early-global-reservations-lookup"
        | "ip-reservations-unique"
        | "reservations-lookup-first" => {
            "leased always looks up reservations in every subnet of the link"
        }
        "dhcp4o6-port" | "4o6-interface" | "4o6-interface-id" | "4o6-subnet" => {
            "DHCPv4-over-DHCPv6 is not supported"
        }
        "hostname-char-set" | "hostname-char-replacement" => {
            "leased refuses invalid host names instead of rewriting them"
        }
        "compatibility" => "Kea's compatibility switches have no leased equivalent",
        "match-client-id" => "leased always identifies a client by its client-id when it sends one",
        "id" => "leased identifies subnets by network",
        "pool-id" => "leased has no pool ids",
        "relay" => "leased picks a relayed client's subnet by the relay address inside it",
        _ if key.starts_with("ddns-") => "leased does not send DNS updates",
        _ => "not mapped",
    }
}

/// A JSON object being walked: reads mark keys as used; [`Obj::finish`] lists the rest.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    used: BTreeSet<&'a str>,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: &str, notes: &mut Vec<Unmapped>) -> Option<Self> {
        match v.as_object() {
            Some(map) => Some(Self {
                map,
                path: path.to_string(),
                used: BTreeSet::new(),
            }),
            None => {
                notes.push(Unmapped::new(path, "expected an object; skipped"));
                None
            }
        }
    }

    fn get(&mut self, k: &'a str) -> Option<&'a Value> {
        let (key, v) = self.map.get_key_value(k)?;
        self.used.insert(key.as_str());
        Some(v)
    }

    fn str(&mut self, k: &'a str) -> Option<&'a str> {
        self.get(k).and_then(Value::as_str)
    }

    fn u64(&mut self, k: &'a str) -> Option<u64> {
        self.get(k).and_then(Value::as_u64)
    }

    fn bool(&mut self, k: &'a str) -> Option<bool> {
        self.get(k).and_then(Value::as_bool)
    }

    fn at(&self, k: &str) -> String {
        format!("{}.{k}", self.path)
    }

    /// Lists every key not read, except `quiet` ones the caller handled by hand.
    fn finish(self, notes: &mut Vec<Unmapped>) {
        for (k, _) in self.map {
            if !self.used.contains(k.as_str()) {
                notes.push(Unmapped::new(format!("{}.{k}", self.path), reason(k)));
            }
        }
    }
}

fn arr(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A custom option definition (`option-def`).
#[derive(Debug, Clone, Copy)]
struct CustomDef {
    code: u8,
    kind: Option<Kind>,
}

/// How flex-id reservations are keyed, from the flex_id hook's `identifier-expression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlexKey {
    Circuit,
    Remote,
    Subscriber,
}

struct Walk {
    notes: Vec<Unmapped>,
    defs: BTreeMap<String, CustomDef>,
    flex: Option<FlexKey>,
    /// Mapped class names, for pool `client-class` references.
    classes: Vec<ClassPart>,
    /// Global routers, put on the subnets that contain them.
    global_routers: Vec<Ipv4Addr>,
}

/// Reads a Kea config (the whole `{"Dhcp4": …}` document, comments allowed).
pub fn import_config(text: &str) -> Result<KeaConfig, ImportError> {
    let plain = crate::strip_comments(text).map_err(ImportError::Source)?;
    if plain.contains("<?include") {
        return Err(ImportError::Source(
            "the config uses <?include …?>: put the included text in place and import again".into(),
        ));
    }
    let root: Value = serde_json::from_str(&plain)
        .map_err(|e| ImportError::Source(format!("{}:{}: {e}", e.line(), e.column())))?;
    let mut w = Walk {
        notes: Vec::new(),
        defs: BTreeMap::new(),
        flex: None,
        classes: Vec::new(),
        global_routers: Vec::new(),
    };
    let mut out = KeaConfig::default();
    let Some(mut top) = Obj::new(&root, "", &mut w.notes) else {
        return Err(ImportError::Source(
            "the config is not a JSON object".into(),
        ));
    };
    let Some(dhcp4) = top.get("Dhcp4") else {
        return Err(ImportError::Source(
            "no \"Dhcp4\" object: is this a kea-dhcp4 config?".into(),
        ));
    };
    for (k, _) in top.map {
        if k != "Dhcp4" {
            w.notes.push(Unmapped::new(
                k.as_str(),
                "only Dhcp4 is imported (leased serves DHCPv4)",
            ));
        }
    }
    let Some(mut d) = Obj::new(dhcp4, "Dhcp4", &mut w.notes) else {
        return Err(ImportError::Source("\"Dhcp4\" is not an object".into()));
    };
    w.dhcp4(&mut d, &mut out);
    d.finish(&mut w.notes);
    out.imported.unmapped = w.notes;
    Ok(out)
}

impl Walk {
    fn dhcp4<'a>(&mut self, d: &mut Obj<'a>, out: &mut KeaConfig) {
        let mut lease_file = None;
        let cfg = &mut out.imported.config;
        // Definitions and hooks first: options and reservations below depend on them.
        for (i, def) in arr(d.get("option-def")).iter().enumerate() {
            self.option_def(def, &format!("Dhcp4.option-def[{i}]"));
        }
        if let Some(h) = d.get("hooks-libraries") {
            self.hooks(h);
        }
        if let Some(ic) = d.get("interfaces-config")
            && let Some(mut o) = Obj::new(ic, "Dhcp4.interfaces-config", &mut self.notes)
        {
            for v in arr(o.get("interfaces")) {
                let Some(name) = v.as_str() else { continue };
                if name == "*" {
                    // Every interface: leased's default when the list is empty.
                    cfg.server.interfaces.clear();
                    break;
                }
                let (iface, addr) = name.split_once('/').unwrap_or((name, ""));
                if !addr.is_empty() {
                    self.notes.push(Unmapped::new(
                        o.at("interfaces"),
                        format!(
                            "{name}: only the interface is kept; leased answers on it with \
                             each subnet's server address"
                        ),
                    ));
                }
                if !cfg.server.interfaces.iter().any(|x| x == iface) {
                    cfg.server.interfaces.push(iface.to_string());
                }
            }
            o.finish(&mut self.notes);
        }
        if let Some(db) = d.get("lease-database")
            && let Some(mut o) = Obj::new(db, "Dhcp4.lease-database", &mut self.notes)
        {
            match o.str("type") {
                Some("memfile") | None => lease_file = o.str("name").map(str::to_string),
                Some(other) => {
                    o.get("name");
                    self.notes.push(Unmapped::new(
                        o.at("type"),
                        format!(
                            "leases in a {other} database are not read: dump them to CSV \
                             (kea-admin lease-dump) and import that"
                        ),
                    ));
                }
            }
            for k in ["host", "port", "user", "password", "connect-timeout"] {
                o.get(k);
            }
            o.finish(&mut self.notes);
        }
        let valid = d.u64("valid-lifetime");
        cfg.server.lease_time = valid;
        cfg.server.renewal_time = d.u64("renew-timer");
        cfg.server.rebinding_time = d.u64("rebind-timer");
        self.tee_times(
            d,
            valid,
            &mut cfg.server.renewal_time,
            &mut cfg.server.rebinding_time,
        );
        cfg.server.authoritative = Some(d.bool("authoritative").unwrap_or(false));
        cfg.server.decline_quarantine = d.u64("decline-probation-period");
        if d.bool("match-client-id") == Some(false) {
            self.notes.push(Unmapped::new(
                d.at("match-client-id"),
                reason("match-client-id"),
            ));
        }
        // leased keeps the relay data of every lease whatever this says.
        d.get("store-extended-info");
        let mut global = Opts::default();
        let opts_path = d.at("option-data");
        let mut routers = Vec::new();
        self.option_data(
            d.get("option-data"),
            &opts_path,
            &mut global,
            &mut routers,
            None,
            None,
        );
        self.global_routers = routers;
        self.boot_fields(d, &mut global);
        cfg.options = global;
        // Classes before subnets: pools refer to them by name.
        for (i, c) in arr(d.get("client-classes")).iter().enumerate() {
            self.client_class(c, &format!("Dhcp4.client-classes[{i}]"));
        }
        let mut subnets = Vec::new();
        let mut reservations = Vec::new();
        for (i, s) in arr(d.get("subnet4")).iter().enumerate() {
            self.subnet(
                s,
                &format!("Dhcp4.subnet4[{i}]"),
                None,
                &Opts::default(),
                &mut subnets,
                &mut reservations,
            );
        }
        for (i, n) in arr(d.get("shared-networks")).iter().enumerate() {
            self.shared_network(
                n,
                &format!("Dhcp4.shared-networks[{i}]"),
                &mut subnets,
                &mut reservations,
            );
        }
        for (i, r) in arr(d.get("reservations")).iter().enumerate() {
            if let Some(r) = self.reservation(r, &format!("Dhcp4.reservations[{i}]")) {
                reservations.push(r);
            }
        }
        if !self.global_routers.is_empty() {
            for r in std::mem::take(&mut self.global_routers) {
                let mut placed = false;
                for s in &mut subnets {
                    if s.routers.is_empty()
                        && s.network.parse::<Ipv4Net>().is_ok_and(|n| n.contains(&r))
                    {
                        s.routers.push(r.to_string());
                        placed = true;
                    }
                }
                if !placed {
                    self.notes.push(Unmapped::new(
                        opts_path.clone(),
                        format!(
                            "routers {r}: leased sets routers per subnet, and no subnet without \
                             its own contains {r}"
                        ),
                    ));
                }
            }
        }
        if self.classes.len() > 1 {
            self.notes.push(Unmapped::new(
                "Dhcp4.client-classes",
                "a client in several classes gets only the first class's options and pool in \
                 leased (Kea merges them)",
            ));
        }
        cfg.subnets = subnets;
        cfg.reservations = reservations;
        cfg.classes = std::mem::take(&mut self.classes);
        out.lease_file = lease_file;
    }

    /// `calculate-tee-times` with `t1-percent`/`t2-percent` where no timer is given.
    fn tee_times<'a>(
        &mut self,
        o: &mut Obj<'a>,
        valid: Option<u64>,
        t1: &mut Option<u64>,
        t2: &mut Option<u64>,
    ) {
        let calc = o.bool("calculate-tee-times");
        let p1 = o.get("t1-percent").and_then(Value::as_f64);
        let p2 = o.get("t2-percent").and_then(Value::as_f64);
        if calc != Some(true) {
            if p1.is_some() || p2.is_some() {
                self.notes.push(Unmapped::new(
                    o.at("t1-percent"),
                    "used by Kea only with calculate-tee-times; leased sends half and 7/8 of \
                     the lease time unless renewal_time/rebinding_time are set",
                ));
            }
            return;
        }
        let Some(valid) = valid else {
            self.notes.push(Unmapped::new(
                o.at("calculate-tee-times"),
                "without valid-lifetime here the percentages do not map; leased's default is \
                 half and 7/8 of the lease time",
            ));
            return;
        };
        let pct = |p: f64| ((valid as f64) * p).floor() as u64;
        if t1.is_none() {
            *t1 = Some(pct(p1.unwrap_or(0.5)));
        }
        if t2.is_none() {
            *t2 = Some(pct(p2.unwrap_or(0.875)));
        }
    }

    /// `next-server` and `boot-file-name` (the BOOTP header fields).
    fn boot_fields<'a>(&mut self, o: &mut Obj<'a>, opts: &mut Opts) {
        if let Some(ns) = o.str("next-server")
            && ns != "0.0.0.0"
        {
            opts.next_server = Some(ns.to_string());
        }
        if let Some(f) = o.str("boot-file-name")
            && !f.is_empty()
            && opts.bootfile.is_none()
        {
            opts.bootfile = Some(f.to_string());
        }
    }

    fn option_def(&mut self, v: &Value, path: &str) {
        let Some(mut o) = Obj::new(v, path, &mut self.notes) else {
            return;
        };
        let name = o.str("name").unwrap_or_default().to_string();
        let code = o.u64("code").and_then(|c| u8::try_from(c).ok());
        let space = o.str("space").unwrap_or("dhcp4");
        let array = o.bool("array").unwrap_or(false);
        let ty = o.str("type").unwrap_or_default();
        let record = o.get("record-types").and_then(Value::as_str).unwrap_or("");
        let encap = o.get("encapsulate").and_then(Value::as_str).unwrap_or("");
        let kind = match (ty, array) {
            ("ipv4-address", false) => Some(Kind::Ip),
            ("ipv4-address", true) => Some(Kind::IpList),
            ("uint8", false) => Some(Kind::U8),
            ("uint16", false) => Some(Kind::U16),
            ("uint32", false) => Some(Kind::U32),
            ("int32", false) => Some(Kind::I32),
            ("boolean", false) => Some(Kind::Bool),
            ("string" | "fqdn", false) => Some(Kind::Str),
            ("binary", _) => Some(Kind::Binary),
            _ => None,
        };
        match (space, code) {
            ("dhcp4", Some(code)) => {
                if kind.is_none() || !record.is_empty() || !encap.is_empty() {
                    self.notes.push(Unmapped::new(
                        path,
                        format!(
                            "option {name} ({code}) of type {ty}{}: its values map only when \
                             given as hex (csv-format false)",
                            if array { " array" } else { "" }
                        ),
                    ));
                }
                self.defs.insert(name, CustomDef { code, kind });
            }
            _ => self.notes.push(Unmapped::new(
                path,
                format!("option {name} in space {space}: only dhcp4 options map"),
            )),
        }
        o.finish(&mut self.notes);
    }

    fn hooks(&mut self, v: &Value) {
        for (i, h) in v
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let path = format!("Dhcp4.hooks-libraries[{i}]");
            let lib = h.get("library").and_then(Value::as_str).unwrap_or_default();
            let expr = h
                .get("parameters")
                .and_then(|p| p.get("identifier-expression"))
                .and_then(Value::as_str);
            if lib.contains("flex_id") {
                let key = match expr.map(|e| e.replace(' ', "")) {
                    Some(e) if e == "relay4[1].hex" => Some(FlexKey::Circuit),
                    Some(e) if e == "relay4[2].hex" => Some(FlexKey::Remote),
                    Some(e) if e == "relay4[6].hex" => Some(FlexKey::Subscriber),
                    _ => None,
                };
                match key {
                    Some(k) => {
                        self.flex = Some(k);
                        let others: Vec<&str> = h
                            .get("parameters")
                            .and_then(Value::as_object)
                            .map(|p| {
                                p.keys()
                                    .map(String::as_str)
                                    .filter(|k| *k != "identifier-expression")
                                    .collect()
                            })
                            .unwrap_or_default();
                        for k in others {
                            self.notes.push(Unmapped::new(
                                format!("{path}.parameters.{k}"),
                                "flex_id option not mapped (only the identifier is)",
                            ));
                        }
                    }
                    None => self.notes.push(Unmapped::new(
                        path,
                        format!(
                            "flex_id with identifier-expression {:?}: only relay4[1].hex \
                             (circuit-id), relay4[2].hex (remote-id) and relay4[6].hex \
                             (subscriber-id) map; its flex-id reservations are not imported",
                            expr.unwrap_or("")
                        ),
                    )),
                }
            } else {
                self.notes.push(Unmapped::new(
                    path,
                    format!("hook library {lib}: {}", reason("hooks-libraries")),
                ));
            }
        }
    }

    /// Maps `option-data` entries into `opts`; option 3 goes to `routers`, option 12 to
    /// `hostname` when given (a reservation), `network` checks option 1.
    fn option_data(
        &mut self,
        v: Option<&Value>,
        path: &str,
        opts: &mut Opts,
        routers: &mut Vec<Ipv4Addr>,
        mut hostname: Option<&mut Option<String>>,
        network: Option<Ipv4Net>,
    ) {
        for (i, e) in arr(v).iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(mut o) = Obj::new(e, &p, &mut self.notes) else {
                continue;
            };
            let name = o.str("name");
            let code = o.u64("code").and_then(|c| u8::try_from(c).ok());
            let space = o.str("space").unwrap_or("dhcp4");
            let csv = o.bool("csv-format").unwrap_or(true);
            let data = o.str("data").unwrap_or("");
            let always = o.bool("always-send").unwrap_or(false);
            let never = o.bool("never-send").unwrap_or(false);
            let label = name
                .map(str::to_string)
                .or(code.map(|c| c.to_string()))
                .unwrap_or_default();
            if space != "dhcp4" {
                self.notes.push(Unmapped::new(
                    p,
                    format!("option {label} in space {space}: only dhcp4 options map"),
                ));
                o.finish(&mut self.notes);
                continue;
            }
            if never {
                self.notes.push(Unmapped::new(
                    p.clone(),
                    format!("option {label}: never-send has no leased equivalent; not imported"),
                ));
                o.finish(&mut self.notes);
                continue;
            }
            let custom = name.and_then(|n| self.defs.get(n)).copied();
            let def_code = code
                .or(custom.map(|c| c.code))
                .or_else(|| name.and_then(options::by_kea_name).map(|x| x.code));
            let Some(c) = def_code else {
                self.notes.push(Unmapped::new(
                    p,
                    format!("option {label}: unknown name and no code"),
                ));
                o.finish(&mut self.notes);
                continue;
            };
            let kind = custom.and_then(|x| x.kind);
            let value = if csv {
                Data::Values(split_csv(data))
            } else {
                match options::parse_hex(data) {
                    Some(b) => Data::Bytes(b),
                    None => {
                        self.notes.push(Unmapped::new(
                            p,
                            format!("option {label}: {data:?} is not hex data"),
                        ));
                        o.finish(&mut self.notes);
                        continue;
                    }
                }
            };
            if always {
                self.notes.push(Unmapped::new(
                    format!("{p}.always-send"),
                    format!(
                        "option {label}: leased sends a configured option whether or not the \
                         client asks for it"
                    ),
                ));
            }
            match options::set(opts, c, kind, &value) {
                Ok(Placed::Set) => {}
                Ok(Placed::Routers(r)) => routers.extend(r),
                Ok(Placed::Hostname(h)) => match hostname.as_deref_mut() {
                    Some(slot) => *slot = Some(h),
                    None => {
                        let _ = options::set(opts, c, Some(Kind::Str), &Data::Values(vec![h]));
                    }
                },
                Ok(Placed::Mask(m)) => {
                    let derived = network.map(|n| n.netmask());
                    if derived != Some(m) {
                        self.notes.push(Unmapped::new(
                            p,
                            format!(
                                "subnet-mask {m}: leased derives the mask from the subnet{}",
                                derived.map(|d| format!(" ({d})")).unwrap_or_default()
                            ),
                        ));
                    }
                }
                Err(why) => self
                    .notes
                    .push(Unmapped::new(p, format!("option {label}: {why}"))),
            }
            o.finish(&mut self.notes);
        }
    }

    fn client_class(&mut self, v: &Value, path: &str) {
        let Some(mut o) = Obj::new(v, path, &mut self.notes) else {
            return;
        };
        let name = o.str("name").unwrap_or_default().to_string();
        let test = o.str("test");
        let mut class = ClassPart {
            origin: path.to_string(),
            name: name.clone(),
            ..ClassPart::default()
        };
        let matcher = match test {
            Some(t) => parse_test(t),
            None => Err("a class without a test is only assigned by reservations or hooks".into()),
        };
        let mut routers = Vec::new();
        self.option_data(
            o.get("option-data"),
            &o.at("option-data"),
            &mut class.options,
            &mut routers,
            None,
            None,
        );
        if !routers.is_empty() {
            self.notes.push(Unmapped::new(
                o.at("option-data"),
                "routers for a class: leased sets routers per subnet",
            ));
        }
        self.boot_fields(&mut o, &mut class.options);
        match matcher {
            Ok(m) => {
                class.matcher = m;
                self.classes.push(class);
            }
            Err(why) => self.notes.push(Unmapped::new(
                path,
                format!("class {name}: {why}; the class and its options are not imported"),
            )),
        }
        o.finish(&mut self.notes);
    }

    /// The class a pool's `client-class` names, created for Kea's built-in VENDOR_CLASS_*.
    fn class_index(&mut self, name: &str, path: &str) -> Option<usize> {
        if let Some(i) = self.classes.iter().position(|c| c.name == name) {
            return Some(i);
        }
        let vendor = name.strip_prefix("VENDOR_CLASS_")?;
        if vendor.is_empty() || vendor.contains(['*', '?']) {
            return None;
        }
        self.classes.push(ClassPart {
            origin: path.to_string(),
            name: name.to_string(),
            matcher: MatchPart {
                vendor_class: Some(vendor.to_string()),
                ..MatchPart::default()
            },
            ..ClassPart::default()
        });
        Some(self.classes.len() - 1)
    }

    fn shared_network(
        &mut self,
        v: &Value,
        path: &str,
        subnets: &mut Vec<SubnetPart>,
        reservations: &mut Vec<ReservationPart>,
    ) {
        let Some(mut o) = Obj::new(v, path, &mut self.notes) else {
            return;
        };
        let name = o.str("name").unwrap_or_default().to_string();
        let mut inherited = Opts::default();
        let mut routers = Vec::new();
        self.option_data(
            o.get("option-data"),
            &o.at("option-data"),
            &mut inherited,
            &mut routers,
            None,
            None,
        );
        self.boot_fields(&mut o, &mut inherited);
        let interface = o.str("interface").map(str::to_string);
        let valid = o.u64("valid-lifetime");
        for k in ["renew-timer", "rebind-timer"] {
            if o.get(k).is_some() {
                self.notes.push(Unmapped::new(
                    o.at(k),
                    "T1/T2 are server-wide in leased ([server] renewal_time/rebinding_time)",
                ));
            }
        }
        if let Some(relay) = o.get("relay") {
            self.notes.push(Unmapped::new(
                o.at("relay"),
                format!("{relay}: {}", reason("relay")),
            ));
        }
        let first = subnets.len();
        for (i, s) in arr(o.get("subnet4")).iter().enumerate() {
            let p = format!("{path}.subnet4[{i}]");
            self.subnet(s, &p, Some(&name), &inherited, subnets, reservations);
        }
        for s in subnets.iter_mut().skip(first) {
            if s.interface.is_none() {
                s.interface.clone_from(&interface);
            }
            if s.lease_time.is_none() {
                s.lease_time = valid;
            }
        }
        for r in routers {
            let mut placed = false;
            for s in subnets.iter_mut().skip(first) {
                if s.routers.is_empty()
                    && s.network.parse::<Ipv4Net>().is_ok_and(|n| n.contains(&r))
                {
                    s.routers.push(r.to_string());
                    placed = true;
                }
            }
            if !placed {
                self.notes.push(Unmapped::new(
                    o.at("option-data"),
                    format!("routers {r}: no subnet of the shared network contains it"),
                ));
            }
        }
        o.finish(&mut self.notes);
    }

    fn subnet(
        &mut self,
        v: &Value,
        path: &str,
        shared: Option<&str>,
        inherited: &Opts,
        subnets: &mut Vec<SubnetPart>,
        reservations: &mut Vec<ReservationPart>,
    ) {
        let Some(mut o) = Obj::new(v, path, &mut self.notes) else {
            return;
        };
        o.get("id");
        let Some(net) = o.str("subnet") else {
            self.notes
                .push(Unmapped::new(path, "no \"subnet\": skipped"));
            o.finish(&mut self.notes);
            return;
        };
        let network: Option<Ipv4Net> = net.parse::<Ipv4Net>().ok();
        let Some(network) = network else {
            self.notes.push(Unmapped::new(
                o.at("subnet"),
                format!("{net:?} is not an IPv4 network: the subnet is skipped"),
            ));
            o.finish(&mut self.notes);
            return;
        };
        let mut s = SubnetPart {
            origin: path.to_string(),
            network: network.trunc().to_string(),
            shared_network: shared.map(str::to_string),
            interface: o.str("interface").map(str::to_string),
            lease_time: o.u64("valid-lifetime"),
            ..SubnetPart::default()
        };
        let mut opts = Opts::default();
        let mut routers = Vec::new();
        self.option_data(
            o.get("option-data"),
            &o.at("option-data"),
            &mut opts,
            &mut routers,
            None,
            Some(network),
        );
        self.boot_fields(&mut o, &mut opts);
        s.options = opts.over(inherited);
        s.routers = routers.iter().map(ToString::to_string).collect();
        for k in ["renew-timer", "rebind-timer"] {
            if o.get(k).is_some() {
                self.notes.push(Unmapped::new(
                    o.at(k),
                    "T1/T2 are server-wide in leased ([server] renewal_time/rebinding_time)",
                ));
            }
        }
        if let Some(relay) = o.get("relay") {
            let addrs: Vec<&str> = arr(relay.get("ip-addresses"))
                .iter()
                .filter_map(Value::as_str)
                .chain(relay.get("ip-address").and_then(Value::as_str))
                .collect();
            let outside: Vec<&str> = addrs
                .iter()
                .copied()
                .filter(|a| !a.parse::<Ipv4Addr>().is_ok_and(|ip| network.contains(&ip)))
                .collect();
            if !outside.is_empty() {
                self.notes.push(Unmapped::new(
                    o.at("relay"),
                    format!("relay address {}: {}", outside.join(", "), reason("relay")),
                ));
            }
        }
        for (i, p) in arr(o.get("pools")).iter().enumerate() {
            let pp = format!("{path}.pools[{i}]");
            if let Some(range) = self.pool(p, &pp, network) {
                s.pools.push(range);
            }
        }
        for (i, r) in arr(o.get("reservations")).iter().enumerate() {
            if let Some(r) = self.reservation(r, &format!("{path}.reservations[{i}]")) {
                reservations.push(r);
            }
        }
        subnets.push(s);
        o.finish(&mut self.notes);
    }

    fn pool(&mut self, v: &Value, path: &str, network: Ipv4Net) -> Option<String> {
        let mut o = Obj::new(v, path, &mut self.notes)?;
        let text = o.str("pool").unwrap_or_default().to_string();
        let range = parse_pool(&text);
        if range.is_none() {
            self.notes.push(Unmapped::new(
                o.at("pool"),
                format!("{text:?} is neither \"first - last\" nor a prefix: the pool is skipped"),
            ));
        }
        let range = range.map(|(a, b)| {
            if network.prefix_len() < 31 && (a == network.network() || b == network.broadcast()) {
                // Kea never hands out these; leased refuses them in a pool.
                let a = if a == network.network() { next(a) } else { a };
                let b = if b == network.broadcast() { prev(b) } else { b };
                (a, b)
            } else {
                (a, b)
            }
        });
        let text = range.map(|(a, b)| format!("{a}-{b}"));
        if o.get("option-data")
            .is_some_and(|v| !arr(Some(v)).is_empty())
        {
            self.notes.push(Unmapped::new(
                o.at("option-data"),
                "pool-level options: leased sets options per subnet, class or client",
            ));
        }
        if let Some(class) = o.str("client-class") {
            let index = self.class_index(class, path);
            let slot = index.and_then(|i| self.classes.get_mut(i));
            match (slot, &text) {
                (Some(c), Some(t)) if c.pool.is_none() => {
                    c.pool = Some(t.clone());
                    self.notes.push(Unmapped::new(
                        o.at("client-class"),
                        format!(
                            "class {class} gets this pool; unlike Kea, its members then \
                             allocate only from it"
                        ),
                    ));
                }
                (Some(_), _) => self.notes.push(Unmapped::new(
                    o.at("client-class"),
                    format!("class {class} already has a pool: leased allows one per class"),
                )),
                (None, _) => self.notes.push(Unmapped::new(
                    o.at("client-class"),
                    format!("class {class} was not imported: the pool is open to every client"),
                )),
            }
        }
        o.finish(&mut self.notes);
        text
    }

    fn reservation(&mut self, v: &Value, path: &str) -> Option<ReservationPart> {
        let mut o = Obj::new(v, path, &mut self.notes)?;
        let mut r = ReservationPart {
            origin: path.to_string(),
            ..ReservationPart::default()
        };
        let ip = o.str("ip-address");
        let hw = o.str("hw-address");
        let cid = o.str("client-id");
        let circuit = o.str("circuit-id");
        let flex = o.str("flex-id");
        let duid = o.str("duid");
        r.hostname = o
            .str("hostname")
            .filter(|h| !h.is_empty())
            .map(str::to_string);
        r.meta.note = o.str("comment").map(str::to_string);
        let mut routers = Vec::new();
        self.option_data(
            o.get("option-data"),
            &o.at("option-data"),
            &mut r.options,
            &mut routers,
            Some(&mut r.hostname),
            None,
        );
        if !routers.is_empty() {
            self.notes.push(Unmapped::new(
                o.at("option-data"),
                "routers for one client: leased sets routers per subnet",
            ));
        }
        self.boot_fields(&mut o, &mut r.options);
        let ok = if let Some(h) = hw {
            r.mac = Some(h.to_string());
            true
        } else if let Some(c) = cid {
            r.client_id = Some(c.to_string());
            true
        } else if let Some(c) = circuit {
            r.circuit_id = Some(relay_value(c));
            true
        } else if let Some(f) = flex {
            match self.flex {
                Some(FlexKey::Circuit) => r.circuit_id = Some(relay_value(f)),
                Some(FlexKey::Remote) => r.remote_id = Some(relay_value(f)),
                Some(FlexKey::Subscriber) => r.subscriber_id = Some(relay_value(f)),
                None => {}
            }
            if self.flex.is_none() {
                self.notes.push(Unmapped::new(
                    path,
                    format!(
                        "flex-id {f}: the flex_id hook's expression does not map to a relay \
                         sub-option; the reservation is not imported"
                    ),
                ));
            }
            self.flex.is_some()
        } else if duid.is_some() {
            self.notes.push(Unmapped::new(
                path,
                "a DUID reservation: leased reserves DHCPv4 clients by MAC, client-id or Option 82",
            ));
            false
        } else {
            self.notes
                .push(Unmapped::new(path, "no client identifier: not imported"));
            false
        };
        match (ok, ip) {
            (true, Some(ip)) => r.ip = ip.to_string(),
            (true, None) => {
                self.notes.push(Unmapped::new(
                    path,
                    "a reservation without ip-address (host name or options only): leased \
                     reservations are addresses",
                ));
                o.finish(&mut self.notes);
                return None;
            }
            (false, _) => {
                o.finish(&mut self.notes);
                return None;
            }
        }
        o.finish(&mut self.notes);
        Some(r)
    }
}

fn next(a: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(a).saturating_add(1))
}

fn prev(a: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(a).saturating_sub(1))
}

/// `"a - b"`, `"a-b"` or a prefix `"a/len"`, as Kea writes pools.
fn parse_pool(text: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let t = text.trim();
    if let Some((a, b)) = t.split_once('-') {
        let a: Ipv4Addr = a.trim().parse().ok()?;
        let b: Ipv4Addr = b.trim().parse().ok()?;
        return (a <= b).then_some((a, b));
    }
    let n: Ipv4Net = t.parse().ok()?;
    Some((n.network(), n.broadcast()))
}

/// Kea's csv-format data: values separated by commas, `\,` for a literal comma.
fn split_csv(data: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = data.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(last) = out.last_mut()
                {
                    last.push(n);
                }
            }
            ',' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

/// A Kea identifier (`01:02:…` hex or `'text'`) as a leased relay value.
fn relay_value(v: &str) -> String {
    let t = v.trim();
    match t.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        Some(text) => format!("\"{text}\""),
        None => t.to_string(),
    }
}

/// A Kea class test expression as a leased match: conjunctions of comparisons of option 60,
/// 77 or 12, the MAC prefix, or a relay sub-option with a literal.
fn parse_test(test: &str) -> Result<MatchPart, String> {
    let mut m = MatchPart::default();
    let t = test.trim();
    if t.contains(" or ") || t.starts_with("not ") || t.contains("member(") {
        return Err(format!(
            "test {t:?} uses or/not/member, which leased classes cannot express"
        ));
    }
    for part in t.split(" and ") {
        let part = part
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim();
        let (lhs, rhs) = part
            .split_once("==")
            .ok_or_else(|| format!("test {t:?}: {part:?} is not a comparison"))?;
        let lhs: String = lhs.chars().filter(|c| !c.is_whitespace()).collect();
        let rhs = rhs.trim();
        let literal = parse_literal(rhs)
            .ok_or_else(|| format!("test {t:?}: {rhs:?} is not a quoted string or 0x hex"))?;
        let text = String::from_utf8(literal.clone()).ok();
        let unsupported = || format!("test {t:?}: {part:?} does not map to a leased class match");
        // substring(X,0,N) == literal of length N → prefix glob.
        let (field, prefix) = match lhs
            .strip_prefix("substring(")
            .and_then(|x| x.strip_suffix(')'))
        {
            Some(inner) => {
                let (f, rest) = inner.split_once(",0,").ok_or_else(unsupported)?;
                let n: usize = rest.parse().map_err(|_| unsupported())?;
                if n != literal.len() {
                    return Err(unsupported());
                }
                (f.to_string(), true)
            }
            None => (lhs.clone(), false),
        };
        let glob = |s: Option<String>| -> Result<String, String> {
            let s = s.ok_or_else(unsupported)?;
            if s.contains(['*', '?']) {
                return Err(unsupported());
            }
            Ok(if prefix { format!("{s}*") } else { s })
        };
        match field.as_str() {
            "option[60].text"
            | "option[60].hex"
            | "option[vendor-class-identifier].text"
            | "option[vendor-class-identifier].hex" => m.vendor_class = Some(glob(text)?),
            "option[77].text"
            | "option[77].hex"
            | "option[user-class].text"
            | "option[user-class].hex" => m.user_class = Some(glob(text)?),
            "option[12].text"
            | "option[12].hex"
            | "option[host-name].text"
            | "option[host-name].hex" => m.hostname = Some(glob(text)?),
            "pkt4.mac" if literal.len() <= 16 => {
                if !prefix && literal.len() != 6 {
                    return Err(unsupported());
                }
                m.mac_prefix = Some(options::hex(&literal));
            }
            "relay4[1].hex" | "relay4[1].text" if !prefix => {
                m.circuit_id = Some(options::hex(&literal));
            }
            "relay4[2].hex" | "relay4[2].text" if !prefix => {
                m.remote_id = Some(options::hex(&literal));
            }
            _ => return Err(unsupported()),
        }
    }
    Ok(m)
}

fn parse_literal(s: &str) -> Option<Vec<u8>> {
    if let Some(t) = s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        return Some(t.as_bytes().to_vec());
    }
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    options::parse_hex(h)
}

/// Reads Kea's memfile CSV (`address,hwaddr,client_id,valid_lifetime,expire,subnet_id,…`)
/// line by line, by the column names of its header line.
pub struct LeaseLines<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
    columns: Option<Columns>,
}

#[derive(Debug, Clone, Copy)]
struct Columns {
    address: usize,
    hwaddr: usize,
    client_id: Option<usize>,
    valid: usize,
    expire: usize,
    hostname: Option<usize>,
    state: Option<usize>,
    user_context: Option<usize>,
}

impl<R: BufRead> LeaseLines<R> {
    /// A reader over one CSV file (the current one or an LFC file: each has its header).
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            line: 0,
            columns: None,
        }
    }

    fn header(&mut self, text: &str) -> Result<(), String> {
        let names: Vec<&str> = text.split(',').map(str::trim).collect();
        let find = |n: &str| names.iter().position(|x| *x == n);
        let need = |n: &str| find(n).ok_or_else(|| format!("the header has no {n} column"));
        self.columns = Some(Columns {
            address: need("address")?,
            hwaddr: need("hwaddr")?,
            client_id: find("client_id"),
            valid: need("valid_lifetime")?,
            expire: need("expire")?,
            hostname: find("hostname"),
            state: find("state"),
            user_context: find("user_context"),
        });
        Ok(())
    }
}

impl<R: BufRead> Iterator for LeaseLines<R> {
    type Item = Result<LeaseRecord, LeaseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match next_line(&mut self.reader, &mut self.buf) {
                Err(e) => return Some(Err(LeaseError::Io(e))),
                Ok(None) => return None,
                Ok(Some(l)) => l,
            };
            self.line += 1;
            let n = self.line;
            let text = match line {
                Line::TooLong => {
                    return Some(Err(LeaseError::Line {
                        line: n,
                        message: "line too long".into(),
                    }));
                }
                Line::Text(t) => t,
            };
            if text.trim().is_empty() {
                continue;
            }
            if text.starts_with("address,") {
                if let Err(message) = self.header(&text) {
                    return Some(Err(LeaseError::Line { line: n, message }));
                }
                continue;
            }
            let Some(cols) = self.columns else {
                return Some(Err(LeaseError::Line {
                    line: n,
                    message: "lease line before the header line (address,hwaddr,…)".into(),
                }));
            };
            return Some(
                parse_lease(&text, cols).map_err(|message| LeaseError::Line { line: n, message }),
            );
        }
    }
}

fn parse_lease(text: &str, c: Columns) -> Result<LeaseRecord, String> {
    let f: Vec<&str> = text.split(',').collect();
    let get = |i: usize| f.get(i).copied().unwrap_or("");
    let ip: Ipv4Addr = get(c.address)
        .parse()
        .map_err(|_| format!("{:?} is not an IPv4 address", get(c.address)))?;
    let hw = get(c.hwaddr);
    let hwaddr = if hw.is_empty() {
        Vec::new()
    } else {
        options::parse_hex(hw).ok_or_else(|| format!("hwaddr {hw:?} is not hex"))?
    };
    let client_id = c
        .client_id
        .map(get)
        .filter(|s| !s.is_empty())
        .map(|s| options::parse_hex(s).ok_or_else(|| format!("client_id {s:?} is not hex")))
        .transpose()?;
    let valid: u64 = get(c.valid)
        .parse()
        .map_err(|_| format!("valid_lifetime {:?} is not a number", get(c.valid)))?;
    let expire: u64 = get(c.expire)
        .parse()
        .map_err(|_| format!("expire {:?} is not a number", get(c.expire)))?;
    let state = match c.state.map(get).unwrap_or("0") {
        _ if valid == 0 => RecordState::Deleted,
        "0" | "" => RecordState::Active,
        "1" => RecordState::Declined,
        "3" => RecordState::Released,
        _ => RecordState::Expired,
    };
    let hostname = c.hostname.map(get).filter(|s| !s.is_empty()).map(unescape);
    let (circuit_id, remote_id) = c
        .user_context
        .map(get)
        .filter(|s| !s.is_empty())
        .map(|s| relay_info(&unescape(s)))
        .unwrap_or((None, None));
    // Kea's valid lifetime 0 (a deletion) or u32::MAX (infinite) both keep `expire`.
    let expires = if valid == u64::from(u32::MAX) {
        Expiry::Never
    } else {
        Expiry::At(expire)
    };
    Ok(LeaseRecord {
        ip,
        hwaddr,
        client_id,
        hostname,
        starts: Some(expire.saturating_sub(valid)),
        expires,
        state,
        first_seen: None,
        circuit_id,
        remote_id,
    })
}

/// Kea escapes commas in text columns as `&#x2c`.
fn unescape(s: &str) -> String {
    s.replace("&#x2c", ",")
}

/// Circuit-id and remote-id from a lease's user context (`store-extended-info`): Kea 2.2
/// writes `"relay-agent-info": "0x0104…"`, later versions an object with `"sub-options"`.
fn relay_info(ctx: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let Ok(v) = serde_json::from_str::<Value>(ctx) else {
        return (None, None);
    };
    let rai = &v["ISC"]["relay-agent-info"];
    let hex = rai
        .as_str()
        .or_else(|| rai.get("sub-options").and_then(Value::as_str));
    let Some(bytes) = hex.and_then(options::parse_hex) else {
        return (None, None);
    };
    let (mut circuit, mut remote) = (None, None);
    let mut rest = bytes.as_slice();
    while let [code, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let Some(value) = tail.get(..len) else { break };
        match code {
            1 => circuit = Some(value.to_vec()),
            2 => remote = Some(value.to_vec()),
            _ => {}
        }
        rest = tail.get(len..).unwrap_or_default();
    }
    (circuit, remote)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_relay_values() {
        assert_eq!(split_csv("a, b\\,c ,d"), ["a", "b,c", "d"]);
        assert_eq!(relay_value("'sw1/7'"), "\"sw1/7\"");
        assert_eq!(relay_value("01:02"), "01:02");
        assert_eq!(
            parse_pool("198.18.0.10 - 198.18.0.20"),
            Some((Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 20)))
        );
        assert_eq!(
            parse_pool("198.18.0.128/25"),
            Some((
                Ipv4Addr::new(198, 18, 0, 128),
                Ipv4Addr::new(198, 18, 0, 255)
            ))
        );
        assert_eq!(parse_pool("nope"), None);
    }

    #[test]
    fn class_tests() {
        let m = parse_test("substring(option[60].hex,0,9) == 'PXEClient'").unwrap();
        assert_eq!(m.vendor_class.as_deref(), Some("PXEClient*"));
        let m = parse_test("option[77].text == 'iPXE' and substring(pkt4.mac,0,3) == 0x00408c")
            .unwrap();
        assert_eq!(m.user_class.as_deref(), Some("iPXE"));
        assert_eq!(m.mac_prefix.as_deref(), Some("00:40:8c"));
        let m = parse_test("relay4[2].hex == 'olt-7'").unwrap();
        assert_eq!(m.remote_id.as_deref(), Some("6f:6c:74:2d:37"));
        assert!(parse_test("option[60].text == 'a' or option[60].text == 'b'").is_err());
        assert!(parse_test("member('KNOWN')").is_err());
        assert!(parse_test("substring(option[60].hex,0,3) == 'PXEClient'").is_err());
        assert!(parse_test("pkt4.transid == 0x01").is_err());
    }

    #[test]
    fn lease_lines() {
        let csv = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
            198.18.0.100,02:00:00:00:00:01,01:02:00:00:00:00:01,3600,1700003600,1,0,0,a&#x2cb,0,\n\
            198.18.0.101,02:00:00:00:00:02,,0,1700000000,1,0,0,,0,\n\
            bogus line\n\
            198.18.0.102,02:00:00:00:00:03,,3600,1700003600,1,0,0,,1,{ \"ISC\": { \"relay-agent-info\": \"0x0103616263020178\" } }\n";
        let got: Vec<_> = LeaseLines::new(csv.as_bytes()).collect();
        assert_eq!(got.len(), 4);
        let a = got[0].as_ref().unwrap();
        assert_eq!(a.hostname.as_deref(), Some("a,b"));
        assert_eq!(a.state, RecordState::Active);
        assert_eq!(a.starts, Some(1_700_000_000));
        assert_eq!(a.client_id.as_deref(), Some(&[1, 2, 0, 0, 0, 0, 1][..]));
        assert_eq!(got[1].as_ref().unwrap().state, RecordState::Deleted);
        assert!(matches!(got[2], Err(LeaseError::Line { line: 4, .. })));
        let c = got[3].as_ref().unwrap();
        assert_eq!(c.state, RecordState::Declined);
        assert_eq!(c.circuit_id.as_deref(), Some(&b"abc"[..]));
        assert_eq!(c.remote_id.as_deref(), Some(&b"x"[..]));
        let no_header: Vec<_> = LeaseLines::new("198.18.0.1,aa,,1,2\n".as_bytes()).collect();
        assert!(no_header[0].is_err());
    }
}
