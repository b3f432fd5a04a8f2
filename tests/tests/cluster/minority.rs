//! A member cut off from the quorum refuses writes with an error (etcd:
//! "no leader" or "request timed out") instead of hanging, and reports
//! itself unhealthy.

use std::time::{Duration, Instant};

use retcd_tests::Flavour;
use retcd_tests::cluster::Cluster;

use crate::{CALL_TIMEOUT, CLUSTER_SIZE, ELECTION_TIMEOUT, connect};

/// How long the lone member may take to notice it lost its leader.
const UNHEALTHY_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_lone_member_refuses_writes() {
    lone_member_refuses_writes(Flavour::Ours).await;
}

/// Debian's etcd behaves the same way.
#[tokio::test]
async fn a_lone_reference_member_refuses_writes() {
    lone_member_refuses_writes(Flavour::Reference).await;
}

/// Starts a cluster of `flavour`, kills all members but one, and writes to it.
async fn lone_member_refuses_writes(flavour: Flavour) {
    let mut cluster = Cluster::start(flavour, CLUSTER_SIZE);
    cluster
        .wait_leader(10 * ELECTION_TIMEOUT)
        .expect("a leader");
    let survivor = 0;
    let mut client = connect(&cluster.member(survivor).client_url()).await;
    client
        .put("before", "v", None)
        .await
        .expect("put with a quorum");
    for i in 1..CLUSTER_SIZE {
        cluster.kill9(i);
    }

    let started = Instant::now();
    let result = tokio::time::timeout(CALL_TIMEOUT, client.put("after", "v", None))
        .await
        .expect("a write on a lone member hung");
    let err = result.expect_err("a lone member accepted a write");
    let message = err.to_string();
    assert!(
        message.contains("no leader") || message.contains("request timed out"),
        "unexpected error after {:?}: {message}",
        started.elapsed()
    );
    eprintln!(
        "{}: lone member refused a write after {:?}: {message}",
        flavour.label(),
        started.elapsed()
    );

    let deadline = Instant::now() + UNHEALTHY_WITHIN;
    while cluster.member(survivor).healthy() {
        assert!(
            Instant::now() < deadline,
            "a lone member still reports healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
