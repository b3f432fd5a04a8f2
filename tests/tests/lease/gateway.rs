//! The Lease service through the gateway, compared with the reference:
//! grant (chosen and server ids, raised and too large TTLs, duplicates),
//! keep-alive lines, time-to-live, the lease list, revoke, and the older
//! `/v3/kv/lease/...` paths; `/v3alpha` (ours only) against `/v3beta`.

use retcd_tests::Server;
use retcd_tests::gateway::{Call, b64, call, compare_gateway, compare_gateway_prefixes, send};
use retcd_tests::mask_json;
use serde_json::{Value, json};

/// Lease calls whose answers do not depend on time.
fn lease_calls() -> Vec<Call> {
    vec![
        call("lease/grant", json!({"ID": 77, "TTL": 100})),
        call("lease/grant", json!({"ID": 77, "TTL": 100})),
        call("lease/grant", json!({"ID": 78, "TTL": 1})),
        call("lease/grant", json!({"TTL": "9000000001"})),
        call("lease/grant", json!({"TTL": 5})),
        call(
            "kv/put",
            json!({"key": b64("foo"), "value": b64("bar"), "lease": 77}),
        ),
        call(
            "kv/put",
            json!({"key": b64("foo"), "value": b64("bar"), "lease": 79}),
        ),
        call("lease/keepalive", json!({"ID": 77})),
        call("lease/keepalive", json!({"ID": 79})),
        call("lease/timetolive", json!({"ID": 79, "keys": true})),
        call("kv/lease/timetolive", json!({"ID": 79})),
        call("lease/revoke", json!({"ID": 78})),
        call("lease/revoke", json!({"ID": 78})),
        call("kv/lease/revoke", json!({"ID": 79})),
        call("kv/range", json!({"key": b64("foo")})),
        call("lease/revoke", json!({"ID": 77})),
        call("kv/range", json!({"key": b64("foo")})),
        call("lease/timetolive", json!({"ID": 77})),
    ]
}

#[test]
fn lease_calls_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    let answers = compare_gateway(&reference, &ours, "/v3", &lease_calls());
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[1].body["code"], 9, "duplicate id");
    assert_eq!(answers[2].body["TTL"], "2", "raised to the minimum");
    assert_eq!(answers[3].body["code"], 11, "too large");
    assert_eq!(answers[7].body["result"]["TTL"], "100");
    assert_eq!(
        answers[8].body["result"].get("TTL"),
        None,
        "unknown lease: TTL 0"
    );
    assert_eq!(answers[9].body["TTL"], "-1");
    assert_eq!(answers[15].status, 200);
    assert_eq!(answers[16].body.get("kvs"), None, "revoke deleted the key");
}

#[test]
fn list_and_time_to_live_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    let setup = [
        call("lease/grant", json!({"ID": 77, "TTL": 100})),
        call(
            "kv/put",
            json!({"key": b64("foo"), "value": b64("bar"), "lease": 77}),
        ),
    ];
    compare_gateway(&reference, &ours, "/v3", &setup);
    let listed = compare_gateway(
        &reference,
        &ours,
        "/v3",
        &[
            call("lease/leases", json!({})),
            call("kv/lease/leases", json!({})),
        ],
    );
    assert_eq!(listed[0].body["leases"].as_array().map(Vec::len), Some(1));

    // The remaining TTL ticks: equal within a second, the rest exactly.
    let ttl = call("lease/timetolive", json!({"ID": 77, "keys": true}));
    let want = send(&reference, "/v3", &ttl);
    let got = send(&ours, "/v3", &ttl);
    let remaining = |a: &retcd_tests::gateway::Answer| -> i64 {
        a.body["TTL"]
            .as_str()
            .expect("TTL string")
            .parse()
            .expect("number")
    };
    assert!((remaining(&want) - remaining(&got)).abs() <= 1);
    assert!((98..=100).contains(&remaining(&got)), "{}", got.body);
    let without_ttl = |a: &retcd_tests::gateway::Answer| {
        let mut body = a.body.clone();
        body.as_object_mut().expect("object").remove("TTL");
        (a.status, body)
    };
    assert_eq!(without_ttl(&got), without_ttl(&want));
    assert_eq!(want.body["keys"], json!([b64("foo")]));
    assert_eq!(want.body["grantedTTL"], "100");
}

/// The masked answer lines of a streamed keep-alive call.
fn keepalive_lines(server: &Server, body: &str) -> (u16, Vec<Value>) {
    let response = server.http_post("/v3/lease/keepalive", body);
    let lines = response
        .text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("a JSON line");
            mask_json(&mut v);
            v
        })
        .collect();
    (response.status, lines)
}

#[test]
fn keepalive_streams_one_line_per_request() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        let r = server.http_post("/v3/lease/grant", r#"{"ID": 77, "TTL": 30}"#);
        assert_eq!(r.status, 200);
    }
    for body in [
        "{\"ID\": 77} {\"ID\": 78}\n{\"ID\":77}",
        "{\"ID\": 77}\n",
        "",
        "{\"ID\": 77} garbage",
    ] {
        let want = keepalive_lines(&reference, body);
        let got = keepalive_lines(&ours, body);
        assert_eq!(got, want, "body {body:?}");
    }
    let (status, lines) = keepalive_lines(&ours, "{\"ID\": 77} {\"ID\": 78}\n{\"ID\":77}");
    assert_eq!(status, 200);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["result"]["TTL"], "30");
    // A body that is not JSON at all: grpc-gateway's 500 with code 2.
    let bad = ours.http_post("/v3/lease/keepalive", "garbage");
    let reference_bad = reference.http_post("/v3/lease/keepalive", "garbage");
    assert_eq!(bad.status, reference_bad.status);
    assert_eq!(bad.json()["code"], reference_bad.json()["code"]);
}

#[test]
fn v3alpha_serves_the_same_lease_calls() {
    let (reference, ours) = Server::pair(&[]);
    compare_gateway_prefixes(&reference, "/v3beta", &ours, "/v3alpha", &lease_calls());
}
