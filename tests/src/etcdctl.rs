//! Running Debian's etcdctl (3.4.23, v3 API) as a client of a test server.
//!
//! Every run gets a clean environment (no inherited `ETCDCTL_*`), the v3 API,
//! one explicit endpoint, and a wall-clock limit after which it is killed, so
//! a hung server fails a test instead of stalling the suite.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's etcdctl.
pub const REFERENCE_ETCDCTL: &str = "/usr/bin/etcdctl";

/// Longest a single etcdctl run may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between checks whether etcdctl has exited.
const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// What one etcdctl run printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlOutput {
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Exit code; -1 when killed by a signal (including our timeout).
    pub code: i32,
}

impl CtlOutput {
    /// Panics with the full output unless the run exited 0.
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code, 0, "etcdctl failed: {self:#?}");
        self
    }
}

/// Runs `etcdctl --endpoints=http://127.0.0.1:<port> <args>`, piping `stdin`.
pub fn run(port: u16, args: &[&str], stdin: Option<&[u8]>) -> CtlOutput {
    let endpoints = format!("http://127.0.0.1:{port}");
    run_binary(REFERENCE_ETCDCTL, &endpoints, args, &[], stdin, RUN_TIMEOUT)
}

/// Runs `binary --endpoints=<endpoints> <args>` with a clean environment plus
/// `env`, piping `stdin`; kills it after `timeout`.
pub fn run_binary<S: AsRef<std::ffi::OsStr>>(
    binary: &str,
    endpoints: &str,
    args: &[S],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> CtlOutput {
    let mut command = Command::new(binary);
    command
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ETCDCTL_API", "3")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin piped");
        let data = data.to_vec();
        std::thread::spawn(move || {
            // etcdctl may exit before reading everything; that is its answer.
            let _ = pipe.write_all(&data);
        })
    });
    let mut out_pipe = child.stdout.take().expect("stdout piped");
    let mut err_pipe = child.stderr.take().expect("stderr piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("wait for etcdctl") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                break child.wait().expect("reap etcdctl");
            }
            None => std::thread::sleep(WAIT_POLL_INTERVAL),
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    CtlOutput {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        code: status.code().unwrap_or(-1),
    }
}
