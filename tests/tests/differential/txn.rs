//! Transactions through `etcdctl txn`, read from stdin as etcdctl expects:
//! compares, a blank line, success ops, a blank line, failure ops, a blank
//! line. Every compare target (value, mod, create, version) with every result
//! (=, !=, <, >), on present and missing keys, in simple, json and fields.

use retcd_tests::{Step, run_differential, step};

/// `etcdctl txn [flags]` with the three sections on stdin.
fn txn(flags: &str, compares: &[&str], success: &[&str], failure: &[&str]) -> Step {
    let mut input = String::new();
    for section in [compares, success, failure] {
        for line in section {
            input.push_str(line);
            input.push('\n');
        }
        input.push('\n');
    }
    step(&format!("txn {flags}")).stdin(input)
}

/// a = "1" (create 2, mod 2, version 1); b = "3" (create 3, mod 4, version 2).
fn fixture() -> Vec<Step> {
    ["put a 1", "put b 2", "put b 3", "put c x"]
        .map(step)
        .to_vec()
}

#[test]
fn every_compare_target_and_result_matches_reference() {
    let compares = [
        r#"value("a") = "1""#,
        r#"value("a") != "1""#,
        r#"value("a") < "2""#,
        r#"value("a") > "0""#,
        r#"value("a") > "1""#,
        r#"value("zz") = """#,
        r#"value("zz") != "1""#,
        r#"mod("b") = "4""#,
        r#"mod("b") != "4""#,
        r#"mod("b") < "5""#,
        r#"mod("b") > "4""#,
        r#"mod("zz") = "0""#,
        r#"mod("zz") < "1""#,
        r#"create("b") = "3""#,
        r#"create("b") != "3""#,
        r#"create("b") < "3""#,
        r#"create("b") > "2""#,
        r#"create("zz") = "0""#,
        r#"version("b") = "2""#,
        r#"version("b") != "2""#,
        r#"version("b") < "3""#,
        r#"version("b") > "2""#,
        r#"version("zz") = "0""#,
        r#"version("zz") > "0""#,
    ];
    let mut steps = fixture();
    for compare in compares {
        steps.push(txn("", &[compare], &["get a"], &["get b"]));
    }
    for compare in compares {
        steps.push(txn("-w json", &[compare], &["get a"], &["get b"]));
    }
    let t = run_differential(&steps);
    let base = fixture().len();
    assert_eq!(t.stdout(base), "SUCCESS\n\na\n1\n");
    assert_eq!(t.stdout(base + 1), "FAILURE\n\nb\n3\n");
}

#[test]
fn writes_multiple_compares_and_printers_match_reference() {
    let mut steps = fixture();
    steps.extend([
        txn(
            "",
            &[r#"value("a") = "1""#, r#"version("b") = "2""#],
            &["put a 2", "del c", "get a"],
            &["put x 1"],
        ),
        step("get '' --from-key"),
        txn(
            "",
            &[r#"value("a") = "1""#, r#"version("b") = "2""#],
            &["put y 1"],
            &["put x 1", "get x", "del b --prev-kv"],
        ),
        step("get '' --from-key -w json"),
        txn(
            "-w json",
            &[r#"create("x") > "0""#],
            &["get x", "put x 2 --prev-kv", "get x", "del zz --prefix"],
            &[],
        ),
        txn(
            "-w json",
            &[r#"mod("x") < "0""#],
            &[],
            &["get a --from-key --limit 2", "put n 1"],
        ),
        txn("-w fields", &[r#"value("x") = "2""#], &["put x 3"], &[]),
        txn(
            "-w fields",
            &[r#"value("x") = "2""#],
            &["put x 4"],
            &["get x"],
        ),
        txn("", &[], &["put p 1", "put q 2", "del missing"], &[]),
        txn("-w json", &[], &[], &[]),
        txn("", &[r#"value("zz") = "nope""#], &[], &[]),
        txn(
            "",
            &[],
            &[
                "get p q",
                "get p --prefix --keys-only",
                "get a --from-key --keys-only --limit 1 --sort-by=MODIFY --order=DESCEND",
            ],
            &[],
        ),
        step("get '' --from-key -w json"),
    ]);
    let t = run_differential(&steps);
    let base = fixture().len();
    assert_eq!(t.stdout(base), "SUCCESS\n\nOK\n\n1\n\na\n2\n");
    assert_eq!(t.stdout(base + 1), "a\n2\nb\n3\n");
}

#[test]
fn a_compare_with_an_empty_key_is_refused_like_reference() {
    let mut steps = fixture();
    steps.push(txn("", &[r#"value("") = "x""#], &["put a 2"], &["put a 3"]));
    steps.push(txn("-w json", &[r#"version("") = "0""#], &[], &["get a"]));
    steps.push(step("get a"));
    let t = run_differential(&steps);
    t.assert_stderr_contains(4, "Error: etcdserver: key is not provided");
    // Neither branch ran.
    assert_eq!(t.stdout(6), "a\n1\n");
}
