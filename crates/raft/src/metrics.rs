//! Prometheus metrics of the raft driver, under etcd's names.
//!
//! They live in `prometheus::default_registry()` and are registered once per
//! process, however many members run in it (tests start several): members in one
//! process share them.

use std::sync::OnceLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge};

/// First bucket of the fsync histogram, in seconds (etcd: 1 ms).
const FSYNC_BUCKET_START_SECS: f64 = 0.001;
/// Growth factor between fsync histogram buckets.
const FSYNC_BUCKET_FACTOR: f64 = 2.0;
/// Number of fsync histogram buckets (1 ms .. ~8 s).
const FSYNC_BUCKET_COUNT: usize = 14;

/// The raft driver's metrics.
pub(crate) struct Metrics {
    /// `etcd_disk_wal_fsync_duration_seconds`: latency of each synced log write.
    pub(crate) wal_fsync_seconds: Histogram,
    /// `etcd_server_proposals_committed_total`: the commit index.
    pub(crate) proposals_committed: IntGauge,
    /// `etcd_server_has_leader`: 1 if a leader is known.
    pub(crate) has_leader: IntGauge,
    /// `etcd_server_is_leader`: 1 if this member leads.
    pub(crate) is_leader: IntGauge,
    /// `etcd_server_leader_changes_seen_total`: leader changes seen.
    pub(crate) leader_changes: IntCounter,
    /// `etcd_server_slow_read_indexes_total`: ReadIndex requests that timed
    /// out unanswered.
    pub(crate) slow_read_indexes: IntCounter,
    /// `etcd_server_read_indexes_failed_total`: ReadIndex requests raft
    /// refused. raft-rs never refuses one (it drops what it cannot serve,
    /// which times out and counts as slow), so this stays at zero; it is
    /// exported because etcd's dashboards expect it.
    pub(crate) read_indexes_failed: IntCounter,
}

/// The process-wide metrics, registered on first use.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::register)
}

impl Metrics {
    /// Creates the metrics and registers them in the default registry.
    fn register() -> Metrics {
        let buckets = prometheus::exponential_buckets(
            FSYNC_BUCKET_START_SECS,
            FSYNC_BUCKET_FACTOR,
            FSYNC_BUCKET_COUNT,
        )
        .expect("valid bucket layout");
        let wal_fsync_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
            )
            .buckets(buckets),
        )
        .expect("valid histogram");
        let metrics = Metrics {
            wal_fsync_seconds,
            proposals_committed: gauge(
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            has_leader: gauge(
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            leader_changes: counter(
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            slow_read_indexes: counter(
                "etcd_server_slow_read_indexes_total",
                "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
            ),
            read_indexes_failed: counter(
                "etcd_server_read_indexes_failed_total",
                "The total number of failed read indexes seen.",
            ),
        };
        let registry = prometheus::default_registry();
        let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(metrics.wal_fsync_seconds.clone()),
            Box::new(metrics.proposals_committed.clone()),
            Box::new(metrics.has_leader.clone()),
            Box::new(metrics.is_leader.clone()),
            Box::new(metrics.leader_changes.clone()),
            Box::new(metrics.slow_read_indexes.clone()),
            Box::new(metrics.read_indexes_failed.clone()),
        ];
        for collector in collectors {
            if let Err(e) = registry.register(collector) {
                tracing::warn!("raft metric not registered: {e}");
            }
        }
        metrics
    }
}

/// An integer gauge with a valid static name.
fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid gauge")
}

/// An integer counter with a valid static name.
fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid counter")
}
