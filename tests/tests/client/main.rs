//! The Rust `etcd-client` crate against our server: KV methods, txn,
//! compaction, header revisions, and the gRPC status (code and message) of
//! every KV error. The expected codes and texts are etcd's; running with
//! `RETCD_ETCD=/usr/bin/etcd` checks them against etcd itself.

mod errors;
mod kv;
mod port;

use etcd_client::Client;
use retcd_tests::Server;

/// Connects a client to `server`'s client URL.
pub async fn connect(server: &Server) -> Client {
    Client::connect([server.client_url()], None)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", server.client_url()))
}

/// The gRPC code and message of a failed call; panics on success or on an
/// error that is not a gRPC status.
pub fn grpc_error<T: std::fmt::Debug>(
    result: Result<T, etcd_client::Error>,
) -> (tonic::Code, String) {
    match result {
        Err(etcd_client::Error::GRpcStatus(status)) => {
            (status.code(), status.message().to_string())
        }
        other => panic!("expected a gRPC status error, got {other:?}"),
    }
}
