//! The benchmark process's own CPU time, so a report can say what the load
//! generator cost per request.
//!
//! On a small machine the client shares the cores with the server it
//! measures, so its CPU per request bounds how much capacity the server can
//! show. The time is read from `/proc/self/stat` (user plus system time of
//! every thread of the process, including exited ones), which needs neither
//! `unsafe` nor another dependency.
//!
//! Invariants:
//! - times are in clock ticks of `USER_HZ`, which the kernel fixes at 100 for
//!   what it exports in `/proc`, so a reading is exact to 10 ms; runs of a few
//!   thousand requests or more keep that error under a few percent;
//! - the process name field may hold spaces and parentheses, so the numeric
//!   fields are counted from the last `)`.
//!
//! Caveat: Linux only; elsewhere (or if `/proc` is not mounted) readings are
//! `None` and the report says nothing about client CPU.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (the kernel's
/// `USER_HZ`).
const USER_HZ: u64 = 100;

/// Index of `utime` among the fields after the process name: `state` is
/// field 3 of the line, `utime` field 14 and `stime` field 15.
const UTIME_INDEX: usize = 14 - 3;

/// User plus system CPU time this process has used so far.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_ticks(&stat).map(ticks_to_duration)
}

/// `utime + stime` in ticks from one `/proc/<pid>/stat` line.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_ascii_whitespace().skip(UTIME_INDEX);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `ticks` of `USER_HZ` as a duration.
fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * (1000 / USER_HZ))
}

/// CPU microseconds per request: `cpu` spread over `requests`; `None` for no
/// requests.
pub fn micros_per_request(cpu: Duration, requests: u64) -> Option<f64> {
    (requests > 0).then(|| cpu.as_secs_f64() * 1e6 / requests as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc/<pid>/stat` line with utime 250 and stime 37 ticks, and a
    /// process name holding a space and a parenthesis.
    const STAT: &str = "4242 (etcd-be) nch) S 1 4242 4242 0 -1 4194560 5400 0 0 0 \
                        250 37 0 0 20 0 1 0 123456 10000000 900 18446744073709551615 \
                        1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn ticks_are_utime_plus_stime() {
        assert_eq!(cpu_ticks(STAT), Some(287));
        assert_eq!(ticks_to_duration(287), Duration::from_millis(2870));
    }

    #[test]
    fn malformed_lines_give_nothing() {
        assert_eq!(cpu_ticks(""), None);
        assert_eq!(cpu_ticks("1 (x) S 1 2"), None, "too few fields");
        assert_eq!(cpu_ticks("1 x S 1 1 1 1 1 1 1 1 1 1 1 1"), None, "no name");
        assert_eq!(
            cpu_ticks("1 (x) S 1 1 1 1 1 1 1 1 1 1 u 1"),
            None,
            "utime not a number"
        );
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        let before = process_cpu().expect("/proc/self/stat is readable on Linux");
        let after = process_cpu().unwrap();
        assert!(after >= before, "CPU time never goes back");
    }

    #[test]
    fn per_request_division() {
        assert_eq!(
            micros_per_request(Duration::from_millis(1500), 60_000),
            Some(25.0)
        );
        assert_eq!(micros_per_request(Duration::from_secs(1), 0), None);
    }
}
