//! The Lock and Election services on the HTTP/JSON gateway.
//!
//! `POST <prefix>/lock/{lock,unlock}` and
//! `<prefix>/election/{campaign,proclaim,leader,resign}` are unary calls
//! like the KV ones (request decoding, errors and limits shared through
//! [`unary`]); a lock or campaign that has to wait holds its HTTP request
//! open until it is granted, and a client that gives up withdraws it.
//! `<prefix>/election/observe` is server streaming, as the snapshot: the
//! request is decoded (a bad one gets 400 and code 3), then each leader
//! answer is one `{"result": ...}` line for as long as the client stays.
//!
//! etcd 3.4 serves these under `/v3` and `/v3beta` only; like the other
//! gateway routes, ours are under `/v3alpha` too.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use retcd_api::v3electionpb::LeaderRequest;
use retcd_api::v3electionpb::election_server::Election;
use retcd_api::v3lockpb::lock_server::Lock;
use retcd_mvcc::watch::WatchHub;
use tonic::Code;

use crate::api::concurrency::ConcurrencyClient;
use crate::api::election::ElectionService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::lock::LockService;
use crate::api::watch::WatchService;
use crate::gateway::error_response;
use crate::gateway_decode::decode_request;
use crate::gateway_stream::lines_response;
use crate::server::EtcdServer;

/// What the lock and election handlers share.
#[derive(Clone)]
struct ConcurrencyGateway {
    /// The Lock service, called as gRPC would.
    lock: LockService,
    /// The Election service, called as gRPC would.
    election: ElectionService,
    /// Largest request message accepted.
    max_message: usize,
}

crate::gateway::unary_handlers! {
    ConcurrencyGateway;
    /// POST /v3/lock/lock.
    lock => lock.lock;
    /// POST /v3/lock/unlock.
    unlock => lock.unlock;
    /// POST /v3/election/campaign.
    campaign => election.campaign;
    /// POST /v3/election/proclaim.
    proclaim => election.proclaim;
    /// POST /v3/election/leader.
    leader => election.leader;
    /// POST /v3/election/resign.
    resign => election.resign;
}

/// The lock and election routes under every prefix in `prefixes`.
pub fn router(
    server: Arc<EtcdServer>,
    watch_hub: WatchHub,
    prefixes: &[&str],
    max_message: usize,
) -> Router {
    let client = ConcurrencyClient {
        kv: KvService {
            server: server.clone(),
        },
        lease: LeaseService::new(server.clone()),
        watch: WatchService {
            server,
            hub: watch_hub,
        },
    };
    let state = ConcurrencyGateway {
        lock: LockService {
            client: client.clone(),
        },
        election: ElectionService { client },
        max_message,
    };
    let mut router = Router::new();
    for prefix in prefixes {
        router = router
            .route(&format!("{prefix}/lock/lock"), post(lock))
            .route(&format!("{prefix}/lock/unlock"), post(unlock))
            .route(&format!("{prefix}/election/campaign"), post(campaign))
            .route(&format!("{prefix}/election/proclaim"), post(proclaim))
            .route(&format!("{prefix}/election/leader"), post(leader))
            .route(&format!("{prefix}/election/observe"), post(observe))
            .route(&format!("{prefix}/election/resign"), post(resign));
    }
    router.with_state(state)
}

/// POST /v3/election/observe: one line per leader answer.
async fn observe(State(g): State<ConcurrencyGateway>, body: Bytes) -> Response {
    let request = match decode_request::<LeaderRequest>(&body) {
        Ok(request) => request,
        Err(text) => return error_response(Code::InvalidArgument, &text),
    };
    lines_response(g.election.observe_name(request.name))
}
