//! Leases through followers and across a leader change: keep-alives and
//! time-to-live sent to a follower reach the leader's lessor (etcd forwards
//! them; without forwarding a follower could not renew anything), an expired
//! lease's keys disappear on every member, and a lease outlives the death of
//! the leader that granted it.

use std::time::{Duration, Instant};

use etcd_client::{Client, LeaseTimeToLiveOptions, PutOptions};
use retcd_tests::cluster::Cluster;

use crate::{CALL_TIMEOUT, CLUSTER_SIZE, ELECTION_TIMEOUT, connect, get};

/// TTL of the leases under test, in seconds.
const TTL: i64 = 4;

/// A follower's index (any member but `leader`).
fn follower_of(leader: usize) -> usize {
    (leader + 1) % CLUSTER_SIZE
}

/// Renews `lease` once through `client`; returns the TTL the server answered.
async fn keep_alive_once(client: &mut Client, lease: i64) -> i64 {
    let (mut keeper, mut answers) =
        tokio::time::timeout(CALL_TIMEOUT, client.lease_keep_alive(lease))
            .await
            .expect("keep-alive hung")
            .expect("keep-alive failed");
    keeper.keep_alive().await.expect("send keep-alive");
    let answer = tokio::time::timeout(CALL_TIMEOUT, answers.message())
        .await
        .expect("keep-alive answer hung")
        .expect("keep-alive stream failed")
        .expect("a keep-alive answer");
    answer.ttl()
}

/// (remaining TTL, attached keys) of `lease` through `client`.
async fn time_to_live(client: &mut Client, lease: i64) -> (i64, Vec<String>) {
    let answer = tokio::time::timeout(
        CALL_TIMEOUT,
        client.lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys())),
    )
    .await
    .expect("time-to-live hung")
    .expect("time-to-live failed");
    let keys = answer
        .keys()
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    (answer.ttl(), keys)
}

/// Waits until `key` is gone as read through `client`; false on timeout.
async fn wait_gone(client: &mut Client, key: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while get(client, key).await.is_some() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alives_through_a_follower_keep_a_lease_alive() {
    let mut cluster = Cluster::ours(CLUSTER_SIZE);
    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader");
    let mut follower = connect(&cluster.member(follower_of(leader)).client_url()).await;

    let lease = follower.lease_grant(TTL, None).await.expect("grant").id();
    follower
        .put("held", "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with lease");
    // Renew through the follower for three TTLs: the lease must outlive them.
    let until = Instant::now() + Duration::from_secs(3 * TTL as u64);
    while Instant::now() < until {
        assert_eq!(keep_alive_once(&mut follower, lease).await, TTL);
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    let (remaining, keys) = time_to_live(&mut follower, lease).await;
    assert!(
        remaining > 0 && remaining <= TTL,
        "remaining TTL {remaining} through the follower"
    );
    assert_eq!(keys, ["held"]);
    assert!(get(&mut follower, "held").await.is_some());

    // Left alone, it expires and its key goes away on every member.
    let mut leader_client = connect(&cluster.member(leader).client_url()).await;
    assert!(
        wait_gone(
            &mut leader_client,
            "held",
            Duration::from_secs(3 * TTL as u64)
        )
        .await,
        "the lease never expired"
    );
    assert!(wait_gone(&mut follower, "held", Duration::from_secs(5)).await);
    assert_eq!(time_to_live(&mut follower, lease).await.0, -1);
    // A renewal of the expired lease answers TTL 0, as etcd does, which the
    // client reports as "lease not found".
    let renewal = tokio::time::timeout(CALL_TIMEOUT, follower.lease_keep_alive(lease))
        .await
        .expect("keep-alive hung");
    match renewal {
        Err(etcd_client::Error::LeaseKeepAliveError(e)) => assert_eq!(e, "lease not found"),
        other => panic!("renewing an expired lease: {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_outlives_its_leader() {
    let mut cluster = Cluster::ours(CLUSTER_SIZE);
    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader");
    let survivor = follower_of(leader);
    let mut client = connect(&cluster.member(survivor).client_url()).await;
    let long_ttl = 30;
    let lease = client
        .lease_grant(long_ttl, None)
        .await
        .expect("grant")
        .id();
    client
        .put("kept", "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with lease");

    tokio::task::block_in_place(|| cluster.kill9(leader));
    let new_leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a new leader");
    assert_ne!(new_leader, leader);

    // The new leader knows the lease and its key; renewals keep working
    // through whichever member the client talks to. (A new leader extends
    // every lease by an election timeout, as etcd's does, so clients have
    // time to find it.)
    let (remaining, keys) = time_to_live(&mut client, lease).await;
    let extension = ELECTION_TIMEOUT.as_secs() as i64 + 1;
    assert!(
        remaining > 0 && remaining <= long_ttl + extension,
        "remaining TTL {remaining} after the leader change"
    );
    assert_eq!(keys, ["kept"]);
    assert_eq!(keep_alive_once(&mut client, lease).await, long_ttl);
    assert!(get(&mut client, "kept").await.is_some());

    client.lease_revoke(lease).await.expect("revoke");
    assert!(get(&mut client, "kept").await.is_none());
}
