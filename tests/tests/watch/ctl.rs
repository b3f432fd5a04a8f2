//! Debian's `etcdctl watch` against the reference etcd and ours: the same
//! writes, the same captured output.
//!
//! Each case runs `etcdctl watch ...` in the background against both
//! servers, performs the same writes on both, waits until the output holds
//! the expected number of lines (or the command exits), kills it and
//! compares the outputs after masking. Watches start from an explicit
//! revision, so what they print does not depend on when they connected.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retcd_tests::etcdctl::REFERENCE_ETCDCTL;
use retcd_tests::{Server, mask};

/// Longest a background watch may take to print what it should.
const WATCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between looks at the captured output.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What a background etcdctl printed.
#[derive(Debug, PartialEq)]
struct Captured {
    /// Standard output.
    stdout: String,
    /// Standard error.
    stderr: String,
}

/// Runs `etcdctl <args>` against `server` with `stdin`, until stdout has
/// `lines` lines (0: until it exits) or the command exits; then kills it.
fn watch(server: &Server, args: &[&str], stdin: &str, lines: usize) -> Captured {
    let mut child = Command::new(REFERENCE_ETCDCTL)
        .arg(format!("--endpoints={}", server.client_url()))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let mut pipe = child.stdout.take().unwrap();
    let sink = stdout.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut err_pipe = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + WATCH_TIMEOUT;
    loop {
        let have = bytecount_lines(&stdout.lock().unwrap());
        if (lines > 0 && have >= lines)
            || Instant::now() >= deadline
            || child.try_wait().unwrap().is_some()
        {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    // Kill before closing stdin: an `-i` watch that sees EOF first prints an
    // error, and which of the two wins would otherwise be a race.
    let _ = child.kill();
    let _ = child.wait();
    drop(input);
    reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let stdout = stdout.lock().unwrap().clone();
    Captured {
        stdout: mask(&String::from_utf8_lossy(&stdout)),
        stderr: mask(&String::from_utf8_lossy(&stderr)),
    }
}

/// Lines in `bytes`.
fn bytecount_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Runs `etcdctl` steps on a server, asserting success.
fn ctl(server: &Server, steps: &[&[&str]]) {
    for args in steps {
        server.etcdctl(args).assert_success();
    }
}

/// The same writes on both servers, then the same watch on both.
fn compare(writes: &[&[&str]], args: &[&str], stdin: &str, lines: usize) -> Captured {
    let (reference, ours) = Server::pair(&[]);
    ctl(&reference, writes);
    ctl(&ours, writes);
    let want = watch(&reference, args, stdin, lines);
    let got = watch(&ours, args, stdin, lines);
    assert_eq!(
        got, want,
        "etcdctl {args:?}: ours differs from the reference"
    );
    assert_eq!(
        bytecount_lines(want.stdout.as_bytes()),
        lines,
        "the reference printed {want:?}"
    );
    want
}

/// A history with puts, a delete, a txn and keys in and out of ranges.
const HISTORY: &[&[&str]] = &[
    &["put", "foo", "bar"],
    &["put", "foo", "baz"],
    &["put", "foo1", "x"],
    &["del", "foo"],
    &["put", "zoo", "1"],
    &["put", "foo2", "y"],
];

#[test]
fn single_key_history_with_prev_kv() {
    // PUT/DELETE lines, key, value (and prev key, value), per event.
    compare(HISTORY, &["watch", "foo", "--rev=2", "--prev-kv"], "", 13);
}

#[test]
fn prefix_and_range_history() {
    compare(HISTORY, &["watch", "foo", "--prefix", "--rev=2"], "", 15);
    compare(HISTORY, &["watch", "foo1", "foo3", "--rev=1"], "", 6);
}

#[test]
fn json_output_carries_headers_and_grouping() {
    compare(
        HISTORY,
        &["watch", "foo", "--prefix", "--rev=3", "-w", "json"],
        "",
        1,
    );
}

#[test]
fn compacted_revision_cancels_the_watch() {
    let mut writes: Vec<&[&str]> = HISTORY.to_vec();
    writes.push(&["compact", "4"]);
    // etcdctl reports the cancel on stderr and exits.
    let out = compare(&writes, &["watch", "foo", "--rev=2"], "", 0);
    assert!(
        out.stderr.contains("required revision has been compacted"),
        "{out:?}"
    );
}

#[test]
fn interactive_watch() {
    compare(HISTORY, &["watch", "-i"], "watch foo --rev=2\n", 9);
}

#[test]
fn exec_command_gets_watch_variables() {
    compare(
        HISTORY,
        &[
            "watch",
            "foo",
            "--prefix",
            "--rev=2",
            "--",
            "sh",
            "-c",
            "echo \"$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY=$ETCD_WATCH_VALUE@$ETCD_WATCH_REVISION\"",
        ],
        "",
        20,
    );
}

#[test]
fn live_events_after_the_watch_starts() {
    let (reference, ours) = Server::pair(&[]);
    let mut outs = Vec::new();
    for server in [&reference, &ours] {
        ctl(server, &[&["put", "live", "0"]]);
        let output = std::thread::scope(|s| {
            let watcher = s.spawn(|| watch(server, &["watch", "live", "--rev=3"], "", 6));
            ctl(server, &[&["put", "live", "1"], &["put", "live", "2"]]);
            watcher.join().unwrap()
        });
        outs.push(output);
    }
    assert_eq!(outs[1], outs[0]);
    assert_eq!(outs[0].stdout, "PUT\nlive\n1\nPUT\nlive\n2\n");
}
