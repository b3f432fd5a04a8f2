//! `check perf`: a fixed write workload against the cluster, judged by
//! etcdctl's pass/fail criteria.
//!
//! The workload, as etcdctl 3.4 runs it:
//! - one client connection per simulated client (`--load` picks 50, 200,
//!   500 or 1000 clients), all fed from one queue;
//! - puts of a 256-byte key (the `--prefix`, then a random zig-zag varint
//!   written over the previous key's bytes) and a 1024-byte zero value,
//!   paced by a token bucket of one token at 150, 1000, 8000 or 15000 puts
//!   per second, for 60 seconds;
//! - a prefix that already holds keys refuses to run (exit 3), and the
//!   keys are deleted afterwards (then compacted and defragmented on
//!   request).
//!
//! The verdict: throughput above 90% of the target rate, slowest put at
//! most 0.5 s, standard deviation of put latency at most 0.1 s, and no
//! failed put; any miss prints `FAIL` and exits 1.
//!
//! Progress goes to stdout as etcdctl's progress bar draws it when stdout
//! is not a terminal: a `\r`-led counter line (` 12 / 60   20.00% 00m48s`)
//! every 200 ms, one step per second, and the final line with the elapsed
//! time. Caveat: the time left is estimated from the steps so far and
//! rounded to the second; etcdctl's bar can differ by a second from it.

use std::sync::Arc;
use std::time::Duration;

use retcd_api::etcdserverpb::kv_client::KvClient;
use retcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use retcd_api::etcdserverpb::{
    CompactionRequest, DefragmentRequest, DeleteRangeRequest, PutRequest, RangeRequest,
};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use crate::client::Client;
use crate::cmd::{Ctx, emit};
use crate::error::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT, status_text};
use crate::flags::{FlagSpec, Kind};

/// Bytes of every key after the prefix.
const KEY_SIZE: usize = 256;
/// Bytes of every value.
const VALUE_SIZE: usize = 1024;
/// How long the workload runs.
const DURATION_SECS: u64 = 60;
/// Half a second, for rounding the time left.
const HALF_SECOND: Duration = Duration::from_millis(500);
/// How often the progress line is redrawn.
const BAR_REFRESH: Duration = Duration::from_millis(200);
/// Deadline of the cleanup, compaction and defragmentation calls.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Throughput below this share of the target fails.
const MIN_THROUGHPUT_RATIO: f64 = 0.9;
/// A slower put than this (seconds) fails.
const MAX_SLOWEST_SECS: f64 = 0.5;
/// A larger latency standard deviation than this (seconds) fails.
const MAX_STDDEV_SECS: f64 = 0.1;

/// One workload model.
#[derive(Debug, Clone, Copy)]
struct Load {
    /// Target puts per second.
    rate_per_sec: u64,
    /// Concurrent clients.
    clients: usize,
}

/// `check perf`'s flags.
pub fn perf_flags() -> Vec<FlagSpec> {
    vec![
        FlagSpec::new(
            "auto-compact",
            Kind::Bool,
            "false",
            "Compact storage with last revision after test is finished.",
        ),
        FlagSpec::new(
            "auto-defrag",
            Kind::Bool,
            "false",
            "Defragment storage after test is finished.",
        ),
        FlagSpec::new(
            "load",
            Kind::Str,
            "\"s\"",
            "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)",
        ),
        FlagSpec::new(
            "prefix",
            Kind::Str,
            "\"/etcdctl-check-perf/\"",
            "The prefix for writing the performance check's keys.",
        ),
    ]
}

/// The model a `--load` value names.
fn load(name: &str) -> Option<Load> {
    let (rate_per_sec, clients) = match name {
        "s" | "small" => (150, 50),
        "m" | "medium" => (1000, 200),
        "l" | "large" => (8000, 500),
        "xl" | "xLarge" => (15000, 1000),
        _ => return None,
    };
    Some(Load {
        rate_per_sec,
        clients,
    })
}

/// What the workload measured.
#[derive(Debug, Default)]
struct Report {
    /// Latency of every successful put, in seconds.
    latencies: Vec<f64>,
    /// Failed puts by error text.
    errors: Vec<(String, u64)>,
}

impl Report {
    /// Records one put's outcome.
    fn record(&mut self, outcome: Result<f64, String>) {
        match outcome {
            Ok(secs) => self.latencies.push(secs),
            Err(text) => match self.errors.iter_mut().find(|(t, _)| *t == text) {
                Some((_, count)) => *count += 1,
                None => self.errors.push((text, 1)),
            },
        }
    }
}

/// Summary statistics, as etcd's benchmark report computes them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stats {
    /// Successful puts per second of the whole run.
    rps: f64,
    /// Slowest put, seconds.
    slowest: f64,
    /// Population standard deviation of the latencies, seconds.
    stddev: f64,
}

/// Computes the statistics of `latencies` over a run of `total`.
fn stats(latencies: &[f64], total: Duration) -> Stats {
    let n = latencies.len() as f64;
    let average = latencies.iter().sum::<f64>() / n;
    let variance = latencies
        .iter()
        .map(|l| (l - average) * (l - average))
        .sum::<f64>()
        / n;
    Stats {
        rps: n / total.as_secs_f64(),
        slowest: latencies.iter().copied().fold(0.0, f64::max),
        stddev: variance.sqrt(),
    }
}

/// The verdict lines and whether every criterion passed.
fn verdict(report: &Report, stats: Stats, rate_per_sec: u64) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    if !report.errors.is_empty() {
        out.push_str("FAIL: too many errors\n");
        for (text, count) in &report.errors {
            out.push_str(&format!("FAIL: ERROR({text}) -> {count}\n"));
        }
        ok = false;
    }
    // etcdctl rounds the rate up by adding one to its integer part.
    let shown_rps = stats.rps as i64 + 1;
    if stats.rps / rate_per_sec as f64 <= MIN_THROUGHPUT_RATIO {
        out.push_str(&format!("FAIL: Throughput too low: {shown_rps} writes/s\n"));
        ok = false;
    } else {
        out.push_str(&format!("PASS: Throughput is {shown_rps} writes/s\n"));
    }
    if stats.slowest > MAX_SLOWEST_SECS {
        out.push_str(&format!(
            "Slowest request took too long: {:.6}s\n",
            stats.slowest
        ));
        ok = false;
    } else {
        out.push_str(&format!(
            "PASS: Slowest request took {:.6}s\n",
            stats.slowest
        ));
    }
    if stats.stddev > MAX_STDDEV_SECS {
        out.push_str(&format!("Stddev too high: {:.6}s\n", stats.stddev));
        ok = false;
    } else {
        out.push_str(&format!("PASS: Stddev is {:.6}s\n", stats.stddev));
    }
    out.push_str(if ok { "PASS\n" } else { "FAIL\n" });
    (out, ok)
}

/// A small deterministic-per-seed generator (splitmix64) for the keys.
struct KeyRng(u64);

impl KeyRng {
    /// Seeds from the clock.
    fn from_clock() -> KeyRng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        KeyRng(nanos)
    }

    /// A uniformly random non-negative `i64`.
    fn next_i63(&mut self) -> i64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 1) as i64
    }
}

/// Writes `value` as a zig-zag varint at the start of `buf`, leaving the
/// bytes after it as they were (Go's `binary.PutVarint`).
fn put_varint(buf: &mut [u8], value: i64) {
    let mut x = ((value << 1) ^ (value >> 63)) as u64;
    let mut i = 0;
    while x >= 0x80 {
        buf[i] = (x as u8) | 0x80;
        x >>= 7;
        i += 1;
    }
    buf[i] = x as u8;
}

/// The progress line for `current` of `total` steps.
fn bar_line(
    current: u64,
    total: u64,
    time_left: Option<Duration>,
    elapsed: Option<Duration>,
) -> String {
    let percent = current as f64 / (total as f64 / 100.0);
    let mut line = format!("\r {current} / {total}  {percent:6.2}%");
    if let Some(elapsed) = elapsed {
        line.push(' ');
        line.push_str(&crate::output::gofmt::go_duration(Duration::from_secs(
            elapsed.as_secs(),
        )));
    } else if let Some(left) = time_left.filter(|l| *l >= HALF_SECOND) {
        // Rounded to the nearest second, which follows etcdctl's bar
        // through most of a run.
        let secs = (left + HALF_SECOND).as_secs();
        line.push_str(&format!(" {:02}m{:02}s", secs / 60, secs % 60));
    }
    line
}

/// Draws the progress bar until the run's duration is over, then its
/// final line.
async fn progress_bar(total: u64) {
    let started = Instant::now();
    let mut current = 0u64;
    let mut changed = started;
    let mut next_step = started + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        while now >= next_step && current < total {
            current += 1;
            changed = next_step;
            next_step += Duration::from_secs(1);
        }
        if current == total {
            break;
        }
        let time_left = (current > 0).then(|| {
            let per_step = (changed - started) / current as u32;
            (per_step * (total - current) as u32).saturating_sub(now - changed)
        });
        emit(bar_line(current, total, time_left, None).as_bytes());
        tokio::time::sleep(BAR_REFRESH.min(next_step - now)).await;
    }
    emit(
        format!(
            "{}\n",
            bar_line(total, total, None, Some(started.elapsed()))
        )
        .as_bytes(),
    );
}

/// `check perf`.
pub async fn perf(ctx: &Ctx) -> Result<(), CtlError> {
    let load_name = ctx.flags.string("load");
    let Some(model) = load(&load_name) else {
        return Err(CtlError::new(
            EXIT_BAD_FEATURE,
            format!("unknown load option {load_name}"),
        ));
    };
    let prefix = ctx.flags.string("prefix");
    let mut clients = Vec::with_capacity(model.clients);
    for _ in 0..model.clients {
        clients.push(Client::connect(&ctx.global).await?);
    }
    let first = &clients[0];
    let probe = first.request(RangeRequest {
        key: prefix.clone().into_bytes(),
        range_end: prefix_end(prefix.as_bytes()),
        limit: 1,
        ..Default::default()
    });
    let existing = first
        .unary(|ch| async move { KvClient::new(ch).range(probe).await })
        .await
        .map_err(|s| CtlError::new(EXIT_ERROR, status_text(&s)))?;
    if !existing.kvs.is_empty() {
        return Err(CtlError::new(
            EXIT_INVALID_INPUT,
            format!("prefix {prefix:?} has keys. Delete with etcdctl del --prefix {prefix} first"),
        ));
    }

    let bar = tokio::spawn(progress_bar(DURATION_SECS));
    let report = Arc::new(Mutex::new(Report::default()));
    let (queue, receiver) = mpsc::channel::<PutRequest>(model.clients);
    let receiver = Arc::new(Mutex::new(receiver));
    let run_started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for client in clients.iter() {
        let receiver = receiver.clone();
        let report = report.clone();
        let channel = client.channel();
        let template = client.request(());
        workers.spawn(async move {
            loop {
                let Some(put) = receiver.lock().await.recv().await else {
                    return;
                };
                let started = Instant::now();
                let outcome = match &channel {
                    Some(channel) => {
                        let mut request = tonic::Request::new(put);
                        *request.metadata_mut() = template.metadata().clone();
                        KvClient::new(channel.clone())
                            .put(request)
                            .await
                            .map(|_| started.elapsed().as_secs_f64())
                            .map_err(|s| status_text(&s))
                    }
                    None => Err(crate::error::DEADLINE_TEXT.to_string()),
                };
                report.lock().await.record(outcome);
            }
        });
    }
    let generator = {
        let prefix = prefix.clone();
        async move {
            let mut rng = KeyRng::from_clock();
            let mut key = [0u8; KEY_SIZE];
            let interval = Duration::from_secs(1) / model.rate_per_sec as u32;
            let end = run_started + Duration::from_secs(DURATION_SECS);
            let mut next = run_started + interval;
            while next < end {
                tokio::time::sleep_until(next).await;
                next += interval;
                put_varint(&mut key, rng.next_i63());
                let mut full = prefix.clone().into_bytes();
                full.extend_from_slice(&key);
                let put = PutRequest {
                    key: full,
                    value: vec![0u8; VALUE_SIZE],
                    ..Default::default()
                };
                if queue.send(put).await.is_err() {
                    break;
                }
            }
        }
    };
    generator.await;
    while workers.join_next().await.is_some() {}
    let total = run_started.elapsed();
    let _ = bar.await;
    let report = std::mem::take(&mut *report.lock().await);

    let cleanup = |e: tonic::Status| CtlError::new(EXIT_ERROR, status_text(&e));
    let delete = first.request(DeleteRangeRequest {
        key: prefix.clone().into_bytes(),
        range_end: prefix_end(prefix.as_bytes()),
        ..Default::default()
    });
    let channel = first.channel();
    let deleted = within(channel.clone(), |ch| async move {
        KvClient::new(ch).delete_range(delete).await
    })
    .await
    .map_err(cleanup)?;
    if ctx.flags.bool("auto-compact") {
        let revision = deleted.header.map(|h| h.revision).unwrap_or_default();
        emit(format!("Compacting with revision {revision}\n").as_bytes());
        let compact = first.request(CompactionRequest {
            revision,
            physical: true,
        });
        within(channel.clone(), |ch| async move {
            KvClient::new(ch).compact(compact).await
        })
        .await
        .map_err(cleanup)?;
        emit(format!("Compacted with revision {revision}\n").as_bytes());
    }
    if ctx.flags.bool("auto-defrag") {
        for endpoint in &ctx.global.endpoints {
            emit(format!("Defragmenting {endpoint:?}\n").as_bytes());
            let one = Client::connect_to(
                &ctx.global,
                std::slice::from_ref(endpoint),
                crate::client::TargetStyle::Passthrough,
            )
            .await?;
            let defrag = one.request(DefragmentRequest {});
            within(one.channel(), |ch| async move {
                MaintenanceClient::new(ch).defragment(defrag).await
            })
            .await
            .map_err(cleanup)?;
            emit(format!("Defragmented {endpoint:?}\n").as_bytes());
        }
    }
    let stats = stats(&report.latencies, total);
    let (text, ok) = verdict(&report, stats, model.rate_per_sec);
    emit(text.as_bytes());
    if !ok {
        return Err(CtlError::raw(EXIT_ERROR, ""));
    }
    Ok(())
}

/// Runs one cleanup call under [`CLEANUP_TIMEOUT`].
async fn within<T, F, Fut>(
    channel: Option<tonic::transport::Channel>,
    call: F,
) -> Result<T, tonic::Status>
where
    F: FnOnce(tonic::transport::Channel) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let Some(channel) = channel else {
        tokio::time::sleep(CLEANUP_TIMEOUT).await;
        return Err(tonic::Status::deadline_exceeded(
            crate::error::DEADLINE_TEXT,
        ));
    };
    match tokio::time::timeout(CLEANUP_TIMEOUT, call(channel)).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(tonic::Status::deadline_exceeded(
            crate::error::DEADLINE_TEXT,
        )),
    }
}

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_lines_match_etcdctl() {
        assert_eq!(bar_line(0, 60, None, None), "\r 0 / 60    0.00%");
        assert_eq!(
            bar_line(1, 60, Some(Duration::from_secs(59)), None),
            "\r 1 / 60    1.67% 00m59s"
        );
        assert_eq!(
            bar_line(59, 60, Some(Duration::from_millis(400)), None),
            "\r 59 / 60   98.33%"
        );
        assert_eq!(
            bar_line(60, 60, None, Some(Duration::from_millis(60_400))),
            "\r 60 / 60  100.00% 1m0s"
        );
    }

    #[test]
    fn verdict_passes_and_fails_like_etcdctl() {
        let ok = Report {
            latencies: vec![0.01, 0.02],
            errors: vec![],
        };
        let s = Stats {
            rps: 149.4,
            slowest: 0.300372,
            stddev: 0.023261,
        };
        assert_eq!(
            verdict(&ok, s, 150),
            (
                "PASS: Throughput is 150 writes/s\nPASS: Slowest request took 0.300372s\nPASS: Stddev is 0.023261s\nPASS\n".to_string(),
                true
            )
        );
        let bad = Report {
            latencies: vec![],
            errors: vec![("context deadline exceeded".to_string(), 3)],
        };
        let s = Stats {
            rps: 10.0,
            slowest: 0.6,
            stddev: 0.2,
        };
        assert_eq!(
            verdict(&bad, s, 150).0,
            "FAIL: too many errors\nFAIL: ERROR(context deadline exceeded) -> 3\nFAIL: Throughput too low: 11 writes/s\nSlowest request took too long: 0.600000s\nStddev too high: 0.200000s\nFAIL\n"
        );
    }

    #[test]
    fn varint_overwrites_only_its_bytes() {
        let mut buf = [0xaau8; 4];
        put_varint(&mut buf, 1);
        assert_eq!(buf, [2, 0xaa, 0xaa, 0xaa]);
        put_varint(&mut buf, 64);
        assert_eq!(buf, [0x80, 0x01, 0xaa, 0xaa]);
    }

    #[test]
    fn stats_are_population_statistics() {
        let s = stats(&[1.0, 3.0], Duration::from_secs(2));
        assert_eq!(s.rps, 1.0);
        assert_eq!(s.slowest, 3.0);
        assert_eq!(s.stddev, 1.0);
    }
}
