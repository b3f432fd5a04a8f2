//! Argument handling that never needs a server answer: usage errors, help,
//! flag spellings, environment variables, unreachable endpoints and
//! fail-over.

use retcd_tests::{Flavour, Server, step};

use crate::harness::{compare, compare_on};

#[test]
fn bad_arguments_and_help_match() {
    let steps = [
        step("get"),
        step("get --foo"),
        step("get -x"),
        step("get a --limit"),
        step("get a --limit=abc"),
        step("get a --prefix=xx"),
        step("get a -w"),
        step("get a -w yaml"),
        step("get a b --prefix"),
        step("get a --prefix --from-key"),
        step("get a --order=UP"),
        step("get a --sort-by=NAME"),
        step("get a --consistency=x"),
        step("get a -w json --print-value-only"),
        step("put"),
        step("put a"),
        step("put a b --lease=zz"),
        step("put a b --ignore-value"),
        step("del"),
        step("foo"),
        step("lease"),
        step("lease foo"),
        step("lease grant"),
        step("lease grant abc"),
        step("lease timetolive"),
        step("--dial-timeout=x get a"),
        step("-h"),
        step("get -h"),
        step("put --help"),
        step("txn -h"),
        step("watch -h"),
        step("lease grant -h"),
        step("del -h"),
        step("compaction -h"),
        step("put a b -wjson"),
        step("put a b -w=fields"),
        step("get a --prefix=false -w json"),
    ];
    compare(Flavour::Ours, &steps);
}

#[test]
fn environment_variables_match() {
    let server = Server::ours();
    let url = server.client_url();
    compare_on(&url, &url, &[step("put a b")], &[]);
    for (name, value) in [
        ("ETCDCTL_WRITE_OUT", "json"),
        ("ETCDCTL_HEX", "true"),
        ("ETCDCTL_DIAL_TIMEOUT", "not-a-duration"),
    ] {
        compare_on(&url, &url, &[step("get a")], &[(name, value)]);
    }
}

#[test]
fn unreachable_endpoints_time_out_and_fail_over() {
    let server = Server::ours();
    let down = "http://127.0.0.1:1";
    compare_on(down, down, &[step("--command-timeout=1s get a")], &[]);
    compare_on(down, down, &[step("--command-timeout=1s put a b")], &[]);
    let both = format!("{down},{}", server.client_url());
    compare_on(&both, &both, &[step("put a b"), step("get a")], &[]);
}
