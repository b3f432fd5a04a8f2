//! Model-based tests: random requests against the store and against a plain
//! `BTreeMap`-per-revision model, compared answer by answer; plus reopen,
//! interrupted-compaction and hash determinism tests.

use std::collections::BTreeMap;

use retcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use retcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use retcd_api::etcdserverpb::request_op::Request;
use retcd_api::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use retcd_api::mvccpb::KeyValue;

use crate::backend::{Backend, Commit};
use crate::{Error, Store, WriteBatch};

/// A deterministic xorshift generator, so a failing seed replays.
struct Rng(u64);

impl Rng {
    /// The next pseudo-random number.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A random element of `items`.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Keys the random requests use.
const KEYS: &[&[u8]] = &[b"a", b"b", b"c", b"d", b"e", b"f"];

/// The key space at one revision.
type State = BTreeMap<Vec<u8>, KeyValue>;

/// The model: the state at every revision (index = revision - 1).
struct Model {
    /// The key space after each revision, oldest first.
    states: Vec<State>,
    /// The compaction revision (-1: none).
    compact: i64,
}

impl Model {
    /// The model's current revision.
    fn rev(&self) -> i64 {
        self.states.len() as i64
    }

    /// The key space at `rev`.
    fn at(&self, rev: i64) -> &State {
        &self.states[rev as usize - 1]
    }

    /// Applies a put as the next revision.
    fn put(&mut self, key: &[u8], value: &[u8]) {
        let rev = self.rev() + 1;
        let mut next = self.at(rev - 1).clone();
        let old = next.get(key);
        let kv = KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: old.map_or(rev, |o| o.create_revision),
            mod_revision: rev,
            version: old.map_or(1, |o| o.version + 1),
            lease: 0,
        };
        next.insert(key.to_vec(), kv);
        self.states.push(next);
    }

    /// Keys in `[key, end)` (or just `key`) at the current revision.
    fn span(&self, rev: i64, key: &[u8], end: &[u8]) -> Vec<KeyValue> {
        self.at(rev)
            .values()
            .filter(|kv| {
                if end.is_empty() {
                    kv.key == key
                } else {
                    kv.key.as_slice() >= key && kv.key.as_slice() < end
                }
            })
            .cloned()
            .collect()
    }

    /// Applies a delete_range; takes a revision only if it deletes; returns the count.
    fn delete(&mut self, key: &[u8], end: &[u8]) -> i64 {
        let doomed = self.span(self.rev(), key, end);
        if !doomed.is_empty() {
            let mut next = self.at(self.rev()).clone();
            for kv in &doomed {
                next.remove(&kv.key);
            }
            self.states.push(next);
        }
        doomed.len() as i64
    }
}

/// A recorded write, replayed into a second store for the hash check.
#[derive(Clone)]
enum Write {
    /// A put.
    Put(PutRequest),
    /// A delete_range.
    Delete(DeleteRangeRequest),
    /// A txn.
    Txn(TxnRequest),
    /// A compaction at a revision.
    Compact(i64),
}

/// Applies a recorded write to a batch; the write must succeed.
fn apply(batch: &mut WriteBatch<'_>, w: &Write) {
    let no_lease = |_| false;
    match w {
        Write::Put(r) => drop(batch.put(r, &no_lease).unwrap()),
        Write::Delete(r) => drop(batch.delete_range(r).unwrap()),
        Write::Txn(r) => drop(batch.txn(r, &no_lease).unwrap()),
        Write::Compact(r) => drop(batch.compact(*r).unwrap()),
    }
}

/// A random key span: one key, a range, or everything from a key on.
fn random_span(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let key = rng.pick(KEYS).to_vec();
    let end = match rng.below(3) {
        0 => Vec::new(),
        1 => vec![key[0] + 1 + rng.below(3) as u8],
        _ => vec![0],
    };
    (key, end)
}

/// The end the model understands ("\0" means unbounded).
fn model_end(end: &[u8]) -> Vec<u8> {
    if end == [0] { vec![0xff] } else { end.to_vec() }
}

/// Checks one random range against the model at a random readable revision.
fn check_range(rng: &mut Rng, model: &Model, store: &Store) {
    let (key, end) = random_span(rng);
    let rev =
        model.compact.max(1) + rng.below((model.rev() - model.compact.max(1) + 1) as u64) as i64;
    let limit = rng.below(4) as i64;
    let descending = rng.below(3) == 0;
    let req = RangeRequest {
        key: key.clone(),
        range_end: end.clone(),
        revision: if rng.below(2) == 0 { 0 } else { rev },
        limit,
        sort_order: if descending {
            SortOrder::Descend
        } else {
            SortOrder::None
        } as i32,
        sort_target: SortTarget::Key as i32,
        ..Default::default()
    };
    let at = if req.revision == 0 { model.rev() } else { rev };
    let mut want = model.span(at, &key, &model_end(&end));
    let count = want.len() as i64;
    if descending {
        want.reverse();
    }
    let more = limit > 0 && want.len() > limit as usize;
    if more {
        want.truncate(limit as usize);
    }
    let got = store.range(&req).unwrap();
    assert_eq!(got.kvs, want, "{req:?}");
    assert_eq!((got.count, got.more), (count, more), "{req:?}");
    assert_eq!(got.header.unwrap().revision, model.rev());
    if model.compact > 1 {
        let old = RangeRequest {
            revision: model.compact - 1,
            ..req
        };
        assert!(matches!(store.range(&old), Err(Error::Compacted)));
    }
}

/// Runs `steps` random requests with random batch boundaries, reopens and
/// aborts, checking every answer; returns the committed writes.
fn run_model(seed: u64, steps: usize, dir: &std::path::Path) -> (Vec<Write>, Model) {
    let mut rng = Rng(seed);
    let path = dir.join("db");
    let mut store = Store::open(&path).unwrap();
    let mut model = Model {
        states: vec![State::new()],
        compact: -1,
    };
    let mut log = Vec::new();
    let mut step = 0;
    while step < steps {
        // One batch.
        let saved = (model.states.len(), model.compact);
        let mut pending = Vec::new();
        let mut batch = store.write().unwrap();
        let batch_len = 1 + rng.below(8);
        for _ in 0..batch_len {
            step += 1;
            let w = random_write(&mut rng, &mut model);
            let before = batch.current_revision();
            apply(&mut batch, &w);
            assert_eq!(batch.current_revision(), model.rev(), "after {before}");
            pending.push(w);
        }
        // Readers do not see the open batch.
        assert_eq!(store.current_revision(), saved.0 as i64);
        match rng.below(10) {
            0 => {
                drop(batch);
                model.states.truncate(saved.0);
                model.compact = saved.1;
            }
            n => {
                batch.commit(n == 1).unwrap();
                log.extend(pending);
            }
        }
        assert_eq!(store.current_revision(), model.rev());
        for _ in 0..3 {
            check_range(&mut rng, &model, &store);
        }
        if rng.below(40) == 0 {
            let hash = store.hash_kv(0).unwrap();
            drop(store);
            store = Store::open(&path).unwrap();
            assert_eq!(store.current_revision(), model.rev());
            assert_eq!(store.compact_revision(), model.compact);
            assert_eq!(
                store.hash_kv(0).unwrap(),
                hash,
                "hash changed across reopen"
            );
        }
    }
    (log, model)
}

/// Picks a random write, applies it to the model, and returns it.
fn random_write(rng: &mut Rng, model: &mut Model) -> Write {
    let value = format!("v{}", rng.below(100)).into_bytes();
    match rng.below(10) {
        0..=4 => {
            let key = rng.pick(KEYS).to_vec();
            model.put(&key, &value);
            Write::Put(PutRequest {
                key,
                value,
                ..Default::default()
            })
        }
        5 | 6 => {
            let (key, end) = random_span(rng);
            model.delete(&key, &model_end(&end));
            Write::Delete(DeleteRangeRequest {
                key,
                range_end: end,
                prev_kv: false,
            })
        }
        7 | 8 => {
            // if version(k) = v then put k2 else delete k3
            let k = rng.pick(KEYS).to_vec();
            let v = rng.below(3) as i64;
            let k2 = rng.pick(KEYS).to_vec();
            let k3 = rng.pick(KEYS).to_vec();
            let current = model.at(model.rev()).get(&k).map_or(0, |kv| kv.version);
            if current == v {
                model.put(&k2, &value);
            } else {
                model.delete(&k3, &[]);
            }
            Write::Txn(TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Version as i32,
                    key: k,
                    range_end: Vec::new(),
                    target_union: Some(TargetUnion::Version(v)),
                }],
                success: vec![RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: k2,
                        value,
                        ..Default::default()
                    })),
                }],
                failure: vec![RequestOp {
                    request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                        key: k3,
                        ..Default::default()
                    })),
                }],
            })
        }
        _ if model.rev() > model.compact.max(1) && rng.below(3) == 0 => {
            let lo = model.compact.max(1) + 1;
            let rev = lo + rng.below((model.rev() - lo + 1) as u64) as i64;
            model.compact = rev;
            Write::Compact(rev)
        }
        _ => {
            let key = rng.pick(KEYS).to_vec();
            model.put(&key, b"x");
            Write::Put(PutRequest {
                key,
                value: b"x".to_vec(),
                ..Default::default()
            })
        }
    }
}

#[test]
fn random_requests_match_the_model() {
    for seed in [1u64, 7, 42, 0x5eed] {
        let dir = tempfile::tempdir().unwrap();
        let (log, model) = run_model(seed, 600, dir.path());

        // The same committed history, one request per batch, without waiting
        // for physical compaction, hashes the same at every revision above
        // the compaction.
        let dir2 = tempfile::tempdir().unwrap();
        let other = Store::open(&dir2.path().join("db")).unwrap();
        for w in &log {
            let mut batch = other.write().unwrap();
            apply(&mut batch, w);
            batch.commit(false).unwrap();
        }
        let first = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(other.current_revision(), model.rev());
        let lowest = model.compact + 1;
        for rev in [0, lowest, (lowest + model.rev()) / 2, model.rev()] {
            if rev > model.rev() {
                continue;
            }
            assert_eq!(
                first.hash_kv(rev).unwrap(),
                other.hash_kv(rev).unwrap(),
                "seed {seed} rev {rev}"
            );
        }
        if model.compact > 0 {
            assert!(matches!(
                first.hash_kv(model.compact),
                Err(crate::Error::Compacted)
            ));
        }
    }
}

#[test]
fn hash_ignores_later_writes_and_physical_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let put = |b: &mut WriteBatch<'_>, k: &str, v: &str| {
        let req = PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        };
        b.put(&req, &|_| false).unwrap();
    };
    let mut b = store.write().unwrap();
    for i in 0..3000 {
        put(&mut b, &format!("k{}", i % 500), &format!("{i}"));
    }
    // Durable, so the rows are in the file whose size caps the in-use count.
    b.commit(true).unwrap();
    let before = store.hash_kv(0).unwrap();
    let in_use_before = store.db_size_in_use_bytes();
    let mut b = store.write().unwrap();
    b.compact(2000).unwrap();
    b.commit(false).unwrap();
    // Racing the compactor or not, the hash at a revision is the same.
    let racing = store.hash_kv(before.2).unwrap();
    store.wait_compaction_done(2000);
    let done = store.hash_kv(before.2).unwrap();
    assert_eq!(racing, done);
    // 1,499 of the 3,000 rows were unreachable at 2000; the running count
    // of live bytes matches the rows left.
    assert_eq!(row_count(&store), 1501);
    let mut live = 0;
    let snapshot = store.shared.backend.snapshot().unwrap();
    snapshot
        .scan(i64::MAX, |_, row| {
            live += crate::store::row_bytes(row.len());
            Ok(())
        })
        .unwrap();
    assert_eq!(store.db_size_in_use_bytes(), live);
    assert!(live < in_use_before * 6 / 10, "{in_use_before} -> {live}");
    assert_eq!((done.1, done.2), (2000, before.2));
    assert_ne!(
        done.0, before.0,
        "compaction drops unreachable rows from the hash"
    );
    let mut b = store.write().unwrap();
    put(&mut b, "later", "x");
    b.commit(false).unwrap();
    assert_eq!(store.hash_kv(before.2).unwrap(), done);
    assert_ne!(store.hash_kv(0).unwrap().0, done.0);
}

/// Number of rows in the backend.
fn row_count(store: &Store) -> usize {
    let mut n = 0;
    let snapshot = store.shared.backend.snapshot().unwrap();
    snapshot
        .scan(i64::MAX, |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
    n
}

#[test]
fn reopen_keeps_revision_index_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path).unwrap();
    let mut b = store.write().unwrap();
    for i in 0..100 {
        let req = PutRequest {
            key: format!("k{:02}", i % 10).into_bytes(),
            value: vec![i as u8; 100],
            ..Default::default()
        };
        b.put(&req, &|_| false).unwrap();
    }
    b.meta_put(b"members", b"m1,m2");
    b.set_consistent_index(42, 5);
    b.commit(true).unwrap();
    let all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    let before = store.range(&all).unwrap();
    let old = store
        .range(&RangeRequest {
            revision: 50,
            ..all.clone()
        })
        .unwrap();
    let in_use = store.db_size_in_use_bytes();
    assert!(in_use > 100 * 100 && in_use <= store.db_size_bytes());
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.current_revision(), 101);
    assert_eq!(store.db_size_in_use_bytes(), in_use);
    assert_eq!(store.consistent_index(), 42);
    assert_eq!(store.consistent_term(), 5);
    assert_eq!(
        store.meta_get(b"members").unwrap().as_deref(),
        Some(&b"m1,m2"[..])
    );
    assert_eq!(store.meta_get(b"other").unwrap(), None);
    assert_eq!(store.range(&all).unwrap(), before);
    let again = RangeRequest {
        revision: 50,
        ..all
    };
    assert_eq!(store.range(&again).unwrap(), old);
    assert_eq!(row_count(&store), 100);
}

#[test]
fn unfinished_compaction_resumes_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path).unwrap();
    let mut b = store.write().unwrap();
    for i in 0..5000 {
        let req = PutRequest {
            key: format!("k{}", i % 7).into_bytes(),
            value: format!("{i}").into_bytes(),
            ..Default::default()
        };
        b.put(&req, &|_| false).unwrap();
    }
    b.commit(true).unwrap();
    drop(store);

    // A compaction recorded as scheduled, none of its rows removed yet, as a
    // crash right after the scheduling commit would leave it.
    {
        let backend = Backend::open(&path).unwrap();
        backend.append(Commit {
            rows: Vec::new(),
            consistent: None,
            scheduled_compact: Some(4000),
            server_meta: Vec::new(),
        });
        backend.flush(true).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.compact_revision(), 4000);
    store.wait_compaction_done(4000);
    // Per key: the newest row at or below 4000, plus every row above it.
    assert_eq!(row_count(&store), 7 + 1001);
    let read = RangeRequest {
        key: b"k0".to_vec(),
        revision: 4000,
        ..Default::default()
    };
    let kv = &store.range(&read).unwrap().kvs[0];
    assert_eq!(kv.value, b"3997");
    assert_eq!(kv.version, 3997 / 7 + 1);
    assert!(matches!(
        store.range(&RangeRequest {
            revision: 3999,
            ..read
        }),
        Err(Error::Compacted)
    ));
    drop(store);
    let backend = Backend::open(&path).unwrap();
    assert_eq!(backend.meta().unwrap().finished_compact, 4000);
}

#[test]
fn write_batch_is_send_and_store_is_sync() {
    fn send<T: Send>() {}
    fn sync<T: Send + Sync>() {}
    send::<WriteBatch<'static>>();
    sync::<Store>();
}

#[test]
fn readers_run_while_a_batch_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let mut b = store.write().unwrap();
    let req = PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    b.put(&req, &|_| false).unwrap();
    let reader = store.clone();
    let got = std::thread::spawn(move || {
        reader
            .range(&RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })
            .unwrap()
            .count
    })
    .join()
    .unwrap();
    assert_eq!(got, 0);
    b.commit(false).unwrap();
    let read = RangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    };
    assert_eq!(store.range(&read).unwrap().kvs[0].value, b"v");
}

/// Environment variable naming the store a crash child process writes to.
const CRASH_CHILD_ENV: &str = "RETCD_MVCC_CRASH_CHILD";

/// Writes one durable and one non-durable batch to `path`, then dies
/// without running any destructor.
fn crash_child(path: &std::path::Path) -> ! {
    let store = Store::open(path).unwrap();
    for (i, durable) in [(1u64, true), (2, false)] {
        let mut b = store.write().unwrap();
        let req = PutRequest {
            key: format!("k{i}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        b.put(&req, &|_| false).unwrap();
        b.set_consistent_index(i, 1);
        b.commit(durable).unwrap();
    }
    std::process::abort();
}

#[test]
fn crash_keeps_a_consistent_prefix() {
    if let Some(path) = std::env::var_os(CRASH_CHILD_ENV) {
        crash_child(std::path::Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "model_test::crash_keeps_a_consistent_prefix",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die");

    // The durable batch survives; the non-durable one may or may not, but
    // the data and the consistent index always agree.
    let store = Store::open(&path).unwrap();
    let has = |key: &[u8]| {
        let req = RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        };
        store.range(&req).unwrap().count == 1
    };
    assert!(has(b"k1"));
    match store.consistent_index() {
        1 => assert!(!has(b"k2") && store.current_revision() == 2),
        2 => assert!(has(b"k2") && store.current_revision() == 3),
        other => panic!("consistent index {other}"),
    }
}
