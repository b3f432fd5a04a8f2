//! The durable half of the store: a redb file.
//!
//! Tables:
//! - `kv`: [`RevKey`] (revision + tombstone flag) to an encoded
//!   `mvccpb::KeyValue`. Tombstone rows hold a `KeyValue` with only the key
//!   set. Rows are written once and removed only by compaction.
//! - `meta`: the store's own counters (`consistent_index`, `consistent_term`,
//!   `scheduled_compact_rev`, `finished_compact_rev`).
//! - `server_meta`: opaque byte pairs the server keeps beside the data
//!   (membership, leases, auth), committed atomically with it.
//!
//! Durability: a write batch's commit lands in the in-memory [`Overlay`]
//! (visible to readers at once, lost on a crash); a durable commit, or an
//! overlay grown past its bounds, writes the whole overlay to redb in one
//! transaction (`Durability::Immediate` or `None`). redb persists commits in
//! order, so whatever survives a crash is a prefix of the commits, and
//! `consistent_index` in the same prefix tells raft where to replay from.
//!
//! Readers get the overlay and a redb read transaction as one pair, taken
//! under the overlay lock; writing the overlay to redb commits and removes
//! the written part from the overlay under the same lock, so a pair never
//! holds a row twice or misses one. Appends only take the overlay lock, so
//! a flush on another thread (`Store::sync`) never stalls the writer.
//!
//! Physical compaction ([`Backend::compact_chunk`]) removes rows in bounded
//! chunks, each its own short write transaction, and records
//! `finished_compact_rev` in the last one; a compaction scheduled but not
//! finished is resumed at open.
//!
//! Removed rows leave free pages that redb reuses but seldom gives back;
//! [`Backend::defragment`] copies every table into a fresh file while writes
//! go on and puts it in the original's place (`defrag`), so the size (what
//! the quota counts) falls again.
//!
//! Snapshots ([`Backend::export_to`], [`Backend::replace_from`]) copy every
//! table row by row, never the file: redb rewrites its header in place on
//! every commit, so a byte copy taken while the apply loop commits could pair
//! a new header with old pages. A read transaction pins one committed state,
//! and writing it into a fresh file also leaves the copy without free pages.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use prost::Message;
use redb::{
    Database, Durability, ReadOnlyDatabase, ReadOnlyTable, ReadTransaction, ReadableDatabase,
    ReadableTable, TableDefinition, WriteTransaction,
};
use retcd_api::mvccpb::KeyValue;

use crate::error::{Error, Result};
use crate::overlay::{MetaOps, Overlay, Rows};
use crate::revision::{RevKey, Revision, encode_key, first_key_of};
use defrag::remove_defrag_leftover;

mod defrag;

/// Revision-keyed rows of key-value pairs and tombstones.
const KV: TableDefinition<&'static RevKey, &'static [u8]> = TableDefinition::new("kv");
/// The store's own counters.
const META: TableDefinition<&'static str, u64> = TableDefinition::new("meta");
/// Byte pairs owned by the server.
const SERVER_META: TableDefinition<&'static [u8], &'static [u8]> =
    TableDefinition::new("server_meta");

/// Meta key: raft index of the last applied entry.
const CONSISTENT_INDEX: &str = "consistent_index";
/// Meta key: raft term of the last applied entry.
const CONSISTENT_TERM: &str = "consistent_term";
/// Meta key: the latest compaction revision requested.
const SCHEDULED_COMPACT: &str = "scheduled_compact_rev";
/// Meta key: the latest compaction revision whose rows are all removed.
const FINISHED_COMPACT: &str = "finished_compact_rev";

/// Overlay rows past which a commit writes the overlay to redb.
const OVERLAY_MAX_ROWS: usize = 50_000;
/// Overlay row bytes past which a commit writes the overlay to redb.
const OVERLAY_MAX_BYTES: usize = 64 << 20;

/// The store's counters as last committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Raft index of the last applied entry.
    pub consistent_index: u64,
    /// Raft term of the last applied entry.
    pub consistent_term: u64,
    /// The latest compaction revision requested (-1: none yet).
    pub scheduled_compact: i64,
    /// The latest compaction revision whose rows are all removed (0: none).
    pub finished_compact: i64,
}

/// Everything one write batch commits at once.
pub(crate) struct Commit {
    /// New rows, in revision order.
    pub rows: Rows,
    /// New `(consistent_index, consistent_term)`, if any entry was applied.
    pub consistent: Option<(u64, u64)>,
    /// A newly scheduled compaction revision.
    pub scheduled_compact: Option<i64>,
    /// Server metadata to store (`None`: delete), applied in order.
    pub server_meta: MetaOps,
}

/// The redb database behind a store, with the overlay of what it lacks.
pub(crate) struct Backend {
    /// The open database. Every read view holds the `Arc` it began on, so a
    /// database [`Backend::defragment`] replaced stays open until the last
    /// view of it ends; write transactions are begun under `flushing`, which
    /// the replacement holds.
    db: RwLock<Arc<Database>>,
    /// Where its file lives, for size reports.
    path: PathBuf,
    /// Committed changes redb does not hold yet; replaced, never mutated.
    overlay: Mutex<Arc<Overlay>>,
    /// Serializes writes to redb (flushes, compaction chunks, installs);
    /// appends to the overlay never wait for it.
    flushing: Mutex<()>,
    /// Held by what must not run while a defragmentation copies the file:
    /// physical compaction chunks and snapshot installs. Taken before the
    /// store's writer lock.
    gate: Mutex<()>,
    /// The bytes of disk the file occupies as of the last write to redb;
    /// only those change it, so asking costs no system call.
    size: AtomicU64,
}

impl Backend {
    /// Opens (or creates) the database at `path` and makes sure every table
    /// exists.
    pub fn open(path: &Path) -> Result<Self> {
        remove_defrag_leftover(path)?;
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(KV)?;
        txn.open_table(META)?;
        txn.open_table(SERVER_META)?;
        txn.commit()?;
        let backend = Backend {
            db: RwLock::new(Arc::new(db)),
            path: path.to_path_buf(),
            overlay: Mutex::new(Arc::new(Overlay::default())),
            flushing: Mutex::new(()),
            gate: Mutex::new(()),
            size: AtomicU64::new(0),
        };
        backend.note_size();
        Ok(backend)
    }

    /// Records the disk space the file occupies after a write to redb: its
    /// allocated blocks, at most its length. redb grows the file ahead of
    /// need, doubling it up to 4 GiB, and the part it has not written yet is
    /// a hole that takes no space, so the blocks follow the pages redb has
    /// written (free ones included, until a defragmentation cuts them off),
    /// as etcd's size follows bbolt's highest page; the length would count
    /// the hole too and reach a quota with half of it used.
    fn note_size(&self) {
        let size = std::fs::metadata(&self.path).map_or(0, |m| (m.blocks() * 512).min(m.len()));
        self.size.store(size, Ordering::Relaxed);
    }

    /// The overlay and a redb read transaction that together hold exactly
    /// the committed state.
    fn view(&self) -> Result<View> {
        let overlay = self.overlay.lock();
        let db = self.db.read().clone();
        Ok(View {
            txn: db.begin_read()?,
            overlay: overlay.clone(),
            _db: db,
        })
    }

    /// Holds off physical compaction chunks and snapshot installs while a
    /// defragmentation copies the file; take it before the writer lock.
    pub fn maintenance_gate(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.gate.lock()
    }

    /// Reads the store's counters.
    pub fn meta(&self) -> Result<Meta> {
        let view = self.view()?;
        Ok(view
            .overlay
            .meta_over(read_meta(&view.txn.open_table(META)?)?))
    }

    /// Reads one server metadata value.
    pub fn server_meta_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let view = self.view()?;
        if let Some(value) = view.overlay.meta_get(key) {
            return Ok(value.map(<[u8]>::to_vec));
        }
        let table = view.txn.open_table(SERVER_META)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Every server metadata pair whose key starts with `prefix`, in key order.
    pub fn server_meta_scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let view = self.view()?;
        let table = view.txn.open_table(SERVER_META)?;
        let mut pairs = BTreeMap::new();
        for item in table.range(prefix..)? {
            let (key, value) = item?;
            if !key.value().starts_with(prefix) {
                break;
            }
            pairs.insert(key.value().to_vec(), value.value().to_vec());
        }
        view.overlay.meta_apply_prefix(prefix, &mut pairs);
        Ok(pairs.into_iter().collect())
    }

    /// A consistent read-only view of the rows as of now.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let view = self.view()?;
        Ok(Snapshot {
            rows: view.txn.open_table(KV)?,
            overlay: view.overlay,
            _db: view._db,
        })
    }

    /// Adds one batch's rows and counters to the overlay, visible to readers
    /// at once; true when the overlay outgrew its bounds and should be
    /// [flushed](Self::flush).
    pub fn append(&self, c: Commit) -> bool {
        let mut overlay = self.overlay.lock();
        let next = overlay.with(c.rows, c.consistent, c.scheduled_compact, c.server_meta);
        let full = next.rows() > OVERLAY_MAX_ROWS || next.bytes() > OVERLAY_MAX_BYTES;
        *overlay = Arc::new(next);
        full
    }

    /// Writes the overlay as of the call to redb in one transaction and
    /// removes it from the overlay; then, if `durable`, makes every commit so
    /// far durable. Appends may go on meanwhile, from any thread; what they
    /// add stays in the overlay.
    pub fn flush(&self, durable: bool) -> Result<()> {
        let _flushing = self.flushing.lock();
        self.flush_locked(durable)
    }

    /// [`flush`](Self::flush), for a caller holding `flushing`.
    fn flush_locked(&self, durable: bool) -> Result<()> {
        let flushed = self.overlay.lock().clone();
        if !flushed.is_empty() {
            let txn = self.begin_write(false)?;
            write_overlay(&flushed, &txn)?;
            // Readers pair the overlay with a redb state under this lock.
            let mut current = self.overlay.lock();
            txn.commit()?;
            *current = Arc::new(current.without(&flushed));
        }
        if durable {
            self.begin_write(true)?.commit()?;
        }
        self.note_size();
        Ok(())
    }

    /// Removes, in one write transaction, the rows among the next `max_rows`
    /// rows from `from` (at or below main revision `target`) that `keep`
    /// rejects. Returns where the next chunk starts (None when the whole
    /// range is done, in which case `target` is recorded as finished) and the
    /// removed rows' value lengths.
    pub fn compact_chunk(
        &self,
        from: &RevKey,
        target: i64,
        max_rows: usize,
        mut keep: impl FnMut(&RevKey, &[u8]) -> Result<bool>,
    ) -> Result<(Option<RevKey>, Vec<usize>)> {
        // The rows to look at may still be in the overlay.
        let _flushing = self.flushing.lock();
        self.flush_locked(false)?;
        let txn = self.begin_write(false)?;
        let end = first_key_of(target + 1);
        let mut next = None;
        let mut removed = Vec::new();
        {
            let mut kv = txn.open_table(KV)?;
            let mut garbage = Vec::new();
            for (scanned, item) in kv.range::<&RevKey>(from..&end)?.enumerate() {
                let (key, value) = item?;
                if scanned == max_rows {
                    next = Some(*key.value());
                    break;
                }
                if !keep(key.value(), value.value())? {
                    garbage.push(*key.value());
                    removed.push(value.value().len());
                }
            }
            for key in &garbage {
                kv.remove(key)?;
            }
        }
        if next.is_none() {
            txn.open_table(META)?
                .insert(FINISHED_COMPACT, target as u64)?;
        }
        txn.commit()?;
        self.note_size();
        Ok((next, removed))
    }

    /// Writes the overlay to redb and makes every earlier commit durable.
    pub fn sync(&self) -> Result<()> {
        self.flush(true)
    }

    /// Writes a consistent copy of every table into a new database file at
    /// `path` (which must not exist) and makes it durable; returns the
    /// counters the copy holds.
    pub fn export_to(&self, path: &Path) -> Result<Meta> {
        let view = self.view()?;
        let meta = view
            .overlay
            .meta_over(read_meta(&view.txn.open_table(META)?)?);
        view.copy_to(&Database::builder().create(path)?)?;
        Ok(meta)
    }

    /// Replaces every table's contents with those of the database file at
    /// `path`, except the server metadata keys in `keep`, which keep their
    /// current values (or absence); all in one durable write transaction, so a
    /// crash leaves either the old contents or the new ones. Returns the new
    /// counters.
    pub fn replace_from(&self, path: &Path, keep: &[&[u8]]) -> Result<Meta> {
        let source_db = ReadOnlyDatabase::open(path)?;
        let source = source_db.begin_read()?;
        let meta = read_meta(&source.open_table(META)?)?;
        // What the overlay holds goes first, so the metadata kept below is
        // read as committed.
        let _flushing = self.flushing.lock();
        self.flush_locked(false)?;
        let txn = self.begin_write(true)?;
        let kept = {
            let table = txn.open_table(SERVER_META)?;
            let mut kept = Vec::with_capacity(keep.len());
            for key in keep {
                kept.push((*key, table.get(*key)?.map(|v| v.value().to_vec())));
            }
            kept
        };
        txn.delete_table(KV)?;
        txn.delete_table(META)?;
        txn.delete_table(SERVER_META)?;
        copy_tables(&source, &txn)?;
        {
            let mut table = txn.open_table(SERVER_META)?;
            for (key, value) in kept {
                match value {
                    Some(value) => table.insert(key, value.as_slice())?,
                    None => table.remove(key)?,
                };
            }
        }
        // The overlay is empty: flushed above, and the caller holds the
        // store's writer lock, so nothing was appended since.
        let _readers = self.overlay.lock();
        txn.commit()?;
        self.note_size();
        Ok(meta)
    }

    /// Where the database file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the database in bytes, as etcd counts it: the disk space its
    /// file takes (see [`Backend::note_size`]), as of the last write to redb.
    pub fn size_bytes(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Starts a write transaction with the given durability.
    fn begin_write(&self, durable: bool) -> Result<WriteTransaction> {
        let mut txn = self.db.read().begin_write()?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        Ok(txn)
    }
}

/// The counters stored in a `meta` table.
fn read_meta(table: &ReadOnlyTable<&'static str, u64>) -> Result<Meta> {
    let get = |k: &str| -> Result<Option<u64>> { Ok(table.get(k)?.map(|v| v.value())) };
    Ok(Meta {
        consistent_index: get(CONSISTENT_INDEX)?.unwrap_or(0),
        consistent_term: get(CONSISTENT_TERM)?.unwrap_or(0),
        // Never compacted is -1, as in etcd: a compaction at 0 is then allowed.
        scheduled_compact: get(SCHEDULED_COMPACT)?.map_or(-1, |rev| rev as i64),
        finished_compact: get(FINISHED_COMPACT)?.unwrap_or(0) as i64,
    })
}

/// Writes an overlay's rows, counters and server metadata into `txn`.
fn write_overlay(overlay: &Overlay, txn: &WriteTransaction) -> Result<()> {
    {
        let mut kv = txn.open_table(KV)?;
        for (key, value) in overlay.all_rows() {
            kv.insert(key, value.as_slice())?;
        }
    }
    if overlay.consistent().is_some() || overlay.scheduled_compact().is_some() {
        let mut meta = txn.open_table(META)?;
        if let Some((index, term)) = overlay.consistent() {
            meta.insert(CONSISTENT_INDEX, index)?;
            meta.insert(CONSISTENT_TERM, term)?;
        }
        if let Some(rev) = overlay.scheduled_compact() {
            meta.insert(SCHEDULED_COMPACT, rev as u64)?;
        }
    }
    let mut table = txn.open_table(SERVER_META)?;
    for (key, value) in overlay.meta_ops() {
        match value {
            Some(value) => {
                table.insert(key.as_slice(), value.as_slice())?;
            }
            None => {
                table.remove(key.as_slice())?;
            }
        }
    }
    Ok(())
}

/// Copies every row of the three tables as `source` sees them into `target`
/// (whose tables are empty or absent).
fn copy_tables(source: &ReadTransaction, target: &WriteTransaction) -> Result<()> {
    {
        let from = source.open_table(KV)?;
        let mut to = target.open_table(KV)?;
        for item in from.iter()? {
            let (key, value) = item?;
            to.insert(key.value(), value.value())?;
        }
    }
    copy_meta_tables(source, target)
}

/// Copies the `meta` and `server_meta` tables as `source` sees them into
/// `target` (whose tables are empty or absent).
fn copy_meta_tables(source: &ReadTransaction, target: &WriteTransaction) -> Result<()> {
    {
        let from = source.open_table(META)?;
        let mut to = target.open_table(META)?;
        for item in from.iter()? {
            let (key, value) = item?;
            to.insert(key.value(), value.value())?;
        }
    }
    let from = source.open_table(SERVER_META)?;
    let mut to = target.open_table(SERVER_META)?;
    for item in from.iter()? {
        let (key, value) = item?;
        to.insert(key.value(), value.value())?;
    }
    Ok(())
}

/// The overlay and a redb read transaction that together hold one committed
/// state, with the database the transaction reads (fields drop in order).
struct View {
    /// The redb part.
    txn: ReadTransaction,
    /// What redb does not hold yet.
    overlay: Arc<Overlay>,
    /// Open while the transaction is.
    _db: Arc<Database>,
}

impl View {
    /// Writes every table as this view sees it into `target` (empty), in one
    /// durable transaction.
    fn copy_to(&self, target: &Database) -> Result<()> {
        let txn = target.begin_write()?;
        copy_tables(&self.txn, &txn)?;
        write_overlay(&self.overlay, &txn)?;
        txn.commit()?;
        Ok(())
    }
}

/// A read-only view of the rows, fixed when it was taken.
pub(crate) struct Snapshot {
    /// The `kv` table as of the snapshot.
    rows: ReadOnlyTable<&'static RevKey, &'static [u8]>,
    /// The newer rows not in that table.
    overlay: Arc<Overlay>,
    /// The database the table is read from, open while the table is.
    _db: Arc<Database>,
}

impl Snapshot {
    /// The key-value pair a put at `rev` wrote; an error if the row is gone,
    /// since the index said it must be there.
    pub fn load(&self, rev: Revision) -> Result<KeyValue> {
        let key = encode_key(rev, false);
        if let Some(row) = self.overlay.get(&key) {
            return Ok(KeyValue::decode(row)?);
        }
        match self.rows.get(&key)? {
            Some(row) => Ok(KeyValue::decode(row.value())?),
            None => Err(Error::Corrupted(format!("no row for revision {rev}"))),
        }
    }

    /// Calls `f` with every row at or below main revision `upto`, in revision
    /// order.
    pub fn scan(&self, upto: i64, mut f: impl FnMut(&RevKey, &[u8]) -> Result<()>) -> Result<()> {
        self.scan_between(0, upto, |key, row| f(key, row).map(|()| true))
    }

    /// Calls `f` with every row of main revisions `from..=upto`, in revision
    /// order, until `f` returns false.
    pub fn scan_between(
        &self,
        from: i64,
        upto: i64,
        mut f: impl FnMut(&RevKey, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        if from > upto {
            return Ok(());
        }
        let start = first_key_of(from);
        let end = first_key_of(upto.saturating_add(1));
        for item in self.rows.range::<&RevKey>(&start..&end)? {
            let (key, value) = item?;
            if !f(key.value(), value.value())? {
                return Ok(());
            }
        }
        for (key, value) in self.overlay.range(&start, &end) {
            if !f(key, value)? {
                break;
            }
        }
        Ok(())
    }
}

/// The fields of a row that rebuilding the index and compaction need; prost
/// skips the value and lease without copying them.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RowHead {
    /// The key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Main revision that created the key's generation.
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    /// The key's version at this row.
    #[prost(int64, tag = "4")]
    pub version: i64,
}
