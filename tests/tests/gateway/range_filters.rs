//! Range fields etcdctl 3.4 cannot send: min/max mod and create revision
//! filters, count_only, keys_only, serializable, and limit with every sort
//! target and order, including how `count` and `more` report them.

use retcd_tests::Server;
use retcd_tests::gateway::{Call, b64, call, compare_gateway};
use serde_json::{Value, json};

/// Distinct versions, create and mod revisions per key; revisions 2..=9.
fn fixture() -> Vec<Call> {
    [
        ("a", "3"),
        ("b", "1"),
        ("c", "2"),
        ("a", "1"),
        ("d", "0"),
        ("b", "5"),
        ("b", "4"),
        ("e", "9"),
    ]
    .iter()
    .map(|(k, v)| call("kv/put", json!({"key": b64(k), "value": b64(v)})))
    .collect()
}

/// A range over every key with extra fields merged in.
fn all_keys(extra: Value) -> Call {
    let mut body = json!({"key": "AA==", "range_end": "AA=="});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    call("kv/range", body)
}

#[test]
fn revision_filters_and_counts_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    let mut calls = fixture();
    for extra in [
        json!({"min_mod_revision": "6"}),
        json!({"max_mod_revision": "5"}),
        json!({"min_create_revision": "4"}),
        json!({"max_create_revision": "4"}),
        json!({"min_mod_revision": "5", "max_mod_revision": "8"}),
        json!({"min_create_revision": "3", "max_create_revision": "9", "limit": "2"}),
        json!({"min_mod_revision": "100"}),
        json!({"min_mod_revision": "5", "sort_target": "MOD", "sort_order": "DESCEND", "limit": "2"}),
        json!({"revision": "6", "min_mod_revision": "4"}),
        json!({"count_only": true}),
        json!({"count_only": true, "limit": "1"}),
        json!({"count_only": true, "revision": "4"}),
        json!({"keys_only": true}),
        json!({"keys_only": true, "limit": "2", "sort_order": "DESCEND"}),
        json!({"serializable": true}),
        json!({"serializable": true, "revision": "3"}),
        json!({"limit": "0"}),
        json!({"limit": "100"}),
        json!({"limit": "-1"}),
    ] {
        calls.push(all_keys(extra));
    }
    let answers = compare_gateway(&reference, &ours, "/v3", &calls);
    let base = fixture().len();
    assert_eq!(answers[base + 9].body["count"], "5");
    assert_eq!(answers[base + 9].body["kvs"], Value::Null);
}

#[test]
fn limit_with_every_sort_matches_reference() {
    let (reference, ours) = Server::pair(&[]);
    let mut calls = fixture();
    for target in ["KEY", "VERSION", "CREATE", "MOD", "VALUE"] {
        for order in ["NONE", "ASCEND", "DESCEND"] {
            for limit in ["0", "2"] {
                calls.push(all_keys(
                    json!({"sort_target": target, "sort_order": order, "limit": limit}),
                ));
            }
        }
    }
    let answers = compare_gateway(&reference, &ours, "/v3", &calls);
    let descend_by_key = &answers[fixture().len() + 4].body;
    assert_eq!(descend_by_key["kvs"][0]["key"], b64("e"));
    assert_eq!(descend_by_key["more"], Value::Null);
}
