//! Requests the server must refuse, with etcd's error text and exit code:
//! empty keys, future revisions, too many txn ops (default and
//! `--max-txn-ops`), duplicate keys in a txn, requests over
//! `--max-request-bytes` (default 1.5 MiB, and a custom limit), and
//! `--ignore-value`/`--ignore-lease` on a missing key.

use retcd_tests::{Step, run_differential, run_differential_with, step};

/// The default `--max-request-bytes`: 1.5 MiB.
const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// `etcdctl txn` with no compares, `success` ops and no failure ops.
fn txn_success(success: &[String]) -> Step {
    let mut input = String::from("\n");
    for op in success {
        input.push_str(op);
        input.push('\n');
    }
    input.push_str("\n\n");
    step("txn").stdin(input)
}

/// `n` puts of distinct keys.
fn puts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("put key{i} v")).collect()
}

#[test]
fn bad_keys_and_revisions_match_reference() {
    let steps = [
        "put a 1",
        "put '' x",
        "get ''",
        "del ''",
        "get a --rev=3",
        "get a --rev=100",
        "get a --rev=100 -w json",
        "get a --from-key --rev=3 --keys-only",
        "put missing --ignore-value",
        "put missing v --ignore-lease",
        "put a --ignore-value",
        "get a -w json",
        "put a v --ignore-lease",
        "get a -w json",
    ]
    .map(step);
    let t = run_differential(&steps);
    t.assert_stderr_contains(1, "Error: etcdserver: key is not provided");
    t.assert_stderr_contains(
        5,
        "Error: etcdserver: mvcc: required revision is a future revision",
    );
    t.assert_stderr_contains(8, "Error: etcdserver: key not found");
    assert_eq!(t.stdout(10), "OK\n");
}

#[test]
fn txn_limits_and_duplicates_match_reference() {
    let steps = vec![
        txn_success(&puts(129)),
        txn_success(&puts(128)),
        step("get key --prefix --keys-only --limit 1 -w json"),
        txn_success(&["put k 1".into(), "put k 2".into()]),
        txn_success(&["put k 1".into(), "del k".into()]),
        txn_success(&["put k 1".into(), "del a z".into()]),
        txn_success(&["del a z".into(), "put k 1".into()]),
        txn_success(&["del a m".into(), "del k z".into()]),
        txn_success(&["del k".into(), "del k".into()]),
        txn_success(&["get k".into(), "put k 1".into()]),
        txn_success(&["put k 1".into(), "get k".into(), "get k".into()]),
    ];
    let t = run_differential(&steps);
    t.assert_stderr_contains(0, "Error: etcdserver: too many operations in txn request");
    assert_eq!(t.output(1).code, 0);
    t.assert_stderr_contains(3, "Error: etcdserver: duplicate key given in txn request");
}

#[test]
fn custom_max_txn_ops_matches_reference() {
    let steps = vec![
        txn_success(&puts(4)),
        txn_success(&puts(3)),
        step("get key --prefix --keys-only"),
    ];
    let t = run_differential_with(&["--max-txn-ops", "3"], &steps);
    t.assert_stderr_contains(0, "too many operations in txn request");
    assert_eq!(t.stdout(2), "key0\n\nkey1\n\nkey2\n\n");
}

#[test]
fn request_size_limit_matches_reference() {
    let over = vec![b'x'; DEFAULT_MAX_REQUEST_BYTES + 30 * 1024];
    let under = vec![b'y'; DEFAULT_MAX_REQUEST_BYTES - 64 * 1024];
    let steps = vec![
        step("put big").stdin(over),
        step("put big").stdin(under),
        step("get big --keys-only -w json"),
    ];
    let t = run_differential(&steps);
    t.assert_stderr_contains(0, "Error: etcdserver: request is too large");
    assert_eq!(t.stdout(1), "OK\n");
}

#[test]
fn custom_max_request_bytes_matches_reference() {
    let steps = vec![
        step(&format!("put small {}", "x".repeat(3000))),
        step(&format!("put small {}", "x".repeat(1000))),
        step("get small --keys-only"),
    ];
    let t = run_differential_with(&["--max-request-bytes", "2048"], &steps);
    t.assert_stderr_contains(0, "Error: etcdserver: request is too large");
    assert_eq!(t.stdout(2), "small\n\n");
}

#[test]
fn request_size_limit_counts_like_reference_at_the_edge() {
    // With a 1-byte key, a put's proposal is its value plus 21 or 22 bytes
    // (the request id's varint takes 9 or 10 bytes, by member id), so 1,975
    // bytes fit under 2,000 on either server and 1,981 fit on neither.
    let steps = vec![
        step(&format!("put k {}", "v".repeat(1981))),
        step(&format!("put k {}", "v".repeat(1975))),
        step("get k --keys-only"),
    ];
    let t = run_differential_with(&["--max-request-bytes", "2000"], &steps);
    t.assert_stderr_contains(0, "Error: etcdserver: request is too large");
    assert_eq!(t.stdout(1), "OK\n");
}
