//! The store: the key index and the backend, tied together.
//!
//! Readers and the one writer share a [`Shared`]:
//! - the index behind a `RwLock`, held only while walking it, never across
//!   backend reads;
//! - the published revisions as atomics: `current_rev` moves only after the
//!   backend commit that made its rows visible, `compact_rev` only under the
//!   index write lock together with the index compaction it describes.
//!
//! A read takes, in this order: `current_rev`, a backend snapshot, then the
//! index lock and `compact_rev`. That order is what makes it consistent:
//! rows at or below `current_rev` were committed before the snapshot; rows a
//! compaction removes are removed only after the index stopped naming them,
//! and a compaction newer than the `compact_rev` the read saw starts its
//! removal after the snapshot was taken.
//!
//! Revisions above `current_rev` may already be in the index (the write
//! batch in progress put them there), but no read asks for them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::RwLock;
use prost::Message;
use retcd_api::etcdserverpb::request_op::Request;
use retcd_api::etcdserverpb::response_op::Response;
use retcd_api::etcdserverpb::{
    RangeRequest, RangeResponse, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};

use crate::backend::{Backend, Meta, RowHead, Snapshot};
use crate::compactor::{self, Compaction};
use crate::error::{Error, Result};
use crate::hash::Crc32c;
use crate::index::Index;
use crate::lock::WriterLock;
use crate::range;
use crate::revision::{REV_KEY_LEN, Revision, decode_key};
use crate::txn::compares_hold;
use crate::write::WriteBatch;

/// State shared by the store, its write batches and its compactor thread.
pub(crate) struct Shared {
    /// The redb database.
    pub backend: Backend,
    /// Every key's revision history.
    pub index: RwLock<Index>,
    /// The newest revision readers may see.
    pub current_rev: AtomicI64,
    /// The compaction revision in force; changes only under the index write lock.
    pub compact_rev: AtomicI64,
    /// Raft index of the last applied entry committed to the backend.
    pub consistent_index: AtomicU64,
    /// Raft term of that entry.
    pub consistent_term: AtomicU64,
    /// Serializes backend writers.
    pub writer: WriterLock,
    /// The physical compaction schedule.
    pub compaction: Compaction,
    /// Bytes of the live rows (see [`row_bytes`]).
    pub live_bytes: AtomicU64,
    /// Snapshots installed since open; changes only under the index write
    /// lock, so a read can tell it raced an install (see [`Store::range`]).
    pub installs: AtomicU64,
}

/// A multi-version key-value store over a redb file: etcd's mvcc package.
pub struct Store {
    /// State shared with write batches and the compactor.
    pub(crate) shared: Arc<Shared>,
    /// The compactor thread, joined on drop.
    compactor: Option<JoinHandle<()>>,
}

impl Store {
    /// Opens or creates the backend at `path`, rebuilds the key index from it
    /// and resumes an unfinished compaction.
    pub fn open(path: &Path) -> Result<Store> {
        let backend = Backend::open(path)?;
        let meta = backend.meta()?;
        let Loaded {
            index,
            current,
            live_bytes,
        } = load_index(&backend, &meta)?;
        tracing::info!(
            revision = current,
            compact_revision = meta.scheduled_compact,
            consistent_index = meta.consistent_index,
            keys = index.len(),
            "opened mvcc store"
        );
        let shared = Arc::new(Shared {
            backend,
            index: RwLock::new(index),
            current_rev: AtomicI64::new(current),
            compact_rev: AtomicI64::new(meta.scheduled_compact),
            consistent_index: AtomicU64::new(meta.consistent_index),
            consistent_term: AtomicU64::new(meta.consistent_term),
            installs: AtomicU64::new(0),
            writer: WriterLock::default(),
            compaction: Compaction::new(meta.scheduled_compact, meta.finished_compact),
            live_bytes: AtomicU64::new(live_bytes),
        });
        let worker = shared.clone();
        let compactor = std::thread::Builder::new()
            .name("mvcc-compactor".into())
            .spawn(move || compactor::run(worker))?;
        Ok(Store {
            shared,
            compactor: Some(compactor),
        })
    }

    /// The newest committed revision (1 on an empty store).
    pub fn current_revision(&self) -> i64 {
        self.shared.current_rev.load(Ordering::Acquire)
    }

    /// The last scheduled compaction revision (-1 if none, as in etcd).
    pub fn compact_revision(&self) -> i64 {
        self.shared.compact_rev.load(Ordering::Acquire)
    }

    /// Raft index of the last applied entry committed (durably or not).
    pub fn consistent_index(&self) -> u64 {
        self.shared.consistent_index.load(Ordering::Acquire)
    }

    /// Raft term of the entry at [`consistent_index`](Self::consistent_index).
    pub fn consistent_term(&self) -> u64 {
        self.shared.consistent_term.load(Ordering::Acquire)
    }

    /// Answers a range from committed state; the header carries the revision
    /// the read was served at (the current one, as etcd reports it).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.read(|reader| reader.range(req))
    }

    /// Runs a txn that holds no put or delete (see
    /// [`is_txn_read_only`](crate::is_txn_read_only)) against committed state;
    /// a write in the chosen branch is refused with `Error::TxnNotReadOnly`.
    pub fn txn_read_only(&self, req: &TxnRequest) -> Result<TxnResponse> {
        self.read(|reader| {
            let mut resp = reader.txn(req)?;
            resp.header = Some(header(reader.current));
            Ok(resp)
        })
    }

    /// Runs `f` on a fresh read view, and again on a new one whenever a
    /// snapshot install finished while it ran: the view may then pair the
    /// old revision with the new index and compaction, so its answer, error
    /// or not, is thrown away. An install holds the index write lock from
    /// replacing the backend to counting itself, and every read takes the
    /// index lock, so a read that saw no new install saw one state whole.
    fn read<T>(&self, f: impl Fn(&Reader) -> Result<T>) -> Result<T> {
        loop {
            let reader = self.reader()?;
            let result = f(&reader);
            if !reader.raced_install() {
                return result;
            }
        }
    }

    /// Starts the one write batch; waits while another batch or a compaction
    /// chunk holds the writer lock.
    pub fn write(&self) -> Result<WriteBatch<'_>> {
        let writer = self.shared.writer.acquire();
        let snapshot = self.shared.backend.snapshot()?;
        Ok(WriteBatch::new(&self.shared, writer, snapshot))
    }

    /// Writes everything committed so far to redb and fsyncs it. Safe on any
    /// thread while a [`WriteBatch`] is open: the batch's commit goes on into
    /// the overlay and is left for the next sync.
    pub fn sync(&self) -> Result<()> {
        self.shared.backend.sync()
    }

    /// Rewrites the backend file without its free pages (etcd's
    /// defragmentation) while writes go on: write batches wait only while the
    /// rows committed during the copy are added to it and it takes the
    /// file's place; readers never wait. Physical compaction pauses
    /// meanwhile. Must not be called while this thread holds a
    /// [`WriteBatch`].
    pub fn defragment(&self) -> Result<()> {
        self.defragment_with(|| {})
    }

    /// [`defragment`](Self::defragment), calling `after_copy` once the copy
    /// is written and before writers stop.
    pub(crate) fn defragment_with(&self, after_copy: impl FnOnce()) -> Result<()> {
        self.shared.backend.defragment(|| {
            after_copy();
            self.shared.writer.acquire()
        })
    }

    /// Blocks until the rows compaction `rev` made unreachable are removed.
    pub fn wait_compaction_done(&self, rev: i64) {
        self.shared.compaction.wait_done(rev);
    }

    /// etcd's hash of the store at `rev` (0: current), equal to etcd's for the
    /// same history and the same on every member however far its physical
    /// compaction got. Returns the hash, the compaction revision (-1 before
    /// the first, as etcd) and the hashed revision; a revision at or below the
    /// compaction one is compacted.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        self.read(|reader| reader.hash_kv(rev))
    }

    /// Size of the backend in bytes as etcd counts it: the disk space its
    /// file takes, free pages included until a defragmentation.
    pub fn db_size_bytes(&self) -> u64 {
        self.shared.backend.size_bytes()
    }

    /// Bytes of the backend file in use: the live rows with their per-row
    /// overhead, capped by the backend's size. Kept as a running count, so asking
    /// costs nothing and never waits for a writer; it does not count free
    /// pages, which is what a defragmentation would give back.
    pub fn db_size_in_use_bytes(&self) -> u64 {
        let live = self.shared.live_bytes.load(Ordering::Relaxed);
        live.min(self.db_size_bytes())
    }

    /// How many keys exist now (etcd's `keys_total`): kept by the index as
    /// keys are created and deleted, so asking takes the index lock only for
    /// a load. A write batch's keys count as soon as it makes them.
    pub fn key_count(&self) -> usize {
        self.shared.index.read().alive()
    }

    /// Reads a server metadata value as last committed.
    pub fn meta_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.shared.backend.server_meta_get(key)
    }

    /// Every server metadata pair whose key starts with `prefix`, as last
    /// committed, in key order.
    pub fn meta_scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.shared.backend.server_meta_scan(prefix)
    }

    /// A read view of committed state (see the module docs for the order).
    fn reader(&self) -> Result<Reader> {
        let installs = self.shared.installs.load(Ordering::Acquire);
        let current = self.current_revision();
        let snapshot = self.shared.backend.snapshot()?;
        Ok(Reader {
            shared: self.shared.clone(),
            installs,
            current,
            snapshot,
        })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shared.compaction.stop();
        if let Some(t) = self.compactor.take() {
            let _ = t.join();
        }
        // Make non-durable commits durable on a clean shutdown.
        if let Err(e) = self.shared.backend.sync() {
            tracing::error!(error = %e, "cannot sync the mvcc backend on close");
        }
    }
}

/// Feeds `crc` a row's key as etcd's backend stores it: main and sub
/// revision big-endian around a `_`, and a trailing `t` on a tombstone.
fn hash_etcd_row_key(crc: &mut Crc32c, rev: Revision, tombstone: bool) {
    crc.update(&(rev.main as u64).to_be_bytes());
    crc.update(b"_");
    crc.update(&(rev.sub as u64).to_be_bytes());
    if tombstone {
        crc.update(b"t");
    }
}

/// The in-memory state [`load_index`] rebuilds from the backend.
pub(crate) struct Loaded {
    /// Every key's revision history, compacted at the scheduled compaction.
    pub index: Index,
    /// The newest revision.
    pub current: i64,
    /// Bytes of the live rows.
    pub live_bytes: u64,
}

/// Rebuilds the key index from every row of `backend`, whose counters are `meta`.
pub(crate) fn load_index(backend: &Backend, meta: &Meta) -> Result<Loaded> {
    let mut index = Index::default();
    let mut last_main = 1;
    let mut live_bytes = 0;
    backend.snapshot()?.scan(i64::MAX, |key, row| {
        live_bytes += row_bytes(row.len());
        let (rev, tombstone) = decode_key(key);
        let head = RowHead::decode(row)?;
        index.restore_row(
            &head.key,
            rev,
            tombstone,
            head.create_revision,
            head.version,
        );
        last_main = rev.main;
        Ok(())
    })?;
    // A compaction at the newest revision may have removed every row of it.
    let current = last_main.max(meta.scheduled_compact);
    if meta.scheduled_compact > 0 {
        index.compact(meta.scheduled_compact);
    }
    Ok(Loaded {
        index,
        current,
        live_bytes,
    })
}

/// Estimated bytes a row with a value of `value_len` bytes takes in the
/// backend: the value, its 17-byte key and redb's per-entry bookkeeping.
pub(crate) fn row_bytes(value_len: usize) -> u64 {
    /// redb's per-entry offsets plus an allowance for partly filled pages.
    const ROW_OVERHEAD_BYTES: u64 = 16;
    value_len as u64 + REV_KEY_LEN as u64 + ROW_OVERHEAD_BYTES
}

/// A response header carrying only a revision.
pub(crate) fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

/// Committed state as of one moment: what [`Store::range`] and
/// [`Store::txn_read_only`] and [`Store::hash_kv`] read.
struct Reader {
    /// The store's shared state.
    shared: Arc<Shared>,
    /// Snapshots installed before the view was taken.
    installs: u64,
    /// The revision the view was taken at.
    current: i64,
    /// The rows as of (at least) `current`.
    snapshot: Snapshot,
}

impl Reader {
    /// Whether a snapshot install happened since the view was taken.
    fn raced_install(&self) -> bool {
        self.shared.installs.load(Ordering::Acquire) != self.installs
    }

    /// Serves one range request at this view.
    fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        if req.key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if req.revision > self.current {
            return Err(Error::FutureRevision);
        }
        let at = if req.revision > 0 {
            req.revision
        } else {
            self.current
        };
        let plan = {
            let index = self.shared.index.read();
            if at < self.shared.compact_rev.load(Ordering::Acquire) {
                return Err(Error::Compacted);
            }
            range::plan(&index, req, at)
        };
        let (kvs, more) = range::finish(req, plan.states, |rev| self.snapshot.load(rev))?;
        Ok(RangeResponse {
            header: Some(header(self.current)),
            kvs,
            more,
            count: plan.count,
        })
    }

    /// [`Store::hash_kv`] at this view, as etcd computes it: a CRC-32C over
    /// the bucket name `key`, then each row up to `rev` as etcd stores it (its
    /// revision key, its `KeyValue`). Rows at or below the compaction count
    /// only if a compaction at `rev` would keep them, so members agree however
    /// far their physical compaction got.
    fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        if rev > self.current {
            return Err(Error::FutureRevision);
        }
        let at = if rev > 0 { rev } else { self.current };
        let (compact, kept) = {
            let index = self.shared.index.read();
            let compact = self.shared.compact_rev.load(Ordering::Acquire);
            if rev > 0 && rev <= compact {
                return Err(Error::Compacted);
            }
            (compact, index.kept_at(at))
        };
        let mut crc = Crc32c::new();
        crc.update(b"key");
        self.snapshot.scan(at, |key, row| {
            let (r, tombstone) = decode_key(key);
            if r.main > compact || kept.is_empty() || kept.contains(&r) {
                hash_etcd_row_key(&mut crc, r, tombstone);
                crc.update(row);
            }
            Ok(())
        })?;
        Ok((crc.finish(), compact, at))
    }

    /// Runs a read-only txn at this view; nested txns get an empty header,
    /// as in etcd.
    fn txn(&self, req: &TxnRequest) -> Result<TxnResponse> {
        let succeeded = compares_hold(&req.compare, &self.shared.index, self.current, |rev| {
            self.snapshot.load(rev)
        })?;
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(Request::RequestRange(r)) => Some(Response::ResponseRange(self.range(r)?)),
                Some(Request::RequestTxn(t)) => {
                    let mut nested = self.txn(t)?;
                    nested.header = Some(ResponseHeader::default());
                    Some(Response::ResponseTxn(nested))
                }
                Some(Request::RequestPut(_) | Request::RequestDeleteRange(_)) => {
                    return Err(Error::TxnNotReadOnly);
                }
                None => None,
            };
            responses.push(ResponseOp { response });
        }
        Ok(TxnResponse {
            header: None,
            succeeded,
            responses,
        })
    }
}
