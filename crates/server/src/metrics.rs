//! Prometheus metrics under etcd's names, served at `/metrics`.
//!
//! Raft-level metrics (`etcd_server_has_leader`, proposals committed, WAL
//! fsync durations) live in the raft crate; this module owns the apply and
//! backend ones. Everything registers in the process-wide default registry.

use std::sync::LazyLock;

use prometheus::{
    Histogram, IntCounter, IntGauge, register_histogram, register_int_counter, register_int_gauge,
};

/// Raft index applied to the state machine (etcd reports it as a gauge).
pub static PROPOSALS_APPLIED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied."
    )
    .expect("registering etcd_server_proposals_applied_total")
});

/// Proposals waiting to be committed.
pub static PROPOSALS_PENDING: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit."
    )
    .expect("registering etcd_server_proposals_pending")
});

/// Proposals that failed (dropped, timed out).
pub static PROPOSALS_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen."
    )
    .expect("registering etcd_server_proposals_failed_total")
});

/// Size of the backend file.
pub static DB_TOTAL_SIZE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes."
    )
    .expect("registering etcd_mvcc_db_total_size_in_bytes")
});

/// Bytes of the backend in use.
pub static DB_TOTAL_SIZE_IN_USE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes."
    )
    .expect("registering etcd_mvcc_db_total_size_in_use_in_bytes")
});

/// The store's current revision.
pub static CURRENT_REVISION: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store."
    )
    .expect("registering etcd_debugging_mvcc_current_revision")
});

/// The store's compaction revision.
pub static COMPACT_REVISION: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store."
    )
    .expect("registering etcd_debugging_mvcc_compact_revision")
});

/// Time of each durable backend commit: the overlay written to redb and fsynced.
pub static BACKEND_COMMIT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
        prometheus::exponential_buckets(0.001, 2.0, 14).expect("valid buckets")
    )
    .expect("registering etcd_disk_backend_commit_duration_seconds")
});

/// Registers every metric of this module so a scrape lists them from the start.
pub fn register_all() {
    LazyLock::force(&PROPOSALS_APPLIED);
    LazyLock::force(&PROPOSALS_PENDING);
    LazyLock::force(&PROPOSALS_FAILED);
    LazyLock::force(&DB_TOTAL_SIZE);
    LazyLock::force(&DB_TOTAL_SIZE_IN_USE);
    LazyLock::force(&CURRENT_REVISION);
    LazyLock::force(&COMPACT_REVISION);
    LazyLock::force(&BACKEND_COMMIT_SECONDS);
}

/// Renders the default registry in Prometheus text format.
pub fn render() -> String {
    use prometheus::Encoder as _;
    let mut out = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&prometheus::gather(), &mut out)
        .expect("text encoding of metrics");
    String::from_utf8(out).expect("metrics are UTF-8")
}
