//! A leader cut off from both followers by the peer fault hook
//! (`RETCD_UNSAFE_PEER_FAULTS`): the majority elects a new leader within a
//! few election timeouts and takes writes; the isolated member refuses
//! writes and linearizable reads with an error, never stale data, while its
//! serializable reads may serve what it had; after the heal it follows the
//! new leader, catches up and serves the new writes.

use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use retcd_tests::cluster::Cluster;

use crate::{CALL_TIMEOUT, CLUSTER_SIZE, ELECTION_TIMEOUT, connect, get};

/// Election timeouts the majority may take to elect a new leader (etcd's
/// randomised timeout is up to two, plus check-quorum and pre-vote).
const MAX_ELECTION_TIMEOUTS: u32 = 8;
/// How long the healed member may take to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits until a member other than `old` reports itself leader; returns it.
async fn wait_new_leader(cluster: &Cluster, old: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let leader = tokio::task::block_in_place(|| {
            (0..CLUSTER_SIZE).find(|&i| i != old && cluster.member(i).is_leader())
        });
        if let Some(leader) = leader {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "the majority elected no leader within {timeout:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A serializable (member-local) read of `key`'s value.
async fn local_get(client: &mut Client, key: &str) -> Option<Vec<u8>> {
    let response = tokio::time::timeout(
        CALL_TIMEOUT,
        client.get(key, Some(GetOptions::new().with_serializable())),
    )
    .await
    .expect("serializable get hung")
    .expect("serializable get failed");
    response.kvs().first().map(|kv| kv.value().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_is_replaced_and_catches_up_after_the_heal() {
    let mut cluster = Cluster::ours(CLUSTER_SIZE);
    let old = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader");
    let mut isolated = connect(&cluster.member(old).client_url()).await;
    isolated
        .put("partition/before", "1", None)
        .await
        .expect("put with a quorum");

    tokio::task::block_in_place(|| cluster.isolate(old)).expect("isolate the leader");
    let cut_at = Instant::now();
    let new = wait_new_leader(&cluster, old, MAX_ELECTION_TIMEOUTS * ELECTION_TIMEOUT).await;
    eprintln!("member {new} leads {:?} after the cut", cut_at.elapsed());
    let follower = (0..CLUSTER_SIZE).find(|&i| i != old && i != new).unwrap();
    for (i, value) in [(new, "2"), (follower, "3")] {
        let mut client = connect(&cluster.member(i).client_url()).await;
        tokio::time::timeout(CALL_TIMEOUT, client.put("partition/after", value, None))
            .await
            .expect("a put on the majority hung")
            .unwrap_or_else(|e| panic!("the majority refused a put through member {i}: {e}"));
        assert_eq!(
            get(&mut client, "partition/after").await.map(|(v, ..)| v),
            Some(value.as_bytes().to_vec())
        );
    }

    let write = tokio::time::timeout(CALL_TIMEOUT, isolated.put("partition/lost", "x", None))
        .await
        .expect("a put on the isolated member hung");
    let write_error = write.expect_err("the isolated member accepted a write");
    let read = tokio::time::timeout(CALL_TIMEOUT, isolated.get("partition/after", None))
        .await
        .expect("a linearizable get on the isolated member hung");
    let read_error = match read {
        Ok(response) => panic!(
            "the isolated member served a linearizable read: {:?}",
            response.kvs()
        ),
        Err(e) => e,
    };
    eprintln!("isolated member refused: put: {write_error}; linearizable get: {read_error}");
    for error in [write_error.to_string(), read_error.to_string()] {
        assert!(
            [
                "request timed out",
                "no leader",
                "leader changed",
                "deadline"
            ]
            .iter()
            .any(|known| error.contains(known)),
            "unexpected error from the isolated member: {error}"
        );
    }
    assert_eq!(
        local_get(&mut isolated, "partition/before").await,
        Some(b"1".to_vec())
    );
    assert_eq!(
        local_get(&mut isolated, "partition/after").await,
        None,
        "an isolated member cannot have seen the majority's write"
    );

    tokio::task::block_in_place(|| cluster.heal()).expect("heal");
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    while local_get(&mut isolated, "partition/after").await != Some(b"3".to_vec()) {
        assert!(
            Instant::now() < deadline,
            "the healed member did not catch up\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("one leader after the heal");
    assert_ne!(
        leader, old,
        "the old leader should rejoin as a follower (pre-vote keeps the new leader)"
    );
    tokio::time::timeout(CALL_TIMEOUT, isolated.put("partition/healed", "4", None))
        .await
        .expect("a put through the healed member hung")
        .expect("the healed member refused a put");
    assert_eq!(
        get(&mut isolated, "partition/after").await.map(|(v, ..)| v),
        Some(b"3".to_vec())
    );
    assert_eq!(
        get(&mut isolated, "partition/lost").await,
        None,
        "a write refused during the partition appeared after the heal"
    );
}
