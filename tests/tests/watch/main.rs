//! Watch end to end: the Rust `etcd-client` crate against our server
//! (ordering, no duplicates, no gaps, atomic revisions under concurrent
//! writers and slow readers; resume, compaction, filters, prev_kv, cancel,
//! progress), Debian's `etcdctl watch` against the reference and ours with
//! identical output, and the gateway's streaming `/v3/watch`.

mod client;
mod ctl;
mod gateway;
mod guarantees;
mod streams;

use std::time::Duration;

use etcd_client::{Client, WatchResponse, WatchStream};
use retcd_tests::Server;

/// Longest wait for one expected watch response; a hang fails the test.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);

/// Connects a client to `server`.
pub async fn connect(server: &Server) -> Client {
    Client::connect([server.client_url()], None)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", server.client_url()))
}

/// The next response on `stream`; panics on a timeout, error or end.
pub async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(RESPONSE_TIMEOUT, stream.message())
        .await
        .expect("a watch response in time")
        .expect("a healthy watch stream")
        .expect("an open watch stream")
}
