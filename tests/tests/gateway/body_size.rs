//! Request bodies past the gRPC message limit. etcd's gateway reads the whole
//! body, decodes it, and lets the gRPC transport judge the decoded message:
//! a put whose value is too large gets 429 and code 8 (ResourceExhausted)
//! with grpc-go's text, while a body padded to megabytes with whitespace or
//! an unknown field still decodes to a small request and succeeds.

use retcd_tests::Server;
use retcd_tests::gateway::{b64, b64_bytes, call, compare_gateway, raw_call};
use serde_json::json;

/// Body size of each call: past the default 2 MiB message limit and past the
/// 4 MiB body limit axum applies unless told otherwise.
const BODY_BYTES: usize = 5_000_000;

/// gRPC ResourceExhausted.
const CODE_RESOURCE_EXHAUSTED: i64 = 8;

#[test]
fn five_megabyte_bodies_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    // base64 grows the value by 4/3: 3.75 MB of value is a 5 MB body.
    let value = vec![b'x'; BODY_BYTES / 4 * 3];
    let padded = format!(
        r#"{{"key":"{}","value":"{}"{}}}"#,
        b64("ws"),
        b64("v"),
        " ".repeat(BODY_BYTES)
    );
    let calls = vec![
        call(
            "kv/put",
            json!({"key": b64("big"), "value": b64_bytes(&value)}),
        ),
        raw_call("kv/put", &padded),
        call(
            "kv/put",
            json!({"key": b64("unknown"), "value": b64("v"), "zzz": "a".repeat(BODY_BYTES)}),
        ),
        call("kv/range", json!({"key": b64("a"), "range_end": b64("z")})),
    ];
    assert!(calls.iter().take(3).all(|c| c.body.len() >= BODY_BYTES));
    let answers = compare_gateway(&reference, &ours, "/v3", &calls);
    assert_eq!(answers[0].status, 429, "{}", answers[0].body);
    assert_eq!(answers[0].body["code"], CODE_RESOURCE_EXHAUSTED);
    let message = answers[0].body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("grpc: received message larger than max ("),
        "{message}"
    );
    assert_eq!((answers[1].status, answers[2].status), (200, 200));
    assert_eq!(answers[3].body["count"], "2", "{}", answers[3].body);
}
