//! Bad request bodies on every gateway POST endpoint, answered byte for byte
//! as etcd 3.4.23 answers them (after masking ids): malformed JSON, the
//! wrong JSON kind for a field, integers as strings and out of range, enum
//! names and numbers, invalid base64, unknown and duplicated fields, camelCase
//! names, nulls, nested txn ops with bad fields, bad first requests of the
//! streaming calls. Nothing in the catalogue may change the store: the
//! revision after it is the revision before it.
//!
//! Left out on purpose, because the reference itself misbehaves: a `null`
//! element in a repeated message field (`{"compare":[null]}`) and an alarm
//! action out of range make etcd 3.4.23 drop the connection or crash; which
//! oneof member wins when several are given is random in Go.

use retcd_tests::Server;
use retcd_tests::gateway::{Call, b64, call, compare_gateway, compare_gateway_prefixes, raw_call};
use serde_json::json;

/// `(method, body)` pairs, sent to both servers under `/v3`.
const CATALOGUE: &[(&str, &str)] = &[
    // Not JSON, truncated JSON, not an object.
    ("kv/put", "{bad"),
    ("kv/put", "bad"),
    ("kv/put", "x{}"),
    ("kv/put", "'k'"),
    ("kv/put", "{'key':1}"),
    ("kv/put", r#"{"key":"Zm9v""#),
    ("kv/put", r#"{"key":"Zm9v","#),
    ("kv/put", r#"{"key""#),
    ("kv/put", r#"{"key":"#),
    ("kv/put", r#"{"key":"Zm9"#),
    ("kv/put", "[]"),
    ("kv/put", "[1]"),
    ("kv/put", r#""str""#),
    ("kv/put", "5"),
    ("kv/put", "null"),
    ("kv/put", "true"),
    ("kv/put", ""),
    ("kv/put", "  \n "),
    ("kv/put", "{}"),
    ("kv/range", r#"{"key":"Zm9v","limit":"1",}"#),
    ("kv/range", r#"{"key":"Zm9v" "limit":1}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":01}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":-}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":1.}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":1e}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":nul}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":nulx}"#),
    ("kv/range", r#"{"key":"Zm9v\x"}"#),
    ("kv/range", r#"{"key":"Zm9v\u12"}"#),
    ("kv/range", "{\"key\":\"a\tb\"}"),
    ("kv/range", r#"{"key":"Zm9v","limit":[1,}"#),
    ("kv/range", r#"{"key":"Zm9v"}} trailing bytes are ignored"#),
    ("kv/range", r#"{"key":"Zm9v"} {"key":5}"#),
    // Wrong kinds for bytes fields.
    ("kv/put", r#"{"key":5}"#),
    ("kv/put", r#"{"key":true}"#),
    ("kv/put", r#"{"key":null}"#),
    ("kv/put", r#"{"key":[]}"#),
    ("kv/put", r#"{"key":{}}"#),
    ("kv/put", r#"{"key":[1,"a"]}"#),
    ("kv/put", r#"{"key":[300]}"#),
    ("kv/put", r#"{"key":[-1]}"#),
    ("kv/range", r#"{"key":[102,111,111]}"#),
    // Integers.
    ("kv/range", r#"{"key":"Zm9v","limit":"x"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":1.5}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"1.5"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"1e3"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":1e3}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":1}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"1"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":" 1"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":-1}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":true}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":null}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"null"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":[]}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":{}}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":99999999999999999999}"#),
    (
        "kv/range",
        r#"{"key":"Zm9v","limit":"99999999999999999999"}"#,
    ),
    ("kv/range", r#"{"key":"Zm9v","limit":9223372036854775807}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":9223372036854775808}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":-9223372036854775809}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"+1"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"0x10"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":""}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"1."}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"-"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"tru"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"[1"}"#),
    ("kv/range", r#"{"key":"Zm9v","limit":"\u0031"}"#),
    ("kv/range", r#"{"key":"Zm9v","revision":"abc"}"#),
    // Booleans.
    ("kv/range", r#"{"key":"Zm9v","serializable":"true"}"#),
    ("kv/range", r#"{"key":"Zm9v","serializable":1}"#),
    ("kv/range", r#"{"key":"Zm9v","serializable":null}"#),
    ("kv/deleterange", r#"{"key":"Zm9v","prev_kv":"x"}"#),
    // Enums.
    ("kv/range", r#"{"key":"Zm9v","sort_order":1}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":"ASCEND"}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":"BAD"}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":"ascend"}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":2}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":1.5}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":"1"}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":true}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":null}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":3000000000}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":"\u0041SCEND"}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":"a\"b"}"#),
    ("kv/range", r#"{"key":"Zm9v","sort_order":"é"}"#),
    (
        "kv/range",
        r#"{"key":"Zm9v","sort_target":"VALUE","sort_order":"DESCEND"}"#,
    ),
    // Names: proto and camelCase, duplicates, unknown fields.
    ("kv/range", r#"{"key":"Zm9v","sortOrder":"DESCEND"}"#),
    ("kv/range", r#"{"key":"Zm9v","rangeEnd":"Zm9w"}"#),
    (
        "kv/range",
        r#"{"key":"Zm9v","range_end":"AA==","rangeEnd":"Zm9w"}"#,
    ),
    ("kv/range", r#"{"key":"Zm9v","keysOnly":true}"#),
    ("kv/range", r#"{"key":"YQ==","key":"Zm9v"}"#),
    ("kv/range", r#"{"key":"Zm9v","unknown":1}"#),
    ("kv/range", r#"{"key":"Zm9v","unknown":{"a":[1,"x",null]}}"#),
    ("kv/range", r#"{"k\u0065y":"Zm9v"}"#),
    // Base64.
    ("kv/put", r#"{"key":"!!!!"}"#),
    ("kv/put", r#"{"key":"Zm9"}"#),
    ("kv/put", r#"{"key":"Zm9v="}"#),
    ("kv/put", r#"{"key":"Zm8"}"#),
    ("kv/put", r#"{"key":"Zm 9v"}"#),
    ("kv/put", r#"{"key":"-_-_"}"#),
    ("kv/put", r#"{"key":"Zg="}"#),
    ("kv/put", r#"{"key":"Zg"}"#),
    ("kv/put", r#"{"key":"Z"}"#),
    ("kv/put", r#"{"key":"Zm9v","value":"!"}"#),
    ("kv/put", r#"{"key":"Zm9v","value":"Zg==Zg=="}"#),
    ("kv/range", r#"{"key":"Zm9v\n"}"#),
    ("kv/range", r#"{"key":"Zm\r\n9v"}"#),
    ("kv/range", r#"{"key":"Zh=="}"#),
    ("kv/range", r#"{"key":"\u005a\u006d\u0039\u0076"}"#),
    ("kv/put", r#"{"key":"Zm9v","value":"YmFy","lease":"abc"}"#),
    ("kv/put", r#"{"key":"Zm9v","value":"YmFy","prev_kv":"yes"}"#),
    (
        "kv/put",
        r#"{"key":"Zm9v","value":"YmFy","lease":18446744073709551616}"#,
    ),
    ("kv/put", r#"{"key":"Zm9v","value":"YmFy","lease":"-1"}"#),
    // Txn: compares and nested ops.
    ("kv/txn", r#"{"compare":{}}"#),
    ("kv/txn", r#"{"success":"x"}"#),
    ("kv/txn", r#"{"success":[{}]}"#),
    ("kv/txn", r#"{"failure":[{"request_put":null}]}"#),
    ("kv/txn", r#"{"compare":[5]}"#),
    ("kv/txn", r#"{"compare":[{"target":"BAD","key":"Zm9v"}]}"#),
    ("kv/txn", r#"{"compare":[{"target":5,"key":"Zm9v"}]}"#),
    (
        "kv/txn",
        r#"{"compare":[{"target":"VALUE","key":"Zm9v","value":"!"}]}"#,
    ),
    (
        "kv/txn",
        r#"{"compare":[{"target":"VERSION","key":"Zm9v","version":"x"}]}"#,
    ),
    ("kv/txn", r#"{"compare":[{"result":"SAME","key":"Zm9v"}]}"#),
    ("kv/txn", r#"{"compare":[{"target_union":5}]}"#),
    ("kv/txn", r#"{"success":[{"request":{}}]}"#),
    (
        "kv/txn",
        r#"{"compare":[{"result":"EQUAL","target":"VERSION","key":"Zm9v","version":"1"}],"success":[{"request_range":{"key":"Zm9v","limit":"y"}}]}"#,
    ),
    ("kv/txn", r#"{"success":[{"request_put":{"key":5}}]}"#),
    (
        "kv/txn",
        r#"{"success":[{"requestPut":{"key":"eA==","value":5}}]}"#,
    ),
    (
        "kv/txn",
        r#"{"failure":[{"request_delete_range":{"key":"eA==","prev_kv":1}}]}"#,
    ),
    (
        "kv/txn",
        r#"{"success":[{"request_txn":{"success":[{"request_put":{"key":"eA==","lease":"z"}}]}}]}"#,
    ),
    ("kv/compaction", r#"{"revision":"abc"}"#),
    ("kv/compaction", r#"{"revision":1.5}"#),
    ("kv/compaction", r#"{"physical":"true"}"#),
    ("kv/compaction", r#"["revision"]"#),
    // Leases (and the old paths).
    ("lease/grant", r#"{"TTL":"x"}"#),
    ("lease/grant", r#"{"TTL":"abc","ID":5}"#),
    ("lease/grant", "[]"),
    ("lease/grant", "{bad"),
    ("lease/revoke", r#"{"ID":"x"}"#),
    ("lease/revoke", r#"{"id":"x"}"#),
    ("kv/lease/revoke", r#"{"ID":1.5}"#),
    ("lease/timetolive", r#"{"ID":"1","keys":"x"}"#),
    ("kv/lease/timetolive", r#"{"ID":true}"#),
    ("lease/leases", "{bad"),
    ("kv/lease/leases", "[1]"),
    ("lease/keepalive", r#"{"ID":"x"}"#),
    ("lease/keepalive", "{bad"),
    ("lease/keepalive", "[]"),
    ("lease/keepalive", r#"{"ID":"#),
    ("lease/keepalive", ""),
    ("lease/keepalive", r#"{"ID":"1"} {bad"#),
    // Watch: a bad first request fails the call.
    ("watch", "{bad"),
    ("watch", "[]"),
    ("watch", r#"{"request_union":"x"}"#),
    ("watch", r#"{"create_request":"#),
    ("watch", r#"{"create_request":{"key":"Zg="}}"#),
    (
        "watch",
        r#"{"create_request":{"key":"Zm9v","filters":"NOPUT"}}"#,
    ),
    (
        "watch",
        r#"{"create_request":{"key":"Zm9v","filters":"BAD"}}"#,
    ),
    (
        "watch",
        r#"{"create_request":{"key":"Zm9v","filters":["BAD"]}}"#,
    ),
    (
        "watch",
        r#"{"create_request":{"key":"Zm9v","filters":[1.5]}}"#,
    ),
    (
        "watch",
        r#"{"create_request":{"key":"Zm9v","start_revision":"x"}}"#,
    ),
    ("watch", r#"{"cancel_request":{"watch_id":true}}"#),
    // Cluster and maintenance.
    ("cluster/member/list", "{bad"),
    ("cluster/member/list", "[1]"),
    ("cluster/member/add", r#"{"peerURLs":"x"}"#),
    ("cluster/member/add", r#"{"peerURLs":[5]}"#),
    (
        "cluster/member/add",
        r#"{"peerURLs":["http://127.0.0.1:1"],"isLearner":"yes"}"#,
    ),
    ("cluster/member/remove", r#"{"ID":"x"}"#),
    ("cluster/member/remove", r#"{"ID":-1}"#),
    ("cluster/member/update", r#"{"ID":"1","peerURLs":{}}"#),
    ("cluster/member/promote", r#"{"ID":1.5}"#),
    ("maintenance/status", "{bad"),
    ("maintenance/status", "[]"),
    ("maintenance/alarm", r#"{"action":"BAD"}"#),
    ("maintenance/alarm", r#"{"action":"GET","memberID":"x"}"#),
    ("maintenance/alarm", r#"{"action":"GET","alarm":"BAD"}"#),
    ("maintenance/alarm", r#"{"memberID":-1}"#),
    (
        "maintenance/alarm",
        r#"{"memberID":"18446744073709551616"}"#,
    ),
    ("maintenance/alarm", r#"{"alarm":1.0}"#),
    ("maintenance/hash", "{bad"),
    ("maintenance/defragment", "{bad"),
    ("maintenance/snapshot", "{bad"),
    ("maintenance/snapshot", r#"{"x":"#),
    ("maintenance/transfer-leadership", r#"{"targetID":"x"}"#),
    ("maintenance/transfer-leadership", "{bad"),
];

/// The catalogue as gateway calls.
fn catalogue() -> Vec<Call> {
    CATALOGUE
        .iter()
        .map(|(method, body)| raw_call(method, body))
        .collect()
}

/// A range over every key: its header carries the store's revision.
fn range_all() -> Call {
    call(
        "kv/range",
        json!({"key": b64("\0"), "range_end": b64("\0")}),
    )
}

#[test]
fn bad_bodies_match_reference_and_leave_the_store_alone() {
    let (reference, ours) = Server::pair(&[]);
    let setup = [call(
        "kv/put",
        json!({"key": b64("foo"), "value": b64("bar")}),
    )];
    compare_gateway(&reference, &ours, "/v3", &setup);
    let before = compare_gateway(&reference, &ours, "/v3", &[range_all()]);
    let answers = compare_gateway(&reference, &ours, "/v3", &catalogue());
    let after = compare_gateway(&reference, &ours, "/v3", &[range_all()]);
    assert_eq!(after, before, "the catalogue changed the store");
    assert_eq!(before[0].body["header"]["revision"], "2");
    // The catalogue is mostly errors: every decode error is a 400 (500 for
    // the streaming calls) with code 3 (2) and the text twice.
    let errors = answers
        .iter()
        .filter(|a| a.status == 400 && a.body["code"] == 3)
        .count();
    assert!(errors > CATALOGUE.len() / 2, "{errors} errors");
    let first = &answers[0].body;
    assert_eq!(
        first["message"],
        "invalid character 'b' looking for beginning of object key string"
    );
    assert_eq!(first["error"], first["message"]);
}

#[test]
fn bad_bodies_match_reference_under_every_prefix() {
    let (reference, ours) = Server::pair(&[]);
    let calls: Vec<Call> = catalogue().into_iter().step_by(7).collect();
    compare_gateway(&reference, &ours, "/v3beta", &calls);
    // etcd 3.4.23 has no /v3alpha: ours there must answer as the reference at /v3.
    compare_gateway_prefixes(&reference, "/v3", &ours, "/v3alpha", &calls);
}

#[test]
fn decode_errors_carry_json_content_type() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        for (path, body) in [
            ("/v3/kv/range", r#"{"limit":"x"}"#),
            ("/v3/kv/put", r#"{"key":"Zg="}"#),
            ("/v3/watch", "{bad"),
        ] {
            let response = server.http_post(path, body);
            assert_eq!(
                response.header("content-type"),
                Some("application/json"),
                "{} {path}",
                server.flavour().label()
            );
        }
    }
}
