//! Defragmentation: the file shrinks to what is in use, and nothing a reader
//! or a writer sees changes, before, during or after; writes made while the
//! copy is written are in it once it takes the file's place.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use retcd_api::etcdserverpb::{PutRequest, RangeRequest};

use crate::Store;

/// Bytes in each value: big enough that a few hundred overwrites leave
/// megabytes of free pages behind a compaction.
const VALUE_BYTES: usize = 20_000;

/// Puts `count` values of [`VALUE_BYTES`] over `keys` keys, one batch each,
/// durably; returns the last revision.
fn overwrite(store: &Store, keys: usize, count: usize, tag: &str) -> i64 {
    for i in 0..count {
        let mut b = store.write().unwrap();
        let req = PutRequest {
            key: format!("key{}", i % keys).into_bytes(),
            value: format!("{tag}{i}:").repeat(VALUE_BYTES / 8).into_bytes(),
            ..Default::default()
        };
        b.put(&req, &|_| false).unwrap();
        b.commit(true).unwrap();
    }
    store.current_revision()
}

/// Every key with its value, mod revision and version at `rev` (0: now).
fn dump(store: &Store, rev: i64) -> Vec<(Vec<u8>, Vec<u8>, i64, i64)> {
    let req = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision: rev,
        ..Default::default()
    };
    let kvs = store.range(&req).unwrap().kvs;
    kvs.into_iter()
        .map(|kv| (kv.key, kv.value, kv.mod_revision, kv.version))
        .collect()
}

/// A store whose history of big overwrites is compacted away.
fn compacted_store(path: &Path) -> Store {
    let store = Store::open(path).unwrap();
    let rev = overwrite(&store, 10, 300, "v");
    let mut b = store.write().unwrap();
    b.compact(rev).unwrap();
    b.commit(true).unwrap();
    store.wait_compaction_done(rev);
    store.sync().unwrap();
    store
}

#[test]
fn defragment_gives_back_what_compaction_freed_and_changes_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = compacted_store(&path);
    let before_size = store.db_size_bytes();
    let before = dump(&store, 0);
    let before_hash = store.hash_kv(0).unwrap();
    assert_eq!(before.len(), 10);
    assert!(
        before_size > 3 * (10 * VALUE_BYTES) as u64,
        "300 overwrites of 20 kB left only {before_size} bytes"
    );

    store.defragment().unwrap();

    let after_size = store.db_size_bytes();
    assert!(after_size <= std::fs::metadata(&path).unwrap().len());
    assert!(
        after_size * 3 < before_size,
        "defragment kept {after_size} of {before_size} bytes for 10 live values"
    );
    assert_eq!(dump(&store, 0), before);
    assert_eq!(store.hash_kv(0).unwrap(), before_hash);

    // Writes go on after it, and everything survives a reopen.
    let rev = overwrite(&store, 12, 12, "w");
    let expected = dump(&store, 0);
    assert_eq!(expected.len(), 12);
    drop(store);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.current_revision(), rev);
    assert_eq!(dump(&reopened, 0), expected);
    assert_eq!(reopened.hash_kv(0).unwrap().1, before_hash.1);
}

#[test]
fn writes_during_the_copy_land_in_the_defragmented_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = compacted_store(&path);
    let before = store.db_size_bytes();
    let compacted_at = store.current_revision();
    let mut during = 0;
    store
        .defragment_with(|| {
            // Writers are not stopped yet: puts, a delete and a compaction
            // request all go through, and a read sees them.
            during = overwrite(&store, 10, 5, "during");
            let mut b = store.write().unwrap();
            b.delete_range(&retcd_api::etcdserverpb::DeleteRangeRequest {
                key: b"key9".to_vec(),
                ..Default::default()
            })
            .unwrap();
            b.meta_put(b"member", b"written during the copy");
            b.set_consistent_index(777, 3);
            b.commit(false).unwrap();
            assert_eq!(dump(&store, 0).len(), 9);
        })
        .unwrap();
    assert!(
        store.db_size_bytes() * 3 < before,
        "{} of {before} bytes kept",
        store.db_size_bytes()
    );
    let expected = dump(&store, 0);
    assert_eq!(expected.len(), 9);
    assert!(expected.iter().any(|(_, v, _, _)| v.starts_with(b"during")));
    let history = dump(&store, compacted_at);
    assert_eq!(
        history.len(),
        10,
        "the state at the compaction stays readable"
    );
    assert_eq!(store.current_revision(), during + 1);
    assert!(
        !path.with_extension("defrag").exists(),
        "the copy took the file's place"
    );

    drop(store);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(dump(&reopened, 0), expected);
    assert_eq!(dump(&reopened, compacted_at), history);
    assert_eq!(reopened.consistent_index(), 777);
    assert_eq!(
        reopened.meta_get(b"member").unwrap().as_deref(),
        Some(&b"written during the copy"[..])
    );
}

#[test]
fn a_copy_left_by_a_crash_is_removed_at_open_and_the_original_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path).unwrap();
    overwrite(&store, 3, 3, "v");
    let expected = dump(&store, 0);
    drop(store);
    let leftover = path.with_extension("defrag");
    std::fs::write(&leftover, b"half a copy").unwrap();
    let reopened = Store::open(&path).unwrap();
    assert!(!leftover.exists());
    assert_eq!(dump(&reopened, 0), expected);
    // And a defragmentation starts from scratch over one.
    drop(reopened);
    std::fs::write(&leftover, b"half a copy").unwrap();
    let reopened = Store::open(&path).unwrap();
    std::fs::write(&leftover, b"another half").unwrap();
    reopened.defragment().unwrap();
    assert!(!leftover.exists());
    assert_eq!(dump(&reopened, 0), expected);
}

/// redb doubles its file ahead of need; the size etcd reports (and the quota
/// counts) is what is written, so it must not jump with the file.
#[test]
fn the_size_follows_the_written_pages_not_the_files_growth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path).unwrap();
    let mut largest_gap = 0.0f64;
    for i in 0..3000 {
        let mut b = store.write().unwrap();
        let req = PutRequest {
            key: format!("key{i}").into_bytes(),
            value: vec![b'v'; 1000],
            ..Default::default()
        };
        b.put(&req, &|_| false).unwrap();
        b.commit(true).unwrap();
        store.sync().unwrap();
        let (size, len) = (
            store.db_size_bytes(),
            std::fs::metadata(&path).unwrap().len(),
        );
        assert!(size <= len, "size {size} beyond the file's {len} bytes");
        let data = (i + 1) * 1000;
        assert!(
            size >= data && size <= 2 * data + (1 << 20),
            "{} values of 1000 bytes in {size} bytes",
            i + 1
        );
        largest_gap = largest_gap.max(len as f64 / size as f64);
    }
    assert!(
        largest_gap > 1.5,
        "the file never grew ahead of the data (largest length/size {largest_gap})"
    );
}

#[test]
fn readers_and_a_writer_during_defragment_see_consistent_states() {
    let dir = tempfile::tempdir().unwrap();
    let store = compacted_store(&dir.path().join("db"));
    let base = store.current_revision();
    let at_base = dump(&store, base);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut reads = 0;
                while !done.load(Ordering::Acquire) || reads == 0 {
                    // The state at `base` never changes; the newest state
                    // always has a value for each of the ten keys.
                    assert_eq!(dump(&store, base), at_base);
                    assert_eq!(dump(&store, 0).len(), 10);
                    reads += 1;
                }
            });
        }
        let writer = s.spawn(|| overwrite(&store, 10, 40, "x"));
        store.defragment().unwrap();
        let last = writer.join().unwrap();
        done.store(true, Ordering::Release);
        assert_eq!(last, base + 40);
    });
    let now = dump(&store, 0);
    assert_eq!(now.len(), 10);
    assert!(now.iter().all(|(_, value, _, _)| value.starts_with(b"x")));
}
