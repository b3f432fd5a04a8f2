//! Running both etcdctls and comparing what they print.
//!
//! Each side gets its own server (same flavour, fresh data) so state-changing
//! steps line up. Beyond the suite's [`retcd_tests::mask`], this masks what
//! differs between two runs of the same client: measured durations
//! (`took = 1.2ms`, the snapshot log's `"took":0.0042`) and the float
//! timestamps of etcdctl's snapshot log.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use retcd_tests::etcdctl::{REFERENCE_ETCDCTL as REFERENCE, run_binary};
use retcd_tests::server::workspace_root;
use retcd_tests::{CtlOutput, Flavour, Server, Step, mask};

/// Longest one etcdctl run may take before it is killed (a watch that
/// never ends fails its step instead of hanging the suite).
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// Our etcdctl: `$RETCD_ETCDCTL`, else the workspace's debug build.
pub fn ours() -> PathBuf {
    if let Some(path) = std::env::var_os("RETCD_ETCDCTL") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| {
            if d.is_relative() {
                workspace_root().join(d)
            } else {
                d
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join("etcdctl")
}

/// Runs `binary --endpoints=<endpoints> args` with a clean environment.
pub fn run(binary: &str, endpoints: &str, step: &Step, env: &[(&str, &str)]) -> CtlOutput {
    run_binary(
        binary,
        endpoints,
        &step.args,
        env,
        step.stdin.as_deref(),
        RUN_TIMEOUT,
    )
}

/// Masks durations and float timestamps on top of the suite's rules.
static EXTRA: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    vec![
        (
            Regex::new(r"took = [0-9.]+[µmn]?s").unwrap(),
            "took = <took>",
        ),
        (
            Regex::new(r#""took":"[0-9.]+[µmn]?s""#).unwrap(),
            r#""took":"<took>""#,
        ),
        (
            Regex::new(r#""Took" : [0-9.]+[µmn]?s"#).unwrap(),
            r#""Took" : <took>"#,
        ),
        (
            Regex::new(r#"\| +[0-9.]+[µmn]?s +\|"#).unwrap(),
            "| <took> |",
        ),
        (Regex::new(r#""ts":[0-9.]+"#).unwrap(), r#""ts":<ts>"#),
        (
            Regex::new(r#""took":[0-9.e-]+"#).unwrap(),
            r#""took":<took>"#,
        ),
    ]
});

/// Masks one output.
pub fn masked(output: CtlOutput) -> CtlOutput {
    let extra = |text: String| {
        EXTRA
            .iter()
            .fold(text, |t, (re, with)| re.replace_all(&t, *with).into_owned())
    };
    CtlOutput {
        stdout: mask(&extra(output.stdout)),
        stderr: mask(&extra(output.stderr)),
        code: output.code,
    }
}

/// Runs `steps` through Debian's etcdctl on one fresh `flavour` server and
/// through ours on another; panics listing every differing step. Returns
/// the reference's masked outputs.
pub fn compare(flavour: Flavour, steps: &[Step]) -> Vec<CtlOutput> {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start(flavour, &[]));
        let b = Server::start(flavour, &[]);
        (a.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), b)
    });
    compare_on(&a.client_url(), &b.client_url(), steps, &[])
}

/// Sets up one fresh `flavour` server with Debian's etcdctl, then runs the
/// read-only `reads` through both etcdctls against it: for outputs, like
/// protobuf, that carry the server's ids unmasked.
pub fn compare_reads(flavour: Flavour, setup: &[Step], reads: &[Step]) -> Vec<CtlOutput> {
    let server = Server::start(flavour, &[]);
    let url = server.client_url();
    for step in setup {
        assert_eq!(
            run(REFERENCE, &url, step, &[]).code,
            0,
            "setup {}",
            step.display()
        );
    }
    compare_on(&url, &url, reads, &[])
}

/// Like [`compare`] on given endpoint lists, with extra environment.
pub fn compare_on(
    reference_endpoints: &str,
    our_endpoints: &str,
    steps: &[Step],
    env: &[(&str, &str)],
) -> Vec<CtlOutput> {
    let ours = ours();
    assert!(
        ours.exists(),
        "{} missing: run `cargo build -p retcd-ctl`",
        ours.display()
    );
    let ours = ours.display().to_string();
    let mut mismatches = String::new();
    let mut outputs = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let want = masked(run(REFERENCE, reference_endpoints, step, env));
        let got = masked(run(&ours, our_endpoints, step, env));
        if want != got {
            mismatches.push_str(&format!(
                "step {i}: {}\n--- reference (exit {})\n{}\n{}\n--- ours (exit {})\n{}\n{}\n",
                step.display(),
                want.code,
                want.stdout,
                want.stderr,
                got.code,
                got.stdout,
                got.stderr
            ));
        }
        outputs.push(want);
    }
    assert!(mismatches.is_empty(), "our etcdctl differs:\n{mismatches}");
    outputs
}
