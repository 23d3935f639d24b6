//! The SQL assignment chain (pydhcpdb's queries) and the operator's own history statement,
//! against the real PostgreSQL and MariaDB (throwaway databases: `common/sql.rs`), and the
//! widening of an older schema. What every store does is in battery.rs.
#![cfg(feature = "sql")]
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::sql::TempDb;
use leased_core::config::{Format, SqlBackend, load_str};
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
