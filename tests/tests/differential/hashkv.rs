//! `etcdctl endpoint hashkv`: the same history hashes to the same number on
//! both servers, before and after logical and physical compaction, at the
//! current and at earlier revisions; at or below the compaction revision and
//! beyond the current one it fails as etcd does.

use retcd_tests::{run_differential, step};

#[test]
fn hashkv_matches_reference() {
    let steps = [
        "endpoint hashkv -w json", // empty store: compact_revision -1
        "put foo bar",             // 2
        "put foo bar2",            // 3
        "put k2 v",                // 4
        "del k2",                  // 5
        "put k2 v2",               // 6
        "put x y",                 // 7
        "endpoint hashkv -w json",
        "endpoint hashkv --rev=5 -w json",
        "compact 3",
        "put foo bar3", // 8
        "endpoint hashkv -w json",
        "endpoint hashkv --rev=4 -w json",
        "endpoint hashkv --rev=8",
        "endpoint hashkv --rev=3",
        "endpoint hashkv --rev=2",
        "endpoint hashkv --rev=9",
        "compact 6 --physical",
        "endpoint hashkv --rev=7 -w json",
        "endpoint hashkv -w fields",
        "endpoint hashkv --rev=6 -w json",
    ]
    .map(step);
    let t = run_differential(&steps);
    // The hash covers the data: it changed with the writes, and the errors
    // are etcd's.
    assert_ne!(t.stdout(0), t.stdout(7));
    assert!(
        t.stdout(0).contains(r#""compact_revision":-1"#),
        "{}",
        t.stdout(0)
    );
    t.assert_stderr_contains(14, "required revision has been compacted");
    t.assert_stderr_contains(16, "required revision is a future revision");
}
