//! The Lease service: LeaseGrant, LeaseRevoke, LeaseKeepAlive,
//! LeaseTimeToLive and LeaseLeases.
//!
//! Grant and revoke go through raft (a grant with ID 0 gets a server-chosen
//! id first, as etcd's server picks one before proposing). Keep-alive, time
//! to live and the lease list are answered by the leader's lessor directly:
//! renewing is leader-local state, never replicated (see `crate::lease`). A
//! follower forwards them to the leader (`crate::lease_forward`).
//!
//! etcd's answers kept: a keep-alive of an unknown or expired lease answers
//! TTL 0 instead of failing the stream; a time-to-live of an unknown lease
//! answers TTL -1 instead of an error.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use retcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, internal_raft_request, lease_server::Lease,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::lease;
use crate::lease_forward::{LeaseForwarder, is_forwarded};
use crate::server::{Applied, EtcdServer};

/// Keep-alive answers buffered per stream before the reader waits for the
/// client to take them.
const KEEPALIVE_STREAM_BUFFER: usize = 16;

/// The TTL a time-to-live answers for a lease that does not exist (etcd's).
const TTL_NOT_FOUND: i64 = -1;

/// Serves etcd's Lease API from the server core.
#[derive(Clone)]
pub struct LeaseService {
    /// The server core.
    pub server: Arc<EtcdServer>,
    /// Sends what only the leader can answer to the leader.
    forwarder: Arc<LeaseForwarder>,
}

/// The stream of keep-alive answers.
pub type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send + 'static>>;

impl LeaseService {
    /// The service of `server`.
    pub fn new(server: Arc<EtcdServer>) -> Self {
        LeaseService {
            server,
            forwarder: Arc::default(),
        }
    }

    /// Renews lease `id` (on the leader, forwarding unless `forwarded` says
    /// this request was already forwarded once) and builds the answer: its
    /// TTL, 0 if it is gone.
    pub async fn keep_alive_once(
        &self,
        id: i64,
        forwarded: bool,
    ) -> Result<LeaseKeepAliveResponse, Status> {
        self.catch_up_if_leader().await?;
        let ttl = match lease::renew(&self.server, id) {
            Ok(ttl) => ttl,
            Err(Error::Lease(retcd_lease::Error::NotFound)) => 0,
            Err(Error::Lease(retcd_lease::Error::NotPrimary)) if !forwarded => {
                self.forwarder.keep_alive(&self.server, id).await?
            }
            Err(e) => return Err(e.into()),
        };
        Ok(LeaseKeepAliveResponse {
            header: Some(self.current_header()),
            id,
            ttl,
        })
    }

    /// On the leader, waits until everything committed is applied: a client
    /// may have had a grant acknowledged by a follower that applied it before
    /// the leader did (etcd waits the same way before renewing).
    async fn catch_up_if_leader(&self) -> Result<(), Status> {
        let status = self.server.raft.status();
        if status.leader_id == self.server.member_id {
            self.server.wait_applied(status.commit_index).await?;
        }
        Ok(())
    }

    /// A header at the store's current revision.
    fn current_header(&self) -> retcd_api::etcdserverpb::ResponseHeader {
        self.server.header(self.server.store.current_revision())
    }
}

/// Panics on an apply result of the wrong kind: the applier pairs each request with its own response.
fn mismatched(applied: Applied) -> ! {
    panic!("apply returned a response of another request kind: {applied:?}")
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut req = req.into_inner();
        // A leader whose lessor is not promoted yet (just elected) would start
        // the new lease's clock at promotion, with the promotion's extension:
        // promote first.
        lease::sync_role(&self.server, Instant::now());
        if req.id == retcd_lease::NO_LEASE {
            req.id = self.server.new_lease_id();
        }
        match self
            .server
            .propose(internal_raft_request::Request::LeaseGrant(req))
            .await?
        {
            Applied::LeaseGrant(mut resp) => {
                self.server.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => mismatched(other),
        }
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let req = req.into_inner();
        match self
            .server
            .propose(internal_raft_request::Request::LeaseRevoke(req))
            .await?
        {
            Applied::LeaseRevoke(mut resp) => {
                self.server.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => mismatched(other),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let forwarded = is_forwarded(req.metadata());
        let mut requests = req.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_STREAM_BUFFER);
        let service = self.clone();
        tokio::spawn(async move {
            // Ends when the client closes its side, the stream breaks, or
            // the client stops reading answers.
            while let Ok(Some(request)) = requests.message().await {
                let answer = service.keep_alive_once(request.id, forwarded).await;
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let forwarded = is_forwarded(req.metadata());
        let req = req.into_inner();
        self.catch_up_if_leader().await?;
        let now = Instant::now();
        if !lease::sync_role(&self.server, now) && !forwarded {
            let mut resp = self.forwarder.time_to_live(&self.server, req).await?;
            resp.header = Some(self.current_header());
            return Ok(Response::new(resp));
        }
        let found = self.server.lessor.lock().time_to_live(req.id, now);
        let resp = match found {
            Some(t) => LeaseTimeToLiveResponse {
                header: Some(self.current_header()),
                id: req.id,
                ttl: t.ttl_secs,
                granted_ttl: t.granted_ttl_secs,
                keys: if req.keys { t.keys } else { Vec::new() },
            },
            None => LeaseTimeToLiveResponse {
                header: Some(self.current_header()),
                id: req.id,
                ttl: TTL_NOT_FOUND,
                ..Default::default()
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        // Every member's lessor holds every lease (grants are replicated).
        let ids = self.server.lessor.lock().leases();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.current_header()),
            leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
        }))
    }
}
