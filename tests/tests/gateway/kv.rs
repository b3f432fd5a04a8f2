//! The KV service through the gateway: put, range, deleterange, txn (every
//! compare target and result, nested txns) and compaction, under `/v3`.

use retcd_tests::Server;
use retcd_tests::gateway::{Call, b64, b64_prefix_end, call, compare_gateway};
use serde_json::json;

/// A sequence exercising every KV method; shared with the prefix tests.
pub fn kv_calls() -> Vec<Call> {
    vec![
        call("kv/put", json!({"key": b64("foo"), "value": b64("bar")})),
        call(
            "kv/put",
            json!({"key": b64("foo"), "value": b64("bar_new"), "prev_kv": true}),
        ),
        call("kv/put", json!({"key": b64("foo1"), "value": b64("bar1")})),
        call("kv/range", json!({"key": b64("foo")})),
        call(
            "kv/range",
            json!({"key": b64("foo"), "range_end": b64_prefix_end("foo")}),
        ),
        call(
            "kv/range",
            json!({"key": b64("foo"), "range_end": b64_prefix_end("foo"), "revision": "2"}),
        ),
        call("kv/range", json!({"key": b64("missing")})),
        call(
            "kv/txn",
            json!({
                "compare": [{"key": b64("foo"), "target": "VALUE", "result": "EQUAL", "value": b64("bar_new")}],
                "success": [
                    {"request_put": {"key": b64("t"), "value": b64("1")}},
                    {"request_range": {"key": b64("foo")}},
                    {"request_delete_range": {"key": b64("none")}}
                ],
                "failure": [{"request_range": {"key": b64("foo1")}}]
            }),
        ),
        call(
            "kv/txn",
            json!({
                "compare": [{"key": b64("foo"), "target": "VALUE", "result": "EQUAL", "value": b64("x")}],
                "success": [{"request_range": {"key": b64("foo")}}],
                "failure": [
                    {"request_range": {"key": b64("foo1"), "keys_only": true}},
                    {"request_put": {"key": b64("u"), "value": b64("2"), "prev_kv": true}}
                ]
            }),
        ),
        call("kv/txn", json!({})),
        call("kv/deleterange", json!({"key": b64("t"), "prev_kv": true})),
        call("kv/deleterange", json!({"key": b64("t")})),
        call(
            "kv/deleterange",
            json!({"key": b64("f"), "range_end": b64("g")}),
        ),
        call("kv/range", json!({"key": "AA==", "range_end": "AA=="})),
        call("kv/compaction", json!({"revision": "3"})),
        call("kv/compaction", json!({"revision": "3"})),
        call("kv/compaction", json!({"revision": "4", "physical": true})),
        call("kv/range", json!({"key": b64("foo"), "revision": "3"})),
        call("kv/range", json!({"key": b64("foo"), "revision": "2"})),
        call("kv/compaction", json!({"revision": "1000"})),
    ]
}

#[test]
fn kv_methods_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    let answers = compare_gateway(&reference, &ours, "/v3", &kv_calls());
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[0].body["header"]["revision"], "2");
    assert_eq!(answers[3].body["kvs"][0]["value"], b64("bar_new"));
    assert_eq!(answers[4].body["count"], "2");
    assert_eq!(answers[7].body["succeeded"], true);
    assert_eq!(answers[15].status, 400);
}

#[test]
fn txn_compare_targets_and_results_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    let mut calls = vec![
        call("kv/put", json!({"key": b64("a"), "value": b64("1")})),
        call("kv/put", json!({"key": b64("b"), "value": b64("2")})),
        call("kv/put", json!({"key": b64("b"), "value": b64("3")})),
    ];
    let targets = [
        ("VALUE", "value", json!(b64("2"))),
        ("MOD", "mod_revision", json!("4")),
        ("CREATE", "create_revision", json!("3")),
        ("VERSION", "version", json!("2")),
        ("LEASE", "lease", json!("0")),
    ];
    for (target, field, operand) in &targets {
        for result in ["EQUAL", "NOT_EQUAL", "LESS", "GREATER"] {
            for key in ["b", "missing"] {
                calls.push(call(
                    "kv/txn",
                    json!({
                        "compare": [{"key": b64(key), "target": target, "result": result, *field: operand}],
                        "success": [{"request_range": {"key": b64("a")}}],
                        "failure": [{"request_range": {"key": b64("b")}}]
                    }),
                ));
            }
        }
    }
    calls.push(call(
        "kv/txn",
        json!({
            "compare": [
                {"key": b64("a"), "target": "VALUE", "result": "EQUAL", "value": b64("1")},
                {"key": b64("b"), "target": "VERSION", "result": "GREATER", "version": "1"},
                {"key": b64("a"), "range_end": b64("c"), "target": "MOD", "result": "LESS", "mod_revision": "10"}
            ],
            "success": [{"request_txn": {
                "compare": [{"key": b64("a"), "target": "CREATE", "result": "EQUAL", "create_revision": "2"}],
                "success": [{"request_put": {"key": b64("n"), "value": b64("nested")}}, {"request_range": {"key": b64("n")}}]
            }}]
        }),
    ));
    calls.push(call("kv/range", json!({"key": b64("n")})));
    calls.push(call(
        "kv/txn",
        json!({"compare": [{"key": b64("a"), "target": "VALUE", "result": "EQUAL"}]}),
    ));
    let answers = compare_gateway(&reference, &ours, "/v3", &calls);
    assert_eq!(
        answers[3].body["succeeded"],
        serde_json::Value::Null,
        "VALUE EQUAL 2 on b=3 fails"
    );
    assert_eq!(
        answers[answers.len() - 2].body["kvs"][0]["value"],
        b64("nested")
    );
}
