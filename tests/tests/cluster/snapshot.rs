//! A follower that falls behind the leader's compacted raft log catches up
//! through a raft snapshot (the whole backend, sent in chunks on its own peer
//! connection), both after a kill -9 and restart and after a network
//! partition heals: its serializable reads then return every key with the
//! leader's revisions and lease, it keeps following new writes, and a
//! watcher opened on it before the partition receives every missed event, in
//! revision order, or, when that history was compacted meanwhile, a cancel
//! carrying the compaction revision. The follower keeps its own member id through the install
//! and a restart from the installed backend.
//!
//! Members run with `--snapshot-count 100`, so the leader compacts its log
//! every 100 applied entries, keeping 100 below the compaction point: a few
//! hundred writes leave a stopped follower behind the log.

use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use retcd_tests::cluster::Cluster;
use retcd_tests::http;
use retcd_tests::server::Flavour;

use crate::{CALL_TIMEOUT, CLUSTER_SIZE, connect};

/// `--snapshot-count` of the members.
const SNAPSHOT_COUNT: &str = "100";
/// Writes while the follower is away: enough for several log compactions.
const WRITES_WHILE_AWAY: usize = 400;
/// How long the follower may take to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Key prefix of the test's keys.
const PREFIX: &str = "snap/";

/// Every key under [`PREFIX`] as a serializable read on `client`:
/// (key, value, create revision, mod revision, lease), and the header revision.
async fn local_state(client: &mut Client) -> (Vec<(String, String, i64, i64, i64)>, i64) {
    let options = GetOptions::new().with_prefix().with_serializable();
    let response = tokio::time::timeout(CALL_TIMEOUT, client.get(PREFIX, Some(options)))
        .await
        .expect("get hung")
        .expect("get failed");
    let revision = response.header().expect("header").revision();
    let kvs = response
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.lease(),
            )
        })
        .collect();
    (kvs, revision)
}

/// Waits until `follower` serves exactly the state `leader` serves.
async fn wait_caught_up(leader: &mut Client, follower: &mut Client, cluster: &Cluster) {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let expected = local_state(leader).await;
    loop {
        let got = local_state(follower).await;
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "follower at revision {} with {} keys, leader at {} with {}\n{}",
            got.1,
            got.0.len(),
            expected.1,
            expected.0.len(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of every sample of `metric` in member `port`'s `/metrics`.
fn metric(port: u16, metric: &str) -> f64 {
    let body = http::get(port, "/metrics").expect("/metrics").text();
    body.lines()
        .filter(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `metric` on member `port` exceeds `floor` (a member updates
/// its counters just after the state they count becomes readable).
fn wait_metric_above(port: u16, name: &str, floor: f64, cluster: &Cluster) {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    while metric(port, name) <= floor {
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {floor} on port {port}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// While member `away` is gone: a lease with a key, many puts, a delete.
/// Returns the lease id.
async fn write_while_away(leader: &mut Client, round: &str) -> i64 {
    let lease = leader
        .lease_grant(600, None)
        .await
        .expect("lease grant")
        .id();
    leader
        .put(
            format!("{PREFIX}{round}/leased"),
            "l",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .expect("leased put");
    for i in 0..WRITES_WHILE_AWAY {
        leader
            .put(format!("{PREFIX}{round}/{i:04}"), format!("v{i}"), None)
            .await
            .expect("put");
    }
    leader
        .delete(format!("{PREFIX}{round}/0007"), None)
        .await
        .expect("delete");
    lease
}

#[test]
fn a_follower_behind_the_compacted_log_catches_up_by_snapshot() {
    let mut cluster = Cluster::start_with(
        Flavour::Ours,
        CLUSTER_SIZE,
        &["--snapshot-count", SNAPSHOT_COUNT],
    );
    let leader = cluster
        .wait_leader(Duration::from_secs(30))
        .expect("leader");
    let follower = (leader + 1) % CLUSTER_SIZE;
    let ids = cluster.member_ids().expect("member ids");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut lead = connect(&cluster.member(leader).client_url()).await;
        lead.put(format!("{PREFIX}before"), "0", None)
            .await
            .unwrap();

        // Round 1: kill -9, write past the log, restart.
        cluster.kill9(follower);
        write_while_away(&mut lead, "killed").await;
        cluster.restart(follower);
        let mut behind = connect(&cluster.member(follower).client_url()).await;
        wait_caught_up(&mut lead, &mut behind, &cluster).await;
        let sent = format!(
            "etcd_network_snapshot_send_success{{To=\"{:x}\"}}",
            ids[follower]
        );
        wait_metric_above(cluster.member(leader).client_port(), &sent, 0.0, &cluster);
        let follower_port = cluster.member(follower).client_port();
        wait_metric_above(
            follower_port,
            "etcd_network_snapshot_receive_success",
            0.0,
            &cluster,
        );
        wait_metric_above(
            follower_port,
            "retcd_server_snapshots_installed_total",
            0.0,
            &cluster,
        );
        assert_eq!(
            metric(
                follower_port,
                "etcd_server_snapshot_apply_in_progress_total"
            ),
            0.0
        );
        // It keeps following.
        lead.put(format!("{PREFIX}after-restart"), "1", None)
            .await
            .unwrap();
        wait_caught_up(&mut lead, &mut behind, &cluster).await;

        // Round 2: a watcher on the follower, then a partition.
        let start = local_state(&mut behind).await.1 + 1;
        let mut events = behind
            .watch(
                PREFIX,
                Some(WatchOptions::new().with_prefix().with_start_revision(start)),
            )
            .await
            .expect("watch");
        let installs_before = metric(follower_port, "retcd_server_snapshots_installed_total");
        cluster.isolate(follower).expect("isolate");
        let lease = write_while_away(&mut lead, "partitioned").await;
        lead.lease_revoke(lease).await.expect("revoke");
        let end = local_state(&mut lead).await.1;
        cluster.heal().expect("heal");
        wait_caught_up(&mut lead, &mut behind, &cluster).await;
        wait_metric_above(
            follower_port,
            "retcd_server_snapshots_installed_total",
            installs_before,
            &cluster,
        );

        // The watcher saw every revision from `start` to `end`, in order, once:
        // the puts, the delete and the revoke's delete of the leased key.
        let mut seen = Vec::new();
        while seen.last().is_none_or(|(rev, _, _)| *rev < end) {
            let response = tokio::time::timeout(CALL_TIMEOUT, events.message())
                .await
                .expect("watch stalled")
                .expect("watch failed")
                .expect("watch ended");
            assert!(!response.canceled(), "watch canceled: {response:?}");
            for event in response.events() {
                let kv = event.kv().expect("kv");
                seen.push((
                    kv.mod_revision(),
                    event.event_type(),
                    kv.key_str().unwrap().to_string(),
                ));
            }
        }
        let revisions: Vec<i64> = seen.iter().map(|(rev, _, _)| *rev).collect();
        assert_eq!(revisions, (start..=end).collect::<Vec<_>>());
        let deletes: Vec<&str> = seen
            .iter()
            .filter(|(_, kind, _)| *kind == EventType::Delete)
            .map(|(_, _, key)| key.as_str())
            .collect();
        assert_eq!(
            deletes,
            [
                format!("{PREFIX}partitioned/0007"),
                format!("{PREFIX}partitioned/leased")
            ]
        );

        lead.put(format!("{PREFIX}after-heal"), "2", None)
            .await
            .unwrap();
        wait_caught_up(&mut lead, &mut behind, &cluster).await;

        // Round 3: history the watcher still needs is compacted while the
        // follower is away: as in etcd, the watcher is canceled with the
        // compaction revision.
        let start = local_state(&mut behind).await.1 + 1;
        let mut events = behind
            .watch(
                PREFIX,
                Some(WatchOptions::new().with_prefix().with_start_revision(start)),
            )
            .await
            .expect("watch");
        cluster.isolate(follower).expect("isolate");
        write_while_away(&mut lead, "compacted").await;
        let compact_to = local_state(&mut lead).await.1;
        lead.compact(compact_to, None).await.expect("compact");
        cluster.heal().expect("heal");
        wait_caught_up(&mut lead, &mut behind, &cluster).await;
        let canceled = loop {
            let response = tokio::time::timeout(CALL_TIMEOUT, events.message())
                .await
                .expect("watch stalled")
                .expect("watch failed")
                .expect("watch ended");
            if response.canceled() {
                break response;
            }
            assert!(
                response.events().is_empty(),
                "events past a compacted start: {response:?}"
            );
        };
        assert_eq!(canceled.compact_revision(), compact_to);

        // The leader's backend named the leader; the follower is still itself,
        // also after a restart from the installed backend.
        drop(events);
        drop(behind);
        cluster.restart(follower);
        let mut behind = connect(&cluster.member(follower).client_url()).await;
        wait_caught_up(&mut lead, &mut behind, &cluster).await;
        let header = behind
            .get(
                format!("{PREFIX}before"),
                Some(GetOptions::new().with_serializable()),
            )
            .await
            .unwrap()
            .header()
            .cloned()
            .unwrap();
        assert_eq!(header.member_id(), ids[follower]);
    });
}
