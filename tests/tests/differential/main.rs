//! Differential tests: the same Debian etcdctl 3.4.23 script against the
//! reference etcd and against ours; masked stdout, stderr and exit codes must
//! be identical step by step. One concept per module.

mod compaction;
mod delete;
mod endpoints;
mod errors;
mod hashkv;
mod range;
mod seed;
mod txn;
