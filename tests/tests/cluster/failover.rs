//! Kill -9 of the leader while clients write: a new leader is elected within
//! a few election timeouts, writes resume, and after the killed member comes
//! back (catching up from the new leader's log) every acknowledged write is
//! on every member.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ack::AckLog;
use etcd_client::Client;
use retcd_tests::cluster::Cluster;

use crate::{CLUSTER_SIZE, ELECTION_TIMEOUT, connect, keys_with_prefix};

/// Key prefix of the writer's keys.
const PREFIX: &str = "failover/";
/// How long one put may take before the writer tries another member.
const PUT_TIMEOUT: Duration = Duration::from_secs(3);
/// Writes acknowledged before the leader is killed.
const WRITES_BEFORE_KILL: usize = 50;
/// Writes acknowledged after the kill before the writer stops.
const WRITES_AFTER_KILL: usize = 50;
/// Election timeouts a new leader may take (etcd's randomised timeout is up
/// to two, plus pre-vote and detection).
const MAX_ELECTION_TIMEOUTS: u32 = 5;

/// The writer's record of acknowledged keys.
mod ack {
    use std::sync::Mutex;

    /// Keys whose put was acknowledged, in order.
    #[derive(Default)]
    pub struct AckLog(Mutex<Vec<String>>);

    impl AckLog {
        /// Records an acknowledged key.
        pub fn push(&self, key: String) {
            self.0.lock().unwrap().push(key);
        }

        /// How many keys were acknowledged.
        pub fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }

        /// A copy of the acknowledged keys.
        pub fn keys(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }
}

/// Puts sequential keys, each through the next member that answers, until
/// `stop`; records every acknowledged key.
async fn write_until(mut clients: Vec<Client>, acked: Arc<AckLog>, stop: Arc<AtomicBool>) {
    let mut member = 0;
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{PREFIX}{next:06}");
        let client = &mut clients[member % CLUSTER_SIZE];
        match tokio::time::timeout(PUT_TIMEOUT, client.put(key.as_str(), "v", None)).await {
            Ok(Ok(_)) => {
                acked.push(key);
                next += 1;
            }
            _ => {
                member += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Waits until `acked` holds at least `count` keys or `timeout` passes.
async fn wait_acked(acked: &AckLog, count: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while acked.len() < count {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    let mut cluster = Cluster::ours(CLUSTER_SIZE);
    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader");
    let mut clients = Vec::new();
    for url in cluster.client_urls() {
        clients.push(connect(&url).await);
    }
    let acked = Arc::new(AckLog::default());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(clients, acked.clone(), stop.clone()));
    assert!(
        wait_acked(&acked, WRITES_BEFORE_KILL, Duration::from_secs(30)).await,
        "writes did not start"
    );

    tokio::task::block_in_place(|| cluster.kill9(leader));
    let killed_at = Instant::now();
    let acked_at_kill = acked.len();
    let new_leader = tokio::task::block_in_place(|| {
        cluster.wait_leader(MAX_ELECTION_TIMEOUTS * ELECTION_TIMEOUT)
    })
    .expect("a new leader");
    assert_ne!(new_leader, leader);
    assert!(
        wait_acked(
            &acked,
            acked_at_kill + WRITES_AFTER_KILL,
            MAX_ELECTION_TIMEOUTS * ELECTION_TIMEOUT + 2 * PUT_TIMEOUT
        )
        .await,
        "writes did not resume {:?} after the kill",
        killed_at.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    tokio::task::block_in_place(|| cluster.restart(leader));
    let acked = acked.keys();
    for (i, url) in cluster.client_urls().iter().enumerate() {
        let mut client = connect(url).await;
        let present: std::collections::HashSet<String> = keys_with_prefix(&mut client, PREFIX)
            .await
            .into_iter()
            .collect();
        let lost: Vec<&String> = acked.iter().filter(|k| !present.contains(*k)).collect();
        assert!(
            lost.is_empty(),
            "member {i} lost acknowledged writes: {lost:?}"
        );
    }
}
