//! The gateway's path prefixes. etcd 3.4.23 serves `/v3` and `/v3beta` and
//! answers 404 under `/v3alpha`; the seed uses `/v3alpha`, so ours serves all
//! three. Where the reference lacks a prefix, ours under it must answer as the
//! reference does under `/v3`.

use retcd_tests::Server;
use retcd_tests::gateway::{b64, call, compare_gateway, compare_gateway_prefixes};
use serde_json::json;

use crate::kv::kv_calls;

#[test]
fn v3beta_matches_reference() {
    let (reference, ours) = Server::pair(&[]);
    let answers = compare_gateway(&reference, &ours, "/v3beta", &kv_calls());
    assert_eq!(answers[0].status, 200);
}

#[test]
fn v3alpha_on_ours_matches_reference_v3() {
    let (reference, ours) = Server::pair(&[]);
    let probe = reference.http_post("/v3alpha/kv/range", &json!({"key": b64("foo")}).to_string());
    assert_eq!(
        probe.status, 404,
        "the reference etcd 3.4 has no /v3alpha gateway"
    );
    let answers = compare_gateway_prefixes(&reference, "/v3", &ours, "/v3alpha", &kv_calls());
    assert_eq!(answers[0].status, 200);
}

#[test]
fn seed_v3alpha_put_and_range_on_ours() {
    let ours = Server::ours();
    let put = ours.http_post("/v3alpha/kv/put", r#"{"key": "Zm9v", "value": "YmFy"}"#);
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.json()["header"]["revision"], "2");
    let range = ours.http_post("/v3alpha/kv/range", r#"{"key": "Zm9v"}"#);
    assert_eq!(range.status, 200, "{}", range.text());
    let kv = &range.json()["kvs"][0];
    assert_eq!(kv["key"], "Zm9v");
    assert_eq!(kv["value"], "YmFy");
    assert_eq!(kv["create_revision"], "2");
    assert_eq!(kv["mod_revision"], "2");
    assert_eq!(kv["version"], "1");
    assert_eq!(range.json()["count"], "1");
}

#[test]
fn all_prefixes_share_one_store_on_ours() {
    let ours = Server::ours();
    for (i, prefix) in ["/v3", "/v3beta", "/v3alpha"].iter().enumerate() {
        let put = ours.http_post(
            &format!("{prefix}/kv/put"),
            &call("kv/put", json!({"key": b64("k"), "value": b64(prefix)})).body,
        );
        assert_eq!(put.status, 200, "{prefix}: {}", put.text());
        assert_eq!(
            put.json()["header"]["revision"],
            (i + 2).to_string(),
            "{prefix}"
        );
    }
    let range = ours.http_post("/v3/kv/range", &json!({"key": b64("k")}).to_string());
    assert_eq!(range.json()["kvs"][0]["value"], b64("/v3alpha"));
    assert_eq!(range.json()["kvs"][0]["version"], "3");
}
