//! retcd's etcd server.
//!
//! A member is four parts wired together at start:
//! - the MVCC store (`retcd-mvcc`), the state machine, on redb;
//! - the raft loop (`retcd-raft`), which orders and persists proposals;
//! - the apply thread (`apply`), which executes committed entries on the store
//!   and wakes the proposers (`server`);
//! - the client port (`serve`): etcd's gRPC services and the HTTP/JSON gateway
//!   multiplexed on one listener;
//! - in a cluster, the peer port (`peer`), which carries raft messages between
//!   members whose ids and addresses `membership` fixed at bootstrap.
//!
//! Data layout under `--data-dir`, as etcd's: `member/wal` holds the raft log,
//! `member/snap/db` the backend.

pub mod alarm;
pub mod api;
pub mod apply;
pub mod backend_flush;
pub mod cmdline;
pub mod config;
pub mod error;
pub mod fault;
pub mod gateway;
pub mod gateway_concurrency;
mod gateway_decode;
mod gateway_json;
pub mod gateway_lease;
pub mod gateway_maintenance;
mod gateway_schema;
pub mod gateway_stream;
pub mod gateway_watch;
pub mod grpc_compat;
pub mod grpc_metrics;
pub mod grpc_route;
pub mod h2_authority;
pub mod ids;
pub mod learner_guard;
pub mod lease;
pub mod lease_forward;
pub mod listener;
pub mod membership;
pub mod metrics;
pub mod mvcc_metrics;
pub mod peer;
pub mod peer_metrics;
pub mod peer_snapshot;
pub mod process_metrics;
pub mod serve;
pub mod server;
pub mod snapshot;
pub mod write_coalesce;

pub use config::{Config, Flags};
pub use serve::run;
