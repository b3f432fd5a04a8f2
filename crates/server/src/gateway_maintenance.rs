//! The Maintenance and Cluster services on the HTTP/JSON gateway.
//!
//! `POST <prefix>/maintenance/{alarm,status,defragment,hash,transfer-leadership}`
//! and `<prefix>/cluster/member/{add,remove,update,list,promote}` are unary
//! calls like the KV ones (request decoding, errors and limits shared through
//! [`unary`]). `<prefix>/maintenance/snapshot` is server streaming: the
//! request is decoded (a bad one gets 400 and code 3, as a unary call), then
//! each chunk of the snapshot is one `{"result": ...}` line, and a failure
//! mid-stream a final `{"error": ...}` line. As in etcd 3.4, HashKV has no
//! gateway route.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use retcd_api::etcdserverpb::SnapshotRequest;
use retcd_api::etcdserverpb::cluster_server::Cluster;
use retcd_api::etcdserverpb::maintenance_server::Maintenance;
use tonic::Code;

use crate::api::cluster::ClusterService;
use crate::api::maintenance::MaintenanceService;
use crate::gateway::error_response;
use crate::gateway_decode::decode_request;
use crate::gateway_stream::lines_response;
use crate::server::EtcdServer;

/// What the maintenance and cluster handlers share.
#[derive(Clone)]
struct AdminGateway {
    /// The Maintenance service, called as gRPC would.
    maintenance: MaintenanceService,
    /// The Cluster service, called as gRPC would.
    cluster: ClusterService,
    /// Largest request message accepted.
    max_message: usize,
}

crate::gateway::unary_handlers! {
    AdminGateway;
    /// POST /v3/maintenance/alarm.
    alarm => maintenance.alarm;
    /// POST /v3/maintenance/status.
    status => maintenance.status;
    /// POST /v3/maintenance/defragment.
    defragment => maintenance.defragment;
    /// POST /v3/maintenance/hash.
    hash => maintenance.hash;
    /// POST /v3/maintenance/transfer-leadership.
    move_leader => maintenance.move_leader;
    /// POST /v3/cluster/member/add.
    member_add => cluster.member_add;
    /// POST /v3/cluster/member/remove.
    member_remove => cluster.member_remove;
    /// POST /v3/cluster/member/update.
    member_update => cluster.member_update;
    /// POST /v3/cluster/member/list.
    member_list => cluster.member_list;
    /// POST /v3/cluster/member/promote.
    member_promote => cluster.member_promote;
}

/// The maintenance and cluster routes under every prefix in `prefixes`.
pub fn router(server: Arc<EtcdServer>, prefixes: &[&str], max_message: usize) -> Router {
    let state = AdminGateway {
        maintenance: MaintenanceService {
            server: server.clone(),
        },
        cluster: ClusterService { server },
        max_message,
    };
    let mut router = Router::new();
    for prefix in prefixes {
        router = router
            .route(&format!("{prefix}/maintenance/alarm"), post(alarm))
            .route(&format!("{prefix}/maintenance/status"), post(status))
            .route(
                &format!("{prefix}/maintenance/defragment"),
                post(defragment),
            )
            .route(&format!("{prefix}/maintenance/hash"), post(hash))
            .route(&format!("{prefix}/maintenance/snapshot"), post(snapshot))
            .route(
                &format!("{prefix}/maintenance/transfer-leadership"),
                post(move_leader),
            )
            .route(&format!("{prefix}/cluster/member/add"), post(member_add))
            .route(
                &format!("{prefix}/cluster/member/remove"),
                post(member_remove),
            )
            .route(
                &format!("{prefix}/cluster/member/update"),
                post(member_update),
            )
            .route(&format!("{prefix}/cluster/member/list"), post(member_list))
            .route(
                &format!("{prefix}/cluster/member/promote"),
                post(member_promote),
            );
    }
    router.with_state(state)
}

/// POST /v3/maintenance/snapshot: one line per snapshot chunk.
async fn snapshot(State(g): State<AdminGateway>, body: Bytes) -> Response {
    let request = match decode_request::<SnapshotRequest>(&body) {
        Ok(request) => request,
        Err(text) => return error_response(Code::InvalidArgument, &text),
    };
    let chunks = match g.maintenance.snapshot(tonic::Request::new(request)).await {
        Ok(chunks) => chunks.into_inner(),
        Err(status) => return error_response(status.code(), status.message()),
    };
    lines_response(chunks)
}
