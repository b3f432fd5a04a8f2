//! The user's quick-start (the seed), verbatim, then the compaction it ends
//! with made to succeed.

use retcd_tests::{run_differential, step};

#[test]
fn seed_quick_start_matches_reference() {
    let steps = [
        step("put foo bar"),
        step("get foo"),
        step("get foo --print-value-only"),
        step("put foo bar_new"),
        step("put foo1 bar1"),
        step("get --prefix --rev=4 foo"),
        // Revision 4 is the newest, so compacting 5 is a future revision.
        step("compact 5"),
        step("put foo2 bar2"),
        step("compact 5"),
        step("get --prefix --rev=4 foo"),
        step("get --prefix --rev=5 foo"),
        step("get --prefix foo"),
    ];
    let t = run_differential(&steps);
    assert_eq!(t.stdout(0), "OK\n");
    assert_eq!(t.stdout(1), "foo\nbar\n");
    assert_eq!(t.stdout(2), "bar\n");
    assert_eq!(t.stdout(5), "foo\nbar_new\nfoo1\nbar1\n");
    assert_eq!(t.output(6).code, 1);
    assert_eq!(t.stdout(8), "compacted revision 5\n");
    t.assert_stderr_contains(
        9,
        "Error: etcdserver: mvcc: required revision has been compacted",
    );
    assert_eq!(t.stdout(10), "foo\nbar_new\nfoo1\nbar1\nfoo2\nbar2\n");
}
