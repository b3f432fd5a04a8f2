//! Differential runs against the HTTP/JSON gateway.
//!
//! A [`Call`] is one `POST /<prefix>/<service>/<method>` with a JSON body. The
//! same calls go to the reference etcd and to ours (optionally under different
//! prefixes, since the reference lacks `/v3alpha`), and the HTTP status and
//! the JSON body after [`mask_json`] must be equal. Bodies are compared as JSON
//! values, so key order does not matter but quoting does (int64 as strings).

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::mask::mask_json;
use crate::server::Server;

/// The gateway prefixes etcd has served: 3.4.23 serves `/v3` and `/v3beta`;
/// ours must serve all three.
pub const PREFIXES: [&str; 3] = ["/v3", "/v3beta", "/v3alpha"];

/// One gateway request.
#[derive(Debug, Clone)]
pub struct Call {
    /// `<service>/<method>`, e.g. `kv/put`.
    pub method: String,
    /// The raw request body.
    pub body: String,
}

/// A call with a JSON body.
pub fn call(method: &str, body: Value) -> Call {
    Call {
        method: method.to_string(),
        body: body.to_string(),
    }
}

/// A call with a raw (possibly malformed) body.
pub fn raw_call(method: &str, body: &str) -> Call {
    Call {
        method: method.to_string(),
        body: body.to_string(),
    }
}

/// A gateway answer after masking.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Masked JSON body, or the raw text as a JSON string when not JSON.
    pub body: Value,
}

/// Sends `call` under `prefix` and masks the answer.
pub fn send(server: &Server, prefix: &str, call: &Call) -> Answer {
    let response = server.http_post(&format!("{prefix}/{}", call.method), &call.body);
    let body = match serde_json::from_slice::<Value>(&response.body) {
        Ok(mut json) => {
            mask_json(&mut json);
            json
        }
        Err(_) => Value::String(response.text()),
    };
    Answer {
        status: response.status,
        body,
    }
}

/// Sends every call to both servers under the same prefix; asserts equal
/// answers and returns the reference's.
pub fn compare_gateway(
    reference: &Server,
    ours: &Server,
    prefix: &str,
    calls: &[Call],
) -> Vec<Answer> {
    compare_gateway_prefixes(reference, prefix, ours, prefix, calls)
}

/// Sends every call to the reference under `reference_prefix` and to ours
/// under `our_prefix`; asserts equal answers and returns the reference's.
pub fn compare_gateway_prefixes(
    reference: &Server,
    reference_prefix: &str,
    ours: &Server,
    our_prefix: &str,
    calls: &[Call],
) -> Vec<Answer> {
    let mut answers = Vec::with_capacity(calls.len());
    let mut mismatches = String::new();
    for (i, c) in calls.iter().enumerate() {
        let want = send(reference, reference_prefix, c);
        let got = send(ours, our_prefix, c);
        // Captured by the test runner; shown when the test fails.
        eprintln!(
            "call {i}: POST {}/{} {}\n  -> {} {}",
            reference_prefix, c.method, c.body, want.status, want.body
        );
        if want != got {
            let _ = writeln!(
                mismatches,
                "call {i}: POST {{prefix}}/{} {}\n  reference {reference_prefix}: {} {}\n  ours {our_prefix}: {} {}",
                c.method,
                preview(&c.body),
                want.status,
                preview(&want.body.to_string()),
                got.status,
                preview(&got.body.to_string())
            );
        }
        answers.push(want);
    }
    assert!(
        mismatches.is_empty(),
        "ours differs from the reference:\n{mismatches}"
    );
    answers
}

/// Longest text shown of a request or answer in reports.
const PREVIEW_CHARS: usize = 600;

/// `text`, cut to [`PREVIEW_CHARS`] with its full length noted.
fn preview(text: &str) -> String {
    if text.chars().count() <= PREVIEW_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(PREVIEW_CHARS).collect();
    format!("{head}... ({} bytes)", text.len())
}

/// Standard base64 of a string, as the gateway encodes bytes.
pub fn b64(s: &str) -> String {
    STANDARD.encode(s.as_bytes())
}

/// Standard base64 of bytes.
pub fn b64_bytes(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The base64 range end that selects every key starting with `prefix`.
pub fn b64_prefix_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return b64_bytes(&end);
        }
    }
    b64_bytes(&[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(b64_prefix_end("foo"), b64("fop"));
        assert_eq!(b64_prefix_end(""), "AA==");
    }
}
