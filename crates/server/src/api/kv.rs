//! The KV service: Range, Put, DeleteRange, Txn and Compact.

use std::sync::Arc;

use retcd_api::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse, internal_raft_request,
    kv_server::Kv, request_op,
};
use tonic::{Request, Response, Status};

use crate::api::validate;
use crate::error::Error;
use crate::mvcc_metrics::Tally;
use crate::server::{Applied, EtcdServer};

/// Serves etcd's KV API from the server core.
#[derive(Clone)]
pub struct KvService {
    /// The server core.
    pub server: Arc<EtcdServer>,
}

impl KvService {
    /// Proposes `request` and returns what applying it produced.
    async fn propose(&self, request: internal_raft_request::Request) -> Result<Applied, Status> {
        Ok(self.server.propose(request).await?)
    }
}

/// Whether every range of a txn, nested ones included, is serializable.
fn is_txn_serializable(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(r)) => r.serializable,
            Some(request_op::Request::RequestTxn(t)) => is_txn_serializable(t),
            _ => true,
        })
}

/// Panics on an apply result of the wrong kind: the applier pairs each request with its own response.
fn mismatched(applied: Applied) -> ! {
    panic!("apply returned a response of another request kind: {applied:?}")
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let req = req.into_inner();
        validate::range(&req)?;
        if !req.serializable {
            self.server.linearizable_read_barrier().await?;
        }
        let mut resp = self.server.store.range(&req).map_err(Error::from)?;
        Tally::RANGE.record();
        self.server.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = req.into_inner();
        validate::put(&req)?;
        match self
            .propose(internal_raft_request::Request::Put(req))
            .await?
        {
            Applied::Put(mut resp) => {
                self.server.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => mismatched(other),
        }
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let req = req.into_inner();
        validate::delete_range(&req)?;
        match self
            .propose(internal_raft_request::Request::DeleteRange(req))
            .await?
        {
            Applied::DeleteRange(mut resp) => {
                self.server.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => mismatched(other),
        }
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let req = req.into_inner();
        validate::txn(&req, self.server.cfg.max_txn_ops)?;
        if retcd_mvcc::is_txn_read_only(&req) {
            // Like a range: no raft entry, only a read barrier unless every read is serializable.
            if !is_txn_serializable(&req) {
                self.server.linearizable_read_barrier().await?;
            }
            let mut resp = self.server.store.txn_read_only(&req).map_err(Error::from)?;
            let [read, _] = Tally::txn(&req, &resp, true);
            read.record();
            self.server.fill_header(&mut resp.header);
            return Ok(Response::new(resp));
        }
        match self
            .propose(internal_raft_request::Request::Txn(req))
            .await?
        {
            Applied::Txn(mut resp) => {
                self.server.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => mismatched(other),
        }
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let req = req.into_inner();
        let (revision, physical) = (req.revision, req.physical);
        match self
            .propose(internal_raft_request::Request::Compaction(req))
            .await?
        {
            Applied::Compaction(mut resp) => {
                if physical {
                    let store = self.server.store.clone();
                    tokio::task::spawn_blocking(move || store.wait_compaction_done(revision))
                        .await
                        .map_err(|e| Status::internal(e.to_string()))?;
                }
                self.server.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => mismatched(other),
        }
    }
}
