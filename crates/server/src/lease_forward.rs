//! Lease requests a follower cannot answer itself, sent on to the leader.
//!
//! Only the leader's lessor renews leases and knows their remaining TTLs (see
//! `crate::lease`). A follower that receives LeaseKeepAlive or LeaseTimeToLive
//! forwards it over gRPC to the leader's advertised client URL and
//! answers with what the leader said under its own header, as etcd's followers
//! do through their peer port. Clients therefore keep leases alive through any
//! member.
//!
//! Invariants:
//! - One channel per leader, created lazily and reused until the leader changes.
//! - A forwarded request carries [`FORWARDED_HEADER`]. A member that receives one
//!   and is not the leader answers `NotPrimary` instead of forwarding again, so
//!   two members with stale views of the leader never bounce a request between
//!   them; the client's retry finds the new leader.
//! - While no leader is known, or the leader has not published its client URLs
//!   yet, a forward waits for them up to the request timeout.

use std::time::Duration;

use parking_lot::Mutex;
use retcd_api::etcdserverpb::lease_client::LeaseClient;
use retcd_api::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::error::Error;
use crate::server::{EtcdServer, request_timeout};

/// Metadata key marking a request one member forwarded to another.
pub const FORWARDED_HEADER: &str = "retcd-forwarded-lease";
/// The leader id raft publishes while there is none.
const NO_LEADER: u64 = 0;
/// Pause between looks for a leader's published client URL.
const CLIENT_URL_POLL: Duration = Duration::from_millis(50);
/// Longest a connection attempt to the leader may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `metadata` marks a request another member already forwarded.
pub fn is_forwarded(metadata: &MetadataMap) -> bool {
    metadata.contains_key(FORWARDED_HEADER)
}

/// Sends lease requests to the current leader.
#[derive(Default)]
pub struct LeaseForwarder {
    /// The channel to the leader it was made for: (leader id, channel).
    channel: Mutex<Option<(u64, Channel)>>,
}

impl LeaseForwarder {
    /// Renews lease `id` on the leader; returns its TTL (0 when it is gone).
    pub async fn keep_alive(&self, server: &EtcdServer, id: i64) -> Result<i64, Status> {
        let mut client = self.leader_client(server).await?;
        let request = marked(tokio_stream::once(LeaseKeepAliveRequest { id }));
        let call = async move {
            let mut answers = client.lease_keep_alive(request).await?.into_inner();
            match answers.message().await? {
                Some(answer) => Ok(answer.ttl),
                None => Err(Status::unavailable(
                    "etcdserver: the leader closed the keep-alive stream",
                )),
            }
        };
        bounded(server, call).await
    }

    /// Asks the leader for the time to live of a lease.
    pub async fn time_to_live(
        &self,
        server: &EtcdServer,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        let mut client = self.leader_client(server).await?;
        let call = async move { Ok(client.lease_time_to_live(marked(req)).await?.into_inner()) };
        bounded(server, call).await
    }

    /// A client of the current leader, waiting for one to be known.
    async fn leader_client(&self, server: &EtcdServer) -> Result<LeaseClient<Channel>, Status> {
        let leader = wait_for_leader(server).await?;
        if let Some((id, channel)) = self.channel.lock().as_ref()
            && *id == leader
        {
            return Ok(LeaseClient::new(channel.clone()));
        }
        let url = wait_for_client_url(server, leader).await?;
        let channel = Endpoint::from_shared(url)
            .map_err(|e| Status::internal(format!("leader client URL: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_lazy();
        *self.channel.lock() = Some((leader, channel.clone()));
        Ok(LeaseClient::new(channel))
    }
}

/// The leader's id once one is known and it is not this member; errors with
/// etcd's no-leader error after the request timeout.
async fn wait_for_leader(server: &EtcdServer) -> Result<u64, Status> {
    let mut changes = server.raft.leader_changes();
    let wait = changes.wait_for(|&leader| leader != NO_LEADER);
    let leader = match tokio::time::timeout(request_timeout(&server.cfg), wait).await {
        Ok(Ok(leader)) => *leader,
        Ok(Err(_)) => return Err(Error::Stopped.into()),
        Err(_) => return Err(Error::NoLeader.into()),
    };
    if leader == server.member_id {
        // Leadership came here meanwhile: the caller's lessor is primary now,
        // but this request already left the local path.
        return Err(Error::Lease(retcd_lease::Error::NotPrimary).into());
    }
    Ok(leader)
}

/// The first advertised client URL of member `id`, waiting (up to the request
/// timeout) for a member that just started to publish it.
async fn wait_for_client_url(server: &EtcdServer, id: u64) -> Result<String, Status> {
    let deadline = tokio::time::Instant::now() + request_timeout(&server.cfg);
    loop {
        let url = server
            .cluster
            .member(id)
            .and_then(|m| m.client_urls.into_iter().next());
        if let Some(url) = url {
            return Ok(url);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Status::unavailable(format!(
                "etcdserver: no client URL known for leader {id:x}"
            )));
        }
        tokio::time::sleep(CLIENT_URL_POLL).await;
    }
}

/// Wraps `message` in a request marked as forwarded.
fn marked<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        FORWARDED_HEADER,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    request
}

/// Runs a forwarded call within the request timeout.
async fn bounded<T>(
    server: &EtcdServer,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(request_timeout(&server.cfg), call).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout.into()),
    }
}
