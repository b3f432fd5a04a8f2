//! Deletes through `etcdctl del`: single keys, ranges, prefixes, from-key,
//! previous key-values, and the printers; reads afterwards show the result.

use retcd_tests::{run_differential, step};

#[test]
fn deletes_match_reference() {
    let steps = [
        "put a 1",
        "put b 2",
        "put c 3",
        "put d/1 4",
        "put d/2 5",
        "put d2 6",
        "put e 7",
        "put f 8",
        "put g 9",
        "del missing",
        "del missing -w json",
        "del a",
        "get a --rev=2",
        "get a",
        "del b --prev-kv",
        "del d/ --prefix -w json",
        "get d --prefix",
        "put d/3 10",
        "del d --prefix --prev-kv",
        "del d --prefix --prev-kv -w json",
        "del e f --prev-kv -w fields",
        "get '' --from-key --keys-only",
        "put h 11",
        "del f --from-key --prev-kv -w json",
        "get '' --from-key",
        "del c --prev-kv -w fields",
        "get '' --from-key -w json",
        "del '' --from-key",
        "put z 12",
        "del '' --prefix",
        "get '' --prefix -w json",
    ]
    .map(step);
    let t = run_differential(&steps);
    assert_eq!(t.stdout(9), "0\n");
    assert_eq!(t.stdout(11), "1\n");
    assert_eq!(t.stdout(14), "1\nb\n2\n");
    assert!(t.stdout(15).contains(r#""deleted":2"#), "{}", t.stdout(15));
    assert_eq!(t.stdout(21), "c\n\nf\n\ng\n\n");
}
