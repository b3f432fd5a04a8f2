//! Prometheus metrics under etcd's names, served at `/metrics`.
//!
//! Raft-level metrics (`etcd_server_has_leader`, proposals committed, WAL
//! fsync durations) live in the raft crate; this module owns the apply and
//! backend ones. Everything registers in the process-wide default registry.
//! Families with more wiring of their own have their own modules:
//! `crate::grpc_metrics` (gRPC calls and client bytes), `crate::mvcc_metrics`
//! (per-operation store counters), `crate::peer_metrics` (peer traffic) and
//! `crate::process_metrics` (the process, read from `/proc` at scrape time).

use std::sync::LazyLock;

use prometheus::{
    Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, register_histogram,
    register_int_counter, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
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

/// `etcd_server_quota_backend_bytes`: the backend quota this member enforces.
pub static QUOTA_BACKEND_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes."
    )
    .expect("registering etcd_server_quota_backend_bytes")
});

/// `etcd_server_id`: 1 under this member's id in hex.
pub static SERVER_ID: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        &["server_id"]
    )
    .expect("registering etcd_server_id")
});

/// `etcd_server_version`: 1 under the etcd version this server speaks.
pub static SERVER_VERSION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        &["server_version"]
    )
    .expect("registering etcd_server_version")
});

/// `etcd_cluster_version`: 1 under the cluster's major.minor version.
pub static CLUSTER_VERSION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "etcd_cluster_version",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        &["cluster_version"]
    )
    .expect("registering etcd_cluster_version")
});

/// `etcd_server_is_learner`: 1 while this member is a learner (set at scrape).
pub static IS_LEARNER: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise."
    )
    .expect("registering etcd_server_is_learner")
});

/// `etcd_server_health_success`: `/health` answers that found the member healthy.
pub static HEALTH_SUCCESS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_server_health_success",
        "The total number of successful health checks"
    )
    .expect("registering etcd_server_health_success")
});

/// `etcd_server_health_failures`: `/health` answers that found it unhealthy.
pub static HEALTH_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_server_health_failures",
        "The total number of failed health checks"
    )
    .expect("registering etcd_server_health_failures")
});

/// `etcd_server_heartbeat_send_failures_total`: heartbeats a leader sent to a
/// peer more than two heartbeat intervals after the previous one (`crate::peer`).
pub static HEARTBEAT_SEND_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_server_heartbeat_send_failures_total",
        "The total number of leader heartbeat send failures (likely overloaded from slow disk)."
    )
    .expect("registering etcd_server_heartbeat_send_failures_total")
});

/// `etcd_server_slow_apply_total`: entries whose apply took longer than
/// [`SLOW_APPLY`].
pub static SLOW_APPLIES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_server_slow_apply_total",
        "The total number of slow apply requests (likely overloaded from slow disk)."
    )
    .expect("registering etcd_server_slow_apply_total")
});

/// An apply slower than this counts in `etcd_server_slow_apply_total` (etcd's threshold).
pub const SLOW_APPLY: std::time::Duration = std::time::Duration::from_millis(100);

/// `etcd_server_learner_promote_successes`: promotions this member made as leader.
pub static LEARNER_PROMOTE_SUCCESSES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_server_learner_promote_successes",
        "The total number of successful learner promotions while this member is leader."
    )
    .expect("registering etcd_server_learner_promote_successes")
});

/// `etcd_server_learner_promote_failures`: refused promotions, by reason.
pub static LEARNER_PROMOTE_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "etcd_server_learner_promote_failures",
        "The total number of failed learner promotions (likely learner not ready) while this member is leader.",
        &["Reason"]
    )
    .expect("registering etcd_server_learner_promote_failures")
});

/// `etcd_debugging_lease_granted_total`: leases granted (applied).
pub static LEASE_GRANTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_debugging_lease_granted_total",
        "The total number of granted leases."
    )
    .expect("registering etcd_debugging_lease_granted_total")
});

/// `etcd_debugging_lease_revoked_total`: leases revoked (applied).
pub static LEASE_REVOKED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_debugging_lease_revoked_total",
        "The total number of revoked leases."
    )
    .expect("registering etcd_debugging_lease_revoked_total")
});

/// `etcd_debugging_lease_renewed_total`: renewals served by this member as leader.
pub static LEASE_RENEWED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_debugging_lease_renewed_total",
        "The number of renewed leases seen by the leader."
    )
    .expect("registering etcd_debugging_lease_renewed_total")
});

/// `etcd_debugging_lease_ttl_total`: the TTLs leases were granted with, in seconds.
pub static LEASE_TTL: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "etcd_debugging_lease_ttl_total",
        "Bucketed histogram of lease TTLs.",
        prometheus::exponential_buckets(1.0, 2.0, 24).expect("valid buckets")
    )
    .expect("registering etcd_debugging_lease_ttl_total")
});

/// `etcd_debugging_server_lease_expired_total`: expired leases this member
/// revoked as leader.
pub static LEASE_EXPIRED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_debugging_server_lease_expired_total",
        "The total number of expired leases."
    )
    .expect("registering etcd_debugging_server_lease_expired_total")
});

/// `etcd_debugging_mvcc_db_total_size_in_bytes`: the older name of
/// `etcd_mvcc_db_total_size_in_bytes`, still exported by etcd 3.4.
pub static DEBUGGING_DB_TOTAL_SIZE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_debugging_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes."
    )
    .expect("registering etcd_debugging_mvcc_db_total_size_in_bytes")
});

/// `etcd_debugging_mvcc_keys_total`: live keys (set at scrape).
pub static KEYS_TOTAL: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("etcd_debugging_mvcc_keys_total", "Total number of keys.")
        .expect("registering etcd_debugging_mvcc_keys_total")
});

/// `etcd_debugging_mvcc_events_total`: events sent to watchers.
pub static EVENTS_SENT: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "etcd_debugging_mvcc_events_total",
        "Total number of events sent by this member."
    )
    .expect("registering etcd_debugging_mvcc_events_total")
});

/// `etcd_debugging_mvcc_watcher_total`: watchers (set at scrape).
pub static WATCHERS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_debugging_mvcc_watcher_total",
        "Total number of watchers."
    )
    .expect("registering etcd_debugging_mvcc_watcher_total")
});

/// `etcd_debugging_mvcc_slow_watcher_total`: watchers out of the synced
/// group, catching up from the backend (set at scrape).
pub static SLOW_WATCHERS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_debugging_mvcc_slow_watcher_total",
        "Total number of unsynced slow watchers."
    )
    .expect("registering etcd_debugging_mvcc_slow_watcher_total")
});

/// `etcd_debugging_mvcc_watch_stream_total`: open watch streams.
pub static WATCH_STREAMS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "etcd_debugging_mvcc_watch_stream_total",
        "Total number of watch streams."
    )
    .expect("registering etcd_debugging_mvcc_watch_stream_total")
});

/// `etcd_disk_backend_snapshot_duration_seconds`: how long a backend copy
/// lived, from export to the end of its transfer (to a client or a follower).
pub static BACKEND_SNAPSHOT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "etcd_disk_backend_snapshot_duration_seconds",
        "The latency distribution of backend snapshots.",
        prometheus::exponential_buckets(0.01, 2.0, 17).expect("valid buckets")
    )
    .expect("registering etcd_disk_backend_snapshot_duration_seconds")
});

/// `etcd_disk_backend_defrag_duration_seconds`: how long each defragmentation took.
pub static DEFRAG_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "etcd_disk_backend_defrag_duration_seconds",
        "The latency distribution of backend defragmentation.",
        prometheus::exponential_buckets(0.1, 2.0, 13).expect("valid buckets")
    )
    .expect("registering etcd_disk_backend_defrag_duration_seconds")
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
    LazyLock::force(&QUOTA_BACKEND_BYTES);
    LazyLock::force(&SERVER_ID);
    LazyLock::force(&SERVER_VERSION);
    LazyLock::force(&CLUSTER_VERSION);
    LazyLock::force(&IS_LEARNER);
    LazyLock::force(&HEALTH_SUCCESS);
    LazyLock::force(&HEALTH_FAILURES);
    LazyLock::force(&HEARTBEAT_SEND_FAILURES);
    LazyLock::force(&SLOW_APPLIES);
    LazyLock::force(&LEARNER_PROMOTE_SUCCESSES);
    LazyLock::force(&LEARNER_PROMOTE_FAILURES);
    LazyLock::force(&LEASE_GRANTED);
    LazyLock::force(&LEASE_REVOKED);
    LazyLock::force(&LEASE_RENEWED);
    LazyLock::force(&LEASE_TTL);
    LazyLock::force(&LEASE_EXPIRED);
    LazyLock::force(&DEBUGGING_DB_TOTAL_SIZE);
    LazyLock::force(&KEYS_TOTAL);
    LazyLock::force(&EVENTS_SENT);
    LazyLock::force(&WATCHERS);
    LazyLock::force(&WATCH_STREAMS);
    LazyLock::force(&SLOW_WATCHERS);
    LazyLock::force(&BACKEND_SNAPSHOT_SECONDS);
    LazyLock::force(&DEFRAG_SECONDS);
    LazyLock::force(&crate::snapshot::APPLY_IN_PROGRESS);
    LazyLock::force(&crate::snapshot::INSTALLED);
    crate::mvcc_metrics::register();
    crate::grpc_metrics::register();
    crate::peer_metrics::register();
    crate::process_metrics::register();
}

/// Records the facts about this member that never change while it runs:
/// its id, the versions it speaks and its backend quota.
pub fn describe_member(member_id: u64, quota_backend_bytes: i64) {
    SERVER_ID
        .with_label_values(&[format!("{member_id:x}").as_str()])
        .set(1);
    SERVER_VERSION
        .with_label_values(&[crate::config::ETCD_VERSION])
        .set(1);
    // etcd labels the cluster version with its major.minor only.
    let cluster = crate::config::ETCD_CLUSTER_VERSION;
    let major_minor = cluster
        .match_indices('.')
        .nth(1)
        .map_or(cluster, |(dot, _)| &cluster[..dot]);
    CLUSTER_VERSION.with_label_values(&[major_minor]).set(1);
    QUOTA_BACKEND_BYTES.set(quota_backend_bytes);
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
