//! Gateway tests: HTTP/JSON requests against the reference etcd and ours,
//! answers compared after masking ids and raft term. One concept per module.

mod endpoints;
mod errors;
mod kv;
mod prefixes;
mod range_filters;
