//! The client-side log lines etcdctl writes to stderr.
//!
//! etcd's Go client logs, through zap, one JSON warning per failed unary
//! call (`retrying of unary invoker failed`) before etcdctl prints its own
//! `Error:` line; scripts and our differential tests see both, so we write
//! the same line: same keys in the same order, a millisecond UTC timestamp,
//! the dial target (`endpoint://client-<uuid>/<first endpoint>`) and the
//! attempt number. Flag warnings use capnslog's plain format.

use std::time::{SystemTime, UNIX_EPOCH};

use tonic::Status;

use crate::error::grpc_text;
use crate::output::json::quote;

/// Seconds since the epoch and the microseconds past them.
fn now() -> (u64, u32) {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (elapsed.as_secs(), elapsed.subsec_micros())
}

/// The civil date (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD`, `HH:MM:SS` and microseconds of a Unix time, in UTC.
fn split_time(secs: u64, micros: u32) -> (String, String, u32) {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        ),
        micros,
    )
}

/// zap's ISO 8601 timestamp: `2006-01-02T15:04:05.000Z`.
pub fn zap_time() -> String {
    let (secs, micros) = now();
    let (date, time, micros) = split_time(secs, micros);
    format!("{date}T{time}.{:03}Z", micros / 1000)
}

/// capnslog's timestamp: `2006-01-02 15:04:05.000000`.
pub fn capnslog_time() -> String {
    let (secs, micros) = now();
    let (date, time, micros) = split_time(secs, micros);
    format!("{date} {time}.{micros:06}")
}

/// A random client id shaped like a UUID, as the Go client names its
/// resolver.
pub fn client_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now().1 as u64);
        h.finish()
    };
    let (a, b) = (word(), word());
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// The warning the Go client logs when a unary call fails.
pub fn unary_failure(target: &str, attempt: u32, status: &Status) {
    eprintln!(
        "{{\"level\":\"warn\",\"ts\":\"{}\",\"caller\":\"clientv3/retry_interceptor.go:62\",\"msg\":\"retrying of unary invoker failed\",\"target\":{},\"attempt\":{attempt},\"error\":{}}}",
        zap_time(),
        quote(target),
        quote(&grpc_text(status))
    );
}

/// How a zap logger stamps its lines.
#[derive(Debug, Clone, Copy)]
pub enum ZapTime {
    /// ISO 8601 (the Go client's logger).
    Iso,
    /// Seconds since the epoch as a float (etcdctl's snapshot logger).
    Epoch,
}

/// One zap `info` line: `fields` are key and already-encoded JSON value.
pub fn info(time: ZapTime, caller: &str, msg: &str, fields: &[(&str, String)]) {
    let ts = match time {
        ZapTime::Iso => quote(&zap_time()),
        ZapTime::Epoch => {
            let elapsed = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            format!("{}", elapsed.as_secs_f64())
        }
    };
    let mut line = format!(
        "{{\"level\":\"info\",\"ts\":{ts},\"caller\":{},\"msg\":{}",
        quote(caller),
        quote(msg)
    );
    for (key, value) in fields {
        line.push_str(&format!(",{}:{value}", quote(key)));
    }
    line.push('}');
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        let (date, time, _) = split_time(1_795_474_957, 0);
        assert_eq!(date, "2026-11-23");
        assert_eq!(time, "23:02:37");
    }
}
