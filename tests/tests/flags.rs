//! The `etcd` binary's command line against etcd's: the same arguments and
//! `ETCD_*` variables given to Debian's etcd 3.4.23 and to ours must end the
//! same way (exit code, and the key words of the error), or both start.
//!
//! - Each process runs in its own temporary directory with a cleared
//!   environment, on free loopback ports, and is killed when the test lets go
//!   of it, also when an assertion fails first.
//! - A command line that should be refused but is not would start a server:
//!   such a run is killed after [`QUICK_EXIT`] and reported as "still running".

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use retcd_tests::ports::free_port;
use retcd_tests::process::KillOnDrop;
use retcd_tests::server::REFERENCE_ETCD;
use retcd_tests::{Flavour, Server, http};

/// How long a refused command line may take to exit.
const QUICK_EXIT: Duration = Duration::from_secs(10);

/// How long a server may take to serve clients or to stop.
const PATIENCE: Duration = Duration::from_secs(20);

/// A process started by a test; killed and reaped on drop.
struct Process(KillOnDrop);

impl Process {
    /// Starts `binary` in `dir` with only `PATH` and `env` in its environment;
    /// stdout and stderr go to files in `dir`.
    fn spawn(binary: &Path, args: &[String], env: &[(&str, &str)], dir: &Path) -> Process {
        let stdout = std::fs::File::create(dir.join("stdout")).unwrap();
        let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
        let child = Command::new(binary)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        Process(KillOnDrop(child))
    }

    /// Waits up to `timeout` for the process to exit.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends `signal` (a `kill` name such as `TERM`).
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} failed");
    }
}

/// How one run of a binary ended.
#[derive(Debug)]
struct Outcome {
    /// The exit code, or `None` if it was still running (then killed) or died of a signal.
    code: Option<i32>,
    /// Standard output.
    stdout: String,
    /// Standard error.
    stderr: String,
}

/// Runs `binary` with `args` and `env` in a fresh directory; kills it after [`QUICK_EXIT`].
fn run_quick(binary: &Path, args: &[String], env: &[(&str, &str)]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let mut process = Process::spawn(binary, args, env, dir.path());
    let code = process.wait(QUICK_EXIT).and_then(|status| status.code());
    drop(process);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    Outcome {
        code,
        stdout: read("stdout"),
        stderr: read("stderr"),
    }
}

/// Runs `args` and `env` on both binaries; asserts both exit with `code` and
/// print `text` on stderr.
fn assert_both_refuse(args: &[String], env: &[(&str, &str)], code: i32, text: &str) {
    for flavour in [Flavour::Reference, Flavour::Ours] {
        let out = run_quick(&flavour.binary(), args, env);
        assert_eq!(
            out.code,
            Some(code),
            "{} {args:?} {env:?}: {out:?}",
            flavour.label()
        );
        assert!(
            out.stderr.contains(text),
            "{} {args:?} {env:?}: no {text:?} in {out:?}",
            flavour.label()
        );
    }
}

/// Splits a command line written as one string.
fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

/// Flags for a single member on free loopback ports (client, peer), data in `./d`.
fn member_flags(initial_cluster: bool) -> (Vec<String>, u16, u16) {
    let (client, peer) = (free_port(), free_port());
    let mut line = format!(
        "--data-dir d --listen-client-urls http://127.0.0.1:{client} \
         --advertise-client-urls http://127.0.0.1:{client} \
         --listen-peer-urls http://127.0.0.1:{peer} \
         --initial-advertise-peer-urls http://127.0.0.1:{peer}"
    );
    if initial_cluster {
        line += &format!(" --initial-cluster default=http://127.0.0.1:{peer}");
    }
    (words(&line), client, peer)
}

#[test]
fn the_reference_etcd_is_installed() {
    assert!(
        Path::new(REFERENCE_ETCD).exists(),
        "{REFERENCE_ETCD} is the behaviour these tests compare with"
    );
}

#[test]
fn refused_before_flags_are_checked_exit_2_with_gos_words() {
    let cases = [
        ("--bogus", "flag provided but not defined: -bogus"),
        ("-bogus", "flag provided but not defined: -bogus"),
        ("---name x", "bad flag syntax: ---name"),
        ("--name", "flag needs an argument: -name"),
        (
            "--heartbeat-interval abc",
            "invalid value \"abc\" for flag -heartbeat-interval: parse error",
        ),
        (
            "--snapshot-count -1",
            "invalid value \"-1\" for flag -snapshot-count: parse error",
        ),
        (
            "--max-txn-ops=-3",
            "invalid value \"-3\" for flag -max-txn-ops: parse error",
        ),
        (
            "--max-request-bytes 1.5",
            "invalid value \"1.5\" for flag -max-request-bytes: parse error",
        ),
        (
            "--quota-backend-bytes x",
            "invalid value \"x\" for flag -quota-backend-bytes: parse error",
        ),
        (
            "--initial-cluster-state weird",
            "invalid value \"weird\" for flag -initial-cluster-state: invalid value",
        ),
        (
            "--version=x",
            "invalid boolean value \"x\" for -version: parse error",
        ),
    ];
    for (line, text) in cases {
        assert_both_refuse(&words(line), &[], 2, text);
    }
}

/// A command line, its environment, and the text it must be refused with.
type Refusal<'a> = (&'a str, &'a [(&'a str, &'a str)], String);

#[test]
fn refused_after_parsing_exit_1_with_error_verifying_flags() {
    let verify = |msg: &str| format!("etcdmain: error verifying flags, {msg}. See 'etcd --help'.");
    let no_file = "open /nonexistent.yaml: no such file or directory";
    let cases: [Refusal; 6] = [
        ("extra", &[], verify("'extra' is not a valid flag")),
        ("-version extra", &[], verify("'extra' is not a valid flag")),
        (
            "--name x",
            &[("ETCD_HEARTBEAT_INTERVAL", "abc")],
            verify("invalid value \"abc\" for ETCD_HEARTBEAT_INTERVAL: parse error"),
        ),
        (
            "--name x",
            &[("ETCD_SNAPSHOT_COUNT", "-1")],
            verify("invalid value \"-1\" for ETCD_SNAPSHOT_COUNT: parse error"),
        ),
        ("--config-file /nonexistent.yaml", &[], verify(no_file)),
        // With a config file the environment is not even checked.
        (
            "--config-file /nonexistent.yaml",
            &[("ETCD_SNAPSHOT_COUNT", "-1")],
            verify(no_file),
        ),
    ];
    for (line, env, text) in &cases {
        assert_both_refuse(&words(line), env, 1, text);
    }
    // Checks of values that would otherwise start a member.
    let checks = [
        (
            "--heartbeat-interval 0",
            "--heartbeat-interval must be >0 (set to 0ms)",
        ),
        (
            "--election-timeout 400",
            "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]",
        ),
        (
            "--election-timeout 60000",
            "--election-timeout[60000ms] is too long, and should be set less than 50000ms",
        ),
    ];
    for (line, msg) in checks {
        let (mut args, _, _) = member_flags(true);
        args.extend(words(line));
        assert_both_refuse(&args, &[], 1, &verify(msg));
    }
}

#[test]
fn an_unknown_log_level_is_refused_with_exit_2() {
    let (mut args, _, _) = member_flags(true);
    args.extend(words("--log-level bogus --election-timeout 400"));
    assert_both_refuse(&args, &[], 2, "unknown level \"bogus\"");
}

#[test]
fn a_variable_shadowed_by_a_flag_is_fatal() {
    let (mut args, _, _) = member_flags(true);
    args.extend(words("--name default"));
    let text = "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding \
                command-line flag (either unset environment variable or disable flag)";
    assert_both_refuse(&args, &[("ETCD_NAME", "x")], 1, text);
    // Set but empty still conflicts.
    assert_both_refuse(&args, &[("ETCD_NAME", "")], 1, text);
    // The first conflict in the environment's order is reported (`Command`
    // hands the child its variables sorted by name).
    args.extend(words("--max-txn-ops 3"));
    assert_both_refuse(
        &args,
        &[("ETCD_NAME", "x"), ("ETCD_MAX_TXN_OPS", "1")],
        1,
        "conflicting environment variable \"ETCD_MAX_TXN_OPS\"",
    );
}

#[test]
fn without_initial_cluster_the_default_member_needs_localhost_2380() {
    let (args, _, peer) = member_flags(false);
    let text = format!(
        "--initial-cluster has default=http://localhost:2380 but missing from \
         --initial-advertise-peer-urls=http://127.0.0.1:{peer}"
    );
    assert_both_refuse(&args, &[], 1, &text);
}

#[test]
fn version_in_gos_spellings() {
    for line in ["-version", "--version=true", "-version=1"] {
        for flavour in [Flavour::Reference, Flavour::Ours] {
            let out = run_quick(&flavour.binary(), &words(line), &[]);
            assert_eq!(out.code, Some(0), "{} {line}: {out:?}", flavour.label());
            assert!(
                out.stdout.starts_with("etcd Version: "),
                "{} {line}: {out:?}",
                flavour.label()
            );
        }
    }
}

/// Puts `n` keys in one txn through the gateway; returns the HTTP status.
fn txn_of_puts(port: u16, n: usize) -> u16 {
    use base64::Engine as _;
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    let puts: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"request_put":{{"key":"{}","value":"dg=="}}}}"#,
                b64(format!("k{i}"))
            )
        })
        .collect();
    let body = format!(r#"{{"success":[{}]}}"#, puts.join(","));
    http::post(port, "/v3/kv/txn", body.as_bytes())
        .expect("txn")
        .status
}

#[test]
fn go_syntax_negative_numbers_and_repeated_flags_start_both() {
    // Single dashes, `=`, a negative signed number, a hex unsigned one, and
    // --max-txn-ops twice: the last (5) wins.
    let extra = [
        "-quota-backend-bytes",
        "-1",
        "-snapshot-count=0x400",
        "--max-txn-ops",
        "3",
        "-max-txn-ops=5",
    ];
    let (reference, ours) = Server::pair(&extra);
    for server in [&reference, &ours] {
        let port = server.client_port();
        assert_eq!(txn_of_puts(port, 5), 200, "{}", server.flavour().label());
        assert_eq!(txn_of_puts(port, 6), 400, "{}", server.flavour().label());
    }
}

#[test]
fn an_empty_variable_is_ignored() {
    for flavour in [Flavour::Reference, Flavour::Ours] {
        let dir = tempfile::tempdir().unwrap();
        let (args, client, _) = member_flags(true);
        let mut process = Process::spawn(
            &flavour.binary(),
            &args,
            &[("ETCD_MAX_TXN_OPS", ""), ("ETCD_SNAPSHOT_COUNT", "")],
            dir.path(),
        );
        wait_healthy(client, &mut process, flavour);
        assert_eq!(txn_of_puts(client, 9), 200, "{}", flavour.label());
    }
}

/// Waits until `GET /health` on `port` answers 200.
fn wait_healthy(port: u16, process: &mut Process, flavour: Flavour) {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Some(status) = process.0.try_wait().unwrap() {
            panic!("{} exited early: {status}", flavour.label());
        }
        if http::get(port, "/health").is_ok_and(|r| r.status == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} not healthy after {PATIENCE:?}", flavour.label());
}

#[test]
fn sigint_and_sigterm_end_both_by_the_signal() {
    use std::os::unix::process::ExitStatusExt;
    for (name, number) in [("INT", 2), ("TERM", 15)] {
        for flavour in [Flavour::Reference, Flavour::Ours] {
            let dir = tempfile::tempdir().unwrap();
            let (args, client, _) = member_flags(true);
            let mut process = Process::spawn(&flavour.binary(), &args, &[], dir.path());
            wait_healthy(client, &mut process, flavour);
            process.signal(name);
            let status = process
                .wait(PATIENCE)
                .unwrap_or_else(|| panic!("{} did not stop on SIG{name}", flavour.label()));
            assert_eq!(
                status.signal(),
                Some(number),
                "{} on SIG{name}: {status}",
                flavour.label()
            );
        }
    }
}
