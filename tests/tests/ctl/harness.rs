//! Running both etcdctls and comparing what they print.
//!
//! Each side gets its own server (same flavour, fresh data) so state-changing
//! steps line up. Beyond the suite's [`retcd_tests::mask`], this masks what
//! differs between two runs of the same client: measured durations
//! (`took = 1.2ms`) and the float timestamps of etcdctl's snapshot log.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use retcd_tests::server::workspace_root;
use retcd_tests::{CtlOutput, Flavour, Server, Step, mask};

/// Debian's etcdctl.
const REFERENCE: &str = "/usr/bin/etcdctl";

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
    let mut command = Command::new(binary);
    command
        .arg(format!("--endpoints={endpoints}"))
        .args(&step.args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ETCDCTL_API", "3")
        .envs(env.iter().copied())
        .stdin(if step.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
    if let Some(data) = step.stdin.clone() {
        let mut pipe = child.stdin.take().expect("stdin piped");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let mut out_pipe = child.stdout.take().expect("piped");
    let mut err_pipe = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for etcdctl") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                break child.wait().expect("reap etcdctl");
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    CtlOutput {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        code: status.code().unwrap_or(-1),
    }
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
        (Regex::new(r#"\| [0-9.]+[µmn]?s \|"#).unwrap(), "| <took> |"),
        (Regex::new(r#""ts":[0-9.]+"#).unwrap(), r#""ts":<ts>"#),
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
