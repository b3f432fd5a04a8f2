//! Grant rules, expiry, keep-alive and revoke through `etcd-client`.

use std::time::{Duration, Instant};

use etcd_client::{GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions, Txn, TxnOp};
use retcd_tests::Server;

use crate::{EXPIRY_SLACK, connect, exists, wait_deleted};

/// The gRPC code and message of a failed call.
fn grpc_error<T: std::fmt::Debug>(result: Result<T, etcd_client::Error>) -> (tonic::Code, String) {
    match result {
        Err(etcd_client::Error::GRpcStatus(status)) => {
            (status.code(), status.message().to_string())
        }
        other => panic!("expected a gRPC status error, got {other:?}"),
    }
}

#[tokio::test]
async fn grant_rules_match_etcd() {
    let server = Server::ours();
    let mut client = connect(&server).await;

    let short = client.lease_grant(1, None).await.unwrap();
    assert_eq!(short.ttl(), 2, "a TTL below the minimum is raised to it");
    assert!(short.id() > 0, "a server-chosen id is positive");
    let other = client.lease_grant(10, None).await.unwrap();
    assert_ne!(other.id(), short.id());

    let chosen = client
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(4660)))
        .await
        .unwrap();
    assert_eq!((chosen.id(), chosen.ttl()), (4660, 30));
    let dup = client
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(4660)))
        .await;
    assert_eq!(
        grpc_error(dup),
        (
            tonic::Code::FailedPrecondition,
            "etcdserver: lease already exists".to_string()
        )
    );
    let max = client.lease_grant(9_000_000_000, None).await.unwrap();
    assert_eq!(max.ttl(), 9_000_000_000);
    let too_large = client.lease_grant(9_000_000_001, None).await;
    assert_eq!(
        grpc_error(too_large),
        (
            tonic::Code::OutOfRange,
            "etcdserver: too large lease TTL".to_string()
        )
    );

    let unknown = client.lease_time_to_live(999, None).await.unwrap();
    assert_eq!(
        (unknown.id(), unknown.ttl(), unknown.granted_ttl()),
        (999, -1, 0)
    );
    let put = client
        .put("k", "v", Some(PutOptions::new().with_lease(999)))
        .await;
    assert_eq!(
        grpc_error(put),
        (
            tonic::Code::NotFound,
            "etcdserver: requested lease not found".to_string()
        )
    );
    let revoke = client.lease_revoke(999).await;
    assert_eq!(
        grpc_error(revoke),
        (
            tonic::Code::NotFound,
            "etcdserver: requested lease not found".to_string()
        )
    );
    // The server answers TTL 0 for an unknown lease; the client turns that
    // first answer into this error.
    match client.lease_keep_alive(999).await {
        Err(etcd_client::Error::LeaseKeepAliveError(text)) => assert_eq!(text, "lease not found"),
        other => panic!("expected a TTL 0 answer, got {other:?}"),
    }

    let mut listed: Vec<i64> = client
        .leases()
        .await
        .unwrap()
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    listed.sort_unstable();
    let mut want = vec![short.id(), other.id(), 4660, max.id()];
    want.sort_unstable();
    assert_eq!(listed, want);
}

#[tokio::test]
async fn expiry_deletes_attached_keys_in_one_revision_within_ttl_plus_one_second() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    let before_grant = Instant::now();
    let lease = client.lease_grant(2, None).await.unwrap();
    let ttl = Duration::from_secs(lease.ttl() as u64);
    let with_lease = || Some(PutOptions::new().with_lease(lease.id()));
    client.put("a", "1", with_lease()).await.unwrap();
    client.put("b", "2", with_lease()).await.unwrap();
    let last = client.put("c", "3", None).await.unwrap();
    let rev = last.header().unwrap().revision();

    let gone = wait_deleted(&mut client, &["a", "b"], before_grant + ttl + EXPIRY_SLACK)
        .await
        .expect("attached keys deleted within TTL + 1 s");
    assert!(
        gone >= before_grant + ttl - Duration::from_millis(100),
        "keys deleted {:?} after the grant, before the TTL",
        gone - before_grant
    );
    let after = client.get("c", None).await.unwrap();
    assert_eq!(after.count(), 1, "unattached keys stay");
    assert_eq!(
        after.header().unwrap().revision(),
        rev + 1,
        "both deletes share one revision"
    );
    let old = client
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_revision(rev)),
        )
        .await
        .unwrap();
    assert_eq!(old.count(), 3);
    let ttl = client.lease_time_to_live(lease.id(), None).await.unwrap();
    assert_eq!(ttl.ttl(), -1, "the expired lease is gone");
}

#[tokio::test]
async fn keep_alive_extends_and_stopping_lets_it_expire() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    let lease = client.lease_grant(2, None).await.unwrap();
    client
        .put("k", "v", Some(PutOptions::new().with_lease(lease.id())))
        .await
        .unwrap();
    let (mut keeper, mut answers) = client.lease_keep_alive(lease.id()).await.unwrap();
    let mut last_renew = Instant::now();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        keeper.keep_alive().await.unwrap();
        let answer = answers.message().await.unwrap().expect("an answer");
        last_renew = Instant::now();
        assert_eq!((answer.id(), answer.ttl()), (lease.id(), 2));
    }
    assert!(
        exists(&mut client, "k").await,
        "4 s of keep-alives kept a 2 s lease"
    );
    let ttl = client
        .lease_time_to_live(lease.id(), Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl(), 2);
    assert!((1..=2).contains(&ttl.ttl()), "remaining {}", ttl.ttl());
    assert_eq!(ttl.keys(), [b"k".to_vec()]);
    drop(keeper);
    wait_deleted(
        &mut client,
        &["k"],
        last_renew + Duration::from_secs(2) + EXPIRY_SLACK,
    )
    .await
    .expect("expired within TTL + 1 s of the last renew");
}

#[tokio::test]
async fn revoke_deletes_exactly_the_attached_keys_in_one_revision() {
    let server = Server::ours();
    let mut client = connect(&server).await;
    let a = client.lease_grant(60, None).await.unwrap().id();
    let b = client.lease_grant(60, None).await.unwrap().id();
    let on = |id| Some(PutOptions::new().with_lease(id));
    client.put("k1", "v", on(a)).await.unwrap();
    client.put("k2", "v", on(a)).await.unwrap();
    // Moved to b: revoking a must not delete it.
    client.put("k3", "v", on(a)).await.unwrap();
    client.put("k3", "v2", on(b)).await.unwrap();
    // ignore_lease keeps the attachment to a.
    client
        .put("k2", "v2", Some(PutOptions::new().with_ignore_lease()))
        .await
        .unwrap();
    // Deleted and re-put without a lease: detached.
    client.put("k4", "v", on(a)).await.unwrap();
    client.delete("k4", None).await.unwrap();
    client.put("k4", "v", None).await.unwrap();
    // Attached inside a txn.
    client
        .txn(Txn::new().and_then([TxnOp::put("k5", "v", on(a))]))
        .await
        .unwrap();
    let ttl = client
        .lease_time_to_live(a, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(ttl.keys(), [b"k1".to_vec(), b"k2".to_vec(), b"k5".to_vec()]);
    let rev = client
        .get("k1", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();

    let revoked = client.lease_revoke(a).await.unwrap();
    assert_eq!(
        revoked.header().unwrap().revision(),
        rev + 1,
        "one revision for all deletes"
    );
    let left = client
        .get("k", Some(GetOptions::new().with_prefix().with_keys_only()))
        .await
        .unwrap();
    let keys: Vec<&[u8]> = left.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [&b"k3"[..], &b"k4"[..]]);
    let old = client
        .get(
            "k",
            Some(GetOptions::new().with_prefix().with_revision(rev)),
        )
        .await
        .unwrap();
    assert_eq!(old.count(), 5, "history before the revoke stays readable");
    assert_eq!(client.lease_time_to_live(a, None).await.unwrap().ttl(), -1);
    let again = client.lease_revoke(a).await;
    assert_eq!(
        grpc_error(again),
        (
            tonic::Code::NotFound,
            "etcdserver: requested lease not found".to_string()
        )
    );
    let b_keys = client
        .lease_time_to_live(b, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(b_keys.keys(), [b"k3".to_vec()]);
}
