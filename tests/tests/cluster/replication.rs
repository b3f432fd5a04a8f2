//! Every member serves every client call: a write through any member is
//! readable, linearizably, on every member at the same revision.

use etcd_client::GetOptions;
use retcd_tests::cluster::Cluster;

use crate::{CALL_TIMEOUT, CLUSTER_SIZE, connect, get};

#[tokio::test]
async fn a_write_through_any_member_is_read_everywhere() {
    let cluster = Cluster::ours(CLUSTER_SIZE);
    let mut clients = Vec::new();
    for url in cluster.client_urls() {
        clients.push(connect(&url).await);
    }
    for writer in 0..CLUSTER_SIZE {
        let key = format!("written-through-{writer}");
        let value = format!("value-{writer}");
        let put = tokio::time::timeout(
            CALL_TIMEOUT,
            clients[writer].put(key.as_str(), value.as_str(), None),
        )
        .await
        .expect("put hung")
        .expect("put failed");
        let put_revision = put.header().expect("header").revision();
        for (reader, client) in clients.iter_mut().enumerate() {
            let (read, mod_revision, _) = get(client, &key)
                .await
                .unwrap_or_else(|| panic!("{key} missing on member {reader}"));
            assert_eq!(read, value.as_bytes(), "member {reader}");
            assert_eq!(mod_revision, put_revision, "member {reader}");
        }
    }
    // After linearizable reads everywhere, every member holds the same revision.
    let mut revisions = Vec::new();
    for client in &mut clients {
        let (_, _, revision) = get(client, "written-through-0").await.expect("key present");
        revisions.push(revision);
        let serializable = client
            .get(
                "written-through-0",
                Some(GetOptions::new().with_serializable()),
            )
            .await
            .expect("serializable get");
        assert_eq!(serializable.count(), 1);
    }
    assert!(
        revisions.iter().all(|&r| r == revisions[0]),
        "members read different revisions: {revisions:?}"
    );
}

#[tokio::test]
async fn a_watch_on_a_follower_sees_writes_through_another_member() {
    let mut cluster = Cluster::ours(CLUSTER_SIZE);
    let leader = cluster
        .wait_leader(10 * crate::ELECTION_TIMEOUT)
        .expect("a leader");
    let follower = (leader + 1) % CLUSTER_SIZE;
    let writer = (leader + 2) % CLUSTER_SIZE;
    let mut watch_client = connect(&cluster.member(follower).client_url()).await;
    let mut stream = watch_client
        .watch("watched", None)
        .await
        .expect("watch on a follower");
    let mut client = connect(&cluster.member(writer).client_url()).await;
    let put = client.put("watched", "v", None).await.expect("put");
    let revision = put.header().expect("header").revision();
    let response = tokio::time::timeout(CALL_TIMEOUT, async {
        loop {
            let response = stream.message().await.expect("watch stream").expect("open");
            if !response.events().is_empty() {
                return response;
            }
        }
    })
    .await
    .expect("no event on the follower's watch");
    let kv = response.events()[0].kv().expect("kv");
    assert_eq!(kv.key(), b"watched");
    assert_eq!(kv.mod_revision(), revision);
}
