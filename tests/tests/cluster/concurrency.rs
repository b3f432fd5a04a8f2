//! Lock and Election (the v3lockpb / v3electionpb services) across members:
//! a lock held through one follower keeps a caller on another member waiting
//! until it is released through a third; a campaign through a follower
//! waits for the leader's resignation, and every member names the same
//! leader and value.

use std::time::Duration;

use etcd_client::{LeaderKey, LockOptions, ProclaimOptions, ResignOptions};
use retcd_tests::cluster::Cluster;

use crate::{CALL_TIMEOUT, CLUSTER_SIZE, ELECTION_TIMEOUT, connect};

/// How long a call that must wait is watched to stay waiting.
const STILL_WAITING: Duration = Duration::from_millis(700);

/// The members other than `leader`, in order.
fn followers(leader: usize) -> [usize; 2] {
    [(leader + 1) % CLUSTER_SIZE, (leader + 2) % CLUSTER_SIZE]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_through_a_follower_holds_on_every_member() {
    let mut cluster = Cluster::ours(CLUSTER_SIZE);
    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader");
    let [first, second] = followers(leader);
    let mut holder = connect(&cluster.member(first).client_url()).await;
    let mut waiter = connect(&cluster.member(second).client_url()).await;
    let mut releaser = connect(&cluster.member(leader).client_url()).await;

    let lease = holder.lease_grant(60, None).await.expect("grant").id();
    let held = tokio::time::timeout(
        CALL_TIMEOUT,
        holder.lock("shared", Some(LockOptions::new().with_lease(lease))),
    )
    .await
    .expect("lock hung")
    .expect("lock");
    let held_key = held.key().to_vec();
    assert_eq!(held_key, format!("shared/{lease:x}").into_bytes());

    let waiter_lease = waiter.lease_grant(60, None).await.expect("grant").id();
    let mut waiting = tokio::spawn(async move {
        waiter
            .lock("shared", Some(LockOptions::new().with_lease(waiter_lease)))
            .await
    });
    assert!(
        tokio::time::timeout(STILL_WAITING, &mut waiting)
            .await
            .is_err(),
        "the second lock was granted while the first was held"
    );

    let unlocked = releaser.unlock(held_key).await.expect("unlock");
    let unlock_revision = unlocked.header().expect("header").revision();
    let granted = tokio::time::timeout(CALL_TIMEOUT, waiting)
        .await
        .expect("the second lock was never granted")
        .expect("lock task")
        .expect("second lock");
    assert_eq!(granted.key(), format!("shared/{waiter_lease:x}").as_bytes());
    assert!(
        granted.header().expect("header").revision() >= unlock_revision,
        "granted before the unlock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_election_through_followers_is_seen_alike_by_every_member() {
    let mut cluster = Cluster::ours(CLUSTER_SIZE);
    let leader = tokio::task::block_in_place(|| cluster.wait_leader(10 * ELECTION_TIMEOUT))
        .expect("a leader");
    let [first, second] = followers(leader);
    let mut winner = connect(&cluster.member(first).client_url()).await;
    let mut runner_up = connect(&cluster.member(second).client_url()).await;

    let lease = winner.lease_grant(60, None).await.expect("grant").id();
    let won = tokio::time::timeout(CALL_TIMEOUT, winner.campaign("office", "first", lease))
        .await
        .expect("campaign hung")
        .expect("campaign");
    let leader_key: LeaderKey = won.leader().cloned().expect("a leader key");

    let runner_lease = runner_up.lease_grant(60, None).await.expect("grant").id();
    let mut second_campaign =
        tokio::spawn(async move { runner_up.campaign("office", "second", runner_lease).await });
    assert!(
        tokio::time::timeout(STILL_WAITING, &mut second_campaign)
            .await
            .is_err(),
        "a second candidate won while the first led"
    );

    winner
        .proclaim(
            "first, again",
            Some(ProclaimOptions::new().with_leader(leader_key.clone())),
        )
        .await
        .expect("proclaim");
    for member in 0..CLUSTER_SIZE {
        let mut client = connect(&cluster.member(member).client_url()).await;
        let answer = client.leader("office").await.expect("leader");
        let kv = answer.kv().expect("a leader");
        assert_eq!(kv.value(), b"first, again", "member {member}");
        assert_eq!(kv.key(), leader_key.key(), "member {member}");
    }

    winner
        .resign(Some(ResignOptions::new().with_leader(leader_key)))
        .await
        .expect("resign");
    let next = tokio::time::timeout(CALL_TIMEOUT, second_campaign)
        .await
        .expect("the second candidate never won")
        .expect("campaign task")
        .expect("second campaign");
    let next_key = next.leader().expect("a leader key").key().to_vec();
    for member in 0..CLUSTER_SIZE {
        let mut client = connect(&cluster.member(member).client_url()).await;
        let answer = client.leader("office").await.expect("leader");
        let kv = answer.kv().expect("a leader");
        assert_eq!(kv.value(), b"second", "member {member}");
        assert_eq!(kv.key(), next_key.as_slice(), "member {member}");
    }
}
