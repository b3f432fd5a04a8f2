//! Whole-store snapshots: what a leader sends a follower that fell behind its
//! compacted raft log, and what `Maintenance.Snapshot` streams to a client.
//!
//! A snapshot is a complete redb database file, like etcd's bolt file: every
//! table (rows, the store's counters, the server's metadata) as of one
//! committed state. [`Store::export_snapshot`] writes it from a read
//! transaction, so the apply loop keeps committing while it is built;
//! [`Store::install_snapshot`] replaces the store's contents with one.
//!
//! Invariants:
//! - An exported file holds exactly one committed state, and its
//!   `consistent_index` is the raft index that state includes: at least every
//!   index the backend had reported durable before the export began.
//! - An install is one durable redb write transaction under the writer lock,
//!   with the index write lock held from before that commit until the
//!   rebuilt index, revisions and counters are published: a crash keeps the
//!   old or the new contents, and no reader pairs the new rows with the old
//!   index. A read whose view straddles an install (old revision, new index)
//!   may fail; `Store::range` notices the install and reads again.
//!
//! Caveats:
//! - Install copies rows into the existing file rather than renaming the
//!   received file over it: every `Arc<Store>` (readers, the watch hub, the
//!   compactor) keeps working without being reopened, at the cost of writing
//!   the data once more.
//! - Readers wait while an install copies the rows in and rebuilds the
//!   index (two passes over every row).

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::store::{Loaded, Store, load_index};

/// What a snapshot file holds, as its counters say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The raft index of the last entry the snapshot includes.
    pub consistent_index: u64,
    /// The raft term of that entry.
    pub consistent_term: u64,
    /// The newest revision in the snapshot.
    pub revision: i64,
    /// Its compaction revision.
    pub compact_revision: i64,
}

impl Store {
    /// Writes a consistent copy of the whole store to a new file at `path`
    /// (which must not exist). Does not block writers.
    pub fn export_snapshot(&self, path: &Path) -> Result<SnapshotInfo> {
        // The revision is read first: the copy holds at least that much.
        let revision = self.current_revision();
        let meta = self.shared.backend.export_to(path)?;
        Ok(SnapshotInfo {
            consistent_index: meta.consistent_index,
            consistent_term: meta.consistent_term,
            revision,
            compact_revision: meta.scheduled_compact,
        })
    }

    /// Replaces the whole store with the snapshot file at `path` (as written
    /// by [`Store::export_snapshot`]), durably, and rebuilds the index. The
    /// server metadata keys in `keep_meta` (this member's own identity, which
    /// the sender's copy holds for the sender) keep their current values, in
    /// the same transaction. Waits for the writer lock, so it must not be
    /// called while this thread holds a [`WriteBatch`](crate::WriteBatch).
    pub fn install_snapshot(&self, path: &Path, keep_meta: &[&[u8]]) -> Result<SnapshotInfo> {
        let shared = &self.shared;
        let _gate = shared.backend.maintenance_gate();
        let _writer = shared.writer.acquire();
        let mut index = shared.index.write();
        let meta = shared.backend.replace_from(path, keep_meta)?;
        let Loaded {
            index: rebuilt,
            current,
            live_bytes,
        } = load_index(&shared.backend, &meta)?;
        *index = rebuilt;
        shared
            .compact_rev
            .store(meta.scheduled_compact, Ordering::Release);
        shared.current_rev.store(current, Ordering::Release);
        shared
            .consistent_term
            .store(meta.consistent_term, Ordering::Release);
        shared
            .consistent_index
            .store(meta.consistent_index, Ordering::Release);
        shared.live_bytes.store(live_bytes, Ordering::Relaxed);
        shared.installs.fetch_add(1, Ordering::AcqRel);
        drop(index);
        if meta.scheduled_compact > meta.finished_compact {
            shared.compaction.schedule(meta.scheduled_compact);
        }
        tracing::info!(
            revision = current,
            compact_revision = meta.scheduled_compact,
            consistent_index = meta.consistent_index,
            "installed mvcc snapshot"
        );
        Ok(SnapshotInfo {
            consistent_index: meta.consistent_index,
            consistent_term: meta.consistent_term,
            revision: current,
            compact_revision: meta.scheduled_compact,
        })
    }

    /// Where the backend file lives.
    pub fn db_path(&self) -> &Path {
        self.shared.backend.path()
    }
}

#[cfg(test)]
mod tests {
    use retcd_api::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};

    use super::*;
    use crate::WriteBatch;

    fn put(b: &mut WriteBatch<'_>, key: &str, value: &str) {
        let req = PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        b.put(&req, &|_| false).unwrap();
    }

    /// A key, its value, create and mod revisions, and version.
    type Row = (Vec<u8>, Vec<u8>, i64, i64, i64);

    /// Every key with its value and revisions, as a range over everything at `rev`.
    fn dump(store: &Store, rev: i64) -> Vec<Row> {
        let req = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: rev,
            ..Default::default()
        };
        store
            .range(&req)
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| {
                (
                    kv.key,
                    kv.value,
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                )
            })
            .collect()
    }

    #[test]
    fn export_then_install_reproduces_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let leader = Store::open(&dir.path().join("leader.db")).unwrap();
        let mut b = leader.write().unwrap();
        for i in 0..200 {
            put(&mut b, &format!("k{}", i % 50), &format!("v{i}"));
        }
        b.delete_range(&DeleteRangeRequest {
            key: b"k7".to_vec(),
            ..Default::default()
        })
        .unwrap();
        b.meta_put(b"members", b"abc");
        b.set_consistent_index(42, 3);
        b.commit(true).unwrap();
        let mut b = leader.write().unwrap();
        b.compact(100).unwrap();
        b.set_consistent_index(43, 3);
        b.commit(true).unwrap();

        let file = dir.path().join("snapshot.db");
        let exported = leader.export_snapshot(&file).unwrap();
        assert_eq!(exported.consistent_index, 43);
        assert_eq!(exported.revision, leader.current_revision());

        // The follower has an older, shorter history of its own.
        let follower = Store::open(&dir.path().join("follower.db")).unwrap();
        let mut b = follower.write().unwrap();
        put(&mut b, "k1", "old");
        put(&mut b, "gone", "x");
        b.meta_put(b"stale", b"1");
        b.meta_put(b"local", b"follower");
        b.set_consistent_index(5, 2);
        b.commit(true).unwrap();

        let installed = follower
            .install_snapshot(&file, &[b"local", b"absent"])
            .unwrap();
        assert_eq!(installed, exported);
        assert_eq!(follower.consistent_index(), 43);
        assert_eq!(follower.consistent_term(), 3);
        assert_eq!(follower.current_revision(), leader.current_revision());
        assert_eq!(follower.compact_revision(), 100);
        assert_eq!(dump(&follower, 0), dump(&leader, 0));
        assert_eq!(dump(&follower, 150), dump(&leader, 150));
        assert!(
            follower
                .range(&RangeRequest {
                    key: b"k1".to_vec(),
                    revision: 50,
                    ..Default::default()
                })
                .is_err()
        );
        assert_eq!(
            follower.meta_get(b"members").unwrap(),
            Some(b"abc".to_vec())
        );
        assert_eq!(follower.meta_get(b"stale").unwrap(), None);
        assert_eq!(
            follower.meta_get(b"local").unwrap(),
            Some(b"follower".to_vec())
        );
        assert_eq!(follower.meta_get(b"absent").unwrap(), None);
        leader.wait_compaction_done(100);
        follower.wait_compaction_done(100);
        assert_eq!(follower.hash_kv(0).unwrap(), leader.hash_kv(0).unwrap());

        // Writes continue after the installed revision, and it all survives a reopen.
        let mut b = follower.write().unwrap();
        put(&mut b, "after", "1");
        b.set_consistent_index(44, 3);
        b.commit(true).unwrap();
        let next = leader.current_revision() + 1;
        let path = follower.db_path().to_path_buf();
        drop(follower);
        let reopened = Store::open(&path).unwrap();
        assert_eq!(reopened.current_revision(), next);
        assert_eq!(reopened.consistent_index(), 44);
        let mut expected = dump(&leader, 0);
        expected.insert(0, (b"after".to_vec(), b"1".to_vec(), next, next, 1));
        assert_eq!(dump(&reopened, 0), expected);
    }

    #[test]
    fn a_file_that_is_no_database_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let mut b = store.write().unwrap();
        put(&mut b, "a", "1");
        b.set_consistent_index(7, 1);
        b.commit(true).unwrap();
        let bogus = dir.path().join("bogus.db");
        std::fs::write(&bogus, vec![0x5a; 10_000]).unwrap();
        assert!(store.install_snapshot(&bogus, &[]).is_err());
        assert_eq!(store.consistent_index(), 7);
        assert_eq!(dump(&store, 0).len(), 1);
        // The store still takes writes.
        let mut b = store.write().unwrap();
        put(&mut b, "b", "2");
        b.commit(false).unwrap();
        assert_eq!(dump(&store, 0).len(), 2);
    }

    #[test]
    fn reads_at_the_current_revision_never_fail_across_installs() {
        let dir = tempfile::tempdir().unwrap();
        let source = Store::open(&dir.path().join("source.db")).unwrap();
        let mut files = Vec::new();
        for (round, compact) in [(0, 50), (1, 150)] {
            let mut b = source.write().unwrap();
            for i in 0..100 {
                put(&mut b, &format!("k{}", i % 10), &format!("{round}-{i}"));
            }
            b.compact(compact).unwrap();
            b.set_consistent_index(round + 1, 1);
            b.commit(true).unwrap();
            let file = dir.path().join(format!("export{round}.db"));
            source.export_snapshot(&file).unwrap();
            files.push(file);
        }
        let store = std::sync::Arc::new(Store::open(&dir.path().join("db")).unwrap());
        store.install_snapshot(&files[0], &[]).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut reads = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let req = RangeRequest {
                            key: b"k".to_vec(),
                            range_end: b"l".to_vec(),
                            ..Default::default()
                        };
                        let resp = store.range(&req).unwrap();
                        assert_eq!(resp.kvs.len(), 10);
                        // One snapshot's state whole: its revision, its values.
                        let round = match resp.header.unwrap().revision {
                            101 => "0-",
                            201 => "1-",
                            other => panic!("revision {other} is neither snapshot's"),
                        };
                        for kv in &resp.kvs {
                            assert!(kv.value.starts_with(round.as_bytes()), "{kv:?} at {round}");
                        }
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for i in 0..40 {
            store.install_snapshot(&files[(i + 1) % 2], &[]).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
    }
}
