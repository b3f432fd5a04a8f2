//! The Cluster service: MemberAdd, MemberRemove, MemberUpdate, MemberPromote
//! and MemberList, with etcd 3.5's checks and errors; and the task that
//! publishes this member's name and client URLs when it starts.
//!
//! Additions, removals and promotions are raft conf changes, peer URL updates
//! and attributes normal entries (see `crate::membership`); every call
//! answers with the member list as applied.
//!
//! Before proposing, the quorum-safety checks of etcd's
//! `--strict-reconfig-check` (on by default there, always on here):
//! - adding a voter needs a quorum of started voters counting the new one,
//!   removing a voter a quorum of started voters without it, promoting one a
//!   quorum counting it (`etcdserver: re-configuration failed due to not
//!   enough started members`);
//! - adding a member needs this member connected to every voter for
//!   [`HEALTH_INTERVAL`], removing a voter a quorum of connected voters
//!   (`etcdserver: unhealthy cluster`).
//!
//! Promotion needs the learner's log within 90% of the leader's; only the
//! leader knows how far followers are, so a promote received by a follower
//! is forwarded to the leader's client URL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use retcd_api::etcdserverpb::cluster_client::ClusterClient;
use retcd_api::etcdserverpb::internal_raft_request::Request as RaftRequest;
use retcd_api::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberAttrSetRequest, MemberListRequest,
    MemberListResponse, MemberPeerUpdateRequest, MemberPromoteRequest, MemberPromoteResponse,
    MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
    ResponseHeader, cluster_server::Cluster,
};
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::ids;
use crate::membership::{Change, Member, MemberError, MemberSet};
use crate::server::{Applied, EtcdServer};

/// How long a peer connection must have been up to count as healthy (etcd's `HealthInterval`).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// A learner may be promoted once its log matches this share of the leader's.
const LEARNER_READY_PERCENT: f64 = 0.9;
/// Pause between attempts to publish this member's attributes.
const PUBLISH_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// How long a forwarded promote may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves etcd's Cluster API from the server core.
#[derive(Clone)]
pub struct ClusterService {
    /// The server core.
    pub server: Arc<EtcdServer>,
}

impl ClusterService {
    /// A response header; etcd's Cluster service leaves the revision out (0).
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.server.header(0))
    }

    /// `members` as the API describes them. This member is shown with its
    /// own name and client URLs even before their publication is applied
    /// (clients may call as soon as a leader is known).
    fn to_proto(&self, members: &[Member]) -> Vec<retcd_api::etcdserverpb::Member> {
        members
            .iter()
            .map(|m| {
                let mut listed = m.to_proto();
                if m.id == self.server.member_id && !m.is_started() {
                    listed.name = self.server.cfg.name.clone();
                    listed.client_ur_ls = self.server.cfg.advertise_client_urls.clone();
                }
                listed
            })
            .collect()
    }

    /// Whether this member has been connected to member `id` since at least
    /// `since`.
    fn connected_since(&self, id: u64, since: Instant) -> bool {
        self.server
            .cluster
            .transport()
            .active_since(id)
            .is_some_and(|t| t <= since)
    }

    /// etcd's `isConnectedFullySince`: connected to every other voter for [`HEALTH_INTERVAL`].
    fn connected_to_all_voters(&self, set: &MemberSet) -> bool {
        let since = Instant::now().checked_sub(HEALTH_INTERVAL);
        let own = self.server.member_id;
        set.voter_ids()
            .into_iter()
            .filter(|&id| id != own)
            .all(|id| since.is_some_and(|since| self.connected_since(id, since)))
    }

    /// etcd's `mayAddMember`.
    fn may_add(&self, set: &MemberSet, is_learner: bool) -> Result<(), MemberError> {
        if !is_learner && !set.ready_to_add_voter() {
            return Err(MemberError::NotEnoughStarted);
        }
        if !self.connected_to_all_voters(set) {
            return Err(MemberError::Unhealthy);
        }
        Ok(())
    }

    /// etcd's `mayRemoveMember`.
    fn may_remove(&self, set: &MemberSet, id: u64) -> Result<(), MemberError> {
        let Some(member) = set.members.get(&id) else {
            return Err(MemberError::NotFound);
        };
        if member.is_learner {
            return Ok(());
        }
        if !set.ready_to_remove_voter(id) {
            return Err(MemberError::NotEnoughStarted);
        }
        let own = self.server.member_id;
        // A member that is down is not part of the active quorum.
        if id != own && self.server.cluster.transport().active_since(id).is_none() {
            return Ok(());
        }
        let voters = set.voter_ids();
        let since = Instant::now().checked_sub(HEALTH_INTERVAL);
        let active = 1 + voters
            .iter()
            .filter(|&&v| v != own && since.is_some_and(|since| self.connected_since(v, since)))
            .count();
        if active - 1 < 1 + (voters.len() - 1) / 2 {
            return Err(MemberError::Unhealthy);
        }
        Ok(())
    }

    /// etcd's `isLearnerReady`, on the leader: the learner's log must be within
    /// 90% of the leader's. `NotLeader` off the leader.
    async fn learner_ready(&self, id: u64) -> Result<(), Error> {
        let Some(progress) = self.server.raft.progress().await? else {
            return Err(MemberError::NotLeader.into());
        };
        let own = self.server.member_id;
        let leader = progress
            .iter()
            .find(|p| p.id == own)
            .map_or(0, |p| p.matched);
        if let Some(learner) = progress.iter().find(|p| p.id == id)
            && (learner.matched as f64) < leader as f64 * LEARNER_READY_PERCENT
        {
            return Err(MemberError::LearnerNotReady.into());
        }
        Ok(())
    }

    /// Promotes learner `id`; this member must lead.
    async fn promote_on_leader(&self, id: u64) -> Result<Vec<Member>, Error> {
        self.learner_ready(id).await?;
        let set = self.server.cluster.member_set();
        if set.members.contains_key(&id) && !set.ready_to_promote(id) {
            return Err(MemberError::NotEnoughStarted.into());
        }
        self.server
            .propose_member_change(&Change::Promote(id))
            .await
    }

    /// Sends the promote to the leader's client URLs.
    async fn forward_promote(
        &self,
        req: MemberPromoteRequest,
    ) -> Result<MemberPromoteResponse, Status> {
        let leader_id = self.server.raft.status().leader_id;
        let urls = self
            .server
            .cluster
            .member(leader_id)
            .map(|m| m.client_urls)
            .unwrap_or_default();
        let mut last = Status::from(Error::NoLeader);
        for url in urls {
            let endpoint = match tonic::transport::Endpoint::from_shared(url.clone()) {
                Ok(endpoint) => endpoint
                    .timeout(FORWARD_TIMEOUT)
                    .connect_timeout(FORWARD_TIMEOUT),
                Err(e) => {
                    tracing::warn!(url = %url, error = %e, "leader client URL unusable");
                    continue;
                }
            };
            let channel = match endpoint.connect().await {
                Ok(channel) => channel,
                Err(e) => {
                    tracing::warn!(url = %url, error = %e, "cannot reach the leader to forward a promote");
                    continue;
                }
            };
            match ClusterClient::new(channel).member_promote(req).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) => {
                    last = status;
                    if last.code() != tonic::Code::Unavailable {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

/// Checks peer URLs as etcd's `types.NewURLs` does: `scheme://host:port`
/// with an http(s) or unix(s) scheme and no path.
pub fn validate_peer_urls(urls: &[String]) -> Result<(), MemberError> {
    if urls.is_empty() {
        return Err(MemberError::BadUrls);
    }
    for url in urls {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(MemberError::BadUrls);
        };
        if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
            return Err(MemberError::BadUrls);
        }
        let host_port = rest.strip_suffix('/').unwrap_or(rest);
        if host_port.contains('/') {
            return Err(MemberError::BadUrls);
        }
        let Some((host, port)) = host_port.rsplit_once(':') else {
            return Err(MemberError::BadUrls);
        };
        let host_ok = !host.contains(':') || (host.starts_with('[') && host.ends_with(']'));
        if !host_ok || port.parse::<u16>().is_err() {
            return Err(MemberError::BadUrls);
        }
    }
    Ok(())
}

/// A new member id: derived from the peer URLs and the time, like etcd's,
/// and checked unused (also by removed members) and non-zero.
fn new_member_id(set: &MemberSet, peer_urls: &[String], token: &str) -> u64 {
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = ids::member_id(peer_urls, &format!("{token}{nanos}"));
        if id != 0 && !set.members.contains_key(&id) && !set.removed.contains(&id) {
            return id;
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let req = req.into_inner();
        validate_peer_urls(&req.peer_ur_ls).map_err(Error::from)?;
        let set = self.server.cluster.member_set();
        self.may_add(&set, req.is_learner).map_err(Error::from)?;
        let member = Member {
            id: new_member_id(
                &set,
                &req.peer_ur_ls,
                &self.server.cfg.initial_cluster_token,
            ),
            name: String::new(),
            peer_urls: req.peer_ur_ls,
            client_urls: Vec::new(),
            is_learner: req.is_learner,
        };
        let members = self
            .server
            .propose_member_change(&Change::Add(member.clone()))
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(member.to_proto()),
            members: self.to_proto(&members),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let id = req.into_inner().id;
        let set = self.server.cluster.member_set();
        self.may_remove(&set, id).map_err(Error::from)?;
        let members = self
            .server
            .propose_member_change(&Change::Remove(id))
            .await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: self.to_proto(&members),
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let req = req.into_inner();
        validate_peer_urls(&req.peer_ur_ls).map_err(Error::from)?;
        let update = RaftRequest::MemberPeerUpdate(MemberPeerUpdateRequest {
            member_id: req.id,
            peer_urls: req.peer_ur_ls,
        });
        let members = match self.server.propose(update).await? {
            Applied::Members(members) => members,
            other => panic!("a member update applied as {other:?}"),
        };
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: self.to_proto(&members),
        }))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if req.into_inner().linearizable {
            self.server.linearizable_read_barrier().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.to_proto(&self.server.cluster.members()),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let req = req.into_inner();
        match self.promote_on_leader(req.id).await {
            Ok(members) => {
                crate::metrics::LEARNER_PROMOTE_SUCCESSES.inc();
                Ok(Response::new(MemberPromoteResponse {
                    header: self.header(),
                    members: self.to_proto(&members),
                }))
            }
            Err(Error::Member(MemberError::NotLeader)) => {
                Ok(Response::new(self.forward_promote(req).await?))
            }
            Err(e) => {
                crate::metrics::LEARNER_PROMOTE_FAILURES
                    .with_label_values(&[e.to_string().as_str()])
                    .inc();
                Err(e.into())
            }
        }
    }
}

/// Hands leadership to voter `target` (etcd's `MoveLeader`): only the leader
/// may, and it waits until `target` leads or `timeout` passes.
pub async fn move_leader(server: &EtcdServer, target: u64, timeout: Duration) -> Result<(), Error> {
    if server.raft.status().leader_id != server.member_id {
        return Err(MemberError::NotLeader.into());
    }
    if server.cluster.member(target).is_none_or(|m| m.is_learner) {
        return Err(MemberError::BadLeaderTransferee.into());
    }
    let mut leader = server.raft.leader_changes();
    if *leader.borrow() == target {
        return Ok(());
    }
    tracing::info!(target = %format!("{target:x}"), "leadership transfer starting");
    server.raft.transfer_leader(target);
    match tokio::time::timeout(timeout, leader.wait_for(|&l| l == target)).await {
        Ok(Ok(_)) => {
            tracing::info!(target = %format!("{target:x}"), "leadership transfer finished");
            Ok(())
        }
        Ok(Err(_)) => Err(Error::Stopped),
        Err(_) => Err(MemberError::LeaderTransferTimeout.into()),
    }
}

/// The deadline a gRPC client sent (`grpc-timeout`: digits and a unit).
pub fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Publishes this member's name and client URLs through raft until the
/// member list shows them (etcd's `publish`); returns once it does.
pub async fn publish_attributes(server: Arc<EtcdServer>) {
    let own = server.member_id;
    let name = server.cfg.name.clone();
    let client_urls = server.cfg.advertise_client_urls.clone();
    loop {
        let published = server
            .cluster
            .member(own)
            .is_some_and(|m| m.name == name && m.client_urls == client_urls);
        if published {
            tracing::info!(name = %name, client_urls = ?client_urls, "published local member attributes to the cluster");
            return;
        }
        let request = RaftRequest::MemberAttrSet(MemberAttrSetRequest {
            member_id: own,
            name: name.clone(),
            client_urls: client_urls.clone(),
        });
        match server.propose(request).await {
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "publishing member attributes failed; retrying");
                tokio::time::sleep(PUBLISH_RETRY_INTERVAL).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_as_etcd_parses_them() {
        let ok = |u: &str| validate_peer_urls(&[u.to_string()]).is_ok();
        assert!(ok("http://127.0.0.1:2380"));
        assert!(ok("https://example.com:2380/"));
        assert!(ok("http://[::1]:2380"));
        assert!(!ok("127.0.0.1:2380"));
        assert!(!ok("ftp://127.0.0.1:2380"));
        assert!(!ok("http://127.0.0.1"));
        assert!(!ok("http://127.0.0.1:2380/path"));
        assert!(validate_peer_urls(&[]).is_err());
    }

    #[test]
    fn grpc_timeouts_parse() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert_eq!(grpc_timeout(&metadata), None);
        metadata.insert("grpc-timeout", "4999m".parse().unwrap());
        assert_eq!(grpc_timeout(&metadata), Some(Duration::from_millis(4999)));
        metadata.insert("grpc-timeout", "5S".parse().unwrap());
        assert_eq!(grpc_timeout(&metadata), Some(Duration::from_secs(5)));
    }

    #[test]
    fn new_member_ids_avoid_used_and_removed_ids() {
        let mut set = MemberSet::default();
        let urls = vec!["http://127.0.0.1:2380".to_string()];
        let a = new_member_id(&set, &urls, "t");
        set.removed.insert(a);
        let b = new_member_id(&set, &urls, "t");
        assert_ne!(a, b);
        assert_ne!(b, 0);
    }
}
