//! Turning recorded latencies into the report: summary, histogram, percentiles.
//!
//! The runner hands over every successful request's latency in nanoseconds
//! plus error counts; nothing is sampled or pre-bucketed, so the figures are
//! exact for the run. The layout follows etcd's `tools/benchmark` (Summary,
//! response time histogram, latency distribution, errors) so results read the
//! same way side by side; latencies are shown in milliseconds rather than
//! seconds because a sub-millisecond server needs the digits.
//!
//! Definitions:
//! - the average and standard deviation are over successful requests only
//!   (population standard deviation, as etcd's report computes it);
//! - Requests/sec is successful requests divided by the wall time of the whole
//!   run, from the first request sent to the last response received;
//! - the p-th percentile is the nearest-rank one: the smallest latency that at
//!   least p% of the requests did not exceed;
//! - the histogram's buckets are geometric between the fastest and slowest
//!   request, so a long tail does not squash every request into one bar.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::cpu;

/// The percentiles of the latency distribution, in the order they are shown.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Number of histogram buckets in the text report.
const HISTOGRAM_BUCKETS: usize = 10;

/// Width in characters of the longest histogram bar.
const HISTOGRAM_BAR_WIDTH: usize = 40;

/// Nanoseconds per millisecond, for converting recorded latencies.
const NANOS_PER_MILLI: f64 = 1e6;

/// What the benchmark was asked to do, echoed in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Workload name (`put`, `range`, `txn-put`).
    pub workload: String,
    /// Server endpoints the connections were spread over.
    pub endpoints: Vec<String>,
    /// Number of gRPC connections.
    pub conns: usize,
    /// Number of concurrent clients.
    pub clients: usize,
    /// Number of requests asked for.
    pub total: u64,
}

/// The raw outcome of a run, as the runner collected it.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Wall time from the first request to the last response.
    pub elapsed: Duration,
    /// Latency of each successful request, in nanoseconds, in no order.
    pub latencies_ns: Vec<u64>,
    /// Failed requests, counted per distinct error text.
    pub errors: BTreeMap<String, u64>,
    /// CPU time (user plus system) the benchmark process used over the run;
    /// `None` where it cannot be read.
    pub client_cpu: Option<Duration>,
}

/// Latency statistics of the successful requests, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Quickest request.
    pub fastest_ms: f64,
    /// Slowest request.
    pub slowest_ms: f64,
    /// Mean latency.
    pub average_ms: f64,
    /// Population standard deviation of the latency.
    pub stddev_ms: f64,
    /// Percentiles as `("p50", latency)` pairs, in [`PERCENTILES`] order.
    #[serde(serialize_with = "serialize_percentiles")]
    pub percentiles_ms: Vec<(String, f64)>,
}

/// The finished report: printable as text or JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What was run.
    #[serde(flatten)]
    pub setup: Setup,
    /// Requests that got a successful response.
    pub succeeded: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Wall time of the run in seconds.
    pub total_secs: f64,
    /// Successful requests per second of wall time.
    pub requests_per_sec: f64,
    /// Latency statistics; absent when no request succeeded.
    pub latency: Option<LatencyStats>,
    /// Histogram buckets as `(upper bound in ms, count)`; not in JSON.
    #[serde(skip)]
    pub histogram: Vec<(f64, u64)>,
    /// Failed requests per error text.
    pub errors: BTreeMap<String, u64>,
    /// CPU seconds (user plus system) the benchmark client used over the
    /// run; `null` where it cannot be read.
    pub client_cpu_secs: Option<f64>,
    /// Client CPU microseconds per request issued (succeeded or failed).
    pub client_cpu_us_per_request: Option<f64>,
}

impl Report {
    /// Builds the report from a run's outcome (sorting its latencies).
    pub fn new(setup: Setup, mut outcome: Outcome) -> Self {
        outcome.latencies_ns.sort_unstable();
        let sorted = &outcome.latencies_ns;
        let total_secs = outcome.elapsed.as_secs_f64();
        let succeeded = sorted.len() as u64;
        let requests_per_sec = if total_secs > 0.0 {
            succeeded as f64 / total_secs
        } else {
            0.0
        };
        let failed = outcome.errors.values().sum();
        Report {
            setup,
            succeeded,
            failed,
            total_secs,
            requests_per_sec,
            latency: latency_stats(sorted),
            histogram: histogram(sorted, HISTOGRAM_BUCKETS)
                .into_iter()
                .map(|(bound_ns, count)| (bound_ns as f64 / NANOS_PER_MILLI, count))
                .collect(),
            errors: outcome.errors,
            client_cpu_secs: outcome.client_cpu.map(|cpu| cpu.as_secs_f64()),
            client_cpu_us_per_request: outcome
                .client_cpu
                .and_then(|cpu| cpu::micros_per_request(cpu, succeeded + failed)),
        }
    }

    /// The report as etcd's benchmark lays it out.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    /// Writes the text report into `out`.
    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "\nSummary:")?;
        writeln!(out, "  Total:\t{:.4} secs.", self.total_secs)?;
        if let Some(latency) = &self.latency {
            writeln!(out, "  Slowest:\t{:.4} ms.", latency.slowest_ms)?;
            writeln!(out, "  Fastest:\t{:.4} ms.", latency.fastest_ms)?;
            writeln!(out, "  Average:\t{:.4} ms.", latency.average_ms)?;
            writeln!(out, "  Stddev:\t{:.4} ms.", latency.stddev_ms)?;
        }
        writeln!(out, "  Requests/sec:\t{:.4}", self.requests_per_sec)?;
        if let (Some(secs), Some(per_request)) =
            (self.client_cpu_secs, self.client_cpu_us_per_request)
        {
            writeln!(
                out,
                "  Client CPU:\t{secs:.2} secs ({per_request:.1} µs/request)."
            )?;
        }

        if !self.histogram.is_empty() {
            writeln!(out, "\nResponse time histogram (ms):")?;
            let tallest = self.histogram.iter().map(|&(_, c)| c).max().unwrap_or(1);
            for &(bound_ms, count) in &self.histogram {
                let bar = (count as usize * HISTOGRAM_BAR_WIDTH).div_ceil(tallest.max(1) as usize);
                writeln!(out, "  {bound_ms:.4} [{count}]\t|{}", "∎".repeat(bar))?;
            }
        }

        if let Some(latency) = &self.latency {
            writeln!(out, "\nLatency distribution:")?;
            for (p, (_, ms)) in PERCENTILES.iter().zip(&latency.percentiles_ms) {
                writeln!(out, "  {p}% in {ms:.4} ms.")?;
            }
        }

        if !self.errors.is_empty() {
            writeln!(out, "\nError distribution ({} failed):", self.failed)?;
            for (error, count) in &self.errors {
                writeln!(out, "  [{count}]\t{error}")?;
            }
        }
        Ok(())
    }
}

/// Latency statistics over `sorted` (ascending, in nanoseconds); `None` when
/// empty.
pub fn latency_stats(sorted: &[u64]) -> Option<LatencyStats> {
    let (&fastest, &slowest) = (sorted.first()?, sorted.last()?);
    let n = sorted.len() as f64;
    let mean = sorted.iter().map(|&ns| ns as f64).sum::<f64>() / n;
    let variance = sorted
        .iter()
        .map(|&ns| (ns as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let ms = |ns: f64| ns / NANOS_PER_MILLI;
    Some(LatencyStats {
        fastest_ms: ms(fastest as f64),
        slowest_ms: ms(slowest as f64),
        average_ms: ms(mean),
        stddev_ms: ms(variance.sqrt()),
        percentiles_ms: PERCENTILES
            .iter()
            .map(|&p| (percentile_label(p), ms(percentile(sorted, p) as f64)))
            .collect(),
    })
}

/// The nearest-rank `p`-th percentile (0 < p <= 100) of non-empty `sorted`:
/// the element at rank `ceil(p/100 * n)`, counting from 1.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `buckets` geometric buckets spanning `sorted` (ascending, non-zero
/// latencies in ns), as `(inclusive upper bound, count)`. Counts add up to
/// `sorted.len()`; the last bound is the slowest sample. Empty input gives no
/// buckets, equal samples one bucket.
pub fn histogram(sorted: &[u64], buckets: usize) -> Vec<(u64, u64)> {
    let (Some(&fastest), Some(&slowest)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    if fastest == slowest || buckets <= 1 {
        return vec![(slowest, sorted.len() as u64)];
    }
    let low = fastest.max(1) as f64;
    let ratio = slowest as f64 / low;
    let mut bounds: Vec<u64> = (1..buckets)
        .map(|k| (low * ratio.powf(k as f64 / buckets as f64)) as u64)
        .collect();
    bounds.push(slowest);

    let mut counts = Vec::with_capacity(buckets);
    let mut start = 0;
    for &bound in &bounds {
        let end = start + sorted[start..].partition_point(|&ns| ns <= bound);
        counts.push((bound, (end - start) as u64));
        start = end;
    }
    counts
}

/// `"p50"`, `"p99.9"`: the name of percentile `p` in JSON output.
fn percentile_label(p: f64) -> String {
    format!("p{p}")
}

/// Writes percentiles as a JSON object `{"p10": .., "p99.9": ..}` in order.
fn serialize_percentiles<S: serde::Serializer>(
    percentiles: &[(String, f64)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(percentiles.len()))?;
    for (label, ms) in percentiles {
        map.serialize_entry(label, ms)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 10.0), 10);
        assert_eq!(percentile(&sorted, 50.0), 50);
        assert_eq!(percentile(&sorted, 99.0), 99);
        assert_eq!(percentile(&sorted, 99.9), 100);
        assert_eq!(percentile(&sorted, 100.0), 100);
        assert_eq!(percentile(&[7], 0.1), 7);
        assert_eq!(percentile(&[7], 99.9), 7);
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&ten, 25.0), 3, "rank ceil(2.5) = 3");
        assert_eq!(percentile(&ten, 75.0), 8, "rank ceil(7.5) = 8");
    }

    #[test]
    fn summary_statistics() {
        let stats = latency_stats(&[
            2_000_000, 4_000_000, 4_000_000, 4_000_000, 5_000_000, 5_000_000, 7_000_000, 9_000_000,
        ])
        .unwrap();
        assert_eq!(stats.fastest_ms, 2.0);
        assert_eq!(stats.slowest_ms, 9.0);
        assert_eq!(stats.average_ms, 5.0);
        assert_eq!(stats.stddev_ms, 2.0);
        assert_eq!(stats.percentiles_ms[2], ("p50".to_string(), 4.0));
        assert_eq!(stats.percentiles_ms[7], ("p99.9".to_string(), 9.0));
        assert!(latency_stats(&[]).is_none());
    }

    #[test]
    fn histogram_counts_every_sample_once() {
        let sorted: Vec<u64> = (1..=1000).map(|i| i * i).collect();
        let buckets = histogram(&sorted, 10);
        assert_eq!(buckets.len(), 10);
        assert_eq!(buckets.iter().map(|&(_, c)| c).sum::<u64>(), 1000);
        assert_eq!(buckets.last().unwrap().0, 1_000_000);
        assert!(
            buckets.windows(2).all(|w| w[0].0 <= w[1].0),
            "bounds ascend"
        );
        // Geometric bounds: 1 ns to 1 ms in 10 steps is a factor of ~4 each.
        assert_eq!(buckets[0].0, 3);
        assert_eq!(buckets[0].1, 1, "only 1 ns is <= 3 ns");
    }

    #[test]
    fn histogram_edge_cases() {
        assert!(histogram(&[], 10).is_empty());
        assert_eq!(histogram(&[5, 5, 5], 10), vec![(5, 3)]);
        assert_eq!(histogram(&[0, 10], 2), vec![(3, 1), (10, 1)]);
    }

    #[test]
    fn json_has_ordered_percentiles_and_no_histogram() {
        let setup = Setup {
            workload: "put".into(),
            endpoints: vec!["http://127.0.0.1:2379".into()],
            conns: 1,
            clients: 1,
            total: 2,
        };
        let outcome = Outcome {
            elapsed: Duration::from_secs(2),
            latencies_ns: vec![3_000_000, 1_000_000],
            errors: BTreeMap::from([("Unavailable: boom".to_string(), 1)]),
            client_cpu: Some(Duration::from_millis(30)),
        };
        let json = serde_json::to_value(Report::new(setup, outcome)).unwrap();
        assert_eq!(json["workload"], "put");
        assert_eq!(json["succeeded"], 2);
        assert_eq!(json["failed"], 1);
        assert_eq!(json["requests_per_sec"], 1.0);
        assert_eq!(json["latency"]["percentiles_ms"]["p50"], 1.0);
        assert_eq!(json["latency"]["percentiles_ms"]["p99.9"], 3.0);
        assert!(json.get("histogram").is_none());
        assert_eq!(json["client_cpu_secs"], 0.03);
        assert_eq!(
            json["client_cpu_us_per_request"], 10_000.0,
            "30 ms over 3 requests, failed ones included"
        );
    }

    #[test]
    fn client_cpu_in_text_only_when_known() {
        let setup = Setup {
            workload: "put".into(),
            endpoints: vec![],
            conns: 1,
            clients: 1,
            total: 4,
        };
        let outcome = |client_cpu| Outcome {
            elapsed: Duration::from_secs(1),
            latencies_ns: vec![1_000_000; 4],
            errors: BTreeMap::new(),
            client_cpu,
        };
        let known = Report::new(setup.clone(), outcome(Some(Duration::from_millis(10))));
        assert!(
            known
                .to_text()
                .contains("Client CPU:\t0.01 secs (2500.0 µs/request)."),
            "{}",
            known.to_text()
        );
        let unknown = Report::new(setup, outcome(None));
        assert!(!unknown.to_text().contains("Client CPU"));
        let json = serde_json::to_value(&unknown).unwrap();
        assert!(json["client_cpu_us_per_request"].is_null());
    }
}
