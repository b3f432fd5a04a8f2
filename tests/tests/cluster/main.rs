//! Three-member clusters of our etcd, bootstrapped statically with one shared
//! `--initial-cluster`: the members agree on the cluster and one leader,
//! every member serves writes and linearizable reads, the cluster survives
//! a kill -9 of its leader without losing an acknowledged write, and a lone
//! member refuses writes instead of hanging. Under peer partitions (the
//! server's `RETCD_UNSAFE_PEER_FAULTS` hook) and kill -9 of leaders and
//! followers, concurrent histories stay linearizable and no acknowledged
//! write is lost.

mod bootstrap;
mod concurrency;
mod failover;
mod kill_under_load;
mod leases;
mod linearizable;
mod membership;
mod minority;
mod partition;
mod replication;
mod snapshot;

use std::time::Duration;

use etcd_client::{Client, GetOptions};

/// Members of the clusters under test.
pub const CLUSTER_SIZE: usize = 3;

/// etcd's default election timeout, which the members run with.
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one client call may take before the test treats it as hung.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects a client to one member only.
pub async fn connect(url: &str) -> Client {
    Client::connect([url], None)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// A linearizable get of `key` on `client`: (value, mod revision, header revision).
pub async fn get(client: &mut Client, key: &str) -> Option<(Vec<u8>, i64, i64)> {
    let response = tokio::time::timeout(CALL_TIMEOUT, client.get(key, None))
        .await
        .expect("get hung")
        .expect("get failed");
    let revision = response.header().expect("header").revision();
    response
        .kvs()
        .first()
        .map(|kv| (kv.value().to_vec(), kv.mod_revision(), revision))
}

/// Every key under `prefix` through a linearizable read.
pub async fn keys_with_prefix(client: &mut Client, prefix: &str) -> Vec<String> {
    let response = tokio::time::timeout(
        CALL_TIMEOUT,
        client.get(
            prefix,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ),
    )
    .await
    .expect("range hung")
    .expect("range failed");
    response
        .kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_string())
        .collect()
}
