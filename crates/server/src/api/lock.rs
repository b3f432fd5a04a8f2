//! The Lock service (`v3lockpb.Lock`): a distributed mutex per name, held
//! by the session (lease) that asked for it.
//!
//! Lock puts `<name>/<lease hex>` if absent and, in the same txn, reads the
//! oldest key under `<name>/`. If that is its own key it holds the lock at
//! once; otherwise it waits until every key created before its own is
//! deleted, then answers with the header of the read that found none. The
//! answer's `key` is what Unlock deletes. A lock whose lease ends (expiry,
//! revoke) is released with it.
//!
//! As etcd 3.4: an empty name is allowed (the key is `/<lease hex>`); no
//! lease means a new 60 s lease that nobody keeps alive; the same lease
//! locking the same name again gets the lock it holds; Unlock deletes any
//! key it is given. Errors carry the text of the call underneath and code
//! UNKNOWN.

use retcd_api::etcdserverpb::range_request::SortOrder;
use retcd_api::etcdserverpb::{RangeRequest, TxnRequest};
use retcd_api::v3lockpb::lock_server::Lock;
use retcd_api::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use crate::api::concurrency::{
    CleanupOnCancel, ConcurrencyClient, created_at, delete_op, first_by_create, key_prefix,
    participant_key, put_op, range_op, take_range,
};

/// Serves etcd's Lock API on top of the KV, Lease and Watch services.
#[derive(Clone)]
pub struct LockService {
    /// The services the mutex recipe calls.
    pub client: ConcurrencyClient,
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let req = req.into_inner();
        let lease = self.client.session(req.lease).await?;
        let prefix = key_prefix(&req.name);
        let my_key = participant_key(&prefix, lease);
        let owner = first_by_create(&prefix, SortOrder::Ascend);
        let mut resp = self
            .client
            .txn(TxnRequest {
                compare: vec![created_at(&my_key, 0)],
                success: vec![put_op(&my_key, b"", lease), range_op(owner.clone())],
                failure: vec![range_op(my_key_read(&my_key)), range_op(owner)],
            })
            .await?;
        // The key's create revision: this txn's if it put the key, else the
        // one it already had (this session holds or waits for the lock).
        let mut my_revision = resp.header.as_ref().map_or(0, |h| h.revision);
        if !resp.succeeded
            && let Some(kv) = take_range(&mut resp, 0).kvs.first()
        {
            my_revision = kv.create_revision;
        }
        let oldest = take_range(&mut resp, 1);
        let held = oldest
            .kvs
            .first()
            .is_none_or(|kv| kv.create_revision == my_revision);
        let header = if held {
            resp.header
        } else {
            let mut cleanup = CleanupOnCancel::new(
                self.client.kv.clone(),
                TxnRequest {
                    success: vec![delete_op(&my_key)],
                    ..Default::default()
                },
            );
            let waited = self.client.wait_deletes(&prefix, my_revision - 1).await;
            cleanup.disarm();
            match waited {
                Ok(header) => header,
                Err(e) => {
                    // Give the place in the queue back, as etcd does.
                    let _ = self.client.delete(my_key).await;
                    return Err(e);
                }
            }
        };
        Ok(Response::new(LockResponse {
            header,
            key: my_key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let header = self.client.delete(req.into_inner().key).await?;
        Ok(Response::new(UnlockResponse { header }))
    }
}

/// A read of exactly `key`.
fn my_key_read(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}
