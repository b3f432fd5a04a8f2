//! The Watch service: one bidirectional stream carries many watchers.
//!
//! Each stream gets a task that owns its [`WatchStream`] and loops:
//! 1. poll the stream: queued events, due progress notifications, and
//!    replay work for watchers behind the head;
//! 2. send those responses (a bounded channel to the transport: a client
//!    that does not read stalls only its own task, and its watchers fall
//!    behind and later catch up from the backend);
//! 3. run a replay chunk, if any, on the blocking pool;
//! 4. wait for a client request, a queue notification or the progress tick
//!    (requests first, so creates and cancels are not starved by replay).
//!
//! etcd's behaviour kept: a client that half-closes its side keeps the
//! stream open; a failed create answers created and canceled with watch id
//! -1 and the reason; cancelling an unknown id answers nothing; progress
//! notifications go to watchers that asked for them and saw no event for a
//! whole interval (`--experimental-watch-progress-notify-interval`).

use std::sync::Arc;

use futures::{Stream, StreamExt};
use retcd_api::etcdserverpb::watch_request::RequestUnion;
use retcd_api::etcdserverpb::watch_server::Watch;
use retcd_api::etcdserverpb::{ResponseHeader, WatchRequest, WatchResponse};
use retcd_mvcc::watch::{WatchHub, WatchStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::metrics;
use crate::server::EtcdServer;

/// Responses buffered between a stream's task and the transport.
pub const OUTBOUND_RESPONSES: usize = 16;

/// What a watch stream's consumer receives.
pub type WatchItem = Result<WatchResponse, Status>;

/// Serves etcd's Watch API from the watch hub.
#[derive(Clone)]
pub struct WatchService {
    /// The server core, for headers and limits.
    pub server: Arc<EtcdServer>,
    /// The watch hub of the server's store.
    pub hub: WatchHub,
}

impl WatchService {
    /// Starts serving one stream of `requests`; its responses arrive on the
    /// returned channel, which the stream's task stops on when dropped.
    pub fn open<S>(&self, requests: S) -> mpsc::Receiver<WatchItem>
    where
        S: Stream<Item = Result<WatchRequest, Status>> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(OUTBOUND_RESPONSES);
        let stream = self.hub.stream(self.server.cfg.max_request_bytes);
        tokio::spawn(serve_stream(self.server.clone(), stream, requests, tx));
        rx
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<WatchItem>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Ok(Response::new(ReceiverStream::new(
            self.open(request.into_inner()),
        )))
    }
}

/// The task of one stream; returns when the client is gone.
async fn serve_stream<S>(
    server: Arc<EtcdServer>,
    mut stream: WatchStream,
    mut requests: S,
    tx: mpsc::Sender<WatchItem>,
) where
    S: Stream<Item = Result<WatchRequest, Status>> + Unpin,
{
    let _open = OpenStream::new();
    let interval = server.cfg.watch_progress_notify_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut requests_open = true;
    loop {
        let poll = stream.poll();
        if !send_all(&server, &tx, poll.responses).await {
            return;
        }
        let replayed = poll.replay.is_some();
        if let Some(job) = poll.replay {
            let Ok(result) = tokio::task::spawn_blocking(move || job.run()).await else {
                return;
            };
            match stream.finish_replay(result) {
                Ok(responses) => {
                    if !send_all(&server, &tx, responses).await {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading watch history failed");
                    let _ = tx.send(Err(Error::from(e).into())).await;
                    return;
                }
            }
        }
        tokio::select! {
            biased;
            request = requests.next(), if requests_open => match request {
                Some(Ok(request)) => {
                    if !handle(&server, &mut stream, request, &tx).await {
                        return;
                    }
                }
                // A half-closed client still receives events, as in etcd.
                None => requests_open = false,
                Some(Err(_)) => return,
            },
            () = tx.closed() => return,
            () = stream.notified() => {}
            _ = ticker.tick() => stream.progress_tick(),
            // More history to replay: go round again at once.
            () = std::future::ready(()), if replayed => {}
        }
    }
}

/// Executes one client request; false once the client is gone.
async fn handle(
    server: &EtcdServer,
    stream: &mut WatchStream,
    request: WatchRequest,
    tx: &mpsc::Sender<WatchItem>,
) -> bool {
    let response = match request.request_union {
        Some(RequestUnion::CreateRequest(create)) => Some(stream.create(&create)),
        Some(RequestUnion::CancelRequest(cancel)) => stream.cancel(cancel.watch_id),
        Some(RequestUnion::ProgressRequest(_)) => {
            stream.request_progress();
            None
        }
        None => None,
    };
    match response {
        Some(response) => send_all(server, tx, vec![response]).await,
        None => true,
    }
}

/// Completes the headers and sends `responses` in order; false once the
/// client is gone.
async fn send_all(
    server: &EtcdServer,
    tx: &mpsc::Sender<WatchItem>,
    responses: Vec<WatchResponse>,
) -> bool {
    if responses.is_empty() {
        return true;
    }
    let raft_term = server.raft.status().term;
    for mut response in responses {
        let revision = response.header.as_ref().map_or(0, |h| h.revision);
        response.header = Some(ResponseHeader {
            cluster_id: server.cluster_id,
            member_id: server.member_id,
            revision,
            raft_term,
        });
        let events = response.events.len() as u64;
        if tx.send(Ok(response)).await.is_err() {
            return false;
        }
        metrics::EVENTS_SENT.inc_by(events);
    }
    true
}

/// Counts a watch stream in `etcd_debugging_mvcc_watch_stream_total` while it lives.
struct OpenStream;

impl OpenStream {
    /// Counts one more open stream.
    fn new() -> OpenStream {
        metrics::WATCH_STREAMS.inc();
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::WATCH_STREAMS.dec();
    }
}
