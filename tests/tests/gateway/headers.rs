//! The headers etcd's HTTP handlers put on answers of the client port.
//! Every successful gateway call carries the gRPC response metadata
//! `Grpc-Metadata-Content-Type: application/grpc`; errors do not.

use retcd_tests::Server;
use retcd_tests::gateway::b64;

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
