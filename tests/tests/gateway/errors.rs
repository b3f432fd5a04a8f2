//! Gateway errors. Errors raised by the server (`etcdserver: ...`) must match
//! the reference byte for byte after masking: HTTP status, `error`, `message`
//! and the gRPC `code`. Bodies the gateway cannot decode (malformed JSON or
//! base64, wrong types, unknown enum names) get HTTP 400 and a JSON body with
//! `code` 3 (InvalidArgument) and a message; the reference's wording comes
//! from Go's decoder (recorded in `fixtures/gateway/`), and `bad_input.rs`
//! checks that ours is byte-identical over a whole catalogue.

use retcd_tests::gateway::{b64, b64_bytes, call, compare_gateway, raw_call};
use retcd_tests::{Server, http};
use serde_json::{Value, json};

/// The default `--max-request-bytes`: 1.5 MiB.
const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// gRPC InvalidArgument.
const CODE_INVALID_ARGUMENT: i64 = 3;

#[test]
fn server_errors_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    let too_many: Vec<Value> = (0..129)
        .map(|i| json!({"request_put": {"key": b64(&format!("k{i}")), "value": b64("v")}}))
        .collect();
    let calls = vec![
        call("kv/put", json!({"key": b64("a"), "value": b64("1")})),
        call("kv/put", json!({"key": "", "value": b64("x")})),
        call("kv/put", json!({"value": b64("x")})),
        raw_call("kv/put", ""),
        raw_call("kv/range", "{}"),
        raw_call("kv/deleterange", "{}"),
        call("kv/range", json!({"key": b64("a"), "revision": "100"})),
        call("kv/txn", json!({"success": too_many})),
        call(
            "kv/txn",
            json!({"success": [
                {"request_put": {"key": b64("k"), "value": b64("1")}},
                {"request_put": {"key": b64("k"), "value": b64("2")}}
            ]}),
        ),
        call(
            "kv/txn",
            json!({"success": [
                {"request_put": {"key": b64("k"), "value": b64("1")}},
                {"request_delete_range": {"key": b64("a"), "range_end": b64("z")}}
            ]}),
        ),
        call(
            "kv/txn",
            json!({"success": [
                {"request_put": {"key": b64("k"), "value": b64("1")}},
                {"request_txn": {"success": [{"request_put": {"key": b64("k"), "value": b64("2")}}]}}
            ]}),
        ),
        call(
            "kv/put",
            json!({"key": b64("big"), "value": b64_bytes(&vec![b'x'; DEFAULT_MAX_REQUEST_BYTES + 30 * 1024])}),
        ),
        call(
            "kv/put",
            json!({"key": b64("missing"), "ignore_value": true}),
        ),
        call(
            "kv/put",
            json!({"key": b64("missing"), "value": b64("v"), "ignore_lease": true}),
        ),
        call("kv/put", json!({"key": b64("a"), "ignore_value": true})),
        call("kv/compaction", json!({"revision": "100"})),
        call("kv/compaction", json!({"revision": "2"})),
        call("kv/compaction", json!({"revision": "2"})),
        call("kv/compaction", json!({"revision": "1"})),
        call("kv/range", json!({"key": b64("a"), "revision": "1"})),
        call(
            "kv/put",
            json!({"key": b64("a"), "value": b64("1"), "unknown_field": 1}),
        ),
        call("kv/range", json!({"key": b64("a"), "revision": 2})),
    ];
    let answers = compare_gateway(&reference, &ours, "/v3", &calls);
    let error = |i: usize| {
        (
            answers[i].status,
            answers[i].body["code"].clone(),
            answers[i].body["message"].clone(),
        )
    };
    assert_eq!(
        error(1),
        (400, json!(3), json!("etcdserver: key is not provided"))
    );
    assert_eq!(
        error(6),
        (
            400,
            json!(11),
            json!("etcdserver: mvcc: required revision is a future revision")
        )
    );
    assert_eq!(
        error(7),
        (
            400,
            json!(3),
            json!("etcdserver: too many operations in txn request")
        )
    );
    assert_eq!(
        error(8),
        (
            400,
            json!(3),
            json!("etcdserver: duplicate key given in txn request")
        )
    );
    assert_eq!(
        error(11),
        (400, json!(3), json!("etcdserver: request is too large"))
    );
    assert_eq!(
        error(12),
        (400, json!(3), json!("etcdserver: key not found"))
    );
    assert_eq!(
        error(17),
        (
            400,
            json!(11),
            json!("etcdserver: mvcc: required revision has been compacted")
        )
    );
    assert_eq!(answers[20].status, 200);
}

/// Asserts a decode error: 400, JSON, `code` 3, and a non-empty message that
/// `error` repeats.
fn assert_decode_error(server: &Server, path: &str, body: &str) -> Value {
    let response = server.http_post(path, body);
    let label = server.flavour().label();
    assert_eq!(
        response.status,
        400,
        "{label} POST {path} {body}: {}",
        response.text()
    );
    assert!(
        response
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{label}: {:?}",
        response.headers
    );
    let json = response.json();
    assert_eq!(json["code"], CODE_INVALID_ARGUMENT, "{label}: {json}");
    let message = json["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{label}: {json}");
    assert_eq!(json["error"], json["message"], "{label}: {json}");
    json
}

#[test]
fn undecodable_bodies_are_bad_requests() {
    let (reference, ours) = Server::pair(&[]);
    let cases = [
        ("/v3/kv/put", "{bad json"),
        ("/v3/kv/put", r#"{"key":"!!!notb64","value":"YmFy"}"#),
        ("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"#),
        ("/v3/kv/range", r#"{"key":"Zm9v","revision":"abc"}"#),
        ("/v3/kv/range", r#"{"key":"Zm9v","sort_order":"BAD"}"#),
        ("/v3/kv/range", r#"{"key":1}"#),
        ("/v3/kv/txn", r#"{"compare":{}}"#),
        ("/v3/kv/compaction", r#"["revision"]"#),
        ("/v3beta/kv/put", "{bad json"),
    ];
    for (path, body) in cases {
        assert_decode_error(&reference, path, body);
        assert_decode_error(&ours, path, body);
    }
}

#[test]
fn reference_decode_errors_match_fixtures() {
    let reference = Server::reference();
    let fixture = |name: &str| {
        let path = format!("{}/fixtures/gateway/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let json = reference.http_post("/v3/kv/put", "{bad json");
    assert_eq!(json.text(), fixture("malformed_json.json"));
    let base64 = reference.http_post("/v3/kv/put", r#"{"key":"!!!notb64","value":"YmFy"}"#);
    assert_eq!(base64.text(), fixture("malformed_base64.json"));
}

#[test]
fn unknown_routes_and_methods_match_reference_status() {
    let (reference, ours) = Server::pair(&[]);
    for path in ["/v3/kv/nosuch", "/v3/nosuch/put", "/v4/kv/put"] {
        let want = reference.http_post(path, "{}").status;
        let got = ours.http_post(path, "{}").status;
        assert_eq!((path, got), (path, want));
    }
    let want = reference.http_get("/v3/kv/range").status;
    assert_eq!(want, 405);
    assert_eq!(ours.http_get("/v3/kv/range").status, want);
}

/// Unknown paths and wrong methods get Go's plain-text answers: under a
/// gateway prefix grpc-gateway's `Not Found`, elsewhere Go's mux's
/// `404 page not found`, and `Method Not Allowed` on a known route.
#[test]
fn unknown_routes_and_methods_match_reference_text() {
    let (reference, ours) = Server::pair(&[]);
    let requests = [
        ("POST", "/v3/kv/nosuch"),
        ("POST", "/v3/nosuch/put"),
        ("GET", "/v3/"),
        ("POST", "/v3beta/kv/nosuch"),
        ("POST", "/v4/kv/put"),
        ("GET", "/nosuch"),
        ("GET", "/v3/kv/range"),
        ("PUT", "/v3/kv/put"),
        ("GET", "/v3/lease/grant"),
        ("GET", "/v3/maintenance/status"),
        ("DELETE", "/v3/watch"),
    ];
    let answer = |server: &Server, method: &str, path: &str| {
        let body = (method != "GET").then_some(b"{}".as_slice());
        let response = http::request(server.client_port(), method, path, body)
            .unwrap_or_else(|e| panic!("{} {method} {path}: {e:#}", server.flavour().label()));
        (
            response.status,
            response.header("content-type").map(str::to_string),
            response
                .header("x-content-type-options")
                .map(str::to_string),
            response.text(),
        )
    };
    for (method, path) in requests {
        let want = answer(&reference, method, path);
        assert!(matches!(want.0, 404 | 405), "{method} {path}: {want:?}");
        assert_eq!(answer(&ours, method, path), want, "{method} {path}");
    }
    // The reference lacks /v3alpha; ours serves it as a gateway prefix.
    let ours_alpha = answer(&ours, "POST", "/v3alpha/kv/nosuch");
    assert_eq!(ours_alpha, answer(&reference, "POST", "/v3/kv/nosuch"));
}

#[test]
fn errors_carry_json_content_type() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        let response = server.http_post("/v3/kv/put", r#"{"key":""}"#);
        assert_eq!(response.status, 400);
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{}",
            server.flavour().label()
        );
    }
}

/// Go's mux redirects `/v3` (the gateway's directory, without its slash) to
/// `/v3/` with 301, keeping the query; GET gets a small HTML body, HEAD only
/// its content type, other methods neither. `/v3beta` and `/v3alpha` are no
/// directories there: plain 404.
#[test]
fn bare_v3_redirects_as_reference() {
    let (reference, ours) = Server::pair(&[]);
    let requests = [
        ("GET", "/v3"),
        ("GET", "/v3?a=b&c=d%20e"),
        ("HEAD", "/v3"),
        ("POST", "/v3"),
        ("PUT", "/v3"),
        ("GET", "/v3beta"),
        ("GET", "/v3alpha"),
    ];
    let answer = |server: &Server, method: &str, path: &str| {
        let body = (method == "POST" || method == "PUT").then_some(b"{}".as_slice());
        let response = http::request(server.client_port(), method, path, body)
            .unwrap_or_else(|e| panic!("{} {method} {path}: {e:#}", server.flavour().label()));
        let header = |name: &str| response.header(name).map(str::to_string);
        (
            response.status,
            header("location"),
            header("content-type"),
            header("content-length"),
            response.text(),
        )
    };
    for (method, path) in requests {
        let want = answer(&reference, method, path);
        assert_eq!(answer(&ours, method, path), want, "{method} {path}");
    }
    let get = answer(&reference, "GET", "/v3?a=b&c=d%20e");
    assert_eq!(get.0, 301);
    assert_eq!(get.1.as_deref(), Some("/v3/?a=b&c=d%20e"));
    assert_eq!(
        get.4,
        "<a href=\"/v3/?a=b&amp;c=d%20e\">Moved Permanently</a>.\n\n"
    );
    assert_eq!(answer(&reference, "GET", "/v3beta").0, 404);
}

/// A wrong method gets Go's 405, which names no allowed methods (axum's
/// would carry an `Allow` header).
#[test]
fn method_not_allowed_has_no_allow_header() {
    let (reference, ours) = Server::pair(&[]);
    for (method, path) in [
        ("GET", "/v3/kv/range"),
        ("PUT", "/v3/lock/lock"),
        ("GET", "/v3/election/observe"),
        ("DELETE", "/v3/lease/grant"),
    ] {
        for server in [&reference, &ours] {
            let response = http::request(server.client_port(), method, path, None)
                .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"));
            let label = server.flavour().label();
            assert_eq!(response.status, 405, "{label} {method} {path}");
            assert_eq!(
                response.header("allow"),
                None,
                "{label} {method} {path}: {:?}",
                response.headers
            );
        }
    }
}
