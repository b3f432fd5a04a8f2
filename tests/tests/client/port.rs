//! gRPC and the HTTP/JSON gateway share one client port: the server tells
//! them apart per request (a gRPC service path goes to the gRPC services,
//! everything else to the gateway), so both kinds of client, on open
//! connections at the same time, see one store.

use retcd_tests::Server;
use retcd_tests::gateway::b64;
use serde_json::json;

use crate::connect;

#[tokio::test]
async fn grpc_and_gateway_share_the_client_port() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    for round in 0..3 {
        let by_grpc = format!("grpc-{round}");
        client.put("k", by_grpc.as_str(), None).await.unwrap();
        let range = server.http_post("/v3/kv/range", &json!({"key": b64("k")}).to_string());
        assert_eq!(range.status, 200, "{}", range.text());
        assert_eq!(range.json()["kvs"][0]["value"], b64(&by_grpc));

        let by_gateway = format!("gateway-{round}");
        let put = server.http_post(
            "/v3/kv/put",
            &json!({"key": b64("k"), "value": b64(&by_gateway)}).to_string(),
        );
        assert_eq!(put.status, 200, "{}", put.text());
        let get = client.get("k", None).await.unwrap();
        assert_eq!(get.kvs()[0].value(), by_gateway.as_bytes());
        assert_eq!(get.kvs()[0].version(), 2 * round + 2);
    }
    assert_eq!(server.http_get("/health").status, 200);
    client.status().await.unwrap();
}
