//! One bare HTTP/2 connection per `--conns`, usable by tonic's generated
//! clients.
//!
//! tonic's `Channel` serves its callers through a tower `Buffer` (an mpsc
//! queue plus a worker task) in front of a reconnecting, boxed service stack
//! and hyper's client, which passes each request over another channel to the
//! connection task and spawns a task per request to await its response. On a
//! machine where the load generator shares the cores with the server, that
//! overhead is taken from the server being measured. [`Connection`] instead
//! opens the HTTP/2 stream itself, on h2's `SendRequest` (a cheap clone per
//! client), from the calling client's task; the `KvClient`s and
//! `WatchClient`s built on it send the same gRPC messages as before.
//!
//! A request's body is sent from the calling task for as long as it has data
//! ready: a unary request's single message then leaves with its `HEADERS` in
//! one write, and its last `DATA` frame carries `END_STREAM`. A body that is
//! still open when it has nothing ready (a watch stream's requests) is handed
//! to a task of its own that sends the rest as it comes.
//!
//! Invariants:
//! - one TCP connection (with `TCP_NODELAY`, as tonic sets it) per
//!   [`Connection`], established by [`connect`] before any request is timed;
//!   clones share it and its HTTP/2 streams multiplex on it;
//! - the HTTP/2 settings are those hyper's client (under tonic's `Channel`)
//!   sends by default: [`STREAM_WINDOW_BYTES`], [`CONNECTION_WINDOW_BYTES`],
//!   [`MAX_HEADER_LIST_BYTES`], [`MAX_SEND_BUFFER_BYTES`], no server push;
//! - a response body gives back its flow-control window as it is read, so
//!   long streams (watch) never stall;
//! - requests carry a full URI (scheme and authority from the endpoint) because
//!   gRPC servers reject HTTP/2 requests without `:scheme` and `:authority`;
//!   the generated clients get it from [`Connection::origin`] via
//!   `with_origin`.
//!
//! Caveats: there is no reconnect; once the server closes the connection,
//! every later request on it fails (and is counted as failed). Only `http://`
//! endpoints are supported, as before (the bench has no TLS). Request data is
//! queued without waiting for send window; every benchmark request is far
//! smaller than the 64 KiB a stream may send before the server's first window
//! update.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use hyper::body::{Body, Frame};
use hyper::http::{Request, Response, Uri};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Initial flow-control window of each stream (hyper's client default).
const STREAM_WINDOW_BYTES: u32 = 2 * 1024 * 1024;
/// Initial flow-control window of the connection (hyper's client default).
const CONNECTION_WINDOW_BYTES: u32 = 5 * 1024 * 1024;
/// Largest header list accepted from the server (hyper's client default).
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// Most data buffered per stream before h2 pushes back (hyper's default).
const MAX_SEND_BUFFER_BYTES: usize = 1024 * 1024;

/// Errors of a request: h2's, or the request body's (tonic encoding).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response future of one request on a [`Connection`].
type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>;

/// A handle to one HTTP/2 connection: a `tower::Service` for gRPC requests.
#[derive(Debug, Clone)]
pub struct Connection {
    /// h2's stream opener for this connection.
    sender: SendRequest<Bytes>,
    /// `scheme://authority` of the endpoint, for the requests' URIs.
    origin: Uri,
}

impl Connection {
    /// The endpoint's `scheme://authority`, to pass to a generated client's
    /// `with_origin`.
    pub fn origin(&self) -> Uri {
        self.origin.clone()
    }
}

impl tower::Service<Request<tonic::body::Body>> for Connection {
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    /// Ready once this handle's previous stream is open (h2 lets each handle
    /// have one stream waiting for the server's concurrency limit).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.sender.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let (head, body) = request.into_parts();
        let opened = self
            .sender
            .send_request(Request::from_parts(head, ()), false);
        Box::pin(async move {
            let (response, stream) = opened?;
            let mut pipe = BodyPipe {
                body,
                stream,
                held: None,
            };
            // Send what the body has ready now; a still-open body (a
            // streaming request) goes on in a task of its own.
            match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut pipe).poll(cx))).await {
                Poll::Ready(sent) => sent?,
                Poll::Pending => {
                    tokio::spawn(pipe);
                }
            }
            let response = response.await?;
            Ok(response.map(|recv| ResponseBody {
                recv,
                data_done: false,
            }))
        })
    }
}

/// Sends a request body's frames on its HTTP/2 stream until the body ends.
struct BodyPipe {
    /// The request body (tonic's encoded messages).
    body: tonic::body::Body,
    /// The stream the body goes to.
    stream: SendStream<Bytes>,
    /// The latest data frame, kept back until it is known whether it is the
    /// last one (so it can carry `END_STREAM`) or the body has nothing more
    /// ready.
    held: Option<Bytes>,
}

impl Future for BodyPipe {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let pipe = &mut *self;
        loop {
            match Pin::new(&mut pipe.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if let Some(previous) = pipe.held.replace(data) {
                            pipe.stream.send_data(previous, false)?;
                        }
                    }
                    Err(frame) => {
                        if let Some(previous) = pipe.held.take() {
                            pipe.stream.send_data(previous, false)?;
                        }
                        if let Ok(trailers) = frame.into_trailers() {
                            pipe.stream.send_trailers(trailers)?;
                            return Poll::Ready(Ok(()));
                        }
                    }
                },
                Poll::Ready(None) => {
                    let last = pipe.held.take().unwrap_or_default();
                    pipe.stream.send_data(last, true)?;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Some(Err(error))) => {
                    pipe.stream.send_reset(h2::Reason::CANCEL);
                    return Poll::Ready(Err(error.into()));
                }
                Poll::Pending => {
                    if let Some(previous) = pipe.held.take() {
                        pipe.stream.send_data(previous, false)?;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// A response body: the stream's data frames, then its trailers (where gRPC
/// puts `grpc-status`).
#[derive(Debug)]
pub struct ResponseBody {
    /// The stream's receiving half.
    recv: RecvStream,
    /// Whether every data frame has been read.
    data_done: bool,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Read data is consumed: give its window back to the
                    // server. An error here means the stream is already gone.
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => self.data_done = true,
            }
        }
        match ready!(self.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}

/// A TCP stream that tells h2 it has no vectored writes.
///
/// h2 decides per data frame whether to copy its payload into the
/// connection's write buffer or to chain it for a vectored write; with
/// vectored writes it chains every payload over 256 bytes, and a chained
/// payload must be written out before the next frame can be buffered. A put
/// with a 256-byte value is just over that, so each request cost one
/// `writev` of its own. Without vectored writes h2 copies payloads up to 1 KiB,
/// and the frames of all requests ready at once leave in one write, as Go's
/// gRPC client (etcd's benchmark) batches them.
struct UnvectoredTcp(TcpStream);

impl AsyncRead for UnvectoredTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for UnvectoredTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Opens an HTTP/2 connection (prior knowledge, no TLS) to `url`, allowing
/// `dial_timeout` for the TCP connect and the HTTP/2 handshake together.
pub async fn connect(url: &str, dial_timeout: Duration) -> Result<Connection> {
    let origin = origin(url)?;
    let authority = origin
        .authority()
        .context("endpoint has no host:port")?
        .to_string();
    let handshake = async {
        let tcp = TcpStream::connect(&authority).await?;
        tcp.set_nodelay(true)?;
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .max_header_list_size(MAX_HEADER_LIST_BYTES)
            .max_send_buffer_size(MAX_SEND_BUFFER_BYTES)
            .enable_push(false)
            .handshake::<_, Bytes>(UnvectoredTcp(tcp))
            .await?;
        anyhow::Ok((sender, connection))
    };
    let (sender, connection) = tokio::time::timeout(dial_timeout, handshake)
        .await
        .with_context(|| format!("timed out after {dial_timeout:?}"))??;
    // The connection task reads and writes all of this connection's frames;
    // when it ends (server gone), pending and later requests fail.
    tokio::spawn(connection);
    Ok(Connection { sender, origin })
}

/// The `http://host:port` origin of endpoint URL `url`; rejects other schemes
/// and URLs without a port-bearing authority.
fn origin(url: &str) -> Result<Uri> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("invalid endpoint {url:?}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => bail!("endpoint {url:?}: TLS is not supported by etcd-bench"),
        _ => bail!("endpoint {url:?}: expected http://host:port"),
    }
    let Some(authority) = uri.authority() else {
        bail!("endpoint {url:?} has no host");
    };
    if authority.port_u16().is_none() {
        bail!("endpoint {url:?} has no port");
    }
    Ok(Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query("/")
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use retcd_api::etcdserverpb::kv_client::KvClient;
    use retcd_api::etcdserverpb::kv_server::{Kv, KvServer};
    use retcd_api::etcdserverpb::watch_client::WatchClient;
    use retcd_api::etcdserverpb::watch_request::RequestUnion;
    use retcd_api::etcdserverpb::watch_server::{Watch, WatchServer};
    use retcd_api::etcdserverpb::{
        CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
        PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse, WatchCreateRequest,
        WatchRequest, WatchResponse,
    };
    use retcd_api::mvccpb::KeyValue;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;
    use tonic::transport::server::TcpIncoming;
    use tonic::{Status, Streaming};

    /// Size of the value every range of [`FakeEtcd`] returns: more than a
    /// stream's flow-control window, so one response only arrives if the
    /// client gives window back while reading it.
    const BIG_VALUE_BYTES: usize = 3 * 1024 * 1024;

    /// Generous bound for a test's requests, so a flow-control stall fails
    /// instead of hanging.
    const TEST_TIMEOUT: Duration = Duration::from_secs(30);

    /// Serves ranges of one big value, and watch streams that answer each
    /// request with its number as a created watch.
    struct FakeEtcd;

    #[tonic::async_trait]
    impl Kv for FakeEtcd {
        async fn range(
            &self,
            request: tonic::Request<RangeRequest>,
        ) -> Result<tonic::Response<RangeResponse>, Status> {
            let kv = KeyValue {
                key: request.into_inner().key,
                value: vec![b'v'; BIG_VALUE_BYTES],
                ..KeyValue::default()
            };
            Ok(tonic::Response::new(RangeResponse {
                kvs: vec![kv],
                count: 1,
                ..RangeResponse::default()
            }))
        }
        async fn put(
            &self,
            _: tonic::Request<PutRequest>,
        ) -> Result<tonic::Response<PutResponse>, Status> {
            Err(Status::unimplemented("put"))
        }
        async fn delete_range(
            &self,
            _: tonic::Request<DeleteRangeRequest>,
        ) -> Result<tonic::Response<DeleteRangeResponse>, Status> {
            Err(Status::unimplemented("delete_range"))
        }
        async fn txn(
            &self,
            _: tonic::Request<TxnRequest>,
        ) -> Result<tonic::Response<TxnResponse>, Status> {
            Err(Status::unimplemented("txn"))
        }
        async fn compact(
            &self,
            _: tonic::Request<CompactionRequest>,
        ) -> Result<tonic::Response<CompactionResponse>, Status> {
            Err(Status::unimplemented("compact"))
        }
    }

    #[tonic::async_trait]
    impl Watch for FakeEtcd {
        type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

        async fn watch(
            &self,
            request: tonic::Request<Streaming<WatchRequest>>,
        ) -> Result<tonic::Response<Self::WatchStream>, Status> {
            let mut requests = request.into_inner();
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(async move {
                let mut watch_id = 0;
                while let Ok(Some(_)) = requests.message().await {
                    let created = WatchResponse {
                        watch_id,
                        created: true,
                        ..WatchResponse::default()
                    };
                    if tx.send(Ok(created)).await.is_err() {
                        return;
                    }
                    watch_id += 1;
                }
            });
            Ok(tonic::Response::new(ReceiverStream::new(rx)))
        }
    }

    /// Serves [`FakeEtcd`] on a free loopback port until the test's runtime
    /// ends; returns its endpoint URL.
    fn serve() -> String {
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let url = format!("http://{}", incoming.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(KvServer::new(FakeEtcd))
                .add_service(WatchServer::new(FakeEtcd))
                .serve_with_incoming(incoming),
        );
        url
    }

    #[tokio::test]
    async fn responses_beyond_the_flow_control_window_arrive() {
        let connection = connect(&serve(), TEST_TIMEOUT).await.unwrap();
        let mut kv = KvClient::with_origin(connection.clone(), connection.origin())
            .max_decoding_message_size(2 * BIG_VALUE_BYTES);
        let received = tokio::time::timeout(TEST_TIMEOUT, async {
            let mut bytes = 0;
            // Also twice the connection window in all.
            for _ in 0..4 {
                let response = kv
                    .range(RangeRequest {
                        key: b"k".to_vec(),
                        ..RangeRequest::default()
                    })
                    .await
                    .unwrap();
                bytes += response.into_inner().kvs[0].value.len();
            }
            bytes
        })
        .await
        .expect("the connection stalled: window not released?");
        assert_eq!(received, 4 * BIG_VALUE_BYTES);
    }

    #[tokio::test]
    async fn a_streaming_request_keeps_sending_after_the_call() {
        let connection = connect(&serve(), TEST_TIMEOUT).await.unwrap();
        let mut watch = WatchClient::with_origin(connection.clone(), connection.origin());
        let (tx, rx) = mpsc::channel(4);
        let create = || WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: b"k".to_vec(),
                ..WatchCreateRequest::default()
            })),
        };
        tx.send(create()).await.unwrap();
        let mut responses = watch
            .watch(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let ids = tokio::time::timeout(TEST_TIMEOUT, async {
            let mut ids = Vec::new();
            for _ in 0..3 {
                let response = responses.message().await.unwrap().unwrap();
                ids.push(response.watch_id);
                // Sent only once the call has returned: the body's task
                // must still be piping it.
                let _ = tx.send(create()).await;
            }
            ids
        })
        .await
        .expect("later watch requests never reached the server");
        assert_eq!(ids, vec![0, 1, 2]);
    }

    #[test]
    fn origin_keeps_scheme_and_authority_only() {
        let full = origin("http://127.0.0.1:2379/some/path").unwrap();
        assert_eq!(full.to_string(), "http://127.0.0.1:2379/");
        assert_eq!(full.authority().unwrap().as_str(), "127.0.0.1:2379");
        assert_eq!(
            origin("http://localhost:1").unwrap().to_string(),
            "http://localhost:1/"
        );
    }

    #[test]
    fn origin_rejects_what_cannot_be_dialled() {
        let error = origin("https://127.0.0.1:2379").unwrap_err().to_string();
        assert!(error.contains("TLS"), "{error}");
        assert!(origin("unix:///tmp/sock").is_err());
        assert!(origin("http://127.0.0.1").is_err(), "no port");
        assert!(origin("not a url").is_err());
    }
}
