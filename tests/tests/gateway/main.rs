//! Gateway tests: HTTP/JSON requests against the reference etcd and ours,
//! answers compared after masking ids and raft term. One concept per module.

mod bad_input;
mod body_size;
mod concurrency;
mod endpoints;
mod errors;
mod headers;
mod kv;
mod maintenance;
mod metrics;
mod prefixes;
mod range_filters;
