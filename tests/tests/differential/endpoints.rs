//! Maintenance commands: alarms, and per-endpoint commands with `http://`
//! endpoints. Debian's etcdctl sends the whole `http://host:port` as the
//! HTTP/2 `:authority` for the per-endpoint ones (its
//! per-endpoint clients dial a `passthrough:///http://...` target); etcd
//! accepts that, and so must we (see `crates/server/src/h2_authority.rs`).

use retcd_tests::{Server, run_differential, step};

#[test]
fn defrag_with_a_scheme_in_the_endpoint_matches_reference() {
    let steps = ["put a 1", "defrag", "get a", "defrag -w json"].map(step);
    let t = run_differential(&steps);
    assert!(
        t.stdout(1)
            .starts_with("Finished defragmenting etcd member[http://127.0.0.1:"),
        "{}",
        t.stdout(1)
    );
}

#[test]
fn endpoint_status_and_hashkv_accept_a_scheme_in_the_endpoint() {
    let ours = Server::ours();
    ours.etcdctl(&["put", "a", "1"]).assert_success();
    // Several requests on one connection: the rewritten authority is reused
    // from HPACK's dynamic table by index after the first.
    let status = ours.etcdctl(&["endpoint", "status", "-w", "json"]);
    status.assert_success();
    let parsed: serde_json::Value = serde_json::from_str(&status.stdout)
        .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", status.stdout));
    assert_eq!(parsed[0]["Endpoint"], ours.client_url());
    assert_eq!(parsed[0]["Status"]["header"]["revision"], 2);

    let hashkv = ours.etcdctl(&["endpoint", "hashkv", "-w", "json"]);
    hashkv.assert_success();
    let parsed: serde_json::Value = serde_json::from_str(&hashkv.stdout)
        .unwrap_or_else(|e| panic!("hashkv is not JSON ({e}): {}", hashkv.stdout));
    assert_eq!(parsed[0]["HashKV"]["header"]["revision"], 2);
    assert!(parsed[0]["HashKV"]["hash"].as_u64().is_some_and(|h| h != 0));
}

#[test]
fn alarm_answers_match_reference() {
    let steps = ["alarm list", "alarm list -w json", "alarm disarm -w json"].map(step);
    let t = run_differential(&steps);
    // etcd answers alarm requests without a header (so etcdctl's `-w fields`,
    // which reads it, crashes against either server and is not compared).
    assert_eq!(t.stdout(1), "{}\n");
}
