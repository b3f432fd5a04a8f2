//! Data-driven lessor scenarios: `testdata/*.txt` scripts, each run top to
//! bottom against one lessor with a fake clock, so cases build on each other.
//!
//! File format: cases separated by blank lines; a case is command lines, a
//! `----` line, and the expected output (one line per command that prints).
//! Lines starting with `#` between cases are comments. `UPDATE_GOLDEN=1`
//! rewrites the files with the actual outputs.
//!
//! The lessor starts with a 2 s minimum TTL, a 5 s checkpoint interval and a
//! 3 s revoke retry interval. Commands (times in seconds, fractions allowed):
//! - `grant ID TTL`, `remove ID`, `checkpoint ID REMAINING`,
//!   `attach ID KEY`, `detach ID KEY` — the replicated operations;
//! - `promote [extend=S]`, `demote`, `renew ID`, `expired [limit=N]`,
//!   `checkpoints [limit=N]` — the leader's;
//! - `ttl ID`, `leases`, `record ID` — queries;
//! - `advance S` — moves the clock forward.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::{Lessor, LessorConfig};

/// The configuration every script runs with.
const SCRIPT_CONFIG: LessorConfig = LessorConfig {
    min_ttl_secs: 2,
    checkpoint_interval: Duration::from_secs(5),
    revoke_retry_interval: Duration::from_secs(3),
};

/// A lessor and its fake clock.
struct Harness {
    /// The lessor under test.
    lessor: Lessor,
    /// The current fake time.
    now: Instant,
}

impl Harness {
    /// Runs one command line; returns what it prints, if anything.
    fn run(&mut self, line: &str) -> Option<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let int = |i: usize| -> i64 {
            words
                .get(i)
                .unwrap_or_else(|| panic!("{line}: missing argument {i}"))
                .parse()
                .unwrap_or_else(|e| panic!("{line}: {e}"))
        };
        let opt = |name: &str, default: f64| -> f64 {
            words
                .iter()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .map_or(default, |v| v.parse().expect("number"))
        };
        let now = self.now;
        let l = &mut self.lessor;
        let out = match words[0] {
            "grant" => match l.grant(int(1), int(2), now) {
                Ok(ttl) => format!("granted ttl={ttl}"),
                Err(e) => format!("error: {e}"),
            },
            "remove" => format!("removed={}", l.remove(int(1))),
            "checkpoint" => format!("checkpointed={}", l.checkpoint(int(1), int(2))),
            "attach" => {
                l.attach(int(1), words[2].as_bytes());
                return None;
            }
            "detach" => {
                l.detach(int(1), words[2].as_bytes());
                return None;
            }
            "promote" => {
                l.promote(Duration::from_secs_f64(opt("extend", 0.0)), now);
                return None;
            }
            "demote" => {
                l.demote();
                return None;
            }
            "renew" => match l.renew(int(1), now) {
                Ok(r) => format!("renewed ttl={} clear={}", r.ttl_secs, r.clear_checkpoint),
                Err(e) => format!("error: {e}"),
            },
            "expired" => format!("expired {:?}", l.expired(now, opt("limit", 100.0) as usize)),
            "checkpoints" => format!(
                "checkpoints {:?}",
                l.due_checkpoints(now, opt("limit", 100.0) as usize)
            ),
            "ttl" => match l.time_to_live(int(1), now) {
                Some(t) => {
                    let keys: Vec<String> = t
                        .keys
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect();
                    format!(
                        "ttl={} granted={} keys=[{}]",
                        t.ttl_secs,
                        t.granted_ttl_secs,
                        keys.join(" ")
                    )
                }
                None => "not found".to_string(),
            },
            "leases" => format!("leases {:?}", l.leases()),
            "record" => format!("{:?}", l.record(int(1))),
            "advance" => {
                let s: f64 = words[1].parse().expect("seconds");
                self.now += Duration::from_secs_f64(s);
                return None;
            }
            other => panic!("unknown command {other:?}"),
        };
        Some(out)
    }
}

/// Runs every case of `testdata/<name>` against one fresh lessor.
fn run_file(name: &str) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "testdata", name]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut h = Harness {
        lessor: Lessor::new(SCRIPT_CONFIG),
        now: Instant::now(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim().is_empty() || lines[i].starts_with('#') {
            let _ = writeln!(rewritten, "{}", lines[i]);
            i += 1;
            continue;
        }
        let start = i;
        let mut outputs = Vec::new();
        while i < lines.len() && lines[i] != "----" {
            let _ = writeln!(rewritten, "{}", lines[i]);
            outputs.extend(h.run(lines[i]));
            i += 1;
        }
        assert!(i < lines.len(), "{name}:{}: case without ----", start + 1);
        i += 1;
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].is_empty() {
            expected.push(lines[i]);
            i += 1;
        }
        let (expected, actual) = (expected.join("\n"), outputs.join("\n"));
        if expected != actual {
            failures.push(format!(
                "{name}:{}:\n--- expected\n{expected}\n--- actual\n{actual}\n",
                start + 1
            ));
        }
        let _ = writeln!(rewritten, "----\n{actual}");
    }
    if update {
        std::fs::write(&path, rewritten).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    } else if !failures.is_empty() {
        panic!(
            "{} case(s) differ (UPDATE_GOLDEN=1 rewrites):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn grant() {
    run_file("grant.txt");
}

#[test]
fn expiry() {
    run_file("expiry.txt");
}

#[test]
fn checkpoint() {
    run_file("checkpoint.txt");
}

#[test]
fn attach() {
    run_file("attach.txt");
}
