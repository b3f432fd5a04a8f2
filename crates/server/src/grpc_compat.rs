//! Rewrites the few transport-level gRPC errors whose code or text differs
//! between tonic and grpc-go, so clients see what etcd's server sends.
//!
//! tonic refuses an oversized request message with OUT_OF_RANGE and its own
//! text; grpc-go (and so etcd) answers RESOURCE_EXHAUSTED with
//! `grpc: received message larger than max (<size> vs. <limit>)`.
//!
//! Runs on every gRPC response (`crate::grpc_route`): a success costs one
//! header lookup, since tonic sends a unary call's status in trailers and only
//! an early refusal in the response headers.

use axum::http::{HeaderName, HeaderValue, Response};

/// Header carrying a gRPC status code in a trailers-only response.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// Header carrying a gRPC status message in a trailers-only response.
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// What tonic's message for an oversized request contains.
const TONIC_TOO_LARGE: &str = "decoded message length too large";

/// Rewrites tonic's oversized-message error into grpc-go's.
pub fn rewrite_errors<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers();
    let is_out_of_range = headers.get(&GRPC_STATUS).is_some_and(|v| v == "11");
    if !is_out_of_range {
        return response;
    }
    let Some(message) = headers
        .get(&GRPC_MESSAGE)
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
    else {
        return response;
    };
    let Some(text) = grpc_go_too_large(&message) else {
        return response;
    };
    let headers = response.headers_mut();
    headers.insert(GRPC_STATUS, HeaderValue::from_static("8"));
    if let Ok(value) = HeaderValue::from_str(&text) {
        headers.insert(GRPC_MESSAGE, value);
    }
    response
}

/// grpc-go's text for tonic's oversized-message text, if it is one.
fn grpc_go_too_large(message: &str) -> Option<String> {
    if !message.contains(TONIC_TOO_LARGE) {
        return None;
    }
    let numbers: Vec<u64> = message
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers.as_slice() {
        [size, limit] => Some(format!(
            "grpc: received message larger than max ({size} vs. {limit})"
        )),
        _ => None,
    }
}

/// Decodes the percent-encoding gRPC applies to status messages.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_message_text() {
        assert_eq!(
            grpc_go_too_large(
                "decoded message length too large: found 2200010 bytes, the limit is: 2097152 bytes"
            )
            .as_deref(),
            Some("grpc: received message larger than max (2200010 vs. 2097152)")
        );
        assert_eq!(
            grpc_go_too_large("etcdserver: mvcc: required revision is a future revision"),
            None
        );
    }

    #[test]
    fn rewrites_tonic_response() {
        let response = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 2200010 bytes, the limit is: 2097152 bytes",
        )
        .into_http::<tonic::body::Body>();
        let rewritten = rewrite_errors(response);
        let status = tonic::Status::from_header_map(rewritten.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "grpc: received message larger than max (2200010 vs. 2097152)"
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%3A"), "a b:");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%é"), "%é");
    }
}
