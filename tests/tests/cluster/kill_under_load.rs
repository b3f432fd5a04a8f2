//! Kill -9 under write load: one writer per member puts unique keys while the
//! test kills the leader with SIGKILL, restarts it, then kills and restarts a
//! follower. At the end the members converge to one store in which every
//! acknowledged put is present at the revision it was acknowledged with, and
//! the revisions of the writers' keys have no gap and no duplicate (each put
//! is one revision, and only the writers write).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use retcd_tests::cluster::Cluster;

use crate::{CALL_TIMEOUT, CLUSTER_SIZE, ELECTION_TIMEOUT, connect};

/// Key prefix of the writers' keys.
const PREFIX: &str = "kill-under-load/";
/// How long one put may take before its outcome counts as unknown.
const PUT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause after a failed put, so a writer on a dead member does not spin.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Acknowledged puts to wait for between faults.
const ACKS_PER_PHASE: usize = 100;
/// How long a phase may take to gather its acknowledgements.
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the members may take to converge after the last restart.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the writers saw.
#[derive(Default)]
struct Record {
    /// Acknowledged keys and the revision of their put's response header.
    acked: Mutex<BTreeMap<String, i64>>,
    /// Keys whose put failed or timed out: present or not, both are fine.
    unknown: Mutex<BTreeSet<String>>,
    /// Number of acknowledged puts.
    count: AtomicUsize,
}

/// Puts `PREFIX<writer>/<n>` through `client` until `stop`, recording outcomes.
async fn write_until(
    writer: usize,
    mut client: Client,
    record: Arc<Record>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{PREFIX}{writer}/{n:06}");
        n += 1;
        match tokio::time::timeout(PUT_TIMEOUT, client.put(key.as_str(), "v", None)).await {
            Ok(Ok(response)) => {
                let revision = response.header().expect("put header").revision();
                record.acked.lock().unwrap().insert(key, revision);
                record.count.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                record.unknown.lock().unwrap().insert(key);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Waits until `count` more puts are acknowledged after this call.
async fn wait_more_acks(record: &Record, count: usize, what: &str) {
    let target = record.count.load(Ordering::Relaxed) + count;
    let deadline = Instant::now() + PHASE_TIMEOUT;
    while record.count.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "writes did not progress {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every writer key on member `url` with its mod revision, by a serializable
/// (member-local) read, and the member's store revision.
async fn local_keys(url: &str) -> Option<(BTreeMap<String, i64>, i64)> {
    let mut client = Client::connect([url], None).await.ok()?;
    let response = tokio::time::timeout(
        CALL_TIMEOUT,
        client.get(
            PREFIX,
            Some(GetOptions::new().with_prefix().with_serializable()),
        ),
    )
    .await
    .ok()?
    .ok()?;
    let keys = response
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_string(), kv.mod_revision()))
        .collect();
    Some((keys, response.header()?.revision()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_leader_and_follower_under_load_loses_no_acknowledged_write() {
    let mut cluster = Cluster::ours(CLUSTER_SIZE);
    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader");
    let record = Arc::new(Record::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (i, url) in cluster.client_urls().iter().enumerate() {
        let client = connect(url).await;
        writers.push(tokio::spawn(write_until(
            i,
            client,
            record.clone(),
            stop.clone(),
        )));
    }
    wait_more_acks(&record, ACKS_PER_PHASE, "before the faults").await;

    tokio::task::block_in_place(|| cluster.kill9(leader));
    wait_more_acks(&record, ACKS_PER_PHASE, "after the leader was killed").await;
    tokio::task::block_in_place(|| cluster.restart(leader));
    wait_more_acks(&record, ACKS_PER_PHASE, "after the leader restarted").await;

    let new_leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader after the restart");
    let follower = (0..CLUSTER_SIZE).find(|&i| i != new_leader).unwrap();
    tokio::task::block_in_place(|| cluster.kill9(follower));
    wait_more_acks(&record, ACKS_PER_PHASE, "after a follower was killed").await;
    tokio::task::block_in_place(|| cluster.restart(follower));
    wait_more_acks(&record, ACKS_PER_PHASE, "after the follower restarted").await;

    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = record.acked.lock().unwrap().clone();
    let unknown = record.unknown.lock().unwrap().clone();
    eprintln!(
        "{} puts acknowledged, {} with unknown outcome; killed leader {leader}, follower {follower}",
        acked.len(),
        unknown.len()
    );

    // Serializable reads on each member until all agree on the writers' keys
    // at one store revision.
    let urls = cluster.client_urls();
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let (keys, revision) = loop {
        let mut views = Vec::new();
        for url in &urls {
            views.push(local_keys(url).await);
        }
        if let Some(Some(first)) = views.first()
            && views.iter().all(|v| v.as_ref() == Some(first))
        {
            break first.clone();
        }
        assert!(
            Instant::now() < deadline,
            "members did not converge: {:?}\n{}",
            views
                .iter()
                .map(|v| v.as_ref().map(|(keys, rev)| (keys.len(), *rev)))
                .collect::<Vec<_>>(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let mut lost = Vec::new();
    for (key, acked_revision) in &acked {
        match keys.get(key) {
            None => lost.push(format!("{key} (acknowledged at revision {acked_revision})")),
            Some(revision) if revision != acked_revision => lost.push(format!(
                "{key} acknowledged at revision {acked_revision} but stored at {revision}"
            )),
            Some(_) => {}
        }
    }
    assert!(
        lost.is_empty(),
        "acknowledged writes lost or moved: {lost:?}"
    );
    let strangers: Vec<&String> = keys
        .keys()
        .filter(|k| !acked.contains_key(*k) && !unknown.contains(*k))
        .collect();
    assert!(strangers.is_empty(), "keys nobody wrote: {strangers:?}");

    // Every put is one revision: the stored keys' revisions are exactly
    // 2..=revision (the store starts at 1), so none was lost or doubled.
    let mut revisions: Vec<i64> = keys.values().copied().collect();
    revisions.sort_unstable();
    let expected: Vec<i64> = (2..=revision).collect();
    assert_eq!(
        revisions.len(),
        expected.len(),
        "store revision {revision} but {} writer keys",
        revisions.len()
    );
    assert_eq!(revisions, expected, "revisions with gaps or duplicates");
    let mut acked_revisions: Vec<i64> = acked.values().copied().collect();
    acked_revisions.sort_unstable();
    acked_revisions.dedup();
    assert_eq!(
        acked_revisions.len(),
        acked.len(),
        "two acknowledged puts share a revision"
    );
}
