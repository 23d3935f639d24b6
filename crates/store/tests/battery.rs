//! One battery of lease-store tests, written once against `impl LeaseStore` and run against
//! every backend: the embedded journal, PostgreSQL and MariaDB/MySQL (the real servers on this
//! machine, each test in a throwaway database of its own: `common/sql.rs`). [`battery!`]
//! instantiates the cases per backend.
//!
//! | case                                          | embedded | PostgreSQL | MariaDB |
//! |-----------------------------------------------|----------|------------|---------|
//! | commit_then_read_back                         | yes      | yes        | yes     |
//! | the_last_write_wins_and_a_reopen_loads_it     | yes      | yes        | yes     |
//! | an_empty_commit_changes_nothing               | yes      | yes        | yes     |
//! | a_full_group_in_one_commit                    | yes      | yes        | yes     |
//! | leases_of_every_state                         | yes      | yes        | yes     |
//! | a_crash_while_committing_recovers_a_prefix    | yes (1)  | yes (2)    | yes (2) |
//! | history_comes_back_in_order_filtered_alike    | yes (3)  | yes (4)    | yes (4) |
//! | two_servers_race_for_one_address              | no (5)   | yes        | yes     |
//! | the_conflict_rule                             | no (5)   | yes        | yes     |
//!
//! 1. The journal is truncated at every byte offset of the last commit (what a crash during
//!    its write leaves on disk).
//! 2. A database recovers its own crash; what the store adds is that a group is one
//!    transaction. The server's connection is killed in the middle of the last group, once
//!    before each of its leases (the row is held by another transaction so that the group
//!    stops there).
//! 3. The history file beside the journal.
//! 4. The `leased_history` table.
//! 5. Conflicts need two servers on one store. The journal belongs to one process: a second
//!    open is refused with `StoreError::Locked` (journal.rs, `a_second_open_is_locked_out`),
//!    so there is nobody to conflict with.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{expected, lease};
use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};
use leased_store::history::{HistoryFile, HistoryFilter, HistoryRecord, history_path};
use leased_store::{EmbeddedStore, FileMode, LeaseStore, MAX_GROUP_LEASES};

/// What a backend must offer for the battery to run against it.
trait Backend {
    type Store: LeaseStore;

    /// A server (re)starting on this backend's durable state. The embedded journal takes one
    /// handle at a time: cases drop a store before opening the next.
    fn open(&self) -> Self::Store;

    /// `lease` as this backend gives it back (its documented normalisations).
    fn stored(&self, lease: &Lease) -> Lease;

    /// Appends `records` to the lease history, durably.
    fn append_history(&self, records: &[HistoryRecord]);

    /// The history records passing `filter`.
    fn read_history(&self, filter: &HistoryFilter) -> Vec<HistoryRecord>;

    /// `record` as this backend gives it back.
    fn stored_record(&self, record: &HistoryRecord) -> HistoryRecord;

    /// Sets the durable state to `done` (committed in order), then crashes a server at every
    /// point where this backend can be interrupted while committing `last`, and calls `check`
    /// after each crash, before anything else touches the state.
    fn crash_while_committing(
        &self,
        done: &[Vec<Lease>],
        last: &[Lease],
        check: &mut dyn FnMut(Crash<'_, Self::Store>),
    );
}

/// One crash, as [`Backend::crash_while_committing`] reports it.
struct Crash<'a, S> {
    /// Where the crash happened, for failure messages.
    at: String,
    /// Whether all of `last` had reached the store when it crashed.
    whole: bool,
    /// Whether to check that the recovered store takes commits (each check costs fsyncs:
    /// sampled where there are hundreds of crash points).
    thorough: bool,
    /// Opens the recovered store (a server restarting after the crash).
    open: &'a dyn Fn() -> S,
}

/// `load`, in address order (the trait promises no order).
fn loaded(store: &mut impl LeaseStore) -> Vec<Lease> {
    let mut v = store.load().unwrap();
    v.sort_by_key(|l| l.ip);
    v
}

/// [`expected`] as `backend` stores it.
fn want(backend: &impl Backend, commits: &[Vec<Lease>]) -> Vec<Lease> {
    expected(commits)
        .iter()
        .map(|l| backend.stored(l))
        .collect()
}

/// Unix seconds now. The SQL stores judge whether a row has lapsed by the real clock, so
/// leases that must still hold are built from it.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ip(subnet: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, subnet, host)
}

/// The longest option 61 a request can carry: the 4096-byte datagram io receives, less the
/// 240 bytes of BOOTP header and magic cookie, option 53 and the end mark, in instances of
/// 255 bytes that decoding concatenates (RFC 3396).
const LONGEST_CLIENT_ID: usize = {
    let room = 4096 - 240 - 3 - 1;
    room / 257 * 255 + (room % 257 - 2)
};

/// Leases whose every field holds what an attacker on a subscriber port can put there.
fn hostile_leases() -> Vec<Lease> {
    let now = unix_now();
    let every_byte: Vec<u8> = (0..=254).collect();
    vec![
        Lease {
            ip: ip(0, 1),
            client_id: ClientId((0..LONGEST_CLIENT_ID).map(|i| i as u8).collect()),
            hwaddr: HwAddr(vec![0xff; 16]),
            hostname: Some(
                "x'); DROP TABLE leased_leases; --\0\\'\"`$1 ?:n\n\r\t\x1b[2J\u{202e}\u{1f600}"
                    .into(),
            ),
            state: LeaseState::Bound,
            starts: Timestamp(now),
            expires: Timestamp(now + u64::from(u32::MAX)),
            first_seen: Timestamp(0),
            circuit_id: Some(every_byte.clone()),
            remote_id: Some(b"'\\\"\0;--".to_vec()),
            subscriber_id: Some(every_byte.iter().rev().copied().collect()),
        },
        Lease {
            ip: ip(0, 2),
            client_id: ClientId(vec![0]),
            hwaddr: HwAddr(vec![]),
            // Longer than any column: a host name from concatenated option 12 instances.
            hostname: Some("é\u{1f600}".repeat(200)),
            state: LeaseState::Bound,
            starts: Timestamp(now),
            expires: Timestamp(now + 60),
            first_seen: Timestamp(now),
            circuit_id: Some(vec![]),
            remote_id: None,
            subscriber_id: Some(vec![0]),
        },
        Lease {
            ip: Ipv4Addr::new(255, 255, 255, 255),
            client_id: ClientId(b"\x01\x02\x03".to_vec()),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, 1]),
            hostname: None,
            state: LeaseState::Bound,
            starts: Timestamp(1),
            expires: Timestamp(2),
            first_seen: Timestamp(1),
            circuit_id: None,
            remote_id: Some(every_byte),
            subscriber_id: None,
        },
        Lease {
            ip: Ipv4Addr::new(0, 0, 0, 0),
            hostname: Some(String::new()),
            ..lease(3, 1)
        },
    ]
}

/// Every field comes back: binary relay data byte for byte, hostile text as data.
fn commit_then_read_back(b: &impl Backend) {
    let leases = hostile_leases();
    let want: Vec<Lease> = {
        let mut v: Vec<Lease> = leases.iter().map(|l| b.stored(l)).collect();
        v.sort_by_key(|l| l.ip);
        v
    };
    let mut store = b.open();
    assert!(store.load().unwrap().is_empty(), "a new store is empty");
    store.commit(&leases).unwrap();
    assert_eq!(loaded(&mut store), want, "the same handle");
    drop(store);
    assert_eq!(loaded(&mut b.open()), want, "after a reopen");
}

/// An address changed several times, within one commit and across commits and handles: the
/// last write wins, and a reopen loads the same table.
fn the_last_write_wins_and_a_reopen_loads_it(b: &impl Backend) {
    let other_client = |mut l: Lease, c: u8| {
        l.client_id = ClientId(vec![1, 2, 0, 0, 0, c]);
        l.hwaddr = HwAddr(vec![2, 0, 0, 0, 0, c]);
        l
    };
    let state = |mut l: Lease, s| {
        l.state = s;
        l
    };
    let commits = [
        vec![lease(1, 1), lease(2, 1), lease(1, 2)],
        vec![
            lease(2, 3),
            lease(3, 1),
            state(lease(5, 1), LeaseState::Offered),
        ],
        vec![lease(1, 4), lease(5, 2)],
        // Given back, then another client's, in one commit.
        vec![
            state(lease(5, 3), LeaseState::Released),
            other_client(lease(5, 4), 9),
        ],
        vec![lease(3, 2)],
    ];
    for (i, c) in commits.iter().enumerate() {
        let mut store = b.open();
        store.commit(c).unwrap();
        let so_far = want(b, &commits[..=i]);
        assert_eq!(loaded(&mut store), so_far, "after commit {i}");
        drop(store);
        assert_eq!(loaded(&mut b.open()), so_far, "reopened after commit {i}");
    }
    let table = loaded(&mut b.open());
    assert_eq!(table.len(), 4);
    assert_eq!(table[0], b.stored(&lease(1, 4)));
    assert_eq!(table[3], b.stored(&other_client(lease(5, 4), 9)));
}

fn an_empty_commit_changes_nothing(b: &impl Backend) {
    let mut store = b.open();
    store.commit(&[]).unwrap();
    assert!(store.load().unwrap().is_empty());
    let commits = vec![vec![lease(1, 1), lease(2, 1)]];
    store.commit(&commits[0]).unwrap();
    store.commit(&[]).unwrap();
    assert_eq!(loaded(&mut store), want(b, &commits));
    drop(store);
    let mut store = b.open();
    store.commit(&[]).unwrap();
    assert_eq!(loaded(&mut store), want(b, &commits));
}

/// The largest group the group committer ever hands a store, in one commit.
fn a_full_group_in_one_commit(b: &impl Backend) {
    let states = [
        LeaseState::Bound,
        LeaseState::Offered,
        LeaseState::Released,
        LeaseState::Expired,
        LeaseState::Declined,
    ];
    let group: Vec<Lease> = (0..u16::try_from(MAX_GROUP_LEASES).unwrap())
        .map(|n| Lease {
            state: states[usize::from(n) % states.len()],
            ..lease(n, u64::from(n))
        })
        .collect();
    let commits = vec![vec![lease(7, 0), lease(5000, 0)], group];
    let mut store = b.open();
    for c in &commits {
        store.commit(c).unwrap();
    }
    let table = want(b, &commits);
    assert_eq!(table.len(), MAX_GROUP_LEASES + 1);
    assert_eq!(loaded(&mut store), table);
    drop(store);
    assert_eq!(loaded(&mut b.open()), table, "after a reopen");
}

/// One lease in each state, and one address through all of them.
fn leases_of_every_state(b: &impl Backend) {
    let now = unix_now();
    let in_state = |n: u16, s: LeaseState, v: u64| Lease {
        state: s,
        expires: Timestamp(now + 600 + v),
        ..lease(n, v)
    };
    let all = [
        LeaseState::Offered,
        LeaseState::Bound,
        LeaseState::Released,
        LeaseState::Expired,
        LeaseState::Declined,
    ];
    let each: Vec<Lease> = all
        .iter()
        .zip(10u16..)
        .map(|(s, n)| in_state(n, *s, 0))
        .collect();
    let mut commits = vec![each];
    let mut store = b.open();
    store.commit(&commits[0]).unwrap();
    for (s, v) in all.iter().chain(&[LeaseState::Bound]).zip(1u64..) {
        let c = vec![in_state(20, *s, v)];
        store.commit(&c).unwrap();
        commits.push(c);
        assert_eq!(loaded(&mut store), want(b, &commits), "{s:?}");
    }
    drop(store);
    let table = loaded(&mut b.open());
    assert_eq!(table, want(b, &commits), "after a reopen");
    let states: Vec<LeaseState> = table.iter().map(|l| l.state).collect();
    assert_eq!(states, [all.as_slice(), &[LeaseState::Bound]].concat());
}

/// A crash while the last group is being committed leaves the groups before it, whole, and
/// the last one either whole or not at all; the recovered store takes new commits.
fn a_crash_while_committing_recovers_a_prefix(b: &impl Backend) {
    // Multi-lease groups overwriting each other; the last one overwrites and adds.
    let done: Vec<Vec<Lease>> = [1u16, 4, 2, 5, 3]
        .iter()
        .zip(0u64..)
        .map(|(size, c)| (0..*size).map(|n| lease(n + c as u16, c)).collect())
        .collect();
    let last: Vec<Lease> = [2u16, 40, 5, 41].iter().map(|n| lease(*n, 9)).collect();
    let mut all = done.clone();
    all.push(last.clone());
    let before = want(b, &done);
    let after = want(b, &all);
    assert_ne!(before, after);
    let extra = lease(999, 7);
    let mut crashes = 0;
    b.crash_while_committing(&done, &last, &mut |crash| {
        crashes += 1;
        let table = if crash.whole { &after } else { &before };
        let mut store = (crash.open)();
        assert_eq!(&loaded(&mut store), table, "crash {}", crash.at);
        if !crash.thorough {
            return;
        }
        store.commit(std::slice::from_ref(&extra)).unwrap();
        drop(store);
        let mut with_extra = table.clone();
        with_extra.push(b.stored(&extra));
        with_extra.sort_by_key(|l| l.ip);
        assert_eq!(
            loaded(&mut (crash.open)()),
            with_extra,
            "a commit after the crash {}",
            crash.at
        );
    });
    assert!(crashes >= last.len(), "{crashes} crash points");
}

fn record(n: u64, at: u64, mac: u8, ip_host: u8) -> HistoryRecord {
    HistoryRecord {
        at,
        event: ["ack_new", "renew", "release", "decline", "expire", "nak"][n as usize % 6].into(),
        mac: format!("02:00:00:ab:cd:{mac:02x}"),
        client_id: if n == 3 {
            "ab".repeat(LONGEST_CLIENT_ID)
        } else {
            format!("0102{n:08x}")
        },
        ip: ip(0, ip_host).to_string(),
        hostname: match n % 3 {
            0 => None,
            1 => Some(format!("host-{n}")),
            _ => Some("x'); DROP TABLE leased_history; --\0\\'\"\n\u{1f600}".into()),
        },
        giaddr: n.is_multiple_of(2).then(|| "198.18.1.1".into()),
        circuit_id: n.is_multiple_of(3).then(|| "00ff27".into()),
        remote_id: (n % 4 == 1).then(|| "5c27".into()),
    }
}

/// Records come back in the order they were written, and every filter picks the same ones
/// from every backend: the ones [`HistoryFilter::matches`] passes, oldest first, at most
/// `limit`.
fn history_comes_back_in_order_filtered_alike(b: &impl Backend) {
    let all = |limit| HistoryFilter {
        limit,
        ..Default::default()
    };
    assert!(b.read_history(&all(usize::MAX)).is_empty());
    // Times that repeat (several events in one second) and MACs and addresses that recur.
    let records: Vec<HistoryRecord> = (0..14u64)
        .map(|n| record(n, 1_000 + n / 3, (n % 3) as u8, (n % 4) as u8))
        .collect();
    for batch in records.chunks(5) {
        b.append_history(batch);
    }
    let filters = [
        all(usize::MAX),
        all(5),
        all(1),
        all(0),
        HistoryFilter {
            mac: Some("02:00:00:ab:cd:01".into()),
            ..all(usize::MAX)
        },
        HistoryFilter {
            mac: Some("02:00:00:AB:CD:01".into()),
            ..all(usize::MAX)
        },
        HistoryFilter {
            mac: Some("02:00:00:ab:cd:09".into()),
            ..all(usize::MAX)
        },
        HistoryFilter {
            ip: Some(ip(0, 2)),
            ..all(usize::MAX)
        },
        HistoryFilter {
            since: Some(1_002),
            ..all(usize::MAX)
        },
        HistoryFilter {
            mac: Some("02:00:00:ab:cd:02".into()),
            ip: Some(ip(0, 1)),
            since: Some(1_001),
            limit: 2,
        },
        HistoryFilter {
            mac: None,
            ip: Some(ip(0, 3)),
            since: Some(1_001),
            limit: 1,
        },
    ];
    for filter in filters {
        let want: Vec<HistoryRecord> = records
            .iter()
            .filter(|r| filter.matches(r))
            .take(filter.limit)
            .map(|r| b.stored_record(r))
            .collect();
        assert_eq!(b.read_history(&filter), want, "{filter:?}");
    }
    assert_eq!(b.read_history(&all(usize::MAX)).len(), records.len());
}

/// Instantiates the battery for one backend: `name: Type = expression giving Option<Type>`
/// (`None`: the backend is unreachable and the reason was printed), then the cases that only
/// some backends have.
macro_rules! battery {
    ($name:ident: $ty:ty = $backend:expr $(; $($only:ident),* $(,)?)?) => {
        mod $name {
            use super::*;

            fn backend() -> Option<$ty> {
                $backend
            }

            macro_rules! case {
                ($case:ident) => {
                    #[test]
                    fn $case() {
                        if let Some(b) = backend() {
                            super::$case(&b);
                        }
                    }
                };
            }

            case!(commit_then_read_back);
            case!(the_last_write_wins_and_a_reopen_loads_it);
            case!(an_empty_commit_changes_nothing);
            case!(a_full_group_in_one_commit);
            case!(leases_of_every_state);
            case!(a_crash_while_committing_recovers_a_prefix);
            case!(history_comes_back_in_order_filtered_alike);
            $($(case!($only);)*)?
        }
    };
}

/// The embedded journal in a fresh directory.
struct Embedded {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Embedded {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.journal");
        Self { dir, path }
    }
}

impl Backend for Embedded {
    type Store = EmbeddedStore;

    fn open(&self) -> EmbeddedStore {
        EmbeddedStore::open(&self.path).unwrap()
    }

    /// The journal keeps every lease exactly.
    fn stored(&self, lease: &Lease) -> Lease {
        lease.clone()
    }

    fn append_history(&self, records: &[HistoryRecord]) {
        let mut f = HistoryFile::open(&history_path(&self.path), FileMode::PRIVATE).unwrap();
        f.append(records).unwrap();
        f.sync().unwrap();
    }

    fn read_history(&self, filter: &HistoryFilter) -> Vec<HistoryRecord> {
        leased_store::history::read_history(&history_path(&self.path), filter).unwrap()
    }

    fn stored_record(&self, record: &HistoryRecord) -> HistoryRecord {
        record.clone()
    }

    /// Truncates a copy of the journal at every byte offset of the last commit.
    fn crash_while_committing(
        &self,
        done: &[Vec<Lease>],
        last: &[Lease],
        check: &mut dyn FnMut(Crash<'_, EmbeddedStore>),
    ) {
        let mut store = self.open();
        for c in done {
            store.commit(c).unwrap();
        }
        let from = store.journal_bytes();
        store.commit(last).unwrap();
        let end = store.journal_bytes();
        drop(store);
        let full = std::fs::read(&self.path).unwrap();
        assert_eq!(full.len() as u64, end);
        let torn = self.dir.path().join("torn.journal");
        for cut in from..=end {
            std::fs::write(&torn, &full[..usize::try_from(cut).unwrap()]).unwrap();
            let kept = if cut == end { end } else { from };
            // A reader (`leased leases` while the server runs) sees the same, repairing
            // nothing; the server's open cuts the torn tail off.
            let read = EmbeddedStore::read_only(&torn).unwrap();
            assert_eq!(std::fs::metadata(&torn).unwrap().len(), cut);
            let mut reopened = EmbeddedStore::open(&torn).unwrap();
            assert_eq!(reopened.load().unwrap(), read, "read_only at cut {cut}");
            assert_eq!(reopened.journal_bytes(), kept, "cut {cut}");
            assert_eq!(std::fs::metadata(&torn).unwrap().len(), kept);
            drop(reopened);
            check(Crash {
                at: format!("at byte {cut} ({} into the last commit)", cut - from),
                whole: cut == end,
                thorough: cut % 29 == 0 || cut == from || cut == end,
                open: &|| EmbeddedStore::open(&torn).unwrap(),
            });
        }
    }
}

battery!(embedded: Embedded = Some(Embedded::new()));

#[cfg(feature = "sql")]
mod sql {
    //! The SQL backends, and the cases only a shared store has.

    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    use leased_config::SqlBackend;
    use leased_store::StoreError;
    use leased_store::sql::{Db, SqlStore, insert_history, query_history};

    use super::common::sql::{TempDb, safe};
    use super::*;

    /// A throwaway database on one of this machine's SQL servers.
    pub(super) struct Sql {
        /// A pool on the database, for history and for what the cases inspect directly.
        db: Db,
        t: TempDb,
    }

    impl Sql {
        pub(super) fn new(backend: SqlBackend) -> Option<Self> {
            let t = TempDb::create(backend)?;
            let db = t.db();
            t.rt.block_on(db.init_schema()).unwrap();
            Some(Self { db, t })
        }

        /// Another server on the same database, writing `server` in the rows.
        fn open_as(&self, server: &str) -> SqlStore {
            SqlStore::open(&self.t.url, server).unwrap()
        }
    }

    /// PostgreSQL refuses NUL in text, so the store drops NULs from host names, and keeps
    /// the first 255 characters (the column's size).
    fn stored_text(s: &str) -> String {
        s.chars().filter(|c| *c != '\0').take(255).collect()
    }

    impl Backend for Sql {
        type Store = SqlStore;

        fn open(&self) -> SqlStore {
            self.open_as("server-a")
        }

        fn stored(&self, lease: &Lease) -> Lease {
            Lease {
                hostname: lease.hostname.as_deref().map(stored_text),
                ..lease.clone()
            }
        }

        fn append_history(&self, records: &[HistoryRecord]) {
            self.t
                .rt
                .block_on(insert_history(&self.db, records, "server-a"))
                .unwrap();
        }

        fn read_history(&self, filter: &HistoryFilter) -> Vec<HistoryRecord> {
            self.t.rt.block_on(query_history(&self.db, filter)).unwrap()
        }

        fn stored_record(&self, record: &HistoryRecord) -> HistoryRecord {
            HistoryRecord {
                hostname: record.hostname.as_deref().map(stored_text),
                ..record.clone()
            }
        }

        /// Kills the server's connection in the middle of the last group, once before each of
        /// its leases: another transaction holds that lease's row, so the group's transaction
        /// waits there, having written the leases before it.
        fn crash_while_committing(
            &self,
            done: &[Vec<Lease>],
            last: &[Lease],
            check: &mut dyn FnMut(Crash<'_, SqlStore>),
        ) {
            // The store writes a group in address order.
            let mut order: Vec<Ipv4Addr> = last.iter().map(|l| l.ip).collect();
            order.sort();
            for (k, victim) in order.iter().enumerate() {
                self.t.exec(&self.db, "DELETE FROM leased_leases");
                let mut store = self.open();
                for c in done {
                    store.commit(c).unwrap();
                }
                let lock = RowLock::take(&self.t, &self.db, *victim);
                let result = std::thread::scope(|s| {
                    let committing = s.spawn(|| store.commit(last));
                    let killed = kill_the_waiting_connection(&self.t, &|| committing.is_finished());
                    let result = committing.join().unwrap();
                    assert!(
                        killed,
                        "before lease {k}: the commit ended without waiting for the row: {result:?}"
                    );
                    result
                });
                assert!(
                    matches!(result, Err(StoreError::Sql { .. })),
                    "killed before lease {k}: {result:?}"
                );
                lock.release(&self.t);
                drop(store);
                check(Crash {
                    at: format!("of the connection before lease {k} of {}", last.len()),
                    whole: false,
                    thorough: true,
                    open: &|| self.open(),
                });
            }
        }
    }

    /// A transaction holding one lease row (inserting a placeholder where there is none).
    enum Tx {
        Pg(sqlx::Transaction<'static, sqlx::Postgres>),
        My(sqlx::Transaction<'static, sqlx::MySql>),
    }

    /// [`Tx`], rolled back when released or dropped (also while a failed case unwinds:
    /// sqlx needs the runtime for that).
    struct RowLock {
        tx: Option<Tx>,
        rt: tokio::runtime::Handle,
    }

    impl RowLock {
        fn take(t: &TempDb, db: &Db, ip: Ipv4Addr) -> Self {
            const COLS: &str =
                "ip, client_id, hwaddr, state, starts, expires, first_seen, server, updated_ms";
            let key = i64::from(u32::from(ip));
            let tx = t.rt.block_on(async {
                match db {
                    Db::Pg(p) => {
                        let mut tx = p.begin().await.unwrap();
                        sqlx::query(safe(&format!(
                            "INSERT INTO leased_leases ({COLS}) VALUES \
                             ($1, 'ff', 'ff', 'bound', 0, 0, 0, 'lock', 0) \
                             ON CONFLICT (ip) DO UPDATE SET server = leased_leases.server"
                        )))
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                        Tx::Pg(tx)
                    }
                    Db::My(p) => {
                        let mut tx = p.begin().await.unwrap();
                        sqlx::query(safe(&format!(
                            "INSERT INTO leased_leases ({COLS}) VALUES \
                             (?, 'ff', 'ff', 'bound', 0, 0, 0, 'lock', 0) \
                             ON DUPLICATE KEY UPDATE server = server"
                        )))
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                        Tx::My(tx)
                    }
                }
            });
            Self {
                tx: Some(tx),
                rt: t.rt.handle().clone(),
            }
        }

        fn release(mut self, t: &TempDb) {
            let tx = self.tx.take();
            t.rt.block_on(async {
                match tx {
                    Some(Tx::Pg(tx)) => tx.rollback().await.unwrap(),
                    Some(Tx::My(tx)) => tx.rollback().await.unwrap(),
                    None => {}
                }
            });
        }
    }

    impl Drop for RowLock {
        fn drop(&mut self) {
            let _runtime = self.rt.enter();
            drop(self.tx.take());
        }
    }

    /// Waits (bounded) for a connection to this test's database to wait for a row lock, and
    /// kills it: what the database sees when the server holding it dies. False when
    /// `finished` says the commit ended before it waited.
    fn kill_the_waiting_connection(t: &TempDb, finished: &dyn Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: Vec<i64> = t.rt.block_on(async {
                match &t.admin {
                    Db::Pg(p) => sqlx::query_scalar(
                        "SELECT CAST(pid AS BIGINT) FROM pg_stat_activity \
                         WHERE datname = $1 AND wait_event_type = 'Lock'",
                    )
                    .bind(&t.name)
                    .fetch_all(p)
                    .await
                    .unwrap(),
                    // INNODB_TRX does not list a transaction whose first statement waits for
                    // a lock (MariaDB 10.11): the statement on this database that has run
                    // for a while is the waiting one (the lock holder is idle).
                    Db::My(p) => sqlx::query_scalar(
                        "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST \
                         WHERE DB = ? AND COMMAND IN ('Query', 'Execute') AND TIME_MS > 200 \
                         AND INFO LIKE '%leased_leases%'",
                    )
                    .bind(&t.name)
                    .fetch_all(p)
                    .await
                    .unwrap(),
                }
            });
            if let [id] = waiting[..] {
                t.rt.block_on(async {
                    match &t.admin {
                        // One call, on exactly this backend.
                        Db::Pg(p) => {
                            let pid = i32::try_from(id).unwrap();
                            let killed: bool =
                                sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                                    .bind(pid)
                                    .fetch_one(p)
                                    .await
                                    .unwrap();
                            assert!(killed, "backend {pid} not terminated");
                        }
                        Db::My(p) => {
                            sqlx::raw_sql(safe(&format!("KILL CONNECTION {id}")))
                                .execute(p)
                                .await
                                .unwrap();
                        }
                    }
                });
                return true;
            }
            if finished() {
                return false;
            }
            assert!(waiting.len() <= 1, "several waiters: {waiting:?}");
            assert!(
                Instant::now() < deadline,
                "the commit never waited for the row"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A lease of client `c` for `ip` in `state`, holding the address for an hour after
    /// `now` (the real clock's: the store judges lapse by it).
    fn held(ip: Ipv4Addr, c: u8, state: LeaseState, now: u64) -> Lease {
        Lease {
            ip,
            client_id: ClientId(vec![1, 2, 0, 0, 0, c]),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, c]),
            hostname: Some(format!("client-{c}")),
            state,
            starts: Timestamp(now),
            expires: Timestamp(now + 3600),
            first_seen: Timestamp(now),
            circuit_id: Some(vec![0, 4, 0, 1, 0, c]),
            remote_id: None,
            subscriber_id: None,
        }
    }

    /// Two servers commit, at the same moment, groups giving one address to two different
    /// clients (a new address, or one a third client released). Exactly one wins it; the
    /// other's commit reports a conflict for that address alone, and the rest of its group
    /// is durable.
    pub(super) fn two_servers_race_for_one_address(b: &Sql) {
        const ROUNDS: u8 = 24;
        let mut a = b.open_as("server-a");
        let mut c = b.open_as("server-c");
        let mut other = b.open_as("server-b");
        // Connections are up before the race, so that the commits, not logins, overlap.
        for s in [&mut a, &mut other, &mut c] {
            s.load().unwrap();
        }
        let mut wins = [0u32; 2];
        for r in 0..ROUNDS {
            let now = unix_now();
            let held = |ip, c, state| held(ip, c, state, now);
            let contested = ip(1, r);
            if r % 2 == 1 {
                c.commit(&[held(contested, 9, LeaseState::Released)])
                    .unwrap();
            }
            let groups = [
                vec![
                    held(contested, 1, LeaseState::Bound),
                    held(ip(2, r), 1, LeaseState::Bound),
                ],
                vec![
                    held(ip(3, r), 2, LeaseState::Bound),
                    held(contested, 2, LeaseState::Bound),
                ],
            ];
            let barrier = Barrier::new(2);
            let results = std::thread::scope(|s| {
                let stores = [&mut a, &mut other];
                let running: Vec<_> = stores
                    .into_iter()
                    .zip(&groups)
                    .map(|(store, group)| {
                        let barrier = &barrier;
                        s.spawn(move || {
                            barrier.wait();
                            store.commit(group)
                        })
                    })
                    .collect();
                running
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            });
            let winner = match &results[..] {
                [Ok(()), Err(StoreError::Conflict { ips })] if ips == &[contested] => 0,
                [Err(StoreError::Conflict { ips }), Ok(())] if ips == &[contested] => 1,
                other => panic!("round {r}: one win and one conflict expected, got {other:?}"),
            };
            wins[winner] += 1;
            let table = loaded(&mut c);
            let at = |ip| table.iter().find(|l| l.ip == ip).cloned();
            assert_eq!(
                at(contested),
                Some(groups[winner][usize::from(winner == 1)].clone())
            );
            assert_eq!(at(ip(2, r)), Some(groups[0][1].clone()), "round {r}");
            assert_eq!(at(ip(3, r)), Some(groups[1][0].clone()), "round {r}");
        }
        eprintln!("wins per server: {wins:?}");
    }

    /// Who may take an address another server's client holds (sql/mod.rs): the same client
    /// (a renewal through another server), or anyone once the holder released it, it
    /// expired or its time ran out. An offer or a decline quarantine holds it. A conflict
    /// fails that lease only, and the loser can learn the holder.
    pub(super) fn the_conflict_rule(b: &Sql) {
        let now = unix_now();
        let held = |ip, c, state| held(ip, c, state, now);
        let mut a = b.open_as("server-a");
        let mut other = b.open_as("server-b");
        let x = ip(0, 10);
        let y = ip(0, 11);
        a.commit(&[held(x, 1, LeaseState::Bound)]).unwrap();
        let renewed = Lease {
            expires: Timestamp(held(x, 1, LeaseState::Bound).expires.0 + 10),
            ..held(x, 1, LeaseState::Bound)
        };
        other.commit(std::slice::from_ref(&renewed)).unwrap();
        match other.commit(&[held(x, 2, LeaseState::Bound), held(y, 2, LeaseState::Bound)]) {
            Err(StoreError::Conflict { ips }) => assert_eq!(ips, [x]),
            r => panic!("expected a conflict for {x}, got {r:?}"),
        }
        let holder = b.t.rt.block_on(b.db.lease_at(x)).unwrap();
        assert_eq!(
            holder.as_ref(),
            Some(&renewed),
            "the loser learns the holder"
        );
        let table = loaded(&mut a);
        assert_eq!(table, [renewed.clone(), held(y, 2, LeaseState::Bound)]);

        // Free once the holder let it go: released, expired, or its time ran out.
        let lapsed = Lease {
            expires: Timestamp(now - 1),
            ..held(x, 3, LeaseState::Bound)
        };
        for (n, gone) in [
            held(x, 1, LeaseState::Released),
            held(x, 1, LeaseState::Expired),
            lapsed,
        ]
        .into_iter()
        .enumerate()
        {
            let z = ip(0, 20 + n as u8);
            a.commit(&[Lease { ip: z, ..gone }]).unwrap();
            other
                .commit(&[held(z, 4, LeaseState::Bound)])
                .unwrap_or_else(|e| panic!("{z} ({n}): {e}"));
        }
        // Still held: an offer, a decline's quarantine.
        for (n, holding) in [
            held(x, 5, LeaseState::Offered),
            held(x, 5, LeaseState::Declined),
        ]
        .into_iter()
        .enumerate()
        {
            let z = ip(0, 30 + n as u8);
            a.commit(&[Lease { ip: z, ..holding }]).unwrap();
            match other.commit(&[held(z, 6, LeaseState::Bound)]) {
                Err(StoreError::Conflict { ips }) => assert_eq!(ips, [z]),
                r => panic!("{z} ({n}): expected a conflict, got {r:?}"),
            }
        }

        // What the other servers' periodic sync reads: every row, with who wrote it, and
        // nothing new after the newest.
        let (rows, max) = b.t.rt.block_on(b.db.changed_since(i64::MIN)).unwrap();
        assert_eq!(rows.len(), 7);
        let by = |ip| rows.iter().find(|(l, _)| l.ip == ip).unwrap().1.as_str();
        assert_eq!(by(x), "server-b");
        assert_eq!(by(ip(0, 22)), "server-b");
        assert_eq!(by(ip(0, 30)), "server-a");
        let (again, _) = b.t.rt.block_on(b.db.changed_since(max)).unwrap();
        assert!(again.is_empty());
        assert_eq!(b.t.count(&b.db, "SELECT COUNT(*) FROM leased_leases"), 7);
    }
}

#[cfg(feature = "sql")]
use sql::{Sql, the_conflict_rule, two_servers_race_for_one_address};

#[cfg(feature = "sql")]
battery!(postgres: Sql = Sql::new(leased_config::SqlBackend::Postgres);
    two_servers_race_for_one_address, the_conflict_rule);

#[cfg(feature = "sql")]
battery!(mariadb: Sql = Sql::new(leased_config::SqlBackend::Mysql);
    two_servers_race_for_one_address, the_conflict_rule);
