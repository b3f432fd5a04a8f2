//! Compaction through `etcdctl compact`: success, compacting the same or an
//! older revision again, future revisions, `--physical`, and reads at, below
//! and above the compacted revision, tombstones included.

use retcd_tests::{run_differential, step};

#[test]
fn compaction_matches_reference() {
    let steps = [
        "put k 1", // 2
        "put k 2", // 3
        "put j 1", // 4
        "del j",   // 5
        "put k 3", // 6
        "compact 3",
        "compact 3",
        "compact 2",
        "compact 100",
        "compact 7",
        "get k --rev=3",
        "get k --rev=2",
        "get k --rev=2 -w json",
        "get j --rev=4",
        "compact 4 --physical",
        "get j --rev=4 -w json",
        "get j --rev=3",
        "compact 5",
        "get j --rev=5",
        "get j --rev=4",
        "compact 6 --physical",
        "compact 6",
        "get k -w json",
        "get k --rev=6",
        "get k --rev=5",
        "put k 4",
        "get k --rev=7 -w fields",
        "compact 0",
    ]
    .map(step);
    let t = run_differential(&steps);
    assert_eq!(t.stdout(5), "compacted revision 3\n");
    t.assert_stderr_contains(6, "required revision has been compacted");
    t.assert_stderr_contains(7, "required revision has been compacted");
    t.assert_stderr_contains(8, "required revision is a future revision");
    t.assert_stderr_contains(9, "required revision is a future revision");
    assert_eq!(t.stdout(10), "k\n2\n");
    t.assert_stderr_contains(11, "required revision has been compacted");
    assert_eq!(t.stdout(14), "compacted revision 4\n");
}

#[test]
fn compaction_at_zero_on_a_fresh_store_matches_reference() {
    let steps = [
        "compact 0",
        "compact 0",
        "put k 1",
        "compact 0",
        "compact 1",
        "get k -w json",
    ]
    .map(step);
    let t = run_differential(&steps);
    // Once: etcd starts from "never compacted", below revision 0.
    assert_eq!(t.stdout(0), "compacted revision 0\n");
    t.assert_stderr_contains(1, "required revision has been compacted");
    assert_eq!(t.stdout(4), "compacted revision 1\n");
}
