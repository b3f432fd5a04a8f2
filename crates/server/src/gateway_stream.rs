//! The line format of the gateway's streaming calls (watch, lease
//! keep-alive), as grpc-gateway writes it: one JSON object per line, either
//! `{"result": <response>}` or, when the stream fails,
//! `{"error": {"grpc_code", "http_code", "message", "http_status"}}`.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Serialize;
use tonic::{Code, Status};

use crate::error::http_status;
use crate::gateway::{GATEWAY_HEADERS, GRPC_METADATA_HEADERS, error_response};

/// One line of a streamed answer.
#[derive(Serialize)]
struct StreamResult<'a, T> {
    /// The response message.
    result: &'a T,
}

/// grpc-gateway's error line inside a stream.
#[derive(Serialize)]
struct StreamError<'a> {
    /// The error details.
    error: StreamErrorBody<'a>,
}

/// The fields of a stream error, in grpc-gateway's order.
#[derive(Serialize)]
struct StreamErrorBody<'a> {
    /// The gRPC code as a number.
    grpc_code: i32,
    /// The HTTP status it maps to.
    http_code: u16,
    /// The error text.
    message: &'a str,
    /// The HTTP status text.
    http_status: &'a str,
}

/// Encodes `value` as one JSON line.
fn line<T: Serialize>(value: &T) -> Bytes {
    let mut out = serde_json::to_vec(value).expect("responses serialize");
    out.push(b'\n');
    Bytes::from(out)
}

/// The line carrying one response.
pub fn result_line<T: Serialize>(response: &T) -> Bytes {
    line(&StreamResult { result: response })
}

/// The line carrying the error that ends a stream.
pub fn error_line(status: &Status) -> Bytes {
    let http = StatusCode::from_u16(http_status(status.code()))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    line(&StreamError {
        error: StreamErrorBody {
            grpc_code: status.code() as i32,
            http_code: http.as_u16(),
            message: status.message(),
            http_status: http.canonical_reason().unwrap_or_default(),
        },
    })
}

/// A streamed answer: status 200 and the gateway's headers at once, then one
/// line per item of `items`, a result or the error that ends the stream.
pub fn lines_response<T, S>(items: S) -> Response
where
    T: Serialize,
    S: Stream<Item = Result<T, Status>> + Send + 'static,
{
    let lines = items.map(|item| {
        Ok::<_, std::convert::Infallible>(match item {
            Ok(response) => result_line(&response),
            Err(status) => error_line(&status),
        })
    });
    (
        StatusCode::OK,
        GATEWAY_HEADERS,
        GRPC_METADATA_HEADERS,
        Body::from_stream(lines),
    )
        .into_response()
}

/// grpc-gateway's answer when the first request of a stream cannot be
/// decoded: a plain error body with code UNKNOWN and HTTP 500.
pub fn first_request_error(message: &str) -> Response {
    let mut response = error_response(Code::Unknown, message);
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_grpc_gateway() {
        let ok = result_line(&serde_json::json!({"ID": "5"}));
        assert_eq!(&ok[..], b"{\"result\":{\"ID\":\"5\"}}\n");
        let err = error_line(&Status::not_found("etcdserver: requested lease not found"));
        assert_eq!(
            std::str::from_utf8(&err).unwrap(),
            "{\"error\":{\"grpc_code\":5,\"http_code\":404,\"message\":\"etcdserver: requested lease not found\",\"http_status\":\"Not Found\"}}\n"
        );
    }
}
