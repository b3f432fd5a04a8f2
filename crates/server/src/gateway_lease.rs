//! The Lease service on the HTTP/JSON gateway.
//!
//! `POST <prefix>/lease/{grant,revoke,timetolive,leases}` are unary calls
//! like the KV ones; `<prefix>/kv/lease/{revoke,timetolive,leases}` are the
//! older paths etcd's gateway still answers. `<prefix>/lease/keepalive` is
//! the bidirectional stream as grpc-gateway maps it: the body holds one or
//! more JSON requests (concatenated or one per line), and the answer is one
//! `{"result": ...}` line per request. A body whose first request cannot be
//! decoded gets grpc-gateway's error (HTTP 500, code 2); a bad request
//! after a valid one ends the stream, as etcd's gateway does; an error from
//! the service mid-stream becomes a final `{"error": ...}` line.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use retcd_api::etcdserverpb::LeaseKeepAliveRequest;
use retcd_api::etcdserverpb::lease_server::Lease;

use crate::api::lease::LeaseService;
use crate::gateway::{GATEWAY_HEADERS, GRPC_METADATA_HEADERS, unary};
use crate::gateway_decode::{Next, UNEXPECTED_EOF, decode_next};
use crate::gateway_stream::{error_line, first_request_error, result_line};
use crate::server::EtcdServer;

/// Most keep-alive requests one gateway call may carry.
const MAX_KEEPALIVES_PER_CALL: usize = 10_000;

/// What the lease handlers share.
#[derive(Clone)]
struct LeaseGateway {
    /// The Lease service, called as gRPC would.
    lease: LeaseService,
    /// Largest request message accepted.
    max_message: usize,
}

/// The lease routes under every prefix in `prefixes`.
pub fn router(server: Arc<EtcdServer>, prefixes: &[&str], max_message: usize) -> Router {
    let state = LeaseGateway {
        lease: LeaseService::new(server),
        max_message,
    };
    let mut router = Router::new();
    for prefix in prefixes {
        router = router
            .route(&format!("{prefix}/lease/grant"), post(grant))
            .route(&format!("{prefix}/lease/revoke"), post(revoke))
            .route(&format!("{prefix}/lease/timetolive"), post(time_to_live))
            .route(&format!("{prefix}/lease/leases"), post(leases))
            .route(&format!("{prefix}/lease/keepalive"), post(keep_alive))
            .route(&format!("{prefix}/kv/lease/revoke"), post(revoke))
            .route(&format!("{prefix}/kv/lease/timetolive"), post(time_to_live))
            .route(&format!("{prefix}/kv/lease/leases"), post(leases));
    }
    router.with_state(state)
}

/// POST /v3/lease/grant.
async fn grant(State(g): State<LeaseGateway>, body: Bytes) -> Response {
    unary(body, g.max_message, |req| async move {
        g.lease.lease_grant(tonic::Request::new(req)).await
    })
    .await
}

/// POST /v3/lease/revoke (and /v3/kv/lease/revoke).
async fn revoke(State(g): State<LeaseGateway>, body: Bytes) -> Response {
    unary(body, g.max_message, |req| async move {
        g.lease.lease_revoke(tonic::Request::new(req)).await
    })
    .await
}

/// POST /v3/lease/timetolive (and /v3/kv/lease/timetolive).
async fn time_to_live(State(g): State<LeaseGateway>, body: Bytes) -> Response {
    unary(body, g.max_message, |req| async move {
        g.lease.lease_time_to_live(tonic::Request::new(req)).await
    })
    .await
}

/// POST /v3/lease/leases (and /v3/kv/lease/leases).
async fn leases(State(g): State<LeaseGateway>, body: Bytes) -> Response {
    unary(body, g.max_message, |req| async move {
        g.lease.lease_leases(tonic::Request::new(req)).await
    })
    .await
}

/// POST /v3/lease/keepalive: one answer line per request in the body.
async fn keep_alive(State(g): State<LeaseGateway>, body: Bytes) -> Response {
    let mut out = Vec::new();
    let mut at = 0;
    for i in 0..MAX_KEEPALIVES_PER_CALL {
        let request = match decode_next::<LeaseKeepAliveRequest>(&body[at..]) {
            Ok(Next::Request(request, used)) => {
                at += used;
                request
            }
            Ok(Next::Truncated) if i == 0 => return first_request_error(UNEXPECTED_EOF),
            Err(text) if i == 0 => return first_request_error(&text),
            Ok(Next::Empty | Next::Truncated) | Err(_) => break,
        };
        match g.lease.keep_alive_once(request.id, false).await {
            Ok(resp) => out.extend_from_slice(&result_line(&resp)),
            Err(status) => {
                out.extend_from_slice(&error_line(&status));
                break;
            }
        }
    }
    (StatusCode::OK, GATEWAY_HEADERS, GRPC_METADATA_HEADERS, out).into_response()
}
