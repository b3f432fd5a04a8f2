//! Differential: `--quota-backend-bytes` and the NOSPACE alarm.
//!
//! Both servers start with a 1 MiB quota and take 100 KiB puts until one is
//! refused. How many fit differs (bbolt's and redb's files grow differently),
//! so only "both refuse within a bound" is asserted; everything after the
//! first refusal must match step by step: the error texts, `alarm list`, what
//! still works (get, delete, delete-only and get-only txns, compaction) and
//! what is refused (put, txn put, lease grant), the gateway's alarm list,
//! `endpoint status`'s errors, `alarm disarm` and the re-raise that follows
//! while the backend is still too big, and the alarm after a restart.
//!
//! A last test checks that in a cluster of ours the alarm one member raises
//! is applied, refused against and disarmed on every member.
//!
//! Member ids differ between the two servers (different member names) and
//! appear in decimal in alarm outputs, so they are masked here on top of the
//! harness's masking.

use std::sync::LazyLock;

use regex::Regex;
use retcd_tests::cluster::Cluster;
use retcd_tests::{CtlOutput, Flavour, Server, Step, etcdctl, mask, step};

/// The quota both servers run with.
const QUOTA_BYTES: u64 = 1 << 20;
/// Size of each value put to fill the backend.
const VALUE_BYTES: usize = 100 * 1024;
/// Most puts either server may take before it must refuse one.
const MAX_FILL_PUTS: usize = 40;
/// etcdctl's line for a refused write.
const NO_SPACE: &str = "Error: etcdserver: mvcc: database space exceeded";

/// Decimal member ids in alarm outputs: `memberID:N` and `"memberID":N`.
static MEMBER_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"("?memberID"?:"?)\d+"#).expect("valid pattern"));

/// The harness's masking plus decimal member ids.
fn masked(output: CtlOutput) -> CtlOutput {
    let m = |text: &str| MEMBER_ID.replace_all(&mask(text), "$1<id>").into_owned();
    CtlOutput {
        stdout: m(&output.stdout),
        stderr: m(&output.stderr),
        code: output.code,
    }
}

/// Runs `steps` on both servers; panics listing every step whose masked
/// output differs. Returns the reference's masked outputs.
fn compare(reference: &Server, ours: &Server, steps: &[Step]) -> Vec<CtlOutput> {
    let mut mismatches = String::new();
    let mut outputs = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let want = masked(s.run(reference));
        let got = masked(s.run(ours));
        assert!(
            matches!(want.code, 0 | 1) && !want.stderr.contains("panic:"),
            "script error at `{}`: {want:#?}",
            s.display()
        );
        if want != got {
            mismatches.push_str(&format!(
                "step {i}: {}\n--- reference\n{want:#?}\n--- ours\n{got:#?}\n",
                s.display()
            ));
        }
        outputs.push(want);
    }
    assert!(
        mismatches.is_empty(),
        "ours differs from the reference:\n{mismatches}"
    );
    outputs
}

/// Puts 100 KiB values into `server` until one is refused; returns how many
/// were accepted.
fn fill(server: &Server) -> usize {
    let value = "v".repeat(VALUE_BYTES);
    for n in 0..MAX_FILL_PUTS {
        let out = server.etcdctl(&["put", &format!("key{n}"), &value]);
        if out.code != 0 {
            assert_eq!(out.code, 1, "{} put {n}: {out:#?}", server.name());
            assert!(
                out.stderr.contains(NO_SPACE),
                "{} put {n} failed otherwise: {out:#?}",
                server.name()
            );
            return n;
        }
    }
    panic!(
        "{} accepted {MAX_FILL_PUTS} puts of {VALUE_BYTES} bytes under a {QUOTA_BYTES}-byte quota",
        server.name()
    );
}

/// The `errors` of `endpoint status -w json`, member ids masked.
fn status_errors(server: &Server) -> Vec<String> {
    let out = server.etcdctl(&["endpoint", "status", "-w", "json"]);
    out.assert_success();
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", out.stdout));
    parsed[0]["Status"]["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    MEMBER_ID
                        .replace_all(e.as_str().unwrap(), "$1<id>")
                        .into_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A txn read from stdin: no compares, `ops` in the success branch.
fn txn(ops: &[&str]) -> Step {
    step("txn").stdin(format!("\n{}\n\n\n", ops.join("\n")))
}

#[test]
fn nospace_alarm_matches_reference() {
    let quota = QUOTA_BYTES.to_string();
    let (mut reference, mut ours) = Server::pair(&["--quota-backend-bytes", &quota]);
    let (filled_reference, filled_ours) = (fill(&reference), fill(&ours));
    eprintln!("puts accepted: reference {filled_reference}, ours {filled_ours}");
    assert!(filled_ours > 0 && filled_reference > 0);

    let steps = [
        step("alarm list"),
        step("alarm list -w json"),
        step("get key1 --keys-only"),
        step("del key1"),
        step("put small x"),
        txn(&["put t x"]),
        txn(&["del key2", "put t x"]),
        txn(&["get key2 --keys-only"]),
        txn(&["del key2"]),
        step("lease grant 10"),
        step("compact 2"),
        step("alarm list"),
    ];
    let out = compare(&reference, &ours, &steps);
    assert_eq!(out[0].stdout, "memberID:<id> alarm:NOSPACE \n");
    assert_eq!(
        out[1].stdout,
        "{\"alarms\":[{\"memberID\":<id>,\"alarm\":1}]}\n"
    );
    assert_eq!(out[3].stdout, "1\n", "delete works under the alarm");
    for refused in [4, 5, 6] {
        assert!(
            out[refused].stderr.contains(NO_SPACE),
            "{:#?}",
            out[refused]
        );
    }
    assert!(out[7].stdout.starts_with("SUCCESS"), "{:#?}", out[7]);
    assert_eq!(out[8].stdout, "SUCCESS\n\n1\n", "a delete-only txn applies");
    assert!(
        out[9]
            .stderr
            .contains("failed to grant lease (etcdserver: mvcc: database space exceeded)"),
        "{:#?}",
        out[9]
    );

    // The gateway and endpoint status show the same alarm.
    let gateway = |s: &Server| {
        let body = s.http_post("/v3/maintenance/alarm", "{}").text();
        MEMBER_ID.replace_all(&body, "$1<id>").into_owned()
    };
    assert_eq!(gateway(&ours), gateway(&reference));
    assert_eq!(
        gateway(&ours),
        r#"{"alarms":[{"memberID":"<id>","alarm":"NOSPACE"}]}"#
    );
    assert_eq!(status_errors(&ours), status_errors(&reference));
    assert_eq!(status_errors(&ours), ["memberID:<id> alarm:NOSPACE "]);

    // Disarming answers the alarm; the backend is still too full for
    // another value of the size that was refused (deletes free pages but do
    // not shrink the file), so that write raises it again.
    let big_put = format!("put big {}", "v".repeat(VALUE_BYTES));
    let steps = [
        step("alarm disarm"),
        step("alarm list"),
        step("alarm disarm -w json"),
        step(&big_put),
        step("alarm list"),
    ];
    let out = compare(&reference, &ours, &steps);
    assert_eq!(out[0].stdout, "memberID:<id> alarm:NOSPACE \n");
    assert_eq!(out[1].stdout, "");
    assert_eq!(out[2].stdout, "{}\n");
    assert!(out[3].stderr.contains(NO_SPACE), "{:#?}", out[3]);
    assert_eq!(out[4].stdout, "memberID:<id> alarm:NOSPACE \n");

    // The alarm is kept across a restart (kill -9: raft replays it if the
    // backend had not made it durable yet).
    reference.restart();
    ours.restart();
    let steps = [
        step("alarm list"),
        step("put small x"),
        step("get key2 --keys-only"),
    ];
    let out = compare(&reference, &ours, &steps);
    assert_eq!(out[0].stdout, "memberID:<id> alarm:NOSPACE \n");
    assert!(out[1].stderr.contains(NO_SPACE), "{:#?}", out[1]);
    assert_eq!(status_errors(&ours), status_errors(&reference));
}

/// `endpoint status`'s dbSize, in bytes.
fn db_size(server: &Server) -> u64 {
    let out = server.etcdctl(&["endpoint", "status", "-w", "json"]);
    out.assert_success();
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", out.stdout));
    parsed[0]["Status"]["dbSize"]
        .as_u64()
        .unwrap_or_else(|| panic!("no dbSize in {}", out.stdout))
}

/// The server's current revision, from a get's header.
fn revision(server: &Server) -> i64 {
    let out = server.etcdctl(&["get", "any", "-w", "json"]);
    out.assert_success();
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("get is not JSON ({e}): {}", out.stdout));
    parsed["header"]["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no revision in {}", out.stdout))
}

/// etcd's documented way out of NOSPACE: free the space (delete, compact),
/// defragment so the file shrinks below the quota, disarm; writes work again.
#[test]
fn nospace_recovery_by_compact_defrag_disarm_matches_reference() {
    let quota = QUOTA_BYTES.to_string();
    let (reference, ours) = Server::pair(&["--quota-backend-bytes", &quota]);
    for server in [&reference, &ours] {
        fill(server);
        let full = db_size(server);
        assert!(full >= QUOTA_BYTES / 2, "{}: dbSize {full}", server.name());
        let deleted = server.etcdctl(&["del", "key", "--prefix"]);
        deleted.assert_success();
        let revision = revision(server);
        let compacted = server.etcdctl(&["compact", &revision.to_string(), "--physical"]);
        assert_eq!(compacted.stdout, format!("compacted revision {revision}\n"));
        // Compacting alone gives no space back: a value like the one
        // refused is refused again.
        let refused = server.etcdctl(&["alarm", "disarm"]);
        refused.assert_success();
        let put = server.etcdctl(&["put", "big", &"v".repeat(VALUE_BYTES)]);
        assert!(put.stderr.contains(NO_SPACE), "{}: {put:#?}", server.name());

        let defrag = server.etcdctl(&["defrag"]);
        defrag.assert_success();
        let metrics = server.http_get("/metrics").text();
        assert!(
            metrics
                .lines()
                .any(|l| l == "etcd_disk_backend_defrag_duration_seconds_count 1"),
            "{}: one defragmentation timed in /metrics",
            server.name()
        );
        let shrunk = db_size(server);
        assert!(
            shrunk * 2 < full,
            "{}: dbSize {full} before defrag, {shrunk} after",
            server.name()
        );
    }
    let steps = [
        step("alarm list"),
        step("alarm disarm"),
        step("alarm list"),
        step("put small y"),
        step(&format!("put big {}", "v".repeat(VALUE_BYTES))),
        step("get small --print-value-only"),
        step("alarm list"),
    ];
    let out = compare(&reference, &ours, &steps);
    assert_eq!(out[0].stdout, "memberID:<id> alarm:NOSPACE \n");
    assert_eq!(out[1].stdout, "memberID:<id> alarm:NOSPACE \n");
    assert_eq!(out[2].stdout, "");
    assert_eq!(out[3].stdout, "OK\n");
    assert_eq!(out[4].stdout, "OK\n");
    assert_eq!(out[5].stdout, "y\n");
    assert_eq!(out[6].stdout, "");
}

#[test]
fn negative_quota_is_accepted_and_raises_no_alarm() {
    let (reference, ours) = Server::pair(&["--quota-backend-bytes", "-1"]);
    let value = "v".repeat(VALUE_BYTES);
    let mut steps: Vec<Step> = (0..15)
        .map(|n| Step::from_args(&["put", &format!("key{n}"), &value]))
        .collect();
    steps.push(step("alarm list"));
    let out = compare(&reference, &ours, &steps);
    assert!(out.iter().all(|o| o.code == 0), "{out:#?}");
    assert_eq!(out.last().map(|o| o.stdout.as_str()), Some(""));
}

#[test]
fn an_alarm_raised_on_one_member_holds_on_every_member() {
    let quota = QUOTA_BYTES.to_string();
    let cluster = Cluster::start_with(Flavour::Ours, 3, &["--quota-backend-bytes", &quota]);
    let ctl = |i: usize, args: &[&str]| etcdctl::run(cluster.member(i).client_port(), args, None);
    let value = "v".repeat(VALUE_BYTES);
    let refused_after = (0..MAX_FILL_PUTS)
        .find(|n| ctl(0, &["put", &format!("key{n}"), &value]).code != 0)
        .expect("member 0 refuses a put before the bound");
    assert!(refused_after > 0);

    // Alarm list is a linearizable read: every member answers the same.
    let lists: Vec<String> = (0..3).map(|i| ctl(i, &["alarm", "list"]).stdout).collect();
    assert!(lists[0].ends_with(" alarm:NOSPACE \n"), "{lists:?}");
    assert!(lists.iter().all(|l| *l == lists[0]), "{lists:?}");

    // Every member refuses a put, even one whose request is small.
    for i in 0..3 {
        let out = ctl(i, &["put", "small", "x"]);
        assert!(out.stderr.contains(NO_SPACE), "member {i}: {out:#?}");
        let got = ctl(i, &["get", "key0", "--keys-only"]);
        assert_eq!(got.stdout, "key0\n\n", "member {i}: {got:#?}");
    }

    let disarmed = ctl(1, &["alarm", "disarm"]);
    disarmed.assert_success();
    assert!(disarmed.stdout.contains("alarm:NOSPACE"), "{disarmed:#?}");
    for i in 0..3 {
        assert_eq!(ctl(i, &["alarm", "list"]).stdout, "", "member {i}");
    }
}
