//! Debian's etcdctl against the reference etcd and ours: lease grant,
//! revoke, timetolive (with keys), list, keep-alive --once, put --lease and
//! get must print the same after masking. Remaining TTLs tick, so they may
//! differ by one second between the two servers and are compared with that
//! tolerance.

use std::sync::LazyLock;

use regex::Regex;
use retcd_tests::{CtlOutput, Server, Step, mask, step};

/// A remaining TTL as etcdctl prints it (simple and json output).
static REMAINING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"remaining\((\d+)s\)|"ttl":(\d+)"#).expect("valid pattern"));

/// The attached-keys list of `lease timetolive --keys`; etcd builds it from
/// a Go map, so its order varies from run to run and is compared sorted.
static ATTACHED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"attached keys\(\[([^\]]*)\]\)").expect("valid pattern"));

/// `text` with every attached-keys list sorted.
fn sort_attached(text: &str) -> String {
    ATTACHED
        .replace_all(text, |c: &regex::Captures<'_>| {
            let mut keys: Vec<&str> = c[1].split(' ').collect();
            keys.sort_unstable();
            format!("attached keys([{}])", keys.join(" "))
        })
        .into_owned()
}

/// The lease ids the script uses, granted through the gateway with these ids
/// on both servers (etcdctl cannot choose an id).
const LEASE_A: i64 = 0x1234;
/// A second fixed lease id.
const LEASE_B: i64 = 0x1235;

/// The remaining TTLs in `text`, and `text` with them replaced.
fn split_remaining(text: &str) -> (Vec<i64>, String) {
    let mut found = Vec::new();
    let replaced = REMAINING.replace_all(text, |c: &regex::Captures<'_>| {
        let n = c.get(1).or(c.get(2)).expect("a group matched");
        found.push(n.as_str().parse::<i64>().expect("digits"));
        c[0].replace(n.as_str(), "<remaining>")
    });
    (found, replaced.into_owned())
}

/// Masks an output and takes its remaining TTLs out.
fn normalize(out: CtlOutput) -> (Vec<i64>, CtlOutput) {
    let (found, stdout) = split_remaining(&sort_attached(&mask(&out.stdout)));
    let output = CtlOutput {
        stdout,
        stderr: mask(&out.stderr),
        code: out.code,
    };
    (found, output)
}

/// Runs every step on both servers; outputs must be equal after masking,
/// remaining TTLs within one second of each other. Returns the reference's
/// normalized outputs.
fn compare(reference: &Server, ours: &Server, steps: &[Step]) -> Vec<CtlOutput> {
    let mut outputs = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let (want_ttls, want) = normalize(s.run(reference));
        let (got_ttls, got) = normalize(s.run(ours));
        eprintln!("step {i}: {}\n{want:?}", s.display());
        assert_eq!(got, want, "step {i}: {}", s.display());
        assert_eq!(got_ttls.len(), want_ttls.len(), "step {i}");
        for (g, w) in got_ttls.iter().zip(&want_ttls) {
            assert!(
                (g - w).abs() <= 1,
                "step {i}: remaining {g} vs reference {w}"
            );
        }
        outputs.push(want);
    }
    outputs
}

/// Grants lease `id` with `ttl` through the gateway.
fn grant_fixed(server: &Server, id: i64, ttl: i64) {
    let body = format!(r#"{{"ID": {id}, "TTL": {ttl}}}"#);
    let response = server.http_post("/v3/lease/grant", &body);
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn lease_commands_match_reference() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        grant_fixed(server, LEASE_A, 100);
        grant_fixed(server, LEASE_B, 3000);
    }
    let steps = [
        step("lease grant 10"),
        step("lease grant 1"),
        step("lease grant 9000000001"),
        step("lease timetolive 1234"),
        step("put --lease=1234 foo bar"),
        step("put --lease=1234 foo2 bar2"),
        step("put --lease=1235 other x"),
        step("put --lease=9999 foo3 bar3"),
        step("lease timetolive --keys 1234"),
        step("lease timetolive --keys 1235 -w json"),
        step("lease timetolive 9999"),
        step("lease timetolive 9999 -w json"),
        step("get foo -w json"),
        step("get --prefix foo"),
        step("lease keep-alive --once 1234"),
        step("lease keep-alive --once 9999"),
        step("put foo bar_new --ignore-lease"),
        step("put foo2 bar2_new"),
        step("lease timetolive --keys 1234"),
        step("get foo -w fields"),
        step("lease revoke 1234"),
        step("get --prefix foo"),
        step("get --prefix o"),
        step("lease revoke 1234"),
        step("lease timetolive 1234"),
        step("lease keep-alive --once 1234"),
        step("put foo x --ignore-lease"),
    ];
    let out = compare(&reference, &ours, &steps);
    assert_eq!(out[0].stdout, "lease <lease> granted with TTL(10s)\n");
    assert_eq!(out[1].stdout, "lease <lease> granted with TTL(2s)\n");
    assert!(out[2].stderr.contains("etcdserver: too large lease TTL"));
    assert_eq!(
        out[8].stdout,
        "lease <lease> granted with TTL(100s), remaining(<remaining>s), attached keys([foo foo2])\n"
    );
    assert_eq!(out[10].stdout, "lease <lease> already expired\n");
    assert_eq!(out[14].stdout, "lease <lease> keepalived with TTL(100)\n");
    assert_eq!(
        out[18].stdout,
        "lease <lease> granted with TTL(100s), remaining(<remaining>s), attached keys([foo])\n"
    );
    assert_eq!(out[20].stdout, "lease <lease> revoked\n");
    assert_eq!(out[21].stdout, "foo2\nbar2_new\n");
    assert!(
        out[23]
            .stderr
            .contains("etcdserver: requested lease not found")
    );
}

#[test]
fn lease_list_matches_reference() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        grant_fixed(server, LEASE_A, 100);
        grant_fixed(server, LEASE_B, 3000);
    }
    let steps = [
        step("lease list"),
        step("lease revoke 1235"),
        step("lease list"),
        step("lease list -w json"),
        step("lease revoke 1234"),
        step("lease list"),
    ];
    let out = compare(&reference, &ours, &steps);
    assert_eq!(
        out[0].stdout,
        "found 2 leases\n0000000000001234\n0000000000001235\n"
    );
    assert_eq!(out[2].stdout, "found 1 leases\n0000000000001234\n");
    assert_eq!(out[5].stdout, "found 0 leases\n");
}
