//! The gRPC services. Each service validates, then either reads the store
//! (after a read barrier unless serializable) or proposes through raft, and
//! completes the response header. Services whose issue has not landed are not
//! registered, so clients get gRPC UNIMPLEMENTED for them.

pub mod cluster;
pub mod concurrency;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod validate;
pub mod watch;
