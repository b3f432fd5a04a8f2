//! `Maintenance.Snapshot` through Debian's `etcdctl snapshot save`: it
//! succeeds against ours with the reference's output (paths, sizes and times
//! masked), the file ends in the SHA-256 of what precedes it, as etcd's
//! does, and what precedes it is a backend our store opens with every key.

use retcd_api::etcdserverpb::RangeRequest;
use retcd_mvcc::Store;
use retcd_tests::Server;
use retcd_tests::etcdctl::{REFERENCE_ETCDCTL, run_binary};
use sha2::{Digest, Sha256};

use super::CTL_TIMEOUT;

/// What `snapshot save` printed, with the run's specifics masked: stdout
/// with the path masked, and the `msg` of each JSON log line on stderr.
fn save(server: &Server, path: &std::path::Path) -> (String, Vec<String>) {
    let endpoint = format!("127.0.0.1:{}", server.client_port());
    let file = path.display().to_string();
    let out = run_binary(
        REFERENCE_ETCDCTL,
        &endpoint,
        &["snapshot", "save", &file],
        &[],
        None,
        CTL_TIMEOUT,
    );
    out.assert_success();
    let messages = out
        .stderr
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            json["msg"].as_str().expect("msg").to_string()
        })
        .collect();
    (out.stdout.replace(&file, "<path>"), messages)
}

#[test]
fn snapshot_save_matches_the_reference_and_the_file_is_our_backend() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        server.etcdctl(&["put", "foo", "bar"]).assert_success();
        server.etcdctl(&["put", "foo1", "bar1"]).assert_success();
        server.etcdctl(&["put", "foo", "bar2"]).assert_success();
        server.etcdctl(&["del", "foo1"]).assert_success();
    }
    let dir = tempfile::tempdir().unwrap();
    let theirs = save(&reference, &dir.path().join("reference.db"));
    let path = dir.path().join("ours.db");
    let saved = save(&ours, &path);
    assert_eq!(saved, theirs);
    assert_eq!(saved.0, "Snapshot saved at <path>\n");

    // As etcd's: the SHA-256 of the backend is appended, and the backend
    // size is a multiple of 512 bytes (what `snapshot restore` checks).
    let bytes = std::fs::read(&path).unwrap();
    let (backend, digest) = bytes.split_at(bytes.len() - 32);
    assert_eq!(Sha256::digest(backend).as_slice(), digest);
    assert_eq!(bytes.len() % 512, 32);

    let db = dir.path().join("backend.db");
    std::fs::write(&db, backend).unwrap();
    let store = Store::open(&db).unwrap();
    assert_eq!(store.current_revision(), 5);
    let everything = etcd_range(&store);
    assert_eq!(
        everything,
        vec![("foo".to_string(), "bar2".to_string(), 2, 4)]
    );
}

/// Every key in `store`: (key, value, create revision, mod revision).
fn etcd_range(store: &Store) -> Vec<(String, String, i64, i64)> {
    let req = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    store
        .range(&req)
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key).unwrap(),
                String::from_utf8(kv.value).unwrap(),
                kv.create_revision,
                kv.mod_revision,
            )
        })
        .collect()
}
