//! `/metrics` against the reference: the same workload on etcd 3.4.23 and on
//! ours, then the families compared. Every family both expose must agree on
//! type, help text and label names; the families etcd's dashboards and
//! alerts use must be there; and the counters must have moved by what the
//! workload implies, on both servers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use retcd_tests::Server;

/// Families ours must expose (before any request, unless peers are needed).
const REQUIRED: &[&str] = &[
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
    "etcd_server_quota_backend_bytes",
    "etcd_server_id",
    "etcd_server_version",
    "etcd_cluster_version",
    "etcd_server_is_learner",
    "etcd_server_health_success",
    "etcd_server_health_failures",
    "etcd_server_heartbeat_send_failures_total",
    "etcd_server_slow_apply_total",
    "etcd_server_slow_read_indexes_total",
    "etcd_server_read_indexes_failed_total",
    "etcd_server_learner_promote_successes",
    "etcd_server_snapshot_apply_in_progress_total",
    "etcd_debugging_lease_granted_total",
    "etcd_debugging_lease_revoked_total",
    "etcd_debugging_lease_renewed_total",
    "etcd_debugging_lease_ttl_total",
    "etcd_debugging_server_lease_expired_total",
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
    "etcd_mvcc_range_total",
    "etcd_mvcc_txn_total",
    "etcd_debugging_mvcc_put_total",
    "etcd_debugging_mvcc_delete_total",
    "etcd_debugging_mvcc_range_total",
    "etcd_debugging_mvcc_txn_total",
    "etcd_debugging_mvcc_total_put_size_in_bytes",
    "etcd_debugging_mvcc_keys_total",
    "etcd_debugging_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_debugging_mvcc_events_total",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_mvcc_slow_watcher_total",
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_debugging_mvcc_compact_revision",
    "etcd_debugging_mvcc_current_revision",
    "etcd_disk_backend_snapshot_duration_seconds",
    "etcd_disk_backend_defrag_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_network_client_grpc_received_bytes_total",
    "etcd_network_client_grpc_sent_bytes_total",
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// One metric family of a scrape.
#[derive(Debug, Default)]
struct Family {
    /// `# HELP` text.
    help: String,
    /// `# TYPE`.
    kind: String,
    /// Label names of its samples (`le` of histogram buckets left out).
    label_names: BTreeSet<String>,
    /// Samples: sample name and labels to value.
    samples: BTreeMap<(String, BTreeMap<String, String>), f64>,
}

/// A parsed scrape, by family name.
type Scrape = BTreeMap<String, Family>;

/// The family a sample named `name` belongs to.
fn family_of<'a>(scrape: &Scrape, name: &'a str) -> &'a str {
    if scrape.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && scrape.contains_key(base)
        {
            return base;
        }
    }
    name
}

/// Parses `{a="x",b="y"}` (values may hold escaped quotes).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    labels
}

/// Parses Prometheus text format.
fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            scrape.entry(name.to_string()).or_default().help = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            scrape.entry(name.to_string()).or_default().kind = kind.to_string();
        } else if !line.is_empty() && !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|e| panic!("{line}: {e}")),
            };
            let family = family_of(&scrape, name).to_string();
            let family = scrape.entry(family).or_default();
            family
                .label_names
                .extend(labels.keys().filter(|k| *k != "le").cloned());
            family.samples.insert((name.to_string(), labels), value);
        }
    }
    scrape
}

/// The value of sample `name` with exactly `labels` (0 when absent).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    scrape
        .get(family_of(scrape, name))
        .and_then(|f| f.samples.get(&(name.to_string(), labels)))
        .copied()
        .unwrap_or(0.0)
}

/// Scrapes `server`'s `/metrics`.
fn scrape(server: &Server) -> Scrape {
    let response = server.http_get("/metrics");
    assert_eq!(response.status, 200, "{}", server.flavour().label());
    parse(&response.text())
}

/// The same calls on either server: puts, a range, a txn, a lease grant and
/// a watch that sees one event, then one `/health`.
async fn workload(server: &Server) {
    let mut client = Client::connect([server.client_url()], None)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", server.client_url()));
    for i in 1..=3 {
        client
            .put(format!("k{i}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    client.get("k1", Some(GetOptions::new())).await.unwrap();
    let txn = Txn::new()
        .when([Compare::value("k1", CompareOp::Equal, "v1")])
        .and_then([TxnOp::put("k4", "v4", None)])
        .or_else([TxnOp::get("k1", None)]);
    assert!(client.txn(txn).await.unwrap().succeeded());
    client.lease_grant(60, None).await.unwrap();
    let mut watch = client.watch("k5", None).await.unwrap();
    client.put("k5", "v5", None).await.unwrap();
    // Created, the event, then (after the cancel) canceled.
    let watch_id = loop {
        let response = next_answer(&mut watch).await;
        if !response.events().is_empty() {
            break response.watch_id();
        }
    };
    watch.cancel(watch_id).await.unwrap();
    while !next_answer(&mut watch).await.canceled() {}
    drop(watch);
    drop(client);
    assert_eq!(server.http_get("/health").status, 200);
}

/// The next answer on a watch stream.
async fn next_answer(watch: &mut etcd_client::WatchStream) -> etcd_client::WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("watch answer in time")
        .unwrap()
        .expect("watch stream open")
}

/// Waits until `server` reports the watch stream the workload opened as done.
fn wait_watch_closed(server: &Server) -> Scrape {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = scrape(server);
        if value(&now, "etcd_debugging_mvcc_watch_stream_total", &[]) == 0.0
            || std::time::Instant::now() > deadline
        {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sample's labels, as (name, value) pairs.
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// `grpc_server_*` labels of one method.
fn grpc<'a>(service: &'a str, method: &'a str, kind: &'a str) -> Labels<'a> {
    vec![
        ("grpc_method", method),
        ("grpc_service", service),
        ("grpc_type", kind),
    ]
}

/// The `(service, method, type)` label sets of `grpc_server_started_total`.
fn grpc_methods(scrape: &Scrape) -> BTreeSet<Vec<String>> {
    scrape["grpc_server_started_total"]
        .samples
        .keys()
        .map(|(_, labels)| labels.values().cloned().collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_match_the_reference_and_count_the_workload() {
    let (reference, ours) = Server::pair(&[]);
    let before = [scrape(&reference), scrape(&ours)];
    for required in REQUIRED {
        assert!(
            before[1].contains_key(*required),
            "ours lacks {required} before any request"
        );
    }
    // Every method is listed at zero from the start, as etcd registers them.
    assert_eq!(grpc_methods(&before[0]), grpc_methods(&before[1]));
    assert_eq!(
        before[0]["grpc_server_handled_total"].samples.len(),
        before[1]["grpc_server_handled_total"].samples.len()
    );

    workload(&reference).await;
    workload(&ours).await;
    let after = [wait_watch_closed(&reference), wait_watch_closed(&ours)];

    for (name, theirs) in &after[0] {
        let Some(mine) = after[1].get(name) else {
            continue;
        };
        assert_eq!(mine.kind, theirs.kind, "TYPE of {name}");
        assert_eq!(mine.help, theirs.help, "HELP of {name}");
        if !mine.samples.is_empty() && !theirs.samples.is_empty() {
            assert_eq!(mine.label_names, theirs.label_names, "labels of {name}");
        }
    }

    let kv = |method| grpc("etcdserverpb.KV", method, "unary");
    let with_code = |mut labels: Labels<'static>, code| {
        labels.insert(0, ("grpc_code", code));
        labels
    };
    let watch = grpc("etcdserverpb.Watch", "Watch", "bidi_stream");
    let grant = grpc("etcdserverpb.Lease", "LeaseGrant", "unary");
    // (sample, labels, growth the workload implies)
    let expected: Vec<(&str, Labels, f64)> = vec![
        ("grpc_server_started_total", kv("Put"), 4.0),
        ("grpc_server_msg_received_total", kv("Put"), 4.0),
        ("grpc_server_msg_sent_total", kv("Put"), 4.0),
        ("grpc_server_handled_total", with_code(kv("Put"), "OK"), 4.0),
        (
            "grpc_server_handled_total",
            with_code(kv("Range"), "OK"),
            1.0,
        ),
        ("grpc_server_handled_total", with_code(kv("Txn"), "OK"), 1.0),
        (
            "grpc_server_handled_total",
            with_code(kv("Put"), "Unknown"),
            0.0,
        ),
        (
            "grpc_server_handled_total",
            with_code(grant.clone(), "OK"),
            1.0,
        ),
        ("grpc_server_started_total", watch.clone(), 1.0),
        ("grpc_server_msg_received_total", watch.clone(), 2.0),
        ("grpc_server_msg_sent_total", watch.clone(), 3.0),
        ("etcd_mvcc_put_total", vec![], 5.0),
        ("etcd_debugging_mvcc_put_total", vec![], 5.0),
        ("etcd_mvcc_range_total", vec![], 2.0),
        ("etcd_mvcc_txn_total", vec![], 0.0),
        ("etcd_mvcc_delete_total", vec![], 0.0),
        ("etcd_debugging_mvcc_total_put_size_in_bytes", vec![], 20.0),
        ("etcd_debugging_mvcc_keys_total", vec![], 5.0),
        ("etcd_debugging_mvcc_events_total", vec![], 1.0),
        ("etcd_debugging_mvcc_watch_stream_total", vec![], 0.0),
        ("etcd_debugging_lease_granted_total", vec![], 1.0),
        ("etcd_debugging_lease_ttl_total_count", vec![], 1.0),
        ("etcd_debugging_lease_ttl_total_sum", vec![], 60.0),
        ("etcd_server_health_success", vec![], 1.0),
    ];
    for (side, label) in [(0, "reference"), (1, "ours")] {
        for (name, labels, growth) in &expected {
            let moved = value(&after[side], name, labels) - value(&before[side], name, labels);
            assert_eq!(moved, *growth, "{label}: {name}{labels:?}");
        }
        let received = value(
            &after[side],
            "etcd_network_client_grpc_received_bytes_total",
            &[],
        );
        let sent = value(
            &after[side],
            "etcd_network_client_grpc_sent_bytes_total",
            &[],
        );
        assert!(
            received > 0.0 && sent > received,
            "{label}: {received} in, {sent} out"
        );
    }
    // The message bytes of the same requests are the same on the wire.
    assert_eq!(
        value(
            &after[0],
            "etcd_network_client_grpc_received_bytes_total",
            &[]
        ),
        value(
            &after[1],
            "etcd_network_client_grpc_received_bytes_total",
            &[]
        ),
    );
}

#[test]
fn metrics_answer_post_as_get() {
    let (reference, ours) = Server::pair(&[]);
    for server in [&reference, &ours] {
        let response = server.http_post("/metrics", "");
        assert_eq!(response.status, 200, "{}", server.flavour().label());
        assert!(
            response
                .text()
                .contains("# TYPE etcd_server_has_leader gauge")
        );
    }
}
