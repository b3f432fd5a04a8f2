//! Static bootstrap: one cluster id, distinct member ids, one leader.

use std::collections::HashSet;

use retcd_tests::Flavour;
use retcd_tests::cluster::Cluster;

use crate::{CLUSTER_SIZE, ELECTION_TIMEOUT, connect};

#[tokio::test]
async fn members_agree_on_the_cluster_and_one_leader() {
    agree_on_cluster_and_leader(Flavour::Ours).await;
}

/// The same check against Debian's etcd, which the harness must handle alike.
#[tokio::test]
async fn reference_members_agree_on_the_cluster_and_one_leader() {
    agree_on_cluster_and_leader(Flavour::Reference).await;
}

/// Starts a cluster of `flavour` and checks its ids and leader.
async fn agree_on_cluster_and_leader(flavour: Flavour) {
    let mut cluster = Cluster::start(flavour, CLUSTER_SIZE);
    cluster
        .wait_leader(10 * ELECTION_TIMEOUT)
        .expect("one leader");
    let mut cluster_ids = HashSet::new();
    let mut member_ids = HashSet::new();
    for url in cluster.client_urls() {
        let mut client = connect(&url).await;
        let response = client.get("anything", None).await.expect("get");
        let header = response.header().expect("header");
        cluster_ids.insert(header.cluster_id());
        member_ids.insert(header.member_id());
    }
    assert_eq!(cluster_ids.len(), 1, "cluster ids differ: {cluster_ids:?}");
    assert_eq!(member_ids.len(), CLUSTER_SIZE, "member ids: {member_ids:?}");
}
