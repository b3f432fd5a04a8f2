//! The write path: one [`WriteBatch`] at a time, one redb commit per batch.
//!
//! The apply loop opens a batch, applies many requests to it, and commits it
//! once. Inside the batch:
//! - every put, deleting delete_range or writing txn takes the next main
//!   revision; each change inside it takes the next sub revision;
//! - the index is updated at once (later requests of the batch, and later
//!   ops of a txn, must see earlier writes), but readers outside the batch
//!   read at the published revision and so cannot see it;
//! - new rows wait in memory (in revision order) and are written to redb in
//!   one transaction at commit; only then is the new revision published;
//! - a compaction is checked and recorded, but the index is compacted (and
//!   the compaction revision published) only after commit.
//!
//! Failure leaves nothing behind: an op that fails reverts the rows and index
//! entries it added (the pending rows double as the undo log), and a batch
//! dropped without commit, or whose commit fails, reverts all of them.
//!
//! etcd's txn rules kept here: compares, nested ones included, read the state
//! before the txn; a range inside the txn sees the txn's earlier writes but
//! may not ask for a revision after the one the txn started from; the whole
//! txn is one main revision, taken only if something was written. Where etcd
//! would panic mid-txn (a put with `ignore_value` after a delete of its key
//! in the same txn), the txn fails with the error instead and changes
//! nothing.

use std::sync::atomic::Ordering;

use prost::Message;
use retcd_api::etcdserverpb::request_op::Request;
use retcd_api::etcdserverpb::response_op::Response;
use retcd_api::etcdserverpb::{
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use retcd_api::mvccpb::event::EventType;
use retcd_api::mvccpb::{Event, KeyValue};

use crate::backend::{Commit, RowHead, Snapshot};
use crate::error::{Error, Result};
use crate::index::KeySpan;
use crate::key_index::KeyState;
use crate::lock::WriterGuard;
use crate::range;
use crate::revision::{RevKey, Revision, decode_key, encode_key};
use crate::store::{Shared, header, row_bytes};
use crate::txn::compares_hold;

/// The single write transaction of a [`Store`](crate::Store).
pub struct WriteBatch<'a> {
    /// The store's shared state.
    shared: &'a Shared,
    /// Holds the writer lock for the batch's lifetime.
    _writer: WriterGuard<'a>,
    /// Committed rows as of the batch's start.
    snapshot: Snapshot,
    /// The store's published revision when the batch started.
    committed_rev: i64,
    /// The revision including this batch's writes.
    rev: i64,
    /// The compaction revision including this batch's compactions.
    compact_rev: i64,
    /// A compaction scheduled by this batch.
    scheduled_compact: Option<i64>,
    /// New rows in revision order; also the undo log.
    rows: Vec<(RevKey, Vec<u8>)>,
    /// Events not yet taken.
    events: Vec<Event>,
    /// Server metadata to store (`None`: delete), in call order.
    server_meta: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// `(consistent_index, term)` to store.
    consistent: Option<(u64, u64)>,
    /// Set once committed, so drop does not revert.
    committed: bool,
}

/// Revision bookkeeping for one request (put, delete_range or txn).
struct Op {
    /// The batch's revision before the request.
    begin: i64,
    /// Changes made so far; the next change's sub revision.
    sub: i64,
}

impl Op {
    /// The revision reads inside the request see: its own if it wrote.
    fn read_rev(&self) -> i64 {
        if self.sub > 0 {
            self.begin + 1
        } else {
            self.begin
        }
    }

    /// Takes the revision for the next change.
    fn next(&mut self) -> Revision {
        self.sub += 1;
        Revision::new(self.begin + 1, self.sub - 1)
    }
}

impl<'a> WriteBatch<'a> {
    /// Starts a batch; the caller holds the writer lock and took `snapshot`
    /// after acquiring it.
    pub(crate) fn new(shared: &'a Shared, writer: WriterGuard<'a>, snapshot: Snapshot) -> Self {
        let rev = shared
            .current_rev
            .load(std::sync::atomic::Ordering::Acquire);
        let compact_rev = shared
            .compact_rev
            .load(std::sync::atomic::Ordering::Acquire);
        WriteBatch {
            shared,
            _writer: writer,
            snapshot,
            committed_rev: rev,
            rev,
            compact_rev,
            scheduled_compact: None,
            rows: Vec::new(),
            events: Vec::new(),
            server_meta: Vec::new(),
            consistent: None,
            committed: false,
        }
    }

    /// The revision including this batch's writes so far.
    pub fn current_revision(&self) -> i64 {
        self.rev
    }

    /// Puts a key. `lease_exists` is asked about a non-zero `req.lease`;
    /// false fails with `Error::LeaseNotFound` and changes nothing.
    pub fn put(
        &mut self,
        req: &PutRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<PutResponse> {
        self.run_op(|b, op| b.apply_put(op, req, lease_exists, false))
    }

    /// Deletes a key or range; all deletions share one revision, and deleting
    /// nothing takes none.
    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        self.run_op(|b, op| b.apply_delete(op, req))
    }

    /// Runs a txn as one revision (none if it writes nothing); on error
    /// nothing of it remains.
    pub fn txn(
        &mut self,
        req: &TxnRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<TxnResponse> {
        self.run_op(|b, op| {
            let mut resp = b.apply_txn(op, req, lease_exists)?;
            resp.header = Some(header(op.read_rev()));
            Ok(resp)
        })
    }

    /// Reads like [`Store::range`](crate::Store::range), but sees this
    /// batch's writes.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let op = Op {
            begin: self.rev,
            sub: 0,
        };
        self.txn_range(&op, req)
    }

    /// Schedules compaction at `rev`: fails with `Compacted` if `rev` is not
    /// above the current compaction revision, `FutureRevision` if above the
    /// current revision. The index is compacted when the batch commits, the
    /// rows later by the compactor thread.
    pub fn compact(&mut self, rev: i64) -> Result<CompactionResponse> {
        if rev <= self.compact_rev {
            return Err(Error::Compacted);
        }
        if rev > self.rev {
            return Err(Error::FutureRevision);
        }
        self.compact_rev = rev;
        self.scheduled_compact = Some(rev);
        Ok(CompactionResponse {
            header: Some(header(self.rev)),
        })
    }

    /// Stores a server metadata value with this batch.
    pub fn meta_put(&mut self, key: &[u8], value: &[u8]) {
        self.server_meta.push((key.to_vec(), Some(value.to_vec())));
    }

    /// Deletes a server metadata value with this batch.
    pub fn meta_delete(&mut self, key: &[u8]) {
        self.server_meta.push((key.to_vec(), None));
    }

    /// Records the raft index and term of the last entry applied in this batch.
    pub fn set_consistent_index(&mut self, index: u64, term: u64) {
        self.consistent = Some((index, term));
    }

    /// Every event produced since the last call, in revision order, with
    /// `prev_kv` set when the key existed before the request.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Commits the batch: visible to readers from here on, and written to
    /// redb and fsynced if `durable` (else possibly lost on a crash, which
    /// raft's replay makes good). An error means the write to redb failed:
    /// the batch stays committed in memory, and the caller must stop, since
    /// the disk can no longer be trusted.
    pub fn commit(mut self, durable: bool) -> Result<()> {
        let shared = self.shared;
        let nothing_new = self.rows.is_empty()
            && self.server_meta.is_empty()
            && self.consistent.is_none()
            && self.scheduled_compact.is_none();
        let bytes: u64 = self.rows.iter().map(|(_, row)| row_bytes(row.len())).sum();
        let flush = !nothing_new
            && shared.backend.append(Commit {
                rows: std::mem::take(&mut self.rows),
                consistent: self.consistent,
                scheduled_compact: self.scheduled_compact,
                server_meta: std::mem::take(&mut self.server_meta),
            });
        self.committed = true;
        shared.live_bytes.fetch_add(bytes, Ordering::Relaxed);
        shared.current_rev.store(self.rev, Ordering::Release);
        if let Some((index, term)) = self.consistent {
            shared.consistent_term.store(term, Ordering::Release);
            shared.consistent_index.store(index, Ordering::Release);
        }
        if let Some(rev) = self.scheduled_compact {
            {
                let mut index = shared.index.write();
                index.compact(rev);
                shared.compact_rev.store(rev, Ordering::Release);
            }
            shared.compaction.schedule(rev);
        }
        if durable || flush {
            shared.backend.flush(durable)?;
        }
        Ok(())
    }

    /// Runs one request; on error reverts whatever it changed.
    fn run_op<T>(&mut self, f: impl FnOnce(&mut Self, &mut Op) -> Result<T>) -> Result<T> {
        let (rows, events) = (self.rows.len(), self.events.len());
        let mut op = Op {
            begin: self.rev,
            sub: 0,
        };
        match f(self, &mut op) {
            Ok(v) => {
                self.rev = op.read_rev();
                Ok(v)
            }
            Err(e) => {
                self.rollback(rows, events);
                Err(e)
            }
        }
    }

    /// Reverts every row from `rows` on (and its index entry) and drops the
    /// events from `events` on.
    fn rollback(&mut self, rows: usize, events: usize) {
        let shared = self.shared;
        let mut index = shared.index.write();
        for (key, row) in self.rows.drain(rows..).rev() {
            let (_, tombstone) = decode_key(&key);
            let head = RowHead::decode(row.as_slice()).expect("a row this batch encoded");
            if tombstone {
                index.undo_tombstone(&head.key);
            } else {
                index.undo_put(&head.key);
            }
        }
        self.events.truncate(events);
    }

    /// The key-value pair a put at `rev` wrote, from this batch or the backend.
    fn load(&self, rev: Revision) -> Result<KeyValue> {
        if rev.main <= self.committed_rev {
            return self.snapshot.load(rev);
        }
        let key = encode_key(rev, false);
        match self.rows.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => Ok(KeyValue::decode(self.rows[i].1.as_slice())?),
            Err(_) => Err(Error::Corrupted(format!(
                "no pending row for revision {rev}"
            ))),
        }
    }

    /// Loads the rows of optional key states.
    fn load_state(&self, state: Option<KeyState>) -> Result<Option<KeyValue>> {
        state.map(|s| self.load(s.modified)).transpose()
    }

    /// A put inside request `op`; `in_txn` switches to etcd's txn check order
    /// (existence before lease).
    fn apply_put(
        &mut self,
        op: &mut Op,
        req: &PutRequest,
        lease_exists: &dyn Fn(i64) -> bool,
        in_txn: bool,
    ) -> Result<PutResponse> {
        check_put_request(req)?;
        let check_lease = || {
            if req.lease != 0 && !lease_exists(req.lease) {
                return Err(Error::LeaseNotFound);
            }
            Ok(())
        };
        if !in_txn {
            check_lease()?;
        }
        // `cur` is what this request sees; `before` what the key was before
        // the request (they differ only after a delete in the same txn).
        let (cur, before) = {
            let index = self.shared.index.read();
            let cur = index.get(&req.key, op.read_rev());
            let before = if op.sub == 0 {
                cur
            } else {
                index.get(&req.key, op.begin)
            };
            (cur, before)
        };
        if (req.ignore_value || req.ignore_lease) && cur.is_none() {
            return Err(Error::KeyNotFound);
        }
        if in_txn {
            check_lease()?;
        }
        let same = cur.map(|s| s.modified) == before.map(|s| s.modified);
        // The previous value is read only when the request needs it: the
        // event's prev_kv is filled in later by the watch dispatcher, and only
        // if a watcher asks for it (etcd, too, reads it at send time).
        let needs_prev = req.prev_kv || req.ignore_value || req.ignore_lease;
        let cur_kv = if needs_prev {
            self.load_state(cur)?
        } else {
            None
        };
        let before_kv = if same || !needs_prev {
            None
        } else {
            self.load_state(before)?
        };

        let (value, lease) = match &cur_kv {
            Some(p) if req.ignore_value || req.ignore_lease => (
                if req.ignore_value {
                    p.value.clone()
                } else {
                    req.value.clone()
                },
                if req.ignore_lease { p.lease } else { req.lease },
            ),
            _ => (req.value.clone(), req.lease),
        };
        let rev = op.next();
        let kv = KeyValue {
            key: req.key.clone(),
            value,
            create_revision: cur.map_or(rev.main, |s| s.created.main),
            mod_revision: rev.main,
            version: cur.map_or(1, |s| s.version + 1),
            lease,
        };
        self.rows.push((encode_key(rev, false), kv.encode_to_vec()));
        self.shared.index.write().put(&req.key, rev);

        let (resp_prev, event_prev) = match (same, req.prev_kv) {
            (true, true) => (cur_kv.clone(), cur_kv),
            (true, false) => (None, cur_kv),
            (false, true) => (cur_kv, before_kv),
            (false, false) => (None, before_kv),
        };
        self.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: event_prev,
        });
        Ok(PutResponse {
            header: Some(header(rev.main)),
            prev_kv: resp_prev,
        })
    }

    /// A delete_range inside request `op`.
    fn apply_delete(
        &mut self,
        op: &mut Op,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse> {
        if req.key.is_empty() {
            return Err(Error::EmptyKey);
        }
        let span = KeySpan::new(&req.key, &req.range_end);
        let mut targets: Vec<(Vec<u8>, KeyState, Option<KeyState>)> = Vec::new();
        {
            let index = self.shared.index.read();
            index.visit(span, op.read_rev(), |key, cur| {
                let before = if op.sub == 0 {
                    Some(cur)
                } else {
                    index.get(key, op.begin)
                };
                targets.push((key.to_vec(), cur, before));
                true
            });
        }
        let mut prev_kvs = Vec::new();
        let mut event_prevs = Vec::with_capacity(targets.len());
        for (_, cur, before) in &targets {
            let cur_kv = self.load(cur.modified)?;
            let event_prev = match before {
                Some(b) if b.modified == cur.modified => {
                    if req.prev_kv {
                        prev_kvs.push(cur_kv.clone());
                    }
                    Some(cur_kv)
                }
                _ => {
                    if req.prev_kv {
                        prev_kvs.push(cur_kv);
                    }
                    self.load_state(*before)?
                }
            };
            event_prevs.push(event_prev);
        }

        let deleted = targets.len() as i64;
        let shared = self.shared;
        let mut index = shared.index.write();
        for ((key, _, _), prev_kv) in targets.into_iter().zip(event_prevs) {
            let rev = op.next();
            let tombstone = KeyValue {
                key,
                ..Default::default()
            };
            self.rows
                .push((encode_key(rev, true), tombstone.encode_to_vec()));
            let was_alive = index.tombstone(&tombstone.key, rev);
            assert!(was_alive, "deleting a key the index just listed");
            self.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    mod_revision: rev.main,
                    ..tombstone
                }),
                prev_kv,
            });
        }
        Ok(DeleteRangeResponse {
            header: Some(header(op.read_rev())),
            deleted,
            prev_kvs,
        })
    }

    /// A range inside request `op`: sees the request's earlier writes, but may
    /// not name a revision past the one the request started from.
    fn txn_range(&self, op: &Op, req: &RangeRequest) -> Result<RangeResponse> {
        if req.key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if req.revision > op.begin {
            return Err(Error::FutureRevision);
        }
        let read = op.read_rev();
        let at = if req.revision > 0 { req.revision } else { read };
        if at < self.compact_rev {
            return Err(Error::Compacted);
        }
        let plan = range::plan(&self.shared.index.read(), req, at);
        let (kvs, more) = range::finish(req, plan.states, |rev| self.load(rev))?;
        Ok(RangeResponse {
            header: Some(header(read)),
            kvs,
            more,
            count: plan.count,
        })
    }

    /// A txn (or nested txn) inside request `op`; the caller sets the header.
    fn apply_txn(
        &mut self,
        op: &mut Op,
        req: &TxnRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<TxnResponse> {
        let succeeded = compares_hold(&req.compare, &self.shared.index, op.begin, |rev| {
            self.load(rev)
        })?;
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for r in ops {
            let response = match &r.request {
                Some(Request::RequestRange(q)) => {
                    Some(Response::ResponseRange(self.txn_range(op, q)?))
                }
                Some(Request::RequestPut(q)) => Some(Response::ResponsePut(self.apply_put(
                    op,
                    q,
                    lease_exists,
                    true,
                )?)),
                Some(Request::RequestDeleteRange(q)) => {
                    Some(Response::ResponseDeleteRange(self.apply_delete(op, q)?))
                }
                Some(Request::RequestTxn(q)) => {
                    let mut nested = self.apply_txn(op, q, lease_exists)?;
                    // etcd leaves nested txn headers empty.
                    nested.header = Some(ResponseHeader::default());
                    Some(Response::ResponseTxn(nested))
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

impl Drop for WriteBatch<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.rollback(0, 0);
        }
    }
}

/// The checks a put passes before it may touch the store: a key, and no value
/// or lease beside the matching `ignore_*` flag. The server runs them before
/// proposing too, so a bad put never reaches the raft log.
pub fn check_put_request(req: &PutRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}
