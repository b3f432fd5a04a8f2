//! The Maintenance and Cluster services on the gateway: the routes etcd
//! 3.4.23 serves answer on ours too, under every prefix, with the same
//! status; the snapshot streams `{"result": ...}` lines.

use retcd_tests::Server;
use retcd_tests::gateway::PREFIXES;
use serde_json::Value;

#[test]
fn member_list_and_alarm_answer_as_reference() {
    let (reference, ours) = Server::pair(&[]);
    for (method, body) in [
        ("cluster/member/list", "{}"),
        ("maintenance/alarm", r#"{"action":"GET"}"#),
    ] {
        let want = reference.http_post(&format!("/v3/{method}"), body);
        let got = ours.http_post(&format!("/v3/{method}"), body);
        assert_eq!(want.status, 200, "reference {method}: {}", want.text());
        assert_eq!(got.status, 200, "ours {method}: {}", got.text());
        // Names and URLs differ between the two servers; the shape must not.
        let members =
            |r: &retcd_tests::http::Response| r.json()["members"].as_array().map(Vec::len);
        assert_eq!(members(&got), members(&want), "{method}: {}", got.text());
    }
}

#[test]
fn maintenance_routes_answer_under_every_prefix() {
    let (reference, ours) = Server::pair(&[]);
    for method in [
        "maintenance/status",
        "maintenance/hash",
        "maintenance/defragment",
    ] {
        let want = reference.http_post(&format!("/v3/{method}"), "{}");
        assert_eq!(want.status, 200, "reference {method}: {}", want.text());
        for prefix in PREFIXES {
            let got = ours.http_post(&format!("{prefix}/{method}"), "{}");
            assert_eq!(got.status, 200, "ours {prefix}/{method}: {}", got.text());
            assert!(got.json()["header"].is_object(), "{}", got.text());
        }
    }
}

#[test]
fn snapshot_streams_result_lines() {
    let ours = Server::ours();
    let response = ours.http_post("/v3/maintenance/snapshot", "");
    assert_eq!(response.status, 200, "{}", response.text());
    let lines: Vec<Value> = response
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(line["result"]["blob"].is_string(), "{line}");
    }
}
