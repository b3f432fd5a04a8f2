//! Lease, watch, cluster and maintenance commands: against the reference
//! etcd, which serves them all, and against our server, whose answers
//! (`UNIMPLEMENTED` for services it lacks) both etcdctls must report alike.

use retcd_tests::{Flavour, step};

use crate::harness::{compare, compare_reads};

#[test]
fn lease_commands_match_on_reference() {
    let steps = [
        step("lease grant 100"),
        step("lease grant 100 -w json"),
        step("lease grant 100 -w fields"),
        step("lease grant 100 -w table"),
        step("lease list"),
        step("lease list -w json"),
        step("lease timetolive 1234"),
        step("lease timetolive 1234 -w json"),
        step("lease revoke 1234"),
        step("lease keep-alive --once 1234"),
        step("lease keep-alive 1234"),
    ];
    compare(Flavour::Reference, &steps);
}

#[test]
fn cluster_commands_match_on_reference() {
    let steps = [
        step("member list"),
        step("member list -w json"),
        step("member list -w fields"),
        step("member list -w table"),
        step("endpoint health"),
        step("endpoint health -w json"),
        step("endpoint health -w table"),
        step("alarm list"),
        step("alarm list -w json"),
        step("alarm list -w table"),
        step("alarm disarm"),
        step("member remove zz"),
    ];
    compare(Flavour::Reference, &steps);
}

/// `endpoint status` shows the backend's size, which differs between two
/// servers (and grows as etcd commits), so both etcdctls read one server.
#[test]
fn endpoint_status_matches_on_one_reference_server() {
    compare_reads(
        Flavour::Reference,
        &[],
        &[
            step("endpoint status -w table"),
            step("endpoint status -w protobuf"),
        ],
    );
}

#[test]
fn lease_member_and_alarm_commands_on_our_server_print_alike() {
    let steps = [
        step("lease grant 10"),
        step("lease list"),
        step("lease revoke 1234"),
        step("lease keep-alive 1234"),
        step("member list"),
        step("alarm list"),
    ];
    compare(Flavour::Ours, &steps);
}
