//! Unit tests of what needs no database. Everything against the real PostgreSQL and MariaDB
//! is in the integration tests: tests/battery.rs (every store) and tests/sql.rs.

use super::*;

#[test]
fn env_expansion() {
    assert_eq!(expand_env("postgres://h/db").unwrap(), "postgres://h/db");
    assert!(expand_env("postgres://u:${LEASED_TEST_SURELY_UNSET_VAR}@h/db").is_err());
    assert!(expand_env("postgres://${unterminated").is_err());
}
