//! `put`, `get`, `del`, `txn`, `compaction`, `version` against our server,
//! in every output format.

use retcd_tests::{Flavour, step};

use crate::harness::{compare, compare_reads};

#[test]
fn put_get_del_in_every_format() {
    let mut steps = vec![
        step("put foo bar"),
        step("put foo1 bar1 --prev-kv"),
        step("put foo bar_new --prev-kv"),
        step("put k1 v1"),
        step("put k2 v2"),
        step("put k3 v3"),
        step("put -- dash -value"),
        step("put stdin").stdin("from stdin\n"),
        step("put bin").stdin(b"\xff\x00\n\"q\"".to_vec()),
    ];
    // Protobuf output holds the server's ids, which masking cannot reach:
    // see `protobuf_reads_match_on_one_server`.
    for format in ["simple", "json", "fields", "table"] {
        steps.push(step(&format!("get foo -w {format}")));
        steps.push(step(&format!("get k --prefix --limit 2 -w {format}")));
        steps.push(step(&format!("put foo again --prev-kv -w {format}")));
        steps.push(step(&format!("del k3 --prev-kv -w {format}")));
        steps.push(step(&format!("get nothing -w {format}")));
        steps.push(step(&format!("get bin -w {format}")));
    }
    steps.extend([
        step("get k --prefix --sort-by=VALUE --order=DESCEND"),
        step("get k --from-key --keys-only"),
        step("get k1 k3 --hex"),
        step("get foo --print-value-only"),
        step("get --prefix --rev=4 foo"),
        step("get foo --consistency=s -w json"),
        step("get '' --prefix --keys-only"),
        step("del k --prefix"),
        step("del a --from-key -w json"),
        step("get '' --from-key"),
    ]);
    let out = compare(Flavour::Ours, &steps);
    assert_eq!(out[0].stdout, "OK\n");
}

#[test]
fn txn_from_stdin_and_interactive() {
    let txn = "mod(\"k1\") > \"0\"\n\nput k1 new\nget k2\n\nput kk x\n\n";
    let failing = "value(\"k1\") = \"zz\"\n\nput k1 new\n\nput kk \"x y\"\ndel k2 --prev-kv\nget k --prefix --limit=1\n\n";
    let mut steps = vec![step("put k1 v1"), step("put k2 v2")];
    for format in ["simple", "json", "fields"] {
        steps.push(step(&format!("txn -w {format}")).stdin(txn));
        steps.push(step(&format!("txn -w {format}")).stdin(failing));
    }
    steps.extend([
        step("txn -i").stdin(txn),
        step("txn -w table").stdin(txn),
        step("txn").stdin("mod(\"k1\") > \"0\"\n\nput k1 new\n"),
        step("txn").stdin("ver(\"k1\") = \"x\"\n\n\n\n"),
        step("txn").stdin("bogus\n\n\n\n"),
    ]);
    compare(Flavour::Ours, &steps);
}

#[test]
fn compaction_and_server_errors() {
    let steps = [
        step("put a 1"),
        step("put a 2"),
        step("put a 3"),
        step("compact 10"),
        step("compaction 3"),
        step("compaction 3 --physical"),
        step("get a --rev=2"),
        step("get a --rev=100 -w json"),
        step("compaction x"),
        step("compaction"),
        step("version"),
        step("version -w json"),
    ];
    let out = compare(Flavour::Ours, &steps);
    assert_eq!(out[4].stdout, "compacted revision 3\n");
}

#[test]
fn protobuf_reads_match_on_one_server() {
    let setup = [
        step("put foo bar"),
        step("put k1 v1"),
        step("put bin").stdin(b"\xff\x00\n".to_vec()),
        step("del k1"),
    ];
    let reads = [
        step("get foo -w protobuf"),
        step("get '' --from-key -w protobuf"),
        step("get bin -w protobuf --hex"),
        step("get nothing -w protobuf"),
        step("get k1 --rev=3 -w protobuf"),
        step("txn -w protobuf").stdin("\nget foo\n\n\n"),
    ];
    compare_reads(Flavour::Ours, &setup, &reads);
}
