//! The HTTP/JSON gateway and the plain HTTP endpoints of the client port.
//!
//! `POST /v3/<service>/<method>` (also under `/v3beta` and `/v3alpha`) takes
//! the request message as proto3 JSON and answers with the response message,
//! written as etcd's grpc-gateway writes it: proto field names, 64-bit
//! integers as strings, bytes as base64, default values left out. Requests go
//! through the same service code as gRPC, so validation and errors are shared.
//! Errors come back as `{"error": text, "code": grpc code, "message": text}`
//! with the HTTP status grpc-gateway assigns to that code. Request bodies are
//! decoded as etcd 3.4's gateway decodes them (`gateway_decode`): what it
//! accepts we accept, and what it rejects gets 400, code 3 and Go's text.
//!
//! `GET /health`, `/version` and `/metrics` are served beside them. As
//! behind etcd's Go mux, `/v3` redirects to `/v3/` and a 405 lists no
//! allowed methods.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use retcd_api::etcdserverpb::AlarmType;
use retcd_api::etcdserverpb::kv_server::Kv;
use retcd_mvcc::watch::WatchHub;
use serde::Serialize;
use tonic::{Code, Status};

use crate::api::kv::KvService;
use crate::config::{ETCD_CLUSTER_VERSION, ETCD_VERSION, GRPC_OVERHEAD_BYTES};
use crate::error::http_status;
use crate::gateway_decode::{GatewayRequest, decode_request};
use crate::metrics;
use crate::server::EtcdServer;

/// Path prefixes the gateway answers under.
pub(crate) const PREFIXES: &[&str] = &["/v3", "/v3beta", "/v3alpha"];

/// Headers etcd's gateway puts on every JSON answer.
pub(crate) const GATEWAY_HEADERS: [(header::HeaderName, &str); 1] =
    [(header::CONTENT_TYPE, "application/json")];

/// The CORS headers etcd's access controller puts on every HTTP answer of
/// the client port: it allows any origin.
const CORS_HEADERS: [(header::HeaderName, &str); 3] = [
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    (
        header::ACCESS_CONTROL_ALLOW_METHODS,
        "POST, GET, OPTIONS, PUT, DELETE",
    ),
    (
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "accept, content-type, authorization",
    ),
];

/// The header etcd's gateway adds to every successful answer: the gRPC
/// response's `content-type` metadata, forwarded. Error answers lack it.
pub(crate) const GRPC_METADATA_HEADERS: [(header::HeaderName, &str); 1] = [(
    header::HeaderName::from_static("grpc-metadata-content-type"),
    "application/grpc",
)];

/// The least request body the gateway buffers. etcd's gateway reads any body
/// and lets the decoded message meet the gRPC size check, so a body well past
/// the message limit (whitespace, unknown fields) may still be a small request;
/// this bound only keeps one request's memory finite.
const MIN_BODY_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// What the gateway handlers share.
#[derive(Clone)]
struct Gateway {
    /// The KV service, called as gRPC would.
    kv: KvService,
    /// The server core, for health and metrics.
    server: Arc<EtcdServer>,
    /// Largest request message accepted, as the gRPC transport enforces it.
    max_message: usize,
    /// The watch hub, whose watchers `/metrics` counts.
    watch_hub: WatchHub,
}

/// Builds the HTTP router of the client port (without the gRPC services).
pub fn router(server: Arc<EtcdServer>, watch_hub: WatchHub) -> Router {
    let max_message = server.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES;
    // JSON carries bytes as base64 (4/3 larger) plus syntax: allow at least
    // twice the message limit on the wire; `unary` checks the decoded message
    // against the limit and answers as gRPC would.
    let body_limit = (2 * max_message).max(MIN_BODY_LIMIT_BYTES);
    let leases = crate::gateway_lease::router(server.clone(), PREFIXES, max_message)
        .layer(DefaultBodyLimit::max(body_limit));
    let admin = crate::gateway_maintenance::router(server.clone(), PREFIXES, max_message)
        .layer(DefaultBodyLimit::max(body_limit));
    let concurrency = crate::gateway_concurrency::router(
        server.clone(),
        watch_hub.clone(),
        PREFIXES,
        max_message,
    )
    .layer(DefaultBodyLimit::max(body_limit));
    let state = Gateway {
        kv: KvService {
            server: server.clone(),
        },
        server,
        max_message,
        watch_hub,
    };
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics_text).post(metrics_text))
        .route(V3_DIRECTORY, any(redirect_to_directory));
    for prefix in PREFIXES {
        router = router
            .route(&format!("{prefix}/kv/range"), post(kv_range))
            .route(&format!("{prefix}/kv/put"), post(kv_put))
            .route(&format!("{prefix}/kv/deleterange"), post(kv_delete_range))
            .route(&format!("{prefix}/kv/txn"), post(kv_txn))
            .route(&format!("{prefix}/kv/compaction"), post(kv_compaction));
    }
    router
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
        .merge(leases)
        .merge(admin)
        .merge(concurrency)
}

/// Whether `request` is a gRPC call (which the HTTP layers leave alone).
fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// etcd's access controller, wrapped around every HTTP handler of the client
/// port: it adds the CORS headers to the answer and answers a preflight
/// (OPTIONS, any path) itself with 200 and an empty body. gRPC calls pass
/// untouched, as etcd serves them outside this handler.
pub async fn access_control(request: Request, next: Next) -> Response {
    if is_grpc(&request) {
        return next.run(request).await;
    }
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        // axum lists the allowed methods; Go's 405 does not.
        response.headers_mut().remove(header::ALLOW);
    }
    (CORS_HEADERS, response).into_response()
}

/// Answers paths nothing else serves: gRPC calls of services not registered
/// get UNIMPLEMENTED, anything else a plain 404 as etcd answers.
pub async fn fallback(request: Request) -> Response {
    if is_grpc(&request) {
        // grpc-go's text, which clients print: the service is the first path segment.
        let path = request.uri().path();
        let service = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        return Status::unimplemented(format!("unknown service {service}"))
            .into_http::<axum::body::Body>();
    }
    // Under a gateway prefix grpc-gateway's mux answers; elsewhere Go's.
    let path = request.uri().path();
    let in_gateway = PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
    });
    let text = if in_gateway {
        "Not Found\n"
    } else {
        "404 page not found\n"
    };
    plain_text(StatusCode::NOT_FOUND, text)
}

/// Answers a known path asked with a method it does not serve, as Go's
/// `http.Error` does.
pub async fn method_not_allowed() -> Response {
    plain_text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
}

/// The one gateway prefix etcd registers as a directory (`/v3/`), whose
/// bare name Go's mux redirects.
const V3_DIRECTORY: &str = "/v3";

/// Any method on `/v3`: Go's mux answers 301 to `/v3/` (query kept), with
/// `http.Redirect`'s small HTML body for GET, its content type alone for
/// HEAD, and neither otherwise.
async fn redirect_to_directory(request: Request) -> Response {
    let location = match request.uri().query() {
        Some(query) if !query.is_empty() => format!("{V3_DIRECTORY}/?{query}"),
        _ => format!("{V3_DIRECTORY}/"),
    };
    let Ok(location_value) = header::HeaderValue::from_str(&location) else {
        return plain_text(StatusCode::BAD_REQUEST, "Bad Request\n");
    };
    let html = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
    let mut response = match *request.method() {
        Method::GET => {
            let body = format!(
                "<a href=\"{}\">Moved Permanently</a>.\n\n",
                html_escape(&location)
            );
            (html, body).into_response()
        }
        // Go writes no body, so no length either: a body of unknown size.
        Method::HEAD => (
            html,
            axum::body::Body::from_stream(futures::stream::empty::<Result<Bytes, Infallible>>()),
        )
            .into_response(),
        _ => ().into_response(),
    };
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    response
        .headers_mut()
        .insert(header::LOCATION, location_value);
    response
}

/// `text` with the characters Go's `htmlEscape` replaces replaced.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A plain-text answer as Go's `http.Error` writes it.
fn plain_text(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response()
}

/// Decodes a JSON request, runs the call, and encodes its answer or error.
pub(crate) async fn unary<Req, Resp, F, Fut>(body: Bytes, max_message: usize, call: F) -> Response
where
    Req: GatewayRequest,
    Resp: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let request = match decode_request::<Req>(&body) {
        Ok(request) => request,
        Err(text) => return error_response(Code::InvalidArgument, &text),
    };
    let size = request.encoded_len();
    if size > max_message {
        let text = format!("grpc: received message larger than max ({size} vs. {max_message})");
        return error_response(Code::ResourceExhausted, &text);
    }
    match call(request).await {
        Ok(resp) => (
            GRPC_METADATA_HEADERS,
            json_response(StatusCode::OK, &resp.into_inner()),
        )
            .into_response(),
        Err(status) => error_response(status.code(), status.message()),
    }
}

/// Declares unary gateway handlers: each `$name` takes the `$state` router
/// state (with a `max_message` field) and a JSON body, and calls
/// `$service.$method` of the state through [`unary`].
macro_rules! unary_handlers {
    ($state:ty; $(#[$doc:meta] $name:ident => $service:ident.$method:ident;)*) => {
        $(#[$doc]
        async fn $name(
            axum::extract::State(g): axum::extract::State<$state>,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            $crate::gateway::unary(body, g.max_message, |req| async move {
                g.$service.$method(tonic::Request::new(req)).await
            })
            .await
        })*
    };
}
pub(crate) use unary_handlers;

/// A JSON body with `status`.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, GATEWAY_HEADERS, bytes).into_response(),
        Err(e) => error_response(Code::Internal, &e.to_string()),
    }
}

/// grpc-gateway's error body for a gRPC status (fields in etcd's order).
#[derive(Serialize)]
struct ErrorBody<'a> {
    /// The error text.
    error: &'a str,
    /// The error text again, as grpc-gateway writes it.
    message: &'a str,
    /// The gRPC code as a number.
    code: i32,
}

/// An error answer for `code` with `message`.
pub(crate) fn error_response(code: Code, message: &str) -> Response {
    let status =
        StatusCode::from_u16(http_status(code)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(
        status,
        &ErrorBody {
            error: message,
            message,
            code: code as i32,
        },
    )
}

/// POST /v3/kv/range.
async fn kv_range(State(g): State<Gateway>, body: Bytes) -> Response {
    unary(body, g.max_message, |req| async move {
        g.kv.range(tonic::Request::new(req)).await
    })
    .await
}

/// POST /v3/kv/put.
async fn kv_put(State(g): State<Gateway>, body: Bytes) -> Response {
    unary(body, g.max_message, |req| async move {
        g.kv.put(tonic::Request::new(req)).await
    })
    .await
}

/// POST /v3/kv/deleterange.
async fn kv_delete_range(State(g): State<Gateway>, body: Bytes) -> Response {
    unary(body, g.max_message, |req| async move {
        g.kv.delete_range(tonic::Request::new(req)).await
    })
    .await
}

/// POST /v3/kv/txn.
async fn kv_txn(State(g): State<Gateway>, body: Bytes) -> Response {
    unary(body, g.max_message, |req| async move {
        g.kv.txn(tonic::Request::new(req)).await
    })
    .await
}

/// POST /v3/kv/compaction.
async fn kv_compaction(State(g): State<Gateway>, body: Bytes) -> Response {
    unary(body, g.max_message, |req| async move {
        g.kv.compact(tonic::Request::new(req)).await
    })
    .await
}

/// GET /health, as etcd 3.5 answers it: unhealthy while any alarm is active
/// (the first one listed names the reason), else while the member knows no
/// leader.
async fn health(State(g): State<Gateway>) -> Response {
    let alarm = g
        .server
        .alarms
        .list(AlarmType::None as i32)
        .into_iter()
        .next();
    let reason = match alarm {
        Some(alarm) => match AlarmType::try_from(alarm.alarm) {
            Ok(AlarmType::Nospace) => "ALARM NOSPACE",
            Ok(AlarmType::Corrupt) => "ALARM CORRUPT",
            _ => "ALARM UNKNOWN",
        },
        None if g.server.raft.status().leader_id == 0 => "RAFT NO LEADER",
        None => "",
    };
    let healthy = reason.is_empty();
    if healthy {
        metrics::HEALTH_SUCCESS.inc();
    } else {
        metrics::HEALTH_FAILURES.inc();
    }
    let body = serde_json::json!({
        "health": if healthy { "true" } else { "false" },
        "reason": reason,
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}

/// The body of GET /version, fields in etcd's order.
#[derive(Serialize)]
struct Versions {
    /// This server's etcd version.
    etcdserver: &'static str,
    /// The cluster's etcd version.
    etcdcluster: &'static str,
}

/// GET /version: the etcd versions this server speaks.
async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &Versions {
            etcdserver: ETCD_VERSION,
            etcdcluster: ETCD_CLUSTER_VERSION,
        },
    )
}

/// GET (or POST, as etcd serves any method) /metrics: Prometheus text. The
/// gauges of state kept elsewhere are read here, at scrape time.
async fn metrics_text(State(g): State<Gateway>) -> Response {
    let store = &g.server.store;
    let db_size = store.db_size_bytes() as i64;
    metrics::DB_TOTAL_SIZE.set(db_size);
    metrics::DEBUGGING_DB_TOTAL_SIZE.set(db_size);
    metrics::DB_TOTAL_SIZE_IN_USE.set(store.db_size_in_use_bytes() as i64);
    metrics::CURRENT_REVISION.set(store.current_revision());
    // -1 until the first compaction, as etcd 3.4 reports it.
    metrics::COMPACT_REVISION.set(store.compact_revision());
    metrics::KEYS_TOTAL.set(i64::try_from(store.key_count()).unwrap_or(i64::MAX));
    metrics::WATCHERS.set(g.watch_hub.watcher_count() as i64);
    metrics::SLOW_WATCHERS.set(g.watch_hub.unsynced_count() as i64);
    metrics::IS_LEARNER.set(i64::from(g.server.cluster.is_local_learner()));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(),
    )
        .into_response()
}
