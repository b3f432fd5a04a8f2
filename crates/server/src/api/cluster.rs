//! The Cluster service: MemberList only.
//!
//! Membership is fixed at bootstrap (see `crate::membership`), so the list is
//! served from memory. Only this member's client URLs are known: the member
//! list records ids, names and peer URLs, so other members are listed without
//! client URLs. Runtime reconfiguration (add, remove, update, promote) is not
//! supported yet and is refused as UNIMPLEMENTED.

use std::sync::Arc;

use retcd_api::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, cluster_server::Cluster,
};
use tonic::{Request, Response, Status};

use crate::server::EtcdServer;

/// The answer to every membership change.
const RECONFIGURATION_UNSUPPORTED: &str = "etcdserver: membership changes are not supported yet";

/// Serves etcd's Cluster API from the server core.
#[derive(Clone)]
pub struct ClusterService {
    /// The server core.
    pub server: Arc<EtcdServer>,
}

impl ClusterService {
    /// The members as the API describes them, sorted by id.
    fn members(&self) -> Vec<Member> {
        self.server
            .members
            .iter()
            .map(|m| Member {
                id: m.id,
                name: m.name.clone(),
                peer_ur_ls: m.peer_urls.clone(),
                client_ur_ls: if m.id == self.server.member_id {
                    self.server.cfg.advertise_client_urls.clone()
                } else {
                    Vec::new()
                },
                is_learner: false,
            })
            .collect()
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(Status::unimplemented(RECONFIGURATION_UNSUPPORTED))
    }

    async fn member_remove(
        &self,
        _req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(Status::unimplemented(RECONFIGURATION_UNSUPPORTED))
    }

    async fn member_update(
        &self,
        _req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(Status::unimplemented(RECONFIGURATION_UNSUPPORTED))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        // The list never changes after bootstrap, so a linearizable request
        // needs the barrier only for etcd's guarantee that a leader exists.
        if req.into_inner().linearizable {
            self.server.linearizable_read_barrier().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: Some(self.server.header(self.server.store.current_revision())),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        _req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(Status::unimplemented(RECONFIGURATION_UNSUPPORTED))
    }
}
