//! Compiled only under `#[cfg(test)]` (see mod.rs). Against the real PostgreSQL and MariaDB on this machine: each test creates its own uniquely
//! named database and drops it afterwards. Unreachable database: skipped with the reason
//! printed, except under `CI=true`, where it fails.

use std::net::Ipv4Addr;
use std::time::Duration;

use leased_core::config::{Format, load_str};
use leased_core::sql::packet_variables;
use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};
use leased_wire::{Options, Packet, code};

use super::*;
use crate::history::{HistoryFilter, HistoryRecord};

/// Admin URLs (trust auth on loopback); overridable for other machines.
fn admin_url(backend: SqlBackend) -> String {
    match backend {
        SqlBackend::Postgres => std::env::var("LEASED_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        SqlBackend::Mysql => std::env::var("LEASED_TEST_MYSQL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
    }
}

/// A throwaway database; dropped on `Drop`.
struct TempDb {
    rt: tokio::runtime::Runtime,
    admin: Db,
    name: String,
    url: String,
}

impl TempDb {
    fn create(backend: SqlBackend) -> Option<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let admin_url = admin_url(backend);
        let admin = rt
            .block_on(async { Db::connect_lazy(&admin_url, 1) })
            .unwrap();
        if let Err(e) = rt.block_on(admin.ping()) {
            let why = format!("{backend:?} at {admin_url} unreachable: {e}");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("SKIP: {why}");
            return None;
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("leased_t_{}_{nanos}", std::process::id());
        let create = format!("CREATE DATABASE {name}");
        rt.block_on(async {
            match &admin {
                Db::Pg(p) => sqlx::query(safe(&create)).execute(p).await.map(|_| ()),
                Db::My(p) => sqlx::query(safe(&create)).execute(p).await.map(|_| ()),
            }
        })
        .unwrap();
        let base = admin_url.rsplit_once('/').unwrap().0;
        let url = format!("{base}/{name}");
        Some(Self {
            rt,
            admin,
            name,
            url,
        })
    }

    fn db(&self) -> Db {
        self.rt
            .block_on(async { Db::connect_lazy(&self.url, 2) })
            .unwrap()
    }

    fn exec(&self, db: &Db, sql: &str) {
        self.rt
            .block_on(async {
                match db {
                    Db::Pg(p) => sqlx::query(safe(sql)).execute(p).await.map(|_| ()),
                    Db::My(p) => sqlx::query(safe(sql)).execute(p).await.map(|_| ()),
                }
            })
            .unwrap();
    }

    fn count(&self, db: &Db, sql: &str) -> i64 {
        self.rt
            .block_on(async {
                match db {
                    Db::Pg(p) => sqlx::query_scalar::<_, i64>(safe(sql)).fetch_one(p).await,
                    Db::My(p) => sqlx::query_scalar::<_, i64>(safe(sql)).fetch_one(p).await,
                }
            })
            .unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let drop_sql = match self.admin {
            Db::Pg(_) => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Db::My(_) => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let _ = self.rt.block_on(async {
            match &self.admin {
                Db::Pg(p) => sqlx::query(safe(&drop_sql)).execute(p).await.map(|_| ()),
                Db::My(p) => sqlx::query(safe(&drop_sql)).execute(p).await.map(|_| ()),
            }
        });
    }
}

fn lease(ip: [u8; 4], client: u8, state: LeaseState, expires: u64) -> Lease {
    Lease {
        ip: Ipv4Addr::from(ip),
        client_id: ClientId(vec![1, 2, 0, 0, 0, 0, client]),
        hwaddr: HwAddr(vec![2, 0, 0, 0, 0, client]),
        hostname: Some("x'); DROP TABLE leased_leases; --\0".into()),
        state,
        starts: Timestamp(unix_now()),
        expires: Timestamp(expires),
        first_seen: Timestamp(unix_now()),
        circuit_id: Some(vec![0, 4, 0, 1, 0, 6]),
        remote_id: Some(b"'\\\"".to_vec()),
        subscriber_id: None,
    }
}

fn store_battery(backend: SqlBackend) {
    let Some(t) = TempDb::create(backend) else {
        return;
    };
    let mut a = SqlStore::open(&t.url, "server-a").unwrap();
    let mut b = SqlStore::open(&t.url, "server-b").unwrap();
    // Schema creation is idempotent.
    t.rt.block_on(t.db().init_schema()).unwrap();
    let later = unix_now() + 3600;
    let x = lease([198, 18, 0, 10], 1, LeaseState::Bound, later);
    a.commit(std::slice::from_ref(&x)).unwrap();
    // Renewal by the same client from another server: fine.
    b.commit(&[lease([198, 18, 0, 10], 1, LeaseState::Bound, later + 10)])
        .unwrap();
    // Another client for the same address: conflict for that lease only; the rest commits.
    let y = lease([198, 18, 0, 11], 2, LeaseState::Bound, later);
    match b.commit(&[
        lease([198, 18, 0, 10], 2, LeaseState::Bound, later),
        y.clone(),
    ]) {
        Err(StoreError::Conflict { ips }) => assert_eq!(ips, [Ipv4Addr::new(198, 18, 0, 10)]),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let loaded = a.load().unwrap();
    assert_eq!(loaded.len(), 2);
    let at = |ip: [u8; 4]| loaded.iter().find(|l| l.ip == Ipv4Addr::from(ip)).unwrap();
    assert_eq!(at([198, 18, 0, 10]).client_id, x.client_id);
    assert_eq!(at([198, 18, 0, 10]).expires, Timestamp(later + 10));
    assert_eq!(at([198, 18, 0, 11]).client_id, y.client_id);
    // Hostile text came back as data (NUL removed), binary relay fields byte for byte.
    assert_eq!(
        at([198, 18, 0, 11]).hostname.as_deref(),
        Some("x'); DROP TABLE leased_leases; --")
    );
    assert_eq!(
        at([198, 18, 0, 11]).remote_id.as_deref(),
        Some(&b"'\\\""[..])
    );
    // Released: free for anyone.
    a.commit(&[lease([198, 18, 0, 10], 1, LeaseState::Released, later)])
        .unwrap();
    b.commit(&[lease([198, 18, 0, 10], 3, LeaseState::Bound, later)])
        .unwrap();
    // Lapsed (expires in the past) binding: free as well.
    a.commit(&[lease([198, 18, 0, 12], 4, LeaseState::Bound, 1)])
        .unwrap();
    b.commit(&[lease([198, 18, 0, 12], 5, LeaseState::Bound, later)])
        .unwrap();
    let db = t.db();
    let (rows, max) = t.rt.block_on(db.changed_since(i64::MIN)).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|(_, s)| s == "server-b"));
    let (again, _) = t.rt.block_on(db.changed_since(max)).unwrap();
    assert!(again.is_empty());
    let held =
        t.rt.block_on(db.lease_at(Ipv4Addr::new(198, 18, 0, 12)))
            .unwrap();
    assert_eq!(held.unwrap().hwaddr, HwAddr(vec![2, 0, 0, 0, 0, 5]));
    assert_eq!(t.count(&db, "SELECT COUNT(*) FROM leased_leases"), 3);
}

#[test]
fn postgres_store_battery() {
    store_battery(SqlBackend::Postgres);
}

#[test]
fn mysql_store_battery() {
    store_battery(SqlBackend::Mysql);
}

/// A relayed DISCOVER: chaddr `mac`, Option 82 circuit-id `cid` and remote-id `rid`.
fn packet(mac: [u8; 6], hostname: &[u8], cid: &[u8], rid: &[u8]) -> Packet {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![1]);
    options.set(code::HOSTNAME, hostname.to_vec());
    let mut o82 = vec![1, u8::try_from(cid.len()).unwrap()];
    o82.extend_from_slice(cid);
    o82.push(2);
    o82.push(u8::try_from(rid.len()).unwrap());
    o82.extend_from_slice(rid);
    options.set(code::RELAY_AGENT_INFO, o82);
    Packet {
        op: 1,
        htype: 1,
        hlen: 6,
        hops: 1,
        xid: 7,
        secs: 0,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::new(198, 18, 1, 1),
        chaddr,
        sname: vec![],
        file: vec![],
        options,
        option82_in_overload: false,
    }
}

const PYDHCPDB_USERS: &str = "CREATE TABLE users (id INT NOT NULL PRIMARY KEY, \
    ip VARCHAR(50) NOT NULL, mask VARCHAR(50) NOT NULL, router VARCHAR(50) NOT NULL, \
    dns VARCHAR(100) NOT NULL, mac VARCHAR(50) NOT NULL, port VARCHAR(10) NOT NULL, \
    hostname VARCHAR(100) NULL)";

fn chain_battery(backend: SqlBackend) {
    let Some(t) = TempDb::create(backend) else {
        return;
    };
    let db = t.db();
    t.rt.block_on(db.init_schema()).unwrap();
    t.exec(&db, PYDHCPDB_USERS);
    t.exec(
        &db,
        "CREATE TABLE history (id INT NULL, mac VARCHAR(50) NOT NULL, ip VARCHAR(50) NOT NULL, \
         host VARCHAR(200) NULL, o82 VARCHAR(600) NULL, comment VARCHAR(100) NOT NULL)",
    );
    // By client MAC; and by switch MAC + port (pydhcpdb's Option 82 keying).
    t.exec(
        &db,
        "INSERT INTO users VALUES (1, '198.18.0.19', '255.255.255.0', '198.18.0.1', \
         '198.18.0.53', '080027059ed0', '', NULL)",
    );
    t.exec(
        &db,
        "INSERT INTO users VALUES (2, '198.18.0.77', '255.255.255.0', '198.18.0.1', \
         '198.18.0.53,198.18.0.54', '001e589eb2ad', '06', 'port6')",
    );
    let config = load_str(
        r#"
[[subnets]]
network = "198.18.0.0/24"
pools = ["198.18.0.100-198.18.0.200"]
[sql_assignment]
url = "postgres://unused/db"
slices = ["option_82_hex:sw_mac:26:38"]
history_sql = "INSERT INTO history (mac, ip, host, o82, comment) VALUES (:ClientMacAddress, :IpAddress, :HostName, :option_82_hex, 'DHCPACK')"
[[sql_assignment.queries]]
sql = "SELECT ip, mask, router, dns, hostname FROM users WHERE UPPER(mac) = UPPER(:option_82_AgentRemoteId_hex) AND UPPER(port) = UPPER(:option_82_AgentCircuitId_port_hex)"
[[sql_assignment.queries]]
sql = "SELECT ip, mask, router, dns, hostname FROM users WHERE UPPER(mac) = UPPER(:sw_mac) AND port = :option_82_AgentCircuitId_port_hex"
[[sql_assignment.queries]]
sql = "SELECT ip, mask, router, dns FROM users WHERE UPPER(mac) = UPPER(:ClientMacAddress) OR mac = :HostName"
"#,
        "chain.toml",
        Format::Toml,
    )
    .unwrap();
    let sa = config.sql_assignment.unwrap();
    let chain = SqlChain::new(db.clone(), &sa.queries, Duration::from_secs(2));
    let run = |p: &Packet| t.rt.block_on(chain.run(&packet_variables(p, &sa.slices)));

    // MAC-keyed: queries 1 and 2 miss (unknown switch), query 3 hits.
    let by_mac = packet(
        [0x08, 0x00, 0x27, 0x05, 0x9e, 0xd0],
        b"x'); DROP TABLE users; --",
        &[0, 4, 0, 1, 0, 9],
        &[0, 6, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff],
    );
    match run(&by_mac) {
        ChainOutcome::Hit { query, assignment } => {
            assert_eq!(query, 2);
            assert_eq!(assignment.ip, Ipv4Addr::new(198, 18, 0, 19));
            assert_eq!(assignment.dns, [Ipv4Addr::new(198, 18, 0, 53)]);
        }
        other => panic!("{other:?}"),
    }
    // Switch MAC + port keyed: the first query (remote-id with its 00 06 prefix) misses, the
    // second (the sw_mac slice) hits, whatever the client's own MAC.
    let by_port = packet(
        [2, 0, 0, 0, 0, 0x42],
        b"laptop",
        &[0, 4, 0, 1, 0, 6],
        &[0, 6, 0x00, 0x1e, 0x58, 0x9e, 0xb2, 0xad],
    );
    match run(&by_port) {
        ChainOutcome::Hit { query, assignment } => {
            assert_eq!(query, 1);
            assert_eq!(assignment.ip, Ipv4Addr::new(198, 18, 0, 77));
            assert_eq!(assignment.dns.len(), 2);
            assert_eq!(assignment.hostname.as_deref(), Some("port6"));
        }
        other => panic!("{other:?}"),
    }
    // Hostile Option 82 bytes (quotes, backslashes) and hostname: data, no row, no damage.
    let hostile = packet(
        [2, 0, 0, 0, 0, 0x43],
        b"' OR '1'='1",
        b"'; DELETE FROM users; --\\",
        b"\\' OR 1=1 -- \"",
    );
    assert_eq!(run(&hostile), ChainOutcome::Miss);
    assert_eq!(t.count(&db, "SELECT COUNT(*) FROM users"), 2);

    // History: the built-in table and the operator's INSERT, both with hostile values bound.
    let mut vars = packet_variables(&hostile, &sa.slices);
    vars.insert("IpAddress".into(), "198.18.0.150".into());
    let hist = sa.history_sql.as_ref().unwrap();
    t.rt.block_on(run_user_statement(&db, &hist.template, &vars))
        .unwrap();
    let rec = HistoryRecord {
        at: 1000,
        event: "ack_new".into(),
        mac: "02:00:00:00:00:43".into(),
        client_id: "01020000000043".into(),
        ip: "198.18.0.150".into(),
        hostname: Some("x'); DROP TABLE users; --".into()),
        giaddr: Some("198.18.1.1".into()),
        circuit_id: Some(hex(b"'\\")),
        remote_id: None,
    };
    t.rt.block_on(insert_history(&db, std::slice::from_ref(&rec), "s1"))
        .unwrap();
    let found =
        t.rt.block_on(query_history(
            &db,
            &HistoryFilter {
                mac: Some("02:00:00:00:00:43".into()),
                limit: 10,
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(found, [rec]);
    assert_eq!(t.count(&db, "SELECT COUNT(*) FROM users"), 2);
    // The operator's row holds the hostile values verbatim.
    let host: String =
        t.rt.block_on(async {
            match &db {
                Db::Pg(p) => {
                    sqlx::query_scalar("SELECT host FROM history")
                        .fetch_one(p)
                        .await
                }
                Db::My(p) => {
                    sqlx::query_scalar("SELECT host FROM history")
                        .fetch_one(p)
                        .await
                }
            }
        })
        .unwrap();
    assert_eq!(host, "' OR '1'='1");
    assert_eq!(
        t.count(
            &db,
            "SELECT COUNT(*) FROM history WHERE ip = '198.18.0.150'"
        ),
        1
    );
}

#[test]
fn postgres_chain_history_and_hostile_inputs() {
    chain_battery(SqlBackend::Postgres);
}

#[test]
fn mysql_chain_history_and_hostile_inputs() {
    chain_battery(SqlBackend::Mysql);
}

/// The README's pydhcpdb section, as an operator copies it: its ```sql block (pydhcpdb's own
/// tables, `utf8_bin` collation) and its `[sql_assignment]` ```toml block.
fn readme_blocks() -> (String, String) {
    const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
    let block = |lang: &str, must: &str| -> String {
        README
            .split(&format!("```{lang}\n"))
            .skip(1)
            .filter_map(|b| b.split_once("```").map(|(body, _)| body))
            .find(|b| b.contains(must))
            .unwrap_or_else(|| panic!("README has no ```{lang} block with {must}"))
            .to_string()
    };
    (
        block("sql", "CREATE TABLE users"),
        block("toml", "[sql_assignment]"),
    )
}

/// The README's tables for PostgreSQL, as its comment says: no COLLATE/ENGINE clauses, and
/// `history.id` SERIAL.
fn readme_ddl_for_postgres(ddl: &str) -> String {
    ddl.replace(" COLLATE utf8_bin", "")
        .replace(" ENGINE=InnoDB DEFAULT CHARSET=utf8 COLLATE=utf8_bin", "")
        .replace(
            "id INT NOT NULL AUTO_INCREMENT PRIMARY KEY",
            "id SERIAL PRIMARY KEY",
        )
        .replace("DATETIME", "TIMESTAMP")
}

/// A DISCOVER with no Option 82 (a client on the server's own link) or with pydhcpdb's
/// article's Option 82 (switch 00:1e:58:9e:b2:ad, port 6).
fn plain_or_relayed(mac: [u8; 6], relayed: bool) -> Packet {
    let mut p = packet(
        mac,
        b"",
        &[0, 4, 0, 1, 0, 6],
        &[0, 6, 0x00, 0x1e, 0x58, 0x9e, 0xb2, 0xad],
    );
    p.options.remove(code::HOSTNAME);
    if !relayed {
        p.options.remove(code::RELAY_AGENT_INFO);
        p.giaddr = Ipv4Addr::UNSPECIFIED;
        p.hops = 0;
    }
    p
}

fn pydhcpdb_readme_battery(backend: SqlBackend) {
    let Some(t) = TempDb::create(backend) else {
        return;
    };
    let db = t.db();
    let (ddl, toml) = readme_blocks();
    let ddl = match backend {
        SqlBackend::Mysql => ddl,
        SqlBackend::Postgres => readme_ddl_for_postgres(&ddl),
    };
    for stmt in ddl
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .filter(|s| !s.trim().is_empty())
    {
        t.exec(&db, stmt);
    }
    // An "empty key" row (no switch MAC, no port), as pydhcpdb's own sample row has for port,
    // and the switch port of the pydhcpdb article's capture.
    t.exec(
        &db,
        "INSERT INTO users VALUES (2, '198.18.0.66', '255.255.255.0', '198.18.0.1', \
         '198.18.0.53', '', '')",
    );
    t.exec(
        &db,
        "INSERT INTO users VALUES (3, '198.18.0.77', '255.255.255.0', '198.18.0.1', \
         '198.18.0.53', '001E589EB2AD', '06')",
    );
    let config = load_str(
        &format!(
            "[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.100-198.18.0.200\"]\n{toml}"
        ),
        "readme.toml",
        Format::Toml,
    )
    .unwrap();
    let sa = config.sql_assignment.unwrap();
    let chain = SqlChain::new(db.clone(), &sa.queries, Duration::from_secs(2));
    let run = |p: &Packet| t.rt.block_on(chain.run(&packet_variables(p, &sa.slices)));

    // An unrelayed client that no row names: the empty-key row must not match it (bound as
    // '' the missing switch MAC and port matched it; bound as NULL nothing does).
    let stranger = plain_or_relayed([2, 0, 0, 0, 0, 0x51], false);
    let vars = packet_variables(&stranger, &sa.slices);
    assert!(
        !vars.contains_key("sw_mac") && !vars.contains_key("option_82_AgentCircuitId_port_hex")
    );
    assert_eq!(run(&stranger), ChainOutcome::Miss, "{backend:?}");
    // pydhcpdb's own sample row, by client MAC (its port is '', never consulted).
    match run(&plain_or_relayed(
        [0x08, 0x00, 0x27, 0x05, 0x9e, 0xd0],
        false,
    )) {
        ChainOutcome::Hit { query, assignment } => {
            assert_eq!((query, assignment.ip), (1, Ipv4Addr::new(192, 168, 0, 19)));
            assert_eq!(assignment.dns, [Ipv4Addr::new(8, 8, 8, 8)]);
        }
        other => panic!("{backend:?}: {other:?}"),
    }
    // Relayed through the article's switch: pydhcpdb's verbatim `option_82_hex:sw_mac:26:40`
    // on the 38-digit option_82_hex gives the switch MAC (Python's slice), and it matches.
    let relayed = plain_or_relayed([2, 0, 0, 0, 0, 0x52], true);
    let vars = packet_variables(&relayed, &sa.slices);
    assert_eq!(vars["option_82_hex"].len(), 38);
    assert_eq!(vars["sw_mac"], "001e589eb2ad");
    match run(&relayed) {
        ChainOutcome::Hit { query, assignment } => {
            assert_eq!((query, assignment.ip), (0, Ipv4Addr::new(198, 18, 0, 77)));
        }
        other => panic!("{backend:?}: {other:?}"),
    }

    // The README's history_sql writes the event's own name, for every kind of event.
    let hist = sa.history_sql.as_ref().unwrap();
    for event in ["ack_new", "renew", "release", "decline", "expire", "nak"] {
        let mut vars = packet_variables(&relayed, &sa.slices);
        vars.insert("IpAddress".into(), "198.18.0.77".into());
        vars.insert("Event".into(), event.into());
        t.rt.block_on(run_user_statement(&db, &hist.template, &vars))
            .unwrap();
    }
    let comments: Vec<String> =
        t.rt.block_on(async {
            let sql = "SELECT comment FROM history ORDER BY id";
            match &db {
                Db::Pg(p) => sqlx::query_scalar(sql).fetch_all(p).await,
                Db::My(p) => sqlx::query_scalar(sql).fetch_all(p).await,
            }
        })
        .unwrap();
    assert_eq!(
        comments,
        ["ack_new", "renew", "release", "decline", "expire", "nak"]
    );
    assert_eq!(
        t.count(
            &db,
            "SELECT COUNT(*) FROM history WHERE mac = '020000000052' AND ip = '198.18.0.77'"
        ),
        6
    );
}

#[test]
fn postgres_pydhcpdb_readme_tables_and_empty_keys() {
    pydhcpdb_readme_battery(SqlBackend::Postgres);
}

#[test]
fn mysql_pydhcpdb_readme_tables_utf8_bin_and_empty_keys() {
    pydhcpdb_readme_battery(SqlBackend::Mysql);
}

#[test]
fn env_expansion() {
    assert_eq!(expand_env("postgres://h/db").unwrap(), "postgres://h/db");
    assert!(expand_env("postgres://u:${LEASED_TEST_SURELY_UNSET_VAR}@h/db").is_err());
    assert!(expand_env("postgres://${unterminated").is_err());
}
