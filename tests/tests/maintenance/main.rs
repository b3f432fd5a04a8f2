//! The Cluster and Maintenance services through Debian's etcdctl:
//! `member list` against the reference etcd and ours, `endpoint status` and
//! `endpoint hashkv` against ours, `snapshot save` against both (see
//! `snapshot.rs`).
//!
//! The `endpoint` commands here use a bare `127.0.0.1:PORT` endpoint; the
//! `http://` form (which Debian's etcdctl sends as the HTTP/2 authority) is
//! covered by `tests/tests/differential/endpoints.rs`.

mod snapshot;

use std::time::Duration;

use retcd_tests::etcdctl::{REFERENCE_ETCDCTL, run_binary};
use retcd_tests::{CtlOutput, Server};

/// Longest one etcdctl run may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs etcdctl against `server` with a scheme-less endpoint.
fn etcdctl_bare(server: &Server, args: &[&str]) -> CtlOutput {
    let endpoint = format!("127.0.0.1:{}", server.client_port());
    let out = run_binary(REFERENCE_ETCDCTL, &endpoint, args, &[], None, CTL_TIMEOUT);
    out.assert_success();
    out
}

/// `endpoint status -w json` of `server`: its `Status` object.
fn status(server: &Server) -> serde_json::Value {
    let out = etcdctl_bare(server, &["endpoint", "status", "-w", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", out.stdout));
    parsed[0]["Status"].clone()
}

/// `endpoint hashkv -w json` of `server`: (hash, hash revision).
fn hashkv(server: &Server) -> (u64, i64) {
    let out = etcdctl_bare(server, &["endpoint", "hashkv", "-w", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("hashkv is not JSON ({e}): {}", out.stdout));
    let resp = &parsed[0]["HashKV"];
    let hash = resp["hash"].as_u64().unwrap_or_else(|| panic!("{resp}"));
    let revision = resp["header"]["revision"].as_i64().unwrap_or(0);
    (hash, revision)
}

/// `member list` lines with the leading member id replaced by `<id>`.
fn masked_member_list(server: &Server) -> Vec<String> {
    let out = server.etcdctl(&["member", "list"]);
    out.assert_success();
    out.stdout
        .lines()
        .map(|line| {
            let (id, rest) = line.split_once(", ").expect("id, rest");
            assert!(u64::from_str_radix(id, 16).is_ok(), "member id {id:?}");
            format!("<id>, {rest}")
        })
        .collect()
}

#[test]
fn member_list_matches_the_reference() {
    let (reference, ours) = Server::pair(&[]);
    let shape = |server: &Server| {
        masked_member_list(server)
            .into_iter()
            .map(|line| {
                line.replace(&server.client_url(), "<client>")
                    .replace(&format!("127.0.0.1:{}", server.peer_port()), "<peer>")
                    .replace(server.name(), "<name>")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&ours), shape(&reference));
    assert_eq!(
        masked_member_list(&ours),
        vec![format!(
            "<id>, started, {}, http://127.0.0.1:{}, {}, false",
            ours.name(),
            ours.peer_port(),
            ours.client_url()
        )]
    );
}

#[test]
fn endpoint_status_reports_the_leader_and_raft_progress() {
    let server = Server::ours();
    server.etcdctl(&["put", "foo", "bar"]).assert_success();
    let status = status(&server);
    let member_id = status["header"]["member_id"].as_u64().expect("member id");
    assert_eq!(status["leader"].as_u64(), Some(member_id), "{status}");
    assert!(status["raftIndex"].as_u64().unwrap_or(0) > 0, "{status}");
    assert!(status["raftTerm"].as_u64().unwrap_or(0) > 0, "{status}");
    assert!(status["dbSize"].as_i64().unwrap_or(0) > 0, "{status}");
    let version = status["version"].as_str().expect("version");
    assert!(version.starts_with("3.5."), "{version}");
}

#[test]
fn hashkv_agrees_across_members_with_the_same_writes() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Server::ours);
        (a.join().expect("start a"), Server::ours())
    });
    for server in [&a, &b] {
        server.etcdctl(&["put", "foo", "bar"]).assert_success();
        server.etcdctl(&["put", "foo1", "bar1"]).assert_success();
    }
    let (hash, revision) = hashkv(&a);
    assert_eq!(hashkv(&b), (hash, revision));
    a.etcdctl(&["put", "foo", "changed"]).assert_success();
    let (changed, _) = hashkv(&a);
    assert_ne!(changed, hash);
}
