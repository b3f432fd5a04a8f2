//! `check perf`: its refusals compared with Debian's etcdctl, and one full
//! 60-second run (etcdctl 3.4 has no knob to shorten it) of each etcdctl,
//! at the same time, each against its own server: ours against our server,
//! Debian's against the reference. Both outputs must have the same
//! structure (progress lines, cleanup lines, verdict lines, exit code that
//! agrees with the verdict), and the keys must be gone afterwards. The
//! verdict itself (PASS or FAIL) depends on the machine and is not
//! asserted.

use std::time::Duration;

use regex::Regex;
use retcd_tests::etcdctl::{REFERENCE_ETCDCTL, run_binary};
use retcd_tests::{CtlOutput, Flavour, Server, step};

use crate::harness::{compare, ours};

/// A run lasts 60 s plus setup and cleanup.
const PERF_TIMEOUT: Duration = Duration::from_secs(180);

/// The prefix the full runs write under.
const PREFIX: &str = "/perf-test/";

#[test]
fn check_perf_refusals_match_reference() {
    let steps = [
        step("check perf --load x"),
        step("check perf --load medium --prefix"),
        step("put /etcdctl-check-perf/k v"),
        step("check perf"),
        step("put /p/k v"),
        step("check perf --prefix /p/"),
    ];
    compare(Flavour::Reference, &steps);
    compare(Flavour::Ours, &steps);
}

/// Asserts the structure of one `check perf --auto-compact --auto-defrag`
/// output against `endpoint`. etcdctl draws the progress bar from its own
/// timer, so its last lines may land among the cleanup lines: the bar's
/// lines are taken out wherever they are, then the rest must be exactly
/// the cleanup and verdict lines.
fn assert_perf_output(output: &CtlOutput, endpoint: &str) {
    let progress = Regex::new(r"\r \d+ / 60 +\d+\.\d\d%( \d\dm\d\ds)?").unwrap();
    let finished = Regex::new(r"\r 60 / 60  100\.00% \d+m\d+s\n").unwrap();
    let rest = Regex::new(&format!(
        concat!(
            r"^Compacting with revision (\d+)\nCompacted with revision (\d+)\n",
            r#"Defragmenting "{ep}"\nDefragmented "{ep}"\n"#,
            r"(FAIL: too many errors\n(FAIL: ERROR\(.*\) -> \d+\n)+)?",
            r"(PASS: Throughput is|FAIL: Throughput too low:) \d+ writes/s\n",
            r"(PASS: Slowest request took|Slowest request took too long:) \d+\.\d{{6}}s\n",
            r"(PASS: Stddev is|Stddev too high:) \d+\.\d{{6}}s\n",
            r"(PASS|FAIL)\n$"
        ),
        ep = regex::escape(endpoint)
    ))
    .unwrap();
    assert_eq!(output.stderr, "", "{output:#?}");
    assert!(
        output.stdout.starts_with("\r 0 / 60    0.00%"),
        "{output:#?}"
    );
    assert_eq!(finished.find_iter(&output.stdout).count(), 1, "{output:#?}");
    let without_final = finished.replace(&output.stdout, "");
    // Five redraws a second for 60 s, give or take scheduling.
    let lines = progress.find_iter(&without_final).count();
    assert!(lines > 200, "{lines} progress lines");
    let tail = progress.replace_all(&without_final, "");
    let caps = rest
        .captures(&tail)
        .unwrap_or_else(|| panic!("output after the progress bar: {tail:?}"));
    assert_eq!(caps[1], caps[2]);
    let passed = tail.ends_with("\nPASS\n");
    assert_eq!(output.code, if passed { 0 } else { 1 }, "{tail}");
}

#[test]
fn check_perf_small_load_runs_and_cleans_up_like_reference() {
    let (reference, mine) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start(Flavour::Reference, &[]));
        let b = Server::start(Flavour::Ours, &[]);
        (a.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), b)
    });
    let args = [
        "check",
        "perf",
        "--load",
        "s",
        "--prefix",
        PREFIX,
        "--auto-compact",
        "--auto-defrag",
    ];
    let ours = ours().display().to_string();
    let (want, got) = std::thread::scope(|s| {
        let want = s.spawn(|| {
            run_binary(
                REFERENCE_ETCDCTL,
                &reference.client_url(),
                &args,
                &[],
                None,
                PERF_TIMEOUT,
            )
        });
        let got = run_binary(&ours, &mine.client_url(), &args, &[], None, PERF_TIMEOUT);
        (want.join().expect("reference run"), got)
    });
    assert_perf_output(&want, &reference.client_url());
    assert_perf_output(&got, &mine.client_url());
    for server in [&reference, &mine] {
        let left = server.etcdctl(&["get", PREFIX, "--prefix", "--keys-only"]);
        assert_eq!(left.stdout, "", "keys left under {PREFIX}: {left:#?}");
    }
}
