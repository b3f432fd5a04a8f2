//! End-to-end test harness for retcd.
//!
//! The tests in `tests/` spawn real server binaries and drive them with real
//! clients: Debian's etcdctl 3.4.23, raw HTTP against the JSON gateway, and
//! the Rust `etcd-client` crate. The most valuable ones are differential: the
//! same script against the reference etcd (`/usr/bin/etcd`) and against ours,
//! compared after masking only what legitimately differs (ids, raft term).
//!
//! - [`server::Server`]: one etcd process on free loopback ports with a fresh
//!   data dir; killed on drop; kill -9 and restart for crash tests.
//!   `Server::ours()` runs `$RETCD_ETCD` if set (`RETCD_ETCD=/usr/bin/etcd`
//!   validates the whole suite against etcd itself), else the workspace's
//!   `target/debug/etcd`.
//! - [`cluster::Cluster`]: N etcd processes bootstrapped as one cluster with
//!   a shared `--initial-cluster`; kill -9 and restart a member; all killed on drop.
//! - [`etcdctl`]: runs `/usr/bin/etcdctl` with the v3 API.
//! - [`http`]: a tiny blocking HTTP/1.1 client for the gateway.
//! - [`linearizability`]: a checker for recorded concurrent KV histories.
//! - [`mask`]: the masking rules.
//! - [`differential`]: scripts of etcdctl steps compared across both servers.
//! - [`gateway`]: gateway calls compared across both servers.
//! - [`process`]: a hand-started child process, killed on drop.

pub mod cluster;
pub mod differential;
pub mod etcdctl;
pub mod gateway;
pub mod http;
pub mod linearizability;
pub mod mask;
pub mod ports;
pub mod process;
pub mod server;

pub use differential::{
    Step, Transcript, compare_on, run_differential, run_differential_with, step,
};
pub use etcdctl::CtlOutput;
pub use mask::{mask, mask_json};
pub use server::{Flavour, Server};
