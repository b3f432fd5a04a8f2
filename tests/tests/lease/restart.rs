//! Leases survive a kill -9 and restart: the leases, their checkpointed
//! remaining TTLs (not reset to the full TTL) and their attached keys.

use std::time::{Duration, Instant};

use etcd_client::{LeaseTimeToLiveOptions, PutOptions};
use retcd_tests::Server;

use crate::{EXPIRY_SLACK, connect, exists, wait_deleted};

/// Longer than the server's checkpoint interval (5 s), so a checkpoint has
/// been replicated before the restart.
const PAST_CHECKPOINT: Duration = Duration::from_millis(6500);

/// The grace period a new leader adds to every lease (one election timeout).
const PROMOTION_GRACE: Duration = Duration::from_secs(1);

#[tokio::test]
async fn restart_keeps_leases_remaining_ttls_and_attachments() {
    let mut server = Server::ours();
    let mut client = connect(&server).await;
    let long = client.lease_grant(60, None).await.unwrap().id();
    let on = |id| Some(PutOptions::new().with_lease(id));
    client.put("k1", "v", on(long)).await.unwrap();
    client.put("k2", "v", on(long)).await.unwrap();
    client.put("plain", "v", None).await.unwrap();
    tokio::time::sleep(PAST_CHECKPOINT).await;

    server.restart();
    let mut client = connect(&server).await;
    let ttl = client
        .lease_time_to_live(long, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl(), 60);
    assert!(
        ttl.ttl() <= 56 && ttl.ttl() >= 40,
        "remaining TTL {} after 6.5 s and a restart: checkpointed, not reset to 60",
        ttl.ttl()
    );
    assert_eq!(ttl.keys(), [b"k1".to_vec(), b"k2".to_vec()]);

    // A lease granted just before a crash is replayed from the raft log, and
    // still expires (its clock restarts at the new leader).
    let short = client.lease_grant(2, None).await.unwrap().id();
    client.put("k3", "v", on(short)).await.unwrap();
    server.kill9();
    server.restart();
    let restarted = Instant::now();
    let mut client = connect(&server).await;
    assert!(
        exists(&mut client, "k3").await,
        "the lease outlived the crash"
    );
    let deadline = restarted + Duration::from_secs(2) + PROMOTION_GRACE + EXPIRY_SLACK;
    wait_deleted(&mut client, &["k3"], deadline)
        .await
        .expect("the replayed lease expired after the restart");

    let revoked = client.lease_revoke(long).await.unwrap();
    assert!(revoked.header().is_some());
    assert!(!exists(&mut client, "k1").await && !exists(&mut client, "k2").await);
    assert!(exists(&mut client, "plain").await);
}
