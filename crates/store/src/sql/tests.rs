//! Unit tests of what needs no database. Everything against the real PostgreSQL and MariaDB
//! is in the integration tests: tests/battery.rs (every store) and tests/sql.rs.

use super::*;

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
