//! The embedded journal's own behaviour: its file format, torn tails and damage, compaction,
//! locking, read-only access, file modes. What every store does (round trips, last write
//! wins, a crash during a commit) is in battery.rs.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{expected, lease};
use leased_core::{Lease, LeaseState};
use leased_store::{EmbeddedStore, LeaseStore, StoreError};

fn journal(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("leases.journal")
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Commits `commits` to a fresh journal; returns the journal's length after each commit
/// (index 0: the empty journal).
fn write_commits(path: &Path, commits: &[Vec<Lease>]) -> Vec<u64> {
    let mut store = EmbeddedStore::open(path).unwrap();
    let mut ends = vec![store.journal_bytes()];
    for c in commits {
        store.commit(c).unwrap();
        ends.push(store.journal_bytes());
        assert_eq!(fs::metadata(path).unwrap().len(), store.journal_bytes());
    }
    ends
}

/// A fresh journal is its 16-byte header alone (an empty commit adds nothing), then JSON
/// one can read.
#[test]
fn file_starts_with_a_versioned_header_and_is_readable_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let mut store = EmbeddedStore::open(&path).unwrap();
    store.commit(&[]).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), 16);
    drop(store);
    write_commits(&path, &[vec![lease(7, 1)]]);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"LEASEDJ\n");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(r#""ip":"198.18.0.7""#), "{text}");
    assert!(text.contains(r#""state":"bound""#), "{text}");
}

#[test]
fn garbage_after_the_last_commit_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let commits = vec![vec![lease(1, 1)], vec![lease(2, 1)]];
    let ends = write_commits(&path, &commits);
    for junk in [vec![0u8; 4096], b"{\"ip\":\"198.18".to_vec(), vec![0xff; 3]] {
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&junk).unwrap();
        drop(f);
        let mut store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), expected(&commits));
        assert_eq!(fs::metadata(&path).unwrap().len(), ends[2]);
    }
}

/// A commit larger than one frame is all-or-nothing too.
#[test]
fn a_multi_frame_commit_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let small = vec![lease(1, 1)];
    // ~12k leases of ~230 bytes: about three 1 MiB frames.
    let big: Vec<Lease> = (0..12_000).map(|n| lease(n, 2)).collect();
    let commits = vec![small.clone(), big];
    let ends = write_commits(&path, &commits);
    let full = fs::read(&path).unwrap();

    // Walk the frames of the big commit and collect interesting cut points.
    let mut frame_starts = vec![];
    let mut at = ends[1] as usize;
    while at < full.len() {
        frame_starts.push(at);
        let len = u32::from_le_bytes(full[at..at + 4].try_into().unwrap()) as usize;
        at += 12 + len;
    }
    assert!(frame_starts.len() >= 3, "big commit spans several frames");
    let mut cuts = vec![];
    for s in &frame_starts {
        cuts.extend([*s, s + 1, s + 11, s + 12, s + 13, s + 500]);
    }
    cuts.push(full.len() - 1);
    let torn = dir.path().join("torn.journal");
    for cut in cuts {
        fs::write(&torn, &full[..cut]).unwrap();
        let mut store = EmbeddedStore::open(&torn).unwrap();
        assert_eq!(store.load().unwrap(), small, "cut {cut}");
        assert_eq!(fs::metadata(&torn).unwrap().len(), ends[1]);
    }
    let mut store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), expected(&commits));
}

#[test]
fn damage_followed_by_valid_commits_is_corrupt_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let commits: Vec<Vec<Lease>> = (0..5)
        .map(|c| vec![lease(c, 1), lease(100, c as u64)])
        .collect();
    let ends = write_commits(&path, &commits);
    let original = fs::read(&path).unwrap();
    // A byte in the payload, in the checksum, and in the length of the third commit.
    for (what, at) in [
        ("payload", ends[2] as usize + 40),
        ("crc", ends[2] as usize + 9),
        ("len", ends[2] as usize + 1),
    ] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x20;
        fs::write(&path, &bytes).unwrap();
        match EmbeddedStore::open(&path) {
            Err(StoreError::Corrupt { offset, .. }) => assert_eq!(offset, ends[2], "{what}"),
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), bytes, "{what}: nothing dropped");
        assert!(matches!(
            EmbeddedStore::read_only(&path),
            Err(StoreError::Corrupt { .. })
        ));
    }
}

#[test]
fn damage_in_the_last_commit_alone_is_treated_as_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let commits = vec![vec![lease(1, 1)], vec![lease(2, 1)], vec![lease(3, 1)]];
    let ends = write_commits(&path, &commits);
    let mut bytes = fs::read(&path).unwrap();
    bytes[ends[2] as usize + 30] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let mut store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), expected(&commits[..2]));
}

#[test]
fn foreign_or_newer_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    fs::write(&path, b"lease 10.0.0.1 { starts 4 2024/01/01; }\n").unwrap();
    assert!(matches!(
        EmbeddedStore::open(&path),
        Err(StoreError::Corrupt { offset: 0, .. })
    ));

    write_commits(&journal(&dir).with_extension("v1"), &[vec![lease(1, 1)]]);
    let mut bytes = fs::read(journal(&dir).with_extension("v1")).unwrap();
    bytes[8] = 2;
    fs::write(&path, &bytes).unwrap();
    match EmbeddedStore::open(&path) {
        Err(e @ StoreError::Corrupt { offset: 8, .. }) => {
            assert!(e.to_string().contains("version 2"), "{e}")
        }
        other => panic!("expected Corrupt at 8, got {other:?}"),
    }
}

#[test]
fn an_interrupted_creation_is_started_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    for content in [&b""[..], b"LEASE", &[0u8; 10], &[0u8; 4096]] {
        fs::write(&path, content).unwrap();
        assert!(EmbeddedStore::read_only(&path).unwrap().is_empty());
        let mut store = EmbeddedStore::open(&path).unwrap();
        assert!(store.load().unwrap().is_empty());
        store.commit(&[lease(1, 1)]).unwrap();
        drop(store);
        assert_eq!(EmbeddedStore::read_only(&path).unwrap(), vec![lease(1, 1)]);
        fs::remove_file(&path).unwrap();
    }
}

#[test]
fn compaction_keeps_exactly_the_live_set_and_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let mut store = EmbeddedStore::open(&path).unwrap();
    let mut all = vec![];
    for round in 0..20u64 {
        let batch: Vec<Lease> = (0..100).map(|n| lease(n, round)).collect();
        store.commit(&batch).unwrap();
        all.push(batch);
    }
    let mut offered = lease(500, 1);
    offered.state = LeaseState::Offered;
    let mut released = lease(501, 1);
    released.state = LeaseState::Released;
    store.commit(&[offered, released.clone()]).unwrap();
    all.push(vec![released]);
    assert_eq!(store.journal_records(), 2002);
    let before = fs::metadata(&path).unwrap().len();

    store.compact().unwrap();
    let after = fs::metadata(&path).unwrap().len();
    assert!(after * 10 < before, "{before} -> {after}");
    assert_eq!(store.journal_records(), 101);
    assert_eq!(store.journal_bytes(), after);
    let want = expected(&all);
    assert_eq!(
        store.load().unwrap(),
        want,
        "Offered dropped, everything else kept"
    );
    assert!(!tmp_of(&path).exists());

    // Appends go to the new file, and a reopen sees snapshot + appends.
    store.commit(&[lease(3, 99)]).unwrap();
    drop(store);
    all.push(vec![lease(3, 99)]);
    let mut store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), expected(&all));
    assert_eq!(store.journal_records(), 102);
}

#[test]
fn commit_compacts_automatically_past_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let mut store = EmbeddedStore::open(&path).unwrap();
    store.set_compact_floor(200);
    let mut all = vec![];
    let mut max_bytes = 0;
    for round in 0..100u64 {
        let batch: Vec<Lease> = (0..10).map(|n| lease(n, round)).collect();
        store.commit(&batch).unwrap();
        all.push(batch);
        // Bound: at most max(4 × 10, 200) records, plus the commit that crossed it.
        assert!(
            store.journal_records() <= 210,
            "{}",
            store.journal_records()
        );
        max_bytes = max_bytes.max(store.journal_bytes());
    }
    assert!(max_bytes < 60_000, "file stays bounded: {max_bytes}");
    assert_eq!(store.load().unwrap(), expected(&all));
    drop(store);
    let mut store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), expected(&all));
}

#[test]
fn a_stale_compaction_file_is_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let commits = vec![vec![lease(1, 1), lease(2, 1)], vec![lease(1, 2)]];
    write_commits(&path, &commits);
    let tmp = tmp_of(&path);

    // A crash after writing the snapshot but before the rename: a complete, newer-looking
    // .tmp next to the intact journal. The journal is the truth.
    let other = dir.path().join("other.journal");
    write_commits(&other, &[vec![lease(7, 7)]]);
    fs::copy(&other, &tmp).unwrap();
    assert_eq!(
        EmbeddedStore::read_only(&path).unwrap(),
        expected(&commits),
        "read_only leaves the .tmp alone"
    );
    assert!(tmp.exists());
    let mut store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), expected(&commits));
    assert!(!tmp.exists());
    drop(store);

    // A crash halfway through writing it: garbage.
    fs::write(&tmp, b"LEASEDJ\n\x01\0\0\0\0\0\0\0\x10\0\0").unwrap();
    let mut store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), expected(&commits));
    assert!(!tmp.exists());
}

#[test]
fn a_second_open_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let mut first = EmbeddedStore::open(&path).unwrap();
    assert!(matches!(
        EmbeddedStore::open(&path),
        Err(StoreError::Locked { .. })
    ));
    // Still locked after compaction replaced the file under the path.
    first.commit(&[lease(1, 1)]).unwrap();
    first.compact().unwrap();
    assert!(matches!(
        EmbeddedStore::open(&path),
        Err(StoreError::Locked { .. })
    ));
    drop(first);
    let mut second = EmbeddedStore::open(&path).unwrap();
    assert_eq!(second.load().unwrap(), vec![lease(1, 1)]);
}

#[test]
fn read_only_works_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let mut store = EmbeddedStore::open(&path).unwrap();
    store.commit(&[lease(1, 1)]).unwrap();
    assert_eq!(EmbeddedStore::read_only(&path).unwrap(), vec![lease(1, 1)]);
    store.commit(&[lease(2, 1)]).unwrap();
    store.compact().unwrap();
    store.commit(&[lease(1, 2)]).unwrap();
    assert_eq!(
        EmbeddedStore::read_only(&path).unwrap(),
        vec![lease(1, 2), lease(2, 1)]
    );
}

#[test]
fn read_only_of_a_missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    match EmbeddedStore::read_only(&journal(&dir)) {
        Err(StoreError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!journal(&dir).exists(), "read_only creates nothing");
}

/// The journal holds every subscriber's MAC and host name: owner-only from its creation, after
/// every compaction (the snapshot file becomes the journal), and an existing journal left
/// readable by others is narrowed. With a group of readers configured: 0640.
#[test]
fn journal_and_its_compacted_replacement_are_private() {
    use leased_store::{FileMode, mode_of};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let path = journal(&dir);
    let mut store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(mode_of(&path).unwrap(), 0o600, "created");
    store.set_compact_floor(10);
    let ino = fs::metadata(&path).unwrap().ino();
    for round in 0..10u64 {
        store.commit(&[lease(1, round), lease(2, round)]).unwrap();
    }
    assert_ne!(
        fs::metadata(&path).unwrap().ino(),
        ino,
        "compacted into a new file"
    );
    assert_eq!(mode_of(&path).unwrap(), 0o600, "after compaction");
    store.compact().unwrap();
    assert_eq!(
        mode_of(&path).unwrap(),
        0o600,
        "after an explicit compaction"
    );
    drop(store);

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    drop(EmbeddedStore::open(&path).unwrap());
    assert_eq!(
        mode_of(&path).unwrap(),
        0o600,
        "an existing 0644 journal is narrowed"
    );

    let mut store = EmbeddedStore::open_with_mode(&path, FileMode::GROUP_READ).unwrap();
    assert_eq!(mode_of(&path).unwrap(), 0o640);
    store.compact().unwrap();
    assert_eq!(
        mode_of(&path).unwrap(),
        0o640,
        "the group mode survives compaction"
    );
    assert_eq!(store.load().unwrap(), vec![lease(1, 9), lease(2, 9)]);
}
