//! The Election service (`v3electionpb.Election`): leader election per
//! name, with a value the leader proclaims.
//!
//! A candidate's key is `<name>/<lease hex>`; the oldest key under
//! `<name>/` is the leader and its value the proclaimed one.
//!
//! - Campaign puts the key with the value if absent (a session campaigning
//!   again keeps its key and, if the value differs, proclaims the new one),
//!   waits until it is the oldest, and answers with the txn's header and the
//!   leader key (name, key, create revision, lease) the other calls take.
//! - Proclaim and Resign act only while the key still has that create
//!   revision: Proclaim puts the value (else `election: not leader`),
//!   Resign deletes the key (else nothing, and no error).
//! - Leader reads the oldest key (`election: no leader` if there is none).
//! - Observe streams the leader: the current one (or the first put once
//!   there is one), each later put of its key, and after its deletion the
//!   next leader.
//!
//! As etcd 3.4: a leader key with lease 0 makes Proclaim and Resign grant a
//! new 60 s session lease first (Proclaim then puts the value with it); a
//! missing leader key gets `"leader" field must be provided`; errors carry
//! code UNKNOWN.

use retcd_api::etcdserverpb::range_request::SortOrder;
use retcd_api::etcdserverpb::{RangeRequest, ResponseHeader, TxnRequest};
use retcd_api::mvccpb::KeyValue;
use retcd_api::mvccpb::event::EventType;
use retcd_api::v3electionpb::election_server::Election;
use retcd_api::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::api::concurrency::{
    CleanupOnCancel, ConcurrencyClient, KeyWatch, created_at, delete_op, first_by_create,
    key_prefix, participant_key, prefix_range, put_op, range_op, take_range,
};

/// etcd's text for Proclaim or Resign without a leader key.
const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";
/// etcd's text for Proclaim by a key that no longer leads.
const NOT_LEADER: &str = "election: not leader";
/// etcd's text for Leader when nobody leads.
const NO_LEADER: &str = "election: no leader";

/// Leader answers buffered between an Observe task and its client.
const OBSERVE_RESPONSES: usize = 16;

/// Serves etcd's Election API on top of the KV, Lease and Watch services.
#[derive(Clone)]
pub struct ElectionService {
    /// The services the election recipe calls.
    pub client: ConcurrencyClient,
}

/// The stream of Observe answers.
pub type ObserveStream = ReceiverStream<Result<LeaderResponse, Status>>;

impl ElectionService {
    /// Puts `value` at the leader key if it still has create revision `rev`.
    async fn proclaim_as(
        &self,
        key: &[u8],
        rev: i64,
        lease: i64,
        value: &[u8],
    ) -> Result<Option<ResponseHeader>, Status> {
        let resp = self
            .client
            .txn(TxnRequest {
                compare: vec![created_at(key, rev)],
                success: vec![put_op(key, value, lease)],
                failure: vec![],
            })
            .await?;
        if !resp.succeeded {
            return Err(Status::unknown(NOT_LEADER));
        }
        Ok(resp.header)
    }

    /// Starts observing election `name`; answers go to the returned stream
    /// until its receiver is dropped.
    pub fn observe_name(&self, name: Vec<u8>) -> ObserveStream {
        let (tx, rx) = mpsc::channel(OBSERVE_RESPONSES);
        let client = self.client.clone();
        let prefix = key_prefix(&name);
        tokio::spawn(async move {
            tokio::select! {
                () = observe(&client, &prefix, &tx) => {}
                () = tx.closed() => {}
            }
        });
        ReceiverStream::new(rx)
    }
}

/// The txn deleting `key` if it still has create revision `rev`.
fn resign_txn(key: &[u8], rev: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![created_at(key, rev)],
        success: vec![delete_op(key)],
        failure: vec![],
    }
}

#[tonic::async_trait]
impl Election for ElectionService {
    type ObserveStream = ObserveStream;

    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let req = req.into_inner();
        let lease = self.client.session(req.lease).await?;
        let prefix = key_prefix(&req.name);
        let key = participant_key(&prefix, lease);
        let mut resp = self
            .client
            .txn(TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, &req.value, lease)],
                failure: vec![range_op(RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                })],
            })
            .await?;
        let mut rev = resp.header.as_ref().map_or(0, |h| h.revision);
        if !resp.succeeded {
            let existing = take_range(&mut resp, 0);
            if let Some(kv) = existing.kvs.first() {
                rev = kv.create_revision;
                if kv.value != req.value
                    && let Err(e) = self.proclaim_as(&key, rev, lease, &req.value).await
                {
                    let _ = self.client.txn(resign_txn(&key, rev)).await;
                    return Err(e);
                }
            }
        }
        let mut cleanup = CleanupOnCancel::new(self.client.kv.clone(), resign_txn(&key, rev));
        let waited = self.client.wait_deletes(&prefix, rev - 1).await;
        cleanup.disarm();
        waited?;
        Ok(Response::new(CampaignResponse {
            header: resp.header,
            leader: Some(LeaderKey {
                name: req.name,
                key,
                rev,
                lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let req = req.into_inner();
        let leader = req
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let lease = self.client.session(leader.lease).await?;
        let header = self
            .proclaim_as(&leader.key, leader.rev, lease, &req.value)
            .await?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let prefix = key_prefix(&req.into_inner().name);
        let mut resp = self
            .client
            .range(first_by_create(&prefix, SortOrder::Ascend))
            .await?;
        if resp.kvs.is_empty() {
            return Err(Status::unknown(NO_LEADER));
        }
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(resp.kvs.swap_remove(0)),
        }))
    }

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        Ok(Response::new(self.observe_name(req.into_inner().name)))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let leader = req
            .into_inner()
            .leader
            .ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        // etcd opens a session (granting a lease for lease 0) before it resigns.
        self.client.session(leader.lease).await?;
        let resp = self.client.txn(resign_txn(&leader.key, leader.rev)).await?;
        Ok(Response::new(ResignResponse {
            header: resp.header,
        }))
    }
}

/// Sends the leaders of the election under `prefix` to `tx` until a read or
/// watch fails or the receiver is gone; the stream then ends without error,
/// as etcd's does.
async fn observe(
    client: &ConcurrencyClient,
    prefix: &[u8],
    tx: &mpsc::Sender<Result<LeaderResponse, Status>>,
) {
    loop {
        let Ok(mut current) = client
            .range(first_by_create(prefix, SortOrder::Ascend))
            .await
        else {
            return;
        };
        let (header, leader) = if current.kvs.is_empty() {
            // Nobody leads: wait for the first put under the prefix.
            let revision = current.header.as_ref().map_or(0, |h| h.revision);
            let (key, range_end) = prefix_range(prefix);
            let mut watch = client.watch(key, range_end, revision);
            let Some((mut header, kv)) = first_put(&mut watch).await else {
                return;
            };
            // The answer is at the put's own revision, even when the watch
            // response that carried it covers more.
            if let Some(header) = header.as_mut() {
                header.revision = kv.mod_revision;
            }
            (header, kv)
        } else {
            (current.header.take(), current.kvs.swap_remove(0))
        };
        let next_revision = header.as_ref().map_or(0, |h| h.revision) + 1;
        let answer = LeaderResponse {
            header,
            kv: Some(leader.clone()),
        };
        if tx.send(Ok(answer)).await.is_err() {
            return;
        }
        // Follow the leader's key until it is deleted.
        let mut watch = client.watch(leader.key, Vec::new(), next_revision);
        loop {
            let Ok(resp) = watch.next().await else {
                return;
            };
            let mut deleted = false;
            for event in resp.events {
                if event.r#type == EventType::Delete as i32 {
                    deleted = true;
                    break;
                }
                let answer = LeaderResponse {
                    header: resp.header,
                    kv: event.kv,
                };
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
            if deleted {
                break;
            }
        }
    }
}

/// The first put a prefix watch reports, with its response's header.
async fn first_put(watch: &mut KeyWatch) -> Option<(Option<ResponseHeader>, KeyValue)> {
    loop {
        let resp = watch.next().await.ok()?;
        let put = resp
            .events
            .into_iter()
            .find(|e| e.r#type == EventType::Put as i32)
            .and_then(|e| e.kv);
        if let Some(kv) = put {
            return Some((resp.header, kv));
        }
    }
}
