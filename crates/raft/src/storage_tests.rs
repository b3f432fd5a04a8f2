//! Tests of the raft-engine storage: bootstrap, append/overwrite, compaction,
//! snapshot install, conf-state history, each across a reopen; and the entry
//! cache agreeing with raft-engine through each of them.

use protobuf::Message as _;
use raft::Storage as _;
use raft::eraftpb::ConfState;

use crate::entry_cache;

use super::*;

struct FixedData;

impl SnapshotSource for FixedData {
    fn snapshot_data(&self, min_index: u64) -> Option<(u64, bytes::Bytes)> {
        Some((min_index, bytes::Bytes::from_static(b"backend")))
    }
}

/// A source whose copy is never ready.
struct NotReady;

impl SnapshotSource for NotReady {
    fn snapshot_data(&self, _min_index: u64) -> Option<(u64, bytes::Bytes)> {
        None
    }
}

fn open(dir: &Path, voters: &[u64]) -> LogStorage {
    LogStorage::open(dir, voters, Arc::new(FixedData)).unwrap()
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("e{index}t{term}").into_bytes().into(),
        ..Default::default()
    }
}

/// Appends entries `range` with `term` and commits them.
fn append(s: &mut LogStorage, range: std::ops::RangeInclusive<u64>, term: u64) {
    let entries: Vec<Entry> = range.map(|i| entry(i, term)).collect();
    let mut batch = LogBatch::default();
    s.stage_entries(&mut batch, &entries).unwrap();
    let mut hs = s.hard_state().clone();
    hs.term = hs.term.max(term);
    hs.commit = entries.last().unwrap().index;
    s.set_hard_state(hs);
    s.stage_hard_state(&mut batch).unwrap();
    s.write(&mut batch, true).unwrap();
}

fn fetch(s: &LogStorage, low: u64, high: u64) -> raft::Result<Vec<Entry>> {
    s.entries(low, high, None, GetEntriesContext::empty(false))
}

fn learner_conf(voters: &[u64], learners: &[u64]) -> ConfState {
    ConfState {
        voters: voters.to_vec(),
        learners: learners.to_vec(),
        ..Default::default()
    }
}

#[test]
fn bootstrap_writes_snapshot_point_one_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    for voters in [&[1, 2, 3][..], &[9][..]] {
        let s = open(dir.path(), voters);
        let state = s.initial_state().unwrap();
        assert_eq!(state.hard_state.commit, 1);
        assert_eq!(state.hard_state.term, 1);
        assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
        assert_eq!(s.first_index().unwrap(), 2);
        assert_eq!(s.last_index().unwrap(), 1);
        assert_eq!(s.term(1).unwrap(), 1);
        assert_eq!(fetch(&s, 2, 2).unwrap(), vec![]);
    }
}

#[test]
fn fresh_log_without_voters_starts_empty_to_join() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let s = open(dir.path(), &[]);
        let state = s.initial_state().unwrap();
        assert_eq!(state.hard_state, HardState::default());
        assert_eq!(state.conf_state, ConfState::default());
        assert_eq!(s.snapshot_point().index, 0);
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
        assert_eq!(s.term(0).unwrap(), 0);
    }
}

#[test]
fn appended_entries_read_back_and_conflicting_suffix_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), &[1]);
        append(&mut s, 2..=10, 1);
        assert_eq!(fetch(&s, 2, 11).unwrap().len(), 9);
        assert_eq!(s.term(10).unwrap(), 1);
        // A new leader overwrites 6.. with its own term (commit stays at 5).
        let mut batch = LogBatch::default();
        s.stage_entries(&mut batch, &[entry(6, 2), entry(7, 2)])
            .unwrap();
        let mut hs = s.hard_state().clone();
        hs.commit = 5;
        s.set_hard_state(hs);
        s.stage_hard_state(&mut batch).unwrap();
        s.write(&mut batch, true).unwrap();
        assert_eq!(s.last_index().unwrap(), 7);
        assert_eq!((s.term(5).unwrap(), s.term(6).unwrap()), (1, 2));
        assert!(matches!(
            s.term(8),
            Err(raft::Error::Store(StorageError::Unavailable))
        ));
    }
    let s = open(dir.path(), &[]);
    assert_eq!(s.last_index().unwrap(), 7);
    assert_eq!((s.term(5).unwrap(), s.term(7).unwrap()), (1, 2));
    let entries = fetch(&s, 2, 8).unwrap();
    assert_eq!(entries.last().unwrap(), &entry(7, 2));
    assert_eq!(entries.len(), 6);
}

#[test]
fn max_size_limits_fetch_but_returns_at_least_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), &[1]);
    append(&mut s, 2..=10, 1);
    assert_eq!(
        s.entries(2, 11, 1, GetEntriesContext::empty(false))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn compaction_moves_snapshot_point_and_keeps_a_margin() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), &[1]);
        append(&mut s, 2..=100, 3);
        assert!(s.compact(50, 10).unwrap());
        assert!(!s.compact(50, 10).unwrap(), "not past the current point");
        assert_eq!(s.snapshot_point().index, 50);
        assert_eq!(s.snapshot_point().term, 3);
        assert_eq!(s.first_index().unwrap(), 41);
        assert_eq!(s.term(40).unwrap(), 3);
        assert!(matches!(
            fetch(&s, 40, 42),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(fetch(&s, 41, 101).unwrap().len(), 60);
        assert!(s.compact(101, 10).is_err(), "beyond the log");
    }
    let s = open(dir.path(), &[]);
    assert_eq!(
        (s.first_index().unwrap(), s.last_index().unwrap()),
        (41, 100)
    );
    assert_eq!(s.snapshot_point().index, 50);
    let snap = s.snapshot(50, 2).unwrap();
    assert_eq!(snap.get_metadata().index, 50);
    assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1]);
    assert_eq!(&snap.data[..], b"backend");
    // A later request gets a snapshot at the later index the copy holds.
    let snap = s.snapshot(60, 2).unwrap();
    assert_eq!(
        (snap.get_metadata().index, snap.get_metadata().term),
        (60, 3)
    );
    drop(s);
    let s = LogStorage::open(dir.path(), &[], Arc::new(NotReady)).unwrap();
    assert!(matches!(
        s.snapshot(50, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
}

#[test]
fn received_snapshot_replaces_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), &[1, 2]);
        append(&mut s, 2..=10, 1);
        s.record_conf_state(8, learner_conf(&[1, 2], &[3])).unwrap();
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 200;
        snap.mut_metadata().term = 4;
        snap.mut_metadata()
            .set_conf_state(learner_conf(&[1, 2, 3], &[]));
        let mut batch = LogBatch::default();
        s.stage_snapshot(&mut batch, &snap).unwrap();
        s.stage_hard_state(&mut batch).unwrap();
        s.write(&mut batch, true).unwrap();
        assert_eq!(
            (s.first_index().unwrap(), s.last_index().unwrap()),
            (201, 200)
        );
        assert_eq!(s.term(200).unwrap(), 4);
        assert_eq!(s.conf_state().voters, vec![1, 2, 3]);
        append(&mut s, 201..=205, 4);
    }
    let s = open(dir.path(), &[]);
    assert_eq!(
        (s.first_index().unwrap(), s.last_index().unwrap()),
        (201, 205)
    );
    assert_eq!(s.hard_state().commit, 205);
    assert_eq!(s.conf_state().voters, vec![1, 2, 3]);
    assert_eq!(fetch(&s, 201, 206).unwrap().len(), 5);
}

#[test]
fn conf_history_rewinds_to_applied_and_folds_into_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let with_learner = learner_conf(&[1], &[2]);
    let promoted = learner_conf(&[1, 2], &[]);
    {
        let mut s = open(dir.path(), &[1]);
        append(&mut s, 2..=20, 2);
        s.record_conf_state(5, with_learner.clone()).unwrap();
        s.record_conf_state(9, promoted.clone()).unwrap();
        assert_eq!(s.conf_state(), &promoted);
    }
    {
        // The backend only had index 7: the change at 9 is redelivered later.
        let mut s = open(dir.path(), &[]);
        assert_eq!(s.conf_state(), &promoted);
        s.rewind_conf_history(7).unwrap();
        assert_eq!(s.initial_state().unwrap().conf_state, with_learner);
    }
    let mut s = open(dir.path(), &[]);
    assert_eq!(s.conf_state(), &with_learner);
    s.record_conf_state(9, promoted.clone()).unwrap();
    assert!(s.compact(7, 0).unwrap());
    assert_eq!(s.snapshot_point().get_conf_state(), &with_learner);
    assert_eq!(s.conf_state(), &promoted, "change above the point kept");
    assert!(s.compact(12, 0).unwrap());
    assert_eq!(s.snapshot_point().get_conf_state(), &promoted);
    drop(s);
    let s = open(dir.path(), &[]);
    assert_eq!(s.conf_state(), &promoted);
    assert_eq!(s.first_index().unwrap(), 13);
}

#[test]
fn term_runs_follow_appends_and_overwrites() {
    let mut runs = TermRuns::default();
    runs.append(&[entry(5, 1), entry(6, 1), entry(7, 2)]);
    assert_eq!(
        (runs.term(4), runs.term(6), runs.term(7), runs.term(8)),
        (None, Some(1), Some(2), None)
    );
    runs.append(&[entry(7, 3), entry(8, 3)]);
    assert_eq!(
        (runs.term(6), runs.term(7), runs.term(8)),
        (Some(1), Some(3), Some(3))
    );
    runs.forget_below(7);
    assert_eq!((runs.term(6), runs.term(7)), (None, Some(3)));
    runs.append(&[entry(20, 4)]);
    assert_eq!(
        (runs.term(8), runs.term(20)),
        (None, Some(4)),
        "a gap starts over"
    );
}

/// Asserts the entry cache is a tail of the log holding exactly what raft-engine
/// holds for those indexes, and returns the cached range.
fn assert_cache_agrees(s: &LogStorage) -> Option<(u64, u64)> {
    let (first, last) = s.cache.range()?;
    assert!(
        first >= s.first_index_inner(),
        "cache starts at {first}, below the log's first index {}",
        s.first_index_inner()
    );
    assert_eq!(
        last,
        s.last_index_inner(),
        "cache must end at the log's end"
    );
    let cached = s.cache.entries(first, last + 1, None).unwrap();
    let mut stored = Vec::new();
    s.engine
        .fetch_entries_to::<EntryCodec>(REGION_ID, first, last + 1, None, &mut stored)
        .unwrap();
    assert_eq!(cached, stored, "cache and raft-engine disagree");
    assert!(s.cache.len() <= entry_cache::MAX_CACHED_ENTRIES);
    assert!(s.cache.bytes() <= entry_cache::MAX_CACHED_BYTES);
    Some((first, last))
}

/// An entry at `index` with `term` carrying `len` bytes of data.
fn sized_entry(index: u64, term: u64, len: usize) -> Entry {
    Entry {
        index,
        term,
        data: vec![(index % 251) as u8; len].into(),
        ..Default::default()
    }
}

/// Writes `entries` over the log's tail, as a follower does for a new leader,
/// with the commit index at `commit` (below the first overwritten entry).
fn overwrite(s: &mut LogStorage, entries: &[Entry], commit: u64) {
    let mut batch = LogBatch::default();
    s.stage_entries(&mut batch, entries).unwrap();
    let mut hs = s.hard_state().clone();
    hs.commit = commit;
    s.set_hard_state(hs);
    s.stage_hard_state(&mut batch).unwrap();
    s.write(&mut batch, true).unwrap();
}

#[test]
fn cache_holds_appended_tail_and_follows_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), &[1]);
    assert_eq!(assert_cache_agrees(&s), None, "nothing appended yet");
    append(&mut s, 2..=10, 1);
    assert_eq!(assert_cache_agrees(&s), Some((2, 10)));
    append(&mut s, 11..=12, 1);
    assert_eq!(assert_cache_agrees(&s), Some((2, 12)));
    // A new leader overwrites 6.. with a shorter tail of its own term.
    overwrite(&mut s, &[entry(6, 2), entry(7, 2)], 5);
    assert_eq!(assert_cache_agrees(&s), Some((2, 7)));
    assert_eq!(
        fetch(&s, 5, 8).unwrap(),
        vec![entry(5, 1), entry(6, 2), entry(7, 2)]
    );
    assert!(matches!(
        fetch(&s, 5, 9),
        Err(raft::Error::Store(StorageError::Unavailable))
    ));
    // Overwriting from the cache's first entry replaces all of it.
    overwrite(&mut s, &[entry(2, 3)], 1);
    assert_eq!(assert_cache_agrees(&s), Some((2, 2)));
    assert_eq!(fetch(&s, 2, 3).unwrap(), vec![entry(2, 3)]);
    // A reopened log starts with an empty cache and reads from raft-engine.
    drop(s);
    let s = open(dir.path(), &[]);
    assert_eq!(assert_cache_agrees(&s), None);
    assert_eq!(fetch(&s, 2, 3).unwrap(), vec![entry(2, 3)]);
}

#[test]
fn cache_limits_fetch_size_like_raft_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), &[1]);
    append(&mut s, 2..=10, 1);
    let all = fetch(&s, 2, 11).unwrap();
    let three = all[..3]
        .iter()
        .map(|e| u64::from(e.compute_size()))
        .sum::<u64>();
    for (max_size, want) in [(0, 1), (1, 1), (three, 3), (three + 1, 3), (u64::MAX, 9)] {
        let got = s
            .entries(2, 11, max_size, GetEntriesContext::empty(false))
            .unwrap();
        let mut limited = all.clone();
        raft::util::limit_size(&mut limited, Some(max_size));
        assert_eq!(got.len(), want, "max_size {max_size}");
        assert_eq!(got, limited, "max_size {max_size}");
    }
}

#[test]
fn cache_drops_what_compaction_removes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), &[1]);
    append(&mut s, 2..=100, 3);
    assert!(s.compact(50, 10).unwrap());
    assert_eq!(assert_cache_agrees(&s), Some((41, 100)));
    assert!(matches!(
        fetch(&s, 40, 42),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    assert!(s.compact(100, 0).unwrap());
    assert_eq!(assert_cache_agrees(&s), None, "everything compacted away");
    append(&mut s, 101..=103, 3);
    assert_eq!(assert_cache_agrees(&s), Some((101, 103)));
}

#[test]
fn cache_is_cleared_by_a_snapshot_install() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), &[1, 2]);
    append(&mut s, 2..=10, 1);
    assert_eq!(assert_cache_agrees(&s), Some((2, 10)));
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = 200;
    snap.mut_metadata().term = 4;
    snap.mut_metadata()
        .set_conf_state(learner_conf(&[1, 2], &[]));
    let mut batch = LogBatch::default();
    s.stage_snapshot(&mut batch, &snap).unwrap();
    s.stage_hard_state(&mut batch).unwrap();
    s.write(&mut batch, true).unwrap();
    assert_eq!(assert_cache_agrees(&s), None);
    assert!(matches!(
        fetch(&s, 5, 6),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    append(&mut s, 201..=205, 4);
    assert_eq!(assert_cache_agrees(&s), Some((201, 205)));
    // A snapshot behind the log's end also replaces the cached tail.
    snap.mut_metadata().index = 203;
    let mut batch = LogBatch::default();
    s.stage_snapshot(&mut batch, &snap).unwrap();
    s.write(&mut batch, true).unwrap();
    assert_eq!(assert_cache_agrees(&s), None);
    append(&mut s, 204..=205, 4);
    assert_eq!(assert_cache_agrees(&s), Some((204, 205)));
    assert_eq!(fetch(&s, 204, 206).unwrap().len(), 2);
}

#[test]
fn cache_evicts_oldest_entries_beyond_its_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), &[1]);
    let count = entry_cache::MAX_CACHED_ENTRIES as u64 + 100;
    append(&mut s, 2..=count + 1, 1);
    let (first, last) = assert_cache_agrees(&s).unwrap();
    assert_eq!(last - first + 1, entry_cache::MAX_CACHED_ENTRIES as u64);
    assert_eq!(first, count + 2 - entry_cache::MAX_CACHED_ENTRIES as u64);
    // Reads below the cache, and across its start, come from raft-engine.
    assert_eq!(fetch(&s, 2, 4).unwrap(), vec![entry(2, 1), entry(3, 1)]);
    let across = fetch(&s, first - 2, first + 2).unwrap();
    assert_eq!(
        across.iter().map(|e| e.index).collect::<Vec<_>>(),
        (first - 2..first + 2).collect::<Vec<_>>()
    );
    // An overwrite starting below the cache replaces the whole cached tail.
    overwrite(&mut s, &[entry(50, 2), entry(51, 2)], 49);
    assert_eq!(assert_cache_agrees(&s), Some((50, 51)));
    assert_eq!(
        fetch(&s, 49, 52).unwrap(),
        vec![entry(49, 1), entry(50, 2), entry(51, 2)]
    );

    // The byte bound: entries of 1 MiB each, more than fit.
    let per_entry = 1 << 20;
    let big: Vec<Entry> = (52..72).map(|i| sized_entry(i, 2, per_entry)).collect();
    overwrite(&mut s, &big, 71);
    let (first, last) = assert_cache_agrees(&s).unwrap();
    assert_eq!(last, 71);
    let max_fit = entry_cache::MAX_CACHED_BYTES / per_entry as u64;
    assert!(
        (2..=max_fit).contains(&(last - first + 1)),
        "{first}..={last} cached"
    );
    assert_eq!(fetch(&s, 52, 72).unwrap(), big);
    // One entry larger than the bound is not cached at all.
    let huge = sized_entry(72, 2, entry_cache::MAX_CACHED_BYTES as usize + 1);
    overwrite(&mut s, std::slice::from_ref(&huge), 72);
    assert_eq!(assert_cache_agrees(&s), None);
    assert_eq!(fetch(&s, 72, 73).unwrap(), vec![huge]);
    append(&mut s, 73..=74, 2);
    assert_eq!(assert_cache_agrees(&s), Some((73, 74)));
}

#[test]
fn a_log_spanning_zero_filled_chunks_reopens_whole() {
    // ~6 MiB of entries: raft-engine reserves (zero-fills) 2 MiB at a time,
    // so the log crosses several reserved chunks and ends inside one.
    let dir = tempfile::tempdir().unwrap();
    // Incompressible data (raft-engine compresses batches).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let entries: Vec<Entry> = (2..3002)
        .map(|i| Entry {
            index: i,
            term: 1,
            data: noise(2048).into(),
            ..Default::default()
        })
        .collect();
    {
        let mut s = open(dir.path(), &[1]);
        for chunk in entries.chunks(64) {
            let mut batch = LogBatch::default();
            s.stage_entries(&mut batch, chunk).unwrap();
            s.write(&mut batch, true).unwrap();
        }
    }
    let s = open(dir.path(), &[1]);
    assert_eq!(s.last_index_inner(), 3001);
    assert_eq!(fetch(&s, 2, 3002).unwrap(), entries);
    let wal_bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum();
    assert!(wal_bytes > 2 * (2 << 20), "{wal_bytes} bytes of log files");
}
