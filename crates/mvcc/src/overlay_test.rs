//! The backend's overlay seen from outside: what readers, restarts,
//! compaction and snapshot exports see while rows are in memory only, in
//! redb only, or moving from one to the other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use retcd_api::etcdserverpb::{PutRequest, RangeRequest};

use crate::backend::{Backend, Commit};
use crate::revision::{Revision, decode_key, encode_key};
use crate::{Store, WriteBatch};

fn put(b: &mut WriteBatch<'_>, key: &str, value: &str) {
    let req = PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    };
    b.put(&req, &|_| false).unwrap();
}

fn get(store: &Store, key: &str, revision: i64) -> Option<Vec<u8>> {
    let req = RangeRequest {
        key: key.into(),
        revision,
        ..Default::default()
    };
    store
        .range(&req)
        .unwrap()
        .kvs
        .first()
        .map(|kv| kv.value.clone())
}

/// Every row key a fresh backend snapshot scans, in order.
fn scanned(backend: &Backend) -> Vec<[u8; 17]> {
    let mut keys = Vec::new();
    backend
        .snapshot()
        .unwrap()
        .scan(i64::MAX, |key, _| {
            keys.push(*key);
            Ok(())
        })
        .unwrap();
    keys
}

/// A commit of one put row at main revision `main`.
fn row_commit(main: i64, consistent: u64) -> Commit {
    let kv = retcd_api::mvccpb::KeyValue {
        key: format!("k{main}").into_bytes(),
        create_revision: main,
        mod_revision: main,
        version: 1,
        ..Default::default()
    };
    Commit {
        rows: vec![(
            encode_key(Revision::new(main, 0), false),
            prost::Message::encode_to_vec(&kv),
        )],
        consistent: Some((consistent, 1)),
        scheduled_compact: None,
        server_meta: Vec::new(),
    }
}

#[test]
fn rows_in_memory_are_read_and_lost_by_a_crash_with_their_consistent_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let backend = Backend::open(&path).unwrap();
        backend.append(row_commit(2, 10));
        backend.flush(true).unwrap();
        backend.append(row_commit(3, 11));
        backend.append(row_commit(4, 12));
        // Readers see both halves.
        assert_eq!(scanned(&backend).len(), 3);
        let snapshot = backend.snapshot().unwrap();
        assert_eq!(snapshot.load(Revision::new(4, 0)).unwrap().key, b"k4");
        assert_eq!(snapshot.load(Revision::new(2, 0)).unwrap().key, b"k2");
        assert_eq!(backend.meta().unwrap().consistent_index, 12);
        // Dropped without a flush: a crash.
    }
    let backend = Backend::open(&path).unwrap();
    assert_eq!(scanned(&backend).len(), 1);
    assert_eq!(
        backend.meta().unwrap().consistent_index,
        10,
        "raft replays from the index that matches the rows"
    );
}

#[test]
fn a_flush_without_fsync_still_reaches_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let backend = Backend::open(&path).unwrap();
        backend.append(row_commit(2, 10));
        backend.flush(false).unwrap();
        backend.append(row_commit(3, 11));
        backend.flush(true).unwrap();
    }
    let backend = Backend::open(&path).unwrap();
    assert_eq!(scanned(&backend).len(), 2);
    assert_eq!(backend.meta().unwrap().consistent_index, 11);
}

#[test]
fn scans_racing_flushes_see_every_row_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(Backend::open(&dir.path().join("db")).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (backend, done) = (backend.clone(), done.clone());
        std::thread::spawn(move || {
            for main in 2..2000 {
                backend.append(row_commit(main, main as u64));
                if main % 7 == 0 {
                    backend.flush(main % 49 == 0).unwrap();
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    // Another thread flushes too, racing the writer's appends and flushes.
    let flusher = {
        let (backend, done) = (backend.clone(), done.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::Acquire) {
                backend.flush(n.is_multiple_of(5)).unwrap();
                n += 1;
            }
        })
    };
    let mut scans = 0;
    while !done.load(Ordering::Acquire) || scans == 0 {
        let keys = scanned(&backend);
        // A prefix of the rows 2.., each once.
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(decode_key(key).0.main, i as i64 + 2, "scan {scans}");
        }
        scans += 1;
    }
    writer.join().unwrap();
    flusher.join().unwrap();
    assert_eq!(scanned(&backend).len(), 1998);
    assert_eq!(backend.meta().unwrap().consistent_index, 1999);
    // Everything reached redb: a crash now loses nothing.
    backend.flush(true).unwrap();
    let path = dir.path().join("db");
    drop(backend);
    let reopened = Backend::open(&path).unwrap();
    assert_eq!(scanned(&reopened).len(), 1998);
    assert_eq!(reopened.meta().unwrap().consistent_index, 1999);
}

#[test]
fn server_metadata_reads_see_the_overlay_over_redb() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::open(&dir.path().join("db")).unwrap();
    let meta = |ops: Vec<(&str, Option<&str>)>| Commit {
        rows: Vec::new(),
        consistent: None,
        scheduled_compact: None,
        server_meta: ops
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect(),
    };
    backend.append(meta(vec![("m/a", Some("1")), ("m/b", Some("2"))]));
    backend.flush(false).unwrap();
    backend.append(meta(vec![
        ("m/a", None),
        ("m/c", Some("3")),
        ("n", Some("4")),
    ]));
    let scan = |backend: &Backend| {
        backend
            .server_meta_scan(b"m/")
            .unwrap()
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect::<Vec<_>>()
    };
    let expected = vec![
        ("m/b".to_string(), "2".to_string()),
        ("m/c".into(), "3".into()),
    ];
    assert_eq!(scan(&backend), expected);
    assert_eq!(backend.server_meta_get(b"m/a").unwrap(), None);
    assert_eq!(backend.server_meta_get(b"n").unwrap(), Some(b"4".to_vec()));
    backend.flush(false).unwrap();
    assert_eq!(scan(&backend), expected);
    assert_eq!(backend.server_meta_get(b"m/a").unwrap(), None);
}

#[test]
fn compaction_removes_rows_still_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut b = store.write().unwrap();
    for i in 0..100 {
        put(&mut b, "k", &format!("{i}"));
    }
    b.commit(false).unwrap();
    let mut b = store.write().unwrap();
    b.compact(101).unwrap();
    b.commit(false).unwrap();
    store.wait_compaction_done(101);
    assert_eq!(scanned(&store.shared.backend).len(), 1);
    assert_eq!(get(&store, "k", 0), Some(b"99".to_vec()));
}

#[test]
fn an_export_holds_what_is_only_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut b = store.write().unwrap();
    put(&mut b, "durable", "1");
    b.set_consistent_index(5, 2);
    b.commit(true).unwrap();
    let mut b = store.write().unwrap();
    put(&mut b, "memory", "2");
    b.meta_put(b"who", b"me");
    b.set_consistent_index(6, 2);
    b.commit(false).unwrap();

    let copy = dir.path().join("copy");
    let info = store.export_snapshot(&copy).unwrap();
    assert_eq!((info.consistent_index, info.revision), (6, 3));
    drop(store);
    let restored = Store::open(&copy).unwrap();
    assert_eq!(get(&restored, "durable", 0), Some(b"1".to_vec()));
    assert_eq!(get(&restored, "memory", 0), Some(b"2".to_vec()));
    assert_eq!(restored.meta_get(b"who").unwrap(), Some(b"me".to_vec()));
    assert_eq!(restored.consistent_index(), 6);
}

#[test]
fn a_closed_store_keeps_what_it_held_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).unwrap();
        let mut b = store.write().unwrap();
        put(&mut b, "k", "v");
        b.set_consistent_index(9, 1);
        b.commit(false).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(get(&store, "k", 0), Some(b"v".to_vec()));
    assert_eq!(store.consistent_index(), 9);
}
