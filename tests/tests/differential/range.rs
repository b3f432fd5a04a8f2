//! Range reads through `etcdctl get`: key ranges, limits, every sort target
//! and order, keys-only, historical revisions, and the simple/json/fields
//! printers. etcdctl 3.4 has no `--count-only` nor min/max mod/create
//! revision flags; the gateway tests cover those fields.

use retcd_tests::{Step, run_differential, step};

/// Writes keys with distinct versions, create and mod revisions, so every
/// sort target orders them differently. Revisions 2..=11.
fn fixture() -> Vec<Step> {
    [
        "put a 3",   // 2
        "put b 1",   // 3
        "put c 2",   // 4
        "put a 1",   // 5: a version 2
        "put d 0",   // 6
        "put b 5",   // 7
        "put b 4",   // 8: b version 3
        "put e/1 x", // 9
        "put e/2 y", // 10
        "put f z",   // 11
    ]
    .into_iter()
    .map(step)
    .collect()
}

/// The fixture followed by `reads`.
fn script(reads: &[&str]) -> Vec<Step> {
    let mut steps = fixture();
    steps.extend(reads.iter().map(|r| step(r)));
    steps
}

#[test]
fn key_ranges_and_printers_match_reference() {
    let reads = [
        "get a",
        "get a -w json",
        "get a -w fields",
        "get missing",
        "get missing -w json",
        "get missing -w fields",
        "get e --prefix",
        "get e/ --prefix -w json",
        "get a d",
        "get a d -w fields",
        "get b --from-key",
        "get '' --from-key --keys-only",
        "get '' --prefix --keys-only",
        "get e/1 e/2 -w json",
        "get a --from-key --print-value-only",
        "get a --from-key --keys-only -w json",
        "get a --from-key --hex",
        "get a --from-key --consistency=s",
        "get a --from-key --consistency=l -w json",
    ];
    let t = run_differential(&script(&reads));
    let base = fixture().len();
    assert_eq!(t.stdout(base), "a\n1\n");
    assert_eq!(t.stdout(base + 6), "e/1\nx\ne/2\ny\n");
    assert_eq!(t.stdout(base + 8), "a\n1\nb\n4\nc\n2\n");
    assert_eq!(
        t.stdout(base + 10),
        "b\n4\nc\n2\nd\n0\ne/1\nx\ne/2\ny\nf\nz\n"
    );
}

#[test]
fn limits_and_sorting_match_reference() {
    let mut reads = vec![
        "get a --from-key --limit 2".to_string(),
        "get a --from-key --limit 2 -w json".to_string(),
        "get a --from-key --limit 2 -w fields".to_string(),
        "get a --from-key --limit 100 -w json".to_string(),
        "get e --prefix --limit 1 -w json".to_string(),
        "get a --from-key --order=DESCEND".to_string(),
        "get a --from-key --order=ASCEND --limit 3 -w json".to_string(),
        "get a --from-key --sort-by=VALUE".to_string(),
    ];
    for target in ["CREATE", "KEY", "MODIFY", "VALUE", "VERSION"] {
        for order in ["ASCEND", "DESCEND"] {
            reads.push(format!(
                "get a --from-key --sort-by={target} --order={order}"
            ));
            reads.push(format!(
                "get a --from-key --sort-by={target} --order={order} --limit 3 -w json"
            ));
            reads.push(format!(
                "get a e --sort-by={target} --order={order} --keys-only --limit 2"
            ));
        }
    }
    let reads: Vec<&str> = reads.iter().map(String::as_str).collect();
    let t = run_differential(&script(&reads));
    let base = fixture().len();
    assert_eq!(t.stdout(base), "a\n1\nb\n4\n");
    assert!(
        t.stdout(base + 1).contains(r#""more":true,"count":7"#),
        "{}",
        t.stdout(base + 1)
    );
}

#[test]
fn historical_revisions_and_filters_match_reference() {
    let reads = [
        "get a --rev=2",
        "get a --rev=4 -w json",
        "get b --rev=7 -w fields",
        "get a --from-key --rev=6",
        "get e --prefix --rev=9",
        "get a --from-key --rev=0 --keys-only",
        "get a --from-key --rev=11 --limit 1 -w json",
        "get a --from-key --rev=1 -w json",
        "get a --from-key --rev=8 --keys-only",
        "get a --from-key --rev=7 --sort-by=MODIFY --order=DESCEND --limit 2",
        "get a --from-key --rev=5 --sort-by=VERSION --order=DESCEND -w fields",
    ];
    let t = run_differential(&script(&reads));
    let base = fixture().len();
    assert_eq!(t.stdout(base), "a\n3\n");
    assert_eq!(
        t.stdout(base + 2)
            .lines()
            .filter(|l| l.contains("\"Value\" : \"5\""))
            .count(),
        1
    );
    assert_eq!(t.stdout(base + 8), "a\n\nb\n\nc\n\nd\n\n");
}
