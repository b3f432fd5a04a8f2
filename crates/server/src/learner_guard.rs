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
//! on. Off a learner the caller (`crate::grpc_route`) skips the guard after
//! one atomic load, so none of this runs on a voting member.
//!
//! The HTTP/JSON gateway answers the same on a learner as etcd's, whose
//! gateway calls its own gRPC server: `/maintenance/status`,
//! `/maintenance/snapshot` and serializable `/kv/range` (under every gateway
//! prefix) are served; every other gateway API path gets the refusal as
//! grpc-gateway writes it (HTTP 503, code 14). A body the gateway cannot
//! decode still gets its usual 400, as it would before any gRPC call.
//! `/health`, `/version` and `/metrics` are not gRPC calls and always pass.
//!
//! Invariant: [`serve_as_learner`] only sees calls of the gRPC services
//! registered on the client port, [`serve_gateway_as_learner`] everything
//! else.

use std::future::Future;

use axum::body::{Body, HttpBody};
use axum::http::{Request, Response};
use prost::Message as _;
use retcd_api::etcdserverpb::RangeRequest;

use crate::membership::MemberError;

/// Calls a learner serves whatever their content.
const ALWAYS_SERVED: &[&str] = &[
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Snapshot",
];
/// The call a learner serves when serializable.
const RANGE: &str = "/etcdserverpb.KV/Range";
/// Gateway paths (after the prefix) a learner serves whatever their content.
const GATEWAY_ALWAYS_SERVED: &[&str] = &["/maintenance/status", "/maintenance/snapshot"];
/// The gateway path a learner serves when the request is serializable.
const GATEWAY_RANGE: &str = "/kv/range";
/// Bytes of a gRPC frame header: compression flag and a `u32` length.
const FRAME_HEADER_BYTES: usize = 5;
/// Largest Range request body read to check it.
const MAX_RANGE_BODY_BYTES: usize = 4 << 20;

/// Serves `request` on a learner: hands it to `call` when a learner serves
/// it, and answers etcd's refusal otherwise.
pub async fn serve_as_learner<B, F, Fut>(
    request: Request<B>,
    call: F,
) -> Response<tonic::body::Body>
where
    B: HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
    F: FnOnce(Request<Body>) -> Fut,
    Fut: Future<Output = Response<tonic::body::Body>>,
{
    let path = request.uri().path();
    if ALWAYS_SERVED.contains(&path) {
        return call(request.map(Body::new)).await;
    }
    if path != RANGE {
        return refusal();
    }
    serve_range(
        request,
        call,
        MAX_RANGE_BODY_BYTES,
        is_serializable_range,
        refusal,
    )
    .await
}

/// Serves a gateway request on a learner: hands it to `call` unless it is a
/// gateway API call a learner does not serve, which gets etcd's refusal.
pub async fn serve_gateway_as_learner<B, F, Fut>(
    request: Request<B>,
    call: F,
) -> Response<tonic::body::Body>
where
    B: HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
    F: FnOnce(Request<Body>) -> Fut,
    Fut: Future<Output = Response<tonic::body::Body>>,
{
    let path = request.uri().path();
    let api_call = crate::gateway::PREFIXES.iter().find_map(|prefix| {
        path.strip_prefix(prefix)
            .filter(|rest| rest.starts_with('/'))
    });
    let Some(rest) = api_call else {
        return call(request.map(Body::new)).await;
    };
    if GATEWAY_ALWAYS_SERVED.contains(&rest) {
        return call(request.map(Body::new)).await;
    }
    if rest != GATEWAY_RANGE {
        return gateway_refusal();
    }
    // JSON carries the key as base64, plus syntax. A body the gateway cannot
    // decode goes on to get the gateway's own 400.
    let serializable = |body: &[u8]| {
        crate::gateway_decode::decode_request::<RangeRequest>(body)
            .map_or(true, |req| req.serializable)
    };
    serve_range(
        request,
        call,
        2 * MAX_RANGE_BODY_BYTES,
        serializable,
        gateway_refusal,
    )
    .await
}

/// Reads a range call's body (at most `max_body` bytes) and hands it on
/// unchanged to `call` if `serializable` says so; `refusal` otherwise.
async fn serve_range<B, F, Fut>(
    request: Request<B>,
    call: F,
    max_body: usize,
    serializable: fn(&[u8]) -> bool,
    refusal: fn() -> Response<tonic::body::Body>,
) -> Response<tonic::body::Body>
where
    B: HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
    F: FnOnce(Request<Body>) -> Fut,
    Fut: Future<Output = Response<tonic::body::Body>>,
{
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(Body::new(body), max_body).await else {
        return refusal();
    };
    if !serializable(&bytes) {
        return refusal();
    }
    call(Request::from_parts(parts, Body::from(bytes))).await
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
fn refusal() -> Response<tonic::body::Body> {
    let status = tonic::Status::new(
        MemberError::NotSupportedForLearner.code(),
        MemberError::NotSupportedForLearner.to_string(),
    );
    status.into_http()
}

/// etcd's refusal, as its gateway writes a gRPC error.
fn gateway_refusal() -> Response<tonic::body::Body> {
    let e = MemberError::NotSupportedForLearner;
    crate::gateway::error_response(e.code(), &e.to_string()).map(tonic::body::Body::new)
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

    /// Runs `path` with `body` through the guard; returns the body the call
    /// received, or `None` when the guard refused it.
    async fn guarded(path: &str, body: Vec<u8>) -> Option<Vec<u8>> {
        let request = Request::post(path).body(Body::from(body)).unwrap();
        let seen = std::sync::Mutex::new(None);
        let response = serve_as_learner(request, |request| async {
            let bytes = axum::body::to_bytes(request.into_body(), usize::MAX).await;
            *seen.lock().unwrap() = Some(bytes.unwrap().to_vec());
            Response::new(tonic::body::Body::empty())
        })
        .await;
        let seen = seen.into_inner().unwrap();
        if seen.is_none() {
            let status = tonic::Status::from_header_map(response.headers()).unwrap();
            assert_eq!(status.code(), tonic::Code::Unavailable);
            assert_eq!(
                status.message(),
                "etcdserver: rpc not supported for learner"
            );
        }
        seen
    }

    #[tokio::test]
    async fn learner_serves_only_reads_that_need_no_quorum() {
        let mut range = RangeRequest {
            key: b"foo".to_vec(),
            ..Default::default()
        };
        assert_eq!(guarded(RANGE, frame(&range)).await, None);
        range.serializable = true;
        let body = frame(&range);
        assert_eq!(guarded(RANGE, body.clone()).await, Some(body));
        for path in ALWAYS_SERVED {
            assert_eq!(guarded(path, vec![0; 5]).await, Some(vec![0; 5]));
        }
        assert_eq!(guarded("/etcdserverpb.KV/Put", vec![0; 5]).await, None);
        assert_eq!(
            guarded("/etcdserverpb.Lease/LeaseGrant", vec![0; 5]).await,
            None
        );
    }

    /// What `serve_gateway_as_learner` does with a POST of `body` to `path`:
    /// the body handed on, or None after checking the refusal.
    async fn gateway_guarded(path: &str, body: &str) -> Option<String> {
        let request = Request::post(path)
            .body(Body::from(body.to_string()))
            .unwrap();
        let seen = std::sync::Mutex::new(None);
        let response = serve_gateway_as_learner(request, |request| async {
            let bytes = axum::body::to_bytes(request.into_body(), usize::MAX).await;
            *seen.lock().unwrap() = Some(String::from_utf8(bytes.unwrap().to_vec()).unwrap());
            Response::new(tonic::body::Body::empty())
        })
        .await;
        let seen = seen.into_inner().unwrap();
        if seen.is_none() {
            assert_eq!(response.status(), 503, "{path}");
            let bytes = axum::body::to_bytes(Body::new(response.into_body()), usize::MAX)
                .await
                .unwrap();
            assert_eq!(
                std::str::from_utf8(&bytes).unwrap(),
                r#"{"error":"etcdserver: rpc not supported for learner","message":"etcdserver: rpc not supported for learner","code":14}"#
            );
        }
        seen
    }

    #[tokio::test]
    async fn the_gateway_on_a_learner_serves_what_grpc_does() {
        let serializable = r#"{"key":"Zm9v","serializable":true}"#;
        for prefix in ["/v3", "/v3beta", "/v3alpha"] {
            let path = format!("{prefix}/kv/range");
            assert_eq!(
                gateway_guarded(&path, serializable).await.as_deref(),
                Some(serializable),
                "{path}"
            );
            assert_eq!(gateway_guarded(&path, r#"{"key":"Zm9v"}"#).await, None);
            for refused in [
                "/kv/put",
                "/kv/txn",
                "/lease/grant",
                "/watch",
                "/cluster/member/list",
            ] {
                assert_eq!(
                    gateway_guarded(&format!("{prefix}{refused}"), "{}").await,
                    None
                );
            }
            for served in ["/maintenance/status", "/maintenance/snapshot"] {
                let path = format!("{prefix}{served}");
                assert_eq!(gateway_guarded(&path, "{}").await.as_deref(), Some("{}"));
            }
        }
        // A body the gateway cannot decode gets its own 400 from the handler.
        assert_eq!(
            gateway_guarded("/v3/kv/range", "{").await.as_deref(),
            Some("{")
        );
        for not_grpc in [
            "/health",
            "/version",
            "/metrics",
            "/v3betax/kv/put",
            "/nope",
        ] {
            assert_eq!(gateway_guarded(not_grpc, "x").await.as_deref(), Some("x"));
        }
    }
}
