//! Differential tests of our etcdctl (`crates/ctl`) against Debian's
//! etcdctl 3.4.23: the same script runs through both, each against its own
//! fresh server of the same flavour, and stdout, stderr and exit code must
//! be identical after masking (ids, ports, timestamps, measured durations).
//! KV commands run against our server; lease, cluster and maintenance
//! commands against the reference etcd until our server implements them.

mod check_perf;
mod harness;
mod kv;
mod lease_cluster;
mod membership;
mod tls_auth;
mod usage;
