//! What the Lock and Election services are built on: the KV, Lease and
//! Watch services called in process, the way etcd's own services call them
//! through an embedded client.
//!
//! The protocol (etcd's `clientv3/concurrency`, which etcd's v3lock and
//! v3election servers run on the server side):
//!
//! - a *session* is a lease: the one the request names, or a new one with a
//!   TTL of [`SESSION_TTL_SECS`] when it names none (lease 0). The server
//!   never keeps it alive, so an unnamed session ends a minute later;
//! - a participant's key is `<name>/<lease id in hex>`, put with its lease
//!   only if it does not exist yet (create revision 0);
//! - among the keys under `<name>/` the one created first holds the lock or
//!   leads the election; the others wait, each for the deletion of every key
//!   created before its own ([`ConcurrencyClient::wait_deletes`]).
//!
//! Invariants: errors of the calls underneath reach the caller with their
//! text and gRPC code UNKNOWN ([`client_error`]), as etcd's embedded client
//! turns them into plain Go errors; a call abandoned while waiting (the HTTP
//! or gRPC client left) removes the key it put, as etcd does on a cancelled
//! context ([`CleanupOnCancel`]).

use futures::stream;
use retcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use retcd_api::etcdserverpb::kv_server::Kv;
use retcd_api::etcdserverpb::lease_server::Lease;
use retcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use retcd_api::etcdserverpb::watch_request::RequestUnion;
use retcd_api::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest,
    WatchResponse, request_op, response_op,
};
use retcd_api::mvccpb::event::EventType;
use tokio::sync::mpsc;
use tonic::{Request, Status};

use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::watch::{WatchItem, WatchService};

/// TTL of the lease a session takes when the request names none (etcd's
/// default session TTL).
pub const SESSION_TTL_SECS: i64 = 60;

/// Lease id meaning "grant a new lease for the session".
const NO_LEASE: i64 = 0;

/// The text of a wait whose watch ended without the deletion it waited for.
const LOST_WATCHER: &str = "lost watcher waiting for delete";

/// The text of a watch cancelled because its start revision was compacted.
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

/// An error of a call underneath, as etcd's embedded client hands it on:
/// same text, code UNKNOWN.
pub fn client_error(status: Status) -> Status {
    Status::unknown(status.message())
}

/// The services the concurrency recipes call.
#[derive(Clone)]
pub struct ConcurrencyClient {
    /// Puts, deletes, txns and ranges.
    pub kv: KvService,
    /// Session leases.
    pub lease: LeaseService,
    /// Waiting for deletions and observing leaders.
    pub watch: WatchService,
}

impl ConcurrencyClient {
    /// The lease of a session asked for with `lease`: that one, or a new one
    /// when it is 0.
    pub async fn session(&self, lease: i64) -> Result<i64, Status> {
        if lease != NO_LEASE {
            return Ok(lease);
        }
        let grant = LeaseGrantRequest {
            ttl: SESSION_TTL_SECS,
            id: NO_LEASE,
        };
        let resp = self
            .lease
            .lease_grant(Request::new(grant))
            .await
            .map_err(client_error)?;
        Ok(resp.into_inner().id)
    }

    /// Runs `txn`.
    pub async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, Status> {
        let resp = self.kv.txn(Request::new(txn)).await.map_err(client_error)?;
        Ok(resp.into_inner())
    }

    /// Reads `range`.
    pub async fn range(&self, range: RangeRequest) -> Result<RangeResponse, Status> {
        let resp = self
            .kv
            .range(Request::new(range))
            .await
            .map_err(client_error)?;
        Ok(resp.into_inner())
    }

    /// Deletes `key`; the header of the delete.
    pub async fn delete(&self, key: Vec<u8>) -> Result<Option<ResponseHeader>, Status> {
        let delete = DeleteRangeRequest {
            key,
            ..Default::default()
        };
        let resp = self
            .kv
            .delete_range(Request::new(delete))
            .await
            .map_err(client_error)?;
        Ok(resp.into_inner().header)
    }

    /// Waits until no key under `prefix` created at or below
    /// `max_create_revision` is left, newest first; the header of the read
    /// that found none.
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_revision: i64,
    ) -> Result<Option<ResponseHeader>, Status> {
        loop {
            let mut newest = first_by_create(prefix, SortOrder::Descend);
            newest.max_create_revision = max_create_revision;
            let resp = self.range(newest).await?;
            let Some(kv) = resp.kvs.first() else {
                return Ok(resp.header);
            };
            let revision = resp.header.as_ref().map_or(0, |h| h.revision);
            self.wait_delete(&kv.key, revision).await?;
        }
    }

    /// Waits for a deletion of `key` at or after `revision`.
    async fn wait_delete(&self, key: &[u8], revision: i64) -> Result<(), Status> {
        let mut watch = self.watch(key.to_vec(), Vec::new(), revision);
        loop {
            let resp = watch.next().await?;
            if resp
                .events
                .iter()
                .any(|e| e.r#type == EventType::Delete as i32)
            {
                return Ok(());
            }
        }
    }

    /// Watches `key` (to `range_end`) from `start_revision`.
    pub fn watch(&self, key: Vec<u8>, range_end: Vec<u8>, start_revision: i64) -> KeyWatch {
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key,
                range_end,
                start_revision,
                ..Default::default()
            })),
        };
        KeyWatch {
            responses: self.watch.open(stream::iter([Ok(create)])),
        }
    }
}

/// One watcher on its own stream; dropping it ends the stream.
pub struct KeyWatch {
    /// The stream's responses.
    responses: mpsc::Receiver<WatchItem>,
}

impl KeyWatch {
    /// The next response carrying events; an error once the watch ended
    /// (cancelled by a compaction, or the server stopping).
    pub async fn next(&mut self) -> Result<WatchResponse, Status> {
        loop {
            let resp = match self.responses.recv().await {
                Some(item) => item.map_err(client_error)?,
                None => return Err(Status::unknown(LOST_WATCHER)),
            };
            if resp.canceled {
                let text = if resp.compact_revision != 0 {
                    COMPACTED
                } else {
                    LOST_WATCHER
                };
                return Err(Status::unknown(text));
            }
            if !resp.events.is_empty() {
                return Ok(resp);
            }
        }
    }
}

/// A write that undoes a participant's key if the call that put it is
/// dropped before it disarms the guard.
pub struct CleanupOnCancel {
    /// Where to send the write.
    kv: KvService,
    /// The write; `None` once disarmed.
    undo: Option<TxnRequest>,
}

impl CleanupOnCancel {
    /// A guard that runs `undo` unless disarmed.
    pub fn new(kv: KvService, undo: TxnRequest) -> Self {
        CleanupOnCancel {
            kv,
            undo: Some(undo),
        }
    }

    /// The call finished (or failed and cleaned up itself): nothing to undo.
    pub fn disarm(&mut self) {
        self.undo = None;
    }
}

impl Drop for CleanupOnCancel {
    fn drop(&mut self) {
        let Some(undo) = self.undo.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let kv = self.kv.clone();
        runtime.spawn(async move {
            if let Err(status) = kv.txn(Request::new(undo)).await {
                tracing::warn!(error = %status.message(), "removing an abandoned lock or election key failed");
            }
        });
    }
}

/// The key of a session's participant under `prefix`: the lease id in hex,
/// as Go's `%x` writes an int64 (a sign, then the magnitude).
pub fn participant_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let sign = if lease < 0 { "-" } else { "" };
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{sign}{:x}", lease.unsigned_abs()).as_bytes());
    key
}

/// `name/`, the prefix of an election's or a lock's keys.
pub fn key_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte is 0xff: to the end of the keyspace.
    vec![0]
}

/// A read of the key under `prefix` created first (`Ascend`) or last (`Descend`).
pub fn first_by_create(prefix: &[u8], order: SortOrder) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The watch range of every key under `prefix`.
pub fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (prefix.to_vec(), prefix_end(prefix))
}

/// A compare: `key`'s create revision equals `revision`.
pub fn created_at(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
        ..Default::default()
    }
}

/// An op putting `value` at `key` with `lease`.
pub fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

/// An op reading `range`.
pub fn range_op(range: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(range)),
    }
}

/// An op deleting `key`.
pub fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    }
}

/// Takes the range answer at `index` of a txn's responses (empty if it is
/// not one).
pub fn take_range(resp: &mut TxnResponse, index: usize) -> RangeResponse {
    match resp
        .responses
        .get_mut(index)
        .and_then(|r| r.response.as_mut())
    {
        Some(response_op::Response::ResponseRange(range)) => std::mem::take(range),
        _ => RangeResponse::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_keys_as_go_formats_them() {
        assert_eq!(participant_key(b"l/", 1234), b"l/4d2");
        assert_eq!(
            participant_key(b"/", 0x6e78a20d2fbc4b05),
            b"/6e78a20d2fbc4b05"
        );
        assert_eq!(participant_key(b"e/", -1), b"e/-1");
        assert_eq!(
            participant_key(b"e/", i64::MIN),
            b"e/-8000000000000000".to_vec()
        );
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(key_prefix(b"lock"), b"lock/");
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        let first = first_by_create(b"e/", SortOrder::Ascend);
        assert_eq!(
            (first.key, first.range_end),
            (b"e/".to_vec(), b"e0".to_vec())
        );
        assert_eq!(first.limit, 1);
    }
}
