//! The Watch service on the HTTP/JSON gateway: `POST <prefix>/watch`.
//!
//! grpc-gateway maps the bidirectional stream onto one HTTP exchange: the
//! request body carries JSON `WatchRequest`s back to back (concatenated or
//! one per line, and it may stay open to send more later), and the answer
//! streams one `{"result": WatchResponse}` line per response, chunked, for
//! as long as the client stays. As etcd's gateway: when the first request
//! cannot be decoded the answer is HTTP 500 with code 2 and nothing is watched;
//! a bad request after a valid one stops reading requests but keeps the
//! stream; an error from the service ends the stream with an `{"error": ...}`
//! line.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use futures::StreamExt;
use retcd_api::etcdserverpb::WatchRequest;
use tokio::sync::mpsc;
use tonic::Status;

use crate::api::watch::WatchService;
use crate::gateway_decode::{Next, UNEXPECTED_EOF, decode_next};
use crate::gateway_stream::{first_request_error, lines_response};

/// Requests decoded from the body but not yet taken by the stream's task.
const INBOUND_REQUESTS: usize = 16;
/// Most bytes of an incomplete request held while waiting for the rest.
const MAX_PENDING_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The watch route under every prefix in `prefixes`.
pub fn router(service: WatchService, prefixes: &[&str]) -> Router {
    let mut router = Router::new();
    for prefix in prefixes {
        router = router.route(&format!("{prefix}/watch"), post(watch));
    }
    router.with_state(service)
}

/// Decodes the JSON requests at the front of a growing body buffer.
#[derive(Default)]
struct RequestDecoder {
    /// Bytes received and not yet decoded.
    pending: Vec<u8>,
}

/// What decoding the buffered bytes gave.
enum Decoded {
    /// Complete requests, in order; more may follow.
    Requests(Vec<WatchRequest>),
    /// A request that cannot be decoded, with etcd's text; `after` holds the
    /// requests before it.
    Invalid {
        /// Requests decoded before the error.
        after: Vec<WatchRequest>,
        /// The error text.
        message: String,
    },
}

impl RequestDecoder {
    /// Adds `chunk` and decodes every complete request now buffered.
    fn feed(&mut self, chunk: &[u8]) -> Decoded {
        self.pending.extend_from_slice(chunk);
        let mut requests = Vec::new();
        let mut used = 0;
        let outcome = loop {
            match decode_next::<WatchRequest>(&self.pending[used..]) {
                Ok(Next::Request(request, len)) => {
                    requests.push(request);
                    used += len;
                }
                Ok(Next::Empty | Next::Truncated) => break None,
                Err(text) => break Some(text),
            }
        };
        self.pending.drain(..used);
        match outcome {
            None if self.pending.len() > MAX_PENDING_BODY_BYTES => Decoded::Invalid {
                after: requests,
                message: "watch request too large".into(),
            },
            None => Decoded::Requests(requests),
            Some(message) => Decoded::Invalid {
                after: requests,
                message,
            },
        }
    }
}

impl RequestDecoder {
    /// Whether the buffer holds the start of a request that never ended.
    fn holds_partial_request(&self) -> bool {
        !self.pending.iter().all(u8::is_ascii_whitespace)
    }
}

/// POST /v3/watch.
async fn watch(State(service): State<WatchService>, body: Body) -> Response {
    let mut body = body.into_data_stream();
    let mut decoder = RequestDecoder::default();
    // Read until the first request is complete (or the body ends), so a bad
    // first request can still get an HTTP error status.
    let mut first = Vec::new();
    let mut body_open = true;
    while first.is_empty() && body_open {
        match body.next().await {
            Some(Ok(chunk)) => match decoder.feed(&chunk) {
                Decoded::Requests(requests) => first = requests,
                Decoded::Invalid { after, message } if after.is_empty() => {
                    return first_request_error(&message);
                }
                Decoded::Invalid { after, .. } => {
                    first = after;
                    body_open = false;
                }
            },
            Some(Err(_)) | None => body_open = false,
        }
    }
    if first.is_empty() && decoder.holds_partial_request() {
        // The body ended inside the first request.
        return first_request_error(UNEXPECTED_EOF);
    }
    let (req_tx, req_rx) = mpsc::channel::<Result<WatchRequest, Status>>(INBOUND_REQUESTS);
    tokio::spawn(async move {
        for request in first {
            if req_tx.send(Ok(request)).await.is_err() {
                return;
            }
        }
        while body_open {
            let Some(Ok(chunk)) = body.next().await else {
                break;
            };
            let (requests, more) = match decoder.feed(&chunk) {
                Decoded::Requests(requests) => (requests, true),
                Decoded::Invalid { after, .. } => (after, false),
            };
            for request in requests {
                if req_tx.send(Ok(request)).await.is_err() {
                    return;
                }
            }
            body_open = more;
        }
        // The request side ended; the stream goes on until the client leaves.
        req_tx.closed().await;
    });
    let responses = service.open(tokio_stream::wrappers::ReceiverStream::new(req_rx));
    lines_response(tokio_stream::wrappers::ReceiverStream::new(responses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_requests_split_anywhere() {
        let body = br#"{"create_request":{"key":"Zm9v"}} {"progress_request":{}}
{"cancel_request":{"watch_id":"1"}}"#;
        for split in 0..body.len() {
            let mut decoder = RequestDecoder::default();
            let mut got = Vec::new();
            for part in [&body[..split], &body[split..]] {
                match decoder.feed(part) {
                    Decoded::Requests(r) => got.extend(r),
                    Decoded::Invalid { message, .. } => panic!("split {split}: {message}"),
                }
            }
            assert_eq!(got.len(), 3, "split {split}");
        }
    }

    #[test]
    fn invalid_json_keeps_the_requests_before_it() {
        let mut decoder = RequestDecoder::default();
        match decoder.feed(br#"{"create_request":{"key":"Zm9v"}} garbage"#) {
            Decoded::Invalid { after, message } => {
                assert_eq!(after.len(), 1);
                assert_eq!(
                    message,
                    "invalid character 'g' looking for beginning of value"
                );
            }
            Decoded::Requests(_) => panic!("garbage accepted"),
        }
    }
}
