//! gRPC server metrics under the names, labels and meaning etcd 3.4 exports
//! them with (its go-grpc-prometheus interceptors and its codec's byte
//! counters), counted by one service wrapped around the whole client port.
//!
//! - `grpc_server_started_total`: calls begun;
//! - `grpc_server_msg_received_total` / `grpc_server_msg_sent_total`:
//!   messages read from the request and written in the response;
//! - `grpc_server_handled_total`: calls finished, by `grpc_code` (the
//!   status's Go name, `OK` .. `Unauthenticated`);
//! - `etcd_network_client_grpc_received_bytes_total` /
//!   `_sent_bytes_total`: message bytes (the gRPC length prefix, not the
//!   5-byte frame header), as etcd's codec counts what it unmarshals and
//!   marshals.
//!
//! Every method of etcd 3.4's client services (the [`METHODS`] table) is
//! resolved to its counters when the metrics register, so every label set is
//! listed at zero from the start, as etcd pre-registers them, and a call costs
//! a binary search of the table and a handful of atomic increments. The Lock
//! and Election methods ([`LATE_METHODS`]) are counted too, but as in etcd,
//! which registers those services after its metrics, a label set appears only
//! once it is first counted. Calls of other paths (gateway, `/metrics`,
//! services etcd 3.4 does not have) pass through uncounted.
//!
//! How the outcome is found: a gRPC response is a status either in its
//! headers (trailers-only, how errors are answered) or in the trailers after
//! the messages. The wrapper reads it from whichever arrives; a call whose
//! response or body is dropped before a status was seen (the client went
//! away) is `Canceled`, as grpc-go reports it. Messages are counted by
//! parsing the length-prefixed framing of the bodies as they stream, so a
//! stream's counts grow while it is open.
//!
//! Caveat: calls through the HTTP/JSON gateway are not counted: etcd's
//! gateway re-enters its own gRPC server over a loopback connection, ours
//! calls the services in process.

use std::pin::Pin;
use std::sync::{LazyLock, OnceLock};
use std::task::{Context, Poll};

use axum::http::{HeaderMap, Request, Response, header};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus::{IntCounter, IntCounterVec, register_int_counter, register_int_counter_vec};
use tonic::codegen::Service;

/// How a method streams, as go-grpc-prometheus labels it (`grpc_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallType {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses.
    ServerStream,
    /// Streams both ways.
    BidiStream,
}

impl CallType {
    /// The label value.
    fn label(self) -> &'static str {
        match self {
            CallType::Unary => "unary",
            CallType::ServerStream => "server_stream",
            CallType::BidiStream => "bidi_stream",
        }
    }
}

/// Every method etcd 3.4 registers on its client port, with zero counts
/// before any call: (service, method, type).
const METHODS: &[(&str, &str, CallType)] = &[
    ("etcdserverpb.KV", "Range", CallType::Unary),
    ("etcdserverpb.KV", "Put", CallType::Unary),
    ("etcdserverpb.KV", "DeleteRange", CallType::Unary),
    ("etcdserverpb.KV", "Txn", CallType::Unary),
    ("etcdserverpb.KV", "Compact", CallType::Unary),
    ("etcdserverpb.Watch", "Watch", CallType::BidiStream),
    ("etcdserverpb.Lease", "LeaseGrant", CallType::Unary),
    ("etcdserverpb.Lease", "LeaseRevoke", CallType::Unary),
    ("etcdserverpb.Lease", "LeaseKeepAlive", CallType::BidiStream),
    ("etcdserverpb.Lease", "LeaseTimeToLive", CallType::Unary),
    ("etcdserverpb.Lease", "LeaseLeases", CallType::Unary),
    ("etcdserverpb.Cluster", "MemberAdd", CallType::Unary),
    ("etcdserverpb.Cluster", "MemberRemove", CallType::Unary),
    ("etcdserverpb.Cluster", "MemberUpdate", CallType::Unary),
    ("etcdserverpb.Cluster", "MemberList", CallType::Unary),
    ("etcdserverpb.Cluster", "MemberPromote", CallType::Unary),
    ("etcdserverpb.Maintenance", "Alarm", CallType::Unary),
    ("etcdserverpb.Maintenance", "Status", CallType::Unary),
    ("etcdserverpb.Maintenance", "Defragment", CallType::Unary),
    ("etcdserverpb.Maintenance", "Hash", CallType::Unary),
    ("etcdserverpb.Maintenance", "HashKV", CallType::Unary),
    (
        "etcdserverpb.Maintenance",
        "Snapshot",
        CallType::ServerStream,
    ),
    ("etcdserverpb.Maintenance", "MoveLeader", CallType::Unary),
    ("etcdserverpb.Auth", "AuthEnable", CallType::Unary),
    ("etcdserverpb.Auth", "AuthDisable", CallType::Unary),
    ("etcdserverpb.Auth", "Authenticate", CallType::Unary),
    ("etcdserverpb.Auth", "UserAdd", CallType::Unary),
    ("etcdserverpb.Auth", "UserGet", CallType::Unary),
    ("etcdserverpb.Auth", "UserList", CallType::Unary),
    ("etcdserverpb.Auth", "UserDelete", CallType::Unary),
    ("etcdserverpb.Auth", "UserChangePassword", CallType::Unary),
    ("etcdserverpb.Auth", "UserGrantRole", CallType::Unary),
    ("etcdserverpb.Auth", "UserRevokeRole", CallType::Unary),
    ("etcdserverpb.Auth", "RoleAdd", CallType::Unary),
    ("etcdserverpb.Auth", "RoleGet", CallType::Unary),
    ("etcdserverpb.Auth", "RoleList", CallType::Unary),
    ("etcdserverpb.Auth", "RoleDelete", CallType::Unary),
    ("etcdserverpb.Auth", "RoleGrantPermission", CallType::Unary),
    ("etcdserverpb.Auth", "RoleRevokePermission", CallType::Unary),
    ("grpc.health.v1.Health", "Check", CallType::Unary),
    ("grpc.health.v1.Health", "Watch", CallType::ServerStream),
];

/// The methods etcd 3.4 serves on its client port but does not pre-register:
/// their label sets are made when first counted.
const LATE_METHODS: &[(&str, &str, CallType)] = &[
    ("v3lockpb.Lock", "Lock", CallType::Unary),
    ("v3lockpb.Lock", "Unlock", CallType::Unary),
    ("v3electionpb.Election", "Campaign", CallType::Unary),
    ("v3electionpb.Election", "Proclaim", CallType::Unary),
    ("v3electionpb.Election", "Leader", CallType::Unary),
    ("v3electionpb.Election", "Observe", CallType::ServerStream),
    ("v3electionpb.Election", "Resign", CallType::Unary),
];

/// grpc-go's names of the status codes, indexed by code (`grpc_code`).
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
/// The code of a call whose client went away.
const CANCELED: usize = 1;
/// The code of a response without a readable status.
const UNKNOWN: usize = 2;

/// Length of the prefix of every gRPC message: a compression flag and a
/// big-endian `u32` length.
const MESSAGE_PREFIX_BYTES: usize = 5;

/// One method's counters, each resolved once: at registration for
/// [`METHODS`], when first counted for [`LATE_METHODS`].
pub struct MethodMetrics {
    /// `grpc_type`, `grpc_service`, `grpc_method`.
    labels: [&'static str; 3],
    /// `grpc_server_started_total`.
    started: OnceLock<IntCounter>,
    /// `grpc_server_msg_received_total`.
    received: OnceLock<IntCounter>,
    /// `grpc_server_msg_sent_total`.
    sent: OnceLock<IntCounter>,
    /// `grpc_server_handled_total`, by code.
    handled: [OnceLock<IntCounter>; CODE_NAMES.len()],
}

impl MethodMetrics {
    /// The unresolved counters of `service`/`method`.
    fn new(service: &'static str, method: &'static str, call_type: CallType) -> MethodMetrics {
        MethodMetrics {
            labels: [call_type.label(), service, method],
            started: OnceLock::new(),
            received: OnceLock::new(),
            sent: OnceLock::new(),
            handled: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// `grpc_server_started_total`.
    fn started(&self) -> &IntCounter {
        let vecs = &METRICS.vecs;
        self.started
            .get_or_init(|| vecs.started.with_label_values(&self.labels))
    }

    /// `grpc_server_msg_received_total`.
    fn received(&self) -> &IntCounter {
        let vecs = &METRICS.vecs;
        self.received
            .get_or_init(|| vecs.received.with_label_values(&self.labels))
    }

    /// `grpc_server_msg_sent_total`.
    fn sent(&self) -> &IntCounter {
        let vecs = &METRICS.vecs;
        self.sent
            .get_or_init(|| vecs.sent.with_label_values(&self.labels))
    }

    /// `grpc_server_handled_total` for `code`.
    fn handled(&self, code: usize) -> &IntCounter {
        let vecs = &METRICS.vecs;
        self.handled[code].get_or_init(|| {
            let [call_type, service, method] = self.labels;
            vecs.handled
                .with_label_values(&[call_type, service, method, CODE_NAMES[code]])
        })
    }

    /// Makes every counter, listed at zero until counted.
    fn resolve(&self, vecs: &CallVecs) {
        let [call_type, service, method] = self.labels;
        let _ = self
            .started
            .set(vecs.started.with_label_values(&self.labels));
        let _ = self
            .received
            .set(vecs.received.with_label_values(&self.labels));
        let _ = self.sent.set(vecs.sent.with_label_values(&self.labels));
        for (code, cell) in self.handled.iter().enumerate() {
            let _ = cell.set(vecs.handled.with_label_values(&[
                call_type,
                service,
                method,
                CODE_NAMES[code],
            ]));
        }
    }
}

/// The per-method counter families.
struct CallVecs {
    /// `grpc_server_started_total`.
    started: IntCounterVec,
    /// `grpc_server_msg_received_total`.
    received: IntCounterVec,
    /// `grpc_server_msg_sent_total`.
    sent: IntCounterVec,
    /// `grpc_server_handled_total`.
    handled: IntCounterVec,
}

/// Every counter of this module.
struct GrpcMetrics {
    /// The families the per-method counters belong to.
    vecs: CallVecs,
    /// Per-method counters, in [`METHODS`] then [`LATE_METHODS`] order.
    methods: Vec<MethodMetrics>,
    /// `/<service>/<method>` paths, sorted, with their index in `methods`.
    by_path: Vec<(String, usize)>,
    /// `etcd_network_client_grpc_received_bytes_total`.
    received_bytes: IntCounter,
    /// `etcd_network_client_grpc_sent_bytes_total`.
    sent_bytes: IntCounter,
}

/// The process-wide gRPC metrics.
static METRICS: LazyLock<GrpcMetrics> = LazyLock::new(GrpcMetrics::register);

impl GrpcMetrics {
    /// Registers the families and resolves every method's label sets.
    fn register() -> GrpcMetrics {
        let labels = &["grpc_type", "grpc_service", "grpc_method"];
        let vec = |name: &str, help: &str, labels: &[&str]| -> IntCounterVec {
            register_int_counter_vec!(name, help, labels)
                .unwrap_or_else(|e| panic!("registering {name}: {e}"))
        };
        let started = vec(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            labels,
        );
        let received = vec(
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            labels,
        );
        let sent = vec(
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            labels,
        );
        let handled = vec(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        );
        let vecs = CallVecs {
            started,
            received,
            sent,
            handled,
        };
        let methods: Vec<MethodMetrics> = METHODS
            .iter()
            .chain(LATE_METHODS)
            .map(|&(service, method, call_type)| MethodMetrics::new(service, method, call_type))
            .collect();
        for m in &methods[..METHODS.len()] {
            m.resolve(&vecs);
        }
        let mut by_path: Vec<(String, usize)> = METHODS
            .iter()
            .chain(LATE_METHODS)
            .enumerate()
            .map(|(i, (service, method, _))| (format!("/{service}/{method}"), i))
            .collect();
        by_path.sort();
        GrpcMetrics {
            vecs,
            methods,
            by_path,
            received_bytes: register_int_counter!(
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients."
            )
            .expect("registering etcd_network_client_grpc_received_bytes_total"),
            sent_bytes: register_int_counter!(
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients."
            )
            .expect("registering etcd_network_client_grpc_sent_bytes_total"),
        }
    }

    /// The counters of the method a gRPC call of `path` invokes, if counted.
    fn method(&self, path: &str) -> Option<&MethodMetrics> {
        let i = self
            .by_path
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()?;
        Some(&self.methods[self.by_path[i].1])
    }
}

/// Registers the families so a scrape lists every method from the start.
pub fn register() {
    LazyLock::force(&METRICS);
}

/// The counters of the call `path` and `headers` describe: a gRPC call
/// (by content type) of a method etcd 3.4 serves.
fn call_metrics(path: &str, headers: &HeaderMap) -> Option<&'static MethodMetrics> {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        return None;
    }
    METRICS.method(path)
}

/// The code index of a `grpc-status` value.
fn status_code(headers: &HeaderMap) -> Option<usize> {
    let value = headers.get("grpc-status")?;
    let code = std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&c| c < CODE_NAMES.len());
    Some(code.unwrap_or(UNKNOWN))
}

/// Counts the messages of a body from its length-prefixed framing, however
/// the transport splits it into chunks.
#[derive(Debug, Default)]
struct MessageCounter {
    /// The prefix of the current message, as far as it arrived.
    prefix: [u8; MESSAGE_PREFIX_BYTES],
    /// How many prefix bytes arrived.
    prefix_len: usize,
    /// Bytes of the current message still to come.
    payload_left: u64,
}

impl MessageCounter {
    /// Reads a chunk; returns the messages whose prefix completed in it and
    /// their announced lengths, summed.
    fn feed(&mut self, mut chunk: &[u8]) -> (u64, u64) {
        let (mut messages, mut bytes) = (0, 0);
        while !chunk.is_empty() {
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left)
                    .map_or(chunk.len(), |left| left.min(chunk.len()));
                chunk = &chunk[skip..];
                self.payload_left -= skip as u64;
                continue;
            }
            let take = (MESSAGE_PREFIX_BYTES - self.prefix_len).min(chunk.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&chunk[..take]);
            self.prefix_len += take;
            chunk = &chunk[take..];
            if self.prefix_len == MESSAGE_PREFIX_BYTES {
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                messages += 1;
                bytes += u64::from(len);
                self.payload_left = u64::from(len);
                self.prefix_len = 0;
            }
        }
        (messages, bytes)
    }
}

/// Wraps the client port's service and counts the gRPC calls through it.
#[derive(Clone)]
pub struct GrpcMetricsService<S> {
    /// The wrapped service.
    inner: S,
}

impl<S> GrpcMetricsService<S> {
    /// Counts the calls `inner` serves.
    pub fn new(inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService { inner }
    }
}

impl<S, B, RB> Service<Request<B>> for GrpcMetricsService<S>
where
    S: Service<Request<MeteredRequestBody<B>>, Response = Response<RB>>,
    S::Future: Unpin,
{
    type Response = Response<MeteredResponseBody<RB>>;
    type Error = S::Error;
    type Future = MeteredCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> MeteredCall<S::Future> {
        let call = call_metrics(request.uri().path(), request.headers());
        if let Some(m) = call {
            m.started().inc();
        }
        let request = request.map(|inner| MeteredRequestBody {
            inner,
            call,
            messages: MessageCounter::default(),
        });
        MeteredCall {
            inner: self.inner.call(request),
            call,
        }
    }
}

/// A call's future: notes a status answered in the response headers, and
/// hands the body on to be counted.
pub struct MeteredCall<F> {
    /// The wrapped service's future.
    inner: F,
    /// The call's counters until its response is out; `None` when uncounted.
    call: Option<&'static MethodMetrics>,
}

impl<F, RB, E> Future for MeteredCall<F>
where
    F: Future<Output = Result<Response<RB>, E>> + Unpin,
{
    type Output = Result<Response<MeteredResponseBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = match Pin::new(&mut this.inner).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(response) => response,
        };
        let call = this.call.take();
        Poll::Ready(response.map(|response| {
            // A trailers-only answer: the status is final, the body empty.
            let call = match (call, status_code(response.headers())) {
                (Some(m), Some(code)) => {
                    m.handled(code).inc();
                    None
                }
                (call, _) => call,
            };
            response.map(|inner| MeteredResponseBody {
                inner,
                call,
                messages: MessageCounter::default(),
            })
        }))
    }
}

impl<F> Drop for MeteredCall<F> {
    fn drop(&mut self) {
        // Dropped before answering: the client went away.
        if let Some(m) = self.call {
            m.handled(CANCELED).inc();
        }
    }
}

/// A request body whose messages are counted as the service reads them.
pub struct MeteredRequestBody<B> {
    /// The transport's body.
    inner: B,
    /// The call's counters; `None` when uncounted.
    call: Option<&'static MethodMetrics>,
    /// Where the framing stands.
    messages: MessageCounter,
}

impl<B> Body for MeteredRequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let (Some(m), Poll::Ready(Some(Ok(frame)))) = (this.call, &polled)
            && let Some(data) = frame.data_ref()
        {
            let (messages, bytes) = this.messages.feed(data);
            if messages > 0 {
                m.received().inc_by(messages);
                METRICS.received_bytes.inc_by(bytes);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body whose messages are counted as they leave, and whose
/// trailers (or early drop) finish the call.
pub struct MeteredResponseBody<B> {
    /// The service's body.
    inner: B,
    /// The call's counters until its status is seen; `None` when uncounted.
    call: Option<&'static MethodMetrics>,
    /// Where the framing stands.
    messages: MessageCounter,
}

impl<B> Body for MeteredResponseBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let Some(m) = this.call else {
            return polled;
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let (messages, bytes) = this.messages.feed(data);
                    if messages > 0 {
                        m.sent().inc_by(messages);
                        METRICS.sent_bytes.inc_by(bytes);
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    m.handled(status_code(trailers).unwrap_or(UNKNOWN)).inc();
                    this.call = None;
                }
            }
            // The body failed (the connection broke) before its status.
            Poll::Ready(Some(Err(_))) => {
                m.handled(CANCELED).inc();
                this.call = None;
            }
            Poll::Ready(None) => {
                m.handled(UNKNOWN).inc();
                this.call = None;
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredResponseBody<B> {
    fn drop(&mut self) {
        // Dropped before its status went out: the client went away.
        if let Some(m) = self.call {
            m.handled(CANCELED).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `messages` gRPC messages of the given payload lengths, framed.
    fn framed(lengths: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for &len in lengths {
            out.push(0);
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.extend(std::iter::repeat_n(7u8, len));
        }
        out
    }

    #[test]
    fn messages_are_counted_however_the_body_is_split() {
        let body = framed(&[3, 0, 300, 1]);
        for chunk_len in [1, 2, 4, 5, 6, 7, 64, body.len()] {
            let mut counter = MessageCounter::default();
            let (mut messages, mut bytes) = (0, 0);
            for chunk in body.chunks(chunk_len) {
                let (m, b) = counter.feed(chunk);
                messages += m;
                bytes += b;
            }
            assert_eq!((messages, bytes), (4, 304), "chunks of {chunk_len}");
        }
    }

    #[test]
    fn a_message_counts_once_its_prefix_is_complete() {
        let body = framed(&[10]);
        let mut counter = MessageCounter::default();
        assert_eq!(counter.feed(&body[..4]), (0, 0));
        assert_eq!(counter.feed(&body[4..6]), (1, 10));
        assert_eq!(counter.feed(&body[6..]), (0, 0));
    }

    #[test]
    fn statuses_map_to_go_names() {
        let status = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-status", value.parse().unwrap());
            status_code(&headers).map(|c| CODE_NAMES[c])
        };
        assert_eq!(status("0"), Some("OK"));
        assert_eq!(status("1"), Some("Canceled"));
        assert_eq!(status("12"), Some("Unimplemented"));
        assert_eq!(status("16"), Some("Unauthenticated"));
        assert_eq!(status("17"), Some("Unknown"));
        assert_eq!(status("x"), Some("Unknown"));
        assert_eq!(status_code(&HeaderMap::new()), None);
    }

    #[test]
    fn only_grpc_calls_of_known_methods_are_counted() {
        let grpc = |content_type: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
            headers
        };
        let proto = grpc("application/grpc+proto");
        assert!(call_metrics("/etcdserverpb.KV/Put", &proto).is_some());
        assert!(call_metrics("/grpc.health.v1.Health/Check", &proto).is_some());
        assert!(call_metrics("/etcdserverpb.KV/Put", &grpc("application/json")).is_none());
        assert!(call_metrics("/etcdserverpb.KV/Nope", &proto).is_none());
        assert!(call_metrics("/v3lockpb.Lock/Nope", &proto).is_none());
        assert!(call_metrics("/v3/kv/put", &proto).is_none());
        assert!(std::ptr::eq(
            call_metrics("/etcdserverpb.Watch/Watch", &proto).unwrap(),
            &METRICS.methods[5]
        ));
        assert!(std::ptr::eq(
            call_metrics("/v3electionpb.Election/Observe", &proto).unwrap(),
            &METRICS.methods[METHODS.len() + 5]
        ));
    }

    #[test]
    fn late_methods_are_listed_once_counted_and_only_with_codes_seen() {
        let proto = {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, "application/grpc".parse().unwrap());
            headers
        };
        let listed = |needle: &str| {
            crate::metrics::render()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let unlock = r#"grpc_method="Unlock""#;
        assert!(listed(unlock).is_empty(), "{:?}", listed(unlock));
        let m = call_metrics("/v3lockpb.Lock/Unlock", &proto).unwrap();
        m.started().inc();
        m.handled(0).inc();
        let lines = listed(unlock);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|l| l.contains(r#"grpc_service="v3lockpb.Lock""#)
                    && l.contains(r#"grpc_type="unary""#)
                    && l.ends_with(" 1"))
        );
        assert!(lines.iter().any(
            |l| l.starts_with("grpc_server_handled_total{") && l.contains(r#"grpc_code="OK""#)
        ));
        // Pre-registered methods list every code from the start.
        let put = listed(r#"grpc_method="Put""#);
        assert_eq!(put.len(), 3 + CODE_NAMES.len(), "{put:?}");
    }
}
