//! The etcd v3 API as Rust types.
//!
//! Generated at build time from `proto/`: prost messages, tonic clients and
//! servers for every service, and serde implementations (pbjson) that follow
//! the proto3 JSON mapping the way etcd's gateway writes it: proto field names,
//! 64-bit integers as strings, bytes as base64, default values omitted.
//!
//! Package names are etcd's so gRPC method paths match
//! (`/etcdserverpb.KV/Range`, `/v3lockpb.Lock/Lock`, ...).

/// Key-value records and events.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// Users, roles and permissions.
pub mod authpb {
    tonic::include_proto!("authpb");
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

/// The client API services and the internal raft request.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}

/// Distributed locks.
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
}

/// Leader election.
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
}
