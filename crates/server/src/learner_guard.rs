//! Refuses the gRPC calls a learner does not serve, as etcd's interceptors
//! do: a learner holds the data but takes no part in consensus, so it only
//! answers calls that need neither a quorum nor a write.
//!
//! Served on a learner (as etcd 3.5): Maintenance `Status` and `Snapshot`,
//! and KV `Range` when serializable.
//! Every other etcd gRPC call gets UNAVAILABLE `etcdserver: rpc not
//! supported for learner`, which clients treat as "try another endpoint".
//!
//! A Range request is a unary call whose body is one gRPC frame; on a learner
//! the guard reads it to see the `serializable` flag and hands the same bytes
//! on. Off a learner the guard is one atomic load.
//!
//! Caveat: the HTTP/JSON gateway is not guarded.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prost::Message as _;
use retcd_api::etcdserverpb::RangeRequest;

use crate::membership::{MemberError, RaftCluster};

/// Calls a learner serves whatever their content.
const ALWAYS_SERVED: &[&str] = &[
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Snapshot",
];
/// The call a learner serves when serializable.
const RANGE: &str = "/etcdserverpb.KV/Range";
/// Path prefixes of etcd's gRPC services.
const GRPC_SERVICES: &[&str] = &["/etcdserverpb.", "/v3lockpb.", "/v3electionpb."];
/// Bytes of a gRPC frame header: compression flag and a `u32` length.
const FRAME_HEADER_BYTES: usize = 5;
/// Largest Range request body read to check it.
const MAX_RANGE_BODY_BYTES: usize = 4 << 20;

/// The middleware: passes `request` on unless this member is a learner and
/// the call is not one a learner serves.
pub async fn guard(
    State(cluster): State<Arc<RaftCluster>>,
    request: Request,
    next: Next,
) -> Response {
    if !cluster.is_local_learner() {
        return next.run(request).await;
    }
    let path = request.uri().path();
    if !GRPC_SERVICES.iter().any(|p| path.starts_with(p)) || ALWAYS_SERVED.contains(&path) {
        return next.run(request).await;
    }
    if path != RANGE {
        return refusal();
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_RANGE_BODY_BYTES).await else {
        return refusal();
    };
    if !is_serializable_range(&bytes) {
        return refusal();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Whether `body` is one uncompressed gRPC frame holding a serializable RangeRequest.
fn is_serializable_range(body: &[u8]) -> bool {
    if body.len() < FRAME_HEADER_BYTES || body[0] != 0 {
        return false;
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    body.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len)
        .and_then(|frame| RangeRequest::decode(frame).ok())
        .is_some_and(|req| req.serializable)
}

/// etcd's refusal, as a trailers-only gRPC response.
fn refusal() -> Response {
    let status = tonic::Status::new(
        MemberError::NotSupportedForLearner.code(),
        MemberError::NotSupportedForLearner.to_string(),
    );
    status.into_http::<Body>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(req: &RangeRequest) -> Vec<u8> {
        let bytes = req.encode_to_vec();
        let mut body = vec![0];
        body.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        body.extend_from_slice(&bytes);
        body
    }

    #[test]
    fn only_serializable_ranges_pass() {
        let mut req = RangeRequest {
            key: b"foo".to_vec(),
            ..Default::default()
        };
        assert!(!is_serializable_range(&frame(&req)));
        req.serializable = true;
        assert!(is_serializable_range(&frame(&req)));
        assert!(!is_serializable_range(&[0, 0, 0]));
        let mut compressed = frame(&req);
        compressed[0] = 1;
        assert!(!is_serializable_range(&compressed));
    }
}
