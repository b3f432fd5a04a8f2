//! The headers etcd's HTTP handlers put on answers of the client port.
//! Every successful gateway call carries the gRPC response metadata
//! `Grpc-Metadata-Content-Type: application/grpc`; errors do not. Every
//! HTTP answer, whatever the path or status, carries etcd's CORS headers, and
//! a preflight (OPTIONS) on any path gets 200 with an empty body.

use retcd_tests::gateway::b64;
use retcd_tests::{Server, http};

/// The CORS headers etcd's access controller adds (it allows any origin).
const CORS: [(&str, &str); 3] = [
    ("access-control-allow-origin", "*"),
    (
        "access-control-allow-methods",
        "POST, GET, OPTIONS, PUT, DELETE",
    ),
    (
        "access-control-allow-headers",
        "accept, content-type, authorization",
    ),
];

/// The forwarded gRPC metadata header and its value.
const GRPC_METADATA: (&str, &str) = ("grpc-metadata-content-type", "application/grpc");

#[test]
fn successful_calls_carry_grpc_metadata() {
    let (reference, ours) = Server::pair(&[]);
    let put = format!(r#"{{"key":"{}","value":"{}"}}"#, b64("a"), b64("1"));
    let range = format!(r#"{{"key":"{}"}}"#, b64("a"));
    let calls = [
        ("/v3/kv/put", put.as_str()),
        ("/v3/kv/range", range.as_str()),
        ("/v3/lease/grant", r#"{"TTL":60,"ID":7}"#),
        ("/v3/lease/timetolive", r#"{"ID":7}"#),
        ("/v3/lease/keepalive", r#"{"ID":7}"#),
        ("/v3/maintenance/status", "{}"),
        ("/v3/cluster/member/list", "{}"),
    ];
    for server in [&reference, &ours] {
        let label = server.flavour().label();
        for (path, body) in calls {
            let response = server.http_post(path, body);
            assert_eq!(response.status, 200, "{label} {path}: {}", response.text());
            assert_eq!(
                response.header(GRPC_METADATA.0),
                Some(GRPC_METADATA.1),
                "{label} {path}: {:?}",
                response.headers
            );
        }
        let error = server.http_post("/v3/kv/put", r#"{"key":""}"#);
        assert_eq!(error.status, 400, "{label}");
        assert_eq!(
            error.header(GRPC_METADATA.0),
            None,
            "{label}: {:?}",
            error.headers
        );
    }
}

/// Sends `method path` with `body` to `server`'s client port.
fn send(server: &Server, method: &str, path: &str, body: Option<&str>) -> http::Response {
    http::request(server.client_port(), method, path, body.map(str::as_bytes))
        .unwrap_or_else(|e| panic!("{} {method} {path}: {e:#}", server.flavour().label()))
}

#[test]
fn every_http_answer_carries_cors_headers() {
    let (reference, ours) = Server::pair(&[]);
    let put = format!(r#"{{"key":"{}","value":"{}"}}"#, b64("a"), b64("1"));
    let requests = [
        ("POST", "/v3/kv/put", Some(put.as_str()), 200),
        ("POST", "/v3/kv/put", Some(r#"{"key":""}"#), 400),
        ("POST", "/v3/kv/put", Some("{not json"), 400),
        ("POST", "/v3/kv/nosuch", Some("{}"), 404),
        ("GET", "/nosuch", None, 404),
        ("GET", "/v3/kv/range", None, 405),
        ("GET", "/health", None, 200),
        ("GET", "/metrics", None, 200),
        ("GET", "/version", None, 200),
        ("OPTIONS", "/v3/kv/put", None, 200),
        ("OPTIONS", "/health", None, 200),
        ("OPTIONS", "/nosuch/at/all", None, 200),
    ];
    for server in [&reference, &ours] {
        let label = server.flavour().label();
        for (method, path, body, status) in requests {
            let response = send(server, method, path, body);
            assert_eq!(
                response.status,
                status,
                "{label} {method} {path}: {}",
                response.text()
            );
            for (name, value) in CORS {
                assert_eq!(
                    response.header(name),
                    Some(value),
                    "{label} {method} {path}: {:?}",
                    response.headers
                );
            }
            if method == "OPTIONS" {
                assert!(
                    response.body.is_empty(),
                    "{label} {method} {path}: {:?}",
                    response.text()
                );
            }
        }
    }
}
