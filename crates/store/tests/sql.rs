//! The SQL assignment chain (pydhcpdb's queries, and the README's pydhcpdb tables as an
//! operator copies them) and the operator's own history statement, against the real
//! PostgreSQL and MariaDB (throwaway databases: `common/sql.rs`), and the widening of an older
//! schema. What every store does is in battery.rs.
#![cfg(feature = "sql")]
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::sql::TempDb;
use leased_config::{Format, SqlBackend, load_str};
use leased_core::sql::packet_variables;
use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};
use leased_store::LeaseStore;
use leased_store::history::{HistoryFilter, HistoryRecord};
use leased_store::sql::{
    ChainOutcome, Db, SqlChain, SqlStore, insert_history, query_history, run_user_statement,
};
use leased_wire::{Options, Packet, code};

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

fn chain_and_operator_history(backend: SqlBackend) {
    let Some(t) = TempDb::create(backend) else {
        return;
    };
    let db = t.db();
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

    // The operator's history INSERT, with hostile values bound.
    let mut vars = packet_variables(&hostile, &sa.slices);
    vars.insert("IpAddress".into(), "198.18.0.150".into());
    let hist = sa.history_sql.as_ref().unwrap();
    t.rt.block_on(run_user_statement(&db, &hist.template, &vars))
        .unwrap();
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
fn postgres_chain_and_operator_history() {
    chain_and_operator_history(SqlBackend::Postgres);
}

#[test]
fn mysql_chain_and_operator_history() {
    chain_and_operator_history(SqlBackend::Mysql);
}

/// A database whose client_id columns an older version made VARCHAR(600) (300 bytes in hex)
/// is widened when a server opens it, once: afterwards a client id as long as a request can
/// carry is stored, in the lease table and in the history.
fn an_older_schema_is_widened(backend: SqlBackend) {
    let Some(t) = TempDb::create(backend) else {
        return;
    };
    let db = t.db();
    t.rt.block_on(db.init_schema()).unwrap();
    for table in ["leased_leases", "leased_history"] {
        t.exec(
            &db,
            &match backend {
                SqlBackend::Postgres => {
                    format!("ALTER TABLE {table} ALTER COLUMN client_id TYPE VARCHAR(600)")
                }
                SqlBackend::Mysql => {
                    format!("ALTER TABLE {table} MODIFY client_id VARCHAR(600) NOT NULL")
                }
            },
        );
    }
    let narrow = || {
        let schema = match backend {
            SqlBackend::Postgres => "current_schema()",
            SqlBackend::Mysql => "DATABASE()",
        };
        t.count(
            &db,
            &format!(
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = {schema} \
                 AND column_name = 'client_id' AND character_maximum_length = 600"
            ),
        )
    };
    assert_eq!(narrow(), 2);
    let mut store = SqlStore::open(&t.url, "server-a").unwrap();
    assert_eq!(narrow(), 0);
    let long = ClientId(vec![0xab; 3000]);
    let lease = Lease {
        ip: Ipv4Addr::new(198, 18, 0, 9),
        client_id: long.clone(),
        hwaddr: HwAddr(vec![2, 0, 0, 0, 0, 9]),
        hostname: None,
        state: LeaseState::Bound,
        starts: Timestamp(1),
        expires: Timestamp(2),
        first_seen: Timestamp(1),
        circuit_id: None,
        remote_id: None,
        subscriber_id: None,
    };
    store.commit(std::slice::from_ref(&lease)).unwrap();
    assert_eq!(store.load().unwrap(), [lease]);
    let rec = HistoryRecord {
        at: 1,
        event: "ack_new".into(),
        mac: "02:00:00:00:00:09".into(),
        client_id: "ab".repeat(3000),
        ip: "198.18.0.9".into(),
        hostname: None,
        giaddr: None,
        circuit_id: None,
        remote_id: None,
    };
    t.rt.block_on(insert_history(&db, std::slice::from_ref(&rec), "server-a"))
        .unwrap();
    let all = HistoryFilter {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(t.rt.block_on(query_history(&db, &all)).unwrap(), [rec]);
    // A second start finds nothing to widen.
    drop(store);
    SqlStore::open(&t.url, "server-b").unwrap();
    assert_eq!(narrow(), 0);
}

#[test]
fn postgres_an_older_schema_is_widened() {
    an_older_schema_is_widened(SqlBackend::Postgres);
}

#[test]
fn mysql_an_older_schema_is_widened() {
    an_older_schema_is_widened(SqlBackend::Mysql);
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
