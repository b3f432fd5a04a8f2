//! Leases end to end: grant, keep-alive, time-to-live, revoke and expiry
//! through the Rust `etcd-client`, persistence across restarts, Debian's
//! etcdctl against the reference etcd and ours, and the gateway's lease
//! calls. Expiry is checked against etcd's bound: attached keys are gone
//! within the TTL plus one second.

mod differential;
mod gateway;
mod lifecycle;
mod restart;

use std::time::{Duration, Instant};

use etcd_client::Client;
use retcd_tests::Server;

/// The slack etcd allows an expiry beyond the TTL before keys are deleted.
pub const EXPIRY_SLACK: Duration = Duration::from_secs(1);

/// Pause between polls while waiting for an expiry.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Connects a client to `server`'s client URL.
pub async fn connect(server: &Server) -> Client {
    Client::connect([server.client_url()], None)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", server.client_url()))
}

/// Whether `key` exists.
pub async fn exists(client: &mut Client, key: &str) -> bool {
    client.get(key, None).await.unwrap().count() == 1
}

/// Polls until none of `keys` exists or `deadline` passes; returns when
/// they were all gone, or None.
pub async fn wait_deleted(
    client: &mut Client,
    keys: &[&str],
    deadline: Instant,
) -> Option<Instant> {
    loop {
        let mut any = false;
        for key in keys {
            any |= exists(client, key).await;
        }
        let now = Instant::now();
        if !any {
            return Some(now);
        }
        if now >= deadline {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
